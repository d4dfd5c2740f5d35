//! What the workspace's tests share (a dev-dependency only): requirement
//! checks, small fixtures and tree manifests ([`tree`]).
//!
//! A test that needs what the machine lacks (root, a tool, a file
//! system) says so: it prints a loud `SKIPPED` line and passes, except
//! under CI (`CI` set in the environment), where every requirement must
//! be met and a missing one fails the test.
#![forbid(unsafe_code)]

pub mod tree;

use std::fs;
use std::process::{Command, Output};

/// Whether the tests run under CI, where no requirement may be missing.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The effective uid of this process (from `/proc/self/status`).
pub fn euid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    euid() == 0
}

/// True when the requirement `what` is met (`ok`); otherwise prints a
/// loud SKIPPED line, and fails under CI.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("requirement not met in CI: {what}");
    }
    eprintln!("\n*** SKIPPED (requirement not met: {what}) ***\n");
    false
}

/// True when running as root; otherwise SKIPPED (see [`require`]).
pub fn require_root() -> bool {
    require("root", is_root())
}

/// A requirement of `test` not met here (`why`): a loud SKIPPED line, or
/// a failure under CI. Returns false, so a test can `return` on it.
pub fn skip(test: &str, why: &str) -> bool {
    if in_ci() {
        panic!("requirement not met in CI: {test}: {why}");
    }
    eprintln!("\n*** SKIPPED: {test}: {why} ***\n");
    false
}

/// Whether the kernel has the file system `fs` (`/proc/filesystems`).
pub fn kernel_has(fs_type: &str) -> bool {
    fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fs_type))
}

/// Whether `test` can run on a kernel file system `fs_type` here: true,
/// or a loud SKIPPED (a failure under CI) saying the kernel lacks it.
pub fn require_kernel_fs(test: &str, fs_type: &str) -> bool {
    kernel_has(fs_type) || skip(test, &format!("the kernel has no {fs_type}"))
}

/// Runs `cmd` to its end and returns its output; fails the test, naming
/// the command and showing its stderr, when it cannot start or exits
/// with an error.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A mount a test made, taken down (lazily) when dropped.
pub struct Unmount(pub std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The entries of the directory `dir`, sorted by name.
pub fn sorted_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

/// Appends `data` to the file at `path` (one `O_APPEND` open, closed
/// again).
pub fn append(path: &std::path::Path, data: &[u8]) {
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(data)
        .unwrap();
}

/// The names in the directory `dir`, sorted.
pub fn sorted_names(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// Moves `dir` away (to `dir.moved`) and puts a symlink to `outside` in
/// its place: a store directory swapped for a link by an outside probe.
pub fn swap_for_link(dir: &std::path::Path, outside: &std::path::Path) {
    fs::rename(dir, dir.with_extension("moved")).unwrap();
    std::os::unix::fs::symlink(outside, dir).unwrap();
}

/// `len` deterministic pseudo-random bytes from `seed`, spread over the
/// xorshift state (as moby's graphtest seeds its content): nearby seeds
/// give unrelated bytes.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    xorshift_bytes(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), len)
}

/// `len` deterministic pseudo-random bytes from the xorshift state
/// `state` (made odd): content that does not compress and that differs
/// with the state, as moby's graphtest seeds its content.
pub fn xorshift_bytes(state: u64, len: usize) -> Vec<u8> {
    let mut x = state | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// What a [`layer_tar`] entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory, mode 0755.
    Dir,
    /// A regular file with this content, mode 0644.
    File(Vec<u8>),
    /// A symlink to this target.
    Symlink(String),
}

/// One PAX extended-header record, `"<len> key=value\n"`, where len
/// counts the whole record (its own digits included).
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut out = format!("{len} ").into_bytes();
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0w$o}", v, w = field.len() - 1);
    assert!(s.len() < field.len(), "{v} does not fit in octal");
    field.fill(0);
    field[..s.len()].copy_from_slice(s.as_bytes());
}

/// GNU's base-256 number form, for values octal cannot hold.
fn base256(field: &mut [u8], v: u64) {
    field.fill(0);
    field[0] = 0x80;
    let n = field.len();
    field[n - 8..].copy_from_slice(&v.to_be_bytes());
}

fn number(field: &mut [u8], v: u64) {
    if v < 1 << 33 {
        octal(field, v)
    } else {
        base256(field, v)
    }
}

/// A hand-built old GNU sparse member (`S`) named `name`, of `real` bytes, storing
/// `chunks` (filled with `data` in order), the map spilling into
/// extension headers past four chunks; the stored size is `stored`, or
/// the sum of the chunks.
pub fn gnu_sparse_member(
    name: &str,
    real: u64,
    chunks: &[(u64, u64)],
    stored: Option<u64>,
    data: &[u8],
) -> Vec<u8> {
    let stored = stored.unwrap_or_else(|| chunks.iter().map(|c| c.1).sum());
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(stored);
    let (head, rest) = chunks.split_at(chunks.len().min(4));
    {
        let g = h.as_gnu_mut().unwrap();
        for (slot, &(offset, len)) in g.sparse.iter_mut().zip(head) {
            number(&mut slot.offset, offset);
            number(&mut slot.numbytes, len);
        }
        number(&mut g.realsize, real);
        g.isextended[0] = u8::from(!rest.is_empty());
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    let blocks: Vec<&[(u64, u64)]> = rest.chunks(21).collect();
    for (i, block) in blocks.iter().enumerate() {
        let mut ext = tar::GnuExtSparseHeader::new();
        for (slot, &(offset, len)) in ext.sparse.iter_mut().zip(block.iter()) {
            number(&mut slot.offset, offset);
            number(&mut slot.numbytes, len);
        }
        ext.isextended[0] = u8::from(i + 1 < blocks.len());
        out.extend_from_slice(ext.as_bytes());
    }
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A layer (or root file system) tar of `entries`, in order, owned by
/// root, with a fixed mtime: the same bytes every time.
pub fn layer_tar(entries: &[(&str, Entry)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, entry) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        let data: &[u8] = match entry {
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                &[]
            }
            Entry::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                data
            }
            Entry::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_link_name(target).expect("a short link target");
                &[]
            }
        };
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data)
            .expect("writing a tar to memory");
    }
    b.into_inner().expect("writing a tar to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_tar_holds_its_entries_in_order_the_same_every_time() {
        let entries = [
            ("srv/", Entry::Dir),
            ("srv/data", Entry::File(b"x".to_vec())),
            ("srv/link", Entry::Symlink("data".into())),
        ];
        let tar = layer_tar(&entries);
        assert_eq!(tar, layer_tar(&entries));
        let mut a = tar::Archive::new(tar.as_slice());
        let got: Vec<(String, tar::EntryType, u32)> = (a.entries().unwrap())
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let path = e.path().unwrap().display().to_string();
                (path, h.entry_type(), h.mode().unwrap())
            })
            .collect();
        use tar::EntryType as T;
        assert_eq!(
            got,
            [
                ("srv/".to_owned(), T::Directory, 0o755),
                ("srv/data".to_owned(), T::Regular, 0o644),
                ("srv/link".to_owned(), T::Symlink, 0o777),
            ]
        );
    }

    #[test]
    fn xorshift_bytes_differ_with_the_state() {
        assert_eq!(xorshift_bytes(7, 64), xorshift_bytes(7, 64));
        assert_ne!(xorshift_bytes(7, 64), xorshift_bytes(9, 64));
    }
}
