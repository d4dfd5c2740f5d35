//! A container's init layer (`<mount-id>-init`): what every container
//! gets over its image, as Docker's init layer: the mount points `/dev`,
//! `/dev/pts`, `/dev/shm`, `/proc`, `/sys`, the files the runtime binds
//! over (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`,
//! `/dev/console`) and `/etc/mtab -> /proc/mounts`; all root's, mode
//! 0755, time 0.
//!
//! The content is one table. A driver whose layer starts empty (overlay2,
//! fuse, erofs: [`Driver::layers_independent`]) gets it written straight
//! into the layer's directory, about 35 system calls; any other (vfs,
//! btrfs: a copy or snapshot of the image) gets it as a tar through the
//! driver's apply, which merges it over what the image has. Both give the
//! same entries: a test compares them. `create` pays for this once per
//! container, and a script that makes many pays it each time.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use strata_driver::Driver;
use strata_sys::fs as sys;

use crate::error::{Error, IoContext, Result};

/// The directories, parents first.
const DIRS: [&str; 6] = ["dev", "dev/pts", "dev/shm", "etc", "proc", "sys"];
/// The empty files.
const FILES: [&str; 4] = [
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "dev/console",
];
/// The symlink and its target.
const MTAB: (&str, &str) = ("etc/mtab", "/proc/mounts");
/// Every entry's mode (a symlink's is 0777, as tar writes it).
const MODE: u32 = 0o755;
/// Every entry's modification and access time (`strata_image::tar_header`'s).
const TIME: sys::Time = sys::Time { sec: 0, nsec: 0 };

/// Writes the init layer into `id`, just made on the image's top layer
/// `parent`.
pub(crate) fn write(driver: &dyn Driver, id: &str, parent: Option<&str>) -> Result<()> {
    if driver.layers_independent() {
        let dir = driver
            .content_dir(id)
            .map_err(|e| Error::driver("writing the init layer", e))?;
        if write_direct(&dir).ctx(|| format!("writing the init layer in {}", dir.display()))? {
            return Ok(());
        }
    }
    driver
        .apply_diff(id, parent, &mut io::Cursor::new(tar()))
        .map_err(|e| Error::driver("writing the init layer", e))?;
    Ok(())
}

/// The init layer as a tar.
pub(crate) fn tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, link: Option<&str>| {
        let mut h = strata_image::tar_header(kind, mode, 0);
        h.set_path(path).expect("fixed short paths");
        if let Some(l) = link {
            h.set_link_name(l).expect("fixed short link");
        }
        h.set_cksum();
        b.append(&h, io::empty()).expect("writing to memory");
    };
    use tar::EntryType::{Directory, Regular, Symlink};
    for d in DIRS {
        add(&format!("{d}/"), Directory, MODE, None);
    }
    for f in FILES {
        add(f, Regular, MODE, None);
    }
    add(MTAB.0, Symlink, 0o777, Some(MTAB.1));
    b.into_inner().expect("writing to memory")
}

/// `path`'s parent directory (`""` at the top) and name.
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// The open directory `parent` (`""`: `root`).
fn fd_of<'a>(open: &'a [(&str, OwnedFd)], root: &'a OwnedFd, parent: &str) -> BorrowedFd<'a> {
    open.iter()
        .find(|(p, _)| *p == parent)
        .map_or(root.as_fd(), |(_, fd)| fd.as_fd())
}

/// Writes the entries into the empty directory `dir` as the tar's apply
/// would leave them. Returns false, having written nothing, where a
/// new entry would not get the tar's owner or mode by itself (not root,
/// a set-group-id `dir`, a umask that takes bits of 0755): the apply,
/// which sets both, is used then.
fn write_direct(dir: &Path) -> io::Result<bool> {
    if sys::euid() != 0 || sys::egid() != 0 || !sys::umask_keeps(MODE) {
        return Ok(false);
    }
    let root = sys::open_dir(dir)?;
    if sys::fstat(root.as_fd())?.st_mode & 0o2000 != 0 {
        return Ok(false);
    }
    // The directories that are parents of other entries, open.
    let mut open: Vec<(&str, OwnedFd)> = Vec::new();
    let is_parent = |d: &str| {
        DIRS.iter()
            .chain(&FILES)
            .chain([&MTAB.0])
            .any(|e| split(e).0 == d)
    };
    for d in DIRS {
        let (parent, name) = split(d);
        let at = fd_of(&open, &root, parent);
        sys::mkdir_at(at, OsStr::new(name), MODE)?;
        let fd = is_parent(d)
            .then(|| sys::open_dir_at(at, OsStr::new(name)))
            .transpose()?;
        open.extend(fd.map(|fd| (d, fd)));
    }
    for f in FILES {
        let (parent, name) = split(f);
        let file = sys::create_file_at(fd_of(&open, &root, parent), OsStr::new(name), MODE)?;
        sys::futimes(file.as_fd(), TIME, TIME)?;
    }
    let (parent, name) = split(MTAB.0);
    let at = fd_of(&open, &root, parent);
    sys::symlink_at(OsStr::new(MTAB.1), at, OsStr::new(name))?;
    sys::lutimes_at(at, OsStr::new(name), TIME, TIME)?;
    // Directories last, deepest first: each entry made in one changed
    // its parent's time.
    for d in DIRS.iter().rev() {
        let (parent, name) = split(d);
        sys::lutimes_at(fd_of(&open, &root, parent), OsStr::new(name), TIME, TIME)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;

    /// Every entry below `dir`: type and mode, owner, modification time,
    /// symlink target, size.
    fn entries(dir: &Path) -> BTreeMap<String, (u32, u32, u32, i64, String, u64)> {
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                let target = std::fs::read_link(&p)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(
                    rel,
                    (m.mode(), m.uid(), m.gid(), m.mtime(), target, m.size()),
                );
                if m.is_dir() {
                    todo.push(p);
                }
            }
        }
        out
    }

    /// The direct write leaves what the tar's apply leaves, entry by
    /// entry (as root: otherwise the direct write is not taken).
    #[test]
    fn the_direct_write_leaves_what_the_tar_leaves() {
        if !strata_test_support::require_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (applied, direct) = (t.path().join("applied"), t.path().join("direct"));
        for d in [&applied, &direct] {
            std::fs::create_dir(d).unwrap();
        }
        strata_archive::apply(
            io::Cursor::new(tar()),
            &applied,
            &strata_archive::ApplyOptions::default(),
        )
        .unwrap();
        assert!(write_direct(&direct).unwrap(), "the direct write was taken");
        let want = entries(&applied);
        assert_eq!(want.len(), DIRS.len() + FILES.len() + 1);
        assert_eq!(entries(&direct), want);
    }

    /// A directory that gives new entries its group is left to the apply.
    #[test]
    fn a_set_group_id_directory_is_left_to_the_apply() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o2755)).unwrap();
        assert!(!write_direct(t.path()).unwrap());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
