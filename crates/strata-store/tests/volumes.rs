//! The volume store through the public API: create, list, the volumes a
//! container's `-v` makes and fills from its image, and removal refused
//! while a container names the volume.

mod common;

use std::collections::BTreeMap;

use common::Fixture;
use strata_store::{ContainerSpec, ErrorKind};

fn no_options() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn a_named_volume_is_made_once_and_listed() {
    let f = Fixture::new("vfs");
    let v = f
        .store
        .create_volume(Some("data"), "local", &no_options(), &no_options())
        .unwrap();
    assert_eq!(v.mountpoint, f.store.layout().volume_data("data"));
    assert!(v.mountpoint.is_dir());
    assert!(f.store.layout().volume_meta("data").is_file());
    // Asked again with the same driver: the same volume.
    let again = f
        .store
        .volume_store()
        .create(
            &f.store.lock().unwrap(),
            Some("data"),
            "local",
            &no_options(),
            &no_options(),
        )
        .unwrap();
    assert_eq!(again.created_at, v.created_at);
    assert_eq!(f.volume_names(), ["data"]);
}

#[test]
fn a_volume_a_container_names_is_not_removed_and_its_anonymous_one_goes_with_rm_v() {
    let f = Fixture::new("vfs");
    f.import(1, "one:1");
    let spec = ContainerSpec {
        volumes: vec!["named:/etc".into(), "/anon".into()],
        ..ContainerSpec::default()
    };
    let c = f.store.create_container("one:1", &spec).unwrap();
    // Filled from the image at its container path.
    let etc = f.store.volume("named").unwrap().mountpoint;
    assert_eq!(
        std::fs::read(etc.join("data-1")).unwrap(),
        strata_test_support::xorshift_bytes(1, 4096)
    );
    let anonymous: Vec<String> = f
        .store
        .volumes()
        .unwrap()
        .into_iter()
        .filter(|v| v.is_anonymous())
        .map(|v| v.name)
        .collect();
    assert_eq!(anonymous.len(), 1);
    assert_eq!(f.store.volume_users("named").unwrap().len(), 1);
    let e = f.store.remove_volume("named", true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    assert!(f.store.prune_volumes(true).unwrap().is_empty());

    f.store.remove_container_with(&c, false, true).unwrap();
    assert_eq!(f.volume_names(), ["named"], "rm -v keeps named volumes");
    f.store.remove_volume("named", false).unwrap();
    assert!(f.store.volumes().unwrap().is_empty());
    assert!(!f.store.layout().volume_data("named").exists());
}
