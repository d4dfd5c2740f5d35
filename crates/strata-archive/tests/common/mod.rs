//! Helpers for the hostile-layer tests: a sandbox with an extraction root
//! and a victim beside it, a tar builder that writes names byte for byte
//! (the `tar` crate's `set_path` refuses `..`, which is the point here),
//! and tree snapshots.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, FileTimes};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strata_archive::{apply, ApplyOptions, ApplyReport, Result};
use tar::{EntryType, Header};

/// Modes the victim is created with; any change is a breakout.
pub const VICTIM_DIR_MODE: u32 = 0o755;
pub const HELLO_MODE: u32 = 0o640;

/// A tempdir holding `root/` (the extraction root) and `victim/hello`.
pub struct Sandbox {
    _tmp: tempfile::TempDir,
    pub base: PathBuf,
    pub root: PathBuf,
    pub victim: PathBuf,
    /// The content of `victim/hello`, unique to this sandbox.
    pub hello: Vec<u8>,
}

impl Sandbox {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("creating a tempdir");
        let base = tmp.path().to_path_buf();
        let root = base.join("root");
        let victim = base.join("victim");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&victim).unwrap();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let hello = format!("victim secret {} {nanos}\n", std::process::id()).into_bytes();
        let hello_path = victim.join("hello");
        fs::write(&hello_path, &hello).unwrap();
        fs::set_permissions(&hello_path, fs::Permissions::from_mode(HELLO_MODE)).unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(VICTIM_DIR_MODE)).unwrap();
        // An access time older than the modification time: with `relatime`
        // any read of hello moves it, so the snapshot shows reads too.
        File::open(&hello_path)
            .unwrap()
            .set_times(FileTimes::new().set_accessed(UNIX_EPOCH + Duration::from_secs(1000)))
            .unwrap();
        Sandbox {
            _tmp: tmp,
            base,
            root,
            victim,
            hello,
        }
    }

    pub fn apply(&self, tar: &[u8]) -> Result<ApplyReport> {
        self.apply_with(tar, &ApplyOptions::default())
    }

    pub fn apply_with(&self, tar: &[u8], opts: &ApplyOptions) -> Result<ApplyReport> {
        apply(tar, &self.root, opts)
    }

    /// `rel` inside the root (never resolved through symlinks by callers
    /// that use `lstat`/`read_link`).
    pub fn p(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel.as_ref()))
    }

    /// The victim directory's absolute path, as tar bytes.
    pub fn abs_victim(&self) -> Vec<u8> {
        self.victim.as_os_str().as_bytes().to_vec()
    }

    /// `abs` (an absolute host path) as the path it is confined to inside
    /// the root.
    pub fn confined(&self, abs: &[u8]) -> PathBuf {
        self.p(abs.strip_prefix(b"/").unwrap_or(abs))
    }

    pub fn outside(&self) -> Snapshot {
        let mut s = Snapshot::default();
        walk_outside(&self.base, &self.base, &self.root, &self.victim, &mut s);
        s
    }

    /// Everything outside the root as it was in `before`; victim/hello's
    /// bytes intact; no file in the root carries hello's content.
    pub fn assert_outside_unchanged(&self, before: &Snapshot, case: &str) {
        let after = self.outside();
        assert_eq!(
            before.0, after.0,
            "[{case}] something outside the root changed"
        );
        let hello = read_noatime(&self.victim.join("hello"));
        assert_eq!(hello, self.hello, "[{case}] victim/hello's bytes changed");
        let meta = fs::symlink_metadata(&self.root).unwrap();
        assert!(meta.is_dir(), "[{case}] the root is no longer a directory");
        for (path, node) in tree(&self.root) {
            assert!(
                !(node.kind == 'f' && node.content == self.hello),
                "[{case}] {:?} inside the root carries victim/hello's content",
                String::from_utf8_lossy(&path)
            );
        }
    }
}

/// Reads `path` without moving its access time (`O_NOATIME`: we own it).
fn read_noatime(path: &Path) -> Vec<u8> {
    use std::os::unix::fs::OpenOptionsExt;
    const O_NOATIME: i32 = 0o1000000;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NOATIME)
        .open(path)
        .unwrap();
    let mut out = Vec::new();
    f.read_to_end(&mut out).unwrap();
    out
}

/// What the tests compare about a path outside the root.
#[derive(Debug, PartialEq, Eq)]
pub struct Stat {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    ino: u64,
    nlink: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    atime: (i64, i64),
    /// Content of other files, the target of symlinks; victim/hello's is
    /// compared at the end only, so that reading it here shows in atime.
    content: Vec<u8>,
    xattrs: Vec<Vec<u8>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<PathBuf, Stat>);

fn kind(ft: fs::FileType) -> char {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        'l'
    } else if ft.is_dir() {
        'd'
    } else if ft.is_file() {
        'f'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else {
        's'
    }
}

/// xattr names of `path` itself (`llistxattr`), so that an overlay
/// marker written through a symlink would show.
fn xattr_names(path: &Path) -> Vec<Vec<u8>> {
    use std::os::fd::AsFd;
    let parent = File::open(path.parent().unwrap()).unwrap();
    let name = path.file_name().unwrap().as_bytes();
    strata_sys::xattr::list_at(parent.as_fd(), name).unwrap()
}

fn walk_outside(base: &Path, path: &Path, root: &Path, victim: &Path, out: &mut Snapshot) {
    let meta = fs::symlink_metadata(path).unwrap();
    let k = kind(meta.file_type());
    let hello = victim.join("hello");
    let content = match k {
        'f' if path != hello => fs::read(path).unwrap(),
        'l' => fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec(),
        _ => Vec::new(),
    };
    let rel = path.strip_prefix(base).unwrap().to_path_buf();
    if path == root {
        // Only what the root is: its content is the layer's.
        out.0.insert(
            rel,
            Stat {
                kind: k,
                mode: 0,
                uid: 0,
                gid: 0,
                ino: meta.ino(),
                nlink: 0,
                size: 0,
                mtime: (0, 0),
                ctime: (0, 0),
                atime: (0, 0),
                content: Vec::new(),
                xattrs: Vec::new(),
            },
        );
        return;
    }
    out.0.insert(
        rel,
        Stat {
            kind: k,
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            ino: meta.ino(),
            nlink: meta.nlink(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            // Directories' and read files' access times move when the
            // snapshot itself reads them.
            atime: if path == hello {
                (meta.atime(), meta.atime_nsec())
            } else {
                (0, 0)
            },
            content,
            xattrs: xattr_names(path),
        },
    );
    if k == 'd' {
        for p in strata_test_support::sorted_entries(path) {
            walk_outside(base, &p, root, victim, out);
        }
    }
}

/// A node of a tree as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub size: u64,
    /// File content or symlink target.
    pub content: Vec<u8>,
}

/// Every path under `dir` (relative, as bytes), without following symlinks.
pub fn tree(dir: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    walk_tree(dir, dir, &mut out);
    out
}

fn walk_tree(base: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, Node>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = fs::symlink_metadata(&p).unwrap();
        let k = kind(meta.file_type());
        let content = match k {
            'f' => fs::read(&p).unwrap(),
            'l' => fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec(),
            _ => Vec::new(),
        };
        let rel = p
            .strip_prefix(base)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        out.insert(
            rel,
            Node {
                kind: k,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                nlink: meta.nlink(),
                size: meta.size(),
                content,
            },
        );
        if k == 'd' {
            walk_tree(base, &p, out);
        }
    }
}

/// `lstat` of a path, `None` when missing.
pub fn lstat(p: &Path) -> Option<fs::Metadata> {
    match fs::symlink_metadata(p) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => panic!("lstat {p:?}: {e}"),
    }
}

pub fn ino(p: &Path) -> u64 {
    lstat(p).unwrap_or_else(|| panic!("{p:?} missing")).ino()
}

pub fn is_symlink(p: &Path) -> bool {
    lstat(p).is_some_and(|m| m.file_type().is_symlink())
}

pub fn is_dir(p: &Path) -> bool {
    lstat(p).is_some_and(|m| m.file_type().is_dir())
}

pub fn is_file(p: &Path) -> bool {
    lstat(p).is_some_and(|m| m.file_type().is_file())
}

pub fn readlink(p: &Path) -> Vec<u8> {
    fs::read_link(p)
        .unwrap_or_else(|e| panic!("readlink {p:?}: {e}"))
        .as_os_str()
        .as_bytes()
        .to_vec()
}

pub fn read(p: &Path) -> Vec<u8> {
    assert!(!is_symlink(p), "{p:?} is a symlink");
    fs::read(p).unwrap_or_else(|e| panic!("reading {p:?}: {e}"))
}

/// A tar stream built entry by entry, names and link names written into
/// the raw ustar fields so that anything, `..` included, can be said.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

pub const MTIME: u64 = 1_700_000_000;

fn put(field: &mut [u8], bytes: &[u8]) {
    assert!(
        bytes.len() <= field.len(),
        "{:?} is too long for a ustar field",
        String::from_utf8_lossy(bytes)
    );
    field.fill(0);
    field[..bytes.len()].copy_from_slice(bytes);
}

/// A ustar header with `name` and `link` stored byte for byte.
pub fn header(ty: EntryType, name: &[u8], link: &[u8], mode: u32, size: u64) -> Header {
    let mut h = Header::new_ustar();
    put(&mut h.as_old_mut().name, name);
    put(&mut h.as_old_mut().linkname, link);
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(size);
    h.set_cksum();
    h
}

impl Default for Tar {
    fn default() -> Self {
        Self::new()
    }
}

impl Tar {
    pub fn new() -> Self {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends `h` as it is, then `data` (padded).
    pub fn raw(mut self, h: &Header, data: &[u8]) -> Self {
        self.b.append(h, data).unwrap();
        self
    }

    pub fn file(self, name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Self {
        self.file_mode(name, data, 0o644)
    }

    pub fn file_mode(self, name: impl AsRef<[u8]>, data: impl AsRef<[u8]>, mode: u32) -> Self {
        let data = data.as_ref();
        let h = header(
            EntryType::Regular,
            name.as_ref(),
            b"",
            mode,
            data.len() as u64,
        );
        self.raw(&h, data)
    }

    pub fn dir(self, name: impl AsRef<[u8]>) -> Self {
        self.dir_mode(name, 0o755)
    }

    pub fn dir_mode(self, name: impl AsRef<[u8]>, mode: u32) -> Self {
        let h = header(EntryType::Directory, name.as_ref(), b"", mode, 0);
        self.raw(&h, b"")
    }

    pub fn symlink(self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        let h = header(EntryType::Symlink, name.as_ref(), target.as_ref(), 0o777, 0);
        self.raw(&h, b"")
    }

    pub fn hardlink(self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        let h = header(EntryType::Link, name.as_ref(), target.as_ref(), 0o644, 0);
        self.raw(&h, b"")
    }

    pub fn device(self, ty: EntryType, name: impl AsRef<[u8]>, major: u32, minor: u32) -> Self {
        let mut h = header(ty, name.as_ref(), b"", 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.raw(&h, b"")
    }

    /// A PAX extended header (`x`) for the next entry.
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    /// A PAX global header (`g`) named `name`.
    pub fn pax_global(self, name: impl AsRef<[u8]>, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (k, v) in records {
            data.extend_from_slice(&strata_test_support::pax_record(k.as_bytes(), v));
        }
        let h = header(
            EntryType::XGlobalHeader,
            name.as_ref(),
            b"",
            0o644,
            data.len() as u64,
        );
        self.raw(&h, &data)
    }

    /// The stream with its two end-of-archive blocks.
    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// A reader that hands out at most `n` bytes per `read()`, to catch code
/// that assumes full reads (tar-rs tests do the same).
pub struct Trickle<R> {
    pub inner: R,
    pub n: usize,
}

impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.n);
        self.inner.read(&mut buf[..n])
    }
}
