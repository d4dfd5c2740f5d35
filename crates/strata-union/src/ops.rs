//! The FUSE requests. Each handler computes a `Result` and turns an error
//! into its errno reply: no request handler panics or leaves a request
//! unanswered.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    Errno, FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use strata_sys::{fs, FileType};

use crate::fs::{attr_of, fuse_kind, io_err, name_bytes, Handle, Union, R, TTL};
use crate::namespace::Make;
use crate::node_ops::SetAttr;
use crate::options::WhiteoutFormat;

const GEN: Generation = Generation(0);

impl Union {
    fn do_lookup(&self, parent: u64, name: &OsStr) -> R<FileAttr> {
        let name = name_bytes(name)?;
        let _ns = self.read_ns();
        let p = self.dir_node(parent)?;
        let found = self.resolve(&p, name)?.ok_or(Errno::ENOENT)?;
        let st = found.stat;
        let ino = self.register(parent, name, found);
        let node = self.node(ino)?;
        let st = fs::fstat(node.layers[0].fd()).unwrap_or(st);
        Ok(attr_of(ino, &st, Some(&node)))
    }
}

fn reply_xattr(r: R<Vec<u8>>, size: u32, reply: ReplyXattr) {
    match r {
        Ok(v) if size == 0 => reply.size(u32::try_from(v.len()).unwrap_or(u32::MAX)),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(e),
    }
}

fn reply_entry(r: R<FileAttr>, reply: ReplyEntry) {
    match r {
        Ok(a) => reply.entry(&TTL, &a, GEN),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(r: R<()>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for Union {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Passthrough needs the kernel's support (6.9+), a stacking depth
        // of 1 (branches on a plain file system) and CAP_SYS_ADMIN to
        // register backing files; without any of them, every open is
        // served through this process.
        self.passthrough = self.passthrough
            && strata_sys::fs::euid() == 0
            && config
                .add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH)
                .is_ok()
            && config.set_max_stack_depth(1).is_ok();
        // Lookups and listings of one directory may run together (the
        // namespace lock lets them), and symlink targets may be cached:
        // a symlink never changes, a new one is a new inode. Either is
        // skipped by a kernel without it.
        //
        // HANDLE_KILLPRIV_V2 is not asked for, although it would spare the
        // kernel's `security.capability` question before every write: the
        // kernel would then keep a dropped set-user-ID bit in its attribute
        // cache until the TTL ends (a write reply carries no mode), skip
        // fallocate's drop, and stop dropping the bits before passthrough
        // writes. The kernel drops set-ID bits and capabilities itself.
        for flag in [
            fuser::InitFlags::FUSE_PARALLEL_DIROPS,
            fuser::InitFlags::FUSE_CACHE_SYMLINKS,
        ] {
            let _ = config.add_capabilities(flag);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        if let Some(w) = &self.work {
            w.close();
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply_entry(self.do_lookup(parent.0, name), reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut t = self.table();
        if let Some(n) = t.nodes.get_mut(&ino.0) {
            n.nlookup = n.nlookup.saturating_sub(nlookup);
        }
        t.maybe_drop(ino.0);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = (|| {
            let node = self.node(ino.0)?;
            let st = match fh.map(|fh| self.file(fh)) {
                Some(Ok(f)) => fs::fstat(f.as_fd()),
                _ => fs::fstat(node.layers[0].fd()),
            }
            .map_err(io_err)?;
            Ok(attr_of(ino.0, &st, Some(&node)))
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            fh,
        };
        match self.do_setattr(ino.0, set) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = self
            .node(ino.0)
            .and_then(|n| fs::readlink_at(n.layers[0].fd(), fs::os(b"")).map_err(io_err));
        match r {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let kind = FileType::from_raw_mode(mode);
        let what = match kind {
            FileType::RegularFile => Make::File {
                mode: mode & !umask,
                flags: libc::O_WRONLY,
            },
            FileType::Directory | FileType::Symlink | FileType::Unknown => {
                return reply.error(Errno::EINVAL)
            }
            // A character device 0/0 is a whiteout in overlay format:
            // refused, as kernel overlayfs refuses it.
            FileType::CharacterDevice
                if rdev == 0 && self.markers.format == WhiteoutFormat::Overlay =>
            {
                return reply.error(Errno::EPERM)
            }
            kind => Make::Node {
                kind,
                mode: mode & !umask,
                rdev: u64::from(rdev),
            },
        };
        reply_entry(self.make(req, parent.0, name, what).map(|(a, _)| a), reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let what = Make::Dir {
            mode: mode & !umask,
        };
        reply_entry(self.make(req, parent.0, name, what).map(|(a, _)| a), reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.do_unlink(parent.0, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.do_unlink(parent.0, name, true), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let what = Make::Symlink { target };
        reply_entry(
            self.make(req, parent.0, link_name, what).map(|(a, _)| a),
            reply,
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            self.do_rename(parent.0, name, newparent.0, newname, flags),
            reply,
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply_entry(self.do_link(ino.0, newparent.0, newname), reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.do_open(ino.0, flags.0, reply);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        thread_local! {
            // One buffer per serving thread, kept between reads: a fresh
            // one per request (128 KiB or more) is an mmap, page faults
            // and an munmap each time.
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let file = match self.file(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        BUF.with_borrow_mut(|buf| {
            let size = size as usize;
            if buf.len() < size {
                buf.resize(size, 0);
            }
            let mut done = 0;
            while done < size {
                match file.read_at(&mut buf[done..size], offset + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return reply.error(io_err(e)),
                }
            }
            reply.data(&buf[..done]);
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = self
            .file(fh)
            .and_then(|f| f.write_all_at(data, offset).map_err(io_err));
        match r {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(e),
        }
    }

    /// Nothing to do on close (writes go straight to the backing file, and
    /// locks are the kernel's): `ENOSYS` tells the kernel so, and it sends
    /// no more flushes, saving a round trip on every close.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let passthrough = matches!(
            self.handles().remove(&fh.0),
            Some(Handle::File {
                passthrough: true,
                ..
            })
        );
        let mut t = self.table();
        if let Some(n) = t.nodes.get_mut(&ino.0) {
            n.open = n.open.saturating_sub(1);
            if passthrough {
                n.passthrough_opens = n.passthrough_opens.saturating_sub(1);
                if n.passthrough_opens == 0 {
                    // Closes the backing id once no open uses it.
                    n.backing = None;
                }
            }
        }
        t.maybe_drop(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.file(fh).and_then(|f| {
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
            .map_err(io_err)
        });
        reply_empty(r, reply);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = self
            .file(fh)
            .and_then(|f| fs::fallocate(f.as_fd(), mode, offset, length).map_err(io_err));
        reply_empty(r, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.do_opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.dir_entries(ino.0, fh, offset) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in entries.iter().enumerate().skip(start) {
            if reply.add(
                INodeNo(e.ino),
                (i + 1) as u64,
                fuse_kind(e.kind),
                OsStr::from_bytes(&e.name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match fs::statfs(self.roots[0].fd()) {
            Ok(s) => reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_available,
                s.files,
                s.files_free,
                u32::try_from(s.block_size).unwrap_or(4096),
                u32::try_from(s.name_max).unwrap_or(255),
                u32::try_from(s.fragment_size).unwrap_or(4096),
            ),
            Err(e) => reply.error(io_err(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply_empty(self.do_setxattr(ino.0, name, Some((value, flags))), reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply_xattr(self.do_getxattr(ino.0, name), size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply_xattr(self.do_listxattr(ino.0), size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.do_setxattr(ino.0, name, None), reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let what = Make::File {
            mode: mode & !umask,
            flags,
        };
        let r = self
            .make(req, parent.0, name, what)
            .and_then(|(attr, file)| {
                let file = file.ok_or(Errno::EIO)?;
                // A new file is in the writable branch: its creator's
                // writes (an untar's, say) pass through like any other
                // open of an upper file.
                let ino = attr.ino.0;
                let layer = self.node(ino)?.layers[0].clone();
                let backing = self.backing_for(ino, &layer, &file, |f| reply.open_backing(f));
                let fh = self.add_handle(Handle::File {
                    file: Arc::new(file),
                    passthrough: backing.is_some(),
                });
                Ok((attr, fh, backing))
            });
        match r {
            Ok((attr, fh, Some(b))) => {
                reply.created_passthrough(&TTL, &attr, GEN, FileHandle(fh), FopenFlags::empty(), &b)
            }
            Ok((attr, fh, None)) => {
                reply.created(&TTL, &attr, GEN, FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }
}
