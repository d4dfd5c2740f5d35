//! Rootless stores: the user namespace a store without root lives in.
//!
//! As Podman's rootless mode does, strata without root works inside a user
//! namespace built from the caller's subordinate id ranges (`/etc/subuid`,
//! `/etc/subgid`, set by the setuid `newuidmap`/`newgidmap` of Debian's
//! `uidmap` package): the caller is root in it, and the image's uids and
//! gids 1..N are the caller's range `START..START+N-1` outside. Files keep
//! the owners the image gives them (seen from inside), so layers saved back
//! keep their diffIDs and commits record in-container owners.
//!
//! A keeper process, started by the first command that needs it, holds
//! the user namespace and a mount namespace of its own; every later
//! command joins both ([`enter`]), so a container mounted by one command
//! is there for the next, as with Podman's pause process. Its PID is
//! recorded in `$XDG_RUNTIME_DIR/strata/userns.pid` (or a private
//! `strata-run-UID` directory under the temporary directory). `strata
//! unshare` runs a command inside; `strata unshare --stop` ends the keeper
//! (mounts held in its namespace go with it).
//!
//! Without subordinate ranges the namespace maps the caller alone, with a
//! warning: files the image gives to other users then belong to the
//! caller, and every such file is counted and reported by the command that
//! writes it (never a silent squash). Where user namespaces cannot be made
//! at all, or with `STRATA_USERNS=host`, strata stays in the caller's own
//! namespace as before: the FUSE driver, files owned by the caller.

use std::fmt;
use std::io::{self, ErrorKind as IoErrorKind};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use strata_store::{Error, ErrorKind};
use strata_sys::userns::{self as sys, IdRange};

/// The environment variable that makes the strata executable a keeper.
pub const KEEPER_ENV: &str = "_STRATA_USERNS_KEEPER";
/// `STRATA_USERNS=host` keeps a command in the caller's own namespace;
/// unset, or any other value (`auto`), a command without root enters the
/// store's.
pub const USERNS_ENV: &str = "STRATA_USERNS";

/// The largest range the namespace gets from the subordinate ids (what
/// Podman maps by default: 65536 ids, uid 0 being the caller).
const MAX_SUBORDINATE: u64 = 65536;

/// Where a command runs, as [`enter`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// Root in the machine's own user namespace: nothing to do.
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

/// A keeper's life: hold the namespaces it was started in until killed.
pub fn keep() -> ! {
    loop {
        std::thread::park();
    }
}

/// Puts this process into the store's user namespace when it runs
/// without root: joins the keeper's namespaces, starting the keeper first
/// if there is none. Must be called while the process is single-threaded
/// (setns(2) refuses a user namespace to a multithreaded process).
/// `program` is the executable to start as a keeper (strata itself, which
/// calls [`keep`] when [`is_keeper`]).
pub fn enter(program: &Path) -> Result<Namespace, Error> {
    if strata_sys::fs::euid() == 0 {
        if strata_sys::mount::in_user_namespace() {
            return Ok(Namespace::Rootless {
                mapping: current_mapping()?,
                joined: false,
            });
        }
        return Ok(Namespace::Root);
    }
    if std::env::var(USERNS_ENV).as_deref() == Ok("host") {
        return Ok(Namespace::Host(format!("{USERNS_ENV}=host")));
    }
    let dir = runtime_dir()?;
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("userns.lock"))
        .map_err(|e| Error::io(format!("opening {}", dir.join("userns.lock").display()), e))?;
    strata_sys::fs::lock_exclusive(std::os::fd::AsFd::as_fd(&lock))
        .map_err(|e| Error::io("locking the user namespace's record", e))?;
    let pid_file = dir.join("userns.pid");
    let pid = match live_keeper(&pid_file) {
        Some(pid) => pid,
        None => match start_keeper(program, &pid_file)? {
            Ok(pid) => pid,
            Err(why) => {
                tracing::warn!("{why}: running without a user namespace, so files keep the caller as their owner");
                return Ok(Namespace::Host(why));
            }
        },
    };
    sys::join(pid).map_err(|e| {
        Error::io(
            format!("joining the store's user namespace (keeper PID {pid})"),
            e,
        )
    })?;
    drop(lock);
    Ok(Namespace::Rootless {
        mapping: current_mapping()?,
        joined: true,
    })
}

/// Whether this process is root of the machine's own user namespace
/// (not root of a user namespace, as inside `strata unshare`).
pub fn machine_root() -> bool {
    strata_sys::fs::euid() == 0 && !strata_sys::mount::in_user_namespace()
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
        Ok(mapping) if rootless() => Namespace::Rootless {
            mapping,
            joined: false,
        },
        _ => Namespace::Root,
    }
}

fn current_mapping() -> Result<Mapping, Error> {
    Mapping::current().map_err(|e| Error::io("reading this process's id maps", e))
}

/// Ends the keeper, if one runs: the namespaces go with it (and every
/// mount made in them). Returns its PID.
pub fn stop() -> Result<Option<u32>, Error> {
    let pid_file = runtime_dir()?.join("userns.pid");
    let Some(pid) = live_keeper(&pid_file) else {
        return Ok(None);
    };
    strata_sys::process::kill(pid, 9)
        .map_err(|e| Error::io(format!("stopping the keeper (PID {pid})"), e))?;
    let _ = std::fs::remove_file(&pid_file);
    Ok(Some(pid))
}

/// The directory of the keeper's record: `$XDG_RUNTIME_DIR/strata`, or
/// `strata-run-UID` in the temporary directory; made 0700, and refused
/// when another user owns it.
pub fn runtime_dir() -> Result<PathBuf, Error> {
    let uid = sys::uid();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("strata"),
        None => std::env::temp_dir().join(format!("strata-run-{uid}")),
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == IoErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(format!("making {}", dir.display()), e)),
    }
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory of this user's that only it can write: \
                 remove it or set XDG_RUNTIME_DIR",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

/// The keeper the record names, if it still runs (same PID and start
/// time: a reused PID is another process).
fn live_keeper(pid_file: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let mut f = text.split_whitespace();
    let pid: u32 = f.next()?.parse().ok()?;
    let start: u64 = f.next()?.parse().ok()?;
    (strata_sys::process::start_time(pid).ok()? == start).then_some(pid)
}

/// Starts a keeper in new namespaces and maps its ids. `Ok(Err(why))`
/// when this machine makes no user namespace for the caller.
fn start_keeper(program: &Path, pid_file: &Path) -> Result<Result<u32, String>, Error> {
    let uid = sys::uid();
    let gid = strata_sys::fs::egid();
    let user = user_name(uid);
    let sub_uids = subordinate("/etc/subuid", uid, user.as_deref())?;
    let sub_gids = subordinate(
        "/etc/subgid",
        gid,
        group_name(gid).as_deref().or(user.as_deref()),
    )?;
    let mut cmd = Command::new(program);
    cmd.env(KEEPER_ENV, "1")
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
    strata_sys::atomic::write(pid_file, format!("{pid} {start}\n").as_bytes())
        .map_err(|e| Error::io(format!("writing {}", pid_file.display()), e))?;
    // The keeper outlives this command; nothing waits for it.
    std::mem::forget(child);
    Ok(Ok(pid))
}

/// Runs `newuidmap`/`newgidmap PID 0 ID 1 1 START COUNT ...`: the caller
/// as 0, the subordinate ranges from 1 on.
fn new_map(tool: &str, pid: u32, own: u32, ranges: &[(u32, u32)]) -> Result<(), Error> {
    let mut args = vec![pid.to_string(), "0".into(), own.to_string(), "1".into()];
    let mut next: u64 = 1;
    let mut left = MAX_SUBORDINATE;
    for &(start, count) in ranges {
        let count = u64::from(count).min(left);
        if count == 0 {
            break;
        }
        args.extend([next.to_string(), start.to_string(), count.to_string()]);
        next += count;
        left -= count;
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
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{tool} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
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

/// The name `/etc/passwd` gives to `uid`.
fn user_name(uid: u32) -> Option<String> {
    name_in("/etc/passwd", uid)
}

/// The name `/etc/group` gives to `gid`.
fn group_name(gid: u32) -> Option<String> {
    name_in("/etc/group", gid)
}

fn name_in(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.splitn(4, ':').collect();
        (f.len() >= 3 && f[2].parse() == Ok(id)).then(|| f[0].to_owned())
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
