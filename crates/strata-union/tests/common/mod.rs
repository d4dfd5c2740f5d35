//! The harness of the union's behaviour tests: branches in a temporary
//! directory, a mount that is always undone (even when a test panics),
//! the lower tree most tests start from, and readers of what the branches
//! hold underneath.
//!
//! ```text
//! <tmp>/                 0755, so a non-root uid can reach the mount
//!   [<prefix>/]          optional, to make backing paths longer
//!     lower0/ lower1/..  topmost first
//!     upper/  work/
//!   mnt/                 the union
//!   kmnt/                the kernel's overlayfs, for cross-checks
//! ```

#![allow(dead_code, unused_imports)] // each test binary uses a different part

pub mod tree;

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};
use rustix::io::Errno;
use strata_union::{Mounted, Options};
use tempfile::TempDir;

pub use tree::snapshot;

/// The mtime every lower entry carries, so copy-up can be seen keeping it.
pub const LOWER_MTIME: i64 = 1_000_000_000;

/// The on-disk form of whiteouts and opaque directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    /// `.wh.NAME` files and `.wh..wh..opq` markers (`from_branches`).
    Aufs,
    /// char 0/0 whiteouts and `trusted.overlay.opaque` (`from_overlay_options`).
    Overlay,
}

/// True when the test can run; otherwise prints a loud SKIPPED line, and
/// fails under CI (where every requirement must be met).
pub fn able(test: &str) -> bool {
    let why = if !rustix::process::geteuid().is_root() {
        "not root"
    } else if !Path::new("/dev/fuse").exists() {
        "/dev/fuse missing"
    } else {
        return true;
    };
    skip(test, why)
}

/// Prints the loud SKIPPED line (or panics under CI); returns false.
#[allow(unused_imports)] // Not every test file uses every check.
pub use strata_test_support::skip;

/// How the branches of a union are laid out.
#[derive(Clone, Debug)]
pub struct Layout {
    pub fmt: Fmt,
    /// Number of read-only branches.
    pub lowers: usize,
    /// Whether there is a writable upper branch (and a workdir).
    pub upper: bool,
    /// A directory the branches live under, to make their paths long.
    pub prefix: Option<String>,
}

impl Layout {
    /// One lower, one upper.
    pub fn two(fmt: Fmt) -> Layout {
        Layout {
            fmt,
            lowers: 1,
            upper: true,
            prefix: None,
        }
    }
}

/// A mounted union over branches in a temporary directory. Dropping it
/// unmounts, then (unless the test is already failing) checks that the
/// lower branches are exactly as they were before the mount.
pub struct Union {
    pub fmt: Fmt,
    /// Read-only branches, topmost first.
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: PathBuf,
    pub mnt: PathBuf,
    pub kmnt: PathBuf,
    /// overlay format only: `userxattr` (opaque marks in `user.overlay.*`).
    pub userxattr: bool,
    /// FUSE passthrough (on unless a test turns it off).
    pub passthrough: bool,
    lowers_before: Vec<tree::Tree>,
    mounted: Option<Mounted>,
    // Last, so it is removed after the unmount.
    tmp: TempDir,
}

impl Union {
    /// The standard lower tree under one upper; None when the test cannot
    /// run here.
    pub fn standard(test: &str, fmt: Fmt) -> Option<Union> {
        Union::build(test, Layout::two(fmt), |lowers| standard_tree(&lowers[0]))
    }

    /// The standard lower tree under one upper, mounted after `set` has
    /// changed the harness's settings (passthrough, userxattr).
    pub fn standard_with(test: &str, fmt: Fmt, set: impl FnOnce(&mut Union)) -> Option<Union> {
        let mut u = Union::unmounted(test, Layout::two(fmt), |l, _| standard_tree(&l[0]))?;
        set(&mut u);
        u.mount();
        Some(u)
    }

    /// Branches laid out as `layout`, filled by `fill` (lowers topmost
    /// first), then mounted.
    pub fn build(test: &str, layout: Layout, fill: impl FnOnce(&[PathBuf])) -> Option<Union> {
        let mut u = Union::unmounted(test, layout, |lowers, _| fill(lowers))?;
        u.mount();
        Some(u)
    }

    /// Like `build`, but `fill` also gets the upper branch, and nothing is
    /// mounted yet.
    pub fn unmounted(
        test: &str,
        layout: Layout,
        fill: impl FnOnce(&[PathBuf], Option<&Path>),
    ) -> Option<Union> {
        if !able(test) {
            return None;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod tmp");
        let base = match &layout.prefix {
            Some(p) => tmp.path().join(p),
            None => tmp.path().to_path_buf(),
        };
        let lowers: Vec<PathBuf> = (0..layout.lowers)
            .map(|i| base.join(format!("lower{i}")))
            .collect();
        let upper = layout.upper.then(|| base.join("upper"));
        let work = base.join("work");
        let mnt = tmp.path().join("mnt");
        let kmnt = tmp.path().join("kmnt");
        for d in lowers
            .iter()
            .chain(upper.iter())
            .chain([&work, &mnt, &kmnt])
        {
            fs::create_dir_all(d).expect("branch dir");
        }
        fill(&lowers, upper.as_deref());
        let lowers_before = lowers
            .iter()
            .map(|l| tree::snapshot_with_times(l))
            .collect();
        Some(Union {
            fmt: layout.fmt,
            lowers,
            upper,
            work,
            mnt,
            kmnt,
            userxattr: false,
            passthrough: true,
            lowers_before,
            mounted: None,
            tmp,
        })
    }

    /// The options this union mounts with: the constructor of its format,
    /// and allow_other so a non-root uid can use it.
    pub fn options(&self) -> Options {
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect();
        let mut opts = match self.fmt {
            Fmt::Aufs => {
                let mut specs = Vec::new();
                if let Some(u) = &self.upper {
                    specs.push(format!("{}=rw", u.display()));
                }
                specs.extend(lowers.iter().map(|l| format!("{l}=ro")));
                Options::from_branches(&specs)
            }
            Fmt::Overlay => {
                let mut s = format!("lowerdir={}", lowers.join(":"));
                if let Some(u) = &self.upper {
                    s += &format!(",upperdir={},workdir={}", u.display(), self.work.display());
                }
                Options::from_overlay_options(&s)
            }
        }
        .expect("union options");
        opts.allow_other = true;
        opts.userxattr = self.userxattr;
        opts.passthrough &= self.passthrough;
        opts
    }

    pub fn mount(&mut self) {
        assert!(self.mounted.is_none(), "already mounted");
        let m = strata_union::mount(self.options(), &self.mnt).expect("mount the union");
        self.mounted = Some(m);
    }

    pub fn unmount(&mut self) {
        let m = self.mounted.take().expect("not mounted");
        m.unmount().expect("unmount the union");
        assert!(!is_mounted(&self.mnt), "still mounted after unmount()");
    }

    pub fn remount(&mut self) {
        self.unmount();
        self.mount();
    }

    /// A path in the union.
    pub fn p(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            return self.mnt.clone();
        }
        self.mnt.join(rel)
    }

    /// A path in the upper branch.
    pub fn up(&self, rel: &str) -> PathBuf {
        self.upper.as_ref().expect("union has no upper").join(rel)
    }

    /// A path in the topmost lower branch.
    pub fn low(&self, rel: &str) -> PathBuf {
        self.lowers[0].join(rel)
    }

    /// The temporary root holding everything.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// The names in the upper branch's directory `rel`, without aufs's own
    /// bookkeeping in the branch root (`.wh..wh.orph`, `.wh..wh.plnk`, ...).
    pub fn upper_list(&self, rel: &str) -> Vec<String> {
        let mut names = list(&self.up(rel));
        if self.fmt == Fmt::Aufs && rel.is_empty() {
            names.retain(|n| !n.starts_with(".wh..wh."));
        }
        names
    }

    /// Whether the upper branch holds a whiteout for `rel`.
    pub fn is_whiteout(&self, rel: &str) -> bool {
        is_whiteout(self.fmt, &self.up(rel))
    }

    /// Whether the upper branch's directory `rel` is marked opaque.
    pub fn is_opaque(&self, rel: &str) -> bool {
        if self.userxattr {
            return xattr(&self.up(rel), "user.overlay.opaque").as_deref() == Some(b"y");
        }
        is_opaque(self.fmt, &self.up(rel))
    }

    #[track_caller]
    pub fn assert_whiteout(&self, rel: &str) {
        assert!(
            self.is_whiteout(rel),
            "no {:?} whiteout for {rel} in upper; upper holds {:?}",
            self.fmt,
            list_raw(self.up(rel).parent().expect("parent"))
        );
    }

    /// Mounts the kernel's overlayfs on the same lower/upper/work at
    /// `kmnt` (the union must be unmounted). None when overlayfs is
    /// unavailable (after a loud SKIPPED).
    pub fn kernel_overlay(&self, test: &str) -> Option<KernelOverlay> {
        assert!(self.mounted.is_none(), "unmount the union first");
        let have = fs::read_to_string("/proc/filesystems")
            .map(|s| s.lines().any(|l| l.trim_end().ends_with("\toverlay")))
            .unwrap_or(false);
        if !have {
            skip(test, "kernel overlayfs unavailable");
            return None;
        }
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect();
        let mut opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            self.up("").display(),
            self.work.display()
        );
        if self.userxattr {
            opts += ",userxattr";
        }
        // A failure shows mount's complaint: the kernel refused the
        // union's branches.
        strata_test_support::run(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", &opts])
                .arg(&self.kmnt),
        );
        Some(KernelOverlay {
            mnt: self.kmnt.clone(),
        })
    }
}

impl Drop for Union {
    fn drop(&mut self) {
        if let Some(m) = self.mounted.take() {
            if std::thread::panicking() {
                // The daemon may be wedged: detach first so nothing waits
                // on it, and do not join its threads.
                force_unmount(&self.mnt);
                std::mem::forget(m);
            } else if let Err(e) = m.unmount() {
                force_unmount(&self.mnt);
                panic!("unmount failed: {e:?}");
            }
        }
        if is_mounted(&self.mnt) {
            force_unmount(&self.mnt);
            if !std::thread::panicking() {
                panic!("{} still mounted after unmount", self.mnt.display());
            }
        }
        if std::thread::panicking() {
            return;
        }
        for (lower, before) in self.lowers.iter().zip(&self.lowers_before) {
            let after = tree::snapshot_with_times(lower);
            let diff = tree::diff(before, &after);
            assert!(
                diff.is_empty(),
                "lower branch changed:\n{}",
                diff.join("\n")
            );
        }
    }
}

/// The kernel's overlayfs on a union's branches; unmounted on drop.
pub struct KernelOverlay {
    pub mnt: PathBuf,
}

impl Drop for KernelOverlay {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Whether `path` is a mount point of this process's mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let want = path.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

fn force_unmount(mnt: &Path) {
    let _ = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(mnt)
        .status();
    if is_mounted(mnt) {
        let _ = Command::new("umount").arg("-l").arg(mnt).status();
    }
}

pub fn is_whiteout(fmt: Fmt, path: &Path) -> bool {
    match fmt {
        Fmt::Aufs => {
            let name = path.file_name().expect("name").to_string_lossy();
            fs::symlink_metadata(path.with_file_name(format!(".wh.{name}"))).is_ok()
        }
        Fmt::Overlay => fs::symlink_metadata(path)
            .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0),
    }
}

pub fn is_opaque(fmt: Fmt, dir: &Path) -> bool {
    match fmt {
        Fmt::Aufs => fs::symlink_metadata(dir.join(".wh..wh..opq")).is_ok(),
        Fmt::Overlay => xattr(dir, "trusted.overlay.opaque").as_deref() == Some(b"y"),
    }
}

/// Writes a whiteout for `name` in `dir` of a branch, by hand.
pub fn make_whiteout(fmt: Fmt, dir: &Path, name: &str) {
    match fmt {
        Fmt::Aufs => fs::write(dir.join(format!(".wh.{name}")), "").expect("aufs whiteout"),
        Fmt::Overlay => rustix::fs::mknodat(
            CWD,
            dir.join(name),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("overlay whiteout"),
    }
}

/// Marks the branch directory `dir` opaque, by hand.
pub fn make_opaque(fmt: Fmt, dir: &Path) {
    match fmt {
        Fmt::Aufs => fs::write(dir.join(".wh..wh..opq"), "").expect("aufs opaque"),
        Fmt::Overlay => {
            rustix::fs::lsetxattr(dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                .expect("overlay opaque")
        }
    }
}

/// The names in a directory (union or branch), sorted, without `.`/`..`.
pub fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// `list` that never panics, for failure messages.
pub fn list_raw(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
        Err(e) => vec![format!("<{e}>")],
    }
}

/// A user xattr (or any xattr) of `path`, not following symlinks.
pub fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// The xattr names of `path`, not following symlinks.
pub fn xattr_names(path: &Path) -> io::Result<Vec<String>> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut buf[..])?;
    Ok(buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

/// Asserts `r` failed with `want`.
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug, E: Into<io::Error>>(
    r: Result<T, E>,
    want: Errno,
    what: &str,
) {
    let want_io = io::Error::from(want);
    match r {
        Ok(v) => panic!("{what}: succeeded ({v:?}), want {want_io}"),
        Err(e) => {
            let e: io::Error = e.into();
            assert_eq!(
                e.raw_os_error(),
                Some(want.raw_os_error()),
                "{what}: got {e}, want {want_io}"
            );
        }
    }
}

/// Asserts `r` failed with one of `wants`.
#[track_caller]
pub fn assert_errno_any<T: std::fmt::Debug, E: Into<io::Error>>(
    r: Result<T, E>,
    wants: &[Errno],
    what: &str,
) {
    let names: Vec<String> = wants
        .iter()
        .map(|w| io::Error::from(*w).to_string())
        .collect();
    match r {
        Ok(v) => panic!("{what}: succeeded ({v:?}), want one of {names:?}"),
        Err(e) => {
            let e: io::Error = e.into();
            assert!(
                wants
                    .iter()
                    .any(|w| e.raw_os_error() == Some(w.raw_os_error())),
                "{what}: got {e}, want one of {names:?}"
            );
        }
    }
}

pub fn uid(n: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(n)
}

pub fn gid(n: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(n)
}

pub fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    }
}

/// Sets atime and mtime of `path` (not following symlinks).
pub fn set_times(path: &Path, atime: Timespec, mtime: Timespec) -> rustix::io::Result<()> {
    let times = Timestamps {
        last_access: atime,
        last_modification: mtime,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// The 100 KiB pattern of the lower file `big`.
pub fn big_content() -> Vec<u8> {
    (0..100 * 1024u32).map(|i| (i % 251) as u8).collect()
}

/// Runs `script` under `sh -c` as uid/gid 65534 with no groups, `args` as
/// `$1`...; returns whether it exited 0.
pub fn as_nobody(script: &str, args: &[&Path]) -> bool {
    nobody_output(script, args).status.success()
}

/// [`as_nobody`], returning what the script printed and its status.
pub fn nobody_output(script: &str, args: &[&Path]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args(args)
        .output()
        .expect("run setpriv")
}

/// `truncate(2)` by path (no open file), via perl; Ok or the errno.
pub fn truncate_path(path: &Path, len: u64) -> Result<(), io::Error> {
    let st = Command::new("perl")
        .args([
            "-e",
            "truncate($ARGV[0], $ARGV[1]) and exit 0; exit($! + 0)",
        ])
        .arg(path)
        .arg(len.to_string())
        .status()
        .expect("run perl");
    match st.code() {
        Some(0) => Ok(()),
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        None => panic!("perl killed"),
    }
}

/// The lower tree most tests start from.
///
/// ```text
/// file        "lower file\n"  0644
/// secret      0600
/// owned       1234:5678 0640
/// nobodys     65534:65534 0644
/// suid        04755
/// big         100 KiB pattern
/// xattr       user.lower=lowerval user.other=o
/// dir/{a,b,sub/deep}
/// odir/       1234:5678 0750, odir/inner
/// empty/
/// sticky/     01777, sticky/theirs owned by 1234
/// locked/     0700, locked/inner
/// link -> file, dangling -> nowhere, dirlink -> dir
/// hard1, hard2  one inode
/// fifo, null (char 1:3)
/// ```
/// Every entry's mtime is `LOWER_MTIME`.
pub fn standard_tree(l: &Path) {
    let file = |rel: &str, data: &[u8], mode: u32| {
        fs::write(l.join(rel), data).expect("lower file");
        fs::set_permissions(l.join(rel), fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let dir = |rel: &str, mode: u32| {
        fs::create_dir(l.join(rel)).expect("lower dir");
        fs::set_permissions(l.join(rel), fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let own = |rel: &str, u: u32, g: u32| {
        rustix::fs::chownat(
            CWD,
            l.join(rel),
            Some(uid(u)),
            Some(gid(g)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .expect("chown");
    };
    file("file", b"lower file\n", 0o644);
    file("secret", b"secret\n", 0o600);
    file("owned", b"owned\n", 0o640);
    own("owned", 1234, 5678);
    file("nobodys", b"nobody's\n", 0o644);
    own("nobodys", 65534, 65534);
    file("suid", b"suid\n", 0o644);
    own("suid", 1234, 5678);
    fs::set_permissions(l.join("suid"), fs::Permissions::from_mode(0o4755)).expect("suid");
    file("big", &big_content(), 0o644);
    file("xattr", b"x\n", 0o644);
    rustix::fs::setxattr(
        l.join("xattr"),
        "user.lower",
        b"lowerval",
        XattrFlags::empty(),
    )
    .expect("user xattr (does the backing fs support them?)");
    rustix::fs::setxattr(l.join("xattr"), "user.other", b"o", XattrFlags::empty())
        .expect("user xattr");
    dir("dir", 0o755);
    file("dir/a", b"a\n", 0o644);
    file("dir/b", b"b\n", 0o644);
    dir("dir/sub", 0o755);
    file("dir/sub/deep", b"deep\n", 0o644);
    dir("odir", 0o750);
    file("odir/inner", b"inner\n", 0o644);
    own("odir", 1234, 5678);
    dir("empty", 0o755);
    dir("sticky", 0o1777);
    file("sticky/theirs", b"theirs\n", 0o644);
    own("sticky/theirs", 1234, 1234);
    dir("locked", 0o700);
    file("locked/inner", b"inner\n", 0o644);
    std::os::unix::fs::symlink("file", l.join("link")).expect("symlink");
    std::os::unix::fs::symlink("nowhere", l.join("dangling")).expect("symlink");
    std::os::unix::fs::symlink("dir", l.join("dirlink")).expect("symlink");
    file("hard1", b"hard\n", 0o644);
    fs::hard_link(l.join("hard1"), l.join("hard2")).expect("hardlink");
    rustix::fs::mknodat(
        CWD,
        l.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .expect("fifo");
    rustix::fs::mknodat(
        CWD,
        l.join("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .expect("char device");
    set_all_times(l, ts(LOWER_MTIME, 0));
}

/// Makes a device node or fifo at `path`, mode 0600.
pub fn mknod(path: &Path, kind: FileType, dev: rustix::fs::Dev) -> rustix::io::Result<()> {
    rustix::fs::mknodat(CWD, path, kind, Mode::from_raw_mode(0o600), dev)
}

/// Sets atime and mtime of everything under `root` (and `root`).
pub fn set_all_times(root: &Path, t: Timespec) {
    for e in walk(root) {
        set_times(&e, t, t).expect("utimensat");
    }
    set_times(root, t, t).expect("utimensat");
}

/// Every path under `root`, parents before children, not following
/// symlinks.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// lstat, panicking with the path.
#[track_caller]
pub fn lstat(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
}

/// `path` is gone (ENOENT on lstat).
#[track_caller]
pub fn assert_gone(path: &Path) {
    assert_errno(
        fs::symlink_metadata(path),
        Errno::NOENT,
        &format!("lstat {}", path.display()),
    );
}

/// The file's contents as text.
#[track_caller]
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
