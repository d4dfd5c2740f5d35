//! The one place where strata talks to the kernel.
//!
//! Everything here is a thin wrapper over [`rustix`]: one small function
//! per call, working on directory handles (`*at` calls) so that callers can
//! confine every operation to a root they hold open. Retries, fallbacks and
//! policy live in the callers.
//!
//! `unsafe` is denied crate-wide; a module that needs it opts in with a
//! `# Safety` paragraph saying why (today [`mount`], for
//! `unshare(CLONE_FS)` on a thread of its own, [`netns`], for
//! `unshare(CLONE_NEWNET)` on a thread of its own, and [`process`], for
//! `prctl(PR_SET_PDEATHSIG)` between fork and exec, [`btrfs`], for the
//! file system's ioctls, [`verity`], for the fs-verity ioctls, and
//! [`userns`], for `setsid` and `unshare(CLONE_NEWUSER)` between fork
//! and exec).
#![deny(unsafe_code)]

pub mod atomic;
pub mod btrfs;
pub mod fs;
pub mod mount;
pub mod netns;
pub mod process;
pub mod userns;
pub mod verity;
pub mod xattr;

pub use rustix::fs::{Dev, FileType, Mode, Stat, Timespec};
pub use rustix::io::Errno;
