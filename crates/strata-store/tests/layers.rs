//! The layer store through the public API: import, one copy of a layer,
//! its tar back byte for byte, and garbage collection of the layers
//! nothing reaches.

mod common;

use std::io::Cursor;

use common::{layer, on_each_store, Fixture};
use strata_store::chain_id;

#[test]
fn an_imported_layer_is_recorded_under_its_chain_id() {
    on_each_store(|driver, f| {
        let id = f.import(1, "one:1");
        let layers = f.store.layer_store().layers().unwrap();
        assert_eq!(layers.len(), 1, "{driver}");
        let l = &layers[0];
        assert_eq!(l.chain_id, chain_id(None, &l.diff_id), "{driver}");
        assert_eq!(l.parent, None);
        assert!(f.store.driver().exists(&l.cache_id), "{driver}");
        assert_eq!(
            f.store.image(&id).unwrap().diff_ids,
            std::slice::from_ref(&l.diff_id)
        );
        let dir = f.store.layout().layer(&l.chain_id);
        assert!(dir.is_dir(), "{driver}: {}", dir.display());
        assert!(f.store.layer_store().tar_split_path(&l.chain_id).is_file());
    });
}

#[test]
fn a_layer_imported_twice_is_kept_once() {
    on_each_store(|driver, f| {
        f.import(1, "one:1");
        f.import(1, "one:2");
        assert_eq!(f.store.layers().unwrap().len(), 1, "{driver}");
    });
}

#[test]
fn a_layer_gives_back_the_tar_it_was_imported_from() {
    on_each_store(|driver, f| {
        f.import(3, "three:1");
        let l = f.store.layers().unwrap().remove(0);
        let mut out = Vec::new();
        let digest = f.store.layer_tar(&l, &mut out).unwrap();
        assert_eq!(digest, l.diff_id, "{driver}");
        assert_eq!(out, layer(3), "{driver}");
    });
}

#[test]
fn removing_the_last_image_collects_its_layers() {
    on_each_store(|driver, f| {
        f.import(1, "one:1");
        f.import(2, "two:1");
        let layers = f.store.layers().unwrap();
        assert_eq!(layers.len(), 2);
        let done = f.store.remove_image("one:1", false).unwrap();
        assert!(
            done.iter().any(|l| l.starts_with("Deleted: sha256:")),
            "{done:?}"
        );
        let left = f.store.layers().unwrap();
        assert_eq!(left.len(), 1, "{driver}");
        let gone = layers.iter().find(|l| !left.contains(l)).unwrap();
        assert!(!f.store.driver().exists(&gone.cache_id), "{driver}");
        assert!(!f.store.layout().layer(&gone.chain_id).exists());
    });
}

#[test]
fn a_committed_layer_lives_while_its_image_does_and_its_parent_longer() {
    on_each_store(|driver, f| {
        f.import(1, "base:1");
        let c = f.container("base:1");
        let merged = f.store.mount(&c).unwrap();
        std::fs::write(merged.join("etc/added"), "new\n").unwrap();
        f.store.unmount(&c).unwrap();
        let child = f.store.commit(&c, Some("child:1"), "").unwrap();
        f.store.remove_container(&c, false).unwrap();
        let layers = f.store.layers().unwrap();
        assert_eq!(layers.len(), 2, "{driver}");
        let top = layers.iter().find(|l| l.parent.is_some()).unwrap();
        let (refs, bad) = f.store.layer_refs(&layers).unwrap();
        assert!(bad.is_empty());
        assert_eq!(refs[&top.chain_id], 1, "{driver}: the image holds it");
        assert_eq!(refs[top.parent.as_ref().unwrap()], 2, "{driver}");

        // The child goes with its layer; the base image keeps its own.
        f.store.remove_image(child.as_str(), false).unwrap();
        let left = f.store.layers().unwrap();
        assert_eq!(left.len(), 1, "{driver}");
        assert!(left[0].parent.is_none());
        assert!(!f.store.driver().exists(&top.cache_id), "{driver}");
        f.store.remove_image("base:1", false).unwrap();
        assert!(f.store.layers().unwrap().is_empty(), "{driver}");
    });
}

#[test]
fn a_tar_that_is_not_one_leaves_no_layer() {
    let f = Fixture::new("vfs");
    let err = f
        .store
        .import(&mut Cursor::new(vec![0xffu8; 1024]), Some("bad:1"), "")
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    assert!(f.store.layers().unwrap().is_empty());
    assert!(f.store.images().unwrap().is_empty());
    let staged = std::fs::read_dir(f.store.layout().layer_staging())
        .unwrap()
        .count();
    assert_eq!(staged, 0, "the failed import left staging");
}
