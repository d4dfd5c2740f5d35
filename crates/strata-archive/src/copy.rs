//! `cp`: one path of a tree, resolved inside a root, as a tar.
//!
//! A container path is resolved in the container's root *as if that root
//! were `/`*: `..` stops at the root and a symlink met on the way, however
//! it points (`/data -> /etc/..`, `evil -> ../../../..`), is followed by
//! [`Root`] inside the root, never by the kernel. `docker cp` once followed
//! such links on the host (CVE-2018-15664, and CVE-2019-14271 for the
//! helper it ran in the container): here no path string naming the
//! container's content is ever handed to the kernel.
//!
//! The object found is held as a handle on its parent directory and its
//! name, so writing the tar reads what was resolved, whatever the
//! container does to its symlinks meanwhile.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use strata_sys::{fs, Errno, FileType, Stat};

use crate::apply::open_root;
use crate::error::{Error, Result};
use crate::path::{child, join, Components};
use crate::root::Root;
use crate::walk::MAX_SYMLINKS;
use crate::whiteout::PREFIX;
use crate::writer::{DiffReport, LayerWriter};

/// An object found inside a root by [`PathInRoot::resolve`].
pub struct PathInRoot {
    parent: OwnedFd,
    /// Its name in `parent`; `.` for the root itself.
    name: Vec<u8>,
    st: Stat,
    /// Where it is inside the root, with no symlink in it, no leading `/`.
    path: Vec<u8>,
}

/// Splits `path` into components, lexically: empty and `.` components
/// dropped, `..` removing the previous one and stopping at the root (as
/// `/..` is `/`).
pub fn clean_path(path: &[u8]) -> Components {
    let mut out: Components = Vec::new();
    for comp in path.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c.to_vec()),
        }
    }
    out
}

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

impl PathInRoot {
    /// Resolves `path` inside the directory `root`; `None` when nothing is
    /// there. Symlinks in the parent path are always followed inside the
    /// root; the last component only when `follow` (it may then lead
    /// anywhere in the root, through other symlinks).
    pub fn resolve(root: &Path, path: &[u8], follow: bool) -> Result<Option<PathInRoot>> {
        let shown = |p: &[u8]| {
            let mut s = b"/".to_vec();
            s.extend_from_slice(p);
            s
        };
        let mut root = Root::new(open_root(root)?);
        let mut comps = clean_path(path);
        let mut links = 0;
        loop {
            let Some((last, parent)) = comps.split_last() else {
                let fd = root.handle();
                let st = fs::fstat(fd.as_fd()).map_err(|e| Error::fs("looking up", "/", e))?;
                let parent = dup(fd.as_fd(), b"/")?;
                return Ok(Some(PathInRoot {
                    parent,
                    name: b".".to_vec(),
                    st,
                    path: Vec::new(),
                }));
            };
            let dir = match root.dir(parent, false) {
                Ok(Some(d)) => d,
                Ok(None) => return Ok(None),
                Err(e) if errno(&e) == Some(Errno::NOTDIR) => return Ok(None),
                Err(e) => return Err(Error::fs("resolving", shown(&join(&comps)), e)),
            };
            let resolved_parent = root.resolved(parent).unwrap_or_else(|| join(parent));
            let here = child(&resolved_parent, last);
            let Some(st) = fs::lstat_at(dir.as_fd(), fs::os(last))
                .map_err(|e| Error::fs("looking up", shown(&here), e))?
            else {
                return Ok(None);
            };
            if follow && FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                links += 1;
                if links > MAX_SYMLINKS {
                    let e = io::Error::from_raw_os_error(Errno::LOOP.raw_os_error());
                    return Err(Error::fs("resolving", shown(&here), e));
                }
                let target = fs::readlink_at(dir.as_fd(), fs::os(last))
                    .map_err(|e| Error::fs("reading the symlink", shown(&here), e))?;
                // An absolute target starts again at the root.
                let mut next = if target.first() == Some(&b'/') {
                    Vec::new()
                } else {
                    resolved_parent
                };
                next.push(b'/');
                next.extend_from_slice(&target);
                comps = clean_path(&next);
                continue;
            }
            let parent = dup(dir.as_fd(), &resolved_parent)?;
            return Ok(Some(PathInRoot {
                parent,
                name: last.clone(),
                st,
                path: here,
            }));
        }
    }

    pub fn is_dir(&self) -> bool {
        FileType::from_raw_mode(self.st.st_mode) == FileType::Directory
    }

    /// The object's own metadata (not followed).
    pub fn stat(&self) -> &Stat {
        &self.st
    }

    /// The object's target when it is a symlink (not followed).
    pub fn link_target(&self) -> Result<Option<Vec<u8>>> {
        if FileType::from_raw_mode(self.st.st_mode) != FileType::Symlink {
            return Ok(None);
        }
        fs::readlink_at(self.parent.as_fd(), fs::os(&self.name))
            .map(Some)
            .map_err(|e| Error::fs("reading the symlink", &self.path, e))
    }

    /// Where the object is inside the root: no symlink in it, no leading
    /// `/`, empty for the root itself.
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// Writes the object as a tar: itself named `as_name`, and for a
    /// directory everything below it under `as_name/`. With an empty
    /// `as_name`, a directory's contents only, named from it.
    ///
    /// Names starting with `.wh.` are refused: whoever applies the tar
    /// would take them for whiteouts and delete what they name.
    pub fn write_tar<W: Write>(&self, as_name: &[u8], out: W) -> Result<(W, DiffReport)> {
        let as_name = join(&clean_path(as_name));
        let mut w = LayerWriter::new(out);
        if as_name.is_empty() {
            if !self.is_dir() {
                return Err(Error::entry(
                    &self.path,
                    "only a directory's contents can be copied",
                ));
            }
        } else {
            check_name(&as_name, &as_name)?;
            w.entry(self.parent.as_fd(), &self.name, &as_name, &self.st)?;
        }
        if self.is_dir() {
            let fd = fs::open_dir_at(self.parent.as_fd(), fs::os(&self.name))
                .map_err(|e| Error::fs("opening", &self.path, e))?;
            walk(&mut w, fd.as_fd(), &as_name)?;
        }
        w.finish()
    }
}

fn dup(fd: BorrowedFd<'_>, path: &[u8]) -> Result<OwnedFd> {
    fd.try_clone_to_owned()
        .map_err(|e| Error::fs("duplicating the handle of", path, e))
}

fn check_name(path: &[u8], name: &[u8]) -> Result<()> {
    if clean_path(name).iter().any(|c| c.starts_with(PREFIX)) {
        return Err(Error::entry(
            path,
            "names starting with `.wh.` are reserved for whiteouts and cannot be copied",
        ));
    }
    Ok(())
}

/// Every object below `dir`, depth first, children in byte order of
/// their names.
fn walk<W: Write>(w: &mut LayerWriter<W>, dir: BorrowedFd<'_>, path: &[u8]) -> Result<()> {
    let mut names: Vec<Vec<u8>> = fs::read_dir(dir)
        .map_err(|e| Error::fs("listing", path, e))?
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    for n in names {
        let p = child(path, &n);
        check_name(&p, &n)?;
        let Some(st) = fs::lstat_at(dir, fs::os(&n)).map_err(|e| Error::fs("looking up", &p, e))?
        else {
            continue;
        };
        w.entry(dir, &n, &p, &st)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = fs::open_dir_at(dir, fs::os(&n)).map_err(|e| Error::fs("opening", &p, e))?;
            walk(w, sub.as_fd(), &p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(tar: &[u8]) -> Vec<String> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn clean_path_stops_at_the_root() {
        assert_eq!(
            clean_path(b"/../../etc/./x/"),
            [b"etc".to_vec(), b"x".to_vec()]
        );
        assert!(clean_path(b"a/../..").is_empty());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "inside").unwrap();
        symlink("/", root.join("evil")).unwrap();
        symlink("../../../../../../..", root.join("up")).unwrap();
        symlink("/etc/..", root.join("data")).unwrap();
        for p in [
            "evil/etc/hostname",
            "up/etc/hostname",
            "data/etc/hostname",
            "../../etc/hostname",
        ] {
            let r = PathInRoot::resolve(&root, p.as_bytes(), false)
                .unwrap()
                .unwrap_or_else(|| panic!("{p} not found"));
            assert_eq!(r.path(), b"etc/hostname", "{p}");
        }
        // Outside paths are not found, even where the host has them.
        let outside = t.path().join("victim");
        std::fs::write(&outside, "host").unwrap();
        let p = format!("up{}", outside.display());
        assert!(PathInRoot::resolve(&root, p.as_bytes(), true)
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_last_symlink_is_kept_unless_followed() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/f"), "x").unwrap();
        symlink("/d", t.path().join("l")).unwrap();
        let kept = PathInRoot::resolve(t.path(), b"l", false).unwrap().unwrap();
        assert!(!kept.is_dir());
        let (tar, _) = kept.write_tar(b"l", Vec::new()).unwrap();
        assert_eq!(names(&tar), ["l"]);
        let followed = PathInRoot::resolve(t.path(), b"l", true).unwrap().unwrap();
        assert_eq!(followed.path(), b"d");
        let (tar, _) = followed.write_tar(b"x/y", Vec::new()).unwrap();
        assert_eq!(names(&tar), ["x/y/", "x/y/f"]);
        let (tar, _) = followed.write_tar(b"", Vec::new()).unwrap();
        assert_eq!(names(&tar), ["f"]);
    }

    #[test]
    fn whiteout_names_are_refused() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(".wh.x"), "").unwrap();
        let r = PathInRoot::resolve(t.path(), b"/", false).unwrap().unwrap();
        assert!(r.write_tar(b"d", Vec::new()).is_err());
    }
}
