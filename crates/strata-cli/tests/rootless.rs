//! A store without root, as Podman users expect it: the whole flow as an
//! unprivileged user (`strata-rootless`, whose subordinate range
//! `scripts/test.sh` adds to /etc/subuid and /etc/subgid) in the store's
//! user namespace, on kernel overlay with `userxattr`, containers run by
//! crun or runc in rootless mode; and as `nobody`, who has no range.
//!
//! Images are built and saved by a root store beside it, so ownership is
//! compared with what root sees, not with what strata says about itself.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{sh, skip, Strata};
use containers::setup_with_tools;

/// The user with a subordinate range, and the start of that range.
const USER: &str = "strata-rootless";

/// An unprivileged user's strata: its own HOME, data and runtime
/// directories in a temp dir, every command through setpriv with no
/// capabilities. Drop removes its containers and ends its namespace.
struct Rootless {
    dir: tempfile::TempDir,
    uid: u32,
    gid: u32,
    exe: PathBuf,
    /// `--driver` for every command (a new store's choice otherwise).
    driver: Option<&'static str>,
}

impl Rootless {
    /// For `user` (a name in /etc/passwd); `None` (SKIPPED, a failure
    /// under CI) without root, the tools, or the user.
    fn new(test: &str, user: &str) -> Option<Rootless> {
        if !fixtures::have_tools(test, &["setpriv", "newuidmap", "newgidmap"]) {
            return None;
        }
        let ids = sh(&format!("getent passwd {user} | cut -d: -f3,4 || true"));
        let Some((uid, gid)) = ids.split_once(':') else {
            skip(test, &format!("no user {user} (scripts/test.sh adds it)"));
            return None;
        };
        let (uid, gid) = (uid.parse().unwrap(), gid.parse().unwrap());
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["home", "run"] {
            let p = dir.path().join(d);
            fs::create_dir(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        }
        // A copy the user may run (the build tree may be closed to it).
        let exe = common::copy_of_strata(&dir.path().join("strata"));
        Some(Rootless {
            dir,
            uid,
            gid,
            exe,
            driver: None,
        })
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `strata args` as the user.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "--inh-caps=-all", "--"])
            .arg(&self.exe)
            .args(self.driver.iter().flat_map(|d| ["--driver", d]))
            .args(args)
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env_remove("XDG_DATA_HOME")
            .env_remove("STRATA_ROOT")
            .env_remove("STRATA_USERNS")
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Trimmed stdout; panics with the output on failure.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "strata {args:?} as uid {} failed: {}{}",
            self.uid,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Stderr of a command that must succeed.
    fn warnings(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "strata {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Stderr of a command that must fail.
    fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "strata {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The store's default root for the user.
    fn root(&self) -> PathBuf {
        self.path("home/.local/share/strata")
    }

    /// `strata info` as key → value.
    fn info(&self) -> std::collections::BTreeMap<String, String> {
        self.ok(&["info"])
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The keeper's PID, from its record in the store's root.
    fn keeper(&self) -> Option<u32> {
        let text = fs::read_to_string(self.root().join("userns.pid")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.run(&["rm", "-f", id]);
        }
        let _ = self.run(&["unshare", "--stop"]);
        if let Some(pid) = self.keeper() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// The subordinate range's first id for `user`, from /etc/subuid.
fn sub_start(user: &str) -> u32 {
    sh(&format!(
        "grep '^{user}:' /etc/subuid | head -n1 | cut -d: -f2"
    ))
    .parse()
    .expect("a subordinate range")
}

/// A root store with `owned:1`: busybox, `/srv/hundred` owned 100:100,
/// `/srv/shadow` root:42 mode 0640, `/srv/suid` 100:100 mode 4755,
/// `/srv/gone`; and `owned:2`, a second
/// layer deleting `/srv/gone` and making `/opq` opaque. Saved as a
/// docker-archive `owned.tar` in the store's temp dir.
fn owned_images(test: &str) -> Option<(Strata, PathBuf)> {
    let s = setup_with_tools(test, &["umoci"])?;
    s.umoci_images(
        test,
        "L",
        r#"mkdir -p B/rootfs/srv B/rootfs/opq
ln -s busybox B/rootfs/bin/stat && ln -s busybox B/rootfs/bin/chown
echo hundred > B/rootfs/srv/hundred && chown 100:100 B/rootfs/srv/hundred
echo secret > B/rootfs/srv/shadow && chown 0:42 B/rootfs/srv/shadow && chmod 0640 B/rootfs/srv/shadow
echo gone > B/rootfs/srv/gone && echo old > B/rootfs/opq/old
cp B/rootfs/bin/busybox B/rootfs/srv/suid && chown 100:100 B/rootfs/srv/suid && chmod 4755 B/rootfs/srv/suid
umoci repack --image L:base B
umoci config --image L:base --tag owned:1 --config.cmd sh
umoci tag --image L:owned:1 owned:2
umoci unpack --image L:owned:2 C
rm C/rootfs/srv/gone && rm -r C/rootfs/opq && mkdir C/rootfs/opq && echo new > C/rootfs/opq/new
umoci repack --image L:owned:2 C
rm -rf C
"#,
    )
    .then_some(())?;
    let archive = s.path("owned.tar");
    s.ok(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "owned:1",
        "owned:2",
    ]);
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o644)).unwrap();
    Some((s, archive))
}

/// [`owned_images`], loaded by the user with a subordinate range.
fn loaded(test: &str) -> Option<(Strata, Rootless)> {
    let (root_store, archive) = owned_images(test)?;
    let u = Rootless::new(test, USER)?;
    u.ok(&["load", "-i", archive.to_str().unwrap()]);
    Some((root_store, u))
}

/// The whole flow as a user with a subordinate range: the store picks
/// kernel overlay in its user namespace; the image's owners are kept
/// (inside as the image says, outside shifted into the range); a
/// container's changes, owners included, commit and travel back to a
/// root store with the same IDs; a loaded image saves back byte for byte;
/// volumes, binds, check, rm, rmi and system reset work on mapped files.
#[test]
fn a_rootless_store_keeps_the_owners_the_image_gives() {
    rootless_flow("a_rootless_store_keeps_the_owners_the_image_gives", None);
}

/// The same flow on the fuse driver, served in the user namespace.
#[test]
fn a_rootless_store_on_fuse_keeps_the_owners_the_image_gives() {
    rootless_flow(
        "a_rootless_store_on_fuse_keeps_the_owners_the_image_gives",
        Some("fuse"),
    );
}

fn rootless_flow(test: &str, driver: Option<&'static str>) {
    let Some((root_store, archive)) = owned_images(test) else {
        return;
    };
    let Some(mut u) = Rootless::new(test, USER) else {
        return;
    };
    u.driver = driver;
    let start = sub_start(USER);
    u.ok(&["load", "-i", archive.to_str().unwrap()]);
    let info = u.info();
    assert_eq!(info["Rootless"], "true", "{info:?}");
    match driver {
        None => {
            assert_eq!(info["Storage Driver"], "overlay2", "{info:?}");
            assert_eq!(info["userxattr"], "true", "{info:?}");
            // Why not btrfs (the store is not on btrfs) nor erofs (a
            // user namespace cannot mount EROFS images), and nothing
            // before overlay2 but those.
            let skipped = &info["Drivers Skipped"];
            assert!(skipped.starts_with("btrfs: "), "{skipped}");
            assert!(skipped.contains("; erofs: "), "{skipped}");
            assert!(!skipped.contains("overlay2:"), "{skipped}");
        }
        Some(d) => assert_eq!(info["Storage Driver"], d, "{info:?}"),
    }
    assert_eq!(
        info["ID Mappings"],
        format!(
            "uid 0:{}:1,1:{start}:65536 gid 0:{}:1,1:{start}:65536",
            u.uid, u.gid
        )
    );
    let ids = [
        "images",
        "--filter",
        "reference=owned",
        "--format",
        "{{.ID}}",
    ];
    assert_eq!(
        u.ok(&ids),
        root_store.ok(&ids),
        "the same image IDs as root's"
    );

    // Inside: the image's owners. Outside: shifted into the range.
    let seen = u.ok(&[
        "run",
        "--rm",
        "owned:1",
        "stat",
        "-c",
        "%u:%g %n",
        "/srv/hundred",
        "/srv/shadow",
        "/bin/busybox",
    ]);
    assert_eq!(
        seen,
        "100:100 /srv/hundred\n0:42 /srv/shadow\n0:0 /bin/busybox"
    );
    assert_eq!(
        u.ok(&["run", "--rm", "owned:1", "stat", "-c", "%u %a", "/srv/suid"]),
        "100 4755",
        "a mapped owner keeps its set-user-ID bit"
    );
    let on_disk = |name: &str| {
        let found = sh(&format!(
            "find '{}' -path '*/diff/srv/{name}' | head -n1",
            u.root().display()
        ));
        fs::metadata(found).unwrap()
    };
    let hundred = on_disk("hundred");
    assert_eq!((hundred.uid(), hundred.gid()), (start + 99, start + 99));
    let shadow = on_disk("shadow");
    assert_eq!((shadow.uid(), shadow.gid()), (u.uid, start + 41));

    // An imported root file system keeps its owners too.
    let tree = root_store.path("imported");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("f"), "imported\n").unwrap();
    std::os::unix::fs::chown(tree.join("f"), Some(100), Some(42)).unwrap();
    let tar = root_store.path("imported.tar");
    sh(&format!(
        "tar --numeric-owner -C '{}' -cf '{}' . && chmod 644 '{1}'",
        tree.display(),
        tar.display()
    ));
    u.ok(&["import", tar.to_str().unwrap(), "imported:1"]);
    u.ok(&["create", "--name", "imp", "imported:1"]);
    let m = u.ok(&["mount", "imp"]);
    assert_eq!(
        u.ok(&["unshare", "stat", "-c", "%u:%g", &format!("{m}/f")]),
        "100:42"
    );
    u.ok(&["rm", "-f", "imp"]);

    // The second layer's whiteout and opaque directory, seen through the
    // rootless overlay mount.
    assert_eq!(
        u.ok(&["run", "--rm", "owned:2", "sh", "-c", "ls /srv /opq"]),
        "/opq:\nnew\n\n/srv:\nhundred\nshadow\nsuid"
    );

    // A container's changes: a file owned 123:456, a deletion, an opaque
    // directory; diff, commit, save, and a root store loads the same IDs
    // and owners.
    u.ok(&[
        "run",
        "--name",
        "w",
        "owned:1",
        "sh",
        "-c",
        "echo made > /srv/made && chown 123:456 /srv/made && rm /srv/gone \
         && rm -r /opq && mkdir /opq && echo fresh > /opq/fresh",
    ]);
    assert_eq!(
        u.ok(&["diff", "w"]),
        "C /opq\nA /opq/fresh\nD /opq/old\nC /srv\nD /srv/gone\nA /srv/made"
    );
    let committed = u.ok(&["commit", "w", "made:1"]);
    let saved = u.path("home/made.tar");
    u.ok(&["save", "-o", saved.to_str().unwrap(), "made:1"]);
    root_store.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(
        root_store.json(&["image", "inspect", "made:1"])[0]["Id"],
        committed.as_str(),
        "root loads the committed image with its ID"
    );
    root_store.ok(&["create", "--name", "check", "made:1"]);
    let mnt = PathBuf::from(root_store.ok(&["mount", "check"]));
    let made = fs::metadata(mnt.join("srv/made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (123, 456));
    assert!(!mnt.join("srv/gone").exists());
    assert_eq!(sh(&format!("ls '{}'", mnt.join("opq").display())), "fresh");
    let hundred = fs::metadata(mnt.join("srv/hundred")).unwrap();
    assert_eq!(hundred.uid(), 100);
    root_store.ok(&["umount", "check"]);

    // A loaded image saves back byte for byte.
    let again = u.path("home/again.tar");
    u.ok(&["save", "-o", again.to_str().unwrap(), "owned:1", "owned:2"]);
    let digest = |p: &Path| sh(&format!("sha256sum < '{}'", p.display()));
    assert_eq!(digest(&again), digest(&archive));

    // Volumes hold mapped files too; check finds nothing wrong.
    let in_vol = |script: &str| {
        u.ok(&[
            "run",
            "--rm",
            "-v",
            "vol:/data",
            "owned:1",
            "sh",
            "-c",
            script,
        ])
    };
    in_vol("echo v > /data/v && chown 100:100 /data/v");
    assert_eq!(in_vol("stat -c %u /data/v"), "100");
    // A bind of the user's own directory: the user's files are root's
    // inside, and what root makes there is the user's outside.
    let bind = u.path("home/bind");
    fs::create_dir(&bind).unwrap();
    std::os::unix::fs::chown(&bind, Some(u.uid), Some(u.gid)).unwrap();
    let spec = format!("{}:/b", bind.display());
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "owned:1",
            "sh",
            "-c",
            "touch /b/f && stat -c %u /b/f"
        ]),
        "0"
    );
    assert_eq!(fs::metadata(bind.join("f")).unwrap().uid(), u.uid);
    assert!(
        u.ok(&["check"]).ends_with("the store is consistent"),
        "check"
    );
    u.ok(&["rm", "w"]);
    u.ok(&["rmi", "made:1", "owned:2"]);

    // Files the caller cannot remove outside the namespace go with reset.
    assert!(fs::symlink_metadata(u.root()).is_ok());
    assert!(u.err(&["system", "reset"]).contains("--force"));
    u.ok(&["system", "reset", "--force"]);
    assert!(!u.root().exists(), "reset left the root");
}

/// Without subordinate ids the namespace maps the caller alone: a warning
/// says so, files the image gives to others belong to the caller and the
/// command that wrote them says how many, and containers still run.
#[test]
fn without_subordinate_ids_the_caller_owns_everything_and_is_told() {
    let test = "without_subordinate_ids_the_caller_owns_everything_and_is_told";
    let Some((_root_store, archive)) = owned_images(test) else {
        return;
    };
    let Some(u) = Rootless::new(test, "nobody") else {
        return;
    };
    let warned = u.warnings(&["load", "-i", archive.to_str().unwrap()]);
    assert!(warned.contains("no subordinate ids"), "{warned}");
    assert!(
        warned.contains("entries keep the caller as their owner"),
        "{warned}"
    );
    let info = u.info();
    assert!(
        info["ID Mappings"].ends_with("(the caller alone: no subordinate ids)"),
        "{info:?}"
    );
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "owned:1",
            "stat",
            "-c",
            "%u:%g %a",
            "/srv/hundred",
            "/srv/shadow",
            "/srv/suid"
        ]),
        "0:0 644\n0:0 640\n0:0 755",
        "an owner kept as the caller loses set-user-ID"
    );
}

/// A mount lives in the store's namespace: the caller outside is told,
/// `strata unshare` sees it, `unshare --stop` ends the namespace and the
/// next command makes a new one where the container mounts again.
#[test]
fn mounts_live_in_the_namespace_and_unshare_sees_them() {
    let Some((_root_store, u)) = loaded("mounts_live_in_the_namespace_and_unshare_sees_them")
    else {
        return;
    };
    u.ok(&["create", "--name", "c", "owned:1"]);
    let out = u.run(&["mount", "c"]);
    assert!(out.status.success());
    let m = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("strata unshare"),
        "the caller is told where the mount is"
    );
    assert!(
        !Path::new(&m).join("srv/hundred").exists(),
        "not mounted outside"
    );
    let inside = format!("cat '{m}/srv/hundred'; stat -c %u '{m}/srv/hundred'; id -u");
    assert_eq!(u.ok(&["unshare", "sh", "-c", &inside]), "hundred\n100\n0");
    assert_eq!(
        u.ok(&["unshare", "sh", "-c", "echo $STRATA_ROOT"]),
        u.root().display().to_string()
    );
    // Inside, root of the namespace still has the user's store.
    let nested = format!(
        "unset STRATA_ROOT; '{}' info | grep '^Root:'",
        u.exe.display()
    );
    assert_eq!(
        u.ok(&["unshare", "sh", "-c", &nested]),
        format!("Root: {}", u.root().display())
    );
    // The command's status is unshare's: strata execs it.
    assert_eq!(
        u.run(&["unshare", "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    assert_eq!(
        u.run(&["unshare", "no-such-command"]).status.code(),
        Some(127)
    );
    // A relative path from the caller's directory reaches the mount.
    let relative = Path::new(&m).strip_prefix(u.dir.path()).unwrap();
    assert_eq!(
        u.ok(&[
            "unshare",
            "cat",
            &format!("{}/srv/hundred", relative.display())
        ]),
        "hundred"
    );

    let keeper = u.keeper().expect("a keeper");
    assert!(u.ok(&["unshare", "--stop"]).contains(&keeper.to_string()));
    containers::wait_until(10, "the keeper's end", || {
        // Gone, or a zombie until whoever adopted it reaps it.
        fs::read_to_string(format!("/proc/{keeper}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    let m2 = u.ok(&["mount", "c"]);
    assert_eq!(m2, m);
    assert_eq!(
        u.ok(&["unshare", "cat", &format!("{m}/srv/hundred")]),
        "hundred"
    );
    assert_ne!(u.keeper(), Some(keeper), "a new keeper");
    u.ok(&["umount", "c"]);

    // A keeper killed behind strata's back (a zombie until reaped, where
    // nothing reaps) is replaced by the next command.
    let keeper = u.keeper().expect("a keeper");
    sh(&format!("kill -9 {keeper}"));
    containers::wait_until(10, "the keeper's end", || {
        fs::read_to_string(format!("/proc/{keeper}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    assert_eq!(u.ok(&["images", "-q"]).lines().count(), 2);
    assert_ne!(u.keeper(), Some(keeper), "a new keeper");
}

/// `system reset` removes a store and nothing else: a directory that is
/// no store is refused, and so is a store's root holding files strata did
/// not make, with nothing removed.
#[test]
fn system_reset_removes_only_a_store() {
    let Some((_root_store, u)) = loaded("system_reset_removes_only_a_store") else {
        return;
    };
    let mine = u.path("home/docs");
    fs::create_dir(&mine).unwrap();
    fs::write(mine.join("thesis.txt"), "years of work").unwrap();
    std::os::unix::fs::chown(&mine, Some(u.uid), Some(u.gid)).unwrap();
    let refused = u.err(&[
        "--root",
        mine.to_str().unwrap(),
        "system",
        "reset",
        "--force",
    ]);
    assert!(refused.contains("no strata store"), "{refused}");
    assert!(mine.join("thesis.txt").exists());

    fs::write(u.root().join("notes.txt"), "mine").unwrap();
    let refused = u.err(&["system", "reset", "--force"]);
    assert!(refused.contains("notes.txt"), "{refused}");
    assert_eq!(
        u.ok(&["images", "-q"]).lines().count(),
        2,
        "nothing removed"
    );
    fs::remove_file(u.root().join("notes.txt")).unwrap();
    u.ok(&["system", "reset", "--force"]);
    assert!(!u.root().exists());
    assert_eq!(u.keeper(), None);
}

/// Containers in the background, run by the user: exec, logs, stop, a
/// port published on the host's loopback through pasta; a resource limit
/// without a delegated cgroup is refused in words.
#[test]
fn rootless_containers_run_in_the_background() {
    let test = "rootless_containers_run_in_the_background";
    let Some((_root_store, u)) = loaded(test) else {
        return;
    };
    u.ok(&[
        "run",
        "-d",
        "--name",
        "bg",
        "owned:1",
        "sh",
        "-c",
        "echo started; while :; do sleep 1; done",
    ]);
    assert_eq!(
        u.ok(&["exec", "bg", "stat", "-c", "%u", "/srv/hundred"]),
        "100"
    );
    containers::wait_until(20, "the log line", || {
        u.ok(&["logs", "bg"]).contains("started")
    });
    // A published port: the host reaches a server in the container.
    let port = containers::free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    u.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "-p",
        &publish,
        "owned:1",
        "sh",
        "-c",
        "trap 'exit 0' TERM; busybox nc -ll -p 8080 -e echo hello & wait",
    ]);
    assert_eq!(containers::read_from(test, port), "hello\n");
    u.ok(&["rm", "-f", "srv"]);
    // The namespace is not ended under a running container.
    let refused = u.err(&["unshare", "--stop"]);
    assert!(refused.contains("still run"), "{refused}");
    u.ok(&["stop", "-t", "1", "bg"]);
    assert!(u
        .ok(&["ps", "-a", "--format", "{{.Status}}"])
        .starts_with("Exited"));
    u.ok(&["rm", "bg"]);
    let refused = u.err(&["run", "--rm", "--memory", "64m", "owned:1", "true"]);
    assert!(
        refused.contains("--memory") && refused.contains("without root"),
        "{refused}"
    );
}
