//! Rootless stores: the user namespace a store without root lives in.
//!
//! As Podman's rootless mode does, strata without root works inside a user
//! namespace built from the caller's subordinate id ranges (`/etc/subuid`,
//! `/etc/subgid`, set by the setuid `newuidmap`/`newgidmap` of Debian's
//! `uidmap` package): the caller is root in it, and the image's uids and
//! gids from 1 on are the caller's ranges, in file order. Files keep the
//! owners the image gives them (seen from inside), so layers saved back
//! keep their diffIDs and commits record in-container owners.
//!
//! A keeper process, started by the first command that needs it, holds
//! the user namespace and a mount namespace of its own; every later
//! command joins both ([`enter`]), so a container mounted by one command
//! is there for the next, as with Podman's pause process. The keeper
//! belongs to the store: its record (`userns.pid`: PID, start time and
//! boot ID, under `userns.lock`) is in the store's root, so one store is
//! never mounted from two namespaces whatever the environment of the
//! commands. `strata unshare` runs a command inside; `strata unshare
//! --stop` ends the keeper once nothing else runs in its namespace.
//!
//! Without subordinate ranges the namespace maps the caller alone, with a
//! warning: files the image gives to other users then belong to the
//! caller, and every such file is counted and reported by the command that
//! writes it (never a silent squash). Where user namespaces cannot be made
//! at all, or with `STRATA_USERNS=host`, strata stays in the caller's own
//! namespace as before: the FUSE driver, files owned by the caller.

use std::fmt;
use std::io::{self, ErrorKind as IoErrorKind};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::{Command, Stdio};

use strata_store::{Error, ErrorKind};
use strata_sys::userns::{self as sys, IdRange};

/// The environment variable that makes the strata executable a keeper.
pub const KEEPER_ENV: &str = "_STRATA_USERNS_KEEPER";
/// Set by [`enter`] once this process is in a store's namespace, and so
/// in every process it starts: root there is a user's store's root, not
/// root of the machine (or of someone else's container, which is root).
pub const CONFIGURED_ENV: &str = "_STRATA_USERNS_CONFIGURED";
/// `STRATA_USERNS=host` keeps a command in the caller's own namespace;
/// unset, or any other value (`auto`), a command without root enters the
/// store's.
pub const USERNS_ENV: &str = "STRATA_USERNS";
/// The keeper's record and its lock, in the store's root.
pub const RECORD: &str = "userns.pid";
pub const RECORD_LOCK: &str = "userns.lock";

/// Where a command runs, as [`enter`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// Root: nothing to do.
    Root,
    /// Inside a store's user namespace, with this mapping; `joined` when
    /// this call moved the process in (its caller is outside, and sees
    /// none of the mounts made in it).
    Rootless { mapping: Mapping, joined: bool },
    /// Without root, in the caller's own namespace (why).
    Host(String),
}

/// A user namespace's id maps, as `/proc/self/{uid,gid}_map` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

impl Mapping {
    /// This process's maps.
    pub fn current() -> io::Result<Mapping> {
        Ok(Mapping {
            uids: sys::own_uid_map()?,
            gids: sys::own_gid_map()?,
        })
    }

    /// Whether only one id is mapped (no subordinate ranges).
    pub fn single(&self) -> bool {
        self.uids.iter().map(|r| u64::from(r.count)).sum::<u64>() <= 1
    }
}

impl fmt::Display for Mapping {
    /// `uid 0:1000:1,1:100000:65536 gid 0:1000:1,1:100000:65536`
    /// (inside:outside:count, as Podman's `--uidmap`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |m: &[IdRange]| {
            m.iter()
                .map(|r| format!("{}:{}:{}", r.inside, r.outside, r.count))
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(f, "uid {} gid {}", list(&self.uids), list(&self.gids))
    }
}

/// Whether this process was started as a keeper: the strata executable
/// calls [`keep`] then, before anything else.
pub fn is_keeper() -> bool {
    std::env::var_os(KEEPER_ENV).is_some()
}

/// A keeper's life: let go of every descriptor it was started with (the
/// first caller's locks and pipes must not live as long as the
/// namespace), then hold the namespaces until killed.
pub fn keep() -> ! {
    sys::close_inherited_fds();
    loop {
        std::thread::park();
    }
}

/// Whether this process is in a store's user namespace, as root of it
/// ([`enter`] put it there, or a process that did started it).
fn in_store_namespace() -> bool {
    strata_sys::fs::euid() == 0
        && strata_sys::mount::in_user_namespace()
        && std::env::var_os(CONFIGURED_ENV).is_some()
}

/// Puts this process into the user namespace of the store at `root` when
/// it runs without root: joins the keeper's namespaces, starting the
/// keeper first if there is none. Must be called while the process is
/// single-threaded (setns(2) refuses a user namespace to a multithreaded
/// process; this is checked). `program` is the executable to start as a
/// keeper (strata itself, which calls [`keep`] when [`is_keeper`]).
pub fn enter(program: &Path, root: &Path) -> Result<Namespace, Error> {
    if strata_sys::fs::euid() == 0 {
        if in_store_namespace() {
            return Ok(Namespace::Rootless {
                mapping: current_mapping()?,
                joined: false,
            });
        }
        return Ok(Namespace::Root);
    }
    let record = root.join(RECORD);
    if std::env::var(USERNS_ENV).as_deref() == Ok("host") {
        if record.exists() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "the store at {} lives in its user namespace (its files belong to \
                     subordinate ids): unset {USERNS_ENV} to use it",
                    root.display()
                ),
            ));
        }
        return Ok(Namespace::Host(format!("{USERNS_ENV}=host")));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|e| Error::io(format!("making {}", root.display()), e))?;
    let _lock = lock_record(root)?;
    let pid = match live_keeper(&record) {
        Some(pid) => pid,
        None => match start_keeper(program, &record)? {
            Ok(pid) => pid,
            Err(why) => {
                tracing::warn!("{why}: running without a user namespace, so files keep the caller as their owner");
                return Ok(Namespace::Host(why));
            }
        },
    };
    let threads = strata_sys::process::thread_count()
        .map_err(|e| Error::io("counting this process's threads", e))?;
    if threads != 1 {
        return Err(Error::new(
            ErrorKind::Io,
            format!("cannot join the store's user namespace from a process with {threads} threads"),
        ));
    }
    sys::join(pid).map_err(|e| {
        Error::io(
            format!("joining the store's user namespace (keeper PID {pid})"),
            e,
        )
    })?;
    // Single-threaded still (checked above): nothing reads the
    // environment concurrently.
    std::env::set_var(CONFIGURED_ENV, "1");
    let mapping = current_mapping()?;
    if mapping.single() {
        // Ranges added since the namespace was made do not reach it.
        let uid = sys::uid();
        if !subordinate("/etc/subuid", uid, user_name(uid).as_deref())?.is_empty() {
            tracing::warn!(
                "the store's user namespace maps only the caller, but /etc/subuid now has \
                 ranges for uid {uid}: `strata unshare --stop` (with no container running) \
                 lets the next command make it anew with them"
            );
        }
    }
    Ok(Namespace::Rootless {
        mapping,
        joined: true,
    })
}

fn lock_record(root: &Path) -> Result<std::fs::File, Error> {
    let path = root.join(RECORD_LOCK);
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    strata_sys::fs::lock_exclusive(std::os::fd::AsFd::as_fd(&lock))
        .map_err(|e| Error::io("locking the user namespace's record", e))?;
    Ok(lock)
}

/// Whether this process is root of the machine's own user namespace, or
/// of a user namespace that is not a store's (a container's root is
/// root): the default store is then `/var/lib/strata`.
pub fn machine_root() -> bool {
    strata_sys::fs::euid() == 0 && !in_store_namespace()
}

/// Whether this process is root of a user namespace (a rootless store's,
/// or another's): the runtime then runs rootless, and the container's
/// spec takes what a user namespace allows.
pub fn rootless() -> bool {
    strata_sys::fs::euid() == 0 && strata_sys::mount::in_user_namespace()
}

/// Where this process is now, without moving it: what `strata info`
/// reports.
pub fn current() -> Namespace {
    if strata_sys::fs::euid() != 0 {
        return Namespace::Host("not in the store's user namespace".into());
    }
    match Mapping::current() {
        Ok(mapping) if in_store_namespace() => Namespace::Rootless {
            mapping,
            joined: false,
        },
        _ => Namespace::Root,
    }
}

fn current_mapping() -> Result<Mapping, Error> {
    Mapping::current().map_err(|e| Error::io("reading this process's id maps", e))
}

/// Ends the keeper of the store at `root`, if one runs: its namespaces
/// go with it. Refused while another process (a container, its runtime or
/// supervisor, a union's server) still runs in the namespace: it would
/// keep the namespace and its mounts alive unseen, and the next command
/// would make a second one. Returns the keeper's PID.
pub fn stop(root: &Path) -> Result<Option<u32>, Error> {
    let record = root.join(RECORD);
    if !record.exists() {
        return Ok(None);
    }
    let _lock = lock_record(root)?;
    let Some(pid) = live_keeper(&record) else {
        let _ = std::fs::remove_file(&record);
        return Ok(None);
    };
    let ns = sys::namespace_id(&pid.to_string(), "user")
        .map_err(|e| Error::io(format!("reading the keeper's namespace (PID {pid})"), e))?;
    let me = std::process::id();
    let others: Vec<String> = sys::processes_in(ns)
        .map_err(|e| Error::io("listing the processes in the namespace", e))?
        .into_iter()
        // Zombies hold no namespace: they only wait to be reaped.
        .filter(|(p, _)| {
            *p != pid && *p != me && !strata_sys::process::is_zombie(*p).unwrap_or(true)
        })
        .map(|(p, name)| format!("{p} ({name})"))
        .collect();
    if !others.is_empty() {
        return Err(Error::new(
            ErrorKind::InUse,
            format!(
                "processes still run in the store's user namespace: {}; stop its containers \
                 (and unmount what is mounted) first",
                others.join(", ")
            ),
        ));
    }
    strata_sys::process::kill(pid, 9)
        .map_err(|e| Error::io(format!("stopping the keeper (PID {pid})"), e))?;
    let _ = std::fs::remove_file(&record);
    Ok(Some(pid))
}

/// The keeper the record names, if it still runs: same PID, start time
/// and boot (a reused PID is another process), not a zombie, and a keeper.
fn live_keeper(record: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(record).ok()?;
    let mut f = text.split_whitespace();
    let pid: u32 = f.next()?.parse().ok()?;
    let start: u64 = f.next()?.parse().ok()?;
    let boot = f.next()?;
    if strata_sys::process::boot_id().ok()? != boot
        || strata_sys::process::start_time(pid).ok()? != start
        || strata_sys::process::is_zombie(pid).unwrap_or(true)
    {
        return None;
    }
    Some(pid)
}

/// Starts a keeper in new namespaces and maps its ids. `Ok(Err(why))`
/// when this machine makes no user namespace for the caller.
fn start_keeper(program: &Path, record: &Path) -> Result<Result<u32, String>, Error> {
    let uid = sys::uid();
    let gid = strata_sys::fs::egid();
    let user = user_name(uid);
    // Both files are keyed by the user (subuid(5), subgid(5)): newgidmap
    // checks the ranges against the user, not the primary group.
    let sub_uids = subordinate("/etc/subuid", uid, user.as_deref())?;
    let sub_gids = subordinate("/etc/subgid", uid, user.as_deref())?;
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env(KEEPER_ENV, "1")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = match sys::spawn_in_new_namespaces(&mut cmd) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Err(format!(
                "this machine makes no user namespace for uid {uid} ({e})"
            )))
        }
    };
    let pid = child.id();
    let mapped = if sub_uids.is_empty() || sub_gids.is_empty() {
        tracing::warn!(
            "no subordinate ids for uid {uid} in /etc/subuid and /etc/subgid: the user \
             namespace maps only the caller, so files an image gives to other users \
             will belong to the caller (add ranges with `usermod --add-subuids` and \
             `--add-subgids`)"
        );
        sys::write_own_maps(pid, uid, gid).map_err(|e| Error::io("writing the id maps", e))
    } else {
        new_map("newuidmap", pid, uid, &sub_uids)
            .and_then(|()| new_map("newgidmap", pid, gid, &sub_gids))
    };
    if let Err(e) = mapped {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let start = strata_sys::process::start_time(pid)
        .map_err(|e| Error::io("reading the keeper's start time", e))?;
    let boot = strata_sys::process::boot_id().map_err(|e| Error::io("reading the boot ID", e))?;
    strata_sys::atomic::write(record, format!("{pid} {start} {boot}\n").as_bytes())
        .map_err(|e| Error::io(format!("writing {}", record.display()), e))?;
    // The keeper outlives this command; nothing waits for it (a dead one
    // is told from its zombie by `live_keeper`).
    std::mem::forget(child);
    Ok(Ok(pid))
}

/// Runs `newuidmap`/`newgidmap PID 0 ID 1 1 START COUNT ...`: the caller
/// as 0, every subordinate range from 1 on, in file order (as Podman maps
/// them), within the 32-bit id space.
fn new_map(tool: &str, pid: u32, own: u32, ranges: &[(u32, u32)]) -> Result<(), Error> {
    let mut args = vec![pid.to_string(), "0".into(), own.to_string(), "1".into()];
    let mut next: u64 = 1;
    for &(start, count) in ranges {
        let count = u64::from(count).min(u64::from(u32::MAX) - next);
        if count == 0 {
            break;
        }
        args.extend([next.to_string(), start.to_string(), count.to_string()]);
        next += count;
    }
    let path = strata_sys::process::on_path(tool).ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            format!("{tool} is not on PATH: install Debian's uidmap package, or remove this user's ranges from /etc/subuid and /etc/subgid"),
        )
    })?;
    let out = Command::new(&path)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running {tool}"), e))?;
    match strata_sys::process::failure(&out) {
        None => Ok(()),
        Some(why) => Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("{tool} {} failed: {why}", args.join(" ")),
        )),
    }
}

/// Replaces this process with `program` (found on `PATH` when it has no
/// `/`) and `args`, with `env` added, as `strata unshare` runs its
/// command: its exit status and signals are then its own. Returns only
/// when it cannot run, with a shell's status for that (127: not found,
/// 126: found but not runnable) and the error.
pub fn exec(
    program: &std::ffi::OsStr,
    args: impl IntoIterator<Item = std::ffi::OsString>,
    env: &[(&str, &std::ffi::OsStr)],
) -> (u8, io::Error) {
    use std::os::unix::process::CommandExt;
    let bare = !program.as_encoded_bytes().contains(&b'/');
    if bare
        && program
            .to_str()
            .and_then(strata_sys::process::on_path)
            .is_none()
    {
        return (
            127,
            io::Error::new(IoErrorKind::NotFound, "command not found on PATH"),
        );
    }
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let err = cmd.exec();
    let code = if err.kind() == IoErrorKind::NotFound {
        127
    } else {
        126
    };
    (code, err)
}

/// The ranges `/etc/subuid` (or `subgid`) gives to `id` or `name`, in file
/// order: `(start, count)`. A missing file is no ranges.
fn subordinate(file: &str, id: u32, name: Option<&str>) -> Result<Vec<(u32, u32)>, Error> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(parse_subordinate(&text, id, name)),
        Err(e) if e.kind() == IoErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("reading {file}"), e)),
    }
}

/// `NAME_OR_ID:START:COUNT` lines (subuid(5)); malformed lines are
/// skipped, as shadow's tools skip them.
fn parse_subordinate(text: &str, id: u32, name: Option<&str>) -> Vec<(u32, u32)> {
    let id = id.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, ':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != id && Some(who) != name {
                return None;
            }
            let start: u32 = start.parse().ok()?;
            let count: u32 = count.parse().ok()?;
            (count > 0 && start.checked_add(count - 1).is_some()).then_some((start, count))
        })
        .collect()
}

/// The name `/etc/passwd` gives to `uid` (subordinate ids are found by
/// the uid too, for users from other name services).
fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.splitn(4, ':').collect();
        (f.len() >= 3 && f[2].parse() == Ok(uid)).then(|| f[0].to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_are_found_by_name_or_id() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:x:1\nalice:300000:0\n\
                    alice:4294967295:2\nalice:500000:10\n";
        assert_eq!(
            parse_subordinate(text, 1000, Some("alice")),
            [(100000, 65536), (500000, 10)]
        );
        assert_eq!(
            parse_subordinate(text, 1001, Some("carol")),
            [(200000, 1000)]
        );
        assert!(parse_subordinate(text, 1002, None).is_empty());
        assert!(parse_subordinate("bob:1:2:3\n", 5, Some("bob")).is_empty());
    }

    #[test]
    fn a_mapping_prints_as_podman_writes_it() {
        let r = |inside, outside, count| IdRange {
            inside,
            outside,
            count,
        };
        let m = Mapping {
            uids: vec![r(0, 1000, 1), r(1, 100000, 65536)],
            gids: vec![r(0, 1000, 1)],
        };
        assert_eq!(m.to_string(), "uid 0:1000:1,1:100000:65536 gid 0:1000:1");
        assert!(!m.single());
    }
}
