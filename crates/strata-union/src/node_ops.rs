//! Requests on one node: open, setattr, directory listings, xattrs.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use fuser::{Errno, FileAttr, FileHandle, FopenFlags, ReplyOpen, TimeOrNow};
use strata_sys::{fs, xattr, FileType};

use crate::fs::{attr_of, io_err, DirEnt, Handle, Union, R, UPPER};
use crate::table::ROOT;

fn set_time(t: Option<TimeOrNow>) -> fs::SetTime {
    match t {
        None => fs::SetTime::Omit,
        Some(TimeOrNow::Now) => fs::SetTime::Now,
        Some(TimeOrNow::SpecificTime(t)) => {
            let (sec, nsec) = match t.duration_since(UNIX_EPOCH) {
                Ok(d) => (
                    i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    d.subsec_nanos(),
                ),
                Err(e) => (-i64::try_from(e.duration().as_secs()).unwrap_or(0), 0),
            };
            fs::SetTime::At(fs::Time { sec, nsec })
        }
    }
}

/// The flags a backing file is opened with: the access mode and the sync
/// flags. Never `O_APPEND` (writes come with their offsets) nor `O_CREAT`.
pub(crate) fn backing_flags(flags: i32) -> i32 {
    flags & (libc::O_ACCMODE | libc::O_SYNC | libc::O_DSYNC)
}

/// What a `setattr` asks to change (`None`: leave as it is), and the
/// handle it came through, if any.
pub(crate) struct SetAttr {
    pub(crate) mode: Option<u32>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) size: Option<u64>,
    pub(crate) atime: Option<TimeOrNow>,
    pub(crate) mtime: Option<TimeOrNow>,
    pub(crate) fh: Option<FileHandle>,
}

impl Union {
    pub(crate) fn do_setattr(&self, ino: u64, set: SetAttr) -> R<FileAttr> {
        if set.mode.is_none()
            && set.uid.is_none()
            && set.gid.is_none()
            && set.size.is_none()
            && set.atime.is_none()
            && set.mtime.is_none()
        {
            return self.attr(ino);
        }
        // A node already in the writable branch changes in place: the tree
        // does not, so lookups may go on meanwhile.
        let upper_now = {
            let _ns = self.read_ns();
            let n = self.node(ino)?;
            self.writable && (n.unlinked || n.layers[0].branch == UPPER)
        };
        let (_read, _write) = if upper_now {
            (Some(self.read_ns()), None)
        } else {
            (None, Some(self.write_ns()?))
        };
        let node = self.node(ino)?;
        let layer = if node.unlinked {
            node.layers[0].clone()
        } else {
            self.copy_up(ino)?
        };
        if layer.branch != UPPER {
            return Err(Errno::EROFS);
        }
        let fd = layer.fd();
        let kind = node.kind;
        if set.uid.is_some() || set.gid.is_some() {
            fs::chown_node(fd, set.uid, set.gid).map_err(io_err)?;
        }
        if let Some(mode) = set.mode {
            if kind != FileType::Symlink {
                fs::chmod_node(fd, mode & 0o7777).map_err(io_err)?;
            }
        }
        if let Some(size) = set.size {
            if kind == FileType::Directory {
                return Err(Errno::EISDIR);
            }
            let handle_file = set.fh.and_then(|fh| match self.handles().get(&fh.0) {
                Some(Handle::File { file, .. }) => Some(file.clone()),
                _ => None,
            });
            let r = match handle_file {
                Some(f) => match fs::ftruncate(f.as_fd(), size) {
                    Err(_) => {
                        fs::reopen(fd, libc::O_WRONLY).and_then(|f| fs::ftruncate(f.as_fd(), size))
                    }
                    ok => ok,
                },
                None => fs::reopen(fd, libc::O_WRONLY).and_then(|f| fs::ftruncate(f.as_fd(), size)),
            };
            r.map_err(io_err)?;
        }
        if set.atime.is_some() || set.mtime.is_some() {
            fs::set_times_node(fd, set_time(set.atime), set_time(set.mtime)).map_err(io_err)?;
        }
        let st = fs::fstat(fd).map_err(io_err)?;
        let node = self.node(ino)?;
        Ok(attr_of(ino, &st, Some(&node)))
    }

    /// Opens the node's backing file (copied up first when opened for
    /// writing), registers the handle and answers, through the kernel's
    /// passthrough when [`Union::backing_for`] allows it.
    pub(crate) fn do_open(&self, ino: u64, flags: i32, reply: ReplyOpen) {
        let r = (|| {
            let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
            let layer = {
                let _ns = self.read_ns();
                self.node(ino)?.layers[0].clone()
            };
            let layer = if write && !(self.writable && layer.branch == UPPER) {
                let _ns = self.write_ns()?;
                self.copy_up(ino)?
            } else {
                layer
            };
            let mut bflags = backing_flags(flags);
            if write && flags & libc::O_TRUNC != 0 {
                bflags |= libc::O_TRUNC;
            }
            let file = fs::reopen(layer.fd(), bflags).map_err(io_err)?;
            let backing = self.backing_for(ino, &layer, &file, |f| reply.open_backing(f));
            let fh = self.add_handle(Handle::File {
                file: Arc::new(file),
                passthrough: backing.is_some(),
            });
            let lower = !(self.writable && layer.branch == UPPER);
            Ok((fh, lower, backing))
        })();
        match r {
            Ok((fh, _, Some(b))) => {
                reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &b)
            }
            Ok((fh, lower, None)) => {
                // A lower file's content never changes under the union:
                // the kernel may keep its pages from one open to the next
                // (a warm re-read never reaches this process). A copy-up
                // has the same bytes, and after it the node is an upper
                // file, opened without the flag: the kernel drops its
                // pages at each such open, so what was written through a
                // passthrough open (which bypasses those pages) is read.
                let flags = if lower {
                    FopenFlags::FOPEN_KEEP_CACHE
                } else {
                    FopenFlags::empty()
                };
                reply.opened(FileHandle(fh), flags)
            }
            Err(e) => reply.error(e),
        }
    }

    pub(crate) fn file(&self, fh: FileHandle) -> R<Arc<File>> {
        match self.handles().get(&fh.0) {
            Some(Handle::File { file, .. }) => Ok(file.clone()),
            _ => Err(Errno::EBADF),
        }
    }

    /// The merged listing of directory `ino`, with `.` and `..` first.
    fn listing(&self, ino: u64) -> R<Vec<DirEnt>> {
        let _ns = self.read_ns();
        let node = self.dir_node(ino)?;
        let listed = self.markers.list(&node.layers).map_err(io_err)?;
        let mut entries = Vec::with_capacity(listed.len() + 2);
        entries.push(DirEnt {
            name: b".".to_vec(),
            kind: FileType::Directory,
            ino,
        });
        entries.push(DirEnt {
            name: b"..".to_vec(),
            kind: FileType::Directory,
            ino: if ino == ROOT { ROOT } else { node.parent },
        });
        let mut t = self.table();
        for l in listed {
            if self.markers.is_reserved(&l.name) {
                continue;
            }
            let ino = t.ino_for(l.key);
            entries.push(DirEnt {
                name: l.name,
                kind: l.kind,
                ino,
            });
        }
        Ok(entries)
    }

    pub(crate) fn do_opendir(&self, ino: u64) -> R<u64> {
        let entries = self.listing(ino)?;
        Ok(self.add_handle(Handle::Dir {
            entries: Arc::new(entries),
            fresh: true,
        }))
    }

    /// The listing a `readdir` at `offset` reads from: the one built on
    /// `opendir`, or a new one when the directory was rewound.
    pub(crate) fn dir_entries(&self, ino: u64, fh: FileHandle, offset: u64) -> R<Arc<Vec<DirEnt>>> {
        match self.handles().get_mut(&fh.0) {
            Some(Handle::Dir { entries, fresh }) if offset != 0 || *fresh => {
                *fresh = false;
                return Ok(entries.clone());
            }
            Some(Handle::Dir { .. }) => {}
            _ => return Err(Errno::EBADF),
        }
        let new = Arc::new(self.listing(ino)?);
        if let Some(Handle::Dir { entries, .. }) = self.handles().get_mut(&fh.0) {
            *entries = new.clone();
        }
        Ok(new)
    }

    pub(crate) fn do_getxattr(&self, ino: u64, name: &OsStr) -> R<Vec<u8>> {
        let name = name.as_bytes();
        if self.markers.is_private_xattr(name) {
            return Err(Errno::NO_XATTR);
        }
        let node = self.node(ino)?;
        match xattr::get(node.layers[0].fd(), true, name) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(Errno::NO_XATTR),
            Err(e) => Err(io_err(e)),
        }
    }

    pub(crate) fn do_listxattr(&self, ino: u64) -> R<Vec<u8>> {
        let node = self.node(ino)?;
        let names = xattr::list(node.layers[0].fd(), true).map_err(io_err)?;
        let mut out = Vec::new();
        for n in names {
            if !self.markers.is_private_xattr(&n) {
                out.extend_from_slice(&n);
                out.push(0);
            }
        }
        Ok(out)
    }

    pub(crate) fn do_setxattr(&self, ino: u64, name: &OsStr, value: Option<(&[u8], i32)>) -> R<()> {
        let name = name.as_bytes();
        if self.markers.is_private_xattr(name) {
            return Err(Errno::EPERM);
        }
        let _ns = self.write_ns()?;
        let layer = self.copy_up(ino)?;
        match value {
            Some((v, flags)) => xattr::set_node(layer.fd(), name, v, flags as u32),
            None => xattr::remove_node(layer.fd(), name),
        }
        .map_err(io_err)
    }
}
