//! Mounting and unmounting overlayfs (and, for volumes, plain mount(2)).
//!
//! Two ways to make an overlay mount:
//!
//! * the new mount API — fsopen(2), fsconfig(2) with one `lowerdir+` per
//!   layer (Linux ≥ 6.8), fsmount(2), move_mount(2) — which has no limit
//!   on the length of the option string, so stacks reach the kernel's own
//!   limit of 500 layers;
//! * mount(2) with one option string, limited to a page. Short relative
//!   layer names keep it small; they are resolved from a working directory,
//!   which mount(2) gets on a thread that has unshared its file-system
//!   context (`CLONE_FS`), so the process's working directory never moves.
//!
//! Kernel doc: <https://docs.kernel.org/filesystems/overlayfs.html>.
//!
//! # Safety
//!
//! `unshare(CLONE_FS)` is the one unsafe call: rustix marks `unshare`
//! unsafe because `CLONE_FILES` would split the file-descriptor table
//! under other threads' feet. `CLONE_FS` only detaches the calling thread's
//! root, working directory and umask, and it runs on a thread spawned for
//! that purpose that ends right after the mount.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MoveMountFlags, UnmountFlags,
};

/// What an overlay mount is made of. `lower` is topmost first.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub lower: Vec<PathBuf>,
    /// Data-only lower layers (`datadir+`, `::` in the option string):
    /// where a lower's metacopy files are redirected for their content.
    pub data: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    /// Further `key=value` or flag options (`index=off`, `userxattr`, ...).
    pub options: Vec<String>,
}

impl Overlay {
    /// The mount(2) option string, with the layer paths as given.
    pub fn data(&self) -> String {
        let lower: Vec<String> = self.lower.iter().map(|p| p.display().to_string()).collect();
        let mut lowerdir = lower.join(":");
        for d in &self.data {
            lowerdir.push_str(&format!("::{}", d.display()));
        }
        let mut parts = vec![format!("lowerdir={lowerdir}")];
        if let (Some(u), Some(w)) = (&self.upper, &self.work) {
            parts.push(format!("upperdir={}", u.display()));
            parts.push(format!("workdir={}", w.display()));
        }
        parts.extend(self.options.iter().cloned());
        parts.join(",")
    }
}

/// Mounts `ov` at `target` through fsopen/fsconfig, one `lowerdir+` per
/// layer. `ENOSYS` or `EINVAL` on `lowerdir+` means an older kernel: the
/// caller falls back to [`mount_overlay_legacy`].
pub fn mount_overlay_fsconfig(ov: &Overlay, target: &Path) -> io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    // "source" names the mount in /proc/self/mountinfo.
    fsconfig_set_string(fs.as_fd(), "source", "overlay")?;
    for l in &ov.lower {
        fsconfig_set_string(fs.as_fd(), "lowerdir+", l.as_path())?;
    }
    for d in &ov.data {
        fsconfig_set_string(fs.as_fd(), "datadir+", d.as_path())?;
    }
    if let (Some(u), Some(w)) = (&ov.upper, &ov.work) {
        fsconfig_set_string(fs.as_fd(), "upperdir", u.as_path())?;
        fsconfig_set_string(fs.as_fd(), "workdir", w.as_path())?;
    }
    for opt in &ov.options {
        match opt.split_once('=') {
            Some((k, v)) => fsconfig_set_string(fs.as_fd(), k, v)?,
            None => rustix::mount::fsconfig_set_flag(fs.as_fd(), opt.as_str())?,
        }
    }
    attach(fs.as_fd(), MountAttrFlags::empty(), target)
}

/// Creates the file system configured on `fs` and attaches it at
/// `target` with the mount attributes `attrs`.
fn attach(fs: std::os::fd::BorrowedFd<'_>, attrs: MountAttrFlags, target: &Path) -> io::Result<()> {
    fsconfig_create(fs)?;
    let mnt = fsmount(fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// Mounts the EROFS image in the regular file `image` at `target`,
/// read-only, straight from the file (Linux ≥ 6.12: no loop device):
/// fsopen("erofs") with the file as its `source`.
pub fn mount_erofs_file(image: &Path, target: &Path) -> io::Result<()> {
    let fs = fsopen("erofs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(fs.as_fd(), "source", image)?;
    rustix::mount::fsconfig_set_flag(fs.as_fd(), "ro")?;
    attach(fs.as_fd(), MountAttrFlags::MOUNT_ATTR_RDONLY, target)
}

/// Mounts with mount(2) and the option string `data`, whose relative
/// paths are resolved from `cwd`. Fails with `E2BIG`-like `EINVAL` from
/// the kernel when the string is longer than a page.
pub fn mount_overlay_legacy(data: &str, cwd: &Path, target: &Path) -> io::Result<()> {
    let data =
        std::ffi::CString::new(data).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let cwd = cwd.to_owned();
    let target = target.to_owned();
    std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: CLONE_FS only (not CLONE_FILES): this thread gets its own
        // working directory; no file descriptor table is split. See the
        // module's Safety section.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS)? };
        rustix::process::chdir(&cwd)?;
        rustix::mount::mount(
            "overlay",
            &target,
            "overlay",
            MountFlags::empty(),
            data.as_c_str(),
        )?;
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("the mount thread panicked"))?
}

/// Flags for [`mount_fs`] (`MS_*`), as mount(2) takes them.
pub use rustix::mount::MountFlags;

/// mount(2) of a file system: `fstype` from `source` at `target`, with
/// `flags` and the file-system option string `data`. With
/// [`MountFlags::BIND`], `source` is a directory and `fstype` and `data`
/// are ignored. <https://man7.org/linux/man-pages/man2/mount.2.html>
pub fn mount_fs(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MountFlags,
    data: &str,
) -> io::Result<()> {
    let data =
        std::ffi::CString::new(data).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::mount::mount(
        source,
        target,
        fstype,
        flags,
        data.as_c_str(),
    )?)
}

/// mount(2) with `MS_REMOUNT`: changes the flags of the mount at
/// `target` (with [`MountFlags::BIND`], of that bind mount only, which is
/// how a bind mount is made read-only).
pub fn remount(target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
    Ok(rustix::mount::mount_remount(target, flags, data)?)
}

/// `umount2(target, 0)`; with `detach`, `MNT_DETACH` (lazy) when busy.
pub fn unmount(target: &Path, detach: bool) -> io::Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Err(rustix::io::Errno::BUSY) if detach => {
            Ok(rustix::mount::unmount(target, UnmountFlags::DETACH)?)
        }
        r => Ok(r?),
    }
}

/// Whether `path` is a mount point (the root of a mount, bind mounts
/// included): statx's `STATX_ATTR_MOUNT_ROOT`, or /proc/self/mountinfo
/// on kernels older than 5.8.
pub fn is_mountpoint(path: &Path) -> io::Result<bool> {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags, CWD};
    // statx's STATX_ATTR_MOUNT_ROOT (Linux 5.8) answers in O(1); the mount
    // table grows with every container, and reading it is not free.
    match rustix::fs::statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            return Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
        }
        Ok(_) => {}
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let want = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp) == want.as_os_str().as_encoded_bytes())
    }))
}

/// Mount points at or below `dir`, deepest first (the order to unmount
/// them in).
pub fn mounts_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = std::fs::canonicalize(dir)?;
    let prefix = dir.as_os_str().as_encoded_bytes().to_vec();
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|mp| {
            mp == &prefix || (mp.starts_with(&prefix) && mp.get(prefix.len()) == Some(&b'/'))
        })
        .map(|mp| PathBuf::from(crate::fs::os(&mp).to_owned()))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    out.dedup();
    Ok(out)
}

/// The file-system type (`overlay`, `fuse.strata-union`, ...) of the
/// mount whose mount point is `path`, the topmost when several are
/// stacked there; `None` when `path` is not a mount point.
pub fn mount_type(path: &Path) -> io::Result<Option<String>> {
    let want = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let want = want.as_os_str().as_encoded_bytes();
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - TYPE SOURCE SUPER
    Ok(info
        .lines()
        .rev()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let mp = head.split(' ').nth(4)?;
            (unescape_mountinfo(mp) == want)
                .then(|| tail.split(' ').next().unwrap_or("").to_owned())
        })
        .next())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Whether this process runs in a user namespace other than the initial
/// one (where overlay needs `userxattr` and `user.overlay.*` markers).
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => !map.split_whitespace().eq(["0", "0", "4294967295"]),
        Err(_) => false,
    }
}

/// Mounts a FUSE file system the way unprivileged processes must: runs
/// the setuid `fusermount3 -o OPTIONS -- MOUNTPOINT`, which opens
/// `/dev/fuse`, mounts it and hands the open device back over a socket
/// (libfuse's `_FUSE_COMMFD` protocol). Returns the device, to serve the
/// mount on; `fusermount3 -u` unmounts it.
pub fn fuse_mount_fusermount(mountpoint: &Path, options: &str) -> io::Result<std::os::fd::OwnedFd> {
    use std::io::IoSliceMut;
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;

    use rustix::io::FdFlags;
    use rustix::net::{
        recvmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
        SocketFlags, SocketType,
    };

    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    // fusermount3 inherits its end (and only that one).
    rustix::io::fcntl_setfd(&theirs, FdFlags::empty())?;
    let output = std::process::Command::new("fusermount3")
        .arg("-o")
        .arg(options)
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", theirs.as_raw_fd().to_string())
        .stdin(std::process::Stdio::null())
        .output();
    drop(theirs);
    let output = output.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("running fusermount3 (Debian package fuse3): {e}"),
        )
    })?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "fusermount3: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    recvmsg(
        &ours,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(io::Error::other(
        "fusermount3 mounted but sent no /dev/fuse descriptor",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), b"/a b\\c");
        assert_eq!(unescape_mountinfo("/plain"), b"/plain");
    }

    #[test]
    fn overlay_data_lists_lowers_topmost_first() {
        let ov = Overlay {
            lower: vec!["l/B".into(), "l/A".into()],
            data: Vec::new(),
            upper: Some("u".into()),
            work: Some("w".into()),
            options: vec!["index=off".into()],
        };
        assert_eq!(ov.data(), "lowerdir=l/B:l/A,upperdir=u,workdir=w,index=off");
    }
}
