//! Naive diff between two trees: continuity's FSSuite stages (each
//! stage's diff applied to a copy of the previous stage reproduces it) and
//! containerd's TestDiffTar entry lists.

mod support;

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_archive::{apply, changes_trees, diff_trees, ApplyOptions};
use support::*;

fn cp(from: &Path, to: &Path) {
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to));
}

fn sh(dir: &Path, script: &str) {
    run(Command::new("sh").arg("-ec").arg(script).current_dir(dir));
}

/// Runs stages of shell changes; after each, diff(previous, current)
/// applied to a copy of previous must equal current.
fn stages(base: &str, steps: &[&str]) {
    if !require_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let prev = t.path().join("prev");
    let cur = t.path().join("cur");
    fs::create_dir(&prev).unwrap();
    fs::create_dir(&cur).unwrap();
    sh(&cur, base);
    // Stage 0: from nothing.
    check(None, &cur, t.path(), "base");
    for (i, step) in steps.iter().enumerate() {
        fs::remove_dir_all(&prev).unwrap();
        fs::create_dir(&prev).unwrap();
        cp(&cur, &prev);
        sh(&cur, step);
        check(Some(&prev), &cur, t.path(), &format!("stage {i}: {step}"));
    }
}

fn check(old: Option<&Path>, new: &Path, tmp: &Path, what: &str) {
    let (tar, _) = diff_trees(old, new, Vec::new()).unwrap();
    let out = tmp.join("out");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir(&out).unwrap();
    if let Some(old) = old {
        cp(old, &out);
    }
    apply(Cursor::new(&tar), &out, &ApplyOptions::default()).unwrap();
    assert_same_trees(new, &out, &NO_TIMES, what);
}

const BASE: &str = "mkdir -p etc usr/local/lib home/derek
    echo 127.0.0.1 > etc/hosts && ln etc/hosts etc/hosts.allow
    echo lib > usr/local/lib/libnothing.so && ln -s libnothing.so usr/local/lib/libnothing.so.2
    chmod 0700 home/derek";

#[test]
fn fssuite_basic() {
    stages(
        BASE,
        &[
            "echo changed-length > etc/hosts; echo f > etc/fstab; chmod 0600 etc/fstab
             echo b > etc/badfile; chmod 0666 etc/badfile; echo z > home/derek/.zshrc; chmod 0640 home/derek/.zshrc",
            "rm etc/badfile; mv home/derek home/notderek",
            "rm -rf usr; rm etc/hosts.allow",
            "rm -rf home; mkdir -p home/derek; echo b > home/derek/.bashrc; ln etc/hosts etc/hosts.allow",
        ],
    );
}

#[test]
fn fssuite_deletion_and_type_changes() {
    stages(
        "mkdir -p test/somedir lib; echo h > lib/hidden; echo x > test/somedir/x",
        &[
            "echo a > test/a; echo b > test/b; mkdir test/otherdir; touch test/otherdir/.empty
             rm -rf lib; mkdir lib; echo n > lib/not-hidden",
            "rm test/a test/b; rm -rf test/otherdir; echo n > lib/newfile",
            // file -> directory, directory -> file, symlink -> directory
            "rm lib/newfile; mkdir lib/newfile; echo in > lib/newfile/in
             rm -rf test/somedir; echo now-a-file > test/somedir
             ln -s /etc bin-link",
            "rm bin-link; mkdir bin-link; echo app > bin-link/myapp",
        ],
    );
}

#[test]
fn fssuite_update_and_permissions() {
    stages(
        "mkdir -p d1 d2 d3/sub; chmod 0700 d1; chmod 0751 d2; chmod 0777 d3
         echo 1 > f1; echo 2 > f2; echo 3 > f3; echo deep > d1/deep; echo deep > d3/sub/deep",
        &[
            "echo longer-content > f1; chmod 0664 f1; rm f3; echo again > f3; chmod 0766 f2; chmod 0777 d2",
            "echo more > d1/new; echo changed > d3/sub/deep; chown 1:1 d2",
            "chown -R 7:7 d1; setfattr -n user.k -v v f2",
        ],
    );
}

#[test]
fn fssuite_hardlinks() {
    stages(
        BASE,
        &[
            "echo modified >> etc/hosts; ln etc/hosts etc/hosts.deny",
            "ln etc/hosts etc/before-hosts",
            "rm etc/hosts; echo recreated > etc/hosts; ln etc/hosts etc/aa-before",
        ],
    );
}

fn names(old: &Path, new: &Path) -> Vec<String> {
    let (tar, _) = diff_trees(Some(old), new, Vec::new()).unwrap();
    let mut a = tar::Archive::new(Cursor::new(tar));
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

/// Trees `a` (made by `before`) and `b` (a copy of `a` changed by
/// `change`), when root; `None` (SKIPPED) otherwise.
fn pair(before: &str, change: &str) -> Option<(Scratch, PathBuf, PathBuf)> {
    let t = Scratch::as_root()?;
    let (a, b) = (t.dir("a"), t.dir("b"));
    sh(&a, before);
    cp(&a, &b);
    sh(&b, change);
    Some((t, a, b))
}

/// Asserts the diff of [`pair`]`(before, change)` names `want`, in order.
fn assert_diff_names(before: &str, change: &str, want: &[&str]) {
    let Some((_t, a, b)) = pair(before, change) else {
        return;
    };
    assert_eq!(names(&a, &b), want, "{before} / {change}");
}

#[test]
fn identical_trees_give_an_empty_diff() {
    let Some((_t, a, b)) = pair(BASE, "true") else {
        return;
    };
    assert!(names(&a, &b).is_empty());
    assert!(changes_trees(Some(&a), &b).unwrap().is_empty());
}

/// containerd TestDiffTar/ParentInclusion: new entries bring their parent
/// directories, parents first.
#[test]
fn parents_come_before_their_children() {
    assert_diff_names(
        "mkdir d2; chmod 0770 d2",
        "mkdir -p d1/d; chmod 0700 d1/d; echo ok > d2/f",
        &["d1/", "d1/d/", "d2/", "d2/f"],
    );
}

/// containerd TestDiffTar/WhiteoutParentRemoval: a removed directory is
/// one whiteout, with no whiteouts for its children; whiteouts come
/// before the new siblings.
#[test]
fn removed_directory_is_one_whiteout() {
    let Some((_t, a, b)) = pair(
        "mkdir -p d1 d2/sub; echo x > d2/sub/f",
        "rm -rf d1 d2; mkdir d3",
    ) else {
        return;
    };
    assert_eq!(names(&a, &b), [".wh.d1", ".wh.d2", "d3/"]);
    let changes: Vec<String> = changes_trees(Some(&a), &b)
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(changes, ["D /d1", "D /d2", "A /d3"]);
}

/// containerd TestDiffTar/IgnoreSockets.
#[test]
fn sockets_are_left_out() {
    let Some((_t, a, b)) = pair("true", "echo 2 > f2; echo 3 > f3") else {
        return;
    };
    let _sock = std::os::unix::net::UnixListener::bind(b.join("s0")).unwrap();
    assert_eq!(names(&a, &b), ["f2", "f3"]);
}

/// A file rewritten with the same size and the same whole-second mtime is
/// still found: content is compared when timestamps cannot tell.
#[test]
fn same_size_same_second_change_is_found_by_content() {
    assert_diff_names(
        "echo aaaa > f; touch -d @1600000000 f",
        "echo bbbb > f; touch -d @1600000000 f",
        &["f"],
    );
}
