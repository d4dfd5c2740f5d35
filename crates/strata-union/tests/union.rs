//! Mounts real unions and checks overlayfs semantics through them, in both
//! whiteout formats. Needs root and /dev/fuse: without them each test says
//! `SKIPPED` loudly and passes, except under CI (env `CI` set), where a
//! missing requirement fails the test.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirEntryExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_test_support::{append, sorted_names};
use strata_union::{mount, Branch, Mounted, Options, WhiteoutFormat};
use tempfile::TempDir;

const FORMATS: [WhiteoutFormat; 2] = [WhiteoutFormat::Aufs, WhiteoutFormat::Overlay];

fn can_run(test: &str) -> bool {
    let missing = if strata_sys::fs::euid() != 0 {
        Some("not root")
    } else if !Path::new("/dev/fuse").exists() {
        Some("/dev/fuse is missing")
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) => strata_test_support::skip(test, &format!("{why} (needs root and /dev/fuse)")),
    }
}

/// A union of one writable branch over two lower ones.
struct Fixture {
    _tmp: TempDir,
    upper: PathBuf,
    lower: PathBuf,
    lower2: PathBuf,
    work: PathBuf,
    mnt: PathBuf,
    format: WhiteoutFormat,
    m: Option<Mounted>,
}

impl Fixture {
    fn new(format: WhiteoutFormat) -> Fixture {
        let tmp = TempDir::new().unwrap();
        let p = |n: &str| {
            let d = tmp.path().join(n);
            fs::create_dir(&d).unwrap();
            d
        };
        Fixture {
            upper: p("upper"),
            lower: p("lower"),
            lower2: p("lower2"),
            work: p("work"),
            mnt: p("mnt"),
            format,
            _tmp: tmp,
            m: None,
        }
    }

    fn options(&self, writable: bool) -> Options {
        let mut branches = Vec::new();
        if writable {
            branches.push(Branch {
                path: self.upper.clone(),
                writable: true,
            });
        }
        for l in [&self.lower, &self.lower2] {
            branches.push(Branch {
                path: l.clone(),
                writable: false,
            });
        }
        let mut specs: Vec<String> = branches
            .iter()
            .map(|b| {
                format!(
                    "{}={}",
                    b.path.display(),
                    if b.writable { "rw" } else { "ro" }
                )
            })
            .collect();
        match self.format {
            WhiteoutFormat::Aufs => Options::from_branches(&specs).unwrap(),
            WhiteoutFormat::Overlay => {
                let lower: Vec<String> = specs.split_off(usize::from(writable));
                let lower: Vec<&str> = lower.iter().map(|s| s.trim_end_matches("=ro")).collect();
                let mut o = format!("lowerdir={}", lower.join(":"));
                if writable {
                    o += &format!(
                        ",upperdir={},workdir={}",
                        self.upper.display(),
                        self.work.display()
                    );
                }
                Options::from_overlay_options(&o).unwrap()
            }
        }
    }

    fn mount(&mut self, writable: bool) {
        let mut o = self.options(writable);
        o.threads = 4;
        self.m = Some(mount(o, &self.mnt).unwrap());
    }

    fn unmount(&mut self) {
        if let Some(m) = self.m.take() {
            m.unmount().unwrap();
        }
    }

    fn u(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Whether the upper branch holds a whiteout for `rel`.
    fn upper_whiteout(&self, rel: &str) -> bool {
        let p = self.upper.join(rel);
        match self.format {
            WhiteoutFormat::Aufs => aufs_whiteout(&p).exists(),
            WhiteoutFormat::Overlay => fs::symlink_metadata(&p)
                .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0),
        }
    }

    fn upper_opaque(&self, rel: &str) -> bool {
        let p = self.upper.join(rel);
        match self.format {
            WhiteoutFormat::Aufs => p.join(".wh..wh..opq").exists(),
            WhiteoutFormat::Overlay => {
                let dir = strata_sys::fs::open_dir(&p).unwrap();
                strata_sys::xattr::get(
                    std::os::fd::AsFd::as_fd(&dir),
                    false,
                    b"trusted.overlay.opaque",
                )
                .unwrap()
                .as_deref()
                    == Some(b"y")
            }
        }
    }

    /// Writes a whiteout for `rel` into the (unmounted) upper branch.
    fn make_whiteout(&self, rel: &str) {
        let p = self.upper.join(rel);
        match self.format {
            WhiteoutFormat::Aufs => {
                fs::write(aufs_whiteout(&p), b"").unwrap();
            }
            WhiteoutFormat::Overlay => {
                let parent = strata_sys::fs::open_dir(p.parent().unwrap()).unwrap();
                strata_sys::fs::mknod_at(
                    std::os::fd::AsFd::as_fd(&parent),
                    p.file_name().unwrap(),
                    strata_sys::FileType::CharacterDevice,
                    0,
                    0,
                )
                .unwrap();
            }
        }
    }

    fn make_opaque(&self, rel: &str) {
        let p = self.upper.join(rel);
        match self.format {
            WhiteoutFormat::Aufs => fs::write(p.join(".wh..wh..opq"), b"").unwrap(),
            WhiteoutFormat::Overlay => {
                let dir = strata_sys::fs::open_dir(&p).unwrap();
                strata_sys::xattr::set(
                    std::os::fd::AsFd::as_fd(&dir),
                    false,
                    b"trusted.overlay.opaque",
                    b"y",
                )
                .unwrap();
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(m) = self.m.take() {
            let _ = m.unmount();
        }
    }
}

/// The aufs whiteout of `p`: `.wh.NAME` beside it.
fn aufs_whiteout(p: &Path) -> PathBuf {
    let name = p.file_name().unwrap().to_str().unwrap();
    p.with_file_name(format!(".wh.{name}"))
}

/// A fresh fixture of each whiteout format, with the format; none
/// (after saying SKIPPED) where unions cannot run.
fn each_format(test: &str) -> impl Iterator<Item = (WhiteoutFormat, Fixture)> {
    let run = can_run(test);
    FORMATS
        .into_iter()
        .filter(move |_| run)
        .map(|format| (format, Fixture::new(format)))
}

fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.expect_err("expected an error").raw_os_error().unwrap()
}

fn write(p: &Path, data: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, data).unwrap();
}

#[test]
fn read_only_union_merges_branches_and_refuses_writes() {
    for (format, mut f) in each_format("read_only_union_merges_branches_and_refuses_writes") {
        write(&f.lower.join("a"), "top");
        write(&f.lower2.join("a"), "bottom");
        write(&f.lower2.join("b"), "b");
        write(&f.lower.join("d/x"), "x");
        write(&f.lower2.join("d/y"), "y");
        fs::create_dir(f.lower2.join("f")).unwrap();
        write(&f.lower.join("f"), "file hides dir");
        std::os::unix::fs::symlink("a", f.lower.join("s")).unwrap();
        f.mount(false);
        assert_eq!(
            sorted_names(&f.mnt),
            ["a", "b", "d", "f", "s"],
            "{format:?}"
        );
        assert_eq!(fs::read_to_string(f.u("a")).unwrap(), "top");
        assert_eq!(sorted_names(&f.u("d")), ["x", "y"]);
        assert!(f.u("f").metadata().unwrap().is_file());
        assert_eq!(fs::read_link(f.u("s")).unwrap(), Path::new("a"));
        assert_eq!(fs::read_to_string(f.u("s")).unwrap(), "top");
        assert_eq!(errno(fs::write(f.u("a"), "x")), libc::EROFS);
        assert_eq!(errno(fs::write(f.u("new"), "x")), libc::EROFS);
        assert_eq!(errno(fs::remove_file(f.u("b"))), libc::EROFS);
        assert_eq!(errno(fs::create_dir(f.u("nd"))), libc::EROFS);
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = mountinfo
            .lines()
            .find(|l| l.contains(f.mnt.to_str().unwrap()))
            .unwrap();
        assert!(line.contains("fuse.strata-union"), "{line}");
        f.unmount();
    }
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_entries() {
    for (format, mut f) in each_format("whiteouts_and_opaque_dirs_hide_lower_entries") {
        write(&f.lower.join("gone"), "x");
        write(&f.lower.join("kept"), "x");
        write(&f.lower.join("od/lowerfile"), "x");
        write(&f.lower2.join("od/lower2file"), "x");
        write(&f.lower2.join("deep"), "hidden by a whiteout in lower");
        fs::create_dir(f.upper.join("od")).unwrap();
        write(&f.upper.join("od/upperfile"), "x");
        f.make_opaque("od");
        f.make_whiteout("gone");
        // A whiteout in a lower branch hides only what is below it.
        match format {
            WhiteoutFormat::Aufs => write(&f.lower.join(".wh.deep"), ""),
            WhiteoutFormat::Overlay => {
                let d = strata_sys::fs::open_dir(&f.lower).unwrap();
                strata_sys::fs::mknod_at(
                    std::os::fd::AsFd::as_fd(&d),
                    std::ffi::OsStr::new("deep"),
                    strata_sys::FileType::CharacterDevice,
                    0,
                    0,
                )
                .unwrap();
            }
        }
        f.mount(true);
        assert_eq!(sorted_names(&f.mnt), ["kept", "od"], "{format:?}");
        assert_eq!(errno(fs::metadata(f.u("gone"))), libc::ENOENT);
        assert_eq!(errno(fs::metadata(f.u("deep"))), libc::ENOENT);
        assert_eq!(sorted_names(&f.u("od")), ["upperfile"]);
        assert_eq!(errno(fs::metadata(f.u("od/lowerfile"))), libc::ENOENT);
        f.unmount();
    }
}

#[test]
fn copy_up_keeps_data_metadata_xattrs_and_inode() {
    for (format, mut f) in each_format("copy_up_keeps_data_metadata_xattrs_and_inode") {
        write(&f.lower.join("dir/sub/file"), "hello");
        fs::set_permissions(f.lower.join("dir/sub"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(
            f.lower.join("dir/sub/file"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::chown(f.lower.join("dir/sub/file"), Some(1234), Some(4321)).unwrap();
        {
            let d = strata_sys::fs::open_dir(&f.lower.join("dir/sub")).unwrap();
            let file = strata_sys::fs::open_file_at(std::os::fd::AsFd::as_fd(&d), "file".as_ref())
                .unwrap();
            strata_sys::xattr::set(std::os::fd::AsFd::as_fd(&file), false, b"user.k", b"v")
                .unwrap();
        }
        let before_mtime = fs::metadata(f.lower.join("dir/sub/file")).unwrap().mtime();
        f.mount(true);
        let ino = fs::metadata(f.u("dir/sub/file")).unwrap().ino();
        let dev = fs::metadata(f.u("dir/sub/file")).unwrap().dev();
        append(&f.u("dir/sub/file"), b" world");
        let m = fs::metadata(f.u("dir/sub/file")).unwrap();
        assert_eq!(m.ino(), ino, "{format:?}: inode stable across copy-up");
        assert_eq!(m.dev(), dev);
        assert_eq!(
            fs::read_to_string(f.u("dir/sub/file")).unwrap(),
            "hello world"
        );
        assert_eq!(
            fs::read_to_string(f.lower.join("dir/sub/file")).unwrap(),
            "hello"
        );
        let up = fs::metadata(f.upper.join("dir/sub/file")).unwrap();
        assert_eq!(
            (up.mode() & 0o7777, up.uid(), up.gid()),
            (0o640, 1234, 4321)
        );
        assert_eq!(
            fs::metadata(f.upper.join("dir/sub")).unwrap().mode() & 0o7777,
            0o750
        );
        let d = strata_sys::fs::open_dir(&f.upper.join("dir/sub")).unwrap();
        assert_eq!(
            strata_sys::xattr::get_at(std::os::fd::AsFd::as_fd(&d), b"file", b"user.k").unwrap(),
            Some(b"v".to_vec())
        );
        // Metadata-only changes copy up too.
        write(&f.lower.join("meta"), "m");
        let lino = fs::metadata(f.u("meta")).unwrap().ino();
        fs::set_permissions(f.u("meta"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            fs::metadata(f.upper.join("meta")).unwrap().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::metadata(f.u("meta")).unwrap().ino(), lino);
        write(&f.lower.join("t"), "0123456789");
        fs::OpenOptions::new()
            .write(true)
            .open(f.u("t"))
            .unwrap()
            .set_len(3)
            .unwrap();
        assert_eq!(fs::read_to_string(f.upper.join("t")).unwrap(), "012");
        write(&f.lower.join("own"), "o");
        std::os::unix::fs::chown(f.u("own"), Some(7), Some(8)).unwrap();
        assert_eq!(fs::metadata(f.upper.join("own")).unwrap().uid(), 7);
        write(&f.lower.join("times"), "t");
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        fs::File::options()
            .write(true)
            .open(f.u("times"))
            .unwrap()
            .set_modified(when)
            .unwrap();
        assert_eq!(
            fs::metadata(f.upper.join("times")).unwrap().mtime(),
            1_000_000
        );
        assert_ne!(before_mtime, 1_000_000);
        f.unmount();
        // Nothing is left staged; the aufs staging dir itself goes at
        // unmount, so the upper branch holds only the layer's content.
        match format {
            WhiteoutFormat::Aufs => assert!(!f.upper.join(".wh..wh.orph").exists()),
            WhiteoutFormat::Overlay => assert!(sorted_names(&f.work.join("work")).is_empty()),
        }
    }
}

#[test]
fn create_unlink_rmdir_write_whiteouts_and_opaque_dirs() {
    for (format, mut f) in each_format("create_unlink_rmdir_write_whiteouts_and_opaque_dirs") {
        write(&f.lower.join("file"), "lower");
        write(&f.lower.join("dir/inner"), "x");
        fs::create_dir(f.lower.join("empty")).unwrap();
        f.mount(true);
        write(&f.u("new"), "new");
        assert_eq!(fs::read_to_string(f.upper.join("new")).unwrap(), "new");
        {
            let file = fs::OpenOptions::new().write(true).open(f.u("new")).unwrap();
            strata_sys::fs::fallocate(std::os::fd::AsFd::as_fd(&file), 0, 0, 8192).unwrap();
            assert_eq!(file.metadata().unwrap().len(), 8192);
        }
        assert_eq!(fs::metadata(f.u("new")).unwrap().uid(), 0);
        fs::remove_file(f.u("new")).unwrap();
        assert!(
            !f.upper.join("new").exists() && !f.upper_whiteout("new"),
            "{format:?}"
        );
        fs::remove_file(f.u("file")).unwrap();
        assert!(f.upper_whiteout("file"), "{format:?}");
        assert_eq!(errno(fs::metadata(f.u("file"))), libc::ENOENT);
        assert!(!sorted_names(&f.mnt).contains(&"file".to_string()));
        // Create over a whiteout: the whiteout goes.
        write(&f.u("file"), "again");
        assert_eq!(fs::read_to_string(f.u("file")).unwrap(), "again");
        assert!(!f.upper_whiteout("file"));
        assert_eq!(errno(fs::remove_dir(f.u("dir"))), libc::ENOTEMPTY);
        assert_eq!(errno(fs::remove_dir(f.u("file"))), libc::ENOTDIR);
        assert_eq!(errno(fs::remove_file(f.u("dir"))), libc::EISDIR);
        fs::remove_file(f.u("dir/inner")).unwrap();
        fs::remove_dir(f.u("dir")).unwrap();
        assert!(f.upper_whiteout("dir"));
        // mkdir over a whiteout: opaque.
        fs::create_dir(f.u("dir")).unwrap();
        assert!(f.upper_opaque("dir"), "{format:?}");
        assert!(sorted_names(&f.u("dir")).is_empty());
        fs::remove_dir(f.u("empty")).unwrap();
        assert!(f.upper_whiteout("empty"));
        assert_eq!(errno(fs::create_dir(f.u("dir"))), libc::EEXIST);
        // fifo, symlink, device node, socket-free special files.
        std::os::unix::fs::symlink("target", f.u("link")).unwrap();
        assert_eq!(fs::read_link(f.u("link")).unwrap(), Path::new("target"));
        let mnt_fd = strata_sys::fs::open_dir(&f.mnt).unwrap();
        let mnt = std::os::fd::AsFd::as_fd(&mnt_fd);
        strata_sys::fs::mknod_at(mnt, "fifo".as_ref(), strata_sys::FileType::Fifo, 0o644, 0)
            .unwrap();
        assert!(fs::metadata(f.u("fifo")).unwrap().file_type().is_fifo());
        let dev = strata_sys::fs::makedev(1, 3).unwrap();
        strata_sys::fs::mknod_at(
            mnt,
            "null".as_ref(),
            strata_sys::FileType::CharacterDevice,
            0o666,
            dev,
        )
        .unwrap();
        let m = fs::metadata(f.u("null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), dev);
        fs::write(f.u("null"), "discarded").unwrap();
        assert!(fs::metadata(f.upper.join("null"))
            .unwrap()
            .file_type()
            .is_char_device());
        drop(mnt_fd);
        f.unmount();
    }
}

#[test]
fn rename_files_and_directories() {
    for (format, mut f) in each_format("rename_files_and_directories") {
        write(&f.lower.join("a"), "a");
        write(&f.lower.join("b"), "b");
        write(&f.lower.join("d/x"), "x");
        write(&f.lower2.join("d/sub/y"), "y");
        write(&f.lower.join("m1/one"), "1");
        write(&f.lower2.join("m2/two"), "2");
        f.mount(true);
        let ino = fs::metadata(f.u("a")).unwrap().ino();
        fs::rename(f.u("a"), f.u("a2")).unwrap();
        assert_eq!(fs::read_to_string(f.u("a2")).unwrap(), "a");
        assert_eq!(fs::metadata(f.u("a2")).unwrap().ino(), ino, "{format:?}");
        assert_eq!(errno(fs::metadata(f.u("a"))), libc::ENOENT);
        assert!(f.upper_whiteout("a"));
        // Over an existing (lower) file.
        fs::rename(f.u("a2"), f.u("b")).unwrap();
        assert_eq!(fs::read_to_string(f.u("b")).unwrap(), "a");
        // A merged directory: never EXDEV.
        fs::write(f.u("d/new"), "n").unwrap();
        fs::rename(f.u("d"), f.u("e")).unwrap();
        assert_eq!(sorted_names(&f.u("e")), ["new", "sub", "x"], "{format:?}");
        assert_eq!(fs::read_to_string(f.u("e/sub/y")).unwrap(), "y");
        assert_eq!(errno(fs::metadata(f.u("d"))), libc::ENOENT);
        assert!(f.upper_opaque("e"));
        assert!(f.upper_whiteout("d"));
        fs::write(f.u("e/x"), "changed").unwrap();
        assert_eq!(fs::read_to_string(f.lower.join("d/x")).unwrap(), "x");
        // An upper-only directory.
        fs::create_dir(f.u("up")).unwrap();
        fs::write(f.u("up/f"), "f").unwrap();
        fs::rename(f.u("up"), f.u("up2")).unwrap();
        assert_eq!(fs::read_to_string(f.u("up2/f")).unwrap(), "f");
        // Flags.
        let mnt_fd = strata_sys::fs::open_dir(&f.mnt).unwrap();
        let mnt = std::os::fd::AsFd::as_fd(&mnt_fd);
        let rename = |from: &str, to: &str, flags| {
            strata_sys::fs::rename_at(mnt, from.as_ref(), mnt, to.as_ref(), flags)
        };
        let r = rename("b", "up2", libc::RENAME_NOREPLACE);
        assert_eq!(errno(r), libc::EEXIST);
        rename("b", "b3", libc::RENAME_NOREPLACE).unwrap();
        // Exchange a copied-up file with an upper dir, then two merged dirs.
        rename("b3", "up2", libc::RENAME_EXCHANGE).unwrap();
        assert_eq!(fs::read_to_string(f.u("up2")).unwrap(), "a");
        assert_eq!(fs::read_to_string(f.u("b3/f")).unwrap(), "f");
        rename("b3", "up2", libc::RENAME_EXCHANGE).unwrap();
        rename("m1", "m2", libc::RENAME_EXCHANGE).unwrap();
        assert_eq!(sorted_names(&f.u("m1")), ["two"], "{format:?}");
        assert_eq!(sorted_names(&f.u("m2")), ["one"]);
        assert!(f.upper_opaque("m1") && f.upper_opaque("m2"));
        let r = rename("nope", "m2", libc::RENAME_EXCHANGE);
        assert_eq!(errno(r), libc::ENOENT);
        fs::create_dir(f.u("full")).unwrap();
        fs::write(f.u("full/x"), "").unwrap();
        assert_eq!(errno(fs::rename(f.u("e"), f.u("full"))), libc::ENOTEMPTY);
        assert_eq!(errno(fs::rename(f.u("b3"), f.u("full"))), libc::EISDIR);
        drop(mnt_fd);
        f.unmount();
    }
}

#[test]
fn links_inode_numbers_and_unlinked_open_files() {
    for (format, mut f) in each_format("links_inode_numbers_and_unlinked_open_files") {
        write(&f.lower.join("a"), "a");
        fs::hard_link(f.lower.join("a"), f.lower.join("a-link")).unwrap();
        write(&f.lower.join("victim"), "v");
        f.mount(true);
        let a = fs::metadata(f.u("a")).unwrap();
        assert_eq!(
            a.ino(),
            fs::metadata(f.u("a-link")).unwrap().ino(),
            "{format:?}"
        );
        assert_ne!(a.dev(), fs::metadata(&f.lower).unwrap().dev());
        fs::hard_link(f.u("a"), f.u("b")).unwrap();
        assert_eq!(fs::metadata(f.u("b")).unwrap().ino(), a.ino());
        assert_eq!(fs::metadata(f.u("b")).unwrap().nlink(), 2);
        // Renaming over one name of a linked file leaves the other alive.
        let held = fs::File::open(f.u("b")).unwrap();
        write(&f.u("c"), "c");
        fs::rename(f.u("c"), f.u("b")).unwrap();
        assert_eq!(held.metadata().unwrap().nlink(), 1, "{format:?}");
        assert_eq!(fs::metadata(f.u("a")).unwrap().nlink(), 1);
        assert_eq!(fs::read_to_string(f.u("b")).unwrap(), "c");
        drop(held);
        // Every entry has the union's st_dev and a stable st_ino.
        let dev = fs::metadata(&f.mnt).unwrap().dev();
        for e in fs::read_dir(&f.mnt).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            assert_eq!(m.dev(), dev);
            assert_eq!(m.ino(), e.ino(), "{:?}", e.path());
        }
        // fstat after unlink: nlink 0, for a lower file and an upper one.
        let mut open = fs::File::open(f.u("victim")).unwrap();
        fs::remove_file(f.u("victim")).unwrap();
        assert_eq!(open.metadata().unwrap().nlink(), 0);
        let mut s = String::new();
        open.read_to_string(&mut s).unwrap();
        assert_eq!(s, "v");
        let mut up = fs::File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(f.u("up"))
            .unwrap();
        up.write_all(b"data").unwrap();
        fs::remove_file(f.u("up")).unwrap();
        assert_eq!(up.metadata().unwrap().nlink(), 0);
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(7_000_000);
        up.set_len(2).unwrap();
        up.set_modified(when).unwrap();
        let m = up.metadata().unwrap();
        assert_eq!((m.mtime(), m.len(), m.nlink()), (7_000_000, 2, 0));
        up.seek(SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        up.read_to_string(&mut s).unwrap();
        assert_eq!(s, "da");
        drop((open, up));
        f.unmount();
    }
}

#[test]
fn long_names_and_long_paths() {
    for (_, mut f) in each_format("long_names_and_long_paths") {
        write(&f.lower.join("f"), "f");
        fs::create_dir(f.lower.join("d")).unwrap();
        f.mount(true);
        let long = "n".repeat(256);
        let too_long = |p: &Path| p.join(&long);
        assert_eq!(errno(fs::metadata(too_long(&f.mnt))), libc::ENAMETOOLONG);
        assert_eq!(errno(fs::write(too_long(&f.mnt), "")), libc::ENAMETOOLONG);
        assert_eq!(errno(fs::create_dir(too_long(&f.mnt))), libc::ENAMETOOLONG);
        assert_eq!(errno(fs::remove_file(too_long(&f.mnt))), libc::ENAMETOOLONG);
        assert_eq!(errno(fs::remove_dir(too_long(&f.mnt))), libc::ENAMETOOLONG);
        assert_eq!(
            errno(fs::rename(f.u("f"), too_long(&f.mnt))),
            libc::ENAMETOOLONG
        );
        assert_eq!(
            errno(fs::hard_link(f.u("f"), too_long(&f.mnt))),
            libc::ENAMETOOLONG
        );
        // 255 bytes is fine.
        let max = "m".repeat(255);
        fs::write(f.mnt.join(&max), "ok").unwrap();
        assert_eq!(fs::read_to_string(f.mnt.join(&max)).unwrap(), "ok");
        // A union path near PATH_MAX, longer than PATH_MAX on the branch.
        let comp = "c".repeat(200);
        let mut rel = PathBuf::new();
        let base_len = f.mnt.as_os_str().len();
        while base_len + rel.as_os_str().len() + 2 * 201 < 4000 {
            rel.push(&comp);
        }
        let dir = strata_sys::fs::open_dir(&f.mnt).unwrap();
        // Walk with *at calls so that the test itself never needs a long path.
        let mut cur = dir;
        for c in rel.components() {
            let name = c.as_os_str();
            strata_sys::fs::mkdir_at(std::os::fd::AsFd::as_fd(&cur), name, 0o755).unwrap();
            cur = strata_sys::fs::open_dir_at(std::os::fd::AsFd::as_fd(&cur), name).unwrap();
        }
        let mut file =
            strata_sys::fs::create_file_at(std::os::fd::AsFd::as_fd(&cur), "leaf".as_ref(), 0o644)
                .unwrap();
        file.write_all(b"deep").unwrap();
        let full = f.mnt.join(&rel).join("leaf");
        assert!(full.as_os_str().len() < 4096);
        assert_eq!(fs::read_to_string(&full).unwrap(), "deep");
        drop((cur, file));
        f.unmount();
    }
}

#[test]
fn concurrent_requests() {
    if !can_run("concurrent_requests") {
        return;
    }
    let mut f = Fixture::new(WhiteoutFormat::Overlay);
    for i in 0..16 {
        write(&f.lower.join(format!("d{i}/f")), "lower");
    }
    f.mount(true);
    std::thread::scope(|s| {
        for i in 0..8 {
            let mnt = f.mnt.clone();
            s.spawn(move || {
                for j in 0..16 {
                    let p = mnt.join(format!("d{j}/t{i}"));
                    fs::write(&p, format!("{i}.{j}")).unwrap();
                    fs::OpenOptions::new()
                        .append(true)
                        .open(mnt.join(format!("d{j}/f")))
                        .unwrap();
                    assert_eq!(fs::read_to_string(&p).unwrap(), format!("{i}.{j}"));
                    let _ = fs::read_dir(mnt.join(format!("d{j}"))).unwrap().count();
                }
            });
        }
    });
    for j in 0..16 {
        assert_eq!(sorted_names(&f.u(&format!("d{j}"))).len(), 9);
        assert_eq!(
            fs::read_to_string(f.u(&format!("d{j}/f"))).unwrap(),
            "lower"
        );
    }
    f.unmount();
}

fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let m = fs::symlink_metadata(e.path()).unwrap();
            let what = if m.is_dir() {
                stack.push(r.clone());
                format!("dir {:o}", m.mode() & 0o7777)
            } else if m.file_type().is_symlink() {
                format!("link {}", fs::read_link(e.path()).unwrap().display())
            } else {
                format!(
                    "file {:o} {}",
                    m.mode() & 0o7777,
                    fs::read_to_string(e.path()).unwrap()
                )
            };
            out.push((r.display().to_string(), what));
        }
    }
    out.sort();
    out
}

#[test]
fn overlay_format_upper_mounts_with_kernel_overlayfs() {
    if !can_run("overlay_format_upper_mounts_with_kernel_overlayfs") {
        return;
    }
    let mut f = Fixture::new(WhiteoutFormat::Overlay);
    write(&f.lower.join("keep"), "k");
    write(&f.lower.join("remove"), "r");
    write(&f.lower.join("change"), "c");
    write(&f.lower.join("d/x"), "x");
    write(&f.lower2.join("d/y"), "y");
    write(&f.lower.join("rm/z"), "z");
    write(&f.lower.join("mv/m"), "m");
    f.mount(true);
    fs::remove_file(f.u("remove")).unwrap();
    fs::write(f.u("change"), "changed").unwrap();
    fs::write(f.u("d/new"), "new").unwrap();
    fs::remove_file(f.u("d/y")).unwrap();
    fs::remove_file(f.u("rm/z")).unwrap();
    fs::remove_dir(f.u("rm")).unwrap();
    fs::create_dir(f.u("rm")).unwrap();
    fs::write(f.u("rm/fresh"), "f").unwrap();
    fs::rename(f.u("mv"), f.u("moved")).unwrap();
    std::os::unix::fs::symlink("keep", f.u("sl")).unwrap();
    let ours = tree(&f.mnt);
    f.unmount();
    let kmnt = f.mnt.clone();
    let opts = format!(
        "lowerdir={}:{},upperdir={},workdir={}",
        f.lower.display(),
        f.lower2.display(),
        f.upper.display(),
        f.work.display()
    );
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&kmnt)
        .status()
        .unwrap();
    if !st.success() {
        if std::env::var_os("CI").is_some() {
            panic!("kernel overlayfs cannot mount here");
        }
        eprintln!("SKIPPED: overlay_format_upper_mounts_with_kernel_overlayfs: kernel overlayfs unavailable");
        return;
    }
    let theirs = std::panic::catch_unwind(|| tree(&kmnt));
    let _ = Command::new("umount").arg(&kmnt).status();
    assert_eq!(ours, theirs.unwrap());
}

#[test]
fn lower_hard_links_follow_a_copy_up_within_the_mount() {
    for (format, mut f) in each_format("lower_hard_links_follow_a_copy_up_within_the_mount") {
        write(&f.lower.join("a"), "old");
        fs::hard_link(f.lower.join("a"), f.lower.join("a-link")).unwrap();
        f.mount(true);
        let ino = fs::metadata(f.u("a")).unwrap().ino();
        append(&f.u("a"), b"+new");
        assert_eq!(
            fs::read_to_string(f.u("a-link")).unwrap(),
            "old+new",
            "{format:?}"
        );
        // Renaming the other name links it to the copy in the upper branch.
        fs::rename(f.u("a-link"), f.u("b")).unwrap();
        assert_eq!(fs::metadata(f.u("b")).unwrap().ino(), ino);
        assert_eq!(fs::read_to_string(f.u("b")).unwrap(), "old+new");
        let (ua, ub) = (
            fs::metadata(f.upper.join("a")).unwrap(),
            fs::metadata(f.upper.join("b")).unwrap(),
        );
        assert_eq!((ua.ino(), ua.nlink()), (ub.ino(), 2));
        assert_eq!(fs::read_to_string(f.lower.join("a-link")).unwrap(), "old");
        f.unmount();
    }
}

#[test]
fn passthrough_and_served_opens_of_one_file_mix() {
    if !can_run("passthrough_and_served_opens_of_one_file_mix") {
        return;
    }
    let mut f = Fixture::new(WhiteoutFormat::Overlay);
    write(&f.lower.join("f"), "lower");
    f.mount(true);
    // A lower file open for reading while another open copies it up.
    let mut reader = fs::File::open(f.u("f")).unwrap();
    let mut writer = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(f.u("f"))
        .unwrap();
    writer.write_all(b"upper").unwrap();
    let mut s = String::new();
    reader.read_to_string(&mut s).unwrap();
    drop((reader, writer));
    assert_eq!(fs::read_to_string(f.u("f")).unwrap(), "upper");
    // Upper file: several opens at once, reading and appending.
    let mut r1 = fs::File::open(f.u("f")).unwrap();
    let mut r2 = fs::File::open(f.u("f")).unwrap();
    append(&f.u("f"), b"+more");
    let (mut s1, mut s2) = (String::new(), String::new());
    r1.read_to_string(&mut s1).unwrap();
    r2.read_to_string(&mut s2).unwrap();
    assert_eq!((s1.as_str(), s2.as_str()), ("upper+more", "upper+more"));
    assert_eq!(r1.metadata().unwrap().len(), 10);
    drop((r1, r2));
    // A file created (passed through from its create on) and opened
    // again while still open: written, truncated and read through either.
    let mut c = fs::File::create(f.u("c")).unwrap();
    c.write_all(b"created").unwrap();
    assert_eq!(fs::read_to_string(f.u("c")).unwrap(), "created");
    let mut again = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(f.u("c"))
        .unwrap();
    again.write_all(b"CREATED, again").unwrap();
    c.set_len(7).unwrap();
    let mut s = String::new();
    again.seek(SeekFrom::Start(0)).unwrap();
    again.read_to_string(&mut s).unwrap();
    assert_eq!(s, "CREATED");
    drop((c, again));
    assert_eq!(fs::read_to_string(f.u("c")).unwrap(), "CREATED");
    assert_eq!(fs::read_to_string(f.upper.join("c")).unwrap(), "CREATED");
    f.unmount();
    // A read-only union (the lower branches alone): every file can pass
    // through.
    f.mount(false);
    let a = fs::read_to_string(f.u("f")).unwrap();
    let mut r1 = fs::File::open(f.u("f")).unwrap();
    let mut s = String::new();
    r1.read_to_string(&mut s).unwrap();
    assert_eq!((a.as_str(), s.as_str()), ("lower", "lower"));
    drop(r1);
    f.unmount();
}

#[test]
fn userxattr_writes_user_overlay_markers() {
    if !can_run("userxattr_writes_user_overlay_markers") {
        return;
    }
    let mut f = Fixture::new(WhiteoutFormat::Overlay);
    write(&f.lower.join("d/x"), "x");
    let mut o = f.options(true);
    o.userxattr = true;
    f.m = Some(mount(o, &f.mnt).unwrap());
    fs::remove_file(f.u("d/x")).unwrap();
    fs::remove_dir(f.u("d")).unwrap();
    fs::create_dir(f.u("d")).unwrap();
    let dir = strata_sys::fs::open_dir(&f.upper.join("d")).unwrap();
    let get = |k: &[u8]| strata_sys::xattr::get(std::os::fd::AsFd::as_fd(&dir), false, k).unwrap();
    assert_eq!(get(b"user.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(get(b"trusted.overlay.opaque"), None);
    // The markers are the format's own: hidden from the union.
    let names = strata_sys::xattr::list(
        std::os::fd::AsFd::as_fd(&strata_sys::fs::open_dir(&f.u("d")).unwrap()),
        false,
    )
    .unwrap();
    assert!(
        names.iter().all(|n| !n.starts_with(b"user.overlay.")),
        "{names:?}"
    );
    drop(dir);
    f.unmount();
}

#[test]
fn serve_runs_until_unmounted() {
    if !can_run("serve_runs_until_unmounted") {
        return;
    }
    let f = Fixture::new(WhiteoutFormat::Aufs);
    write(&f.lower.join("hello"), "hi");
    let opts = f.options(false);
    let mnt = f.mnt.clone();
    let server = std::thread::spawn(move || strata_union::serve(opts, &mnt));
    let hello = f.u("hello");
    let mut tries = 0;
    while fs::read_to_string(&hello).ok().as_deref() != Some("hi") {
        tries += 1;
        assert!(tries < 500, "the union never appeared");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(Command::new("umount")
        .arg(&f.mnt)
        .status()
        .unwrap()
        .success());
    server.join().unwrap().unwrap();
    assert!(!hello.exists());
}

#[test]
fn concurrent_renames_lookups_and_listings() {
    for (format, mut f) in each_format("concurrent_renames_lookups_and_listings") {
        for i in 0..8 {
            write(&f.lower.join(format!("d{i}/sub/f")), &format!("{i}"));
        }
        f.mount(true);
        std::thread::scope(|s| {
            for i in 0..8 {
                let mnt = f.mnt.clone();
                // Each thread moves its own merged directory back and
                // forth while the others list and stat the root.
                s.spawn(move || {
                    for round in 0..10 {
                        let (from, to) = if round % 2 == 0 {
                            (format!("d{i}"), format!("e{i}"))
                        } else {
                            (format!("e{i}"), format!("d{i}"))
                        };
                        fs::rename(mnt.join(&from), mnt.join(&to)).unwrap();
                        assert_eq!(
                            fs::read_to_string(mnt.join(&to).join("sub/f")).unwrap(),
                            format!("{i}")
                        );
                        for e in fs::read_dir(&mnt).unwrap() {
                            // Entries may move between readdir and stat.
                            let _ = fs::symlink_metadata(e.unwrap().path());
                        }
                    }
                });
            }
        });
        let mut want: Vec<String> = (0..8).map(|i| format!("d{i}")).collect();
        want.sort();
        assert_eq!(sorted_names(&f.mnt), want, "{format:?}");
        f.unmount();
    }
}
