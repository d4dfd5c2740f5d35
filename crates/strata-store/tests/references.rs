//! Image references as Docker reads them: Docker Hub's long names find
//! the image their familiar name tags, and a digest reference is
//! understood (and said to be missing) rather than refused as malformed.

mod common;

use std::io::Cursor;

use strata_store::{ErrorKind, Store};

use common::rootfs_tar;

fn store_with(tag: &str) -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(&t.path().join("root"), Some("vfs")).unwrap();
    store
        .import(&mut Cursor::new(rootfs_tar()), Some(tag), "")
        .unwrap();
    (t, store)
}

#[test]
fn docker_hub_names_find_the_familiar_tag() {
    let (_t, s) = store_with("foo:1");
    let id = s.resolve_image("foo:1").unwrap();
    for long in [
        "library/foo:1",
        "docker.io/library/foo:1",
        "index.docker.io/library/foo:1",
    ] {
        assert_eq!(s.resolve_image(long).unwrap(), id, "{long}");
    }
    // Stored and shown by the familiar name, as Docker does.
    let tags = s.image(&id).unwrap().tags;
    assert_eq!(
        tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        ["foo:1"]
    );
    assert_eq!(
        s.resolve_image("docker.io/library/foo:2")
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_long_name_tags_as_its_familiar_name() {
    let (_t, s) = store_with("docker.io/library/bar:1");
    let id = s.resolve_image("bar:1").unwrap();
    assert_eq!(s.resolve_image("bar:1").unwrap(), id);
    let r = s.tag(&id, "localhost:5000/x").unwrap();
    assert_eq!(r.to_string(), "localhost:5000/x:latest");
    assert_eq!(s.resolve_image("localhost:5000/x").unwrap(), id);
    assert_eq!(
        s.remove_image("library/bar:1", false).unwrap(),
        ["Untagged: bar:1"]
    );
}

#[test]
fn digest_references_parse_and_are_not_found() {
    let (_t, s) = store_with("foo:1");
    let id = s.resolve_image("foo:1").unwrap();
    let pinned = format!("foo@sha256:{}", "0".repeat(64));
    let e = s.resolve_image(&pinned).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("repository digest"), "{e}");
    let e = s.remove_image(&pinned, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // A tag is never a digest reference.
    let e = s.tag(&id, &pinned).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("digest reference"), "{e}");
}

#[test]
fn uppercase_names_are_refused_in_dockers_words() {
    let (_t, s) = store_with("foo:1");
    let e = s.resolve_image("Foo:1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        e.to_string(),
        "invalid reference format: repository name (library/Foo) must be lowercase"
    );
}

#[test]
fn tags_recorded_under_long_names_read_as_familiar_ones() {
    let (_t, s) = store_with("foo:1");
    let id = s.resolve_image("foo:1").unwrap();
    let repos = s.root().join("image/vfs/repositories.json");
    let long = serde_json::json!({ "Repositories": {
        "docker.io/library/foo": { "docker.io/library/foo:1": id.as_str() }
    }});
    std::fs::write(&repos, long.to_string()).unwrap();
    assert_eq!(s.resolve_image("foo:1").unwrap(), id);
    assert_eq!(
        s.remove_image("foo:1", false).unwrap()[0],
        "Untagged: foo:1"
    );
    assert_eq!(
        s.resolve_image("docker.io/library/foo:1")
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}
