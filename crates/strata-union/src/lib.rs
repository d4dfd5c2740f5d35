//! strata's userspace union file system: aufs-style branches with
//! overlayfs semantics, served over FUSE (the `fuser` crate; no libfuse:
//! root mounts with mount(2), others through the setuid `fusermount3`).
//! It backs the `fuse` driver and `strata union-mount`, for machines
//! without kernel overlayfs or without the privilege to mount it.
//!
//! ```text
//! mountpoint (fuse.strata-union)
//!   = branch 0 (writable, "upper")   new files, copies, whiteouts
//!   + branch 1 (read-only)           lookups go top-down: the first
//!   + ...                            branch with the name wins
//! ```
//!
//! # Semantics (overlayfs's)
//!
//! - **Lookup** goes top-down; the first branch with the name wins. A
//!   whiteout hides the name in the branches below it; an opaque directory
//!   hides the content of lower directories of its name; a non-directory
//!   hides lower directories of its name.
//! - **readdir** merges the branches, upper first, each name once, without
//!   whiteouts, the names they hide, the format's private names (the aufs
//!   staging dir `.wh..wh.orph` among them) or the branches' own `.` and
//!   `..` (the union adds its own). The listing is built on `opendir` and
//!   kept in the handle, so offsets are stable across calls; reading again
//!   from offset 0 (`rewinddir`) builds it anew.
//! - **Copy-up**: the first change to a lower entry (open for writing,
//!   truncate, chmod, chown, utimens, setxattr, removexattr, link, rename)
//!   copies it — data, owner, mode, xattrs, times — to the writable branch,
//!   its missing parents first (with their own metadata). Every copy and
//!   every new entry is built in the work dir and renamed into place, so
//!   nothing half-made is ever visible.
//! - **Removal** (unlink, rmdir) deletes the upper entry and leaves a
//!   whiteout when a lower branch still shows the name; `rmdir` of a
//!   directory whose merged view is not empty is `ENOTEMPTY`. Creating
//!   over a whiteout replaces it; a directory made there is opaque.
//! - **Rename** of a non-directory copies it up, renames it in the
//!   writable branch and whiteouts the old name when needed (overlay
//!   format: atomically, with `RENAME_WHITEOUT`). A directory that lives
//!   only in the writable branch is renamed there. A merged or lower
//!   directory is **copied whole** (recursively, from its merged view) to
//!   the new name, made opaque, and the old name is removed and whited
//!   out: strata never answers `EXDEV`, and never writes redirect xattrs
//!   (the upper dir stays readable by any overlayfs, whatever its
//!   `redirect_dir` setting). Open files below a directory moved this way
//!   keep writing to the old copies, and hard links inside it become
//!   separate files. `RENAME_NOREPLACE` is supported.
//!   `RENAME_EXCHANGE` brings both entries wholly into the writable branch
//!   (a merged directory is copied whole, opaque, over its own upper part)
//!   and swaps them there. `RENAME_WHITEOUT` is `EINVAL`.
//! - **Hard links**: `link` copies the source up and links it in the
//!   writable branch. Lower files hard-linked to each other share one union
//!   inode; within a mount, writing through one name is seen through the
//!   others, but on disk only the name written through is copied up (the
//!   other names keep the lower file), as overlayfs without `index=on`.
//! - **Inode numbers** are the union's own, allocated on first sight and
//!   found again by the backing entry's `(st_dev, st_ino)`; a copy-up
//!   binds the copy's identity to the same number, so a file keeps its
//!   number across copy-up. `st_dev` is the FUSE mount's.
//! - An open file whose last name is removed reports `st_nlink` 0.
//! - Names longer than 255 bytes are `ENAMETOOLONG` in every request.
//!   Paths are never built: every directory is an `O_PATH` handle per
//!   branch and every call is an `*at` call on one, so a union path near
//!   `PATH_MAX` works whatever the length of the branches' own paths.
//!   In aufs format a lower name of more than 251 bytes cannot be
//!   deleted (its whiteout `.wh.NAME` would be too long): `ENAMETOOLONG`,
//!   with nothing changed.
//! - New entries belong to the caller (the group of a set-group-id parent,
//!   whose bit new directories inherit); permissions are checked by the
//!   kernel (`default_permissions`).
//! - In overlay format a character device 0/0 is a whiteout: `mknod` of
//!   one is `EPERM`, as kernel overlayfs answers (in aufs format it is an
//!   ordinary device).
//! - A read-only union (no writable branch) is mounted read-only: writes
//!   are `EROFS`. `statfs` reports the writable branch (the top branch of
//!   a read-only union).
//!
//! # On-disk formats
//!
//! [`WhiteoutFormat::Aufs`] (what `--branch` lists get): `.wh.NAME` empty
//! files and `.wh..wh..opq`, every `.wh.` name reserved; copies are staged
//! in `<upper>/.wh..wh.orph/` (made at mount, removed at unmount) unless a
//! workdir is given.
//! [`WhiteoutFormat::Overlay`] (what `-o lowerdir=...` gets): char 0/0
//! whiteouts and the `trusted.overlay.opaque` (or, with `userxattr`,
//! `user.overlay.opaque`) xattr, staged in `<workdir>/work/` — the upper
//! dir can be mounted by kernel overlayfs afterwards. The format's xattrs
//! are hidden from and refused to the union's users. The staging dir is
//! emptied when the union is mounted.
//!
//! Without root, mounting goes through `fusermount3`, and files keep the
//! mounting user as owner. Without root (or inside a user namespace) the
//! overlay format's markers are `user.overlay.*` whether or not `userxattr`
//! is given: `trusted.*` xattrs need `CAP_SYS_ADMIN` to be written or read.
//!
//! # Concurrency and caching
//!
//! Requests are served by [`Options::threads`] threads. A namespace lock
//! lets lookups and listings run together while every change to the tree
//! (create, remove, rename, copy-up) runs alone; file reads and writes take
//! no lock. The inode table and handle table sit behind their own short
//! locks.
//!
//! Entries and attributes are cached by the kernel for one second (no
//! invalidation notices are sent): all changes go through this process and
//! the kernel drops what each request changes, so the branches must not be
//! changed behind the union's back (as with overlayfs). A rename moves the
//! kernel's cached entries below the renamed directory along with it, so
//! the inodes it holds there keep their numbers: a directory renamed by
//! copying binds every known node below it to its copy at once. Symlink targets
//! are cached by the kernel too (a symlink never changes; a new one gets a
//! new inode number), lookups in one directory run in parallel, and
//! closing a file costs no request (`flush` is answered `ENOSYS` once:
//! writes go straight to the backing file, so a close has nothing to
//! report).
//!
//! The pages of a lower file opened here (not passed through) are kept by
//! the kernel from one open to the next (`FOPEN_KEEP_CACHE`): a lower file
//! never changes under the union, so a warm re-read costs no request. A
//! copy-up has the same bytes; after it the file is an upper one, opened
//! without the flag, and the kernel drops its pages at each such open.
//!
//! # FUSE passthrough
//!
//! When the kernel offers it (6.9+) and the union runs as root, file I/O
//! bypasses this process: the open is answered with a backing file the
//! kernel reads and writes directly. The kernel wants every open of an
//! inode to pass through the same backing file, or none to, so only files
//! that can never be copied up from under an open pass through: files in
//! the writable branch (new files from their `create` on), and every file
//! of a read-only union. Lower files of a writable union, and any inode
//! that already has opens served here, are served here. Branches on a
//! stacked file system (an overlayfs) cannot be backing files: those
//! opens are served here too. [`Options::passthrough`] (off when `STRATA_UNION_NO_PASSTHROUGH`
//! is set in the environment) turns passthrough off, for debugging and
//! comparisons.
#![forbid(unsafe_code)]

mod copyup;
mod daemon;
mod error;
mod fs;
mod layers;
mod namespace;
mod node_ops;
mod ops;
mod options;
mod table;

use std::path::{Path, PathBuf};

use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL};

pub use daemon::{is_union, spawn, unmount, FOREGROUND_ENV};
pub use error::{Error, ErrorKind, Result};
pub use options::{Branch, Options, WhiteoutFormat};

/// The FUSE file-system name and subtype: mounts show as
/// `fuse.strata-union`.
pub const FS_NAME: &str = "strata-union";

/// A mounted union, served in background threads; unmounts (and stops)
/// when dropped or on [`Mounted::unmount`].
pub struct Mounted {
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    /// Mounted by fusermount3 (not root): fuser does not know the mount,
    /// fusermount3 must take it down.
    by_fusermount: bool,
}

impl Mounted {
    /// Unmounts and waits for the serving threads to stop. A union still
    /// in use (open files, a process's cwd) is detached (`MNT_DETACH`): it
    /// leaves the mount table at once and is served until released.
    pub fn unmount(mut self) -> Result<()> {
        self.stop()
    }

    /// Where the union is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    fn stop(&mut self) -> Result<()> {
        let Some(s) = self.session.take() else {
            return Ok(());
        };
        if self.by_fusermount {
            // The serving threads end when the connection goes.
            daemon::unmount(&self.mountpoint)?;
        }
        match s.umount_and_join() {
            Ok(()) => Ok(()),
            // A serving thread saw the connection end as aborted rather
            // than unmounted (threads with cloned devices race at
            // teardown): stopped all the same.
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(()),
            // Busy (files open in it): detach it now; it is served until
            // the last of them closes.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                strata_sys::mount::unmount(&self.mountpoint, true)
                    .map_err(|e| Error::io(format!("unmounting {:?}", self.mountpoint), e))
            }
            Err(e) => Err(Error::io(format!("unmounting {:?}", self.mountpoint), e)),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("mountpoint", &self.mountpoint)
            .finish()
    }
}

fn config(opts: &Options) -> Config {
    let mut c = Config::default();
    c.mount_options = vec![
        MountOption::FSName(FS_NAME.to_string()),
        MountOption::DefaultPermissions,
    ];
    if strata_sys::fs::euid() != 0 {
        // fusermount3 passes the subtype on.
        c.mount_options
            .push(MountOption::Subtype(FS_NAME.to_string()));
    } else {
        // fuser's own mount(2) drops `Subtype`: hand it to the kernel.
        c.mount_options
            .push(MountOption::CUSTOM(format!("subtype={FS_NAME}")));
        c.mount_options.push(MountOption::Dev);
        c.mount_options.push(MountOption::Suid);
    }
    if opts.upper().is_none() {
        c.mount_options.push(MountOption::RO);
    }
    c.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    c.n_threads = Some(opts.threads.max(1));
    c.clone_fd = opts.threads > 1;
    c
}

/// A mounted session; `true` when fusermount3 mounted it.
fn session(opts: Options, mountpoint: &Path) -> Result<(Session<fs::Union>, bool)> {
    let union = fs::Union::new(&opts)?;
    let config = config(&opts);
    let mounting = |e| Error::io(format!("mounting the union on {mountpoint:?}"), e);
    if strata_sys::fs::euid() == 0 {
        return Ok((
            Session::new(union, mountpoint, &config).map_err(mounting)?,
            false,
        ));
    }
    // Without root, as libfuse does: the setuid fusermount3 mounts and
    // hands over /dev/fuse (which an unprivileged user may not even be
    // allowed to open).
    let mut o = format!("fsname={FS_NAME},subtype={FS_NAME},default_permissions");
    if opts.upper().is_none() {
        o.push_str(",ro");
    }
    if opts.allow_other {
        o.push_str(",allow_other");
    }
    let fd = strata_sys::mount::fuse_mount_fusermount(mountpoint, &o).map_err(mounting)?;
    let acl = config.acl;
    Ok((
        Session::from_fd(union, fd, acl, config).map_err(mounting)?,
        true,
    ))
}

/// Mounts the union on `mountpoint` and serves it in background threads.
pub fn mount(opts: Options, mountpoint: &Path) -> Result<Mounted> {
    let (s, by_fusermount) = session(opts, mountpoint)?;
    let bg = s
        .spawn()
        .map_err(|e| Error::io("starting the union's threads", e))?;
    Ok(Mounted {
        session: Some(bg),
        mountpoint: mountpoint.to_path_buf(),
        by_fusermount,
    })
}

/// Mounts the union and serves it in the foreground until it is unmounted
/// (`fusermount3 -u` / `umount`).
pub fn serve(opts: Options, mountpoint: &Path) -> Result<()> {
    match session(opts, mountpoint)?.0.run() {
        // Unmounted while a thread was reading: see `Mounted::stop`.
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(()),
        r => r.map_err(|e| Error::io(format!("serving the union on {mountpoint:?}"), e)),
    }
}
