//! User namespaces: starting a process in new user and mount namespaces,
//! mapping ids into them, and joining them.
//!
//! A store run without root lives in a user namespace (user_namespaces(7))
//! made from the caller's subordinate id ranges, as Podman's rootless
//! stores do: a small keeper process holds the namespaces, and every
//! command joins them, so mounts made by one command are there for the
//! next.
//!
//! # Safety
//!
//! Two calls are unsafe. [`spawn_in_new_namespaces`]: `CommandExt::pre_exec`
//! runs a closure between fork and exec, where only async-signal-safe
//! calls are allowed. The closure makes raw syscalls only (`setsid`,
//! `unshare`) and allocates nothing; the child is single-threaded there,
//! as `unshare(CLONE_NEWUSER)` requires. [`close_inherited_fds`] closes
//! raw descriptor numbers: it is for the start of a process (the keeper)
//! before it has opened anything, when every descriptor above 2 was
//! inherited and no Rust value owns it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use rustix::fs::{Mode, OFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

/// One line of an id map: `inside` and the `count` ids after it are
/// `outside`.. in the parent namespace (user_namespaces(7), "User and
/// group ID mappings").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Spawns `cmd` in a new session (`setsid`) and in new user and mount
/// namespaces (`unshare(CLONE_NEWUSER | CLONE_NEWNS)`), before it execs.
/// The child's ids are unmapped until its maps are written
/// ([`write_own_maps`], or the setuid `newuidmap`/`newgidmap`).
pub fn spawn_in_new_namespaces(cmd: &mut Command) -> io::Result<Child> {
    // SAFETY: the closure makes only async-signal-safe syscalls and
    // allocates nothing; see the module's Safety section.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS)?;
            Ok(())
        });
    }
    cmd.spawn()
}

/// Maps the caller's own uid and gid to 0 in the user namespace of
/// process `pid`: the one mapping an unprivileged process may write
/// itself (`setgroups` must be denied first for the gid map).
pub fn write_own_maps(pid: u32, uid: u32, gid: u32) -> io::Result<()> {
    write_proc(pid, "uid_map", &format!("0 {uid} 1\n"))?;
    write_proc(pid, "setgroups", "deny\n")?;
    write_proc(pid, "gid_map", &format!("0 {gid} 1\n"))
}

fn write_proc(pid: u32, file: &str, text: &str) -> io::Result<()> {
    let path = format!("/proc/{pid}/{file}");
    let mut f = File::options().write(true).open(&path)?;
    f.write_all(text.as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("writing {path}: {e}")))
}

/// The uid map of this process's user namespace (`/proc/self/uid_map`).
pub fn own_uid_map() -> io::Result<Vec<IdRange>> {
    parse_map(&std::fs::read_to_string("/proc/self/uid_map")?)
}

/// The gid map of this process's user namespace (`/proc/self/gid_map`).
pub fn own_gid_map() -> io::Result<Vec<IdRange>> {
    parse_map(&std::fs::read_to_string("/proc/self/gid_map")?)
}

fn parse_map(text: &str) -> io::Result<Vec<IdRange>> {
    text.lines()
        .map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "malformed id map"))?;
            match f[..] {
                [inside, outside, count] => Ok(IdRange {
                    inside,
                    outside,
                    count,
                }),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed id map",
                )),
            }
        })
        .collect()
}

/// Identifies a namespace: the device and inode of `/proc/PID/ns/KIND`
/// (`"self"` for this process). Two processes are in the same namespace
/// when these are equal.
pub fn namespace_id(pid: &str, kind: &str) -> io::Result<(u64, u64)> {
    let st = rustix::fs::stat(format!("/proc/{pid}/ns/{kind}"))?;
    Ok((st.st_dev, st.st_ino))
}

/// Moves this process into the user, then the mount namespace of process
/// `pid` (setns(2)), keeping its working directory: joining a mount
/// namespace resets it to the namespace's root, so the directory is
/// entered again by its path, as the namespace sees it (where its mounts
/// are), or through a handle held across the move when the path is not
/// there. The process must be single-threaded, and own the user namespace
/// or hold CAP_SYS_ADMIN in it.
pub fn join(pid: u32) -> io::Result<()> {
    let open = |kind: &str| {
        rustix::fs::open(
            format!("/proc/{pid}/ns/{kind}"),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let user = open("user")?;
    let mnt = open("mnt")?;
    let path = std::env::current_dir().ok();
    let cwd = rustix::fs::open(
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok();
    rustix::thread::move_into_link_name_space(user.as_fd(), Some(LinkNameSpaceType::User))?;
    rustix::thread::move_into_link_name_space(mnt.as_fd(), Some(LinkNameSpaceType::Mount))?;
    if path.is_some_and(|p| std::env::set_current_dir(p).is_ok()) {
        return Ok(());
    }
    if let Some(cwd) = cwd {
        // A directory the namespace cannot reach leaves the process at
        // its root, as a `cd` into a vanished directory would.
        let _ = rustix::process::fchdir(cwd.as_fd());
    }
    Ok(())
}

/// The processes in the user namespace `ns` (as [`namespace_id`] gives
/// it), with their command names: every `/proc/PID` whose `ns/user` is
/// it. Processes that end while this looks, or that it may not inspect,
/// are left out.
pub fn processes_in(ns: (u64, u64)) -> io::Result<Vec<(u32, String)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if namespace_id(&pid.to_string(), "user").ok() == Some(ns) {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push((pid, name.trim().to_owned()));
        }
    }
    Ok(found)
}

/// Closes every descriptor above standard error that this process was
/// started with (a long-lived helper must not keep its starter's locks
/// and pipes open). For a process that has opened nothing of its own yet.
pub fn close_inherited_fds() {
    use std::os::fd::AsRawFd;
    let Ok(dir_fd) = rustix::fs::open(
        "/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    // The listing owns this one descriptor (no duplicate), left out below.
    let own = dir_fd.as_raw_fd();
    let Ok(dir) = rustix::fs::Dir::new(dir_fd) else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str().ok()?.parse().ok())
        .filter(|&fd| fd > 2 && fd != own)
        .collect();
    for fd in fds {
        // SAFETY: called at the start of a process that owns no
        // descriptors above 2 of its own but the listing's, which is left
        // out (module Safety section): none of these is held by an
        // `OwnedFd` or a `File` of this process, and each is open.
        unsafe { rustix::io::close(fd) };
    }
}

/// The real user id of this process.
pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_parse_as_the_kernel_prints_them() {
        let m = parse_map("         0       1000          1\n         1     100000      65536\n")
            .unwrap();
        assert_eq!(
            m,
            [
                IdRange {
                    inside: 0,
                    outside: 1000,
                    count: 1
                },
                IdRange {
                    inside: 1,
                    outside: 100000,
                    count: 65536
                }
            ]
        );
        assert!(parse_map("0 1000\n").is_err());
        assert!(parse_map("0 x 1\n").is_err());
        assert!(!own_uid_map().unwrap().is_empty());
    }
}
