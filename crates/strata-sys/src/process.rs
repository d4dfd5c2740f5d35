//! Processes: liveness and signals.

use std::io;

use rustix::process::{Pid, Signal};

/// Whether process `pid` exists (`kill(pid, 0)`; a process of another
/// user counts as existing).
pub fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// `kill(pid, sig)`; `sig` is a signal number (`libc::SIGTERM`...).
pub fn kill(pid: u32, sig: i32) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let sig =
        Signal::from_named_raw(sig).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::kill_process(pid, sig)?)
}
