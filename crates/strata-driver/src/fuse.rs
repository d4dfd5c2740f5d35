//! The `fuse` driver: overlay2's on-disk layout (the same `diff/`,
//! `lower`, `work/`, `merged/` and `l/` names, overlayfs whiteouts and
//! opaque markers in every layer), with the union served in userspace by
//! `strata-union` instead of kernel overlayfs. For machines where
//! overlayfs cannot be mounted (no privilege, no kernel support); since a
//! layer's upper directory is in overlayfs format, the native diff reads
//! it as overlay2's does.
//!
//! Who serves a mount is the caller's choice ([`Server`]): threads of this
//! process (a library, a test: mounts end with the driver) or a process
//! of their own started per mount (the CLI: `strata union-mount`), which
//! outlives the command that mounted it, as a kernel mount would. Either
//! way a union is unmounted by the last `put`, from any process.
//!
//! As root the trusted.overlay.* markers are used and other users may
//! enter the union (containers run as any user); otherwise the mount goes
//! through `fusermount3` and the markers are user.overlay.*.
//!
//! The driver is built with the `fuse` cargo feature (on by default),
//! which links `strata-union` and `fuser`. Without it [`Server`] is still
//! here, so that callers build either way, but the table of drivers has
//! no `fuse` row and opening a store made with fuse says it needs the
//! feature.

use std::ffi::OsString;

#[cfg(feature = "fuse")]
mod mounter;

#[cfg(feature = "fuse")]
pub(crate) use mounter::{usable, Mounter};

/// Who serves the unions the `fuse` driver mounts.
#[derive(Debug, Clone, Default)]
pub enum Server {
    /// Threads of this process: each mount lives until it is put back,
    /// the driver dropped or the process gone.
    #[default]
    Threads,
    /// A process per mount, started as this command followed by
    /// `-o lowerdir=...,upperdir=...,workdir=...[,userxattr] MOUNTPOINT`
    /// (`strata union-mount`), through `strata_union::spawn`.
    Command(Vec<OsString>),
}
