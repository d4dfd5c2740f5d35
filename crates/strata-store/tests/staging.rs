//! Debris of interrupted work and the store lock, through the public
//! API: what a crash leaves is reported by `check`, removed by `check
//! --repair` and by the next open, and every change waits for the lock.

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{on_each_store, Fixture};
use strata_store::{FindingKind, Store};

fn debris(report: &strata_store::Report) -> Vec<(String, bool)> {
    report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Debris)
        .map(|f| (f.object.clone(), f.repaired))
        .collect()
}

fn assert_no_corruption(report: &strata_store::Report, driver: &str) {
    let corrupt: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind.is_corruption())
        .collect();
    assert!(corrupt.is_empty(), "{driver}: {corrupt:?}");
}

#[test]
fn a_sound_store_checks_clean() {
    on_each_store(|driver, f| {
        f.import(1, "one:1");
        f.container("one:1");
        let report = f.store.check(false).unwrap();
        assert!(report.is_clean(), "{driver}: {:?}", report.findings);
    });
}

#[test]
fn staging_removals_and_temp_files_are_debris_that_repair_removes() {
    let f = Fixture::new("vfs");
    f.import(1, "one:1");
    let c = f.container("one:1");
    let layout = f.store.layout().clone();
    let staged = layout.layer_staging().join("0123456789abcdef");
    fs::create_dir(&staged).unwrap();
    fs::write(staged.join("diff"), "half").unwrap();
    let removing = layout
        .containers()
        .join(format!("{}-removing", "e".repeat(64)));
    fs::create_dir(&removing).unwrap();
    let temp = layout.container(&c.id).join(".config.json.tmp");
    fs::write(&temp, "{").unwrap();

    let found = debris(&f.store.check(false).unwrap());
    for p in [&staged, &removing, &temp] {
        let shown = p.display().to_string();
        assert!(
            found.contains(&(shown.clone(), false)),
            "{shown} not reported: {found:?}"
        );
    }
    assert!(staged.exists() && removing.exists() && temp.exists());

    let repaired = debris(&f.store.check(true).unwrap());
    assert!(repaired.iter().all(|(_, fixed)| *fixed), "{repaired:?}");
    for p in [&staged, &removing, &temp] {
        assert!(!p.exists(), "{} left", p.display());
    }
    assert!(f.store.check(false).unwrap().is_clean());
    // The container itself is untouched.
    assert!(f.store.resolve_container(c.id.as_str()).is_ok());
}

/// What `rm` leaves when it is killed between its renames and its
/// deletes: the marker it made first, and its records under their
/// `-removing` names, the mount record naming the container's driver
/// layers.
fn cut_a_removal_short(f: &Fixture) -> (PathBuf, Vec<PathBuf>, String) {
    let c = f.container("one:1");
    let layout = f.store.layout();
    let marker = layout.image_dir().join("layerdb/removing");
    fs::write(&marker, "").unwrap();
    fs::remove_file(layout.name(&c.name)).unwrap();
    let mut doomed = Vec::new();
    for dir in [layout.mount_record(&c.id), layout.container(&c.id)] {
        let d = dir.with_file_name(format!("{}-removing", c.id));
        fs::rename(&dir, &d).unwrap();
        doomed.push(d);
    }
    (marker, doomed, c.mount_id.to_string())
}

#[test]
fn a_removal_cut_short_is_finished_by_the_next_open() {
    on_each_store(|driver, f| {
        f.import(1, "one:1");
        let root = f.store.root().to_owned();
        let (marker, doomed, mount_id) = cut_a_removal_short(&f);
        drop(f.store);
        let store = Store::open(&root, Some(driver)).unwrap();
        assert!(doomed.iter().all(|d| !d.exists()), "{driver}");
        assert!(!marker.exists(), "{driver}");
        assert!(!store.driver().exists(&mount_id), "{driver}");
        assert!(store.check(false).unwrap().is_clean(), "{driver}");
    });
}

/// Without the marker, an open looks through the removal directories
/// once a boot (they grow with the store): a `-removing` name that came
/// some other way in a boot already looked through stays for `check`,
/// which finds it and whose repair removes it, or for the next boot's
/// first open.
#[test]
fn removal_directories_are_looked_through_once_a_boot_or_after_a_removal() {
    let f = Fixture::new("vfs");
    f.import(1, "one:1");
    let root = f.store.root().to_owned();
    let swept = f.store.layout().image_dir().join("layerdb/swept");
    assert!(swept.is_file(), "the first open records its boot");
    let (marker, doomed, _) = cut_a_removal_short(&f);
    fs::remove_file(&marker).unwrap();
    let Fixture { store, dir } = f;
    drop(store);
    let store = Store::open(&root, None).unwrap();
    assert!(doomed.iter().all(|d| d.exists()), "looked through again");
    let found = debris(&store.check(false).unwrap());
    for d in &doomed {
        assert!(
            found.contains(&(d.display().to_string(), false)),
            "{} not reported: {found:?}",
            d.display()
        );
    }
    assert!(store
        .check(true)
        .unwrap()
        .findings
        .iter()
        .all(|f| f.repaired));
    assert!(doomed.iter().all(|d| !d.exists()));
    assert!(store.check(false).unwrap().is_clean());

    // Another boot's record: the first open of this boot looks again.
    let f = Fixture { store, dir };
    let (marker, doomed, _) = cut_a_removal_short(&f);
    fs::remove_file(&marker).unwrap();
    fs::write(&swept, "00000000-0000-0000-0000-000000000000").unwrap();
    let Fixture { store, dir: _dir } = f;
    drop(store);
    let store = Store::open(&root, None).unwrap();
    assert!(doomed.iter().all(|d| !d.exists()));
    assert!(store.check(false).unwrap().is_clean());
}

/// The staging of a layer a crashed import had begun, naming the driver
/// layer it made: the staging directory and that layer's cache ID.
fn stage_a_driver_layer(f: &Fixture) -> (PathBuf, String) {
    let staged = f.store.layout().layer_staging().join("fedcba9876543210");
    fs::create_dir(&staged).unwrap();
    let cache_id = "c".repeat(64);
    f.store
        .driver()
        .create(&cache_id, None, strata_store::driver::LayerKind::ReadOnly)
        .unwrap();
    fs::write(staged.join("cache-id"), &cache_id).unwrap();
    (staged, cache_id)
}

#[test]
fn opening_removes_staging_and_the_driver_layers_it_names() {
    on_each_store(|driver, f| {
        let root = f.store.root().to_owned();
        let (staged, cache_id) = stage_a_driver_layer(&f);
        drop(f.store);
        let store = Store::open(&root, Some(driver)).unwrap();
        assert!(!staged.exists(), "{driver}");
        assert!(!store.driver().exists(&cache_id), "{driver}");
    });
}

/// A layer a killed `create` or import was making may have its overlay2
/// `link` and `lower` files made and not yet written: the staging that names it is
/// debris (the next change clears it), never a corruption that would
/// hold back repairs.
#[test]
fn a_half_made_layer_of_staged_work_is_debris_not_corruption() {
    let f = Fixture::new("overlay2");
    f.import(1, "one:1");
    let (staged, cache_id) = stage_a_driver_layer(&f);
    let layer = f.store.root().join("overlay2").join(&cache_id);
    fs::write(layer.join("link"), "").unwrap();
    fs::write(layer.join("lower"), "").unwrap();
    let report = f.store.check(false).unwrap();
    assert_no_corruption(&report, "overlay2");
    assert!(
        debris(&report)
            .iter()
            .any(|(o, _)| o == &staged.display().to_string()),
        "{:?}",
        report.findings
    );
}

/// A `create` killed between publishing a container's config and its
/// mounts record leaves that record staged: `check` (which changes
/// nothing) says so in a note, not as corruption, and the next open
/// finishes the container, which then mounts.
#[test]
fn a_container_cut_between_its_renames_is_finished_not_corrupt() {
    on_each_store(|driver, f| {
        f.import(1, "one:1");
        let c = f.container("one:1");
        let layout = f.store.layout();
        let staged = layout.layer_staging().join("cut");
        fs::rename(layout.mount_record(c.id.as_str()), &staged).unwrap();
        // Cut before the name's rename, too: its name is staged with it.
        fs::rename(layout.name(&c.name), staged.join("name")).unwrap();
        let report = f.store.check(false).unwrap();
        assert_no_corruption(&report, driver);
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.kind == FindingKind::Note && f.message.contains("cut short")),
            "{driver}: {:?}",
            report.findings
        );
        let again = Store::open(f.store.root(), Some(driver)).unwrap();
        assert!(!staged.exists(), "{driver}: staging left");
        let report = again.check(false).unwrap();
        assert!(report.is_clean(), "{driver}: {:?}", report.findings);
        let c = again.resolve_container(&c.name).unwrap();
        again.mount(&c).unwrap();
        again.unmount(&c).unwrap();
    });
}

#[test]
fn a_change_waits_for_the_lock_another_store_holds() {
    let f = Fixture::new("vfs");
    let id = f.import(1, "one:1");
    let other = Store::open(f.store.root(), None).unwrap();
    let lock = f.store.lock().unwrap();
    let tagged = AtomicBool::new(false);
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            other.tag(&id, "one:2").unwrap();
            tagged.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !tagged.load(Ordering::SeqCst),
            "tagged while another held the lock"
        );
        drop(lock);
        t.join().unwrap();
    });
    assert!(tagged.load(Ordering::SeqCst));
    assert_eq!(f.store.resolve_image("one:2").unwrap(), id);
}
