//! The store lock: an exclusive `flock` on `<root>/lock`, taken by every
//! change so that several `strata` processes can share a store.
//!
//! A function that needs the lock held takes a `&Lock`: the compiler then
//! proves the caller holds it (as `strata_driver`'s reference counts do),
//! where a `*_locked` name only asked the reader to check.

use std::fs;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::layout::Layout;
use crate::secure;

/// Holds the store lock until dropped; the proof, passed by reference,
/// that it is held.
pub struct Lock {
    _file: Option<fs::File>,
}

/// Takes the store lock of the store at `root`, waiting for other
/// processes.
pub(crate) fn lock_at(root: &Path) -> Result<Lock> {
    let file = secure::open_lock(root)?;
    strata_sys::fs::lock_exclusive(std::os::fd::AsFd::as_fd(&file))
        .ctx(|| format!("locking {}", Layout::lock_of(root).display()))?;
    Ok(Lock { _file: Some(file) })
}

/// Takes the store lock of the store at `root` without making or
/// changing the lock file (a store opened read-only): when there is no
/// lock file, no strata has changed the store, and there is nothing to
/// wait for.
pub(crate) fn lock_existing(root: &Path) -> Result<Lock> {
    let file = secure::existing_lock(root)?;
    if let Some(f) = &file {
        strata_sys::fs::lock_exclusive(std::os::fd::AsFd::as_fd(f))
            .ctx(|| format!("locking {}", Layout::lock_of(root).display()))?;
    }
    Ok(Lock { _file: file })
}
