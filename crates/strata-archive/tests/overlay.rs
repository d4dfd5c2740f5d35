//! Native diff and changes from real overlay upper directories, and layers
//! applied as overlay upper directories mounted by the kernel. moby's
//! graphtest (DiffApply, Changes) and containerd's TestOverlayApply, run
//! against real overlayfs mounts.

mod support;

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_archive::{
    apply, changes_trees, changes_upper, diff_upper, ApplyOptions, Change, ChangeKind, ErrorKind,
    OverlayXattrs, Target,
};
use support::*;

struct Layout {
    _t: tempfile::TempDir,
    lower: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    merged: PathBuf,
    scratch: PathBuf,
}

/// Directories for one overlay mount (and a scratch one), when root;
/// `None` (SKIPPED) otherwise.
fn layout() -> Option<Layout> {
    if !require_root() {
        return None;
    }
    let t = tempfile::tempdir().unwrap();
    let p = t.path().to_owned();
    for d in ["lower", "upper", "work", "merged", "scratch"] {
        fs::create_dir(p.join(d)).unwrap();
    }
    Some(Layout {
        lower: p.join("lower"),
        upper: p.join("upper"),
        work: p.join("work"),
        merged: p.join("merged"),
        scratch: p.join("scratch"),
        _t: t,
    })
}

impl Layout {
    /// The lower and upper dirs mounted at `merged` with `options` for
    /// as long as the guard lives.
    fn mount(&self, options: &str) -> Unmount {
        overlay_mount(
            &[&self.lower],
            Some((&self.upper, &self.work)),
            &self.merged,
            options,
        )
    }
}

fn copy_tree(from: &Path, to: &Path) {
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to));
}

fn entry_names(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(Cursor::new(tar));
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

fn sh(dir: &Path, script: &str) {
    run(Command::new("sh").arg("-ec").arg(script).current_dir(dir));
}

/// Changes made through a mounted overlay come out of the upper dir as a
/// layer that, applied to the lower tree, gives the merged view; the
/// changes list matches a naive comparison of lower and merged.
#[test]
fn native_diff_reproduces_the_merged_view() {
    let Some(l) = layout() else { return };
    build_fixture(&l.lower);
    let merged_manifest;
    let naive_changes;
    {
        let _m = l.mount("redirect_dir=off,index=off");
        sh(
            &l.merged,
            "echo changed > etc/hosts
             echo new > etc/new-file
             rm usr/local/lib/libnothing.so.2
             rm -rf 'a subdir' && mkdir 'a subdir' && echo fresh > 'a subdir/only-new'
             chmod 0600 a-file
             chown 5:6 empty
             mkdir -p brand/new/dir && echo deep > brand/new/dir/file
             mv etc/hosts.allow etc/hosts.allow.moved
             rm -rf dev",
        );
        merged_manifest = manifest(&l.merged, &NO_TIMES);
        naive_changes = changes_trees(Some(&l.lower), &l.merged).unwrap();
    }
    let (tar, report) = diff_upper(&l.upper, Vec::new(), OverlayXattrs::Trusted).unwrap();
    assert_eq!(report.tar_size as usize, tar.len());
    let names = entry_names(&tar);
    assert!(
        names.contains(&"a subdir/.wh..wh..opq".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"usr/local/lib/.wh.libnothing.so.2".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&".wh.dev".to_owned()), "{names:?}");
    assert!(
        !tar.windows(16).any(|w| w == b"trusted.overlay."),
        "overlay xattrs leaked"
    );

    copy_tree(&l.lower, &l.scratch);
    apply(Cursor::new(&tar), &l.scratch, &ApplyOptions::default()).unwrap();
    assert_same(
        &merged_manifest,
        &manifest(&l.scratch, &NO_TIMES),
        "lower + native diff",
    );

    let native = changes_upper(&l.upper, &[&l.lower], OverlayXattrs::Trusted).unwrap();
    let show = |v: &[Change]| {
        v.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(show(&native), show(&naive_changes));
    assert!(native.contains(&Change {
        path: b"/a subdir/setgid".to_vec(),
        kind: ChangeKind::Deleted
    }));
}

/// With redirect_dir a renamed directory's content stays in the lower
/// layer: the upper dir alone is not the change, and native diff says so.
#[test]
fn native_diff_refuses_redirected_directories() {
    let Some(l) = layout() else { return };
    fs::create_dir_all(l.lower.join("olddir")).unwrap();
    fs::write(l.lower.join("olddir/f"), b"x").unwrap();
    {
        let _m = l.mount("redirect_dir=on,index=off");
        sh(&l.merged, "mv olddir newdir");
    }
    let err = diff_upper(&l.upper, Vec::new(), OverlayXattrs::Trusted).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("redirect"), "{err}");
}

/// moby graphtest DriverTestChanges: 20 files; every third rewritten,
/// added beside, or deleted.
#[test]
fn changes_match_moby_graphtest() {
    let Some(l) = layout() else { return };
    fs::create_dir(l.lower.join("directory-0")).unwrap();
    for j in 0..20 {
        fs::write(
            l.lower.join(format!("directory-0/file-{j}")),
            random_bytes(j, 64),
        )
        .unwrap();
    }
    let mut want = vec!["C /directory-0".to_owned()];
    {
        let _m = l.mount("index=off");
        for j in 0..20u64 {
            let f = l.merged.join(format!("directory-0/file-{j}"));
            match j % 3 {
                0 => {
                    fs::write(&f, random_bytes(j + 100, 64)).unwrap();
                    want.push(format!("C /directory-0/file-{j}"));
                }
                1 => {
                    fs::write(l.merged.join(format!("directory-0/file-6-{j}")), b"new").unwrap();
                    want.push(format!("A /directory-0/file-6-{j}"));
                }
                _ => {
                    fs::remove_file(&f).unwrap();
                    want.push(format!("D /directory-0/file-{j}"));
                }
            }
        }
    }
    want.sort();
    let mut got: Vec<String> = changes_upper(&l.upper, &[&l.lower], OverlayXattrs::Trusted)
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    got.sort();
    assert_eq!(got, want);
}

/// moby graphtest DriverTestDiffApply: rewrite 10 files, remove a file
/// and a directory; the native diff applied on the base reproduces it,
/// and apply reports the content size the diff carries.
#[test]
fn diff_apply_matches_moby_graphtest() {
    let Some(l) = layout() else { return };
    fs::create_dir_all(l.lower.join("directory-0")).unwrap();
    fs::create_dir_all(l.lower.join("var/lib")).unwrap();
    fs::write(l.lower.join("file-remove.txt"), b"remove me").unwrap();
    for i in 0..10 {
        fs::write(
            l.lower.join(format!("directory-0/file-{i}")),
            random_bytes(3 + i, 64),
        )
        .unwrap();
    }
    {
        let _m = l.mount("index=off");
        for i in 0..10 {
            fs::write(
                l.merged.join(format!("directory-0/file-{i}")),
                random_bytes(6 + i, 64),
            )
            .unwrap();
        }
        fs::remove_file(l.merged.join("file-remove.txt")).unwrap();
        fs::remove_dir_all(l.merged.join("var/lib")).unwrap();
    }
    let (tar, _) = diff_upper(&l.upper, Vec::new(), OverlayXattrs::Trusted).unwrap();
    copy_tree(&l.lower, &l.scratch);
    let report = apply(Cursor::new(&tar), &l.scratch, &ApplyOptions::default()).unwrap();
    assert_eq!(report.size, 640, "ten 64-byte files");
    for i in 0..10 {
        assert_eq!(
            fs::read(l.scratch.join(format!("directory-0/file-{i}"))).unwrap(),
            random_bytes(6 + i, 64)
        );
    }
    assert!(!l.scratch.join("file-remove.txt").exists());
    assert!(!l.scratch.join("var/lib").exists());
    assert!(l.scratch.join("var").is_dir());
}

/// A two-layer fixture in OCI tar form: layer 2 deletes, replaces a
/// directory (opaque, with its marker after a sibling), and replaces a
/// whited-out directory with a new one.
fn layers() -> (Vec<u8>, Vec<u8>) {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    fs::create_dir(&base).unwrap();
    build_fixture(&base);
    fs::create_dir_all(base.join("lib/hidden-dir")).unwrap();
    fs::write(base.join("lib/hidden"), b"hidden").unwrap();
    fs::write(base.join("lib/hidden-dir/x"), b"x").unwrap();
    fs::create_dir_all(base.join("replace/me")).unwrap();
    fs::write(base.join("replace/me/old"), b"old").unwrap();
    let (l1, _) = strata_archive::diff_trees(None, &base, Vec::new()).unwrap();

    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_path(path).unwrap();
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("lib/", tar::EntryType::Directory, b"", 0o755);
    add("lib/not-hidden", tar::EntryType::Regular, b"visible", 0o644);
    add("lib/.wh..wh..opq", tar::EntryType::Regular, b"", 0o644);
    add("etc/", tar::EntryType::Directory, b"", 0o755);
    add("etc/.wh.hosts.allow", tar::EntryType::Regular, b"", 0o644);
    add(".wh.fifo", tar::EntryType::Regular, b"", 0o644);
    add(".wh.replace", tar::EntryType::Regular, b"", 0o644);
    add("replace/", tar::EntryType::Directory, b"", 0o700);
    add("replace/new", tar::EntryType::Regular, b"new", 0o600);
    let l2 = b.into_inner().unwrap();
    (l1, l2)
}

/// Layers applied for the overlay target and mounted match the same
/// layers applied plainly (root only; SKIPPED otherwise).
fn overlay_apply_matches_plain(x: OverlayXattrs, mount_extra: &str) {
    if !require_root() {
        return;
    }
    let (l1, l2) = layers();
    let t = tempfile::tempdir().unwrap();
    let flat = t.path().join("flat");
    let (d1, d2, merged) = (
        t.path().join("l1"),
        t.path().join("l2"),
        t.path().join("merged"),
    );
    for d in [&flat, &d1, &d2, &merged] {
        fs::create_dir(d).unwrap();
    }
    let plain = ApplyOptions::default();
    apply(Cursor::new(&l1), &flat, &plain).unwrap();
    apply(Cursor::new(&l2), &flat, &plain).unwrap();
    assert!(!flat.join("lib/hidden").exists());
    assert!(!flat.join("replace/me").exists());
    assert!(
        flat.join("lib/not-hidden").exists(),
        "the layer's own entry survives its opaque marker"
    );

    let overlay = ApplyOptions {
        target: Target::Overlay(x),
        ..ApplyOptions::default()
    };
    apply(Cursor::new(&l1), &d1, &overlay).unwrap();
    apply(Cursor::new(&l2), &d2, &overlay).unwrap();
    let _m = overlay_mount(&[&d2, &d1], None, &merged, mount_extra);
    assert_same_trees(&flat, &merged, &ALL, "overlay of applied layers");
}

#[test]
fn overlay_target_mounts_like_plain_application() {
    overlay_apply_matches_plain(OverlayXattrs::Trusted, "");
}

#[test]
fn overlay_target_with_user_xattrs_mounts_with_userxattr() {
    overlay_apply_matches_plain(OverlayXattrs::User, "userxattr");
}

/// A directory removed and recreated in a container is opaque in the
/// upper dir; the changes list reports what it hid.
#[test]
fn opaque_directory_reports_hidden_lower_names() {
    let Some(l) = layout() else { return };
    fs::create_dir_all(l.lower.join("lib")).unwrap();
    fs::write(l.lower.join("lib/hidden"), b"h").unwrap();
    fs::write(l.lower.join("lib/kept-name"), b"k").unwrap();
    {
        let _m = l.mount("index=off");
        sh(
            &l.merged,
            "rm -rf lib && mkdir lib && echo again > lib/kept-name && echo n > lib/not-hidden",
        );
    }
    let got: Vec<String> = changes_upper(&l.upper, &[&l.lower], OverlayXattrs::Trusted)
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "C /lib",
            "D /lib/hidden",
            "C /lib/kept-name",
            "A /lib/not-hidden"
        ]
    );
    let md = fs::metadata(l.upper.join("lib")).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o755);
}

/// A ustar layer of `entries`: (name, type, content or link target, mode).
fn layer_of(entries: &[(&str, tar::EntryType, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data, mode) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_mtime(1_700_000_000);
        h.set_path(path).unwrap();
        let data: &[u8] = if matches!(kind, tar::EntryType::Link | tar::EntryType::Symlink) {
            h.set_link_name(std::str::from_utf8(data).unwrap()).unwrap();
            b""
        } else {
            data
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A layer hard-linking files that only its parents have applies as on
/// the merged view (containerd applies onto the mounted snapshot, GNU
/// tar on the merged tree): the target is copied up, its parents with
/// their attributes, then linked. A target a layer between removed is
/// refused, as it is on the merged view; so is any such link when the
/// lower layers are not given.
#[test]
fn hard_links_to_a_lower_layers_file_apply_as_on_the_merged_view() {
    if !require_root() {
        return;
    }
    use tar::EntryType::{Directory as D, Link as L, Regular as F, Symlink as S};
    let l1 = layer_of(&[
        ("usr/", D, b"", 0o755),
        ("usr/bin/", D, b"", 0o755),
        ("usr/bin/tool", F, b"#!/bin/sh\necho tool\n", 0o4755),
        ("lib/", D, b"", 0o755),
        ("lib/x/", D, b"", 0o711),
        ("lib/x/y/", D, b"", 0o750),
        ("lib/x/y/data", F, b"data", 0o600),
        ("lib/x/y/sym", S, b"data", 0o777),
        ("lib/x/removed", F, b"gone", 0o644),
    ]);
    let l2 = layer_of(&[
        ("lib/", D, b"", 0o755),
        ("lib/x/", D, b"", 0o711),
        ("lib/x/.wh.removed", F, b"", 0o644),
    ]);
    let l3 = layer_of(&[
        ("usr/", D, b"", 0o755),
        ("usr/bin/", D, b"", 0o755),
        ("usr/bin/tool2", L, b"usr/bin/tool", 0o755),
        ("lib/x/y/data.link", L, b"lib/x/y/data", 0o600),
        ("top.link", L, b"lib/x/y/sym", 0o777),
        // A whiteout whose directories the layer leaves out: those show
        // as they did, too.
        ("lib/x/y/.wh.sym", F, b"", 0o644),
    ]);
    let bad = layer_of(&[("again", L, b"lib/x/removed", 0o644)]);
    let removed_here = layer_of(&[
        ("usr/", D, b"", 0o755),
        ("usr/bin/", D, b"", 0o755),
        ("usr/bin/.wh.tool", F, b"", 0o644),
        ("tool", L, b"usr/bin/tool", 0o755),
    ]);
    for x in [OverlayXattrs::Trusted, OverlayXattrs::User] {
        let t = tempfile::tempdir().unwrap();
        let p = |n: &str| t.path().join(n);
        for d in ["flat", "l1", "l2", "l3", "bad", "merged"] {
            fs::create_dir(p(d)).unwrap();
        }
        let plain = ApplyOptions::default();
        for l in [&l1, &l2, &l3] {
            apply(Cursor::new(l), &p("flat"), &plain).unwrap();
        }
        let overlay = |lowers: &[&str]| ApplyOptions {
            target: Target::Overlay(x),
            lowers: lowers.iter().map(|l| p(l)).collect(),
            ..ApplyOptions::default()
        };
        apply(Cursor::new(&l1), &p("l1"), &overlay(&[])).unwrap();
        apply(Cursor::new(&l2), &p("l2"), &overlay(&["l1"])).unwrap();
        let e = apply(Cursor::new(&l3), &p("l3"), &overlay(&[])).unwrap_err();
        assert!(format!("{e:#}").contains("does not exist"), "{e:#}");
        let e = apply(Cursor::new(&bad), &p("bad"), &overlay(&["l2", "l1"])).unwrap_err();
        assert!(format!("{e:#}").contains("does not exist"), "{e:#}");
        fs::create_dir(p("bad2")).unwrap();
        let e = apply(
            Cursor::new(&removed_here),
            &p("bad2"),
            &overlay(&["l2", "l1"]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("does not exist"), "{e:#}");
        fs::remove_dir_all(p("l3")).unwrap();
        fs::create_dir(p("l3")).unwrap();
        apply(Cursor::new(&l3), &p("l3"), &overlay(&["l2", "l1"])).unwrap();
        // The lower layers are read, never changed.
        assert_eq!(fs::metadata(p("l1/usr/bin/tool")).unwrap().nlink(), 1);
        use std::os::unix::fs::MetadataExt;
        let tool = fs::metadata(p("l3/usr/bin/tool")).unwrap();
        assert_eq!(tool.nlink(), 2);
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(
            fs::read(p("l3/usr/bin/tool2")).unwrap(),
            b"#!/bin/sh\necho tool\n"
        );
        assert_eq!(
            fs::metadata(p("l3/lib/x")).unwrap().mode() & 0o7777,
            0o711,
            "a copied-up parent keeps its mode"
        );
        // The copied-up target is no entry of the layer: it saves back as
        // it came.
        fs::create_dir(p("l3r")).unwrap();
        let (record, _) = strata_archive::apply_recording(
            Cursor::new(&l3),
            &p("l3r"),
            &overlay(&["l2", "l1"]),
            Vec::new(),
        )
        .unwrap();
        let mut saved = Vec::new();
        strata_archive::reassemble(&record[..], &p("l3r"), &mut saved).unwrap();
        assert!(saved == l3, "the layer saves back byte for byte");
        let m = overlay_mount(&[&p("l3"), &p("l2"), &p("l1")], None, &p("merged"), "");
        assert_same(
            &manifest(&p("flat"), &ALL),
            &manifest(&m.0, &ALL),
            "overlay of a layer linking its parents' files",
        );
    }
}
