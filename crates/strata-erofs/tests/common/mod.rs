//! What the EROFS writer's tests share: tars built entry by entry, the
//! image written and checked by `fsck.erofs`, a kernel mount removed on
//! drop, and a tree description to compare a mount with what GNU tar
//! extracts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use strata_erofs::{write_image, Options, Report};
use strata_test_support::{require, require_root, run, Unmount};

/// What a tar entry is.
#[derive(Debug, Clone)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(Vec<u8>),
    Link(Vec<u8>),
    Fifo,
    Char(u32, u32),
    Block(u32, u32),
}

#[derive(Debug, Clone)]
pub struct Ent {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// Nanoseconds, written as a PAX `mtime` record.
    pub nsec: Option<u32>,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Ent {
    pub fn new(path: impl AsRef<[u8]>, kind: Kind) -> Self {
        let mode = match kind {
            Kind::Dir => 0o755,
            Kind::Symlink(_) => 0o777,
            _ => 0o644,
        };
        Ent {
            path: path.as_ref().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            nsec: None,
            xattrs: Vec::new(),
        }
    }
    pub fn dir(p: impl AsRef<[u8]>) -> Self {
        Ent::new(p, Kind::Dir)
    }
    pub fn file(p: impl AsRef<[u8]>, data: impl Into<Vec<u8>>) -> Self {
        Ent::new(p, Kind::File(data.into()))
    }
    pub fn symlink(p: impl AsRef<[u8]>, t: impl AsRef<[u8]>) -> Self {
        Ent::new(p, Kind::Symlink(t.as_ref().to_vec()))
    }
    pub fn link(p: impl AsRef<[u8]>, t: impl AsRef<[u8]>) -> Self {
        Ent::new(p, Kind::Link(t.as_ref().to_vec()))
    }
    pub fn mode(mut self, m: u32) -> Self {
        self.mode = m;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn nsec(mut self, n: u32) -> Self {
        self.nsec = Some(n);
        self
    }
    pub fn xattr(mut self, k: &str, v: &[u8]) -> Self {
        self.xattrs.push((k.into(), v.to_vec()));
        self
    }
}

/// A GNU-format tar of `entries`, in order; long names and link targets
/// as GNU long-name members, nanosecond times and xattrs as PAX records.
pub fn build_tar(entries: &[Ent]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut pax = Vec::new();
        if let Some(n) = e.nsec {
            pax.extend(strata_test_support::pax_record(
                b"mtime",
                format!("{}.{n:09}", e.mtime).as_bytes(),
            ));
        }
        for (k, v) in &e.xattrs {
            pax.extend(strata_test_support::pax_record(
                format!("SCHILY.xattr.{k}").as_bytes(),
                v,
            ));
        }
        if !pax.is_empty() {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_path("PaxHeader").unwrap();
            h.set_size(pax.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, pax.as_slice()).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        let mut data: &[u8] = &[];
        let mut link: Option<&[u8]> = None;
        match &e.kind {
            Kind::Dir => h.set_entry_type(tar::EntryType::Directory),
            Kind::File(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                data = d;
            }
            Kind::Fifo => h.set_entry_type(tar::EntryType::Fifo),
            Kind::Char(ma, mi) | Kind::Block(ma, mi) => {
                h.set_entry_type(if matches!(e.kind, Kind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                link = Some(t);
            }
            Kind::Link(t) => {
                h.set_entry_type(tar::EntryType::Link);
                link = Some(t);
            }
        }
        // Names as raw bytes (tar-rs wants UTF-8 to truncate a long one),
        // GNU long-name members for those over 100 bytes.
        let mut long = |ty: u8, v: &[u8], field: &mut [u8; 100]| {
            let n = v.len().min(100);
            field[..n].copy_from_slice(&v[..n]);
            if v.len() >= 100 {
                let mut l = tar::Header::new_gnu();
                l.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
                l.set_entry_type(tar::EntryType::new(ty));
                l.set_mode(0o644);
                l.set_size(v.len() as u64 + 1);
                l.set_cksum();
                let mut d = v.to_vec();
                d.push(0);
                b.append(&l, d.as_slice()).unwrap();
            }
        };
        long(b'L', &e.path, &mut h.as_old_mut().name);
        if let Some(t) = link {
            long(b'K', t, &mut h.as_old_mut().linkname);
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Whether `cmd` runs.
pub fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--help")
        .output()
        .map(|_| true)
        .unwrap_or(false)
}

/// Root, `fsck.erofs` and `getfattr`, or a loud SKIPPED.
pub fn require_mount_tools() -> bool {
    require_root()
        && require("fsck.erofs (erofs-utils)", have("fsck.erofs"))
        && require("getfattr (attr)", have("getfattr"))
}

/// Writes `tar` as an image in `dir`, checks it with `fsck.erofs`.
pub fn image(dir: &Path, tar: &[u8], opts: &Options) -> (PathBuf, Report) {
    let img = dir.join("layer.erofs");
    let report = write_image(tar, &img, opts).expect("writing the image");
    let out = Command::new("fsck.erofs").arg(&img).output().unwrap();
    assert!(
        out.status.success(),
        "fsck.erofs failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (img, report)
}

/// A read-only kernel mount of an image file at `dir`, unmounted on
/// drop.
pub fn mount_image(img: &Path, dir: &Path) -> Unmount {
    fs::create_dir_all(dir).unwrap();
    run(Command::new("mount")
        .args(["-t", "erofs", "-o", "ro"])
        .arg(img)
        .arg(dir));
    Unmount(dir.to_path_buf())
}

/// GNU tar's extraction of `tar` into `dir`, owners, modes, times and
/// every xattr kept.
pub fn gnu_extract(tar: &[u8], dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let f = dir.with_extension("tar");
    fs::write(&f, tar).unwrap();
    run(Command::new("tar")
        .args([
            "-x",
            "--xattrs",
            "--xattrs-include=*",
            "--same-owner",
            "--same-permissions",
            "--numeric-owner",
            "-f",
        ])
        .arg(&f)
        .arg("-C")
        .arg(dir));
    fs::remove_file(f).unwrap();
}

/// Every xattr under `root` (not following symlinks), by relative path.
pub fn xattrs(root: &Path) -> BTreeMap<Vec<u8>, Vec<String>> {
    let out = Command::new("getfattr")
        .args(["-R", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names"])
        .arg(root)
        .output()
        .unwrap();
    let mut map: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    let prefix = root.as_os_str().as_bytes();
    let mut cur = None;
    for line in out.stdout.split(|b| *b == b'\n') {
        if let Some(p) = line.strip_prefix(b"# file: ") {
            // getfattr escapes odd bytes as octal; the names compared
            // are escaped the same way on both sides.
            let rel = p.strip_prefix(prefix).unwrap_or(p);
            cur = Some(rel.to_vec());
        } else if !line.is_empty() {
            if let Some(c) = &cur {
                map.entry(c.clone())
                    .or_default()
                    .push(String::from_utf8_lossy(line).into_owned());
            }
        }
    }
    for v in map.values_mut() {
        v.sort();
    }
    map
}

/// Paths that share one inode, sorted.
pub type LinkGroup = Vec<Vec<u8>>;

/// A description of every node under `root` (the root itself left out):
/// type, mode, owner, size, content digest, link target, device, mtime,
/// link count and xattrs; plus the sets of paths sharing an inode.
pub fn describe(root: &Path) -> (BTreeMap<Vec<u8>, String>, Vec<LinkGroup>) {
    let x = xattrs(root);
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let mut d = format!(
                "mode={:o} uid={} gid={} mtime={}.{:09}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.mtime(),
                md.mtime_nsec()
            );
            if ft.is_dir() {
                stack.push(p.clone());
                d += &format!(" nlink={}", md.nlink());
            } else {
                d += &format!(" nlink={}", md.nlink());
                if md.nlink() > 1 {
                    inodes.entry(md.ino()).or_default().push(rel.clone());
                }
            }
            if ft.is_file() {
                let mut h = Sha256::new();
                let mut f = fs::File::open(&p).unwrap();
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = f.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                d += &format!(" size={} sha256={:x}", md.len(), h.finalize());
            }
            if ft.is_symlink() {
                d += &format!(
                    " target={:?}",
                    fs::read_link(&p)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .escape_ascii()
                );
            }
            if ft.is_char_device() || ft.is_block_device() {
                d += &format!(" rdev={}", md.rdev());
            }
            let key = {
                let mut k = b"/".to_vec();
                k.extend_from_slice(&rel);
                k
            };
            if let Some(v) = x.get(&key) {
                d += &format!(" xattrs={v:?}");
            }
            out.insert(rel, d);
        }
    }
    let mut groups: Vec<LinkGroup> = inodes
        .into_values()
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    groups.sort();
    (out, groups)
}

/// Asserts the mount shows exactly what GNU tar extracts from `tar`.
pub fn assert_same_as_gnu_tar(tar: &[u8], tmp: &Path) {
    let (img, report) = image(tmp, tar, &Options::default());
    assert_eq!(report.tar_size, tar.len() as u64);
    let mnt = mount_image(&img, &tmp.join("mnt"));
    let ext = tmp.join("extracted");
    gnu_extract(tar, &ext);
    let (a, ha) = describe(&mnt.0);
    let (b, hb) = describe(&ext);
    let diff: Vec<_> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| (k.escape_ascii().to_string(), v, b.get(k)))
        .take(10)
        .collect();
    let missing: Vec<_> = b
        .keys()
        .filter(|k| !a.contains_key(*k))
        .map(|k| k.escape_ascii().to_string())
        .take(10)
        .collect();
    assert!(
        diff.is_empty() && missing.is_empty(),
        "image vs GNU tar: differing {diff:#?}, missing from the image {missing:?}"
    );
    assert_eq!(ha, hb, "hard link groups differ");
}
