//! The diff side: diff, apply_diff, changes and diff_size, within one
//! driver and from one driver to another.

use std::collections::BTreeSet;
use std::io::Cursor;

use super::fixture::*;
use super::harness::{chain, Factory, Harness};
use super::tree::{self, assert_same, manifest, Tree};
use crate::{Change, ChangeKind};

/// moby DriverTestDiffApply: the diff of a layer (10 files rewritten, a
/// file and a directory removed) applied into a fresh layer on the same
/// parent gives the same tree, and `apply_diff`'s size is `diff_size`.
pub fn diff_apply_round_trip(f: Factory) {
    const FILES: u64 = 10;
    let h = Harness::new(f);
    let d = h.driver();
    h.create("base", None);
    h.with_layer("base", |p| {
        many_files(p, FILES, 3);
        write(p, "file-remove.txt", b"remove me", 0o644);
        mkdir(p, "var/lib", 0o755);
    });
    h.create("upper", Some("base"));
    let upper = h.with_layer("upper", |p| {
        many_files(p, FILES, 6);
        remove_file(p, "file-remove.txt");
        remove_all(p, "var/lib");
        manifest(p)
    });
    let size = d
        .diff_size("upper", Some("base"))
        .unwrap_or_else(|e| panic!("diff_size: {}", chain(&e)));
    assert_eq!(size, FILES * 64, "diff_size of 10 rewritten 64-byte files");
    h.create("diff", Some("base"));
    h.with_layer("diff", |p| {
        check_many_files(p, FILES, 3, "fresh layer on base");
        assert_eq!(
            read(p, "file-remove.txt"),
            b"remove me",
            "fresh layer on base: /file-remove.txt"
        );
    });
    let tar = diff(&h, "upper", Some("base"));
    let report = d
        .apply_diff("diff", Some("base"), &mut Cursor::new(&tar))
        .unwrap_or_else(|e| panic!("apply_diff: {}", chain(&e)));
    assert_eq!(
        report.size, size,
        "apply_diff's size against diff_size of the layer diffed"
    );
    h.with_layer("diff", |p| {
        check_many_files(p, FILES, 6, "layer applied from the diff");
        assert_absent(p, "file-remove.txt", "layer applied from the diff");
        assert_absent(p, "var/lib", "layer applied from the diff");
        assert_same(
            &upper,
            &manifest(p),
            "layer applied from the diff vs the layer diffed",
            false,
        );
    });
    h.finish();
}

fn diff(h: &Harness, id: &str, parent: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    h.driver()
        .diff(id, parent, &mut out)
        .unwrap_or_else(|e| panic!("diff({id}, {parent:?}): {}", chain(&e)));
    out
}

fn changes(h: &Harness, id: &str, parent: Option<&str>) -> Vec<Change> {
    h.driver()
        .changes(id, parent)
        .unwrap_or_else(|e| panic!("changes({id}, {parent:?}): {}", chain(&e)))
}

fn apply_diff(h: &Harness, id: &str, parent: Option<&str>, tar: &[u8]) {
    h.driver()
        .apply_diff(id, parent, &mut Cursor::new(tar))
        .unwrap_or_else(|e| panic!("apply_diff({id}, {parent:?}): {}", chain(&e)));
}

/// A file rewritten with the same size right after its layer was made
/// (within one tick of the file-system clock, so with the same mtime) is
/// still a change: `changes` lists it and `diff_size` counts it. Tried 20
/// times, since the clock does not always cooperate.
pub fn same_size_rewrite_is_a_change(f: Factory) {
    let h = Harness::new(f);
    let d = h.driver();
    let mut missed = Vec::new();
    for i in 0..20 {
        let (base, upper) = (format!("base-{i}"), format!("upper-{i}"));
        h.create(&base, None);
        h.with_layer(&base, |p| write(p, "file", &[1; 64], 0o644));
        h.create(&upper, Some(&base));
        h.with_layer(&upper, |p| write(p, "file", &[2; 64], 0o644));
        let changes = d
            .changes(&upper, Some(&base))
            .unwrap_or_else(|e| panic!("changes({upper}): {}", chain(&e)));
        let size = d
            .diff_size(&upper, Some(&base))
            .unwrap_or_else(|e| panic!("diff_size({upper}): {}", chain(&e)));
        if show_changes(&changes) != ["C /file"] || size != 64 {
            missed.push(format!(
                "{upper}: changes {:?}, diff_size {size}",
                show_changes(&changes)
            ));
        }
    }
    assert!(
        missed.is_empty(),
        "same-size rewrites not seen as changes (expected [\"C /file\"], diff_size 64):\n{}",
        missed.join("\n")
    );
    h.finish();
}

/// A base layer of every file type and a child that changes it in every
/// way a layer can: rewrites, a deleted file, a deleted one of a hard-link
/// pair, an opaque directory, new owner, new xattr value, new symlink,
/// hard link and fifo.
fn changed_stack(h: &Harness) -> (Tree, Tree) {
    h.create("base", None);
    let base = h.with_layer("base", |p| {
        every_file_type(p);
        many_files(p, 10, 3);
        write(p, "lib/hidden", b"hidden", 0o644);
        write(p, "etc/gone", b"gone", 0o644);
        write(p, "etc/keep", b"keep", 0o600);
        manifest(p)
    });
    h.create("upper", Some("base"));
    let upper = h.with_layer("upper", |p| {
        many_files(p, 10, 6);
        remove_file(p, "etc/gone");
        remove_file(p, "hardlink-2");
        remove_all(p, "lib");
        mkdir(p, "lib", 0o700);
        write(p, "lib/not-hidden", b"not hidden", 0o644);
        lchown(p, "a subdir", 3, 4);
        setxattr(p, "a file", "user.x", b"another value");
        symlink(p, "/etc/keep", "new-link");
        hard_link(p, "etc/keep", "etc/keep-2");
        mknod(p, "new fifo", strata_sys::FileType::Fifo, 0o640, 0);
        manifest(p)
    });
    (base, upper)
}

/// A layer stack diffed out of one driver and applied into another gives
/// the same trees, layer by layer.
pub fn cross_driver_diff(from: Factory, to: Factory) {
    let a = Harness::new(from);
    let b = Harness::new(to);
    let (base, upper) = changed_stack(&a);
    let what = format!("{} -> {}", a.driver().name(), b.driver().name());
    b.create("base", None);
    apply_diff(&b, "base", None, &diff(&a, "base", None));
    b.create("upper", Some("base"));
    apply_diff(&b, "upper", Some("base"), &diff(&a, "upper", Some("base")));
    b.with_layer("base", |p| {
        assert_same(&base, &manifest(p), &format!("{what}: base"), false)
    });
    b.with_layer("upper", |p| {
        assert_same(&upper, &manifest(p), &format!("{what}: upper"), false)
    });
    a.finish();
    b.finish();
}

/// moby DriverTestChanges: of 20 files, every third rewritten (`C`), one
/// added next to every third (`A`), every third deleted (`D`); `changes`
/// lists exactly those plus `C /directory-0`, sorted by path.
pub fn changes_exact(f: Factory) {
    const FILES: u64 = 20;
    const SEED: u64 = 6;
    let h = Harness::new(f);
    h.create("base", None);
    h.with_layer("base", |p| many_files(p, FILES, 3));
    h.create("upper", Some("base"));
    let mut expected = vec![change("/directory-0", ChangeKind::Modified)];
    h.with_layer("upper", |p| {
        for j in 0..FILES {
            match j % 3 {
                0 => {
                    write(p, &many_name(j), &random_bytes(SEED + j, 64), 0o755);
                    expected.push(change(
                        &format!("/directory-0/file-{j}"),
                        ChangeKind::Modified,
                    ));
                }
                1 => {
                    let rel = format!("directory-0/file-{SEED}-{j}");
                    write(p, &rel, &random_bytes(SEED + j, 64), 0o755);
                    expected.push(change(&format!("/{rel}"), ChangeKind::Added));
                }
                _ => {
                    remove_file(p, &many_name(j));
                    expected.push(change(
                        &format!("/directory-0/file-{j}"),
                        ChangeKind::Deleted,
                    ));
                }
            }
        }
    });
    expected.sort();
    let got = changes(&h, "upper", Some("base"));
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        show_changes(&sorted),
        show_changes(&expected),
        "changes(upper, base)"
    );
    assert_eq!(
        show_changes(&got),
        show_changes(&sorted),
        "changes(upper, base) is not sorted by path"
    );
    h.finish();
}

fn change(path: &str, kind: ChangeKind) -> Change {
    Change {
        path: path.as_bytes().to_vec(),
        kind,
    }
}

fn show_changes(c: &[Change]) -> Vec<String> {
    c.iter().map(ToString::to_string).collect()
}

/// `changes` names each path once (a layer that changes a directory's
/// children in several ways still gives one `C` for the directory).
pub fn changes_list_each_path_once(f: Factory) {
    let h = Harness::new(f);
    changed_stack(&h);
    let changes = changes(&h, "upper", Some("base"));
    let mut seen = BTreeSet::new();
    let twice: Vec<String> = changes
        .iter()
        .filter(|c| !seen.insert(c.path.clone()))
        .map(ToString::to_string)
        .collect();
    assert!(
        twice.is_empty(),
        "paths listed more than once: {twice:?}; changes: {:?}",
        show_changes(&changes)
    );
    h.finish();
}

/// `changes` and `diff` of the same layer tell the same story: every
/// added or changed path has an entry in the tar, every deleted one a
/// `.wh.` entry (or an opaque marker on its directory), and every
/// non-directory entry and whiteout of the tar is a listed change.
pub fn changes_agree_with_diff(f: Factory) {
    let h = Harness::new(f);
    changed_stack(&h);
    let changes = changes(&h, "upper", Some("base"));
    let entries = tar_entries(&diff(&h, "upper", Some("base")));
    let names: BTreeSet<&[u8]> = entries.iter().map(|e| e.path.as_slice()).collect();
    let listed: BTreeSet<(&[u8], bool)> = changes
        .iter()
        .map(|c| (c.path.as_slice(), c.kind == ChangeKind::Deleted))
        .collect();
    for c in &changes {
        let found = match c.kind {
            ChangeKind::Deleted => {
                let (dir, name) = split(&c.path);
                names.contains([dir, b"/.wh.", name].concat().as_slice())
                    || names.contains([dir, b"/.wh..wh..opq"].concat().as_slice())
            }
            _ => names.contains(c.path.as_slice()),
        };
        assert!(
            found,
            "`{c}` is in changes but not in the diff; diff entries: {:?}",
            show_entries(&entries)
        );
    }
    for e in &entries {
        let (dir, name) = split(&e.path);
        if name == b".wh..wh..opq" {
            continue;
        }
        // A directory may come as the parent of a change; an unchanged
        // name may come again as a hard link to a changed one.
        let ok = match name.strip_prefix(b".wh.") {
            Some(victim) => listed.contains(&([dir, b"/", victim].concat().as_slice(), true)),
            None => {
                e.is_dir
                    || listed.contains(&(e.path.as_slice(), false))
                    || e.link
                        .as_ref()
                        .is_some_and(|l| listed.contains(&(l.as_slice(), false)))
            }
        };
        assert!(
            ok,
            "diff entry {} has no matching change; changes: {:?}",
            tree::show(&e.path),
            show_changes(&changes)
        );
    }
    h.finish();
}

/// `(dir, name)` of an absolute path; the root's children have dir `""`.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    let i = path.iter().rposition(|b| *b == b'/').unwrap_or(0);
    (&path[..i], &path[i + 1..])
}

/// An entry of a layer tar: its name made absolute, without a trailing
/// slash; whether it is a directory; a hard link's target, made absolute.
struct Entry {
    path: Vec<u8>,
    is_dir: bool,
    link: Option<Vec<u8>>,
}

fn tar_entries(data: &[u8]) -> Vec<Entry> {
    let abs = |raw: &[u8]| {
        let p = raw.strip_prefix(b"./").unwrap_or(raw);
        let p = p.strip_prefix(b"/").unwrap_or(p);
        [b"/", p.strip_suffix(b"/").unwrap_or(p)].concat()
    };
    let mut archive = tar::Archive::new(Cursor::new(data));
    let mut out = Vec::new();
    for e in archive.entries().expect("reading the diff tar") {
        let e = e.expect("a tar entry of the diff");
        let kind = e.header().entry_type();
        let link = match kind {
            tar::EntryType::Link => e.link_name_bytes().map(|l| abs(&l)),
            _ => None,
        };
        out.push(Entry {
            path: abs(&e.path_bytes()),
            is_dir: kind.is_dir(),
            link,
        });
    }
    out
}

/// The entry names of a layer tar, relative, without `./` or a trailing
/// slash, in order (for tests that look for particular entries).
pub fn tar_names(data: &[u8]) -> Vec<String> {
    tar_entries(data)
        .iter()
        .map(|e| tree::show(&e.path[1..]))
        .collect()
}

fn show_entries(e: &[Entry]) -> Vec<String> {
    e.iter().map(|e| tree::show(&e.path)).collect()
}

/// A driver's own diff, where it covers a layer, is the naive one: the
/// same changes and the same tar byte for byte as comparing the layer
/// with its parent tree by tree (`strata_archive::changes_trees`,
/// `diff_trees`), over every kind of change `changed_stack` makes plus a
/// rename, a write deep in a directory nothing else touched, a
/// same-size rewrite and a directory replaced by a file. For drivers
/// that promise it (`also = [...]` in `conformance!`): the driver must
/// have a native diff that covers both layers over their parents.
pub fn native_diff_agrees_with_naive(f: Factory) {
    let h = Harness::new(f);
    changed_stack(&h);
    h.with_layer("base", |p| {
        write(p, "deep/a/b/c/file", b"deep", 0o644);
        write(p, "deep/a/b/other", b"other", 0o644);
        write(p, "quiet/x/y/z", b"quiet", 0o644);
        write(p, "moved", b"moved", 0o644);
        write(p, "same-size", &[1; 32], 0o644);
        write(p, "dir-to-file/inner", b"inner", 0o644);
    });
    h.create("top", Some("upper"));
    h.create_rw("ctr", Some("base"));
    h.with_layer("ctr", |p| {
        write(p, "deep/a/b/c/file", b"changed deep", 0o644);
        std::fs::rename(p.join("moved"), p.join("deep/moved-here")).unwrap();
        write(p, "same-size", &[2; 32], 0o644);
        remove_all(p, "dir-to-file");
        write(p, "dir-to-file", b"now a file", 0o644);
        remove_file(p, "etc/gone");
    });
    let native = h
        .driver()
        .native_diff()
        .expect("the driver has no native diff");
    for (id, parent) in [("upper", "base"), ("ctr", "base")] {
        assert!(
            native.covers(id, Some(parent)),
            "the native diff does not cover {id} over {parent}"
        );
        let (new, old) = (h.get(id), h.get(parent));
        let want = strata_archive::changes_trees(Some(&old), &new)
            .unwrap_or_else(|e| panic!("naive changes of {id}: {}", chain(&e)));
        let mut want_tar = Vec::new();
        strata_archive::diff_trees(Some(&old), &new, &mut want_tar)
            .unwrap_or_else(|e| panic!("naive diff of {id}: {}", chain(&e)));
        let got = native
            .changes(id, Some(parent))
            .unwrap_or_else(|e| panic!("native changes of {id}: {}", chain(&e)));
        let mut got_tar = Vec::new();
        native
            .diff(id, Some(parent), &mut got_tar)
            .unwrap_or_else(|e| panic!("native diff of {id}: {}", chain(&e)));
        assert_eq!(
            show_changes(&got),
            show_changes(&want),
            "{id}: the native changes are not the naive ones"
        );
        assert!(
            got_tar == want_tar,
            "{id}: the native diff is not the naive one:\nnative {:?}\nnaive  {:?}",
            tar_names(&got_tar),
            tar_names(&want_tar)
        );
        h.put(id);
        h.put(parent);
    }
    h.finish();
}

/// A layer whose hard link names a file only its parent has applies as on
/// the merged view (containerd applies onto the mounted snapshot; GNU tar
/// on the merged tree accepts it): both names show the parent's content,
/// as one inode, and the parent is left as it was.
pub fn apply_diff_links_a_parent_file(f: Factory) {
    let h = Harness::new(f);
    let d = h.driver();
    h.create("base", None);
    h.with_layer("base", |p| {
        mkdir(p, "bin", 0o755);
        write(p, "bin/tool", b"#!/bin/sh\necho tool\n", 0o755);
    });
    h.create("links", Some("base"));
    let mut b = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Link);
    link.set_mode(0o755);
    link.set_size(0);
    b.append_link(&mut link, "bin/tool2", "bin/tool")
        .expect("building the layer");
    let tar = b.into_inner().expect("building the layer");
    d.apply_diff("links", Some("base"), &mut Cursor::new(&tar))
        .unwrap_or_else(|e| panic!("apply_diff: {}", chain(&e)));
    h.with_layer("links", |p| {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(read(p, "bin/tool2"), b"#!/bin/sh\necho tool\n");
        let ino = |rel: &str| std::fs::symlink_metadata(p.join(rel)).unwrap().ino();
        assert_eq!(ino("bin/tool"), ino("bin/tool2"), "one inode, two names");
    });
    h.with_layer("base", |p| {
        assert_absent(p, "bin/tool2", "the parent after its child's apply");
    });
    h.finish();
}
