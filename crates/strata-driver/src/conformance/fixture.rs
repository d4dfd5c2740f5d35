//! Writing into a mounted layer: small file-system helpers that fail the
//! test with the path, moby's seeded content, and the tree of every file
//! type that `createBase` makes.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use strata_sys::FileType;

/// Deterministic pseudo-random bytes (xorshift64) from a seed, as moby's
/// graphtest writes seeded content.
pub use strata_test_support::seeded_bytes as random_bytes;

/// Writes `data` to `root/rel` (creating parent directories) with
/// exactly `mode`, whatever the umask.
pub fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    fs::write(&p, data).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
    chmod(root, rel, mode);
}

pub fn append(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap_or_else(|e| panic!("opening {}: {e}", p.display()));
    f.write_all(data)
        .unwrap_or_else(|e| panic!("appending to {}: {e}", p.display()));
}

pub fn read(root: &Path, rel: &str) -> Vec<u8> {
    let p = root.join(rel);
    fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A directory with exactly `mode` (which may carry the sticky bit).
pub fn mkdir(root: &Path, rel: &str, mode: u32) {
    let p = root.join(rel);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&p)
        .unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
    chmod(root, rel, mode);
}

pub fn chmod(root: &Path, rel: &str, mode: u32) {
    let p = root.join(rel);
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

pub fn lchown(root: &Path, rel: &str, uid: u32, gid: u32) {
    let p = root.join(rel);
    std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("lchown {}: {e}", p.display()));
}

pub fn symlink(root: &Path, target: &str, rel: &str) {
    let p = root.join(rel);
    std::os::unix::fs::symlink(target, &p)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
}

pub fn hard_link(root: &Path, from: &str, to: &str) {
    fs::hard_link(root.join(from), root.join(to))
        .unwrap_or_else(|e| panic!("link {from} -> {to}: {e}"));
}

pub fn remove_file(root: &Path, rel: &str) {
    let p = root.join(rel);
    fs::remove_file(&p).unwrap_or_else(|e| panic!("removing {}: {e}", p.display()));
}

pub fn remove_all(root: &Path, rel: &str) {
    let p = root.join(rel);
    fs::remove_dir_all(&p).unwrap_or_else(|e| panic!("removing {}: {e}", p.display()));
}

/// A fifo or a device node with exactly `mode`.
pub fn mknod(root: &Path, rel: &str, kind: FileType, mode: u32, dev: u64) {
    let p = root.join(rel);
    let (dir, name) = (
        p.parent().expect("a parent"),
        p.file_name().expect("a name"),
    );
    let d = File::open(dir).unwrap_or_else(|e| panic!("opening {}: {e}", dir.display()));
    strata_sys::fs::mknod_at(d.as_fd(), name, kind, mode, dev)
        .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
    chmod(root, rel, mode);
}

/// Sets a `user.*` (or other) xattr on a file or directory.
pub fn setxattr(root: &Path, rel: &str, name: &str, value: &[u8]) {
    let p = root.join(rel);
    let f = File::open(&p).unwrap_or_else(|e| panic!("opening {}: {e}", p.display()));
    strata_sys::xattr::set(f.as_fd(), false, name.as_bytes(), value)
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
}

/// Asserts that `root/rel` does not exist (ENOENT, not another error).
pub fn assert_absent(root: &Path, rel: &str, what: &str) {
    match fs::symlink_metadata(root.join(rel)) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => panic!("{what}: /{rel}: expected ENOENT, got {e}"),
        Ok(md) => panic!(
            "{what}: /{rel} still exists (mode {:o}, {} bytes)",
            md.mode(),
            md.len()
        ),
    }
}

/// Names in a directory, sorted (`lost+found` left out).
pub fn list(root: &Path, rel: &str) -> Vec<String> {
    let p = root.join(rel);
    let mut v: Vec<String> = fs::read_dir(&p)
        .unwrap_or_else(|e| panic!("listing {}: {e}", p.display()))
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n != "lost+found")
        .collect();
    v.sort();
    v
}

pub const CHARDEV: (u32, u32) = (1, 3);

/// moby's `createBase`, widened to every file type: "a subdir" (0705 and
/// sticky, owned 1:2, xattr `user.dir`), "a file" (0222 and setuid,
/// "Some data", xattr `user.x`), a symlink, a hard-link pair, a fifo and
/// a character device.
pub fn every_file_type(root: &Path) {
    mkdir(root, "a subdir", 0o1705);
    lchown(root, "a subdir", 1, 2);
    setxattr(root, "a subdir", "user.dir", b"d");
    write(root, "a file", b"Some data", 0o4222);
    setxattr(root, "a file", "user.x", b"value of x");
    symlink(root, "a file", "a symlink");
    write(root, "hardlink-1", &random_bytes(1, 100), 0o644);
    hard_link(root, "hardlink-1", "hardlink-2");
    mknod(root, "a fifo", FileType::Fifo, 0o600, 0);
    let dev = strata_sys::fs::makedev(CHARDEV.0, CHARDEV.1).expect("a small device number");
    mknod(root, "a chardev", FileType::CharacterDevice, 0o666, dev);
}

/// Checks, one by one, what [`every_file_type`] made.
pub fn check_every_file_type(root: &Path, what: &str) {
    let md = |rel: &str| {
        fs::symlink_metadata(root.join(rel)).unwrap_or_else(|e| panic!("{what}: lstat /{rel}: {e}"))
    };
    assert_eq!(
        list(root, ""),
        [
            "a chardev",
            "a fifo",
            "a file",
            "a subdir",
            "a symlink",
            "hardlink-1",
            "hardlink-2"
        ],
        "{what}: entries of the root"
    );
    let is_dir: fn(&fs::Metadata) -> bool = fs::Metadata::is_dir;
    let modes = [
        (
            "a subdir",
            is_dir,
            "a directory",
            0o1705,
            "0705 and sticky",
            (1, 2),
        ),
        (
            "a file",
            fs::Metadata::is_file,
            "a regular file",
            0o4222,
            "0222 and setuid",
            (0, 0),
        ),
    ];
    for (rel, is_kind, kind, mode, mode_is, owner) in modes {
        let m = md(rel);
        assert!(is_kind(&m), "{what}: /{rel} is not {kind}");
        assert_eq!(
            m.mode() & 0o7777,
            mode,
            "{what}: mode of /{rel} ({mode_is})"
        );
        assert_eq!((m.uid(), m.gid()), owner, "{what}: owner of /{rel}");
    }
    assert_eq!(
        read(root, "a file"),
        b"Some data",
        "{what}: content of /a file"
    );
    let target =
        fs::read_link(root.join("a symlink")).unwrap_or_else(|e| panic!("{what}: readlink: {e}"));
    assert_eq!(target, Path::new("a file"), "{what}: target of /a symlink");
    let (h1, h2) = (md("hardlink-1"), md("hardlink-2"));
    assert_eq!(
        h1.ino(),
        h2.ino(),
        "{what}: hardlink-1 and hardlink-2 are not the same inode"
    );
    assert_eq!(h1.nlink(), 2, "{what}: link count of hardlink-1");
    assert_eq!(
        read(root, "hardlink-2"),
        random_bytes(1, 100),
        "{what}: content of hardlink-2"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        md("a fifo").file_type().is_fifo(),
        "{what}: /a fifo is not a fifo"
    );
    assert_eq!(
        md("a fifo").mode() & 0o7777,
        0o600,
        "{what}: mode of /a fifo"
    );
    let c = md("a chardev");
    assert!(
        c.file_type().is_char_device(),
        "{what}: /a chardev is not a character device"
    );
    assert_eq!(
        strata_sys::fs::major_minor(c.rdev()),
        CHARDEV,
        "{what}: device number of /a chardev"
    );
    let x = super::tree::xattrs(&root.join("a file"));
    assert_eq!(
        x,
        [(b"user.x".to_vec(), b"value of x".to_vec())],
        "{what}: xattrs of /a file"
    );
    let x = super::tree::xattrs(&root.join("a subdir"));
    assert_eq!(
        x,
        [(b"user.dir".to_vec(), b"d".to_vec())],
        "{what}: xattrs of /a subdir"
    );
}

/// moby's `addManyFiles`: `directory-<i/100*100>/file-<i>` with 64 bytes
/// from `seed + i`, mode 0755.
pub fn many_files(root: &Path, count: u64, seed: u64) {
    for i in 0..count {
        write(root, &many_name(i), &random_bytes(seed + i, 64), 0o755);
    }
}

pub fn many_name(i: u64) -> String {
    format!("directory-{}/file-{i}", i / 100 * 100)
}

pub fn check_many_files(root: &Path, count: u64, seed: u64, what: &str) {
    for i in 0..count {
        let rel = many_name(i);
        assert_eq!(
            read(root, &rel),
            random_bytes(seed + i, 64),
            "{what}: content of /{rel} (seed {seed})"
        );
    }
}

/// Every path under `home`, except the driver-wide entries themselves
/// (which may appear lazily; their content may not grow).
pub fn home_listing(home: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(home.join(&rel)).expect("listing the driver's home") {
            let e = e.expect("a directory entry");
            let r = rel.join(e.file_name());
            let top_level_reserved =
                rel.as_os_str().is_empty() && crate::RESERVED.iter().any(|n| e.file_name() == *n);
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(r.clone());
            }
            if !top_level_reserved && !r.starts_with("lock") {
                out.insert(r.display().to_string());
            }
        }
    }
    out
}
