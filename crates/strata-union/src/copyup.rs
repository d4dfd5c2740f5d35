//! Copying entries to the writable branch, and the staging ("work")
//! directory where copies are built before being renamed into place.

// `Stat`'s field types differ between architectures: the conversions
// that are no-ops here are not everywhere.
#![allow(clippy::useless_conversion)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use strata_sys::{fs, xattr, Errno, FileType, Stat};

use crate::layers::{is_dir, Layer, Markers};

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

/// The staging directory: every new entry and every copy is built here
/// under a temporary name, then renamed into the writable branch, so
/// that nothing half-made is ever visible in the union.
pub(crate) struct Work {
    pub dir: OwnedFd,
    counter: AtomicU64,
    /// The directory holding the work dir, and its name there, when the
    /// work dir is strata's own (aufs format without a workdir): removed
    /// again at unmount so that the writable branch holds only the layer's
    /// content.
    owned: Option<(OwnedFd, Vec<u8>)>,
}

impl Work {
    /// Opens (creating it if needed) `name` in `parent` and empties it:
    /// what is left there is debris of an earlier mount.
    pub fn open(parent: BorrowedFd<'_>, name: &[u8], owned: bool) -> io::Result<Work> {
        match fs::mkdir_at(parent, fs::os(name), 0o700) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let dir = fs::open_dir_at(parent, fs::os(name))?;
        for ent in fs::read_dir(dir.as_fd())? {
            remove_tree(dir.as_fd(), &ent.name)?;
        }
        let owned = if owned {
            Some((fs::open_path_at(parent, fs::os(b"."))?, name.to_vec()))
        } else {
            None
        };
        Ok(Work {
            dir,
            counter: AtomicU64::new(0),
            owned,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Removes the work dir if it is strata's own and empty.
    pub fn close(&self) {
        if let Some((parent, name)) = &self.owned {
            let _ = fs::rmdir_at(parent.as_fd(), fs::os(name));
        }
    }

    /// A fresh name in the work dir.
    pub fn temp_name(&self) -> Vec<u8> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("#{:x}.{:x}", std::process::id(), n).into_bytes()
    }
}

/// `rm -rf dir/name`, never following a symlink.
pub(crate) fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    remove_tree_keys(dir, name, &mut Vec::new())
}

/// [`remove_tree`], collecting the identities `(st_dev, st_ino)` of the
/// inodes it frees (directories, and files with no other link), whose
/// numbers the file system may hand out again.
pub(crate) fn remove_tree_keys(
    dir: BorrowedFd<'_>,
    name: &[u8],
    freed: &mut Vec<(u64, u64)>,
) -> io::Result<()> {
    let Some(st) = fs::lstat_at(dir, fs::os(name))? else {
        return Ok(());
    };
    let key = (u64::from(st.st_dev), u64::from(st.st_ino));
    if !is_dir(&st) {
        fs::unlink_at(dir, fs::os(name))?;
        if st.st_nlink <= 1 {
            freed.push(key);
        }
        return Ok(());
    }
    let sub = fs::open_path_at(dir, fs::os(name))?;
    for ent in fs::read_dir(sub.as_fd())? {
        remove_tree_keys(sub.as_fd(), &ent.name, freed)?;
    }
    fs::rmdir_at(dir, fs::os(name))?;
    freed.push(key);
    Ok(())
}

fn time(sec: i64, nsec: u64) -> fs::Time {
    fs::Time {
        sec,
        nsec: u32::try_from(nsec).unwrap_or(0),
    }
}

/// Sets owner, mode, xattrs and times of `dir/name` from `src` (an
/// `O_PATH` handle) and its stat. xattrs the target cannot take
/// (`security.*` without privilege, a file system without user xattrs)
/// are skipped; the format's own markers are never copied.
pub(crate) fn copy_meta(
    markers: &Markers,
    src: BorrowedFd<'_>,
    st: &Stat,
    dir: BorrowedFd<'_>,
    name: &[u8],
) -> io::Result<()> {
    let os = fs::os(name);
    let kind = FileType::from_raw_mode(st.st_mode);
    match fs::lchown_at(dir, os, st.st_uid, st.st_gid) {
        Err(e) if errno(&e) == Some(Errno::PERM) && fs::euid() != 0 => {}
        r => r?,
    }
    let node = fs::open_path_at(dir, os)?;
    if kind != FileType::Symlink {
        fs::chmod_node(node.as_fd(), st.st_mode & 0o7777)?;
    }
    copy_xattrs(markers, src, node.as_fd())?;
    fs::lutimes_at(
        dir,
        os,
        time(i64::from(st.st_atime), u64::from(st.st_atime_nsec)),
        time(i64::from(st.st_mtime), u64::from(st.st_mtime_nsec)),
    )
}

fn copy_xattrs(markers: &Markers, src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    let names = match xattr::list(src, true) {
        Ok(n) => n,
        Err(e) if xattr::is_unsupported(&e) || errno(&e) == Some(Errno::PERM) => return Ok(()),
        Err(e) => return Err(e),
    };
    for n in names {
        if markers.is_private_xattr(&n) {
            continue;
        }
        let Some(v) = xattr::get(src, true, &n)? else {
            continue;
        };
        match xattr::set(dst, true, &n, &v) {
            Err(e)
                if xattr::is_unsupported(&e)
                    || matches!(errno(&e), Some(Errno::PERM | Errno::ACCESS | Errno::INVAL)) => {}
            r => r?,
        }
    }
    Ok(())
}

/// Copies a non-directory `src` (data, target or device number, then
/// metadata) to `dir/name`, which must not exist.
pub(crate) fn copy_node(
    markers: &Markers,
    src: &Layer,
    st: &Stat,
    dir: BorrowedFd<'_>,
    name: &[u8],
) -> io::Result<()> {
    let os = fs::os(name);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            let mut from = fs::reopen(src.fd(), libc::O_RDONLY)?;
            let mut to = fs::create_open_at(dir, os, libc::O_WRONLY, 0o600)?;
            io::copy(&mut from, &mut to)?;
        }
        FileType::Symlink => {
            let target = fs::readlink_at(src.fd(), fs::os(b""))?;
            fs::symlink_at(fs::os(&target), dir, os)?;
        }
        FileType::Directory => {
            return Err(io::Error::from_raw_os_error(Errno::ISDIR.raw_os_error()))
        }
        kind => fs::mknod_at(dir, os, kind, 0o600, u64::from(st.st_rdev))?,
    }
    copy_meta(markers, src.fd(), st, dir, name)
}

/// Copies the merged directory `layers` (with stat `st`), recursively, to
/// `dir/name`, which must not exist: what a directory rename does.
/// Hard links inside the tree become separate copies.
pub(crate) fn copy_tree(
    markers: &Markers,
    layers: &[Layer],
    st: &Stat,
    dir: BorrowedFd<'_>,
    name: &[u8],
) -> io::Result<()> {
    fs::mkdir_at(dir, fs::os(name), 0o700)?;
    let sub = fs::open_path_at(dir, fs::os(name))?;
    for ent in markers.list(layers)? {
        let Some(found) = markers.resolve(layers, &ent.name)? else {
            continue;
        };
        if is_dir(&found.stat) {
            copy_tree(markers, &found.layers, &found.stat, sub.as_fd(), &ent.name)?;
        } else {
            copy_node(
                markers,
                &found.layers[0],
                &found.stat,
                sub.as_fd(),
                &ent.name,
            )?;
        }
    }
    copy_meta(markers, layers[0].fd(), st, dir, name)
}
