//! A tampered store, as an outside probe left it: records whose IDs,
//! names and pointers are paths out of the store, records too large to
//! read, and store directories another user controls. Nothing read from
//! disk is used as a path (DESIGN §4): each record that fails is corrupt,
//! and a canary outside the store stays whole whatever runs.

mod common;

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use strata_store::{Container, ContainerSpec, ErrorKind, FindingKind, Store};

use strata_test_support::{require_root, swap_for_link};

use common::rootfs_tar;

/// A store in a temp dir (root `<tmp>/root`, vfs) with `img:1` and a
/// container `c` of it, and a canary directory outside the store.
struct Fixture {
    t: tempfile::TempDir,
    store: Store,
    c: Container,
}

impl Fixture {
    fn new() -> Fixture {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("root"), Some("vfs")).unwrap();
        store
            .import(&mut Cursor::new(rootfs_tar()), Some("img:1"), "")
            .unwrap();
        let spec = ContainerSpec {
            name: Some("c".into()),
            ..ContainerSpec::default()
        };
        let c = store.create_container("img:1", &spec).unwrap();
        for v in ["victim", "x"] {
            fs::create_dir(t.path().join(v)).unwrap();
            fs::write(t.path().join(v).join("canary"), "alive\n").unwrap();
        }
        Fixture { t, store, c }
    }

    fn root(&self) -> PathBuf {
        self.store.root().to_owned()
    }

    fn config(&self) -> PathBuf {
        self.root()
            .join("containers")
            .join(self.c.id.as_str())
            .join("config.json")
    }

    /// Rewrites field `key` of `c`'s config.json.
    fn set_config(&self, key: &str, value: Value) {
        let mut v: Value = serde_json::from_slice(&fs::read(self.config()).unwrap()).unwrap();
        v[key] = value;
        fs::write(self.config(), serde_json::to_vec(&v).unwrap()).unwrap();
    }

    fn mounts_record(&self) -> PathBuf {
        self.root()
            .join("image/vfs/layerdb/mounts")
            .join(self.c.id.as_str())
    }

    /// The canaries outside the store are whole.
    fn assert_canaries(&self) {
        for v in ["victim", "x"] {
            let p = self.t.path().join(v).join("canary");
            assert_eq!(
                fs::read_to_string(&p).unwrap_or_default(),
                "alive\n",
                "{} was touched",
                p.display()
            );
            let entries = fs::read_dir(self.t.path().join(v)).unwrap().count();
            assert_eq!(entries, 1, "something was written into {v}");
        }
    }

    /// Every command a user may run on the damaged store: none panics,
    /// each either works or fails with an error; returns the errors.
    fn run_everything(&self) -> Vec<strata_store::Error> {
        let s = &self.store;
        let id = self.c.id.to_string();
        let mut errors = Vec::new();
        let mut keep = |r: Result<(), strata_store::Error>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        keep(s.readable_containers().map(|_| ()));
        keep(s.containers().map(|_| ()));
        for who in ["c", id.as_str(), &id[..12]] {
            keep(
                s.resolve_container(who)
                    .and_then(|c| s.remove_container(&c, false)),
            );
            keep(
                s.resolve_container(who)
                    .and_then(|c| s.remove_container(&c, true)),
            );
        }
        keep(s.remove_image("img:1", false).map(|_| ()));
        keep(s.remove_image("img:1", true).map(|_| ()));
        keep(s.prune_with(true, true).map(|_| ()));
        keep(s.disk_usage().map(|_| ()));
        keep(s.check(false).map(|_| ()));
        keep(s.check(true).map(|_| ()));
        keep(Store::open(&self.root(), None).map(|_| ()));
        errors
    }
}

fn corrupt_containers(report: &strata_store::Report) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::BrokenContainer && !f.repaired)
        .map(|f| f.object.clone())
        .collect()
}

#[test]
fn a_container_id_that_climbs_out_is_corrupt_and_never_a_path() {
    let f = Fixture::new();
    f.set_config("ID", "../../victim".into());
    let e = f.store.resolve_container("c").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("is corrupt") && msg.contains("\"../../victim\" is not a container ID"),
        "{msg}"
    );
    let (ok, bad) = f.store.readable_containers().unwrap();
    assert!(ok.is_empty());
    assert_eq!(bad.len(), 1);
    assert_eq!(
        corrupt_containers(&f.store.check(false).unwrap()),
        [f.c.id.to_string()]
    );
    let errors = f.run_everything();
    assert!(errors.iter().any(|e| e.kind() == ErrorKind::Corrupt));
    f.assert_canaries();
    assert_eq!(
        corrupt_containers(&f.store.check(true).unwrap()),
        [f.c.id.to_string()]
    );
}

#[test]
fn a_container_id_must_be_the_name_of_its_directory() {
    let f = Fixture::new();
    // Another container's ID: rm would remove that one's records.
    let other = "f".repeat(64);
    fs::create_dir(f.root().join("containers").join(&other)).unwrap();
    f.set_config("ID", other.as_str().into());
    let e = f.store.resolve_container("c").unwrap_err();
    assert!(
        e.to_string().contains("is not the name of its directory"),
        "{e}"
    );
    f.run_everything();
    assert!(f.root().join("containers").join(&other).is_dir());
    f.assert_canaries();
}

#[test]
fn a_short_container_id_panics_nothing() {
    let f = Fixture::new();
    f.set_config("ID", "abc".into());
    f.run_everything();
    // A record whose directory is named by the short ID too.
    let short = f.root().join("containers/abc");
    fs::create_dir(&short).unwrap();
    fs::copy(f.config(), short.join("config.json")).unwrap();
    let errors = f.run_everything();
    assert!(!errors.is_empty());
    let report = f.store.check(false).unwrap();
    assert!(corrupt_containers(&report).contains(&"abc".to_owned()));
    f.assert_canaries();
}

#[test]
fn a_mount_id_or_name_that_climbs_out_is_corrupt() {
    for (key, value) in [
        ("MountID", Value::from("../../../x")),
        ("Name", Value::from("../../x")),
        (
            "Mounts",
            serde_json::json!([{"Type": "volume", "Name": "../../x", "Source": "/x",
                                "Destination": "/data", "Mode": "", "RW": true}]),
        ),
    ] {
        let f = Fixture::new();
        f.set_config(key, value);
        let e = f.store.resolve_container(f.c.id.as_str()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{key}: {e}");
        f.run_everything();
        f.assert_canaries();
    }
}

#[test]
fn a_mount_record_naming_paths_is_rewritten_or_dropped_without_following_them() {
    let f = Fixture::new();
    let record = f.mounts_record();
    fs::write(record.join("mount-id"), "../../../x").unwrap();
    fs::write(record.join("init-id"), "../../../x-init").unwrap();
    let report = f.store.check(true).unwrap();
    assert!(
        report
            .findings
            .iter()
            .any(|r| r.kind == FindingKind::BrokenContainer && r.repaired),
        "{report:?}"
    );
    assert_eq!(
        fs::read_to_string(record.join("mount-id")).unwrap(),
        f.c.mount_id.as_str()
    );
    // A record whose container is gone, and one being removed: their
    // IDs are never handed to the driver.
    let orphan = f
        .root()
        .join("image/vfs/layerdb/mounts")
        .join("e".repeat(64));
    let removing = f
        .root()
        .join("image/vfs/layerdb/mounts")
        .join(format!("{}-removing", "d".repeat(64)));
    for d in [&orphan, &removing] {
        fs::create_dir(d).unwrap();
        fs::write(d.join("mount-id"), "../../../x").unwrap();
        fs::write(d.join("init-id"), "../../../x-init").unwrap();
    }
    let report = f.store.check(true).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(!orphan.exists() && !removing.exists());
    f.assert_canaries();
    let _ = Store::open(&f.root(), None).unwrap();
    f.assert_canaries();
}

#[test]
fn a_cache_id_that_climbs_out_is_corrupt() {
    let f = Fixture::new();
    let layer = f.store.layers().unwrap().remove(0);
    let dir = f
        .root()
        .join("image/vfs/layerdb/sha256")
        .join(layer.chain_id.hex());
    for bad in ["../x", "../../../x"] {
        fs::write(dir.join("cache-id"), bad).unwrap();
        let e = f.store.layer(&layer.chain_id).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        let report = f.store.check(false).unwrap();
        assert!(
            report
                .findings
                .iter()
                .any(|r| r.kind == FindingKind::BadLayer && r.object == layer.chain_id.as_str()),
            "{report:?}"
        );
        f.run_everything();
        f.assert_canaries();
    }
    // Staging that names it is removed without the driver hearing of it.
    let staged = f.root().join("image/vfs/layerdb/tmp/abc");
    fs::create_dir(&staged).unwrap();
    fs::write(staged.join("cache-id"), "../../../x").unwrap();
    let _ = Store::open(&f.root(), None).unwrap();
    assert!(!staged.exists());
    f.assert_canaries();
}

#[test]
fn a_name_that_holds_a_path_is_refused() {
    let f = Fixture::new();
    fs::write(f.root().join("names/n"), "../../x").unwrap();
    let e = f.store.resolve_container("n").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let report = f.store.check(true).unwrap();
    let found = report
        .findings
        .iter()
        .find(|r| r.object == "name n")
        .expect("the name is reported");
    assert!(found.repaired && found.message.contains("not a container ID"));
    assert!(!f.root().join("names/n").exists());
    // The name is free again.
    let spec = ContainerSpec {
        name: Some("n".into()),
        ..ContainerSpec::default()
    };
    f.store.create_container("img:1", &spec).unwrap();
    f.assert_canaries();
}

#[test]
fn records_too_large_are_refused_before_they_are_read() {
    let f = Fixture::new();
    let repos = f.root().join("image/vfs/repositories.json");
    let big = fs::File::create(&repos).unwrap();
    big.set_len(40 << 20).unwrap();
    let e = f.store.images().unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
    assert!(e.to_string().contains("repositories.json"), "{e}");
    assert!(f.store.resolve_image("img:1").is_err());
    fs::remove_file(&repos).unwrap();
    // One-value records are capped at a few KiB.
    let layer = f.store.layers().unwrap().remove(0);
    let cache_id = f
        .root()
        .join("image/vfs/layerdb/sha256")
        .join(layer.chain_id.hex())
        .join("cache-id");
    fs::write(&cache_id, "a".repeat(5000)).unwrap();
    let e = f.store.layer(&layer.chain_id).unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
}

#[test]
fn a_full_id_matches_before_a_name_that_looks_like_one() {
    let f = Fixture::new();
    let id = f.c.id.to_string();
    let named = |name: &str| {
        let spec = ContainerSpec {
            name: Some(name.into()),
            ..ContainerSpec::default()
        };
        f.store.create_container("img:1", &spec).unwrap()
    };
    let by_full = named(&id);
    let by_prefix = named(&id[..12]);
    assert_eq!(f.store.resolve_container(&id).unwrap().id, f.c.id);
    // A name before a prefix.
    assert_eq!(
        f.store.resolve_container(&id[..12]).unwrap().id,
        by_prefix.id
    );
    // Only IDs are prefixes: names are matched whole.
    assert_eq!(f.store.resolve_container(&id[..11]).unwrap().id, f.c.id);
    assert_eq!(
        f.store.resolve_container(by_full.name.as_str()).unwrap().id,
        f.c.id
    );
    assert_eq!(f.store.resolve_container("c").unwrap().id, f.c.id);

    // Images: a full ID (with or without sha256:) before a tag; a tag
    // cannot be 64 hex digits, as in Docker.
    let img = f.store.resolve_image("img:1").unwrap();
    assert_eq!(f.store.resolve_image(img.hex()).unwrap(), img);
    assert_eq!(f.store.resolve_image(img.as_str()).unwrap(), img);
    let e = f.store.tag(&img, img.hex()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

/// A store whose directory `rel` another user may control, set up by
/// `damage`: opening it is refused with `why` in the message, and the
/// outside directory gets nothing.
fn refused(rel: &str, why: &str, damage: impl FnOnce(&Path, &Path)) {
    let f = Fixture::new();
    let root = f.root();
    let outside = f.t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    damage(&root.join(rel), &outside);
    let e = match Store::open(&root, None) {
        Ok(_) => panic!("{rel}: the store opened"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{rel}: {msg}");
    assert!(msg.contains(&root.join(rel).display().to_string()), "{msg}");
    assert!(msg.contains(why), "{rel}: {msg}");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "{rel}: strata wrote outside the store"
    );
    f.assert_canaries();
}

#[test]
fn store_directories_that_are_symlinks_are_refused() {
    for rel in [
        "names",
        "containers",
        "tmp",
        "image",
        "image/vfs",
        "image/vfs/layerdb/mounts",
        "vfs",
    ] {
        refused(rel, "symbolic link", swap_for_link);
    }
    refused("lock", "symbolic link", |lock, outside| {
        fs::remove_file(lock).unwrap();
        std::os::unix::fs::symlink(outside.join("lock"), lock).unwrap();
    });
}

#[test]
fn store_directories_another_user_owns_are_refused() {
    if !require_root() {
        return;
    }
    for rel in ["names", "containers", "image/vfs/layerdb", "vfs", "lock"] {
        refused(rel, "owned by uid 65534", |p, _| {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        });
    }
    // Open to all as well as another's.
    refused("names", "owned by uid 65534", |p, _| {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
    });
    // The root itself.
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
    let e = Store::open(&root, Some("vfs")).err().expect("refused");
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn a_store_directory_open_to_all_is_tightened_and_what_others_put_there_is_refused() {
    if !require_root() {
        return;
    }
    let f = Fixture::new();
    let names = f.root().join("names");
    fs::set_permissions(&names, fs::Permissions::from_mode(0o777)).unwrap();
    // Meanwhile, another user plants a name for the container.
    fs::write(names.join("planted"), f.c.id.as_str()).unwrap();
    std::os::unix::fs::lchown(names.join("planted"), Some(65534), Some(65534)).unwrap();
    let store = Store::open(&f.root(), None).unwrap();
    assert_eq!(fs::metadata(&names).unwrap().mode() & 0o777, 0o700);
    let e = store.resolve_container("planted").unwrap_err();
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
}

#[test]
fn a_root_that_is_a_symlink_to_a_store_of_ours_opens() {
    let f = Fixture::new();
    let link = f.t.path().join("link");
    std::os::unix::fs::symlink(f.root(), &link).unwrap();
    let store = Store::open(&link, None).unwrap();
    assert_eq!(store.root(), fs::canonicalize(f.root()).unwrap());
    assert_eq!(store.resolve_container("c").unwrap().id, f.c.id);
}

#[test]
fn a_symlink_at_a_temp_name_is_replaced_not_followed() {
    let f = Fixture::new();
    let canary = f.t.path().join("x/canary");
    let image_dir = f.root().join("image/vfs");
    std::os::unix::fs::symlink(&canary, image_dir.join(".repositories.json.tmp")).unwrap();
    let img = f.store.resolve_image("img:1").unwrap();
    f.store.tag(&img, "img:2").unwrap();
    assert_eq!(f.store.resolve_image("img:2").unwrap(), img);
    assert!(fs::symlink_metadata(image_dir.join("repositories.json"))
        .unwrap()
        .is_file());
    f.assert_canaries();
}

#[test]
fn a_local_volume_whose_source_is_not_its_data_is_corrupt() {
    let f = Fixture::new();
    let data = f.root().join("volumes/v/_data");
    let mount = |source: &Path| {
        serde_json::json!([{"Type": "volume", "Name": "v", "Source": source,
                            "Destination": "/data", "Driver": "local", "Mode": "rw", "RW": true}])
    };
    f.set_config("Mounts", mount(&data));
    assert_eq!(f.store.resolve_container("c").unwrap().mounts.len(), 1);
    for bad in [f.t.path().join("victim"), PathBuf::from("victim")] {
        f.set_config("Mounts", mount(&bad));
        let e = f.store.resolve_container("c").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert_eq!(
            corrupt_containers(&f.store.check(false).unwrap()),
            [f.c.id.to_string()]
        );
    }
}
