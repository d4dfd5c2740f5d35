//! A union served by a process of its own, outliving the one that
//! mounted it (what `strata union-mount` without `-f` and the `fuse`
//! driver do), and unmounting one from outside.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// Set in the environment of the command [`spawn`] starts: it is to serve
/// the union in the foreground (with [`crate::serve`]).
pub const FOREGROUND_ENV: &str = "STRATA_UNION_FOREGROUND";

/// How long [`spawn`] waits for the union to appear.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `command`, which must mount a union on `mountpoint` and serve it
/// in the foreground until it is unmounted (`strata union-mount -o ...
/// MOUNTPOINT`, which does so when [`FOREGROUND_ENV`] is set), in a
/// process group of its own with stdin and stdout on `/dev/null`; returns
/// its pid once the union is mounted. When the command exits first (or
/// the union does not appear within 30 s), the error carries the last
/// line the command wrote to stderr. Later messages of the server are
/// dropped: run it in the foreground to see them.
pub fn spawn(mut command: Command, mountpoint: &Path) -> Result<u32> {
    let before = std::fs::metadata(mountpoint)
        .map_err(|e| Error::io(format!("mount point {mountpoint:?}"), e))?;
    if !before.is_dir() {
        return Err(Error::invalid(format!(
            "mount point {mountpoint:?} is not a directory"
        )));
    }
    let mut child = command
        .env(FOREGROUND_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io(format!("starting {:?}", command.get_program()), e))?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // Read on a thread: a chatty server must not block on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + MOUNT_TIMEOUT;
    loop {
        let mounted = std::fs::metadata(mountpoint).is_ok_and(|m| m.dev() != before.dev());
        if mounted {
            // The reader ends when the server closes stderr or exits;
            // nobody waits for it.
            drop(reader);
            return Ok(child.id());
        }
        let exited = child
            .try_wait()
            .map_err(|e| Error::io("waiting for the union's server", e))?;
        if exited.is_some() || Instant::now() > deadline {
            if exited.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let text = reader.join().unwrap_or_default();
            let why = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("it exited without a message");
            let what = match exited {
                Some(status) => format!("the union's server failed ({status}): {why}"),
                None => format!(
                    "the union did not appear on {mountpoint:?} within {} s: {why}",
                    MOUNT_TIMEOUT.as_secs()
                ),
            };
            return Err(Error::new(ErrorKind::Io, what));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Unmounts the union (or any FUSE mount) on `mountpoint`, from any
/// process: `umount2` as root, `fusermount3 -u` otherwise; a mount still
/// in use (open files, a process's cwd) is detached instead (`MNT_DETACH`,
/// `fusermount3 -u -z`) and served until released. Otherwise its server
/// exits, and this returns once it has: once no process holds the mount's
/// FUSE connection open, so the branches it served are no longer busy
/// (an `umount` of a lower file system right after succeeds). That wait
/// needs a kernel that names the connection in `/dev/fuse`'s fdinfo
/// (`fuse_connection:`); without it this returns at once, as the server
/// begins to exit.
pub fn unmount(mountpoint: &Path) -> Result<()> {
    // Found before unmounting: a server closes the device as it begins to
    // exit, and it is gone only once it has exited.
    let server = fuse_connection(mountpoint).map(|conn| (conn, connection_holders(conn)));
    let detached = if strata_sys::fs::euid() == 0 {
        match strata_sys::mount::unmount(mountpoint, false) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                strata_sys::mount::unmount(mountpoint, true)
                    .map_err(|e| Error::io(format!("unmounting {mountpoint:?}"), e))?;
                true
            }
            r => {
                r.map_err(|e| Error::io(format!("unmounting {mountpoint:?}"), e))?;
                false
            }
        }
    } else {
        // fusermount3 says why it failed only in words: a failed plain
        // unmount (busy, most likely) is tried again detached, whose
        // error, if any, is the one reported.
        fusermount_unmount(mountpoint, false).is_err() && {
            fusermount_unmount(mountpoint, true)?;
            true
        }
    };
    match server {
        Some((conn, holders)) if !detached => wait_for_server(conn, holders, mountpoint),
        _ => Ok(()),
    }
}

fn fusermount_unmount(mountpoint: &Path, lazy: bool) -> Result<()> {
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg("--")
        .arg(mountpoint)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::io(
                "running fusermount3 (Debian package fuse3) to unmount as a user",
                e,
            )
        })?;
    match strata_sys::process::failure(&out) {
        None => Ok(()),
        Some(why) => Err(Error::new(
            ErrorKind::Io,
            format!("fusermount3 -u {mountpoint:?}: {why}"),
        )),
    }
}

/// How long [`unmount`] waits for the server of an unmounted union to
/// exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The kernel's number of the FUSE connection mounted on `mountpoint`
/// (its device number, `MKDEV(0, minor)`, as `/sys/fs/fuse/connections/`
/// and `/dev/fuse`'s fdinfo show it); `None` when it is not a FUSE mount
/// (or not there). Asked without syncing: the device is the super
/// block's, and a server that hangs is never asked.
fn fuse_connection(mountpoint: &Path) -> Option<u64> {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    let st = statx(
        CWD,
        mountpoint,
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::STATX_DONT_SYNC,
        StatxFlags::empty(),
    )
    .ok()?;
    (st.stx_dev_major == 0).then_some(u64::from(st.stx_dev_minor))
}

/// The processes holding FUSE connection `conn` open (its `/dev/fuse`
/// files, one per serving thread that cloned the device): the union's
/// server. Processes this one may not inspect are skipped.
fn connection_holders(conn: u64) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t == Path::new("/dev/fuse"))
                && fdinfo_names(&p.path().join("fdinfo").join(fd.file_name()), conn)
        });
        if holds {
            out.push(pid);
        }
    }
    out
}

/// Whether the fdinfo file `info` is of an open `/dev/fuse` of
/// connection `conn`.
fn fdinfo_names(info: &Path, conn: u64) -> bool {
    std::fs::read_to_string(info).is_ok_and(|text| {
        text.lines().any(|l| {
            l.strip_prefix("fuse_connection:")
                .is_some_and(|n| n.trim().parse() == Ok(conn))
        })
    })
}

/// Whether process `pid` has exited (gone, or a zombie: past releasing
/// its files). This process never has: it holds a connection only while
/// its own threads serve it, and [`crate::Mounted`] joins them.
fn has_exited(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // PID (COMM) STATE ...; COMM may hold anything, `)` too.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| {
            matches!(rest.trim_start().as_bytes().first(), Some(b'Z' | b'X'))
        }),
        Err(_) => true,
    }
}

/// Waits until `holders`, the processes that held FUSE connection `conn`
/// open, have exited after its mount on `mountpoint` was unmounted: the union's
/// server is gone, and with it every file it held open on the branches
/// (closing a file is finished only once its process has exited, so a
/// closed `/dev/fuse` alone would not do). A connection still mounted
/// elsewhere (another mount namespace) goes on being served: nothing to
/// wait for then.
fn wait_for_server(conn: u64, mut holders: Vec<u32>, mountpoint: &Path) -> Result<()> {
    if Path::new(&format!("/sys/fs/fuse/connections/{conn}")).exists() {
        return Ok(());
    }
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        holders.retain(|&pid| !has_exited(pid));
        let Some(pid) = holders.first() else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "the server of the union on {mountpoint:?} (pid {pid}) still runs {} s \
                     after its unmount",
                    EXIT_TIMEOUT.as_secs(),
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether `mountpoint` is the root of a strata union (the topmost
/// mount there is `fuse.strata-union`).
pub fn is_union(mountpoint: &Path) -> bool {
    strata_sys::mount::mount_type(mountpoint)
        .ok()
        .flatten()
        .is_some_and(|t| t == format!("fuse.{}", crate::FS_NAME))
}
