//! Snapshots of a directory tree, read through directory handles so trees
//! deeper than PATH_MAX can be compared too.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, CWD};

/// What one entry holds, as `ls -l` plus contents and user xattrs would
/// show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// `d`, `f`, `l`, `p`, `c`, `b` or `s`.
    pub kind: char,
    /// Permission bits, with setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Link count of non-directories.
    pub nlink: Option<u64>,
    /// File contents (short ones verbatim, long ones summarised), symlink
    /// target, or device number.
    pub data: String,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// (ino, mtime, mtime_nsec, ctime, ctime_nsec): only in snapshots
    /// taken to prove a branch untouched.
    pub stamp: Option<(u64, i64, u64, i64, u64)>,
}

/// Relative path (`a/b`) to node.
pub type Tree = BTreeMap<String, Node>;

/// The tree under `root`, without times or inode numbers.
pub fn snapshot(root: &Path) -> Tree {
    take(root, false)
}

/// The tree under `root` with inode numbers, mtimes and ctimes, to show
/// nothing at all changed.
pub fn snapshot_with_times(root: &Path) -> Tree {
    take(root, true)
}

/// Human-readable differences between two snapshots; empty when equal.
pub fn diff(want: &Tree, got: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (k, w) in want {
        match got.get(k) {
            None => out.push(format!("  missing {k}: {w:?}")),
            Some(g) if g != w => {
                out.push(format!("  changed {k}:\n    want {w:?}\n    got  {g:?}"))
            }
            Some(_) => {}
        }
    }
    for (k, g) in got {
        if !want.contains_key(k) {
            out.push(format!("  extra   {k}: {g:?}"));
        }
    }
    out
}

fn take(root: &Path, stamps: bool) -> Tree {
    let fd = rustix::fs::openat(CWD, root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
        .unwrap_or_else(|e| panic!("open {}: {e}", root.display()));
    let mut out = Tree::new();
    walk(fd, "", stamps, &mut out);
    out
}

fn walk(dir: OwnedFd, prefix: &str, stamps: bool, out: &mut Tree) {
    let mut names = Vec::new();
    let mut d = Dir::read_from(&dir).expect("read dir");
    while let Some(e) = d.read() {
        let e = e.expect("dir entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    for name in names {
        let rel = format!("{prefix}{name}");
        let node = node(dir.as_fd(), &name, stamps);
        let is_dir = node.kind == 'd';
        out.insert(rel.clone(), node);
        if is_dir {
            let sub = rustix::fs::openat(
                &dir,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                Mode::empty(),
            )
            .unwrap_or_else(|e| panic!("open dir {rel}: {e}"));
            walk(sub, &format!("{rel}/"), stamps, out);
        }
    }
}

fn node(dir: BorrowedFd<'_>, name: &str, stamps: bool) -> Node {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("stat {name}: {e}"));
    let ft = FileType::from_raw_mode(st.st_mode as _);
    let kind = match ft {
        FileType::Directory => 'd',
        FileType::RegularFile => 'f',
        FileType::Symlink => 'l',
        FileType::Fifo => 'p',
        FileType::CharacterDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Socket => 's',
        _ => '?',
    };
    let data = match kind {
        'f' => contents(dir, name),
        'l' => rustix::fs::readlinkat(dir, name, Vec::new())
            .expect("readlink")
            .to_string_lossy()
            .into_owned(),
        'c' | 'b' => format!(
            "{}:{}",
            rustix::fs::major(st.st_rdev as _),
            rustix::fs::minor(st.st_rdev as _)
        ),
        _ => String::new(),
    };
    Node {
        kind,
        mode: st.st_mode as u32 & 0o7777,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        nlink: (kind != 'd').then_some(st.st_nlink as u64),
        data,
        xattrs: user_xattrs(dir, name),
        stamp: stamps.then_some((
            st.st_ino as u64,
            st.st_mtime as i64,
            st.st_mtime_nsec as u64,
            st.st_ctime as i64,
            st.st_ctime_nsec as u64,
        )),
    }
}

fn contents(dir: BorrowedFd<'_>, name: &str) -> String {
    let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty())
        .unwrap_or_else(|e| panic!("open {name}: {e}"));
    let mut buf = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut buf).expect("read");
    if buf.len() <= 64 {
        return format!("{:?}", String::from_utf8_lossy(&buf));
    }
    // FNV-1a: enough to tell contents apart in a test.
    let h = buf.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    });
    format!("{} bytes fnv {h:016x}", buf.len())
}

/// The `user.*` xattrs of `name` in `dir`, not following symlinks (through
/// `/proc/self/fd`, as there is no `*at` form).
fn user_xattrs(dir: BorrowedFd<'_>, name: &str) -> BTreeMap<String, Vec<u8>> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
    let mut out = BTreeMap::new();
    let Ok(names) = super::xattr_names(Path::new(&path)) else {
        return out;
    };
    for n in names.into_iter().filter(|n| n.starts_with("user.")) {
        if let Some(v) = super::xattr(Path::new(&path), &n) {
            out.insert(n, v);
        }
    }
    out
}
