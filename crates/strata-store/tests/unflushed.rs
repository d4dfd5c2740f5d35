//! `create` flushes nothing: a container is whole or absent once the
//! store is opened after a crash. A power cut is played by what it can
//! leave on a journaling file system: the names in their order, the
//! bytes of files written without a flush lost (empty files), and the
//! boot that made the container's marker over.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::Fixture;
use strata_store::{Container, ContainerSpec, Store};
use strata_test_support::require_root;

/// The boot ID no machine has: the boot before the crash.
const EARLIER_BOOT: &str = "00000000-0000-4000-8000-000000000000";

fn named(name: &str) -> ContainerSpec {
    ContainerSpec {
        name: Some(name.into()),
        ..ContainerSpec::default()
    }
}

/// The markers' directories under `layerdb/unflushed`.
fn boots(f: &Fixture) -> Vec<PathBuf> {
    fs::read_dir(f.store.layout().unflushed())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// What a power cut leaves: the markers are the earlier boot's, and
/// `lost` files come back empty.
fn power_cut(f: &Fixture, lost: &[&Path]) {
    let [boot] = boots(f).try_into().unwrap();
    fs::rename(&boot, boot.with_file_name(EARLIER_BOOT)).unwrap();
    for p in lost {
        fs::write(p, "").unwrap();
    }
}

fn reopen(f: &Fixture) -> Store {
    Store::open(f.store.root(), Some("overlay2")).unwrap()
}

fn overlay2() -> Option<Fixture> {
    if !require_root() {
        return None;
    }
    let f = Fixture::new("overlay2");
    f.import(1, "one:1");
    Some(f)
}

fn records(f: &Fixture, c: &Container) -> Vec<PathBuf> {
    let l = f.store.layout();
    vec![
        l.container_config(&c.id),
        l.mount_record(&c.id).join("mount-id"),
        l.mount_record(&c.id).join("init-id"),
        l.name(&c.name),
    ]
}

/// A container whose config came back is made whole: its other records
/// are written again from it, and it mounts.
#[test]
fn a_container_whose_config_survived_is_made_whole() {
    let Some(f) = overlay2() else { return };
    let c = f.store.create_container("one:1", &named("web")).unwrap();
    let l = f.store.layout();
    let lost = [
        l.mount_record(&c.id).join("mount-id"),
        l.mount_record(&c.id).join("init-id"),
        l.name(&c.name),
    ];
    power_cut(&f, &lost.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    let store = reopen(&f);
    let back = store.resolve_container("web").unwrap();
    assert_eq!(back.id, c.id);
    store.mount(&back).unwrap();
    store.unmount(&back).unwrap();
    let report = store.check(false).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(boots(&f).is_empty(), "markers left");
}

/// A container whose config came back empty is removed whole: records,
/// name and driver layers; its name is free again.
#[test]
fn a_container_whose_config_was_lost_is_removed() {
    let Some(f) = overlay2() else { return };
    let keep = f.store.create_container("one:1", &named("keep")).unwrap();
    let c = f.store.create_container("one:1", &named("web")).unwrap();
    let lost = records(&f, &c);
    power_cut(&f, &lost.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    let store = reopen(&f);
    let names: Vec<String> = store
        .containers()
        .unwrap()
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(names, ["keep"]);
    assert!(!store.driver().exists(&c.mount_id));
    assert!(!store.driver().exists(&c.init_id()));
    assert!(!store.layout().container(&c.id).exists());
    assert!(!store.layout().mount_record(&c.id).exists());
    let report = store.check(false).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    store.create_container("one:1", &named("web")).unwrap();
    store.mount(&keep).unwrap();
    store.unmount(&keep).unwrap();
}

/// Markers of the running boot name nothing to check (no crash since),
/// and `rm` drops its container's.
#[test]
fn markers_of_this_boot_stay_until_the_container_goes() {
    let Some(f) = overlay2() else { return };
    let c = f.store.create_container("one:1", &named("web")).unwrap();
    let [boot] = boots(&f).try_into().unwrap();
    assert_eq!(fs::read_dir(&boot).unwrap().count(), 1);
    let store = reopen(&f);
    assert_eq!(fs::read_dir(&boot).unwrap().count(), 1);
    store.remove_container(&c, false).unwrap();
    assert_eq!(fs::read_dir(&boot).unwrap().count(), 0);
}

/// vfs copies the image's content into a container's layers: they are
/// flushed at `create`, and no marker is left.
#[test]
fn a_driver_that_copies_content_flushes_instead() {
    let f = Fixture::new("vfs");
    f.import(1, "one:1");
    f.store.create_container("one:1", &named("web")).unwrap();
    assert!(boots(&f).is_empty());
}
