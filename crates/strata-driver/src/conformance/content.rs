//! What a layer shows: new layers, every file type, and the union rules
//! (a child sees its parent, copy-up, whiteouts, opaque directories) down
//! a deep chain.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::fixture::*;
use super::harness::{Factory, Harness};
use super::tree::{self, assert_same, manifest};

/// moby DriverTestCreateEmpty: a new layer (read-only or read-write)
/// exists, shows an empty directory of mode 0755 owned by 0:0, and is
/// gone after `remove`.
pub fn create_empty(f: Factory) {
    let h = Harness::new(f);
    let d = h.driver();
    for (id, rw) in [("empty", false), ("empty-rw", true)] {
        if rw {
            h.create_rw(id, None);
        } else {
            h.create(id, None);
        }
        assert!(d.exists(id), "exists({id}) is false after create");
        let p = h.get(id);
        let md = fs::metadata(&p).expect("stat of the layer root");
        assert_eq!(
            md.mode() & 0o7777,
            0o755,
            "mode of the root of new layer {id}"
        );
        assert_eq!(
            (md.uid(), md.gid()),
            (0, 0),
            "owner of the root of new layer {id}"
        );
        assert_eq!(
            list(&p, ""),
            Vec::<String>::new(),
            "entries of new layer {id}"
        );
        h.put(id);
        h.remove(id);
        assert!(!d.exists(id), "exists({id}) is true after remove");
    }
    h.finish();
}

/// Removing every layer gives back the home as the driver first made it:
/// no layer directory, short link, count or mount point stays.
pub fn remove_leaves_nothing_behind(f: Factory) {
    let h = Harness::new(f);
    let before = home_listing(h.home());
    h.create_base();
    h.create_rw("ctr", Some("base"));
    h.with_layer("ctr", |p| write(p, "file", b"ctr", 0o644));
    h.remove("ctr");
    h.remove("base");
    let after = home_listing(h.home());
    let left: Vec<_> = after.difference(&before).collect();
    assert!(
        left.is_empty(),
        "left in the driver's home after removing every layer: {left:?}"
    );
    h.finish();
}

/// moby DriverTestCreateBase, with every file type: what is written into
/// a layer (modes with sticky and setuid, owners, a symlink, a hard-link
/// pair, a fifo, a character device, `user.*` xattrs) is exactly what a
/// later `get` shows.
pub fn create_base_with_every_file_type(f: Factory) {
    let h = Harness::new(f);
    h.create_rw("base", None);
    let written = h.with_layer("base", |p| {
        every_file_type(p);
        check_every_file_type(p, "as written");
        manifest(p)
    });
    assert_shows_every_file_type(&h, "base", &written, "after put and get");
    h.finish();
}

/// Layer `id` shows [`every_file_type`]'s tree as it should be, and
/// exactly `tree` (times too).
fn assert_shows_every_file_type(h: &Harness, id: &str, tree: &tree::Tree, what: &str) {
    h.with_layer(id, |p| {
        check_every_file_type(p, what);
        assert_same(tree, &manifest(p), what, true);
    });
}

/// Layer `base` holding [`every_file_type`]'s tree and what `fill`
/// adds; its manifest.
fn base_of_every_file_type(h: &Harness, fill: impl FnOnce(&Path)) -> tree::Tree {
    h.create("base", None);
    h.with_layer("base", |p| {
        every_file_type(p);
        fill(p);
        manifest(p)
    })
}

/// moby DriverTestCreateSnap: a layer created on a parent shows the
/// parent's content exactly, and so does a read-write layer on that.
pub fn child_sees_parent_content(f: Factory) {
    let h = Harness::new(f);
    let base = base_of_every_file_type(&h, |_| {});
    h.create("snap", Some("base"));
    assert_shows_every_file_type(&h, "snap", &base, "snap on base");
    h.create_rw("ctr", Some("snap"));
    assert_shows_every_file_type(&h, "ctr", &base, "container layer on snap");
    h.finish();
}

/// Copy-up: changing a parent's files in a child (content, mode, owner,
/// xattr, append) shows in the child only; the parent and a sibling still
/// show the original tree.
pub fn write_in_child_leaves_parent_untouched(f: Factory) {
    let h = Harness::new(f);
    let base = base_of_every_file_type(&h, |p| {
        write(p, "data/file", &random_bytes(10, 5000), 0o644);
        write(p, "data/meta", b"meta", 0o644);
        write(p, "data/append", b"head", 0o640);
        mkdir(p, "data/dir", 0o750);
    });
    h.create_rw("ctr", Some("base"));
    let check_child = |p: &Path, what: &str| {
        assert_eq!(
            read(p, "data/file"),
            random_bytes(11, 3000),
            "{what}: rewritten /data/file"
        );
        let md = fs::metadata(p.join("data/meta")).expect("stat /data/meta");
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid()),
            (0o600, 5, 6),
            "{what}: chmod+chown of /data/meta"
        );
        assert_eq!(read(p, "data/append"), b"headtail", "{what}: /data/append");
        let x = tree::xattrs(&p.join("data/dir"));
        assert_eq!(
            x,
            [(b"user.new".to_vec(), b"1".to_vec())],
            "{what}: xattrs of /data/dir"
        );
        assert_eq!(read(p, "data/new"), b"new", "{what}: /data/new");
    };
    h.with_layer("ctr", |p| {
        write(p, "data/file", &random_bytes(11, 3000), 0o644);
        chmod(p, "data/meta", 0o600);
        lchown(p, "data/meta", 5, 6);
        append(p, "data/append", b"tail");
        setxattr(p, "data/dir", "user.new", b"1");
        write(p, "data/new", b"new", 0o644);
        check_child(p, "child, as written");
    });
    h.with_layer("ctr", |p| check_child(p, "child, after put and get"));
    h.with_layer("base", |p| {
        assert_same(
            &base,
            &manifest(p),
            "the parent after writes in its child",
            true,
        );
    });
    h.create_rw("sibling", Some("base"));
    h.with_layer("sibling", |p| {
        assert_same(&base, &manifest(p), "a sibling of the written child", true);
    });
    h.finish();
}

/// Whiteouts: a file, a file in a directory and a whole directory tree
/// deleted in a child are gone from it and from its own children, stay in
/// the parent, and a name created again over a whiteout shows only the new
/// content (a directory created again is empty).
pub fn delete_in_child_hides_parent_file(f: Factory) {
    let h = Harness::new(f);
    h.create("base", None);
    let base = h.with_layer("base", |p| {
        write(p, "gone", b"old", 0o644);
        write(p, "dir/gone", b"old", 0o644);
        write(p, "dir/kept", b"kept", 0o644);
        write(p, "tree/a/b/c", b"deep", 0o644);
        write(p, "tree/d", b"d", 0o644);
        manifest(p)
    });
    h.create("child", Some("base"));
    let check = |p: &Path, what: &str| {
        assert_absent(p, "gone", what);
        assert_absent(p, "dir/gone", what);
        assert_absent(p, "tree", what);
        assert_eq!(list(p, "dir"), ["kept"], "{what}: entries of /dir");
        assert_eq!(list(p, ""), ["dir"], "{what}: entries of /");
    };
    h.with_layer("child", |p| {
        remove_file(p, "gone");
        remove_file(p, "dir/gone");
        remove_all(p, "tree");
        check(p, "child, as deleted");
    });
    h.with_layer("child", |p| check(p, "child, after put and get"));
    h.create_rw("grandchild", Some("child"));
    h.with_layer("grandchild", |p| {
        check(p, "grandchild");
        write(p, "gone", b"new", 0o644);
        mkdir(p, "tree", 0o755);
    });
    h.with_layer("grandchild", |p| {
        assert_eq!(
            read(p, "gone"),
            b"new",
            "grandchild: /gone created again over a whiteout"
        );
        assert_eq!(
            list(p, "tree"),
            Vec::<String>::new(),
            "grandchild: /tree created again over a whiteout"
        );
    });
    h.with_layer("base", |p| {
        assert_same(
            &base,
            &manifest(p),
            "the parent after deletes in its child",
            true,
        )
    });
    h.finish();
}

/// containerd RemoveDirectoryInLowerLayer (docker#25244), opaque
/// directories: `/lib` removed and made again in a child shows only what
/// the child put there; `/lib/hidden` never comes back, not after a
/// remount, not in a grandchild that adds to `/lib`.
pub fn rmdir_mkdir_in_child_gives_empty_dir(f: Factory) {
    let h = Harness::new(f);
    h.create("l1", None);
    h.with_layer("l1", |p| {
        write(p, "lib/hidden", b"hidden", 0o644);
        write(p, "lib/sub/deep", b"deep", 0o644);
    });
    h.create("l2", Some("l1"));
    h.with_layer("l2", |p| {
        remove_all(p, "lib");
        mkdir(p, "lib", 0o755);
        write(p, "lib/not-hidden", b"not hidden", 0o644);
        assert_eq!(
            list(p, "lib"),
            ["not-hidden"],
            "l2 as written: entries of /lib"
        );
    });
    h.with_layer("l2", |p| {
        assert_eq!(
            list(p, "lib"),
            ["not-hidden"],
            "l2 after put and get: entries of /lib"
        );
        assert_absent(p, "lib/sub/deep", "l2 after put and get");
    });
    h.create("l3", Some("l2"));
    h.with_layer("l3", |p| write(p, "lib/newfile", b"new", 0o644));
    h.with_layer("l3", |p| {
        assert_eq!(
            list(p, "lib"),
            ["newfile", "not-hidden"],
            "l3: entries of /lib"
        );
        assert_absent(p, "lib/hidden", "l3");
    });
    h.with_layer("l1", |p| {
        assert_eq!(list(p, "lib"), ["hidden", "sub"], "l1: entries of /lib")
    });
    h.finish();
}

/// moby DriverTestDeepLayerRead: a chain of `depth` layers (the bottom
/// one included), each writing `layer-N/id` and overwriting `top-id`;
/// the top layer shows every layer's file and its own `top-id`.
pub fn deep_chain(f: Factory, depth: usize) {
    assert!(depth >= 2, "a chain has at least two layers");
    let h = Harness::new(f);
    let id = |n: usize| format!("layer-{n}");
    for n in 0..depth {
        let parent = (n > 0).then(|| id(n - 1));
        h.create(&id(n), parent.as_deref());
        h.with_layer(&id(n), |p| {
            if n == 0 {
                write(p, "testfile.txt", b"test content", 0o644);
            }
            write(p, &format!("layer-{n}/id"), id(n).as_bytes(), 0o644);
            write(p, "top-id", id(n).as_bytes(), 0o644);
        });
    }
    let top = id(depth - 1);
    h.with_layer(&top, |p| {
        assert_eq!(
            read(p, "top-id"),
            top.as_bytes(),
            "top-id seen from the top of {depth} layers"
        );
        assert_eq!(
            read(p, "testfile.txt"),
            b"test content",
            "the bottom layer's file from the top"
        );
        for n in 0..depth {
            assert_eq!(
                read(p, &format!("layer-{n}/id")),
                id(n).as_bytes(),
                "layer-{n}/id from the top"
            );
        }
        assert_eq!(
            list(p, "").len(),
            depth + 2,
            "entries of / in the top layer"
        );
    });
    h.finish();
}
