//! `strata union-mount` and the `fuse` driver through the binary: aufs
//! branches and overlay-style options, daemonised servers that end with
//! `strata umount`, clear errors, an unprivileged user mounting through
//! fusermount3, a store without root on the fuse driver, a union whose
//! server was killed, and containers run on the fuse driver.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{as_root, require_root, sh, skip, write_files, Strata};
use containers::have_runtime;
use fixtures::have_tools;

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = strata(args);
    assert!(
        out.status.success(),
        "strata {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `dir` is a strata union mount now.
fn is_union(dir: &Path) -> bool {
    let want = fs::canonicalize(dir).unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == want.to_str() && l.contains(" - fuse.strata-union "))
}

/// Servers of unions under `dir` still running.
fn servers_under(dir: &Path) -> String {
    sh(&format!(
        "pgrep -f '[u]nion-mount .*{}' || true",
        dir.display()
    ))
}

/// Servers of unions under `dir` still running two seconds after their
/// unmount (a lazy unmount returns before the server has seen it).
fn servers_left(dir: &Path) -> String {
    for _ in 0..200 {
        if servers_under(dir).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    servers_under(dir)
}

/// Unmounts what a failed test left.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if is_union(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A temp dir holding the directories `names`, when root; `None`
/// (SKIPPED) otherwise.
fn root_dirs(names: &[&str]) -> Option<tempfile::TempDir> {
    if !require_root() {
        return None;
    }
    let t = tempfile::tempdir().unwrap();
    dirs(t.path(), names);
    Some(t)
}

fn dirs(base: &Path, names: &[&str]) {
    for n in names {
        fs::create_dir_all(base.join(n)).unwrap();
    }
}

#[test]
fn branches_mount_in_the_background_and_umount_ends_the_server() {
    let Some(t) = root_dirs(&["lo/d", "mid", "up", "mnt"]) else {
        return;
    };
    let b = t.path();
    write_files(
        b,
        &[
            ("lo/keep", "lower"),
            ("lo/gone", "x"),
            ("lo/d/f", "in d"),
            ("mid/keep", "middle"),
        ],
    );
    let mnt = b.join("mnt");
    let _guard = Unmount(mnt.clone());
    let spec = |d: &str, p: &str| format!("{}={p}", b.join(d).display());
    ok(&[
        "union-mount",
        "--branch",
        &spec("up", "rw"),
        "--branch",
        &spec("mid", "ro"),
        "--branch",
        &spec("lo", "ro"),
        mnt.to_str().unwrap(),
    ]);
    assert!(is_union(&mnt), "mounted when the command returns");
    assert_ne!(servers_under(b), "", "a server runs it");
    assert_eq!(fs::read_to_string(mnt.join("keep")).unwrap(), "middle");
    fs::remove_file(mnt.join("gone")).unwrap();
    write_files(&mnt, &[("d/f", "changed"), ("new", "new")]);
    // aufs style on disk: .wh. files, copies in the rw branch.
    assert!(b.join("up/.wh.gone").is_file());
    assert_eq!(fs::read_to_string(b.join("up/d/f")).unwrap(), "changed");
    assert_eq!(fs::read_to_string(b.join("lo/d/f")).unwrap(), "in d");
    assert_eq!(common::listing(&mnt), ["d", "keep", "new"]);

    ok(&["umount", mnt.to_str().unwrap()]);
    assert!(!is_union(&mnt));
    // The server exits once unmounted; its staging dir is gone.
    assert_eq!(servers_left(b), "", "the server ended");
    assert!(!b.join("up/.wh..wh.orph").exists());
}

#[test]
fn overlay_options_keep_the_upper_mountable_by_the_kernel() {
    let Some(t) = root_dirs(&["lo/etc", "up", "work", "mnt"]) else {
        return;
    };
    let b = t.path();
    write_files(b, &[("lo/etc/a", "a"), ("lo/etc/b", "b")]);
    let mnt = b.join("mnt");
    let _guard = Unmount(mnt.clone());
    let opts = format!(
        "lowerdir={0}/lo,upperdir={0}/up,workdir={0}/work",
        b.display()
    );
    ok(&["union-mount", "-o", &opts, mnt.to_str().unwrap()]);
    fs::remove_file(mnt.join("etc/a")).unwrap();
    // A deleted lower file: overlayfs's whiteout, char 0/0.
    let wh = fs::symlink_metadata(b.join("up/etc/a")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    fs::remove_dir_all(mnt.join("etc")).unwrap();
    fs::create_dir(mnt.join("etc")).unwrap();
    fs::write(mnt.join("etc/c"), "c").unwrap();
    ok(&["umount", mnt.to_str().unwrap()]);
    // overlayfs's format: an opaque directory, no .wh. names.
    let md = fs::symlink_metadata(b.join("up/etc")).unwrap();
    assert!(md.is_dir());
    assert_eq!(
        sh(&format!(
            "getfattr --only-values -n trusted.overlay.opaque '{}/up/etc'",
            b.display()
        )),
        "y"
    );
    // The kernel mounts the same directories and sees the same tree.
    sh(&format!(
        "mount -t overlay overlay -o '{opts}' '{}'",
        mnt.display()
    ));
    let listing = sh(&format!("ls '{}/etc'", mnt.display()));
    sh(&format!("umount '{}'", mnt.display()));
    assert_eq!(listing, "c");
    // A file made and deleted in the union leaves nothing.
    ok(&["union-mount", "-o", &opts, mnt.to_str().unwrap()]);
    fs::write(mnt.join("top"), "t").unwrap();
    fs::remove_file(mnt.join("top")).unwrap();
    ok(&["umount", mnt.to_str().unwrap()]);
    assert!(
        !b.join("up/top").exists(),
        "an upper-only file leaves nothing"
    );
}

#[test]
fn bad_arguments_are_clear_errors_and_mount_nothing() {
    let Some(t) = root_dirs(&["lo", "up", "mnt"]) else {
        return;
    };
    let b = t.path();
    let mnt = b.join("mnt");
    let m = mnt.to_str().unwrap();
    // Each case's arguments, `B/` standing for the branches' directory.
    let cases = [
        ("MNT", "give the branches"),
        ("--branch B/missing=rw MNT", "missing"),
        ("--branch B/lo=xx MNT", "unknown permission"),
        ("--branch B/lo=ro --branch B/up=rw MNT", "topmost"),
        ("-o lowerdir=B/lo,bogus=1 MNT", "bogus"),
        (
            "--branch B/lo=ro B/no-such-mountpoint",
            "no-such-mountpoint",
        ),
    ];
    let dir = format!("{}/", b.display());
    for (args, needle) in cases {
        let args = args.replace("B/", &dir).replace("MNT", m);
        let mut all = vec!["union-mount"];
        all.extend(args.split_whitespace());
        let out = strata(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{all:?} should fail");
        assert!(err.contains(needle), "{all:?}: {err}");
        assert!(!is_union(&mnt), "{all:?} mounted something");
    }
    assert_eq!(servers_left(b), "");
    // umount of a directory that holds no union (and names no container).
    let out = strata(&["--root", b.join("root").to_str().unwrap(), "umount", m]);
    assert!(!out.status.success());
}

/// Whether an unprivileged user can mount unions here (root to set the
/// test up, setpriv, fusermount3, /dev/fuse open to all); says why not.
fn unprivileged_fuse(test: &str) -> bool {
    if !require_root() || !have_tools(test, &["setpriv", "fusermount3"]) {
        return false;
    }
    // Debian's udev rules make /dev/fuse 0666; a container's /dev may
    // not (scripts/test.sh sets it so).
    let mode = fs::metadata("/dev/fuse")
        .map(|m| m.mode() & 0o777)
        .unwrap_or(0);
    mode & 0o006 == 0o006
        || skip(
            test,
            &format!("/dev/fuse is {mode:o}, not usable by other users (Debian makes it 0666)"),
        )
}

/// Runs `script` with `sh -ec` as nobody (uid and gid 65534, no groups,
/// no capabilities, no user namespace), HOME set to `home`; asserts it
/// succeeded and returns
/// its output's lines.
fn as_nobody(home: &Path, script: &str) -> Vec<String> {
    let out = Command::new("setpriv")
        .env("STRATA_USERNS", "host")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
            "sh",
            "-ec",
            script,
        ])
        .env("HOME", home)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "as nobody: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// An unprivileged user (nobody, through setpriv) mounts a union with
/// fusermount3, writes through it and unmounts it.
#[test]
fn an_unprivileged_user_mounts_and_unmounts_a_union() {
    let test = "an_unprivileged_user_mounts_and_unmounts_a_union";
    if !unprivileged_fuse(test) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let b = t.path();
    fs::set_permissions(b, fs::Permissions::from_mode(0o755)).unwrap();
    dirs(b, &["lo/sub", "up", "mnt"]);
    fs::write(b.join("lo/sub/file"), "lower").unwrap();
    let exe = common::copy_of_strata(&b.join("strata"));
    sh(&format!(
        "chown -R 65534:65534 '{0}/up' '{0}/mnt' '{0}/lo'",
        b.display()
    ));
    let mnt = b.join("mnt");
    let _guard = Unmount(mnt.clone());
    let lines = as_nobody(
        b,
        &format!(
            "'{exe}' union-mount --branch '{b}/up=rw' --branch '{b}/lo=ro' '{b}/mnt'
         echo changed > '{b}/mnt/sub/file'
         mkdir '{b}/mnt/made'
         cat '{b}/mnt/sub/file'
         stat -c %u '{b}/mnt/made'
         '{exe}' umount '{b}/mnt'",
            exe = exe.display(),
            b = b.display()
        ),
    );
    assert_eq!(lines, ["changed", "65534"]);
    assert!(!is_union(&mnt), "unmounted by the user");
    assert_eq!(
        fs::read_to_string(b.join("up/sub/file")).unwrap(),
        "changed\n"
    );
    assert_eq!(fs::read_to_string(b.join("lo/sub/file")).unwrap(), "lower");
    assert_eq!(fs::metadata(b.join("up/made")).unwrap().uid(), 65534);
}

/// Without root and outside a user namespace (`STRATA_USERNS=host`; the
/// rootless tests cover the namespace) a store picks the fuse driver by
/// itself (kernel overlay cannot be mounted) and the store's flow works
/// through fusermount3:
/// import, create, mount, change, diff, commit, a container of the
/// result, check, rm, rmi; no server is left running.
#[test]
fn a_store_without_root_runs_on_the_fuse_driver() {
    if !unprivileged_fuse("a_store_without_root_runs_on_the_fuse_driver") {
        return;
    }
    // Only the root directory and the unmount-everything guard of the
    // harness are used: every command runs as nobody, without --driver.
    let s = Strata::new("fuse");
    let b = s.dir.path();
    fs::set_permissions(b, fs::Permissions::from_mode(0o755)).unwrap();
    let src = b.join("rootfs");
    dirs(&src, &["etc", "bin"]);
    write_files(
        &src,
        &[
            ("etc/motd", "hello\n"),
            ("etc/gone", "x"),
            ("bin/tool", "#!/bin/sh\n"),
        ],
    );
    sh(&format!(
        "tar --numeric-owner -C '{0}/rootfs' -cf '{0}/rootfs.tar' . && chown 65534:65534 '{0}'",
        b.display()
    ));
    let exe = common::copy_of_strata(&b.join("strata"));
    let lines = as_nobody(
        b,
        &format!(
            "S() {{ '{exe}' --root '{root}' \"$@\"; }}
             S info | grep '^Storage Driver'
             S import '{b}/rootfs.tar' base >/dev/null
             S create --name c base >/dev/null
             m=$(S mount c)
             echo changed > \"$m/etc/motd\"
             rm \"$m/etc/gone\"
             mkdir \"$m/srv\" && echo new > \"$m/srv/f\"
             S diff c
             S commit c base:2 >/dev/null
             S umount c
             S create --name d base:2 >/dev/null
             m=$(S mount d)
             cat \"$m/etc/motd\" \"$m/srv/f\"
             test ! -e \"$m/etc/gone\" && echo gone
             stat -c %u \"$m/bin/tool\"
             S umount d
             S check | tail -n 1
             S rm c d >/dev/null
             S rmi base:2 base >/dev/null
             S images --format json",
            exe = exe.display(),
            root = s.root().display(),
            b = b.display()
        ),
    );
    assert_eq!(
        lines,
        [
            "Storage Driver: fuse",
            "C /etc",
            "D /etc/gone",
            "C /etc/motd",
            "A /srv",
            "A /srv/f",
            "changed",
            "new",
            "gone",
            // Files the image gives to root belong to the store's user.
            "65534",
            "the store is consistent",
            "[]",
        ]
    );
    assert_eq!(servers_left(&s.root()), "");
    assert!(!sh("cat /proc/mounts").contains(&s.root().display().to_string()));
}

/// A container's union whose server was killed is mounted afresh by the
/// next `strata mount`, with the container's changes.
#[test]
fn a_union_that_lost_its_server_is_mounted_again() {
    let Some(s) = as_root("fuse") else { return };
    let src = s.path("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/motd"), "hello").unwrap();
    s.import_tree(&src, "base");
    s.ok(&["create", "--name", "c", "base"]);
    let m = PathBuf::from(s.ok(&["mount", "c"]));
    fs::write(m.join("etc/motd"), "changed").unwrap();
    let root = s.root();
    sh(&format!("pkill -9 -f '[u]nion-mount .*{}'", root.display()));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let again = PathBuf::from(s.ok(&["mount", "c"]));
    assert_eq!(again, m);
    assert_eq!(fs::read_to_string(m.join("etc/motd")).unwrap(), "changed");
    s.ok(&["umount", "c"]);
    s.ok(&["umount", "c"]);
    assert!(!is_union(&m));
    s.ok(&["rm", "c"]);
    assert_eq!(servers_left(&root), "");
}

/// Containers run on the fuse driver: the seeds' workflow (change,
/// commit, run the result) and a user other than root inside.
#[test]
fn containers_run_on_the_fuse_driver() {
    let test = "containers_run_on_the_fuse_driver";
    if !require_root() || !have_runtime(test) || !have_tools(test, &["busybox"]) {
        return;
    }
    let s = Strata::new("fuse");
    s.busybox();
    let out = s.ok(&[
        "run",
        "--name",
        "w",
        "busybox:test",
        "sh",
        "-c",
        "echo built > /etc/built; rm /etc/os-release; mkdir -p /srv/data; echo ok",
    ]);
    assert_eq!(out, "ok");
    s.ok(&["commit", "w", "busybox:built"]);
    let out = s.ok(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "busybox:built",
        "sh",
        "-c",
        "cat /etc/built; test ! -e /etc/os-release && echo deleted; id -u",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["built", "deleted", "1000"]
    );
    s.ok(&["rm", "w"]);
    assert_eq!(servers_left(&s.root()), "");
    assert!(!sh("cat /proc/mounts").contains(&s.root().display().to_string()));
}
