//! The union served by a process of its own (what `strata union-mount`
//! and the `fuse` driver start): unmounting waits for that process, and a
//! server without root writes the overlay format's markers where it may.
//! This test binary is its own server: run with [`SERVE_ENV`] set, its
//! `serve_from_env` serves the union those options describe. Needs root
//! and /dev/fuse (SKIPPED loudly otherwise).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{able, is_mounted, nobody_output, skip, xattr};
use strata_union::Options;
use tempfile::TempDir;

/// Overlay-style options for `serve_from_env`, and the mount point after
/// a `\n`.
const SERVE_ENV: &str = "STRATA_UNION_TEST_SERVE";

/// Not a test of its own: the union's server when this binary is started
/// with [`SERVE_ENV`] set (otherwise it returns at once).
#[test]
fn serve_from_env() {
    let Some(spec) = std::env::var_os(SERVE_ENV) else {
        return;
    };
    let spec = spec.into_string().expect("UTF-8 options");
    let (opts, mnt) = spec.split_once('\n').expect("options\\nmountpoint");
    let opts = Options::from_overlay_options(opts).expect("options");
    strata_union::serve(opts, Path::new(mnt)).expect("serve");
}

/// Held by each test: a process started by one test holds copies of all
/// this process's files between its fork and its exec, which can keep
/// another test's branches busy for that moment.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// This binary, serving `opts` on `mnt` (as `strata union-mount -o`).
fn server(opts: &str, mnt: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", "serve_from_env", "--test-threads", "1"])
        .env(SERVE_ENV, format!("{opts}\n{}", mnt.display()));
    cmd
}

/// A tmpfs mounted on `dir` for the branches, so that a server still
/// holding them makes its unmount fail; taken down lazily on drop if a
/// test left it.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    /// Unmounts it, not detached: fails while anything holds it.
    fn unmount(self) -> std::io::Result<()> {
        strata_sys::mount::unmount(&self.0, false)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = strata_sys::mount::unmount(&self.0, true);
        }
    }
}

/// Branches on a tmpfs at `tmp/fs`: `lower/file`, `upper/`, `work/`;
/// returns the overlay options naming them.
fn branches(fs_dir: &Path) -> String {
    for d in ["lower", "upper", "work"] {
        fs::create_dir(fs_dir.join(d)).unwrap();
    }
    fs::write(fs_dir.join("lower/file"), "lower\n").unwrap();
    format!(
        "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
        fs_dir.display()
    )
}

/// Right after `unmount` returns, the branches' file system unmounts: the
/// server process has exited and holds nothing. Repeated, since the
/// server used to exit 1.5-31 ms after the unmount returned.
#[test]
fn unmount_returns_once_the_server_process_is_gone() {
    let test = "unmount_returns_once_the_server_process_is_gone";
    ten_rounds(test, |round, tmpfs, mnt| {
        let opts = branches(&tmpfs.0);
        let pid = strata_union::spawn(server(&opts, mnt), mnt).expect("spawn the server");
        fs::write(mnt.join("new"), "new\n").unwrap();
        assert_eq!(fs::read_to_string(mnt.join("file")).unwrap(), "lower\n");
        strata_union::unmount(mnt).expect("unmount");
        assert!(!is_mounted(mnt));
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            state.is_empty() || state.contains(") Z "),
            "round {round}: the server still runs: {state}"
        );
    });
}

/// Runs `round` ten times (given the round, a fresh tmpfs for the
/// branches and the mount point), one test at a time; after each round
/// the tmpfs must unmount, not detached: nothing of the union holds it.
fn ten_rounds(test: &str, mut round: impl FnMut(u32, &Tmpfs, &Path)) {
    if !able(test) {
        return;
    }
    let _serial = one_at_a_time();
    let tmp = TempDir::new().unwrap();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    for i in 0..10 {
        let tmpfs = Tmpfs::mount(&tmp.path().join("fs"));
        round(i, &tmpfs, &mnt);
        tmpfs
            .unmount()
            .unwrap_or_else(|e| panic!("round {i}: unmount the branches' tmpfs: {e}"));
    }
}

/// The same for a union served by this process's threads
/// (`Mounted::unmount`, the `fuse` driver's in-process mounts).
#[test]
fn unmount_returns_once_the_serving_threads_are_gone() {
    let test = "unmount_returns_once_the_serving_threads_are_gone";
    ten_rounds(test, |_, tmpfs, mnt| {
        let opts = Options::from_overlay_options(&branches(&tmpfs.0)).unwrap();
        let m = strata_union::mount(opts, mnt).expect("mount");
        fs::write(mnt.join("new"), "new\n").unwrap();
        m.unmount().expect("unmount");
    });
}

/// Without root, `trusted.*` xattrs cannot be written: an overlay-style
/// union mounted by a user without `userxattr` uses `user.overlay.*`
/// markers all the same, so a directory made over a deleted one (which
/// must be opaque) is made, not refused with EPERM.
#[test]
fn unprivileged_overlay_union_uses_user_xattrs() {
    let test = "unprivileged_overlay_union_uses_user_xattrs";
    if !able(test) {
        return;
    }
    let _serial = one_at_a_time();
    for tool in ["setpriv", "fusermount3"] {
        if Command::new(tool).arg("--version").output().is_err() {
            skip(test, &format!("{tool} missing"));
            return;
        }
    }
    let tmp = TempDir::new().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let b = tmp.path();
    for d in ["lower/d", "upper", "work", "mnt"] {
        fs::create_dir_all(b.join(d)).unwrap();
    }
    fs::write(b.join("lower/d/x"), "x\n").unwrap();
    let nobody = Some(rustix::fs::Uid::from_raw(65534));
    let nogroup = Some(rustix::fs::Gid::from_raw(65534));
    for d in ["lower/d", "lower/d/x", "upper", "work", "mnt"] {
        rustix::fs::chown(b.join(d), nobody, nogroup).unwrap();
    }
    let mnt = b.join("mnt");
    let opts = format!(
        "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
        b.display()
    );
    // As nobody, through fusermount3. Root may not enter a user's FUSE
    // mount (no allow_other): wait for it in the mount table.
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["--exact", "serve_from_env", "--test-threads", "1"])
        .env(SERVE_ENV, format!("{opts}\n{}", mnt.display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_mounted(&mnt) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited: {status}");
        }
        assert!(Instant::now() < deadline, "the union never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    let made = nobody_output(
        r#"rm -r "$1/d" && mkdir "$1/d" && touch "$1/d/new" && ls "$1/d""#,
        &[&mnt],
    );
    strata_union::unmount(&mnt).expect("unmount");
    let status = child.wait().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&made.stdout),
        "new\n",
        "rm -r d; mkdir d as nobody: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(status.success(), "the server: {status}");
    assert_eq!(
        xattr(&b.join("upper/d"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..]),
        "the new d is opaque, in the user namespace"
    );
    assert_eq!(xattr(&b.join("upper/d"), "trusted.overlay.opaque"), None);
}
