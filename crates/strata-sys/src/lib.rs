//! The one place where strata talks to the kernel.
//!
//! Everything here is a thin wrapper over [`rustix`]: one small function
//! per call, working on directory handles (`*at` calls) so that callers can
//! confine every operation to a root they hold open. Retries, fallbacks and
//! policy live in the callers.
//!
//! `unsafe` is denied crate-wide; a module that needs it opts in with a
//! `# Safety` paragraph saying why (today only [`mount`], for
//! `unshare(CLONE_FS)` on a thread of its own).
#![deny(unsafe_code)]

pub mod fs;
pub mod mount;
pub mod process;
pub mod xattr;

pub use rustix::fs::{Dev, FileType, Mode, Stat, Timespec};
pub use rustix::io::Errno;
