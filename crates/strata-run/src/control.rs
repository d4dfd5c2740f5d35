//! Controlling a container that runs in the background: `kill`, `stop`
//! and `wait`, as Docker's commands of those names behave. A container's
//! process is reached through the OCI runtime it runs under (its state
//! records which); the strata process that runs it (see
//! [`crate::start_detached`]) records the exit when the process ends.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use strata_store::{Container, Error, ErrorKind, Result, Status, Store};

use crate::runtime::Runtime;

/// Signal names `kill -s` takes (without `SIG`), as the runtimes take
/// them; numbers 1-64 are taken too.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
];

/// A signal as the user wrote it (`TERM`, `sigterm`, `SIGTERM`, `15`),
/// in the form the runtimes take (`TERM`, `15`); an unknown one is an
/// error naming it.
pub fn parse_signal(s: &str) -> Result<String> {
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let known = SIGNALS.contains(&name)
        || name.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n))
        || realtime(name);
    if known {
        Ok(name.to_owned())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid signal {s:?}"),
        ))
    }
}

/// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N` (N up to 30).
fn realtime(name: &str) -> bool {
    let offset = |rest: &str, sign: char| {
        rest.is_empty()
            || rest
                .strip_prefix(sign)
                .and_then(|n| n.parse::<u8>().ok())
                .is_some_and(|n| n <= 30)
    };
    name.strip_prefix("RTMIN").is_some_and(|r| offset(r, '+'))
        || name.strip_prefix("RTMAX").is_some_and(|r| offset(r, '-'))
}

/// The runtime a running container runs under and its state directory;
/// an error when it does not run.
fn running(store: &Store, c: &Container) -> Result<(Runtime, PathBuf)> {
    let state = store.container_state(c)?;
    if state.status != Status::Running {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("container {} is not running", c.name),
        ));
    }
    Ok(crate::runtime_of(store, c, &state))
}

/// `strata kill -s SIGNAL`: sends `signal` (see [`parse_signal`]) to the
/// container's process. Refused when the container does not run.
pub fn signal(store: &Store, c: &Container, signal: &str) -> Result<()> {
    let signal = parse_signal(signal)?;
    let (runtime, state_root) = running(store, c)?;
    runtime.kill(&state_root, &c.id, &signal)
}

/// `strata stop -t N`: SIGTERM, then SIGKILL when the container still
/// runs after `timeout`; returns once it has exited. A container that
/// does not run is no error (as with Docker).
pub fn stop(store: &Store, c: &Container, timeout: Duration) -> Result<()> {
    let Ok((runtime, state_root)) = running(store, c) else {
        return Ok(());
    };
    if let Err(e) = runtime.kill(&state_root, &c.id, "TERM") {
        let state = store.container_state(c)?;
        if state.status != Status::Running {
            // Gone meanwhile is what was wanted.
            return Ok(());
        }
        // Not made yet (its network may still be coming up): the strata
        // keeping it gives up on SIGTERM before it starts the runtime.
        tracing::debug!("{e}; sending SIGTERM to strata process {}", state.pid);
        strata_sys::process::kill(state.pid, 15)
            .map_err(|e| Error::io(format!("stopping container {}", c.name), e))?;
    }
    if exited_within(store, c, timeout)? {
        return Ok(());
    }
    tracing::info!(
        "container {} still runs {}s after SIGTERM: killing it",
        c.name,
        timeout.as_secs()
    );
    crate::kill(store, c, Duration::from_secs(30))
}

/// `strata restart -t N`: [`stop`], then a background start under the
/// same runtime, with what `command` (the process that keeps a container,
/// given the runtime and whether to remove the container when it exits)
/// makes; a container started with `run -d --rm` is not removed by the
/// stop (the run it ends sees the `restarting` mark) and is removed when
/// the new run ends.
pub fn restart(
    store: &Store,
    c: &Container,
    timeout: Duration,
    command: &dyn Fn(Option<&str>, bool) -> std::process::Command,
) -> std::result::Result<(), crate::Failure> {
    let state = store.container_state(c)?;
    let runtime = (!state.runtime.is_empty()).then_some(state.runtime.as_str());
    if state.status == Status::Running {
        let mark = restarting_mark(store, c);
        std::fs::write(&mark, b"")
            .map_err(|e| Error::io(format!("writing {}", mark.display()), e))?;
        let stopped = stop(store, c, timeout);
        if stopped.is_err() {
            let _ = std::fs::remove_file(&mark);
        }
        stopped?;
    }
    crate::start_detached(store, &c.id, command(runtime, state.auto_remove))?;
    Ok(())
}

fn restarting_mark(store: &Store, c: &Container) -> PathBuf {
    store.container_path(c).join("restarting")
}

/// Whether a restart is under way (and the mark taken): the run that ends
/// must not remove the container.
pub(crate) fn take_restarting(store: &Store, c: &Container) -> bool {
    std::fs::remove_file(restarting_mark(store, c)).is_ok()
}

/// `strata wait`: blocks until the container does not run, and returns
/// its exit code (a container that never ran: 0, as Docker's
/// `not-running` condition returns at once).
pub fn wait(store: &Store, c: &Container) -> Result<i32> {
    loop {
        let state = store.container_state(c)?;
        if state.status != Status::Running {
            return Ok(state.exit_code);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the container stops running within `timeout`.
fn exited_within(store: &Store, c: &Container, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if store.container_state(c)?.status != Status::Running {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `strata system reset`, as Podman's: every container stopped and
/// removed (with its anonymous volumes), every image, layer and volume
/// removed through the store (so each driver removes its own layers, btrfs
/// subvolumes included), then the store's own entries under its root.
/// Refused with nothing removed when the root holds anything that is not
/// the store's (a mistyped `--root` must not empty a user's directory),
/// and before any file is removed when anything is still mounted under the
/// root (removing through a mount would reach outside the store). A
/// rootless store's namespace record is left for [`remove_root`], once
/// the namespace has been stopped. In a rootless store's user namespace
/// this removes files owned by the subordinate ids, which the caller
/// cannot remove outside it.
pub fn reset(store: Store) -> Result<()> {
    let root = store.root().to_owned();
    let kept = [crate::userns::RECORD, crate::userns::RECORD_LOCK];
    let own = Store::own_entries(&kept);
    let is_own = |n: &std::ffi::OsStr| n.to_str().is_some_and(|n| own.contains(&n));
    let foreign: Vec<String> = names_in(&root)?
        .iter()
        .filter(|n| !is_own(n))
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if !foreign.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{} holds {} as well, which strata did not make: nothing removed",
                root.display(),
                foreign.join(", ")
            ),
        ));
    }
    for c in store.containers()? {
        crate::kill(&store, &c, Duration::from_secs(10))?;
        store.remove_container_with(&c, true, true)?;
    }
    store.prune_with(true, true)?;
    store.prune_volumes(true)?;
    // The rest under the store's lock: a command started meanwhile waits,
    // then finds no store, rather than mounting into one being removed.
    let lock = store.lock()?;
    let mounted = strata_sys::mount::mounts_under(&root)
        .map_err(|e| Error::io(format!("reading the mounts under {}", root.display()), e))?;
    if let Some(m) = mounted.first() {
        return Err(Error::new(
            ErrorKind::InUse,
            format!(
                "{} is still mounted: unmount it, then run system reset again",
                m.display()
            ),
        ));
    }
    // Listed again: the removals above may have made entries (volumes/).
    for name in names_in(&root)? {
        if kept.iter().any(|k| name == *k) || name == "lock" || !is_own(&name) {
            continue;
        }
        let p = root.join(&name);
        let gone = if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match gone {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("removing {}", p.display()), e))
            }
            _ => {}
        }
    }
    drop(lock);
    drop(store);
    match std::fs::remove_file(root.join("lock")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("removing {}", root.join("lock").display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// The names in directory `dir`.
fn names_in(dir: &std::path::Path) -> Result<Vec<std::ffi::OsString>> {
    let listing = |e| Error::io(format!("listing {}", dir.display()), e);
    std::fs::read_dir(dir)
        .map_err(listing)?
        .map(|e| e.map(|e| e.file_name()).map_err(listing))
        .collect()
}

/// The end of a reset: a rootless store's namespace record, then the
/// root itself, now empty.
pub fn remove_root(root: &std::path::Path) -> Result<()> {
    for f in [crate::userns::RECORD, crate::userns::RECORD_LOCK] {
        match std::fs::remove_file(root.join(f)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("removing {}", root.join(f).display()), e))
            }
            _ => {}
        }
    }
    std::fs::remove_dir(root).map_err(|e| Error::io(format!("removing {}", root.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        for (given, taken) in [
            ("TERM", "TERM"),
            ("sigterm", "TERM"),
            ("SIGKILL", "KILL"),
            ("9", "9"),
            ("64", "64"),
            ("RTMIN+3", "RTMIN+3"),
            ("SIGRTMAX-2", "RTMAX-2"),
            ("hup", "HUP"),
        ] {
            assert_eq!(parse_signal(given).unwrap(), taken, "{given}");
        }
        for bad in [
            "", "0", "65", "TERMX", "SIG", "-9", "RTMIN+31", "RTMIN-1", "TERM;rm",
        ] {
            assert!(parse_signal(bad).is_err(), "{bad:?} taken");
        }
    }
}
