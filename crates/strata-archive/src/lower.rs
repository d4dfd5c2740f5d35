//! Read-only lookups through a stack of overlay lower directories (upper
//! format: char 0/0 whiteouts, opaque xattrs), used to tell "added" from
//! "modified" when listing changes from an upper directory, and to find
//! the file a layer's hard link names in the layers below it.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

use strata_sys::fs;
use strata_sys::Stat;
use strata_sys::{xattr, FileType};

use crate::whiteout::OverlayXattrs;

/// A stack of overlay lower directories, read as overlayfs shows them
/// merged: for writers that build a layer over them and must copy up
/// what a layer's entries name below it.
///
/// Each directory is opened the first time a lookup reaches it, so a
/// lookup answered by the top layers never opens (or, for a driver that
/// mounts layers to show them, mounts) the ones below: a parent a layer
/// leaves out is nearly always in the layer just below.
pub struct Lowers<'a> {
    /// Topmost first, each set when first reached.
    layers: Vec<OnceLock<OwnedFd>>,
    /// Opens layer `i` (topmost first).
    open: Mutex<OpenLayer<'a>>,
    xattrs: OverlayXattrs,
}

/// What opens lower layer `i` (topmost first) for [`Lowers::lazy`].
pub type OpenLayer<'a> = Box<dyn FnMut(usize) -> io::Result<OwnedFd> + Send + 'a>;

/// An entry of the merged lower view, as [`Lowers::lookup`] finds it.
#[derive(Debug)]
pub struct LowerEntry {
    /// Its attributes, overlay-private xattrs left out.
    pub attrs: crate::Attrs,
    pub kind: LowerKind,
}

#[derive(Debug)]
pub enum LowerKind {
    Dir,
    /// A regular file, opened for reading, and its length; with the
    /// object that holds its content when it is an overlay metacopy file
    /// redirected into a data-only layer (`/ab/cdef…`, as sha256 hex).
    File {
        file: std::fs::File,
        size: u64,
        object: Option<String>,
    },
    Symlink(Vec<u8>),
    /// A device, a fifo or a socket.
    Special(crate::Special),
}

/// The object a metacopy file's redirect names, `/ab/<62 hex>`, as the
/// 64 hex digits of its sha256.
fn object_of_redirect(v: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(v).ok()?;
    let (a, b) = s.strip_prefix('/')?.split_once('/')?;
    let hex = format!("{a}{b}");
    (a.len() == 2 && hex.len() == 64 && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(hex)
}

pub(crate) fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

pub(crate) fn is_opaque(dir: BorrowedFd<'_>, x: OverlayXattrs) -> io::Result<bool> {
    Ok(xattr::get(dir, false, x.opaque())?.as_deref() == Some(b"y"))
}

/// Where a directory path leads in one layer.
enum Found {
    Dir(OwnedFd, bool),
    /// Absent here; lower layers may have it.
    Missing,
    /// Whited out, or shadowed by a non-directory: nothing below shows.
    Hidden,
}

impl Lowers<'static> {
    /// The directories `first` (already open) then `dirs`, topmost first,
    /// whose whiteouts and opaque directories are marked as `xattrs`
    /// says.
    pub fn open(
        first: Vec<OwnedFd>,
        dirs: &[std::path::PathBuf],
        xattrs: OverlayXattrs,
    ) -> Lowers<'static> {
        let skip = first.len();
        let dirs = dirs.to_vec();
        let mut l = Lowers::lazy(
            skip + dirs.len(),
            xattrs,
            Box::new(move |i| fs::open_dir(&dirs[i - skip])),
        );
        for (cell, fd) in l.layers.iter_mut().zip(first) {
            let _ = cell.set(fd);
        }
        l
    }
}

impl<'a> Lowers<'a> {
    /// `count` layers, layer `i` opened by `open(i)` when a lookup first
    /// reaches it.
    pub fn lazy(count: usize, xattrs: OverlayXattrs, open: OpenLayer<'a>) -> Lowers<'a> {
        Lowers {
            layers: (0..count).map(|_| OnceLock::new()).collect(),
            open: Mutex::new(open),
            xattrs,
        }
    }

    /// How many layers there are.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Layer `i`, opened now if not yet.
    fn layer(&self, i: usize) -> io::Result<BorrowedFd<'_>> {
        let cell = &self.layers[i];
        if cell.get().is_none() {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if cell.get().is_none() {
                let _ = cell.set(open(i)?);
            }
        }
        Ok(cell.get().expect("set above").as_fd())
    }

    /// What `comps` names in the merged view, if anything; symlinks on
    /// the way are not followed (a symlink in a parent hides what is
    /// below it, as a file would).
    pub fn lookup(&self, comps: &[Vec<u8>]) -> io::Result<Option<LowerEntry>> {
        let Some((_, dir, st)) = self.find(comps)? else {
            return Ok(None);
        };
        let name = fs::os(comps.last().expect("find names no root"));
        let ty = FileType::from_raw_mode(st.st_mode);
        let (kind, xattrs) = match ty {
            FileType::Directory => {
                let fd = fs::open_dir_at(dir.as_fd(), name)?;
                (LowerKind::Dir, xattr::all(fd.as_fd(), false)?)
            }
            FileType::RegularFile => {
                let (f, _) = fs::open_regular_at(dir.as_fd(), name, Some(&st))?;
                let x = xattr::all(f.as_fd(), false)?;
                let object = x
                    .iter()
                    .find(|(k, _)| k.as_slice() == self.xattrs.redirect())
                    .and_then(|(_, v)| object_of_redirect(v));
                let kind = LowerKind::File {
                    file: f,
                    size: st.st_size as u64,
                    object,
                };
                (kind, x)
            }
            FileType::Symlink => (
                LowerKind::Symlink(fs::readlink_at(dir.as_fd(), name)?),
                Vec::new(),
            ),
            FileType::CharacterDevice | FileType::BlockDevice => {
                let (major, minor) = fs::major_minor(st.st_rdev);
                let dev = if ty == FileType::CharacterDevice {
                    crate::Special::Char { major, minor }
                } else {
                    crate::Special::Block { major, minor }
                };
                (LowerKind::Special(dev), Vec::new())
            }
            _ => (LowerKind::Special(crate::Special::Fifo), Vec::new()),
        };
        let attrs = crate::Attrs {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime_sec: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec.min(999_999_999) as u32,
            xattrs: xattrs
                .into_iter()
                .filter(|(k, _)| !crate::whiteout::is_overlay_private(k))
                .collect(),
        };
        Ok(Some(LowerEntry { attrs, kind }))
    }

    /// Walks `comps` in one layer; the bool says whether this layer has an
    /// opaque directory on the way (which hides the layers below).
    fn dir_in(&self, layer: BorrowedFd<'_>, comps: &[Vec<u8>]) -> io::Result<Found> {
        let mut cur = fs::open_dir_at(layer, fs::os(b"."))?;
        let mut opaque = false;
        for c in comps {
            let Some(st) = fs::lstat_at(cur.as_fd(), fs::os(c))? else {
                return Ok(if opaque {
                    Found::Hidden
                } else {
                    Found::Missing
                });
            };
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                return Ok(Found::Hidden);
            }
            cur = fs::open_dir_at(cur.as_fd(), fs::os(c))?;
            opaque |= is_opaque(cur.as_fd(), self.xattrs)?;
        }
        Ok(Found::Dir(cur, opaque))
    }

    /// Whether `comps` is visible in the merged lower view.
    pub fn exists(&self, comps: &[Vec<u8>]) -> io::Result<bool> {
        Ok(comps.is_empty() || self.find(comps)?.is_some())
    }

    /// The entry `comps` names in the merged view, when a layer shows it:
    /// the index of that layer, the directory holding the entry and its
    /// attributes. A component that is not a directory hides what is
    /// below (symlinks are not followed).
    pub fn find(&self, comps: &[Vec<u8>]) -> io::Result<Option<(usize, OwnedFd, Stat)>> {
        let Some((last, parent)) = comps.split_last() else {
            return Ok(None);
        };
        for i in 0..self.layers.len() {
            match self.dir_in(self.layer(i)?, parent)? {
                Found::Hidden => return Ok(None),
                Found::Missing => continue,
                Found::Dir(fd, opaque) => {
                    if let Some(st) = fs::lstat_at(fd.as_fd(), fs::os(last))? {
                        return Ok((!is_whiteout(&st)).then_some((i, fd, st)));
                    }
                    if opaque {
                        return Ok(None);
                    }
                }
            }
        }
        Ok(None)
    }

    /// The names visible in the merged lower directory `comps`.
    pub fn children(&self, comps: &[Vec<u8>]) -> io::Result<BTreeSet<Vec<u8>>> {
        let mut seen = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        for i in 0..self.layers.len() {
            match self.dir_in(self.layer(i)?, comps)? {
                Found::Hidden => break,
                Found::Missing => continue,
                Found::Dir(fd, opaque) => {
                    for e in fs::read_dir(fd.as_fd())? {
                        if seen.contains(&e.name) || hidden.contains(&e.name) {
                            continue;
                        }
                        let st = fs::lstat_at(fd.as_fd(), fs::os(&e.name))?;
                        if st.is_some_and(|st| is_whiteout(&st)) {
                            hidden.insert(e.name);
                        } else {
                            seen.insert(e.name);
                        }
                    }
                    if opaque {
                        break;
                    }
                }
            }
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A lookup opens the layers from the top only as far as it has to:
    /// a name the top layer shows opens nothing below it; one only the
    /// bottom layer shows opens every layer, each once.
    #[test]
    fn layers_are_opened_only_as_far_as_a_lookup_reaches() {
        let t = tempfile::tempdir().unwrap();
        let dirs: Vec<_> = (0..4).map(|i| t.path().join(format!("l{i}"))).collect();
        for d in &dirs {
            std::fs::create_dir_all(d.join("opt")).unwrap();
        }
        std::fs::create_dir(dirs[3].join("deep")).unwrap();
        let opened = Arc::new(Mutex::new(Vec::new()));
        let (log, paths) = (opened.clone(), dirs.clone());
        let lowers = Lowers::lazy(
            dirs.len(),
            OverlayXattrs::Trusted,
            Box::new(move |i| {
                log.lock().unwrap().push(i);
                fs::open_dir(&paths[i])
            }),
        );
        let comps = |p: &str| -> Vec<Vec<u8>> { vec![p.as_bytes().to_vec()] };
        assert!(matches!(
            lowers.lookup(&comps("opt")).unwrap().map(|e| e.kind),
            Some(LowerKind::Dir)
        ));
        assert_eq!(*opened.lock().unwrap(), [0]);
        assert!(lowers.exists(&comps("deep")).unwrap());
        assert!(!lowers.exists(&comps("none")).unwrap());
        assert_eq!(*opened.lock().unwrap(), [0, 1, 2, 3]);
    }

    /// A layer that cannot be opened fails the lookup that reaches it,
    /// and only that one.
    #[test]
    fn a_layer_that_cannot_be_opened_fails_the_lookup_that_reaches_it() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("opt")).unwrap();
        let top = fs::open_dir(t.path()).unwrap();
        let lowers = Lowers::open(vec![top], &[t.path().join("gone")], OverlayXattrs::Trusted);
        let comps = |p: &str| -> Vec<Vec<u8>> { vec![p.as_bytes().to_vec()] };
        assert!(lowers.exists(&comps("opt")).unwrap());
        assert!(lowers.exists(&comps("none")).is_err());
    }
}
