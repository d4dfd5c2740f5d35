//! The reference index (`refs/`): kept right by every change, checked
//! and rebuilt by `check`, built on first need in a store made without
//! it, and refused when damaged, before anything changes.

mod common;

use std::fs;
use std::path::Path;

use common::Fixture;
use strata_store::{chain_id, ContainerSpec, Digest, ErrorKind, FindingKind, Report, Store};
use strata_test_support::sorted_names;

/// The index findings of a check.
fn index_findings(r: &Report) -> Vec<(FindingKind, bool)> {
    r.findings
        .iter()
        .filter(|f| matches!(f.kind, FindingKind::StaleIndex | FindingKind::BadIndex))
        .map(|f| (f.kind, f.repaired))
        .collect()
}

/// Checks that the index agrees with a walk of the store.
fn assert_index_right(store: &Store, when: &str) {
    assert!(store.layout().refs().join("complete").is_file(), "{when}");
    let r = store.check(false).unwrap();
    assert!(index_findings(&r).is_empty(), "{when}: {:?}", r.findings);
    assert!(r.is_clean(), "{when}: {:?}", r.findings);
}

/// An image on `base:1` (one layer) and two committed on it, each from
/// a container of the one below: base <- child:1 <- grandchild:1.
fn three_generations(f: &Fixture) -> [Digest; 3] {
    let base = f.import(1, "base:1");
    let spec = ContainerSpec::default();
    let c = f.store.create_container("base:1", &spec).unwrap();
    fs::write(f.store.mount(&c).unwrap().join("one"), "1").unwrap();
    f.store.unmount(&c).unwrap();
    let child = f.store.commit(&c, Some("child:1"), "").unwrap();
    f.store.remove_container(&c, false).unwrap();
    let c = f.store.create_container("child:1", &spec).unwrap();
    fs::write(f.store.mount(&c).unwrap().join("two"), "2").unwrap();
    f.store.unmount(&c).unwrap();
    let grandchild = f.store.commit(&c, Some("grandchild:1"), "").unwrap();
    f.store.remove_container(&c, false).unwrap();
    [base, child, grandchild]
}

fn top(store: &Store, id: &Digest) -> Digest {
    let img = store.image(id).unwrap();
    img.diff_ids
        .iter()
        .fold(None, |p: Option<Digest>, d| Some(chain_id(p.as_ref(), d)))
        .unwrap()
}

#[test]
fn the_index_follows_import_commit_rmi_and_prune() {
    let f = Fixture::new("vfs");
    assert_index_right(&f.store, "new store");
    let [base, child, grandchild] = three_generations(&f);
    let l = f.store.layout();
    assert_eq!(sorted_names(&l.image_children(&base)), [child.hex()]);
    assert_eq!(sorted_names(&l.image_children(&child)), [grandchild.hex()]);
    let base_top = top(&f.store, &base);
    let child_top = top(&f.store, &child);
    assert_eq!(
        sorted_names(&l.layer_refs(&base_top)),
        [
            format!("image-{}", base.hex()),
            format!("layer-{}", child_top.hex())
        ]
    );
    assert_index_right(&f.store, "after two commits");
    // A child keeps its parent by ID, even forced.
    let e = f.store.remove_image(base.as_str(), true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    // The grandchild goes with its layer; the child is tagged and stays.
    let done = f.store.remove_image("grandchild:1", false).unwrap();
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(sorted_names(&l.image_children(&child)).is_empty());
    assert_eq!(f.store.layers().unwrap().len(), 2);
    assert_index_right(&f.store, "after rmi");
    // Untagged, the child goes with `prune`; then the base with `prune -a`.
    f.store.remove_image("child:1", false).unwrap();
    assert_eq!(f.store.layers().unwrap().len(), 1);
    assert_index_right(&f.store, "after the child's rmi");
    f.store
        .import(&mut std::io::Cursor::new(common::layer(9)), None, "")
        .unwrap();
    f.store.prune(false).unwrap();
    assert_index_right(&f.store, "after prune");
    f.store.prune(true).unwrap();
    assert!(f.store.images().unwrap().is_empty());
    assert!(f.store.layers().unwrap().is_empty());
    assert_eq!(sorted_names(&l.refs().join("layers")), Vec::<String>::new());
    assert_index_right(&f.store, "after prune -a");
}

/// A store made before the index (none on disk) is not damaged: `check`
/// says nothing of it, a read-only open writes none, and the first
/// command that needs it builds it.
#[test]
fn a_store_without_an_index_is_indexed_on_first_need() {
    let f = Fixture::new("vfs");
    let [_, child, grandchild] = three_generations(&f);
    let refs = f.store.layout().refs();
    fs::remove_dir_all(&refs).unwrap();
    let root = f.store.root().to_owned();
    let ro =
        Store::open_read_only(&root, None, strata_store::driver::fuse::Server::Threads).unwrap();
    assert_eq!(ro.images().unwrap().len(), 3);
    let r = ro.check(false).unwrap();
    assert!(r.is_clean(), "{:?}", r.findings);
    assert!(!refs.exists(), "a read-only open wrote the index");
    // Refused for its child, as before: the index was built to know.
    let e = f.store.remove_image(child.as_str(), false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    assert!(refs.join("complete").is_file());
    f.store.remove_image(grandchild.as_str(), false).unwrap();
    assert_eq!(f.store.layers().unwrap().len(), 2);
    assert_index_right(&f.store, "after indexing");
}

/// A store indexed here, then changed by a strata from before the index
/// (which writes no entries): the change dates the store's directories
/// after the index's stamp, so the index is rebuilt before it is
/// trusted, and the parent is kept for the child it did not record.
#[test]
fn a_store_changed_without_the_index_is_indexed_again() {
    let f = Fixture::new("vfs");
    let [base, child, _] = three_generations(&f);
    let l = f.store.layout();
    // What the older strata would have left: the commit's entries
    // missing, the index stamped before the commit.
    fs::remove_file(l.image_children(&base).join(child.hex())).unwrap();
    let stamp = fs::File::options()
        .write(true)
        .open(l.refs().join("complete"))
        .unwrap();
    stamp
        .set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1))
        .unwrap();
    let e = f.store.remove_image(base.as_str(), false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    assert_eq!(sorted_names(&l.image_children(&base)), [child.hex()]);
    assert_index_right(&f.store, "after indexing again");
}

/// An entry too many (what a crash between two steps leaves: the entry
/// of a layer or an image not published, or of one removed) keeps
/// nothing: what it names is not there. `check` calls it stale and
/// `check --repair` rebuilds the index.
#[test]
fn entries_too_many_keep_nothing_and_are_repaired() {
    let f = Fixture::new("vfs");
    let [base, child, grandchild] = three_generations(&f);
    let l = f.store.layout();
    let gc_top = top(&f.store, &grandchild);
    let ghost = Digest::parse(&format!("sha256:{}", "e".repeat(64))).unwrap();
    let ghost_layer = chain_id(Some(&gc_top), &ghost);
    // A layer made on the grandchild's top whose publishing was cut
    // short, an image on it never written, a child image of it.
    fs::create_dir_all(l.layer_refs(&gc_top)).unwrap();
    fs::write(
        l.layer_refs(&gc_top)
            .join(format!("layer-{}", ghost_layer.hex())),
        "",
    )
    .unwrap();
    fs::write(
        l.layer_refs(&gc_top).join(format!("image-{}", ghost.hex())),
        "",
    )
    .unwrap();
    fs::create_dir_all(l.image_children(&grandchild)).unwrap();
    fs::write(l.image_children(&grandchild).join(ghost.hex()), "").unwrap();
    let r = f.store.check(false).unwrap();
    assert_eq!(
        index_findings(&r),
        [(FindingKind::StaleIndex, false)],
        "{:?}",
        r.findings
    );
    assert!(!FindingKind::StaleIndex.is_corruption());
    // The grandchild has no child there, and its layer no holder there.
    let done = f.store.remove_image(grandchild.as_str(), false).unwrap();
    assert!(done.contains(&format!("Deleted: {gc_top}")), "{done:?}");
    // Removed with its layer: the stale entries went with it.
    assert_index_right(&f.store, "after rmi");
    // Stale entries that stay are repaired.
    fs::write(l.image_children(&base).join(ghost.hex()), "").unwrap();
    let r = f.store.check(true).unwrap();
    assert_eq!(
        index_findings(&r),
        [(FindingKind::StaleIndex, true)],
        "{:?}",
        r.findings
    );
    assert_eq!(sorted_names(&l.image_children(&base)), [child.hex()]);
    assert_index_right(&f.store, "after repair");
}

/// An entry missing (no crash of ours leaves one) is damage: `check`
/// says so and `check --repair` rebuilds it, so that the parent is kept
/// for its child again.
#[test]
fn an_entry_missing_is_found_and_rebuilt() {
    let f = Fixture::new("vfs");
    let [base, child, _] = three_generations(&f);
    let l = f.store.layout();
    fs::remove_file(l.image_children(&base).join(child.hex())).unwrap();
    let child_top = top(&f.store, &child);
    let base_top = top(&f.store, &base);
    fs::remove_file(
        l.layer_refs(&base_top)
            .join(format!("layer-{}", child_top.hex())),
    )
    .unwrap();
    let r = f.store.check(false).unwrap();
    assert_eq!(
        index_findings(&r),
        [(FindingKind::BadIndex, false)],
        "{:?}",
        r.findings
    );
    assert!(!r.is_clean());
    let r = f.store.check(true).unwrap();
    assert_eq!(
        index_findings(&r),
        [(FindingKind::BadIndex, true)],
        "{:?}",
        r.findings
    );
    assert_index_right(&f.store, "after repair");
    let e = f.store.remove_image(base.as_str(), false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
}

/// What the store looks like, to compare before and after a refused
/// command.
fn snapshot(store: &Store) -> (Vec<String>, Vec<Digest>) {
    let images = store
        .images()
        .unwrap()
        .into_iter()
        .map(|i| format!("{} {:?}", i.id, i.tags))
        .collect();
    let layers = store
        .layers()
        .unwrap()
        .into_iter()
        .map(|l| l.chain_id)
        .collect();
    (images, layers)
}

/// A hostile record in the index (a name that is no ID, content where
/// there should be none, a huge file, a symlink, a file for a directory)
/// is refused as corrupt by the `rmi` that reads it, before it changes
/// anything; `check` calls it damage and `check --repair` rebuilds.
#[test]
fn a_hostile_index_record_is_refused_and_the_store_left_as_it_was() {
    type Plant = fn(&Path, &Path);
    let cases: [(&str, Plant); 6] = [
        ("a name that is no ID", |dir, _| {
            fs::write(dir.join("image-not-a-digest"), "").unwrap()
        }),
        ("a name of another kind", |dir, _| {
            fs::write(dir.join(format!("volume-{}", "a".repeat(64))), "").unwrap()
        }),
        ("content (JSON, and not even that)", |dir, _| {
            fs::write(
                dir.join(format!("layer-{}", "a".repeat(64))),
                "{\"oops\": [",
            )
            .unwrap()
        }),
        ("a huge file", |dir, _| {
            let f = fs::File::create(dir.join(format!("image-{}", "b".repeat(64)))).unwrap();
            f.set_len(1 << 40).unwrap();
        }),
        ("a symlink", |dir, outside| {
            std::os::unix::fs::symlink(outside, dir.join(format!("image-{}", "c".repeat(64))))
                .unwrap()
        }),
        ("a file for the directory", |dir, _| {
            fs::remove_dir_all(dir).unwrap();
            fs::write(dir, "x".repeat(1 << 20)).unwrap();
        }),
    ];
    for (what, plant) in cases {
        let f = Fixture::new("vfs");
        let id = f.import(1, "one:1");
        let outside = f.dir.path().join("outside");
        fs::write(&outside, "").unwrap();
        let t = top(&f.store, &id);
        let dir = f.store.layout().layer_refs(&t);
        plant(&dir, &outside);
        let before = snapshot(&f.store);
        let e = f.store.remove_image("one:1", false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
        assert!(e.to_string().contains("reference index"), "{what}: {e}");
        assert_eq!(snapshot(&f.store), before, "{what}: the store changed");
        let r = f.store.check(false).unwrap();
        assert_eq!(
            index_findings(&r),
            [(FindingKind::BadIndex, false)],
            "{what}: {:?}",
            r.findings
        );
        let r = f.store.check(true).unwrap();
        assert!(r.is_clean(), "{what}: {:?}", r.findings);
        assert!(outside.exists(), "{what}");
        f.store.remove_image("one:1", false).unwrap();
        assert!(f.store.layers().unwrap().is_empty(), "{what}");
        assert_index_right(&f.store, what);
    }
}

/// Lower in the chain, collection reads a layer's record only after the
/// image is gone: a damaged one there keeps the layer (what it names may
/// hold it) rather than failing half-way; `check` reports it, and
/// `check --repair` collects the layer and rebuilds the index.
#[test]
fn a_damaged_record_lower_down_keeps_its_layer() {
    let f = Fixture::new("vfs");
    let [_, child, grandchild] = three_generations(&f);
    let l = f.store.layout();
    let child_top = top(&f.store, &child);
    // Untagged only: it has a child. It goes with the grandchild.
    f.store.remove_image("child:1", false).unwrap();
    fs::write(l.layer_refs(&child_top).join("garbage"), "").unwrap();
    let done = f.store.remove_image("grandchild:1", false).unwrap();
    assert!(done.contains(&format!("Deleted: {child}")), "{done:?}");
    assert!(done.contains(&format!("Deleted: {grandchild}")), "{done:?}");
    assert!(f.store.layer(&child_top).is_ok(), "{done:?}");
    assert_eq!(f.store.layers().unwrap().len(), 2);
    let r = f.store.check(false).unwrap();
    let kinds: Vec<FindingKind> = r.remaining().map(|f| f.kind).collect();
    assert!(kinds.contains(&FindingKind::BadIndex), "{:?}", r.findings);
    assert!(
        kinds.contains(&FindingKind::UnreferencedLayer),
        "{:?}",
        r.findings
    );
    f.store.check(true).unwrap();
    assert_eq!(f.store.layers().unwrap().len(), 1);
    assert_index_right(&f.store, "after repair");
}

/// An index directory that is a symlink is never written through.
#[test]
fn an_index_directory_that_is_a_symlink_is_not_followed() {
    let f = Fixture::new("vfs");
    f.import(1, "one:1");
    let tar = common::layer(2);
    let chain = strata_store::archive::sha256(&tar);
    let outside = f.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let dir = f.store.layout().layer_refs(&chain);
    std::os::unix::fs::symlink(&outside, &dir).unwrap();
    let e = f
        .store
        .import(&mut std::io::Cursor::new(tar), Some("two:1"), "")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(
        sorted_names(&outside).is_empty(),
        "written through the link"
    );
    assert!(f.store.resolve_image("two:1").is_err());
}
