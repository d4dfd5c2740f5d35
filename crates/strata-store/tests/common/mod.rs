//! What the store's library tests share: small layers built in the test,
//! a store in a temp dir, and the drivers each test runs on.
#![allow(dead_code)]

use std::io::Cursor;

use strata_store::{Container, ContainerSpec, Digest, Store};
use strata_test_support::{layer_tar, require_root, xorshift_bytes, Entry};

/// A one-directory layer with a file whose content differs with `seed`.
pub fn layer(seed: u64) -> Vec<u8> {
    layer_tar(&[
        ("etc/", Entry::Dir),
        (
            "etc/hostname",
            Entry::File(format!("box-{seed}\n").into_bytes()),
        ),
        (
            &format!("etc/data-{seed}"),
            Entry::File(xorshift_bytes(seed, 4096)),
        ),
    ])
}

/// A one-file root file system as a tar.
pub fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(6);
    h.set_mtime(0);
    h.set_path("etc/motd").unwrap();
    h.set_cksum();
    b.append(&h, &b"hello\n"[..]).unwrap();
    b.into_inner().unwrap()
}

/// A store in a temp dir; the dir goes with it.
pub struct Fixture {
    pub store: Store,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// The names of the store's volumes.
    pub fn volume_names(&self) -> Vec<String> {
        self.store
            .volumes()
            .unwrap()
            .into_iter()
            .map(|v| v.name)
            .collect()
    }

    pub fn new(driver: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root"), Some(driver)).unwrap();
        Fixture { store, dir }
    }

    /// A container of `image`, made as `strata create IMAGE` makes one.
    pub fn container(&self, image: &str) -> Container {
        self.store
            .create_container(image, &ContainerSpec::default())
            .unwrap()
    }

    /// Imports [`layer`]`(seed)` as an image tagged `reference`.
    pub fn import(&self, seed: u64, reference: &str) -> Digest {
        self.store
            .import(&mut Cursor::new(layer(seed)), Some(reference), "")
            .unwrap()
    }
}

/// Runs `test` on a fresh store on vfs, then on overlay2 when root
/// (SKIPPED otherwise).
pub fn on_each_store(test: impl Fn(&str, Fixture)) {
    test("vfs", Fixture::new("vfs"));
    if require_root() {
        test("overlay2", Fixture::new("overlay2"));
    }
}
