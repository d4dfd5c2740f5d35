//! The store on btrfs, through the built binary: each test makes a btrfs
//! in a file and loop-mounts it (`LoopFs`, unmounted and detached when
//! dropped). A store whose root is there picks the btrfs driver by
//! itself; import, create, diff, commit, export, save and load, and a
//! crash's debris repaired by `check --repair`, work as on overlay2, with
//! every layer a subvolume and a container a snapshot of its image.
//! SKIPPED (failing under CI) without root, btrfs, btrfs-progs or loop
//! devices.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{info_choosing, require_root, sh, succeeded, Strata};
use serde_json::Value;
use strata_driver::conformance::LoopFs;

/// `BTRFS_FIRST_FREE_OBJECTID`: a subvolume's root directory's inode.
const SUBVOL_ROOT_INO: u64 = 256;

/// A btrfs and a store in it with the btrfs driver, or SKIPPED.
fn on_btrfs() -> Option<(LoopFs, Strata)> {
    if !require_root() {
        return None;
    }
    let fs = LoopFs::btrfs()?;
    let s = Strata {
        dir: tempfile::tempdir_in(fs.path()).unwrap(),
        driver: "btrfs",
    };
    Some((fs, s))
}

fn is_subvolume(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir() && m.ino() == SUBVOL_ROOT_INO)
}

/// As Docker does: a store whose root is on btrfs uses the btrfs driver
/// without being told; one elsewhere does not.
#[test]
fn a_store_on_btrfs_chooses_btrfs() {
    let Some((_fs, s)) = on_btrfs() else { return };
    let info = info_choosing(&s.root());
    assert_eq!(info["Storage Driver"], "btrfs", "{info}");
    assert!(
        info["Backing Filesystem"]
            .as_str()
            .is_some_and(|b| b.starts_with("btrfs")),
        "{info}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let info = info_choosing(&elsewhere.path().join("root"));
    assert_ne!(info["Storage Driver"], "btrfs", "{info}");

    // Without root, subvolumes cannot be deleted: a rootless store on
    // btrfs goes on to the next driver, in its user namespace or not.
    let home = s.path("nobody");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let exe = common::copy_of_strata(&s.path("strata"));
    let as_nobody = |userns: &str, args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["--inh-caps=-all"])
            .arg(&exe)
            .arg("--root")
            .arg(home.join(format!("root-{userns}")))
            .args(args)
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("STRATA_USERNS", userns)
            .output()
            .unwrap();
        succeeded("strata as nobody", out)
    };
    for userns in ["auto", "host"] {
        let info: Value =
            serde_json::from_str(&as_nobody(userns, &["info", "--format", "json"])).unwrap();
        assert_ne!(info["Storage Driver"], "btrfs", "{userns}: {info}");
    }
    as_nobody("auto", &["unshare", "--stop"]);
}

/// import, create, change, diff, commit, a container of the commit,
/// export, save, rmi and load back, check: all on btrfs subvolumes.
#[test]
fn store_flow_on_btrfs() {
    let Some((_fs, s)) = on_btrfs() else { return };
    s.import_tree(&common::base_tree(&s), "base:1");
    let subvols = s.root().join("btrfs/subvolumes");

    s.ok(&["create", "--name", "one", "base:1"]);
    let m1 = PathBuf::from(s.ok(&["mount", "one"]));
    assert!(
        m1.starts_with(&subvols) && is_subvolume(&m1),
        "a container's root is its subvolume, not a mount: {}",
        m1.display()
    );
    s.change_and_export(&m1, "one");

    s.ok(&["umount", "one"]);
    let committed = s.ok(&["commit", "one", "base:2"]);
    s.mount_changed("base:2", "two");
    s.ok(&["umount", "two"]);

    // save, remove, load: the same image ID back.
    let saved = s.path("saved.tar");
    s.save_then_remove("base:2", &saved, &["one", "two"], &["base:2", "base:1"]);
    let left: Vec<_> = fs::read_dir(&subvols).unwrap().collect();
    assert!(left.is_empty(), "subvolumes left: {left:?}");
    s.ok(&["load", "-i", saved.to_str().unwrap()]);
    let img: Value = serde_json::from_str(&s.ok(&["image", "inspect", "base:2"])).unwrap();
    assert_eq!(img[0]["Id"], committed.as_str(), "{img}");
    assert_eq!(img[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    s.ok(&["create", "--name", "three", "base:2"]);
    let m3 = PathBuf::from(s.ok(&["mount", "three"]));
    assert_eq!(
        fs::read(m3.join("var/data/big")).unwrap(),
        vec![7u8; 4 << 20]
    );
    s.ok(&["umount", "three"]);
    assert_eq!(s.findings(&[]), []);
}

/// A crash's leftovers on btrfs (a subvolume half-made, one nothing
/// names) are found by `check` and deleted by `check --repair`.
#[test]
fn check_repairs_btrfs_debris() {
    let Some((_fs, s)) = on_btrfs() else { return };
    s.import_tree(&common::base_tree(&s), "base:1");
    s.ok(&["create", "--name", "one", "base:1"]);
    let subvols = s.root().join("btrfs/subvolumes");
    let one = PathBuf::from(s.ok(&["mount", "one"]));
    s.ok(&["umount", "one"]);
    // Snapshots made outside strata, as a crash mid-create leaves them.
    let debris = subvols.join(format!("{}-creating", "a".repeat(64)));
    let orphan = subvols.join("b".repeat(64));
    for p in [&debris, &orphan] {
        sh(&format!(
            "btrfs subvolume snapshot '{}' '{}' >/dev/null",
            one.display(),
            p.display()
        ));
    }
    let before = s.findings(&[]);
    let kinds: Vec<&str> = before.iter().map(|f| f.0.as_str()).collect();
    assert!(
        kinds.contains(&"debris") && kinds.contains(&"orphan-driver-layer"),
        "{before:?}"
    );
    let repaired = s.findings(&["--repair"]);
    assert!(repaired.iter().all(|f| f.2), "{repaired:?}");
    assert!(!debris.exists() && !orphan.exists());
    assert_eq!(s.findings(&[]), []);
    assert!(
        is_subvolume(&one),
        "the container's layer survived the repair"
    );
}

/// `--storage-opt size=`: a container limited to 32 MiB cannot write
/// 64 MiB (EDQUOT, "Disk quota exceeded"), the limit is in `inspect` and
/// `system df`, another container and the store are unaffected.
#[test]
fn storage_opt_size_limits_a_container() {
    let Some((_fs, s)) = on_btrfs() else { return };
    s.import_tree(&common::base_tree(&s), "base:1");
    s.ok(&[
        "create",
        "--name",
        "small",
        "--storage-opt",
        "size=32m",
        "base:1",
    ]);
    s.ok(&["create", "--name", "free", "base:1"]);
    let inspect: Value = serde_json::from_str(&s.ok(&["inspect", "small"])).unwrap();
    assert_eq!(
        inspect[0]["Config"]["HostConfig"]["StorageOpt"]["size"], "32m",
        "{inspect}"
    );
    let df: Value = serde_json::from_str(&s.ok(&["system", "df", "--format", "json"])).unwrap();
    let limit_of = |name: &str| {
        df["Containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Name"] == name)
            .map(|c| c["SizeLimit"].clone())
    };
    assert_eq!(limit_of("small"), Some(Value::from(32u64 << 20)), "{df}");
    assert_eq!(limit_of("free"), Some(Value::Null), "{df}");
    let small = PathBuf::from(s.ok(&["mount", "small"]));
    let free = PathBuf::from(s.ok(&["mount", "free"]));
    let fill = |dir: &Path| {
        Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", dir.join("fill").display()))
            .args(["bs=1M", "count=64", "conv=fsync"])
            .output()
            .unwrap()
    };
    let out = fill(&small);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Disk quota exceeded"),
        "64 MiB written under a 32 MiB limit: {err}"
    );
    let out = fill(&free);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for c in ["small", "free"] {
        s.ok(&["umount", c]);
    }
    assert_eq!(s.findings(&[]), []);
    s.ok(&["rm", "small", "free"]);
    s.ok(&["rmi", "base:1"]);
}

/// A driver that cannot enforce a size limit refuses the option, making
/// nothing; an option strata does not know is refused too.
#[test]
fn storage_opt_size_is_refused_where_it_cannot_be_enforced() {
    if !require_root() {
        return;
    }
    for driver in ["vfs", "overlay2"] {
        let s = Strata::new(driver);
        s.import_tree(&common::base_tree(&s), "base:1");
        let err = s.err(&[
            "create",
            "--name",
            "c",
            "--storage-opt",
            "size=1g",
            "base:1",
        ]);
        assert!(
            err.contains("cannot limit a container's size"),
            "{driver}: {err}"
        );
        assert_eq!(
            s.ok(&["ps", "-a", "--format", "json"]),
            "[]",
            "{driver}: a container was made"
        );
        assert_eq!(s.findings(&[]), [], "{driver}");
    }
    let s = Strata::new("vfs");
    s.import_tree(&common::base_tree(&s), "base:1");
    let err = s.err(&["create", "--storage-opt", "dm.basesize=1g", "base:1"]);
    assert!(err.contains("unknown storage option"), "{err}");
}

/// `run` on btrfs: a container's root is its subvolume; one run with
/// `--storage-opt size=16m` cannot write 64 MiB (Disk quota exceeded)
/// while one without a limit can, and nothing is left behind.
#[test]
fn run_with_a_size_limit_on_btrfs() {
    let test = "run_with_a_size_limit_on_btrfs";
    if !require_root()
        || !containers::have_runtime(test)
        || !fixtures::have_tools(test, &["busybox"])
    {
        return;
    }
    let Some((_fs, s)) = on_btrfs() else { return };
    s.busybox();
    assert_eq!(s.run_ok(&["busybox:test", "echo", "hello"]), "hello");
    let fill = "dd if=/dev/zero of=/fill bs=1M count=64 conv=fsync 2>&1; echo rc=$?";
    let out = s.run_ok(&[
        "--storage-opt",
        "size=16m",
        "busybox:test",
        "sh",
        "-c",
        fill,
    ]);
    assert!(
        out.contains("Disk quota exceeded") && !out.ends_with("rc=0"),
        "64 MiB written under a 16 MiB limit: {out}"
    );
    let out = s.run_ok(&["busybox:test", "sh", "-c", fill]);
    assert!(out.ends_with("rc=0"), "without a limit: {out}");
    assert_eq!(s.ok(&["ps", "-a", "--format", "json"]), "[]");
    assert_eq!(s.findings(&[]), []);
}
