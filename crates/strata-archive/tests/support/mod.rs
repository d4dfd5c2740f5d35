//! Test support: tree manifests, fixtures with every file type, real
//! overlay mounts cleaned up on drop, and loud requirement checks.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The requirement checks every test crate shares: a loud SKIPPED line
/// when one is not met here, a failure under CI.
#[allow(unused_imports)] // Not every test file uses every check.
pub use strata_test_support::{is_root, require, require_root, run, Unmount};

/// A test's temp dir; subdirectories are made on asking.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }

    /// A scratch dir when running as root; `None` (SKIPPED) otherwise.
    pub fn as_root() -> Option<Scratch> {
        require_root().then(Scratch::new)
    }

    /// `<tmp>/name`, not made.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// `<tmp>/name`, made empty.
    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.path(name);
        fs::create_dir(&d).unwrap();
        d
    }

    /// `<tmp>/name` holding [`build_fixture`]'s tree.
    pub fn fixture(&self, name: &str) -> PathBuf {
        let d = self.dir(name);
        build_fixture(&d);
        d
    }
}

/// What the round-trip tests compare of a tree: per path, type, mode,
/// owner, content, link target, device number, xattrs (overlay-private
/// ones excluded), mtime and hard-link group.
pub use strata_test_support::tree::Tree as Manifest;

pub struct ManifestOptions {
    /// Compare directory mtimes too.
    pub dir_mtimes: bool,
    /// Compare file mtimes.
    pub mtimes: bool,
}

pub const ALL: ManifestOptions = ManifestOptions {
    dir_mtimes: true,
    mtimes: true,
};

pub const NO_TIMES: ManifestOptions = ManifestOptions {
    dir_mtimes: false,
    mtimes: false,
};

/// The tree below `root` (the root itself left out), mtimes in whole
/// seconds where `opts` compares them (a tar keeps no more) and zero
/// elsewhere.
pub fn manifest(root: &Path, opts: &ManifestOptions) -> Manifest {
    let mut m = strata_test_support::tree::manifest(root);
    m.remove(&Vec::new());
    for n in m.values_mut() {
        let compared = if n.kind == "dir" {
            opts.dir_mtimes
        } else {
            opts.mtimes
        };
        n.mtime = (if compared { n.mtime.0 } else { 0 }, 0);
    }
    m
}

pub fn setxattr(p: &Path, name: &str, value: &str) {
    run(Command::new("setfattr")
        .args(["-h", "-n", name, "-v", value])
        .arg(p));
}

/// Asserts the trees at `a` and `b` have the same manifest under `opts`.
pub fn assert_same_trees(a: &Path, b: &Path, opts: &ManifestOptions, what: &str) {
    assert_same(&manifest(a, opts), &manifest(b, opts), what);
}

/// Asserts two manifests are equal (times as their options kept them),
/// printing the first differences.
pub fn assert_same(a: &Manifest, b: &Manifest, what: &str) {
    strata_test_support::tree::assert_same(a, b, what, true);
}

pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Sets a path's mtime (and atime) to whole seconds, not following symlinks.
pub fn set_mtime(p: &Path, secs: i64) {
    run(Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(format!("@{secs}"))
        .arg(p));
}

/// A real overlay mount at `merged` (`lowers` topmost first), unmounted
/// on drop.
pub fn overlay_mount(
    lowers: &[&Path],
    upper: Option<(&Path, &Path)>,
    merged: &Path,
    extra: &str,
) -> Unmount {
    let lower = lowers
        .iter()
        .map(|p| p.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(":");
    let mut opts = format!("lowerdir={lower}");
    if let Some((u, w)) = upper {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    if !extra.is_empty() {
        opts.push(',');
        opts.push_str(extra);
    }
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(merged));
    Unmount(merged.to_owned())
}

/// Deterministic pseudo-random bytes (xorshift), as moby's graphtest uses
/// seeded content.
pub use strata_test_support::seeded_bytes as random_bytes;

/// GNU tar's `-c` of `src` with `args` into `out`, read back.
pub fn gnu_tar(src: &Path, out: &Path, args: &[&str]) -> Vec<u8> {
    run(Command::new("tar")
        .args(args)
        .args(["--numeric-owner", "-C"])
        .arg(src)
        .arg("-cf")
        .arg(out)
        .arg("."));
    fs::read(out).unwrap()
}

/// A tree with every file type and the metadata a layer must keep.
pub fn build_fixture(root: &Path) {
    use std::os::unix::fs::{symlink, DirBuilderExt};
    let w = |rel: &str, data: &[u8], mode: u32| {
        let p = root.join(rel);
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    fs::DirBuilder::new()
        .mode(0o755)
        .create(root.join("etc"))
        .unwrap();
    w("etc/hosts", b"127.0.0.1 localhost\n", 0o644);
    fs::hard_link(root.join("etc/hosts"), root.join("etc/hosts.allow")).unwrap();
    w("empty", b"", 0o600);
    w("a-file", b"Some data", 0o4222);
    fs::DirBuilder::new()
        .mode(0o705)
        .create(root.join("a subdir"))
        .unwrap();
    fs::set_permissions(root.join("a subdir"), fs::Permissions::from_mode(0o1705)).unwrap();
    std::os::unix::fs::lchown(root.join("a subdir"), Some(1), Some(2)).unwrap();
    w("a subdir/setgid", &random_bytes(3, 70_000), 0o2755);
    std::os::unix::fs::lchown(root.join("a subdir/setgid"), Some(1000), Some(1000)).unwrap();
    fs::create_dir_all(root.join("usr/local/lib")).unwrap();
    w(
        "usr/local/lib/libnothing.so",
        &random_bytes(4, 4096 * 3 + 7),
        0o755,
    );
    symlink("libnothing.so", root.join("usr/local/lib/libnothing.so.2")).unwrap();
    symlink("/etc/hosts", root.join("abs-link")).unwrap();
    symlink("../../nowhere/at/all", root.join("usr/dangling")).unwrap();
    std::os::unix::fs::lchown(root.join("usr/dangling"), Some(7), Some(8)).unwrap();
    run(Command::new("mkfifo").arg(root.join("fifo")));
    fs::create_dir(root.join("dev")).unwrap();
    run(Command::new("mknod")
        .arg(root.join("dev/null"))
        .args(["c", "1", "3"]));
    run(Command::new("mknod")
        .arg(root.join("dev/loop9"))
        .args(["b", "7", "9"]));
    fs::set_permissions(root.join("dev/null"), fs::Permissions::from_mode(0o666)).unwrap();
    // Long names: over 100 bytes for the ustar name, over 255 in all.
    let long_dir = root.join("d".repeat(120));
    fs::create_dir(&long_dir).unwrap();
    fs::write(long_dir.join("f".repeat(200)), b"long").unwrap();
    symlink("t".repeat(150), long_dir.join("long-target")).unwrap();
    fs::hard_link(
        long_dir.join("f".repeat(200)),
        root.join("hardlink-to-long"),
    )
    .unwrap();
    // Not UTF-8.
    fs::write(root.join(os(b"latin1-\xe9t\xe9")), b"bytes").unwrap();
    // Extended attributes, on a file, a directory and a file with a
    // binary value.
    setxattr(&root.join("etc/hosts"), "user.comment", "hello");
    setxattr(&root.join("a subdir"), "user.dir", "x");
    setxattr(&root.join("empty"), "trusted.binary", "0x00ff10");
    // A sparse file: a megabyte hole between two blocks.
    let sparse = root.join("sparse");
    let f = fs::File::create(&sparse).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"tail", 1 << 20).unwrap();
    // Whole-second times everywhere (tars carry seconds), directories last.
    let mut dirs = Vec::new();
    for (i, entry) in walk_paths(root).into_iter().enumerate() {
        if fs::symlink_metadata(&entry).unwrap().is_dir() {
            dirs.push(entry);
        } else {
            set_mtime(&entry, 1_600_000_000 + i as i64);
        }
    }
    for (i, d) in dirs.iter().rev().enumerate() {
        set_mtime(d, 1_500_000_000 + i as i64);
    }
}

pub fn walk_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}
