//! The image store through the public API: tags, lookups by tag, ID and
//! prefix, and `rmi`'s rules.

mod common;

use common::{on_each_store, Fixture};
use strata_store::{ContainerSpec, ErrorKind, ImageRef};

#[test]
fn an_image_is_found_by_tag_full_id_and_unique_prefix() {
    let f = Fixture::new("vfs");
    let id = f.import(1, "one:1");
    let images = f.store.image_store();
    assert_eq!(images.resolve_image("one:1").unwrap(), id);
    assert_eq!(images.resolve_image(id.as_str()).unwrap(), id);
    assert_eq!(images.resolve_image(id.hex()).unwrap(), id);
    assert_eq!(images.resolve_image(&id.hex()[..12]).unwrap(), id);
    let e = images.resolve_image("nope:1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[test]
fn a_tag_moves_from_the_image_it_named() {
    let f = Fixture::new("vfs");
    let one = f.import(1, "app:latest");
    let two = f.import(2, "other:1");
    f.store.tag(&two, "app:latest").unwrap();
    assert_eq!(f.store.resolve_image("app:latest").unwrap(), two);
    assert!(f.store.image(&one).unwrap().tags.is_empty());
    let tags: Vec<String> = f
        .store
        .image(&two)
        .unwrap()
        .tags
        .iter()
        .map(ImageRef::to_string)
        .collect();
    assert_eq!(tags, ["app:latest", "other:1"]);
}

#[test]
fn tagging_under_a_held_lock_takes_the_lock_as_proof() {
    let f = Fixture::new("vfs");
    let id = f.import(1, "one:1");
    let lock = f.store.lock().unwrap();
    let r = ImageRef::parse("one:2").unwrap();
    f.store.image_store().tag(&lock, &id, &r).unwrap();
    drop(lock);
    assert_eq!(f.store.resolve_image("one:2").unwrap(), id);
}

#[test]
fn a_tag_that_looks_like_an_id_is_refused() {
    let f = Fixture::new("vfs");
    let id = f.import(1, "one:1");
    let e = f.store.tag(&id, &"a".repeat(64)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn rmi_of_one_of_two_tags_only_untags() {
    let f = Fixture::new("vfs");
    let id = f.import(1, "one:1");
    f.store.tag(&id, "one:2").unwrap();
    assert_eq!(
        f.store.remove_image("one:1", false).unwrap(),
        ["Untagged: one:1"]
    );
    assert!(f.store.image_store().image(&id).is_ok());
    assert_eq!(f.store.layers().unwrap().len(), 1);
}

#[test]
fn rmi_refuses_an_image_a_container_uses_unless_forced() {
    on_each_store(|driver, f| {
        let id = f.import(1, "one:1");
        let c = f.container("one:1");
        let e = f.store.remove_image("one:1", false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InUse, "{driver}: {e}");
        // Forced: untagged, but kept while the container stands on it.
        let done = f.store.remove_image("one:1", true).unwrap();
        assert_eq!(done, ["Untagged: one:1"], "{driver}");
        assert!(f.store.image(&id).is_ok());
        f.store.remove_container(&c, false).unwrap();
        assert_eq!(f.store.layers().unwrap().len(), 1, "{driver}");
    });
}

/// The same rule when a child image was committed from it: its last tag
/// is not taken from under a container (Docker refuses it too); forced,
/// it is untagged and kept for the child and the container.
#[test]
fn rmi_by_tag_refuses_an_image_a_container_uses_with_a_child_too() {
    let f = Fixture::new("vfs");
    let id = f.import(1, "one:1");
    let spec = ContainerSpec::default();
    let c = f.store.create_container("one:1", &spec).unwrap();
    f.store.commit(&c, Some("child:1"), "").unwrap();
    let e = f.store.remove_image("one:1", false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    assert!(e.to_string().contains("used by container"), "{e}");
    assert_eq!(f.store.image(&id).unwrap().tags.len(), 1, "untagged");
    let done = f.store.remove_image("one:1", true).unwrap();
    assert_eq!(done, ["Untagged: one:1"]);
    assert!(f.store.image(&id).is_ok());
    // With no container left, its last tag goes; the child keeps it.
    f.store.tag(&id, "two:1").unwrap();
    f.store.remove_container(&c, false).unwrap();
    assert_eq!(
        f.store.remove_image("two:1", false).unwrap(),
        ["Untagged: two:1"]
    );
}

#[test]
fn an_image_config_reads_back_byte_exact_under_its_digest() {
    let f = Fixture::new("vfs");
    let id = f.import(1, "one:1");
    let bytes = f.store.image_config(&id).unwrap();
    assert_eq!(strata_archive::sha256(&bytes), id);
    assert!(f.store.layout().image_config(&id).is_file());
}
