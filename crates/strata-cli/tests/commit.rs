//! `commit` over two rounds, through the built binary on real mounts: a
//! container of the committed image shows exactly what the container
//! showed, for every kind of change (content, mode only, owner only, a
//! directory replaced (opaque), deletions, hard links, symlinks, a FIFO),
//! compared with a listing made by find(1) and sha256sum(1), not by
//! strata. Each round also checks `diff`. And the progress that
//! import, commit and export show on a terminal, and only there.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{require_root, sh, Strata};

/// Every path under `root` with its type, mode, owner, size, link target,
/// content hash and hard-link group, sorted: what a container shows.
fn listing(root: &Path) -> String {
    sh(&format!(
        "cd '{}' && find . -mindepth 1 -printf '%p|%y|%m|%U:%G|%s|%l|%i\\n' | sort | \
         awk -F'|' -v OFS='|' '{{ if ($7 in seen) $7 = seen[$7]; else {{ seen[$7] = $1; $7 = $1 }}; print }}' | \
         while IFS='|' read -r p y m o s l g; do \
           h=-; [ \"$y\" = f ] && h=$(sha256sum < \"$p\" | cut -c1-16); \
           echo \"$p $y $m $o $s $l $g $h\"; \
         done",
        root.display()
    ))
}

fn base(s: &Strata) -> PathBuf {
    let src = s.path("base");
    for d in ["etc", "bin", "opt/app/sub", "var/data"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(src.join("etc/os-release"), "ID=strata-test\n").unwrap();
    fs::write(src.join("etc/delete-me"), "x").unwrap();
    fs::write(src.join("bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(src.join("opt/app/a"), "a").unwrap();
    fs::write(src.join("opt/app/sub/b"), "b").unwrap();
    fs::write(src.join("var/data/log"), "one\n").unwrap();
    src
}

/// Creates a container of `image` named `name` and mounts it.
fn container(s: &Strata, name: &str, image: &str) -> PathBuf {
    s.ok(&["create", "--name", name, image]);
    PathBuf::from(s.ok(&["mount", name]))
}

fn rounds(driver: &'static str) {
    let s = Strata::new(driver);
    s.import_tree(&base(&s), "base:1");

    // Round 1: every kind of change.
    let m = container(&s, "one", "base:1");
    fs::set_permissions(m.join("etc/os-release"), fs::Permissions::from_mode(0o600)).unwrap();
    chown(m.join("bin/tool"), Some(1000), Some(1000)).unwrap();
    fs::remove_dir_all(m.join("opt/app")).unwrap();
    fs::create_dir(m.join("opt/app")).unwrap();
    fs::write(m.join("opt/app/c"), "c").unwrap();
    fs::remove_file(m.join("etc/delete-me")).unwrap();
    fs::write(m.join("var/data/log"), "one\ntwo\n").unwrap();
    fs::create_dir(m.join("srv")).unwrap();
    fs::write(m.join("srv/x"), "shared").unwrap();
    fs::hard_link(m.join("srv/x"), m.join("srv/y")).unwrap();
    std::os::unix::fs::symlink("x", m.join("srv/link")).unwrap();
    sh(&format!("mkfifo '{}'", m.join("srv/fifo").display()));
    assert_diff_lists(
        &s,
        "one",
        &[
            "C /bin/tool",
            "D /etc/delete-me",
            "C /etc/os-release",
            "C /opt/app",
            "D /opt/app/a",
            "D /opt/app/sub",
            "A /opt/app/c",
            "A /srv/fifo",
            "A /srv/y",
            "C /var/data/log",
        ],
    );
    let want = listing(&m);
    // export is the same tree, as GNU tar unpacks it.
    let exported = s.path("one.tar");
    s.ok(&["export", "-o", exported.to_str().unwrap(), "one"]);
    let unpacked = s.host_dir("one-unpacked", &[]);
    sh(&format!(
        "tar --numeric-owner --same-owner -xpf '{}' -C '{}'",
        exported.display(),
        unpacked.display()
    ));
    assert_eq!(
        listing(&unpacked),
        want,
        "export differs from the container"
    );
    s.ok(&["umount", "one"]);
    s.ok(&["commit", "one", "base:2"]);
    let m2 = container(&s, "two", "base:2");
    assert_eq!(listing(&m2), want, "round 1: the committed image differs");
    assert!(!m2.join("opt/app/a").exists() && !m2.join("opt/app/sub").exists());

    // Round 2, on the committed image: changes over changes.
    fs::remove_file(m2.join("srv/x")).unwrap();
    fs::set_permissions(m2.join("opt/app/c"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::remove_dir_all(m2.join("var/data")).unwrap();
    fs::write(m2.join("etc/os-release"), "ID=round-two\n").unwrap();
    fs::create_dir_all(m2.join("opt/app/sub")).unwrap();
    fs::write(m2.join("opt/app/sub/b"), "b again").unwrap();
    assert_diff_lists(
        &s,
        "two",
        &[
            "D /srv/x",
            "C /opt/app/c",
            "D /var/data",
            "A /opt/app/sub/b",
        ],
    );
    let want = listing(&m2);
    s.ok(&["umount", "two"]);
    s.ok(&["commit", "two", "base:3"]);
    let m3 = container(&s, "three", "base:3");
    assert_eq!(listing(&m3), want, "round 2: the committed image differs");
    assert_eq!(fs::read_to_string(m3.join("srv/y")).unwrap(), "shared");
    assert_eq!(
        fs::read_to_string(m3.join("opt/app/sub/b")).unwrap(),
        "b again"
    );
    s.ok(&["umount", "three"]);
    let history = s.ok(&["history", "base:3"]);
    assert_eq!(history.lines().count(), 4, "{history}");
    for c in ["one", "two", "three"] {
        s.ok(&["rm", c]);
    }
    assert!(s.findings(&[]).is_empty());
}

/// Asserts `strata diff CONTAINER` lists each of `lines`.
fn assert_diff_lists(s: &Strata, container: &str, lines: &[&str]) {
    let diff = s.ok(&["diff", container]);
    for line in lines {
        assert!(diff.lines().any(|l| l == *line), "{line:?} not in:\n{diff}");
    }
}

#[test]
fn commit_keeps_every_kind_of_change_on_overlay2() {
    if require_root() {
        rounds("overlay2");
    }
}

#[test]
fn commit_keeps_every_kind_of_change_on_vfs() {
    if require_root() {
        rounds("vfs");
    }
}

#[test]
fn import_commit_and_export_show_progress_on_a_terminal_only() {
    if !require_root() {
        return;
    }
    if !fixtures::have_tools("progress_on_a_terminal", &["script"]) {
        return;
    }
    let s = Strata::new("overlay2");
    let src = base(&s);
    // Enough content that the bars draw.
    let block: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    for i in 0..8 {
        fs::write(src.join(format!("opt/blob{i}")), &block).unwrap();
    }
    let tar = s.path("big.tar");
    sh(&format!(
        "tar --numeric-owner -C '{}' -cf '{}' .",
        src.display(),
        tar.display()
    ));
    let tar = tar.to_str().unwrap();
    let shown = containers::on_terminal(&s, &["import", tar, "big:1"]);
    assert!(shown.contains("importing"), "{shown}");
    let m = container(&s, "c", "big:1");
    fs::write(m.join("opt/new"), &block).unwrap();
    s.ok(&["umount", "c"]);
    let shown = containers::on_terminal(&s, &["commit", "c", "big:2"]);
    assert!(shown.contains("committing c"), "{shown}");
    let exported = s.path("c.tar");
    let shown = containers::on_terminal(&s, &["export", "-o", exported.to_str().unwrap(), "c"]);
    assert!(shown.contains("exporting c"), "{shown}");
    // Off a terminal: nothing but the result.
    for args in [
        &["import", tar, "big:3"][..],
        &["commit", "c", "big:4"][..],
        &["export", "-o", exported.to_str().unwrap(), "c"][..],
    ] {
        let out = s.run(args);
        assert!(out.status.success());
        assert!(
            out.stderr.is_empty(),
            "strata {args:?} wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    s.ok(&["rm", "c"]);
}

/// A commit or an import whose tag no image may have (a name of 64
/// hexadecimal digits, as Docker refuses it) is refused before anything
/// is written: no image, no layer, nothing for `check` to find, on a
/// driver the store flushes and on one that flushes its own layers.
#[test]
fn a_commit_or_import_refused_for_its_tag_leaves_the_store_as_it_was() {
    if !require_root() {
        return;
    }
    let test = "a_commit_or_import_refused_for_its_tag_leaves_the_store_as_it_was";
    for driver in ["overlay2", "erofs"] {
        if driver == "erofs" && !common::require_kernel_fs(test, "erofs") {
            continue;
        }
        let s = Strata::new(driver);
        let tar = base(&s).with_extension("tar");
        s.import_tree(&base(&s), "base:1");
        let m = container(&s, "one", "base:1");
        fs::write(m.join("etc/motd"), "changed\n").unwrap();
        let before = (s.ok(&["images", "-q", "--no-trunc"]), s.ok(&["layers"]));
        let bad = format!("{}:1", "a".repeat(64));
        let err = s.err(&["commit", "one", &bad]);
        assert!(err.contains("64 hexadecimal digits"), "{driver}: {err}");
        let err = s.err(&["import", tar.to_str().unwrap(), &bad]);
        assert!(err.contains("64 hexadecimal digits"), "{driver}: {err}");
        let after = (s.ok(&["images", "-q", "--no-trunc"]), s.ok(&["layers"]));
        assert_eq!(before, after, "{driver}");
        s.ok(&["umount", "one"]);
        assert_eq!(s.findings(&[]), [], "{driver}");
    }
}
