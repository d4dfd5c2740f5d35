//! Layers come back out of the store byte for byte: the tar-split record
//! kept at import rebuilds the exact tar, so its sha256 is the diffID.

use std::fs;
use std::io::Cursor;
use std::process::Command;

use strata_store::{ContainerSpec, Store};
use strata_test_support::require_root;

fn sh(script: &str) {
    let ok = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .status()
        .unwrap()
        .success();
    assert!(ok, "{script}");
}

fn round_trip(driver: &str) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("etc/deep/er")).unwrap();
    fs::write(src.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(src.join("etc/deep/er/big"), vec![7u8; 300_000]).unwrap();
    sh(&format!(
        "cd '{}' && ln etc/hosts etc/hosts.allow && ln -s hosts etc/link",
        src.display()
    ));
    let tar = t.path().join("layer.tar");
    sh(&format!(
        "tar --format=posix --numeric-owner -C '{}' -cf '{}' . && gzip -k '{}'",
        src.display(),
        tar.display(),
        tar.display()
    ));
    let original = fs::read(&tar).unwrap();
    let store = Store::open(&t.path().join("root"), Some(driver)).unwrap();
    // Imported compressed: the record rebuilds the uncompressed tar.
    let gz = fs::read(t.path().join("layer.tar.gz")).unwrap();
    let id = store.import(&mut Cursor::new(gz), Some("x:1"), "").unwrap();
    let layers = store.layers().unwrap();
    assert_eq!(layers.len(), 1);
    let mut out = Vec::new();
    let digest = store.layer_tar(&layers[0], &mut out).unwrap();
    assert_eq!(
        out, original,
        "the rebuilt tar differs from the imported one"
    );
    assert_eq!(digest, layers[0].diff_id);

    // A committed layer rebuilds to its diffID too.
    let c = store
        .create_container("x:1", &ContainerSpec::default())
        .unwrap();
    let m = store.mount(&c).unwrap();
    fs::write(m.join("etc/hosts"), "changed\n").unwrap();
    fs::remove_file(m.join("etc/link")).unwrap();
    store.unmount(&c).unwrap();
    let img = store.commit(&c, Some("x:2"), "").unwrap();
    let top = store.image(&img).unwrap().diff_ids.last().unwrap().clone();
    let layer = store
        .layers()
        .unwrap()
        .into_iter()
        .find(|l| l.diff_id == top)
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(store.layer_tar(&layer, &mut out).unwrap(), top);
    store.remove_container(&c, true).unwrap();
    let _ = id;
}

#[test]
fn imported_layers_rebuild_byte_for_byte_on_overlay2() {
    if require_root() {
        round_trip("overlay2");
    }
}

#[test]
fn imported_layers_rebuild_byte_for_byte_on_vfs() {
    if require_root() {
        round_trip("vfs");
    }
}
