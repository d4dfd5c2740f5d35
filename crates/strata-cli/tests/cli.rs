//! End-to-end tests through the built `strata` binary, on real overlay
//! mounts (and vfs): import, containers, diff, commit, export, rmi, and
//! the identities (chainIDs, image IDs) checked against values computed
//! independently with coreutils' sha256sum.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{as_root, require_root, sh, sha256_of, Strata};

impl Strata {
    /// A small root file system tarball: etc/, bin/, a file to delete.
    fn rootfs_tar(&self) -> PathBuf {
        let src = self.dir.path().join("rootfs");
        fs::create_dir_all(src.join("etc")).unwrap();
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("etc/os-release"), "ID=strata-test\n").unwrap();
        fs::write(src.join("etc/delete-me"), "x").unwrap();
        fs::write(src.join("bin/tool"), "#!/bin/sh\n").unwrap();
        let tar = self.dir.path().join("rootfs.tar");
        sh(&format!(
            "tar --numeric-owner -C '{}' -cf '{}' .",
            src.display(),
            tar.display()
        ));
        tar
    }
}

/// The store's flow on `driver`; returns the store's root (now gone).
fn flow(driver: &'static str) -> String {
    let s = Strata::new(driver);
    let tar = s.rootfs_tar();
    let image = s.ok(&["import", tar.to_str().unwrap(), "base:1"]);
    // The image ID is the sha256 of its config, byte for byte.
    let config = fs::read(
        s.root()
            .join("image")
            .join(driver)
            .join("imagedb/content/sha256")
            .join(&image[7..]),
    )
    .unwrap();
    assert_eq!(sha256_of(&config), image);
    // The diffID is the sha256 of the tar.
    let diff1 = sha256_of(&fs::read(&tar).unwrap());
    let layers: serde_json::Value =
        serde_json::from_str(&s.ok(&["layers", "--format", "json"])).unwrap();
    assert_eq!(layers[0]["DiffID"], diff1.as_str());
    assert_eq!(layers[0]["ChainID"], diff1.as_str());
    // Importing the same layer again stores it once.
    s.ok(&["import", tar.to_str().unwrap(), "base:again"]);
    let layers: serde_json::Value =
        serde_json::from_str(&s.ok(&["layers", "--format", "json"])).unwrap();
    assert_eq!(layers.as_array().unwrap().len(), 1);

    // Two containers from one image are isolated from each other and
    // from the image.
    s.ok(&["create", "--name", "one", "base:1"]);
    s.ok(&["create", "--name", "two", "base:1"]);
    let m1 = PathBuf::from(s.ok(&["mount", "one"]));
    let m2 = PathBuf::from(s.ok(&["mount", "two"]));
    common::change_base(&m1);
    assert_eq!(
        fs::read_to_string(m2.join("etc/os-release")).unwrap(),
        "ID=strata-test\n"
    );
    assert!(m2.join("etc/delete-me").exists());
    // The init layer is there, and not part of the changes.
    assert!(m1.join("etc/hosts").exists());
    assert_eq!(
        fs::read_link(m1.join("etc/mtab")).unwrap(),
        Path::new("/proc/mounts")
    );
    let diff = s.ok(&["diff", "one"]);
    assert_eq!(diff.lines().collect::<Vec<_>>(), common::BASE_CHANGES);

    // export equals the merged view (tars carry whole seconds: give the
    // changed paths whole-second mtimes so the naive compare sees equals).
    sh(&format!(
        "cd '{}' && touch -h -d @1700000000 srv/new srv etc/os-release etc",
        m1.display()
    ));
    let exported = s.dir.path().join("export.tar");
    s.ok(&["export", "-o", exported.to_str().unwrap(), "one"]);
    let unpacked = s.dir.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    s.ok(&[
        "archive",
        "apply",
        unpacked.to_str().unwrap(),
        exported.to_str().unwrap(),
    ]);
    let same = s.ok(&[
        "archive",
        "changes",
        unpacked.to_str().unwrap(),
        "--from",
        m1.to_str().unwrap(),
    ]);
    assert_eq!(same, "", "export differs from the merged view");

    // commit: a new image whose top layer has the change, whiteout
    // included; its chainID checked with sha256sum.
    let committed = s.ok(&["commit", "one", "base:2"]);
    let img: serde_json::Value =
        serde_json::from_str(&s.ok(&["image", "inspect", "base:2"])).unwrap();
    let diff_ids = img[0]["RootFS"]["Layers"].as_array().unwrap().clone();
    assert_eq!(diff_ids.len(), 2);
    assert_eq!(img[0]["Parent"], image.as_str());
    assert_eq!(img[0]["Id"], committed.as_str());
    let d2 = diff_ids[1].as_str().unwrap();
    let chain2 = sha256_of(format!("{diff1} {d2}").as_bytes());
    let layers: serde_json::Value =
        serde_json::from_str(&s.ok(&["layers", "--format", "json"])).unwrap();
    let top = layers
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["DiffID"] == d2)
        .expect("the committed layer");
    assert_eq!(top["ChainID"], chain2.as_str());
    assert_eq!(top["Parent"], diff1.as_str());
    let cache = top["CacheID"].as_str().unwrap();
    let layer_dir = match driver {
        "overlay2" | "fuse" => s.root().join(driver).join(cache).join("diff"),
        _ => s.root().join("vfs/dir").join(cache),
    };
    if driver != "vfs" {
        // The whiteout, as overlay stores it: char 0/0.
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let md = fs::symlink_metadata(layer_dir.join("etc/delete-me")).unwrap();
        assert!(md.file_type().is_char_device() && md.rdev() == 0);
        assert!(
            !layer_dir.join("etc/hosts").exists(),
            "the init layer leaked into the commit"
        );
    } else {
        assert!(!layer_dir.join("etc/delete-me").exists());
    }

    // A container from the committed image sees the change.
    s.mount_changed("base:2", "three");

    // rmi refuses an image a container uses; rm refuses a mounted one.
    assert!(s.err(&["rmi", "base:2"]).contains("used by container"));
    if driver != "vfs" {
        assert!(s.err(&["rm", "three"]).contains("mounted"));
    }
    for c in ["one", "two", "three"] {
        s.ok(&["umount", c]);
    }
    s.ok(&["rm", "three"]);
    let out = s.ok(&["rmi", "base:2"]);
    assert!(out.contains(&format!("Deleted: {committed}")), "{out}");
    s.ok(&["rm", "-f", "one", "two"]);
    s.ok(&["rmi", "base:1"]);
    let out = s.ok(&["rmi", "base:again"]);
    assert!(out.contains("Deleted: "), "{out}");
    // Nothing left: no layers, no driver layers.
    assert_eq!(s.ok(&["layers", "--format", "json"]), "[]");
    // A driver layer nothing names is found by check and removed by
    // check --repair.
    let home = match driver {
        "vfs" => s.root().join("vfs/dir"),
        d => s.root().join(d),
    };
    let orphan = home.join("0".repeat(64));
    fs::create_dir_all(orphan.join("diff/etc")).unwrap();
    let object = orphan.display().to_string();
    assert_eq!(
        s.findings(&[]),
        [("orphan-driver-layer".to_owned(), object.clone(), false)]
    );
    assert_eq!(
        s.findings(&["--repair"]),
        [("orphan-driver-layer".to_owned(), object, true)]
    );
    assert!(!orphan.exists());
    assert_eq!(s.findings(&[]), []);
    let info: serde_json::Value =
        serde_json::from_str(&s.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(info["Layers"], "0", "{info}");
    s.root().display().to_string()
}

#[test]
fn store_flow_on_overlay2() {
    if require_root() {
        flow("overlay2");
    }
}

/// The fuse driver: overlay2's layout, each union served by a `strata
/// union-mount` process of its own that ends with the unmount.
#[test]
fn store_flow_on_fuse() {
    if require_root() {
        let root = flow("fuse");
        // `[u]`: not the shell running pgrep itself.
        let left = sh(&format!("pgrep -f '[u]nion-mount .*{root}' || true"));
        assert_eq!(left, "", "union servers left running");
    }
}

#[test]
fn store_flow_on_vfs() {
    if require_root() {
        flow("vfs");
    }
}

/// Each subcommand's arguments are built only when it is the one parsed
/// (`Command::defer`): its help still says what the subcommand's own doc
/// says, never the doc of the arguments' struct, and a mistyped command
/// is still told apart.
#[test]
fn help_and_usage_errors_survive_deferred_arguments() {
    let strata = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(args)
            .output()
            .unwrap()
    };
    for (args, first) in [
        (
            &["create", "--help"][..],
            "Create a container; prints its ID",
        ),
        (
            &["run", "--help"],
            "Create a container and run its command (through crun or runc)",
        ),
        (&["image", "ls", "--help"], "List images (as `images`)"),
        (
            &["commit", "--help"],
            "Make an image of a container's changes; prints its ID",
        ),
    ] {
        let out = strata(args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().next(), Some(first), "{args:?}:\n{text}");
        assert!(text.contains("Usage: strata "), "{args:?}:\n{text}");
    }
    let create = String::from_utf8_lossy(&strata(&["create", "--help"]).stdout).into_owned();
    for flag in ["--name", "--volume", "--env"] {
        assert!(
            create.contains(flag),
            "create --help lacks {flag}:\n{create}"
        );
    }
    let typo = strata(&["creat"]);
    assert_eq!(typo.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("'create'"));
    let bad = strata(&["create", "--bogus", "x"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--bogus"));
}

#[test]
fn a_store_keeps_its_driver() {
    let Some(s) = as_root("vfs") else { return };
    s.ok(&["images"]);
    let other = Strata {
        dir: tempfile::tempdir().unwrap(),
        driver: "overlay2",
    };
    let err = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(s.root())
        .args(["--driver", other.driver, "images"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("uses the vfs driver"));
}

#[test]
fn bad_input_leaves_the_store_as_it_was() {
    let Some(s) = as_root("overlay2") else { return };
    let bad = s.dir.path().join("bad.tar");
    fs::write(
        &bad,
        b"not a tar at all, just text that is long enough to look",
    )
    .unwrap();
    s.err(&["import", bad.to_str().unwrap(), "bad:1"]);
    assert_eq!(s.ok(&["layers", "--format", "json"]), "[]");
    assert_eq!(s.ok(&["images", "--format", "json"]), "[]");
    let leftovers = fs::read_dir(s.root().join("overlay2"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !matches!(n.as_str(), "l" | "refs" | "lock" | "probe"))
        .collect::<Vec<_>>();
    assert!(
        leftovers.is_empty(),
        "driver layers left behind: {leftovers:?}"
    );
    assert!(s.err(&["create", "nosuch:image"]).contains("no such image"));
    assert!(s
        .err(&["import", bad.to_str().unwrap(), "UPPER"])
        .contains("invalid reference"));
    // Not a reference at all: said so, not "no such image".
    for odd in ["a:b:c", ":tag", "name@", "a//b", "x:"] {
        for args in [
            &["create", odd][..],
            &["rmi", odd],
            &["image", "inspect", odd],
        ] {
            let e = s.err(args);
            assert!(e.contains("invalid reference"), "{args:?}: {e}");
        }
    }
}

/// A reference a killed process left on a container's init layer (a
/// `diff` interrupted on vfs) must not make the container impossible to
/// remove, nor leave it listed without its layers.
#[test]
fn rm_releases_stale_references() {
    let Some(s) = as_root("vfs") else { return };
    let tar = s.rootfs_tar();
    s.ok(&["import", tar.to_str().unwrap(), "base:1"]);
    s.ok(&["create", "--name", "c", "base:1"]);
    let info: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "c"])).unwrap();
    let init = info[0]["GraphDriver"]["Data"]["InitID"]
        .as_str()
        .unwrap()
        .to_owned();
    fs::write(s.root().join("vfs/refs").join(&init), "1\n").unwrap();
    s.ok(&["rm", "c"]);
    assert_eq!(s.ok(&["ps", "-a", "--format", "json"]), "[]");
    let left: Vec<String> = fs::read_dir(s.root().join("vfs/dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1, "only the image layer stays: {left:?}");
}
