//! Processes: liveness, signals, finding programs on `PATH`, and helpers
//! that die with the process that started them.
//!
//! # Safety
//!
//! [`kill_with_parent`] is the one unsafe call: `CommandExt::pre_exec`
//! runs a closure between fork and exec, where only async-signal-safe
//! calls are allowed. The closure makes two raw syscalls (`prctl`,
//! `getppid`) and allocates nothing.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::process::{Pid, Signal};

/// `getrlimit(RLIMIT_NOFILE)`: this process's (soft, hard) limits on
/// open files, `None` for unlimited. See getrlimit(2).
pub fn nofile_limit() -> (Option<u64>, Option<u64>) {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (l.current, l.maximum)
}

/// What a finished command said on stderr (trimmed), when it failed
/// (exited other than 0 or was killed); `None` when it succeeded.
pub fn failure(out: &std::process::Output) -> Option<String> {
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).trim().to_owned())
}

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

/// Whether `p` is a regular file with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first executable `name` in the directories of `$PATH`, as a shell
/// finds it.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// Makes the child `cmd` spawns get SIGKILL when the thread that spawned
/// it ends (`prctl(PR_SET_PDEATHSIG)`, see prctl(2)), so a helper never
/// outlives a strata killed with SIGKILL. The child ends at once if that
/// thread ended before the call took effect.
pub fn kill_with_parent(cmd: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure makes only async-signal-safe syscalls and
    // allocates nothing; see the module's Safety section.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

/// The kernel's boot ID (`/proc/sys/kernel/random/boot_id`): a new one at
/// every boot, so a process recorded under another boot is gone whatever
/// its PID now names. See proc_sys_kernel(5).
pub fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned())
}

/// When process `pid` started, in clock ticks since boot (field 22 of
/// `/proc/PID/stat`, see proc_pid_stat(5)): with the PID, it names one
/// process of one boot even after the PID is reused.
pub fn start_time(pid: u32) -> io::Result<u64> {
    stat_fields(pid)?
        .get(19)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))
}

/// The fields of `/proc/PID/stat` after the command name (state first).
fn stat_fields(pid: u32) -> io::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces
    // and parentheses itself: count fields after its last `)`.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))?;
    Ok(rest.split_ascii_whitespace().map(str::to_owned).collect())
}

/// Whether process `pid` has ended and waits to be reaped (state `Z`).
pub fn is_zombie(pid: u32) -> io::Result<bool> {
    Ok(stat_fields(pid)?.first().map(String::as_str) == Some("Z"))
}

/// How many threads this process has (`Threads:` in /proc/self/status).
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Threads line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_the_boot_an_id() {
        let me = std::process::id();
        let t = start_time(me).unwrap();
        assert_eq!(start_time(me).unwrap(), t);
        assert!(start_time(1).unwrap() <= t);
        let id = boot_id().unwrap();
        assert_eq!(id.len(), 36, "{id}");
        assert!(!is_zombie(me).unwrap());
        assert!(thread_count().unwrap() >= 1);
    }
}
