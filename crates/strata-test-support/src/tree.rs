//! What tests compare about a tree (a layer's view, an extracted or
//! mounted layer): for each path, the type, mode, owner, content, link
//! target, device number, xattrs (overlay's private ones excluded),
//! hard-link group and modification time, like continuity's manifests
//! (which leave out times; [`assert_same`] checks them only when asked).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// File bytes; a symlink's target.
    pub content: Vec<u8>,
    pub rdev: u64,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first path (in walk order) of a multiply-linked inode.
    pub link_group: Option<Vec<u8>>,
    pub mtime: (i64, i64),
}

/// Relative path (the root itself is `""`) to node.
pub type Tree = BTreeMap<Vec<u8>, Node>;

/// The manifest of the tree at `root` (`lost+found` at the top left out).
pub fn manifest(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut inodes = BTreeMap::new();
    out.insert(Vec::new(), node(root, Vec::new(), &mut inodes));
    walk(root, b"", &mut out, &mut inodes);
    // A group of one is no group: a view may show a lower inode's link
    // count while the other names are whited out.
    let mut sizes: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for g in out.values().filter_map(|n| n.link_group.clone()) {
        *sizes.entry(g).or_default() += 1;
    }
    for n in out.values_mut() {
        if n.link_group.as_ref().is_some_and(|g| sizes[g] < 2) {
            n.link_group = None;
        }
    }
    // The root's times belong to whoever made the layer directory.
    if let Some(r) = out.get_mut(&Vec::new()) {
        r.mtime = (0, 0);
    }
    out
}

fn walk(dir: &Path, rel: &[u8], out: &mut Tree, inodes: &mut BTreeMap<(u64, u64), Vec<u8>>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("reading a directory entry").file_name())
        .collect();
    names.sort();
    for name in names {
        if rel.is_empty() && name == "lost+found" {
            continue;
        }
        let mut r = rel.to_vec();
        if !r.is_empty() {
            r.push(b'/');
        }
        r.extend_from_slice(name.as_bytes());
        let p = dir.join(&name);
        let n = node(&p, r.clone(), inodes);
        let is_dir = n.kind == "dir";
        out.insert(r.clone(), n);
        if is_dir {
            walk(&p, &r, out, inodes);
        }
    }
}

fn node(p: &Path, rel: Vec<u8>, inodes: &mut BTreeMap<(u64, u64), Vec<u8>>) -> Node {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let ft = md.file_type();
    let (kind, content) = if ft.is_dir() {
        ("dir", Vec::new())
    } else if ft.is_symlink() {
        let t = fs::read_link(p).unwrap_or_else(|e| panic!("readlink {}: {e}", p.display()));
        ("symlink", t.as_os_str().as_bytes().to_vec())
    } else if ft.is_file() {
        (
            "file",
            fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())),
        )
    } else if ft.is_fifo() {
        ("fifo", Vec::new())
    } else if ft.is_char_device() {
        ("char", Vec::new())
    } else if ft.is_block_device() {
        ("block", Vec::new())
    } else {
        ("socket", Vec::new())
    };
    let link_group = (!ft.is_dir() && md.nlink() > 1)
        .then(|| inodes.entry((md.dev(), md.ino())).or_insert(rel).clone());
    let device = ft.is_char_device() || ft.is_block_device();
    Node {
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        content,
        rdev: if device { md.rdev() } else { 0 },
        xattrs: xattrs(p),
        link_group,
        mtime: (md.mtime(), md.mtime_nsec()),
    }
}

/// The xattrs of `p` itself (not following a final symlink), sorted;
/// overlay's private ones and the security label left out.
pub fn xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    all_xattrs(p)
        .into_iter()
        .filter(|(k, _)| {
            !(k.starts_with(b"trusted.overlay.")
                || k.starts_with(b"user.overlay.")
                || k == b"security.selinux")
        })
        .collect()
}

/// Every xattr of `p` itself, overlay's private ones included.
pub fn all_xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (parent, name) = match (p.parent(), p.file_name()) {
        (Some(d), Some(n)) => (d, n.as_bytes()),
        _ => (p, b".".as_slice()),
    };
    let dir = File::open(parent).unwrap_or_else(|e| panic!("opening {}: {e}", parent.display()));
    strata_sys::xattr::all_at(dir.as_fd(), name)
        .unwrap_or_else(|e| panic!("reading xattrs of {}: {e}", p.display()))
}

/// Asserts two manifests are equal, listing the first differences:
/// everything but times first, then (with `times`) the mtimes.
pub fn assert_same(expected: &Tree, got: &Tree, what: &str, times: bool) {
    let strip = |t: &Tree| -> Tree {
        t.iter()
            .map(|(k, n)| {
                (
                    k.clone(),
                    Node {
                        mtime: (0, 0),
                        ..n.clone()
                    },
                )
            })
            .collect()
    };
    let report = differences(&strip(expected), &strip(got));
    assert!(
        report.is_empty(),
        "{what}: trees differ (expected vs got):\n{}",
        report.join("\n")
    );
    if times {
        let report = differences(expected, got);
        assert!(
            report.is_empty(),
            "{what}: modification times differ (expected vs got):\n{}",
            report.join("\n")
        );
    }
}

fn differences(a: &Tree, b: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("missing: /{}", show(k))),
            Some(w) if w != v => out.push(format!(
                "differs: /{}\n  expected {}\n  got      {}",
                show(k),
                short(v),
                short(w)
            )),
            _ => {}
        }
    }
    out.extend(
        b.keys()
            .filter(|k| !a.contains_key(*k))
            .map(|k| format!("unexpected: /{}", show(k))),
    );
    out.truncate(20);
    out
}

pub fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn short(n: &Node) -> String {
    let content = if n.kind == "symlink" {
        format!("-> {}", show(&n.content))
    } else {
        format!("{} bytes {:016x}", n.content.len(), fnv(&n.content))
    };
    let xattrs: Vec<String> = n
        .xattrs
        .iter()
        .map(|(k, v)| format!("{}={}", show(k), show(v)))
        .collect();
    format!(
        "{} {:04o} {}:{} {content} rdev={} xattrs=[{}] link={:?} mtime={}.{:09}",
        n.kind,
        n.mode,
        n.uid,
        n.gid,
        n.rdev,
        xattrs.join(","),
        n.link_group.as_deref().map(show),
        n.mtime.0,
        n.mtime.1
    )
}

/// A short fingerprint of file content for messages.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}
