//! A copy of Docker's data root as a strata store: images a real dockerd
//! built (`docker build`), a named volume, a stopped container. strata
//! lists, runs, commits and saves its images and `check` finds nothing
//! wrong, and the commands that only read (`images`, `ps`, `inspect`,
//! `layers`, `history`, `info`, `volume ls`, `check`) leave every file
//! and directory as it was: same mode, times, size and xattrs.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/dockerd.rs"]
mod dockerd;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{require_root, sh, Strata};
use dockerd::Dockerd;
use fixtures::{have_tools, on_path};
use serde_json::Value;

/// The commands that only read the store.
const READERS: &[&[&str]] = &[
    &["images"],
    &["images", "--format", "json"],
    &["ps", "-a"],
    &["layers"],
    &["info"],
    &["check"],
    &["check", "--format", "json"],
    &["volume", "ls"],
];

/// Every entry under `root`: mode, mtime and ctime (to the nanosecond:
/// a chmod or an xattr change moves the ctime), size; with getfattr,
/// every xattr too.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let size = if md.is_dir() { 0 } else { md.size() };
        out.insert(
            rel,
            format!(
                "{:o} m{}.{} c{}.{} {size}",
                md.mode(),
                md.mtime(),
                md.mtime_nsec(),
                md.ctime(),
                md.ctime_nsec()
            ),
        );
        if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    if on_path("getfattr") {
        let x = sh(&format!(
            "getfattr -R -h -d -m - -e hex --absolute-names '{}' 2>/dev/null || true",
            root.display()
        ));
        out.insert("(xattrs)".into(), x);
    } else {
        eprintln!("note: getfattr is not installed: xattrs are covered by ctimes only");
    }
    out
}

fn assert_unchanged(what: &str, before: &BTreeMap<String, String>, root: &Path) {
    let after = snapshot(root);
    let mut diffs = Vec::new();
    for k in before.keys().chain(after.keys()) {
        if before.get(k) != after.get(k) && !diffs.iter().any(|(d, _, _)| d == k) {
            diffs.push((k.clone(), before.get(k).cloned(), after.get(k).cloned()));
        }
    }
    assert!(
        diffs.is_empty(),
        "`strata {what}` changed the store: {diffs:#?}"
    );
}

/// `image inspect`'s ID of `image`.
fn image_id(s: &Strata, image: &str) -> String {
    s.json(&["image", "inspect", image])[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs every reader (and `inspect` of each of `images` and `others`,
/// `history` of each image) on `s`, asserting that none changes anything
/// under its root.
fn readers_change_nothing(s: &Strata, images: &[&str], others: &[&str]) {
    let before = snapshot(&s.root());
    for args in READERS {
        let out = s.run(args);
        assert!(
            out.status.success(),
            "strata {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_unchanged(&args.join(" "), &before, &s.root());
    }
    for name in images.iter().chain(others) {
        s.ok(&["inspect", name]);
        assert_unchanged(&format!("inspect {name}"), &before, &s.root());
    }
    for name in images {
        s.ok(&["image", "inspect", name]);
        s.ok(&["history", name]);
        assert_unchanged(&format!("history {name}"), &before, &s.root());
    }
}

/// A context directory for `docker build`: a busybox root file system
/// (as `Strata::busybox` makes it) and `dockerfile`.
fn context(dir: &Path, rootfs_tar: &Path, dockerfile: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::copy(rootfs_tar, dir.join("rootfs.tar")).unwrap();
    fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
}

#[test]
fn a_copy_of_dockers_data_root_is_a_store() {
    let test = "a_copy_of_dockers_data_root_is_a_store";
    if !require_root() || !containers::have_runtime(test) || !have_tools(test, &["busybox", "cp"]) {
        return;
    }
    let Some(mut docker) = Dockerd::start(test) else {
        return;
    };
    // The busybox tree and its tar, from a scratch store of its own.
    let scratch = Strata::new("vfs");
    scratch.busybox();
    let rootfs = scratch.path("busybox.tar");
    let work = tempfile::tempdir().unwrap();
    context(
        &work.path().join("base"),
        &rootfs,
        "FROM scratch\nADD rootfs.tar /\nRUN echo hello > /hello\nCMD [\"/bin/sh\"]\n",
    );
    let base_id = docker.build("base:1", &work.path().join("base"));
    fs::create_dir_all(work.path().join("app")).unwrap();
    fs::write(
        work.path().join("app/Dockerfile"),
        "FROM base:1\nRUN mkdir /app && echo built > /app/x && ln -s x /app/link\n\
         ENV GREETING=hi\nCMD [\"cat\", \"/app/x\"]\n",
    )
    .unwrap();
    let app_id = docker.build("app:1", &work.path().join("app"));
    docker.ok(&["volume", "create", "--label", "k=v", "vol1"]);
    docker.ok(&[
        "run",
        "--name",
        "writer",
        "--network",
        "none",
        "-v",
        "vol1:/v",
        "base:1",
        "sh",
        "-c",
        "echo from-docker > /v/f && echo rw > /rw",
    ]);
    docker.stop();

    let s = Strata::new("overlay2");
    sh(&format!(
        "cp -a '{}' '{}'",
        docker.data_root().display(),
        s.root().display()
    ));

    // Reading changes nothing, on the copy as Docker left it (Docker's
    // `containers/` is 0710, its layerdb 0755, there is no lock file).
    readers_change_nothing(&s, &["base:1", "app:1"], &["vol1"]);

    // Docker's images, by Docker's IDs.
    for (tag, id) in [("base:1", &base_id), ("app:1", &app_id)] {
        assert_eq!(image_id(&s, tag), *id, "{tag}");
    }

    // `check` knows Docker's container, volume and layer sizes: notes only.
    let (report, ok) = s.check_report("check on Docker's data root");
    let problems = common::not_notes(&report);
    assert!(ok && problems.is_empty(), "check: {problems:#?}");
    let notes = report.to_string();
    assert!(notes.contains("a container of Docker's"), "{notes}");
    assert!(notes.contains("volume vol1"), "{notes}");

    // Run: the image's content and Docker's volume's.
    let out = s.ok(&["run", "--rm", "app:1"]);
    assert_eq!(out, "built");
    let out = s.ok(&[
        "run", "--rm", "-v", "vol1:/v", "base:1", "cat", "/v/f", "/hello",
    ]);
    assert_eq!(out, "from-docker\nhello");

    // Commit a container of Docker's image, and save it with Docker's.
    s.ok(&[
        "run",
        "--name",
        "c",
        "app:1",
        "sh",
        "-c",
        "echo more > /app/y",
    ]);
    let committed = s.ok(&["commit", "c", "app:2"]);
    assert_eq!(
        s.ok(&["run", "--rm", "app:2", "cat", "/app/y", "/app/x"]),
        "more\nbuilt"
    );
    let archive = work.path().join("saved.tar");
    s.ok(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "base:1",
        "app:1",
        "app:2",
    ]);
    let back = Strata::new("vfs");
    back.ok(&["load", "-i", archive.to_str().unwrap()]);
    for (tag, id) in [
        ("base:1", &base_id),
        ("app:1", &app_id),
        ("app:2", &committed),
    ] {
        assert_eq!(image_id(&back, tag), *id, "{tag} after save and load");
    }
    back.assert_check_clean();

    // After strata's own changes, still only notes; and reading still
    // changes nothing.
    let (report, ok) = s.check_report("check after run, commit and save");
    let problems = common::not_notes(&report);
    assert!(ok && problems.is_empty(), "check: {problems:#?}");
    readers_change_nothing(&s, &["base:1", "app:2"], &["c", "vol1"]);
    let v: Value = s.json(&["volume", "inspect", "vol1"]);
    assert_eq!(v[0]["Driver"], "local", "{v}");
}

/// On a store of strata's own, with Docker's mode on `containers/` and
/// no lock file, the readers change nothing either (no dockerd needed);
/// nor on one without `volumes/` (made by the first volume).
#[test]
fn reading_a_store_changes_nothing() {
    let s = Strata::new("vfs");
    let tree = s.host_dir("tree", &[("f", "content\n")]);
    s.import_tree(&tree, "img:1");
    assert!(!s.root().join("volumes").exists());
    readers_change_nothing(&s, &["img:1"], &[]);

    let s = Strata::new("vfs");
    let tree = s.host_dir("tree", &[("f", "content\n")]);
    s.import_tree(&tree, "img:1");
    let c = s.ok(&["create", "--name", "c", "img:1"]);
    s.ok(&["volume", "create", "v"]);
    sh(&format!(
        "chmod 0710 '{root}/containers' && rm '{root}/lock'",
        root = s.root().display()
    ));
    readers_change_nothing(&s, &["img:1"], &[&c, "c", "v"]);
}
