//! The one place where strata talks to the kernel.
//!
//! Everything here is a thin wrapper over [`rustix`]: one small function
//! per call, working on directory handles (`*at` calls) so that callers can
//! confine every operation to a root they hold open. Retries, fallbacks and
//! policy live in the callers.
//!
//! No module uses `unsafe` yet: rustix's safe wrappers cover every call made
//! so far. Calls rustix does not wrap (the new mount API helpers that need
//! raw pointers, btrfs ioctls) will live here, each module opting in with a
//! `# Safety` paragraph.
#![forbid(unsafe_code)]

pub mod fs;
pub mod xattr;

pub use rustix::fs::{Dev, FileType, Mode, Stat, Timespec};
pub use rustix::io::Errno;
