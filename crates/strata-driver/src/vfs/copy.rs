//! Copying a layer tree with everything a layer carries: every file type,
//! owner, mode (set-id and sticky bits too), times, xattrs, and hard links
//! kept together. File data is shared with FICLONE where the file system
//! can, copied in the kernel with copy_file_range otherwise. Every call
//! works on directory handles and never follows a symlink.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use strata_sys::fs::{self, Time};
use strata_sys::{xattr, Errno, FileType, Stat};

/// Copies the tree at `from` to the new directory `to`.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let src = fs::open_dir(from)?;
    let st = fs::fstat(src.as_fd())?;
    std::fs::create_dir(to)?;
    let dst = fs::open_dir(to)?;
    let mut c = Copier {
        links: HashMap::new(),
        reflink: true,
        dst_root: fs::open_dir(to)?,
    };
    c.dir(src.as_fd(), dst.as_fd(), &mut Vec::new())?;
    attrs_fd(src.as_fd(), dst.as_fd(), &st, false)?;
    Ok(())
}

struct Copier {
    /// Copied multiply-linked inodes: source (dev, ino) -> path in the copy.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Cleared after the first FICLONE refusal, to stop asking.
    reflink: bool,
    dst_root: OwnedFd,
}

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

impl Copier {
    fn dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        path: &mut Vec<u8>,
    ) -> io::Result<()> {
        for e in fs::read_dir(src)? {
            let name = fs::os(&e.name);
            let Some(st) = fs::lstat_at(src, name)? else {
                continue;
            };
            let len = path.len();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&e.name);
            self.entry(src, dst, &e.name, &st, path)?;
            path.truncate(len);
        }
        Ok(())
    }

    fn entry(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &[u8],
        st: &Stat,
        path: &[u8],
    ) -> io::Result<()> {
        let n = fs::os(name);
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                return fs::link_at(self.dst_root.as_fd(), fs::os(first), dst, n);
            }
            self.links.insert(key, path.to_vec());
        }
        match kind {
            FileType::Directory => {
                fs::mkdir_at(dst, n, 0o700)?;
                let s = fs::open_dir_at(src, n)?;
                let d = fs::open_dir_at(dst, n)?;
                self.dir(s.as_fd(), d.as_fd(), &mut path.to_vec())?;
                attrs_fd(s.as_fd(), d.as_fd(), st, false)
            }
            FileType::RegularFile => {
                let s = fs::open_file_at(src, n)?;
                let d = fs::create_file_at(dst, n, 0o600)?;
                self.data(&s, &d, st.st_size as u64)?;
                attrs_fd(s.as_fd(), d.as_fd(), st, false)
            }
            FileType::Symlink => {
                let target = fs::readlink_at(src, n)?;
                fs::symlink_at(fs::os(&target), dst, n)?;
                node_attrs(src, dst, name, st)
            }
            FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
                fs::mknod_at(dst, n, kind, 0o600, st.st_rdev)?;
                node_attrs(src, dst, name, st)
            }
            // Sockets belong to the process that bound them.
            _ => Ok(()),
        }
    }

    fn data(&mut self, s: &File, d: &File, size: u64) -> io::Result<()> {
        if self.reflink {
            match fs::reflink(s.as_fd(), d.as_fd()) {
                Ok(()) => return Ok(()),
                Err(e)
                    if matches!(
                        errno(&e),
                        Some(Errno::OPNOTSUPP)
                            | Some(Errno::XDEV)
                            | Some(Errno::INVAL)
                            | Some(Errno::NOTTY)
                    ) =>
                {
                    self.reflink = false;
                }
                Err(e) => return Err(e),
            }
        }
        let mut left = size;
        while left > 0 {
            let n = fs::copy_range(s.as_fd(), d.as_fd(), left)?;
            if n == 0 {
                break;
            }
            left -= n;
        }
        Ok(())
    }
}

/// Owner, then mode (chown clears set-id bits), xattrs, times, through
/// handles (directories and regular files).
fn attrs_fd(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, st: &Stat, o_path: bool) -> io::Result<()> {
    fs::fchown(dst, st.st_uid, st.st_gid)?;
    fs::fchmod(dst, st.st_mode)?;
    for name in xattr::list(src, o_path)? {
        if let Some(v) = xattr::get(src, o_path, &name)? {
            xattr::set(dst, o_path, &name, &v)?;
        }
    }
    fs::futimes(
        dst,
        time(st.st_atime, st.st_atime_nsec),
        time(st.st_mtime, st.st_mtime_nsec),
    )
}

/// The same for symlinks and special files, by name, never following.
fn node_attrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, name: &[u8], st: &Stat) -> io::Result<()> {
    let n = fs::os(name);
    fs::lchown_at(dst, n, st.st_uid, st.st_gid)?;
    let node = fs::open_path_at(dst, n)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        fs::chmod_node(node.as_fd(), st.st_mode)?;
    }
    for (k, v) in xattr::all_at(src, name)? {
        xattr::set(node.as_fd(), true, &k, &v)?;
    }
    fs::lutimes_at(
        dst,
        n,
        time(st.st_atime, st.st_atime_nsec),
        time(st.st_mtime, st.st_mtime_nsec),
    )
}

fn time(sec: i64, nsec: u64) -> Time {
    Time {
        sec,
        nsec: nsec as u32,
    }
}
