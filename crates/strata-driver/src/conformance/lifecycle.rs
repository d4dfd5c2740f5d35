//! The contract around the content: reference-counted get/put, cleanup,
//! status, and the errors for bad, duplicate and missing ids.

use super::fixture::*;
use super::harness::{assert_kind, chain, is_mounted, mounts_under, Factory, Harness};
use crate::ErrorKind;
use crate::LayerKind;

/// The graphdriver contract: `remove` of a mounted layer fails with
/// `InUse` and leaves it intact; after `put` it succeeds.
pub fn remove_refuses_mounted(f: Factory) {
    let h = Harness::new(f);
    let d = h.driver();
    let p = h.mounted_container();
    assert_kind(
        d.remove("ctr"),
        ErrorKind::InUse,
        "remove of a mounted layer",
    );
    assert!(d.exists("ctr"), "exists(ctr) after a refused remove");
    assert_eq!(
        read(&p, "file"),
        b"base",
        "the mounted layer after a refused remove"
    );
    h.put("ctr");
    h.remove("ctr");
    assert!(!d.exists("ctr"), "exists(ctr) after remove");
    h.finish();
}

/// `get` is reference-counted: two gets and one put leave the layer
/// mounted and readable, the second put unmounts it. A driver called
/// overlay2 must mount a layer that has a parent; others are checked
/// through /proc/self/mountinfo only when `get` made a mount.
pub fn get_put_refcount(f: Factory) {
    let h = Harness::new(f);
    let d = h.driver();
    let p = h.mounted_container();
    let mounted = is_mounted(&p);
    if d.name() == "overlay2" {
        assert!(
            mounted,
            "overlay2: get of a layer with a parent made no mount at {}",
            p.display()
        );
    }
    assert_eq!(h.get("ctr"), p, "a second get returns another path");
    h.put("ctr");
    assert_eq!(
        read(&p, "file"),
        b"base",
        "layer after two gets and one put"
    );
    assert_eq!(
        is_mounted(&p),
        mounted,
        "mounted after two gets and one put"
    );
    h.put("ctr");
    assert!(
        !is_mounted(&p),
        "{} is still mounted after the last put",
        p.display()
    );
    h.finish();
}

/// A put without a get is not an error, and does not make the count go
/// below zero: after extra puts, one get and one put still unmount.
pub fn put_without_get_is_not_an_error(f: Factory) {
    let h = Harness::new(f);
    h.create("base", None);
    h.create_rw("ctr", Some("base"));
    h.put("ctr");
    let p = h.get("ctr");
    let mounted = is_mounted(&p);
    h.put("ctr");
    h.put("ctr");
    h.put("ctr");
    assert!(!is_mounted(&p), "{} is mounted after put", p.display());
    let p = h.get("ctr");
    assert_eq!(
        is_mounted(&p),
        mounted,
        "mounted after a get that followed extra puts"
    );
    h.put("ctr");
    assert!(
        !is_mounted(&p),
        "{} is mounted after get, put following extra puts",
        p.display()
    );
    h.remove("ctr");
    h.finish();
}

/// Mount counts live on disk: a second driver instance on the same home
/// (another process) sees the first one's references: it refuses to
/// remove the layer, and its puts count against the first one's gets.
pub fn refcount_shared_between_instances(f: Factory) {
    let h = Harness::new(f);
    let b = h.reopen(f);
    h.create("base", None);
    h.create_rw("ctr", Some("base"));
    assert!(
        b.exists("ctr"),
        "instance B does not see the layer instance A created"
    );
    let p = h.get("ctr");
    let mounted = is_mounted(&p);
    h.get("ctr");
    assert_kind(
        b.remove("ctr"),
        ErrorKind::InUse,
        "instance B removing a layer instance A mounted",
    );
    b.put("ctr")
        .unwrap_or_else(|e| panic!("put in instance B: {}", chain(&e)));
    assert_eq!(
        is_mounted(&p),
        mounted,
        "mounted after A got it twice and B put it once"
    );
    b.put("ctr")
        .unwrap_or_else(|e| panic!("put in instance B: {}", chain(&e)));
    assert!(
        !is_mounted(&p),
        "{} is still mounted after B put A's last reference",
        p.display()
    );
    b.remove("ctr").unwrap_or_else(|e| {
        panic!(
            "remove in instance B after the count fell to 0: {}",
            chain(&e)
        )
    });
    assert!(
        !h.driver().exists("ctr"),
        "instance A still sees the layer B removed"
    );
    drop(b);
    h.finish();
}

/// `cleanup` unmounts every layer this driver mounted, forgets their
/// references (so they can be removed), and the driver still works after.
pub fn cleanup_unmounts_everything(f: Factory) {
    let h = Harness::new(f);
    let d = h.driver();
    h.create_base();
    let ids = ["ctr-0", "ctr-1", "ctr-2", "ro"];
    for id in ids {
        if id == "ro" {
            h.create(id, Some("base"));
        } else {
            h.create_rw(id, Some("base"));
        }
        h.get(id);
    }
    h.get("ctr-0");
    d.cleanup()
        .unwrap_or_else(|e| panic!("cleanup: {}", chain(&e)));
    let left = mounts_under(h.home());
    assert!(left.is_empty(), "mounted after cleanup: {left:?}");
    for id in ids {
        h.remove(id);
    }
    h.create_rw("after", Some("base"));
    let p = h.get("after");
    assert_eq!(read(&p, "file"), b"base", "a layer mounted after cleanup");
    h.put("after");
    assert!(!is_mounted(&p), "{} is mounted after its put", p.display());
    h.finish();
}

/// `status` is what `strata info` shows: not empty, no empty key, and a
/// key naming the backing file system with a value.
pub fn status_fields_present(f: Factory) {
    let h = Harness::new(f);
    let status = h.driver().status();
    assert!(!status.is_empty(), "status() is empty");
    assert!(
        status.iter().all(|(k, _)| !k.is_empty()),
        "status() has an empty key: {status:?}"
    );
    let backing = status
        .iter()
        .find(|(k, _)| k.to_lowercase().contains("backing"));
    assert!(
        backing.is_some_and(|(_, v)| !v.is_empty()),
        "status() names no backing file system: {status:?}"
    );
    h.finish();
}

/// Ids are one plain path component: `..`, names with `/`, the empty
/// name and the like are refused (`InvalidArgument`) by every operation,
/// and nothing outside the home is created, removed or mounted.
pub fn create_refuses_bad_ids(f: Factory) {
    const BAD: &[&str] = &[
        "",
        ".",
        "..",
        "a/b",
        "/abs",
        "../escape",
        "a/../b",
        "sub/",
        "./x",
    ];
    let h = Harness::new(f);
    let d = h.driver();
    let sentinel = h.root().join("sentinel");
    write(h.root(), "sentinel/keep", b"keep", 0o644);
    h.create("good", None);
    let home_before = home_listing(h.home());
    let root_before = list(h.root(), "");
    for &id in BAD {
        let what = |op: &str| format!("{op}({id:?})");
        assert_kind(
            d.create(id, None, LayerKind::ReadOnly),
            ErrorKind::InvalidArgument,
            &what("create"),
        );
        assert_kind(
            d.create(id, Some("good"), LayerKind::ReadWrite),
            ErrorKind::InvalidArgument,
            &what("create_rw"),
        );
        assert!(!d.exists(id), "exists({id:?}) is true");
        assert_kind(d.get(id, None), ErrorKind::InvalidArgument, &what("get"));
        assert_kind(d.remove(id), ErrorKind::InvalidArgument, &what("remove"));
        let _ = d.put(id);
        assert!(
            d.create("child", Some(id), LayerKind::ReadOnly).is_err(),
            "create(child, parent {id:?}) succeeded"
        );
        assert!(
            !d.exists("child"),
            "create(child, parent {id:?}) left a layer"
        );
    }
    assert_eq!(read(&sentinel, "keep"), b"keep", "a file beside the home");
    assert_eq!(list(h.root(), ""), root_before, "entries beside the home");
    assert_eq!(home_listing(h.home()), home_before, "entries of the home");
    assert!(d.exists("good"), "a good layer after the bad ids");
    h.finish();
}

/// A second create of an id fails with `AlreadyExists` and leaves the
/// layer as it was.
pub fn create_refuses_duplicate_id(f: Factory) {
    let h = Harness::new(f);
    let d = h.driver();
    h.create("dup", None);
    h.with_layer("dup", |p| write(p, "file", b"first", 0o644));
    assert_kind(
        d.create("dup", None, LayerKind::ReadOnly),
        ErrorKind::AlreadyExists,
        "create of an existing id",
    );
    assert_kind(
        d.create("dup", None, LayerKind::ReadWrite),
        ErrorKind::AlreadyExists,
        "create_rw of an existing id",
    );
    h.with_layer("dup", |p| {
        assert_eq!(
            read(p, "file"),
            b"first",
            "the layer after duplicate creates"
        )
    });
    h.finish();
}

/// `remove` of a layer that does not exist (never did, or was removed)
/// fails with `NotFound`.
pub fn remove_of_missing_layer_is_not_found(f: Factory) {
    let h = Harness::new(f);
    let d = h.driver();
    assert_kind(
        d.remove("missing"),
        ErrorKind::NotFound,
        "remove of a layer never created",
    );
    h.create("once", None);
    h.remove("once");
    assert_kind(d.remove("once"), ErrorKind::NotFound, "a second remove");
    h.finish();
}

/// `get` of a layer that does not exist fails with `NotFound` and mounts
/// nothing.
pub fn get_of_missing_layer_is_not_found(f: Factory) {
    let h = Harness::new(f);
    assert_kind(
        h.driver().get("missing", None),
        ErrorKind::NotFound,
        "get of a missing layer",
    );
    let left = mounts_under(h.root());
    assert!(left.is_empty(), "mounted after a failed get: {left:?}");
    h.finish();
}

/// `create` on a parent that does not exist fails with `NotFound` and
/// leaves no half-made layer.
pub fn create_on_missing_parent_is_not_found(f: Factory) {
    let h = Harness::new(f);
    let d = h.driver();
    let before = home_listing(h.home());
    assert_kind(
        d.create("orphan", Some("missing"), LayerKind::ReadOnly),
        ErrorKind::NotFound,
        "create on a missing parent",
    );
    assert_kind(
        d.create("orphan", Some("missing"), LayerKind::ReadWrite),
        ErrorKind::NotFound,
        "create_rw on a missing parent",
    );
    assert!(!d.exists("orphan"), "exists(orphan) after a failed create");
    assert_eq!(
        home_listing(h.home()),
        before,
        "the home after a failed create"
    );
    h.finish();
}
