//! File-system calls relative to directory handles, never following a
//! symlink in the final component unless the name says so.
//!
//! Man pages: openat(2), mkdirat(2), mknodat(2), symlinkat(2), linkat(2),
//! unlinkat(2), fstatat(2), readlinkat(2), fchownat(2), utimensat(2),
//! openat2(2).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps, CWD};
use rustix::process::{Gid, Uid};

/// `open(path, O_DIRECTORY)`: opens a directory the caller names by path
/// (a store root, a layer root). Symlinks in `path` are followed: the caller
/// chose it.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `open(path, O_RDONLY|O_NOFOLLOW|O_NONBLOCK)`: a file whose last
/// component must not be a symlink (`ELOOP`), opened without blocking on
/// a fifo planted in its place (the caller checks the type with `fstat`).
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// `openat(dir, name, O_DIRECTORY|O_NOFOLLOW)`: a child directory, refusing
/// a symlink (`ELOOP`/`ENOTDIR`).
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `openat(dir, name, O_PATH|O_NOFOLLOW)`: a handle on the node itself,
/// whatever its type, usable with [`proc_path`].
pub fn open_path_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `openat(dir, name, O_RDONLY|O_NOFOLLOW)`: reads a regular file.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// `openat2(dir, path, O_RDONLY, RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS)`:
/// reads a file named by a relative path that may cross symlinks, as long
/// as every step stays under `dir` (`EXDEV` when one would leave it).
pub fn open_beneath(dir: BorrowedFd<'_>, path: &Path) -> io::Result<File> {
    let fd = openat2(
        dir,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        ResolveFlags::BENEATH,
    )?;
    Ok(File::from(fd))
}

/// `openat2(dir, path, flags, resolve|RESOLVE_NO_MAGICLINKS)`, again
/// while it says `EAGAIN`: with `RESOLVE_BENEATH` or `RESOLVE_IN_ROOT`,
/// the kernel gives up on a path through `..` when a rename or a mount
/// happened anywhere on the system meanwhile, and asks the caller to
/// retry (openat2(2)). A busy machine makes that common; it is not
/// refused. Bounded, so a machine renaming without pause still answers.
fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    resolve: ResolveFlags,
) -> io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            dir,
            path,
            flags,
            Mode::empty(),
            resolve | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(rustix::io::Errno::AGAIN) if tries < 1000 => tries += 1,
            other => return Ok(other?),
        }
    }
}

/// [`open_beneath`] for a file that must be a regular one: `openat2` with
/// `O_PATH`, then [`read_regular_node`]; `InvalidInput` for anything
/// else. Opening is what blocks on a fifo and what has effects on a device
/// (a watchdog arms, a tape rewinds), so a node planted at `path` is never
/// opened.
pub fn open_regular_beneath(dir: BorrowedFd<'_>, path: &Path) -> io::Result<File> {
    let node = openat2(
        dir,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        ResolveFlags::BENEATH,
    )?;
    Ok(read_regular_node(node.as_fd(), None)?.0)
}

/// `openat(dir, name, O_PATH|O_NOFOLLOW)`, then [`read_regular_node`]:
/// reads a file in a tree that someone else may be changing (a running
/// container's). A device, fifo, socket or symlink swapped in at `name` is
/// never opened — only its `O_PATH` handle is `fstat`ed — so its content
/// is never read and a fifo cannot block the reader. With `expect`, the
/// node must also be the inode (`st_dev`, `st_ino`) an earlier `lstat`
/// saw. Returns the file and its `fstat`.
pub fn open_regular_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    expect: Option<&Stat>,
) -> io::Result<(File, Stat)> {
    let node = open_path_at(dir, name)?;
    read_regular_node(node.as_fd(), expect)
}

/// `fstat` of an `O_PATH` handle, and only when it is a regular file (and
/// the inode `expect` names, if given) a reopen for reading through
/// [`proc_path`]: the node held is the one opened, whatever happens to
/// its name meanwhile. `InvalidInput` otherwise, saying which.
fn read_regular_node(node: BorrowedFd<'_>, expect: Option<&Stat>) -> io::Result<(File, Stat)> {
    let st = fstat(node)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if expect.is_some_and(|e| (e.st_dev, e.st_ino) != (st.st_dev, st.st_ino)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "replaced by another file while it was read",
        ));
    }
    let fd = rustix::fs::open(
        proc_path(node),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    Ok((File::from(fd), st))
}

/// `openat(dir, name, O_CREAT|O_EXCL|O_WRONLY|O_NOFOLLOW)`: a new regular
/// file; fails if anything (even a dangling symlink) has the name.
pub fn create_file_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode & 0o777),
    )?;
    Ok(File::from(fd))
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::mkdirat(
        dir,
        name,
        Mode::from_raw_mode(mode & 0o777),
    )?)
}

/// `mknodat(dir, name, type|mode, dev)`: fifos, character and block devices.
pub fn mknod_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    kind: FileType,
    mode: u32,
    dev: u64,
) -> io::Result<()> {
    Ok(rustix::fs::mknodat(
        dir,
        name,
        kind,
        Mode::from_raw_mode(mode & 0o777),
        dev,
    )?)
}

/// `symlinkat(target, dir, name)`: the target is stored verbatim.
pub fn symlink_at(target: &OsStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(target, dir, name)?)
}

/// `linkat(old_dir, old_name, new_dir, new_name, 0)`: never follows a
/// symlink at `old_name` (a hard link to a symlink links the symlink).
pub fn link_at(
    old_dir: BorrowedFd<'_>,
    old_name: &OsStr,
    new_dir: BorrowedFd<'_>,
    new_name: &OsStr,
) -> io::Result<()> {
    Ok(rustix::fs::linkat(
        old_dir,
        old_name,
        new_dir,
        new_name,
        AtFlags::empty(),
    )?)
}

/// `readlinkat(dir, name)`: the raw target bytes.
pub fn readlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Vec<u8>> {
    Ok(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

/// `unlinkat(dir, name, 0)`: removes a non-directory.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// `unlinkat(dir, name, AT_REMOVEDIR)`: removes an empty directory.
pub fn rmdir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`, with `None` for a missing name.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `fstat(fd)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`.
pub fn lchown_at(dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    Ok(rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// `fchown(fd, uid, gid)`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    Ok(rustix::fs::fchown(
        fd,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
    )?)
}

/// `fchmod(fd, mode)`, with the set-id and sticky bits.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777))?)
}

/// `chmod("/proc/self/fd/N")` on an `O_PATH` handle: changes the mode of a
/// node that cannot be opened for I/O (fifo, device) without following a
/// symlink at its name. Refuses a symlink (`ELOOP`): the kernel has no mode
/// for those.
pub fn chmod_node(node: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    if FileType::from_raw_mode(fstat(node)?.st_mode) == FileType::Symlink {
        return Err(io::Error::from_raw_os_error(
            rustix::io::Errno::LOOP.raw_os_error(),
        ));
    }
    Ok(rustix::fs::chmodat(
        CWD,
        proc_path(node),
        Mode::from_raw_mode(mode & 0o7777),
        AtFlags::empty(),
    )?)
}

/// The `/proc/self/fd/N` magic link of a handle: the kernel resolves it to
/// exactly the node the handle holds, never through a symlink at its name.
pub fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    pub sec: i64,
    pub nsec: u32,
}

fn timestamps(atime: Time, mtime: Time) -> Timestamps {
    let ts = |t: Time| Timespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec.into(),
    };
    Timestamps {
        last_access: ts(atime),
        last_modification: ts(mtime),
    }
}

/// `utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW)`.
pub fn lutimes_at(dir: BorrowedFd<'_>, name: &OsStr, atime: Time, mtime: Time) -> io::Result<()> {
    Ok(rustix::fs::utimensat(
        dir,
        name,
        &timestamps(atime, mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// `futimens(fd, times)`.
pub fn futimes(fd: BorrowedFd<'_>, atime: Time, mtime: Time) -> io::Result<()> {
    Ok(rustix::fs::futimens(fd, &timestamps(atime, mtime))?)
}

/// `ftruncate(fd, len)`.
pub fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len)?)
}

/// `open(path, O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW|O_NONBLOCK, 0600)`,
/// then `data` written: a file (re)written in place, never through a
/// symlink at its name, nor waiting on a fifo planted there; anything
/// but a regular file at the name is refused. Not flushed.
pub fn write_nofollow(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    File::from(open_to_write(path, OFlags::TRUNC)?).write_all(data)
}

/// `open(path, O_WRONLY|O_CREAT|O_NOFOLLOW|O_NONBLOCK, 0600)`, then
/// `data` written at offset 0 in one `pwrite`, without truncating: a
/// record of fixed width is replaced in place (no new inode, no rename),
/// and a reader never sees it empty. As [`write_nofollow`], never
/// through a symlink or a fifo; not flushed.
pub fn overwrite_nofollow(path: &Path, data: &[u8]) -> io::Result<()> {
    let fd = open_to_write(path, OFlags::empty())?;
    if rustix::io::pwrite(&fd, data, 0)? != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("{}: short write", path.display()),
        ));
    }
    Ok(())
}

/// `path` opened write-only (made 0600 when missing) with `extra` flags,
/// not following a symlink nor blocking on a fifo: a regular file, or
/// refused.
fn open_to_write(path: &Path, extra: OFlags) -> io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC
            | extra,
        Mode::from_raw_mode(0o600),
    )?;
    if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(fd)
}

/// `posix_fadvise(fd, offset, len, POSIX_FADV_DONTNEED)`: drops the
/// file's clean cached pages in the range (dirty ones are only queued
/// for writeback). A hint: the kernel may keep some.
pub fn drop_cached(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    let len = std::num::NonZeroU64::new(len);
    Ok(rustix::fs::fadvise(
        fd,
        offset,
        len,
        rustix::fs::Advice::DontNeed,
    )?)
}

/// `syncfs(fd)`: flushes the whole file system holding `fd`.
pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::syncfs(fd)?)
}

/// One directory entry: its name and the type `getdents64` reported
/// (`Unknown` on file systems without d_type).
pub struct DirEntry {
    pub name: Vec<u8>,
    pub kind: FileType,
}

/// `getdents64` over a directory handle, without `.` and `..`, in the
/// order the file system returns them.
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEntry>> {
    Ok(read_dir_ino(dir)?
        .into_iter()
        .map(|e| DirEntry {
            name: e.name,
            kind: e.kind,
        })
        .collect())
}

/// `statfs(fd).f_type`: the magic number of the file system holding `fd`.
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    Ok(rustix::fs::fstatfs(fd)?.f_type as i64)
}

/// The effective group id of this process.
pub fn egid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// This process's umask, read from /proc (reading it with umask(2) would
/// mean changing it, under other threads' feet) once: nothing here
/// changes it; `None` when unknown.
pub fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line.split_whitespace().nth(1)?, 8).ok()
    })
}

/// Whether a file or directory made with `mode` gets all of its
/// permission bits: the umask is known and takes none of them.
pub fn umask_keeps(mode: u32) -> bool {
    umask().is_some_and(|u| mode & u == 0)
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The kernel's `dev_t` for a device number; `None` when out of range
/// (majors have 12 bits, minors 20, in the kernel's `MKDEV`).
pub fn makedev(major: u32, minor: u32) -> Option<u64> {
    (major < (1 << 12) && minor < (1 << 20)).then(|| rustix::fs::makedev(major, minor))
}

/// Major and minor of a `dev_t`.
pub fn major_minor(dev: u64) -> (u32, u32) {
    (rustix::fs::major(dev), rustix::fs::minor(dev))
}

/// `OsStr` from raw bytes: Linux names are bytes, not UTF-8.
pub fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// `ioctl(dst, FICLONE, src)`: shares the extents of `src` with `dst` on
/// file systems that can (btrfs, XFS); `EOPNOTSUPP`/`EXDEV`/`EINVAL`
/// elsewhere.
pub fn reflink(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::ioctl_ficlone(dst, src)?)
}

/// `copy_file_range(src, dst, len)` from both files' current offsets:
/// in-kernel copy, no user-space buffer. Returns bytes copied (0 at EOF).
pub fn copy_range(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, len: u64) -> io::Result<u64> {
    let n = rustix::fs::copy_file_range(src, None, dst, None, len.min(1 << 30) as usize)?;
    Ok(n as u64)
}

/// `flock(fd, LOCK_EX)`: blocks until this process holds the lock alone.
pub fn lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::flock(
        fd,
        rustix::fs::FlockOperation::LockExclusive,
    )?)
}

/// `flock(fd, LOCK_SH)`: blocks until no process holds the lock alone.
pub fn lock_shared(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::flock(
        fd,
        rustix::fs::FlockOperation::LockShared,
    )?)
}

/// `flock(fd, LOCK_EX|LOCK_NB)`: true when this process now holds the
/// lock, false when another holds it.
pub fn try_lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    match rustix::fs::flock(fd, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `getrandom(buf, 0)`.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        done += rustix::rand::getrandom(&mut buf[done..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(())
}

/// `openat2(dir, path, O_PATH, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)` and
/// `fstat`: what `path` is when `dir` is taken as `/` (absolute symlinks
/// and `..` stay inside), as a process chrooted there would see it.
pub fn stat_in_root(dir: BorrowedFd<'_>, path: &Path) -> io::Result<Stat> {
    let fd = openat2(
        dir,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        ResolveFlags::IN_ROOT,
    )?;
    Ok(rustix::fs::fstat(&fd)?)
}

/// `open("/proc/self/fd/N", flags)`: a new open file description on the
/// node an `O_PATH` handle holds (see [`proc_path`]), with the raw
/// `open(2)` flags given (`O_CREAT`, `O_EXCL` and `O_NOFOLLOW` are
/// dropped: the node exists and is the one meant). A path of a few bytes,
/// however deep the node is.
pub fn reopen(node: BorrowedFd<'_>, flags: i32) -> io::Result<File> {
    let flags = OFlags::from_bits_retain(flags as u32)
        & !(OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::PATH);
    let fd = rustix::fs::open(
        proc_path(node),
        flags | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// `openat(dir, name, flags|O_CREAT|O_EXCL|O_NOFOLLOW, mode)`: a new
/// regular file opened with the raw `open(2)` access flags given.
pub fn create_open_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: i32,
    mode: u32,
) -> io::Result<File> {
    let flags = OFlags::from_bits_retain(flags as u32)
        & !(OFlags::PATH | OFlags::DIRECTORY | OFlags::TRUNC);
    let fd = rustix::fs::openat(
        dir,
        name,
        flags | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::from_raw_mode(mode & 0o7777),
    )?;
    Ok(File::from(fd))
}

/// `renameat2(old_dir, old_name, new_dir, new_name, flags)` with the raw
/// `RENAME_*` flags.
pub fn rename_at(
    old_dir: BorrowedFd<'_>,
    old_name: &OsStr,
    new_dir: BorrowedFd<'_>,
    new_name: &OsStr,
    flags: u32,
) -> io::Result<()> {
    Ok(rustix::fs::renameat_with(
        old_dir,
        old_name,
        new_dir,
        new_name,
        rustix::fs::RenameFlags::from_bits_retain(flags),
    )?)
}

/// `linkat(AT_FDCWD, "/proc/self/fd/N", new_dir, new_name,
/// AT_SYMLINK_FOLLOW)`: a new name for the node an `O_PATH` handle holds
/// (a symlink included: the magic link resolves to the handle's node).
pub fn link_node(
    node: BorrowedFd<'_>,
    new_dir: BorrowedFd<'_>,
    new_name: &OsStr,
) -> io::Result<()> {
    Ok(rustix::fs::linkat(
        CWD,
        proc_path(node),
        new_dir,
        new_name,
        AtFlags::SYMLINK_FOLLOW,
    )?)
}

/// `fchownat(node, "", uid, gid, AT_EMPTY_PATH)`: changes the owner of the
/// node an `O_PATH` handle holds (a symlink included); `None` keeps one.
pub fn chown_node(node: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    Ok(rustix::fs::chownat(
        node,
        "",
        uid.map(Uid::from_raw),
        gid.map(Gid::from_raw),
        AtFlags::EMPTY_PATH,
    )?)
}

/// A time to set with [`set_times_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// Leave it (`UTIME_OMIT`).
    Omit,
    /// The current time (`UTIME_NOW`).
    Now,
    /// This time.
    At(Time),
}

/// `utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW)` with `UTIME_OMIT`
/// and `UTIME_NOW`.
pub fn set_times_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    atime: SetTime,
    mtime: SetTime,
) -> io::Result<()> {
    set_times_flags(dir, name, atime, mtime, AtFlags::SYMLINK_NOFOLLOW)
}

fn set_times_flags(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    atime: SetTime,
    mtime: SetTime,
    flags: AtFlags,
) -> io::Result<()> {
    let ts = |t: SetTime| match t {
        SetTime::Omit => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        SetTime::Now => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        SetTime::At(t) => Timespec {
            tv_sec: t.sec,
            tv_nsec: t.nsec.into(),
        },
    };
    let times = Timestamps {
        last_access: ts(atime),
        last_modification: ts(mtime),
    };
    Ok(rustix::fs::utimensat(dir, name, &times, flags)?)
}

/// What [`statfs`] reports: `fstatvfs(2)`'s numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
    pub block_size: u64,
    pub fragment_size: u64,
    pub name_max: u64,
}

/// `fstatvfs(fd)`: sizes and free space of the file system holding `fd`.
pub fn statfs(fd: BorrowedFd<'_>) -> io::Result<FsStats> {
    let s = rustix::fs::fstatvfs(fd)?;
    Ok(FsStats {
        blocks: s.f_blocks,
        blocks_free: s.f_bfree,
        blocks_available: s.f_bavail,
        files: s.f_files,
        files_free: s.f_ffree,
        block_size: s.f_bsize,
        fragment_size: s.f_frsize,
        name_max: s.f_namemax,
    })
}

/// One directory entry with its inode number (`d_ino`).
pub struct DirEntryIno {
    pub name: Vec<u8>,
    pub kind: FileType,
    pub ino: u64,
}

/// [`read_dir`] with each entry's `d_ino`.
pub fn read_dir_ino(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEntryIno>> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut it = rustix::fs::Dir::new(fd)?;
    let mut out = Vec::new();
    while let Some(ent) = it.read() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push(DirEntryIno {
            name: name.to_vec(),
            kind: ent.file_type(),
            ino: ent.ino(),
        });
    }
    Ok(out)
}

/// `fallocate(fd, mode, offset, len)` with the raw `FALLOC_FL_*` mode.
pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    Ok(rustix::fs::fallocate(
        fd,
        rustix::fs::FallocateFlags::from_bits_retain(mode as u32),
        offset,
        len,
    )?)
}

/// `utimensat(node, "", times, AT_EMPTY_PATH)` with `UTIME_OMIT` and
/// `UTIME_NOW`: the times of the node an `O_PATH` handle holds (a symlink
/// included), whatever its names.
pub fn set_times_node(node: BorrowedFd<'_>, atime: SetTime, mtime: SetTime) -> io::Result<()> {
    set_times_flags(node, OsStr::new(""), atime, mtime, AtFlags::EMPTY_PATH)
}
