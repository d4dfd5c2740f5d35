//! `strata check` against damage planted by hand, one kind at a time,
//! each on a fresh overlay2 store: check names the damage by its kind and
//! fails, `check --repair` fixes what it can without losing committed
//! data (and leaves the rest, still failing), and a check afterwards is
//! clean wherever repair was possible.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::path::{Path, PathBuf};

use common::{require_root, Strata};
use fixtures::have_tools;
use serde_json::Value;

/// A finding as `check --format json` gives it: kind, object, repaired.
type Found = (String, String, bool);

/// A fresh store with `busybox:test` (one layer) and a created container
/// `c` of it, and where their pieces are on disk.
struct Fixture {
    s: Strata,
    /// `image/overlay2` under the (canonical) root.
    image_dir: PathBuf,
    /// The driver's home, `overlay2` under the root.
    home: PathBuf,
    /// `busybox:test`'s ID, and its layer's chainID and cache-id.
    image: String,
    chain: String,
    cache: String,
    /// Container `c`: its ID and its read-write layer (`<mount>-init` is
    /// its init layer).
    container: String,
    mount: String,
}

impl Fixture {
    /// The fixture, when root and busybox are here.
    fn new(test: &str) -> Option<Fixture> {
        if !require_root() || !have_tools(test, &["busybox"]) {
            return None;
        }
        let s = Strata::new("overlay2");
        s.busybox();
        let container = s.ok(&["create", "--name", "c", "busybox:test"]);
        let root = fs::canonicalize(s.root()).unwrap();
        let image = s.json(&["image", "inspect", "busybox:test"])[0]["Id"]
            .as_str()
            .unwrap()
            .to_owned();
        let layer = &s.json(&["layers", "--format", "json"])[0];
        let (chain, cache) = (str_of(&layer["ChainID"]), str_of(&layer["CacheID"]));
        let mount = str_of(&s.json(&["inspect", "c"])[0]["GraphDriver"]["Data"]["MountID"]);
        let f = Fixture {
            image_dir: root.join("image/overlay2"),
            home: root.join("overlay2"),
            s,
            image,
            chain,
            cache,
            container,
            mount,
        };
        assert_eq!(f.check(&[]), (true, vec![]), "the fixture is not clean");
        Some(f)
    }

    /// Runs `f` on container `c`'s merged view, mounted for it.
    fn in_c<T>(&self, f: impl FnOnce(&Path) -> T) -> T {
        let merged = PathBuf::from(self.s.ok(&["mount", "c"]));
        let out = f(&merged);
        self.s.ok(&["umount", "c"]);
        out
    }

    /// Writes `etc/motd` in `c`: the container's own data, which repair
    /// must keep.
    fn write_motd(&self) {
        self.in_c(|m| fs::write(m.join("etc/motd"), "kept\n").unwrap());
    }

    /// `c` mounts and shows its image, its init layer and its `etc/motd`.
    fn assert_c_works(&self) {
        self.in_c(|m| {
            assert!(m.join("bin/busybox").is_file(), "no image content");
            assert!(m.join("etc/hosts").is_file(), "no init layer");
            assert_eq!(fs::read_to_string(m.join("etc/motd")).unwrap(), "kept\n");
        });
    }

    /// Commits a change in `c` as `busybox:two`; returns its ID and its
    /// top layer's chainID.
    fn commit(&self) -> (String, String) {
        self.in_c(|m| fs::write(m.join("etc/motd"), "committed\n").unwrap());
        let id = self.s.ok(&["commit", "c", "busybox:two"]);
        let layers = self.s.json(&["layers", "--format", "json"]);
        let top = layers
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["Parent"] == self.chain.as_str())
            .expect("the committed layer");
        (id, str_of(&top["ChainID"]))
    }

    /// `layerdb/sha256/<hex>` of a chainID.
    fn layer_dir(&self, chain: &str) -> PathBuf {
        self.image_dir.join("layerdb/sha256").join(hex(chain))
    }

    /// The `l/` short link of a driver layer.
    fn link(&self, id: &str) -> PathBuf {
        let short = fs::read_to_string(self.home.join(id).join("link")).unwrap();
        self.home.join("l").join(short.trim())
    }

    /// Container `c`'s init layer.
    fn init(&self) -> String {
        format!("{}-init", self.mount)
    }

    /// Removes the driver layer `id`; returns its `l/` link as shown.
    fn remove_layer(&self, id: &str) -> String {
        let link = display(&self.link(id));
        fs::remove_dir_all(self.home.join(id)).unwrap();
        link
    }

    /// How check names container `c`.
    fn c(&self) -> String {
        format!("c ({})", self.container)
    }

    /// `strata check --format json ARGS`: whether it succeeded, and its
    /// findings but notes, sorted.
    fn check(&self, args: &[&str]) -> (bool, Vec<Found>) {
        let mut a = vec!["check", "--format", "json"];
        a.extend_from_slice(args);
        let out = self.s.run(&a);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "check printed no report ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let mut found: Vec<Found> = report["Findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["Kind"] != "note")
            .map(|f| {
                (
                    str_of(&f["Kind"]),
                    str_of(&f["Object"]),
                    f["Repaired"] == true,
                )
            })
            .collect();
        found.sort();
        assert_eq!(report["Clean"] == true, out.status.success(), "{report:#}");
        (out.status.success(), found)
    }

    /// After planting: `check ARGS` finds exactly `found` (text and JSON)
    /// and fails; `check --repair ARGS` reports `repair` (each finding and
    /// whether it was repaired) and fails only if something was not; a
    /// last check finds exactly what repair left.
    fn assert_check(&self, args: &[&str], found: &[(&str, &str)], repair: &[(&str, &str, bool)]) {
        let mut text = vec!["check"];
        text.extend_from_slice(args);
        let out = self.s.run(&text);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "check passed:\n{stdout}");
        for (kind, object) in found {
            let line = format!("{kind}: {object}: ");
            assert!(stdout.contains(&line), "no {line:?} in:\n{stdout}");
        }
        let unrepaired = found.iter().map(|&(k, o)| (k, o, false));
        assert_eq!(self.check(args), (false, owned(unrepaired)));

        let mut with_repair = vec!["--repair"];
        with_repair.extend_from_slice(args);
        let want = owned(repair.iter().copied());
        let all_fixed = want.iter().all(|f| f.2);
        assert_eq!(self.check(&with_repair), (all_fixed, want.clone()));

        let left: Vec<Found> = want
            .into_iter()
            .filter(|f| !f.2)
            .map(|(k, o, _)| (k, o, false))
            .collect();
        assert_eq!(self.check(args), (all_fixed, left));
        if all_fixed {
            assert!(self.s.ok(&text).contains("the store is consistent"));
        }
    }
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// Findings as [`Fixture::check`] returns them: owned and sorted.
fn owned<'a>(found: impl Iterator<Item = (&'a str, &'a str, bool)>) -> Vec<Found> {
    let mut v: Vec<Found> = found
        .map(|(k, o, r)| (k.to_owned(), o.to_owned(), r))
        .collect();
    v.sort();
    v
}

const ZEROS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn wrong_size_is_rewritten() {
    let Some(f) = Fixture::new("wrong_size_is_rewritten") else {
        return;
    };
    let size = f.layer_dir(&f.chain).join("size");
    let right = fs::read_to_string(&size).unwrap();
    fs::write(&size, "12345").unwrap();
    f.assert_check(
        &[],
        &[("wrong-size", &f.chain)],
        &[("wrong-size", &f.chain, true)],
    );
    assert_eq!(fs::read_to_string(&size).unwrap(), right);
}

/// A layer's size is its content's: repair measures a lost or garbled
/// one again, on a base layer and on a layer over its parent.
#[test]
fn lost_size_is_measured_again() {
    for (on_top, planted) in [(false, None), (true, Some("twelve"))] {
        let Some(f) = Fixture::new("lost_size_is_measured_again") else {
            return;
        };
        let chain = if on_top {
            f.commit().1
        } else {
            f.chain.clone()
        };
        f.write_motd();
        let size = f.layer_dir(&chain).join("size");
        let right = fs::read_to_string(&size).unwrap();
        match planted {
            Some(text) => fs::write(&size, text).unwrap(),
            None => fs::remove_file(&size).unwrap(),
        }
        f.assert_check(
            &[],
            &[("bad-layer", &chain)],
            &[("bad-layer", &chain, true)],
        );
        assert_eq!(fs::read_to_string(&size).unwrap(), right);
        f.s.ok(&["image", "inspect", "busybox:test"]);
        f.assert_c_works();
    }
}

/// Damage that one repair must undo before another can: the committed
/// layer's size cannot be measured while its `lower` is wrong. One
/// `check --repair` fixes both.
#[test]
fn stacked_damage_is_repaired_in_one_run() {
    let Some(f) = Fixture::new("stacked_damage_is_repaired_in_one_run") else {
        return;
    };
    let chain = f.commit().1;
    let cache = fs::read_to_string(f.layer_dir(&chain).join("cache-id")).unwrap();
    let size = f.layer_dir(&chain).join("size");
    let right_size = fs::read_to_string(&size).unwrap();
    let lower = f.home.join(&cache).join("lower");
    let right_lower = fs::read_to_string(&lower).unwrap();
    fs::remove_file(&size).unwrap();
    fs::write(&lower, "l/NOSUCHLINK").unwrap();
    let (clean, found) = f.check(&["--repair"]);
    assert!(clean, "{found:?}");
    assert!(found.iter().all(|(_, _, repaired)| *repaired), "{found:?}");
    assert!(
        found
            .iter()
            .any(|(k, o, _)| k == "bad-layer" && o == &chain),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(k, o, _)| k == "broken-lower" && o == &cache),
        "{found:?}"
    );
    assert_eq!(fs::read_to_string(&size).unwrap(), right_size);
    assert_eq!(fs::read_to_string(&lower).unwrap(), right_lower);
    assert_eq!(f.check(&[]), (true, vec![]));
}

/// Digests are checked only on request: it reads all the content.
#[test]
fn content_that_no_longer_matches_its_diff_id_is_reported_and_kept() {
    let Some(f) = Fixture::new("content_that_no_longer_matches_its_diff_id_is_reported_and_kept")
    else {
        return;
    };
    // Same length, so that the size still adds up.
    let file = f.home.join(&f.cache).join("diff/etc/os-release");
    let text = fs::read_to_string(&file).unwrap();
    let changed = text.replacen("ID=strata-busybox", "ID=strata-busyboX", 1);
    assert_ne!(text, changed);
    fs::write(&file, &changed).unwrap();
    assert_eq!(f.check(&[]), (true, vec![]));
    f.assert_check(
        &["--verify-digests"],
        &[("digest-mismatch", &f.chain)],
        &[("digest-mismatch", &f.chain, false)],
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), changed);
    f.s.ok(&["image", "inspect", "busybox:test"]);
}

#[test]
fn dangling_tag_is_dropped() {
    let Some(f) = Fixture::new("dangling_tag_is_dropped") else {
        return;
    };
    let repos = f.image_dir.join("repositories.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&repos).unwrap()).unwrap();
    v["Repositories"]["ghost"] = serde_json::json!({ "ghost:1": ZEROS });
    fs::write(&repos, v.to_string()).unwrap();
    f.assert_check(
        &[],
        &[("dangling-tag", "ghost:1")],
        &[("dangling-tag", "ghost:1", true)],
    );
    let v: Value = serde_json::from_slice(&fs::read(&repos).unwrap()).unwrap();
    assert!(v["Repositories"].get("ghost").is_none(), "{v}");
    assert_eq!(
        v["Repositories"]["busybox"]["busybox:test"],
        f.image.as_str()
    );
}

/// The content is gone: nothing to repair it from, and its records stay.
#[test]
fn layer_whose_driver_layer_is_gone_is_reported_and_kept() {
    let Some(f) = Fixture::new("layer_whose_driver_layer_is_gone_is_reported_and_kept") else {
        return;
    };
    let link = f.remove_layer(&f.cache);
    let init = f.init();
    f.assert_check(
        &[],
        &[
            ("missing-driver-layer", &f.chain),
            ("dangling-link", &link),
            ("broken-lower", &f.mount),
            ("broken-lower", &init),
        ],
        &[
            ("missing-driver-layer", &f.chain, false),
            ("dangling-link", &link, true),
            ("broken-lower", &f.mount, false),
            ("broken-lower", &init, false),
        ],
    );
    assert!(f.layer_dir(&f.chain).join("cache-id").is_file());
    f.s.ok(&["image", "inspect", "busybox:test"]);
    f.s.ok(&["inspect", "c"]);
    // Nothing to rebuild the lowers from, and repair says so.
    let out = f.s.run(&["check", "--repair"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let why = format!("not rebuilt: layer {} does not exist", f.cache);
    assert_eq!(stdout.matches(&why).count(), 2, "{stdout}");
}

/// A driver layer that lost only its `diff`: its `l/` link is removed
/// once and not made again on the next run (repair used to remove and
/// recreate it on every run).
#[test]
fn layer_whose_content_dir_is_gone_settles_after_one_repair() {
    let Some(f) = Fixture::new("layer_whose_content_dir_is_gone_settles_after_one_repair") else {
        return;
    };
    f.s.ok(&["rm", "c"]);
    let link = display(&f.link(&f.cache));
    fs::remove_dir_all(f.home.join(&f.cache).join("diff")).unwrap();
    f.assert_check(
        &[],
        &[("missing-driver-layer", &f.chain), ("dangling-link", &link)],
        &[
            ("missing-driver-layer", &f.chain, false),
            ("dangling-link", &link, true),
        ],
    );
    // A second repair has nothing more to do.
    assert_eq!(
        f.check(&["--repair"]),
        (
            false,
            owned([("missing-driver-layer", f.chain.as_str(), false)].into_iter())
        )
    );
}

#[test]
fn driver_layer_nothing_names_is_removed() {
    let Some(f) = Fixture::new("driver_layer_nothing_names_is_removed") else {
        return;
    };
    let orphan = f.home.join(hex(ZEROS));
    fs::create_dir_all(orphan.join("diff/etc")).unwrap();
    let object = display(&orphan);
    f.assert_check(
        &[],
        &[("orphan-driver-layer", &object)],
        &[("orphan-driver-layer", &object, true)],
    );
    assert!(!orphan.exists());
}

/// A layer that lost its `diff`, `size` and `cache-id` cannot be read,
/// and nothing names its driver layer any more; that driver layer still
/// holds the image's content, so repair must not take it for an orphan.
#[test]
fn layer_without_its_metadata_keeps_its_content() {
    let Some(f) = Fixture::new("layer_without_its_metadata_keeps_its_content") else {
        return;
    };
    for file in ["diff", "size", "cache-id"] {
        fs::remove_file(f.layer_dir(&f.chain).join(file)).unwrap();
    }
    let driver_layer = display(&f.home.join(&f.cache));
    let c = f.c();
    f.assert_check(
        &[],
        &[
            ("bad-layer", &f.chain),
            ("missing-layer", &f.image),
            ("broken-container", &c),
            ("orphan-driver-layer", &driver_layer),
        ],
        &[
            ("bad-layer", &f.chain, false),
            ("missing-layer", &f.image, false),
            ("broken-container", &c, false),
            ("orphan-driver-layer", &driver_layer, false),
        ],
    );
    assert!(f.home.join(&f.cache).join("diff/bin/busybox").is_file());
    assert!(f.layer_dir(&f.chain).join("tar-split.json.gz").is_file());
    let out = f.s.run(&["check", "--repair"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("left in place while the store has corruption"),
        "{stdout}"
    );
}

/// Without its read-write layer a container has nothing left to lose:
/// repair removes its records, its init layer and its name.
#[test]
fn container_whose_read_write_layer_is_gone_is_removed() {
    let Some(f) = Fixture::new("container_whose_read_write_layer_is_gone_is_removed") else {
        return;
    };
    let link = f.remove_layer(&f.mount);
    let c = f.c();
    f.assert_check(
        &[],
        &[("broken-container", &c), ("dangling-link", &link)],
        &[
            ("broken-container", &c, true),
            ("debris", "name c", true),
            ("dangling-link", &link, true),
        ],
    );
    assert_eq!(f.s.ok(&["ps", "-a", "--format", "json"]), "[]");
    assert!(!f.home.join(f.init()).exists());
    assert!(!f
        .image_dir
        .join("layerdb/mounts")
        .join(&f.container)
        .exists());
    f.s.ok(&["image", "inspect", "busybox:test"]);
}

/// The init layer holds only what `create` writes: repair makes it
/// again, and the read-write layer (the container's changes) is kept,
/// its `lower` rebuilt to name the new init layer.
#[test]
fn container_whose_init_layer_is_gone_gets_a_new_one() {
    let Some(f) = Fixture::new("container_whose_init_layer_is_gone_gets_a_new_one") else {
        return;
    };
    f.write_motd();
    let changes = f.s.ok(&["diff", "c"]);
    let init = f.init();
    let link = f.remove_layer(&init);
    f.s.err(&["mount", "c"]);
    let c = f.c();
    f.assert_check(
        &[],
        &[
            ("broken-container", &c),
            ("dangling-link", &link),
            ("broken-lower", &f.mount),
        ],
        &[
            ("broken-container", &c, true),
            ("dangling-link", &link, true),
            ("broken-lower", &f.mount, true),
        ],
    );
    assert!(f.home.join(&init).join("diff/etc/hosts").is_file());
    f.assert_c_works();
    // The init layer is still left out of the container's changes.
    assert_eq!(f.s.ok(&["diff", "c"]), changes);
}

/// The init layer gone and the image layer's `l/` link with it (the new
/// init layer's `lower` names that link): one run repairs both.
#[test]
fn lost_init_layer_and_image_link_are_repaired_in_one_run() {
    let Some(f) = Fixture::new("lost_init_layer_and_image_link_are_repaired_in_one_run") else {
        return;
    };
    f.write_motd();
    let init = f.init();
    fs::remove_dir_all(f.home.join(&init)).unwrap();
    fs::remove_file(f.link(&f.cache)).unwrap();
    let (clean, found) = f.check(&["--repair"]);
    assert!(clean, "{found:?}");
    assert!(found.iter().all(|(_, _, repaired)| *repaired), "{found:?}");
    assert_eq!(f.check(&[]), (true, vec![]));
    assert!(f.home.join(&init).join("diff/etc/hosts").is_file());
    f.assert_c_works();
}

/// A mounted view has the old init layer below it: repair waits for the
/// unmount.
#[test]
fn container_whose_init_layer_is_gone_is_kept_while_mounted() {
    let Some(f) = Fixture::new("container_whose_init_layer_is_gone_is_kept_while_mounted") else {
        return;
    };
    f.write_motd();
    let init = f.init();
    let link = display(&f.link(&init));
    f.s.ok(&["mount", "c"]);
    fs::remove_dir_all(f.home.join(&init)).unwrap();
    let c = f.c();
    let kept = [
        ("broken-container", c.as_str(), false),
        ("broken-lower", f.mount.as_str(), false),
    ];
    let repaired = [("dangling-link", link.as_str(), true)];
    assert_eq!(
        f.check(&["--repair"]),
        (false, owned(kept.into_iter().chain(repaired)))
    );
    let out = f.s.run(&["check", "--repair"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the init layer is not made again: the container is mounted"),
        "{stdout}"
    );
    assert!(!f.home.join(&init).exists());
    f.s.ok(&["umount", "c"]);
    f.assert_check(
        &[],
        &[("broken-container", &c), ("broken-lower", &f.mount)],
        &[
            ("broken-container", &c, true),
            ("broken-lower", &f.mount, true),
        ],
    );
    f.assert_c_works();
}

#[test]
fn lost_mount_record_is_rewritten() {
    let Some(f) = Fixture::new("lost_mount_record_is_rewritten") else {
        return;
    };
    let record = f.image_dir.join("layerdb/mounts").join(&f.container);
    fs::remove_dir_all(&record).unwrap();
    let c = f.c();
    f.assert_check(
        &[],
        &[("broken-container", &c)],
        &[("broken-container", &c, true)],
    );
    assert_eq!(
        fs::read_to_string(record.join("mount-id")).unwrap(),
        f.mount
    );
    // The container mounts again.
    f.s.ok(&["mount", "c"]);
    f.s.ok(&["umount", "c"]);
}

/// A mount record whose container is gone: its layers go with it.
#[test]
fn mount_record_without_its_container_is_removed() {
    let Some(f) = Fixture::new("mount_record_without_its_container_is_removed") else {
        return;
    };
    fs::remove_dir_all(f.s.root().join("containers").join(&f.container)).unwrap();
    f.assert_check(
        &[],
        &[("orphan-mount-record", &f.container), ("debris", "name c")],
        &[
            ("orphan-mount-record", &f.container, true),
            ("debris", "name c", true),
        ],
    );
    assert!(!f.home.join(&f.mount).exists());
    assert!(!f.home.join(f.init()).exists());
    f.s.ok(&["image", "inspect", "busybox:test"]);
}

#[test]
fn lost_name_is_rewritten() {
    let Some(f) = Fixture::new("lost_name_is_rewritten") else {
        return;
    };
    let name = f.s.root().join("names/c");
    fs::remove_file(&name).unwrap();
    f.assert_check(
        &[],
        &[("broken-container", "container c")],
        &[("broken-container", "container c", true)],
    );
    assert_eq!(fs::read_to_string(&name).unwrap(), f.container);
}

/// Configs are verified on every read, so the image is refused, not
/// used; repair cannot rebuild a config and leaves it as it is.
#[test]
fn tampered_image_config_is_reported_and_refused() {
    let Some(f) = Fixture::new("tampered_image_config_is_reported_and_refused") else {
        return;
    };
    let config = f
        .image_dir
        .join("imagedb/content/sha256")
        .join(hex(&f.image));
    let bytes = fs::read(&config).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let tampered = text.replacen("\"linux\"", "\"LINUX\"", 1);
    assert_ne!(text, tampered);
    fs::write(&config, &tampered).unwrap();
    for name in ["busybox:test", f.image.as_str()] {
        let err = f.s.err(&["image", "inspect", name]);
        assert!(
            err.starts_with("strata: error: ") && err.contains(&f.image) && err.contains("sha256"),
            "{err}"
        );
    }
    // `images` still lists the rest, and says what it left out.
    let out = f.s.run(&["images", "--format", "json"]);
    assert!(out.status.success());
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(!listed.contains(hex(&f.image)), "{listed}");
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.starts_with("strata: warning: ") && warned.contains(&f.image),
        "{warned}"
    );
    f.assert_check(
        &[],
        &[("bad-image", &f.image)],
        &[("bad-image", &f.image, false)],
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), tampered);
    assert!(f.layer_dir(&f.chain).is_dir());
}

/// `rmi` keeps an image while images committed from it exist; a parent
/// that is gone anyway is only a dangling pointer, which repair drops.
#[test]
fn parent_image_that_is_gone_is_forgotten() {
    let Some(f) = Fixture::new("parent_image_that_is_gone_is_forgotten") else {
        return;
    };
    let (two, _) = f.commit();
    let parent = f
        .image_dir
        .join("imagedb/metadata/sha256")
        .join(hex(&two))
        .join("parent");
    assert_eq!(fs::read_to_string(&parent).unwrap(), f.image);
    fs::write(&parent, ZEROS).unwrap();
    // The reference index still has the image under its real parent: an
    // entry too many (the parent would be kept for it), rebuilt.
    let refs = f.image_dir.join("refs").display().to_string();
    f.assert_check(
        &[],
        &[("missing-parent-image", &two), ("stale-index", &refs)],
        &[
            ("missing-parent-image", &two, true),
            ("stale-index", &refs, true),
        ],
    );
    assert!(!parent.exists());
    let inspect = f.s.json(&["image", "inspect", "busybox:two"]);
    assert_eq!(inspect[0]["Parent"], "", "{inspect:#}");
    assert_eq!(inspect[0]["Id"], two.as_str());
}

#[test]
fn layer_whose_parent_is_gone_is_reported_and_kept() {
    let Some(f) = Fixture::new("layer_whose_parent_is_gone_is_reported_and_kept") else {
        return;
    };
    let (_, top) = f.commit();
    fs::write(f.layer_dir(&top).join("parent"), ZEROS).unwrap();
    f.assert_check(
        &[],
        // Its chainID no longer adds up either.
        &[("bad-layer", &top), ("missing-parent", &top)],
        &[("bad-layer", &top, false), ("missing-parent", &top, false)],
    );
    assert!(f.layer_dir(&top).join("cache-id").is_file());
}

/// Interrupted work leaves staging in `tmp/` and `layerdb/tmp/`, and
/// `-removing` renames with the marker a removal makes first
/// (`layerdb/removing`); every open removes them, with the driver layers
/// they name, before check even looks.
#[test]
fn leftovers_of_interrupted_work_are_removed_on_open() {
    let Some(f) = Fixture::new("leftovers_of_interrupted_work_are_removed_on_open") else {
        return;
    };
    let staged = f.home.join("1".repeat(64));
    let removing = f.home.join("2".repeat(64));
    for d in [&staged, &removing] {
        fs::create_dir_all(d.join("diff/etc")).unwrap();
    }
    let leftovers = [
        f.s.root().join("tmp/staged-layer"),
        f.image_dir.join("layerdb/tmp/staged-container"),
        f.image_dir
            .join("layerdb/sha256")
            .join(format!("{}-removing", "3".repeat(64))),
        f.image_dir.join("layerdb/mounts/gone-removing"),
        f.s.root().join("containers/gone-removing"),
    ];
    for d in &leftovers {
        fs::create_dir_all(d).unwrap();
        fs::write(d.join("junk"), "x").unwrap();
    }
    fs::write(leftovers[0].join("cache-id"), "1".repeat(64)).unwrap();
    fs::write(leftovers[2].join("cache-id"), "2".repeat(64)).unwrap();
    fs::write(f.image_dir.join("layerdb/removing"), "").unwrap();
    // `check` only reads: it reports them and leaves them in place.
    let (ok, found) = f.check(&[]);
    assert!(!ok && !found.is_empty(), "{found:?}");
    for p in leftovers.iter().chain([&staged, &removing]) {
        assert!(p.exists(), "check removed {}", p.display());
    }
    // The next command that changes the store removes them as it opens it.
    f.s.ok(&["tag", "busybox:test", "busybox:again"]);
    assert_eq!(f.check(&[]), (true, vec![]));
    for p in leftovers.iter().chain([&staged, &removing]) {
        assert!(!p.exists(), "{} is still there", p.display());
    }
    assert!(f.home.join(&f.cache).join("diff/bin/busybox").is_file());
    f.s.ok(&["inspect", "c"]);
}

/// What open does not clean (temp files of atomic writes, driver
/// staging, names of no container) check finds and repair removes.
#[test]
fn debris_open_leaves_is_removed_by_repair() {
    let Some(f) = Fixture::new("debris_open_leaves_is_removed_by_repair") else {
        return;
    };
    let temp = f.layer_dir(&f.chain).join(".size.tmp");
    fs::write(&temp, "1").unwrap();
    let creating = f.home.join(format!("{}-creating", "4".repeat(64)));
    let removing = f.home.join(format!("{}-removing", "5".repeat(64)));
    for d in [&creating, &removing] {
        fs::create_dir_all(d.join("diff")).unwrap();
    }
    fs::write(f.s.root().join("names/ghost"), ZEROS).unwrap();
    let (temp_o, creating_o, removing_o) = (display(&temp), display(&creating), display(&removing));
    f.assert_check(
        &[],
        &[
            ("debris", &temp_o),
            ("debris", &creating_o),
            ("debris", &removing_o),
            ("debris", "name ghost"),
        ],
        &[
            ("debris", &temp_o, true),
            ("debris", &creating_o, true),
            ("debris", &removing_o, true),
            ("debris", "name ghost", true),
        ],
    );
    for p in [&temp, &creating, &removing] {
        assert!(!p.exists(), "{} is still there", p.display());
    }
    assert!(f.s.root().join("names/c").is_file());
}

#[test]
fn image_metadata_without_its_config_is_removed() {
    let Some(f) = Fixture::new("image_metadata_without_its_config_is_removed") else {
        return;
    };
    let meta = f.image_dir.join("imagedb/metadata/sha256").join(hex(ZEROS));
    fs::create_dir_all(&meta).unwrap();
    fs::write(meta.join("lastUpdated"), "2024-01-01T00:00:00Z").unwrap();
    f.assert_check(
        &[],
        &[("orphan-image-metadata", ZEROS)],
        &[("orphan-image-metadata", ZEROS, true)],
    );
    assert!(!meta.exists());
}

/// A layer no image or container reaches is collected, as `rmi` would.
#[test]
fn layer_nothing_reaches_is_collected() {
    let Some(f) = Fixture::new("layer_nothing_reaches_is_collected") else {
        return;
    };
    let tree = f.s.path("other");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/other"), "other\n").unwrap();
    let tar = f.s.path("other.tar");
    common::sh(&format!(
        "tar --numeric-owner -C '{}' -cf '{}' .",
        tree.display(),
        tar.display()
    ));
    let other = f.s.ok(&["import", tar.to_str().unwrap()]);
    let chain = common::sha256_of(&fs::read(&tar).unwrap());
    let cache = fs::read_to_string(f.layer_dir(&chain).join("cache-id")).unwrap();
    // The image goes; its layer stays behind.
    fs::remove_file(f.image_dir.join("imagedb/content/sha256").join(hex(&other))).unwrap();
    fs::remove_dir_all(
        f.image_dir
            .join("imagedb/metadata/sha256")
            .join(hex(&other)),
    )
    .unwrap();
    // The reference index still has the image on its layer, as a crash
    // between the two steps of `rmi` would leave it: stale, and gone with
    // the layer when repair collects it.
    let refs = f.image_dir.join("refs").display().to_string();
    f.assert_check(
        &[],
        &[("stale-index", &refs), ("unreferenced-layer", &chain)],
        &[("unreferenced-layer", &chain, true)],
    );
    assert!(!f.layer_dir(&chain).exists());
    assert!(!f.home.join(cache.trim()).exists());
    assert!(f.layer_dir(&f.chain).is_dir());
}

#[test]
fn missing_short_link_is_recreated() {
    let Some(f) = Fixture::new("missing_short_link_is_recreated") else {
        return;
    };
    let link = f.link(&f.cache);
    fs::remove_file(&link).unwrap();
    let init = f.init();
    f.assert_check(
        &[],
        &[
            ("missing-link", &f.cache),
            ("broken-lower", &f.mount),
            ("broken-lower", &init),
        ],
        // Once the link is back, the lowers resolve.
        &[("missing-link", &f.cache, true)],
    );
    assert_eq!(
        fs::read_link(&link).unwrap(),
        PathBuf::from(format!("../{}/diff", f.cache))
    );
}

/// The container's read-write layer with its `lower` damaged by
/// `damage` (given the right content): check reports it, repair writes
/// it again, and the container mounts with everything it had.
fn lower_is_rebuilt(test: &str, damage: impl FnOnce(&Path, &str)) {
    let Some(f) = Fixture::new(test) else {
        return;
    };
    f.write_motd();
    let lower = f.home.join(&f.mount).join("lower");
    let right = fs::read_to_string(&lower).unwrap();
    damage(&lower, &right);
    f.assert_check(
        &[],
        &[("broken-lower", &f.mount)],
        &[("broken-lower", &f.mount, true)],
    );
    assert_eq!(fs::read_to_string(&lower).unwrap(), right);
    f.assert_c_works();
}

#[test]
fn lower_naming_no_link_is_rebuilt() {
    lower_is_rebuilt("lower_naming_no_link_is_rebuilt", |lower, _| {
        fs::write(lower, "l/NOSUCHLINK").unwrap()
    });
}

/// Without its `lower` a container's layer would mount as a bare
/// directory, with nothing of its image.
#[test]
fn missing_lower_is_rebuilt() {
    lower_is_rebuilt("missing_lower_is_rebuilt", |lower, _| {
        fs::remove_file(lower).unwrap()
    });
}

/// Links that resolve, but not to the layer's parents: the view would
/// lack the init layer.
#[test]
fn lower_naming_the_wrong_layers_is_rebuilt() {
    lower_is_rebuilt(
        "lower_naming_the_wrong_layers_is_rebuilt",
        |lower, right| {
            let image_only = right.rsplit(':').next().unwrap();
            assert_ne!(image_only, right);
            fs::write(lower, image_only).unwrap();
        },
    );
}

/// An image's base layer has no parent, so no `lower`.
#[test]
fn lower_of_a_base_layer_is_removed() {
    let Some(f) = Fixture::new("lower_of_a_base_layer_is_removed") else {
        return;
    };
    let lower = f.home.join(&f.cache).join("lower");
    let init_lower = fs::read_to_string(f.home.join(f.init()).join("lower")).unwrap();
    fs::write(&lower, &init_lower).unwrap();
    f.assert_check(
        &[],
        &[("broken-lower", &f.cache)],
        &[("broken-lower", &f.cache, true)],
    );
    assert!(!lower.exists());
    f.s.ok(&["create", "--name", "d", "busybox:test"]);
}

#[test]
fn unreadable_repositories_json_is_reported_and_kept() {
    let Some(f) = Fixture::new("unreadable_repositories_json_is_reported_and_kept") else {
        return;
    };
    let repos = f.image_dir.join("repositories.json");
    fs::write(&repos, "{").unwrap();
    f.assert_check(
        &[],
        &[("bad-image", "repositories.json")],
        &[("bad-image", "repositories.json", false)],
    );
    assert_eq!(fs::read_to_string(&repos).unwrap(), "{");
}

/// A volume that lost its record keeps its data and gets a fresh record.
#[test]
fn volume_without_its_record_gets_one() {
    let Some(f) = Fixture::new("volume_without_its_record_gets_one") else {
        return;
    };
    f.s.ok(&["volume", "create", "v"]);
    let vol = f.s.root().join("volumes/v");
    fs::write(vol.join("_data/f"), "precious").unwrap();
    fs::remove_file(vol.join("meta.json")).unwrap();
    f.assert_check(
        &[],
        &[("bad-volume", "volume v")],
        &[("bad-volume", "volume v", true)],
    );
    assert_eq!(fs::read_to_string(vol.join("_data/f")).unwrap(), "precious");
}

#[test]
fn container_naming_a_gone_volume_is_reported() {
    let Some(f) = Fixture::new("container_naming_a_gone_volume_is_reported") else {
        return;
    };
    let id =
        f.s.ok(&["create", "--name", "d", "-v", "w:/data", "busybox:test"]);
    fs::remove_dir_all(f.s.root().join("volumes/w")).unwrap();
    let d = format!("d ({id})");
    f.assert_check(
        &[],
        &[("missing-volume", &d)],
        &[("missing-volume", &d, false)],
    );
    f.s.ok(&["inspect", "d"]);
}

/// A container whose config no longer parses is reported and kept (its
/// layers hold its data); `ps` still lists the others and names it.
#[test]
fn damaged_container_config_is_reported_and_kept() {
    let Some(f) = Fixture::new("damaged_container_config_is_reported_and_kept") else {
        return;
    };
    let other = f.s.ok(&["create", "--name", "d", "busybox:test"]);
    let config =
        f.s.root()
            .join("containers")
            .join(&f.container)
            .join("config.json");
    fs::write(&config, "{").unwrap();
    let out = f.s.run(&["ps", "-a", "--format", "json"]);
    assert!(out.status.success());
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [other.as_str()]);
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.starts_with("strata: warning: ") && warned.contains(&f.container),
        "{warned}"
    );
    // layers too, with the container's hold left out of REFS.
    let out = f.s.run(&["layers", "--format", "json"]);
    assert!(out.status.success());
    let layers: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(layers[0]["Refs"], 2, "{layers}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&f.container));
    f.assert_check(
        &[],
        &[("broken-container", &f.container)],
        &[("broken-container", &f.container, false)],
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), "{");
    assert!(f.home.join(&f.mount).join("diff").is_dir());
}
