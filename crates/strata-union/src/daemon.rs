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
/// process: `umount2` as root (detached when busy), `fusermount3 -u -z`
/// otherwise. Its server then exits.
pub fn unmount(mountpoint: &Path) -> Result<()> {
    if strata_sys::fs::euid() == 0 {
        return strata_sys::mount::unmount(mountpoint, true)
            .map_err(|e| Error::io(format!("unmounting {mountpoint:?}"), e));
    }
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
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
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Io,
            format!(
                "fusermount3 -u {mountpoint:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ))
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
