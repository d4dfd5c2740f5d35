//! Network namespaces: a new one, held by a file descriptor.
//!
//! A container's private network is made before its runtime starts (as
//! Podman makes its own): the helper that gives it connectivity (pasta or
//! slirp4netns) attaches first, and the runtime joins the namespace by
//! path, so the command never starts with the network half set up.
//!
//! # Safety
//!
//! `unshare(CLONE_NEWNET)` is the one unsafe call: rustix marks `unshare`
//! unsafe because some flags (`CLONE_FILES`, `CLONE_FS`) would change
//! what other threads rely on. `CLONE_NEWNET` only moves the calling
//! thread into a new network namespace, on a thread spawned for that
//! purpose that ends right after opening it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};

/// Makes a new network namespace (`unshare(CLONE_NEWNET)` on a thread of
/// its own, see unshare(2)) and returns a descriptor of it
/// (`/proc/thread-self/ns/net`); the namespace lives as long as the
/// descriptor, or a process in it. Its loopback is down.
pub fn new_net_namespace() -> io::Result<OwnedFd> {
    std::thread::spawn(|| -> io::Result<OwnedFd> {
        // SAFETY: CLONE_NEWNET only: this thread alone changes network
        // namespace, and it ends below. See the module's Safety section.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET)? };
        Ok(rustix::fs::open(
            "/proc/thread-self/ns/net",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    })
    .join()
    .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}
