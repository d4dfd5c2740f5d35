//! The container store through the public API: create, find by name, ID
//! and prefix, mount, and remove with the layers it made.

mod common;

use common::{on_each_store, Fixture};
use strata_store::{ContainerSpec, ErrorKind};

fn named(name: &str) -> ContainerSpec {
    ContainerSpec {
        name: Some(name.into()),
        ..ContainerSpec::default()
    }
}

#[test]
fn a_container_is_made_on_its_image_and_found_by_name_id_and_prefix() {
    on_each_store(|driver, f| {
        let image = f.import(1, "one:1");
        let c = f.store.create_container("one:1", &named("web")).unwrap();
        assert_eq!(c.image, image);
        assert_eq!(c.driver, driver);
        let layers = f.store.layers().unwrap();
        assert_eq!(c.parent_layer.as_ref(), Some(&layers[0].chain_id));
        assert!(f.store.driver().exists(&c.mount_id), "{driver}");
        assert!(f.store.driver().exists(&c.init_id()), "{driver}");
        let layout = f.store.layout();
        assert!(layout.container_config(&c.id).is_file());
        assert!(layout.mount_record(&c.id).is_dir());
        assert!(layout.name("web").is_file());
        let containers = f.store.container_store();
        for who in ["web", c.id.as_str(), &c.id.as_str()[..12]] {
            assert_eq!(containers.resolve_container(who).unwrap().id, c.id, "{who}");
        }
        assert_eq!(f.store.containers().unwrap().len(), 1);
    });
}

#[test]
fn a_name_is_taken_once() {
    let f = Fixture::new("vfs");
    f.import(1, "one:1");
    f.store.create_container("one:1", &named("web")).unwrap();
    let e = f
        .store
        .create_container("one:1", &named("web"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let e = f
        .store
        .create_container("one:1", &named("-bad"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(f.store.containers().unwrap().len(), 1);
}

#[test]
fn the_init_layer_holds_what_every_container_gets_and_diff_leaves_it_out() {
    on_each_store(|driver, f| {
        f.import(1, "one:1");
        let c = f.store.create_container("one:1", &named("c")).unwrap();
        let merged = f.store.mount(&c).unwrap();
        for p in ["etc/hosts", "etc/resolv.conf", "proc", "sys", "dev/pts"] {
            assert!(merged.join(p).exists(), "{driver}: {p}");
        }
        assert_eq!(
            std::fs::read_to_string(merged.join("etc/hostname")).unwrap(),
            "",
            "{driver}: the init layer's hostname hides the image's"
        );
        std::fs::write(merged.join("etc/new"), "x").unwrap();
        f.store.unmount(&c).unwrap();
        let changes = f.store.container_changes(&c).unwrap();
        let paths: Vec<String> = changes
            .iter()
            .map(|ch| String::from_utf8_lossy(&ch.path).into_owned())
            .collect();
        assert!(
            paths.contains(&"/etc/new".to_owned()),
            "{driver}: {paths:?}"
        );
        assert!(
            !paths.iter().any(|p| p == "/etc/hosts"),
            "{driver}: {paths:?}"
        );
    });
}

#[test]
fn removing_a_container_removes_its_layers_records_and_name() {
    on_each_store(|driver, f| {
        f.import(1, "one:1");
        let c = f.store.create_container("one:1", &named("gone")).unwrap();
        f.store.remove_container(&c, false).unwrap();
        assert!(!f.store.driver().exists(&c.mount_id), "{driver}");
        assert!(!f.store.driver().exists(&c.init_id()), "{driver}");
        let layout = f.store.layout();
        assert!(!layout.container(&c.id).exists());
        assert!(!layout.mount_record(&c.id).exists());
        assert!(!layout.name("gone").exists());
        let e = f.store.resolve_container("gone").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        // The image still holds its layer.
        assert_eq!(f.store.layers().unwrap().len(), 1);
        // The name is free again.
        f.store.create_container("one:1", &named("gone")).unwrap();
    });
}

#[test]
fn a_mounted_container_is_removed_only_by_force() {
    on_each_store(|driver, f| {
        f.import(1, "one:1");
        let c = f.store.create_container("one:1", &named("busy")).unwrap();
        f.store.mount(&c).unwrap();
        let e = f.store.remove_container(&c, false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InUse, "{driver}: {e}");
        f.store.remove_container(&c, true).unwrap();
        assert!(!f.store.driver().exists(&c.mount_id), "{driver}");
        assert!(f.store.containers().unwrap().is_empty());
    });
}
