//! A tampered store, through the binary: what an outside probe did
//! (acting as a store edited by hand and as another local user), and
//! what strata does now. Records whose IDs or names are paths out of the
//! store are corrupt and never used as paths; a store directory that is
//! a symlink, or another user's, keeps the store from opening; records
//! too large are refused. A canary directory outside the store stays
//! whole through every command.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{require_root, Strata};
use serde_json::Value;
use strata_test_support::swap_for_link;

/// A store with image `img:1` and container `c`, and canaries outside
/// it: `<tmp>/victim` and `<tmp>/x` (and `<root>/x`, where `../x` from
/// the driver's home lands).
struct Fixture {
    s: Strata,
    id: String,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        if !require_root() {
            return None;
        }
        let s = Strata::new("overlay2");
        let src = s.path("tree");
        fs::create_dir_all(src.join("etc")).unwrap();
        fs::write(src.join("etc/motd"), "hello\n").unwrap();
        s.import_tree(&src, "img:1");
        let id = s.ok(&["create", "--name", "c", "img:1"]);
        for dir in [s.path("victim"), s.path("x"), s.root().join("x")] {
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("canary"), "alive\n").unwrap();
        }
        Some(Fixture { s, id })
    }

    fn root(&self) -> PathBuf {
        self.s.root()
    }

    /// The container's mount ID (its driver layer).
    fn mount_id(&self) -> String {
        self.s.json(&["inspect", "c"])[0]["GraphDriver"]["Data"]["MountID"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn config(&self) -> PathBuf {
        self.root()
            .join("containers")
            .join(&self.id)
            .join("config.json")
    }

    fn set_config(&self, key: &str, value: Value) {
        let mut v: Value = serde_json::from_slice(&fs::read(self.config()).unwrap()).unwrap();
        v[key] = value;
        fs::write(self.config(), serde_json::to_vec(&v).unwrap()).unwrap();
    }

    fn assert_canaries(&self) {
        for dir in [
            self.s.path("victim"),
            self.s.path("x"),
            self.root().join("x"),
        ] {
            assert_eq!(
                fs::read_to_string(dir.join("canary")).unwrap_or_default(),
                "alive\n",
                "{} was touched",
                dir.display()
            );
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "{}", dir.display());
        }
    }

    /// Runs `args`; it may fail, but never panic (status 101).
    fn try_run(&self, args: &[&str]) -> Output {
        let out = self.s.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() != Some(101) && !err.contains("panicked"),
            "strata {args:?} panicked: {err}"
        );
        out
    }

    /// Every command that reads containers, none panicking; the canaries
    /// stay whole. Returns the stderr of all of them.
    fn run_everything(&self) -> String {
        let short = &self.id[..12];
        let mut all = String::new();
        for args in [
            &["ps"][..],
            &["ps", "-a"],
            &["ps", "-a", "--format", "json"],
            &["inspect", "c"],
            &["layers"],
            &["check"],
            &["rm", "c"],
            &["rm", "-f", "c"],
            &["rm", "-f", "-v", &self.id],
            &["rm", short],
            &["rmi", "img:1"],
            &["rmi", "-f", "img:1"],
            &["system", "df"],
            &["system", "prune"],
            &["system", "prune", "-a", "--volumes"],
            &["check", "--repair"],
            &["images"],
        ] {
            let out = self.try_run(args);
            all.push_str(&String::from_utf8_lossy(&out.stdout));
            all.push_str(&String::from_utf8_lossy(&out.stderr));
            self.assert_canaries();
        }
        all
    }
}

#[test]
fn a_container_id_that_climbs_out_is_reported_and_never_used() {
    let Some(f) = Fixture::new() else { return };
    f.set_config("ID", "../../victim".into());
    let err = f.s.err(&["rm", "c"]);
    assert!(err.contains("is corrupt"), "{err}");
    assert!(err.contains("../../victim"), "{err}");
    let err = f.s.err(&["rm", "-f", "c"]);
    assert!(err.contains("is corrupt"), "{err}");
    // ps lists the rest and warns.
    let out = f.try_run(&["ps", "-a"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&f.id));
    let found = f.s.findings(&[]);
    assert!(
        found.contains(&("broken-container".into(), f.id.clone(), false)),
        "{found:?}"
    );
    let found = f.s.findings(&["--repair"]);
    assert!(
        found.contains(&("broken-container".into(), f.id.clone(), false)),
        "{found:?}"
    );
    let err = f.s.err(&["rmi", "img:1"]);
    assert!(err.contains("is corrupt"), "{err}");
    let err = f.s.err(&["system", "prune", "-a"]);
    assert!(err.contains("is corrupt"), "{err}");
    f.run_everything();
    assert!(f.config().is_file(), "the record is kept for the operator");
}

#[test]
fn a_short_container_id_panics_nothing() {
    let Some(f) = Fixture::new() else { return };
    f.set_config("ID", "abc".into());
    f.run_everything();
    let dir = f.root().join("containers/abc");
    fs::create_dir(&dir).unwrap();
    fs::copy(f.config(), dir.join("config.json")).unwrap();
    let all = f.run_everything();
    assert!(all.contains("is corrupt"), "{all}");
}

#[test]
fn a_mount_id_that_climbs_out_is_never_used() {
    let Some(f) = Fixture::new() else { return };
    let record = f.root().join("image/overlay2/layerdb/mounts").join(&f.id);
    fs::write(record.join("mount-id"), "../../x").unwrap();
    fs::write(record.join("init-id"), "../../x-init").unwrap();
    f.set_config("MountID", "../../x".into());
    let err = f.s.err(&["rm", "-f", "c"]);
    assert!(err.contains("is not a mount ID"), "{err}");
    f.run_everything();
}

#[test]
fn a_cache_id_that_climbs_out_is_never_used() {
    let Some(f) = Fixture::new() else { return };
    let layers = f.root().join("image/overlay2/layerdb/sha256");
    let layer = fs::read_dir(&layers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::write(layer.join("cache-id"), "../x").unwrap();
    let found = f.s.findings(&[]);
    assert!(found.iter().any(|(k, _, _)| k == "bad-layer"), "{found:?}");
    // Listed without it, with a warning naming what is wrong.
    let out = f.try_run(&["images"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cache-id"), "{err}");
    f.run_everything();
}

#[test]
fn a_name_that_holds_a_path_is_never_followed() {
    let Some(f) = Fixture::new() else { return };
    fs::write(f.root().join("names/n"), "../x").unwrap();
    let err = f.s.err(&["rm", "-f", "n"]);
    assert!(err.contains("names/n"), "{err}");
    let found = f.s.findings(&["--repair"]);
    assert!(
        found.contains(&("debris".into(), "name n".into(), true)),
        "{found:?}"
    );
    f.assert_canaries();
    f.s.ok(&["create", "--name", "n", "img:1"]);
    fs::write(f.root().join("names/n"), "../x").unwrap();
    f.run_everything();
}

/// After `damage` to the store directory `rel`, every command is refused
/// with a message naming it and saying `why`, and nothing is written to
/// `<tmp>/outside`.
fn refused(rel: &str, why: &str, damage: impl FnOnce(&Path, &Path)) {
    let Some(f) = Fixture::new() else { return };
    let outside = f.s.path("outside");
    fs::create_dir(&outside).unwrap();
    let dir = match rel {
        "" => f.root(),
        rel => f.root().join(rel),
    };
    damage(&dir, &outside);
    for args in [
        &["create", "--name", "n", "img:1"][..],
        &["rm", "-f", "c"],
        &["images"],
        &["check", "--repair"],
    ] {
        let err = f.s.err(args);
        assert!(err.contains("refusing the store"), "{args:?}: {err}");
        assert!(err.contains(&dir.display().to_string()), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "written outside"
    );
    f.assert_canaries();
}

fn chown_nobody(dir: &Path, _: &Path) {
    std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
}

#[test]
fn a_store_directory_swapped_for_a_symlink_is_refused() {
    refused("names", "symbolic link", swap_for_link);
    refused("containers", "symbolic link", swap_for_link);
    refused("image/overlay2/layerdb", "symbolic link", swap_for_link);
    refused("overlay2", "symbolic link", swap_for_link);
}

#[test]
fn a_store_directory_another_user_owns_is_refused() {
    refused("names", "owned by uid 65534", chown_nobody);
    refused("containers", "owned by uid 65534", chown_nobody);
    refused("names", "owned by uid 65534", |dir, _| {
        chown_nobody(dir, dir);
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    });
    refused("", "owned by uid 65534", chown_nobody);
}

/// A directory of the caller's that is open to all is closed (with a
/// warning) by the next command that changes the store; one that only
/// reads warns and changes nothing. A record another user put there
/// meanwhile is not the store's.
#[test]
fn a_store_directory_open_to_all_is_tightened() {
    let Some(f) = Fixture::new() else { return };
    let names = f.root().join("names");
    fs::set_permissions(&names, fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(names.join("planted"), &f.id).unwrap();
    std::os::unix::fs::lchown(names.join("planted"), Some(65534), Some(65534)).unwrap();
    let out = f.try_run(&["ps", "-a"]);
    assert!(out.status.success());
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(warned.contains("lets other users change it"), "{warned}");
    assert_eq!(fs::metadata(&names).unwrap().mode() & 0o777, 0o777);
    let out = f.try_run(&["rm", "planted"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("other users cannot reach"),
        "{said}"
    );
    assert_eq!(fs::metadata(&names).unwrap().mode() & 0o777, 0o700);
    assert!(said.contains("owned by uid 65534"), "{said}");
    f.s.ok(&["rm", "c"]);
}

#[test]
fn a_repositories_json_of_40_mb_is_refused() {
    let Some(f) = Fixture::new() else { return };
    let repos = f.root().join("image/overlay2/repositories.json");
    let file = fs::File::create(&repos).unwrap();
    file.set_len(40 << 20).unwrap();
    for args in [&["images"][..], &["rmi", "img:1"], &["create", "img:1"]] {
        let err = f.s.err(args);
        assert!(err.contains("too large"), "{args:?}: {err}");
        assert!(err.contains("repositories.json"), "{args:?}: {err}");
    }
}

#[test]
fn a_lower_that_climbs_out_is_rebuilt_from_the_parents() {
    let Some(f) = Fixture::new() else { return };
    let mount = f.mount_id();
    let lower = f.root().join("overlay2").join(&mount).join("lower");
    let good = fs::read_to_string(&lower).unwrap();
    fs::write(&lower, "../../x").unwrap();
    let found = f.s.findings(&[]);
    assert!(
        found.contains(&("broken-lower".into(), mount.clone(), false)),
        "{found:?}"
    );
    let found = f.s.findings(&["--repair"]);
    assert!(
        found.contains(&("broken-lower".into(), mount.clone(), true)),
        "{found:?}"
    );
    assert_eq!(fs::read_to_string(&lower).unwrap(), good);
    f.assert_canaries();
}

#[test]
fn a_link_that_climbs_out_is_not_removed_with_its_layer() {
    let Some(f) = Fixture::new() else { return };
    let mount = f.mount_id();
    // From `<root>/overlay2/l/`, this is `<root>/x/canary`.
    let link = f.root().join("overlay2").join(&mount).join("link");
    fs::write(&link, "../../x/canary").unwrap();
    let found = f.s.findings(&[]);
    assert!(
        found.contains(&("missing-link".into(), mount.clone(), false)),
        "{found:?}"
    );
    f.s.ok(&["rm", "c"]);
    assert!(!f.root().join("overlay2").join(&mount).exists());
    f.assert_canaries();
}
