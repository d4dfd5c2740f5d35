//! Driver benchmarks, each printed as a ratio against a reference
//! measured in the same run on the same directories:
//!
//! 1. overlay2 create + mount of a container layer, per operation, on a
//!    1-layer and a 100-layer stack, vs a bare mkdir + mount(2) of the
//!    same lower directories (target <= 3x);
//! 2. native diff and changes of a one-file change in a container on a
//!    Debian rootfs layer, vs the naive walk of the same layers;
//! 3. vfs create of a layer on a Debian rootfs layer vs `cp -a`
//!    (target <= 1x);
//! 4. btrfs, on a btrfs made in a file and loop-mounted: create + get of
//!    a container on the Debian layer vs overlay2's create + mount
//!    (target <= 1.5x) and vs vfs's create (target >= 20x faster); the
//!    diff of a one-file change vs overlay2's native diff (target <= 2x);
//!    the disk space of 10 containers vs vfs's (target <= 1/5).
//!
//! Run as root: `cargo bench -p strata-driver --bench driver`.
//! The Debian rootfs tar is `$STRATA_BENCH_ROOTFS_TAR`, else
//! `bench/work/debian-bookworm-minbase.tar` if present, else built with
//! debootstrap (scripts/lib.sh). Work files go under `$STRATA_BENCH_DIR`
//! (default: target/bench-driver).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use strata_driver::btrfs::Btrfs;
use strata_driver::conformance::LoopFs;
use strata_driver::overlay2::Overlay2;
use strata_driver::vfs::Vfs;
use strata_driver::{Driver, LayerKind};
use strata_sys::mount::{self, Overlay};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sh(script: &str) {
    let ok = Command::new("bash")
        .arg("-ec")
        .arg(script)
        .current_dir(repo())
        .status()
        .expect("bash")
        .success();
    assert!(ok, "failed: {script}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn rootfs_tar(work: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_BENCH_ROOTFS_TAR") {
        return p.into();
    }
    let cached = repo().join("bench/work/debian-bookworm-minbase.tar");
    if cached.exists() {
        return cached;
    }
    let tar = work.join("debian.tar");
    if !tar.exists() {
        let dir = work.join("debian-rootfs");
        sh(&format!(
            ". scripts/lib.sh; debian_rootfs '{d}'; tar --numeric-owner --xattrs --xattrs-include='*' -C '{d}' -cf '{t}' .",
            d = dir.display(),
            t = tar.display()
        ));
    }
    tar
}

/// Puts back and removes the containers when done, unmounting anything
/// left if the bench panics.
struct Cleanup<'a>(&'a dyn Driver);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.cleanup();
    }
}

fn stack(d: &dyn Driver, depth: usize, prefix: &str) -> String {
    let mut parent: Option<String> = None;
    for i in 0..depth {
        let id = format!("{prefix}-{i}");
        d.create(&id, parent.as_deref(), LayerKind::ReadOnly)
            .unwrap();
        let p = d.get(&id, None).unwrap();
        fs::write(p.join(format!("file-{i}")), format!("{i}")).unwrap();
        p.release().unwrap();
        parent = Some(id);
    }
    parent.unwrap()
}

/// (1) create + mount per container, vs bare mkdir + mount(2).
fn create_mount(work: &Path, depth: usize, n: usize) -> (f64, f64) {
    let home = work.join(format!("overlay2-{depth}"));
    let _ = fs::remove_dir_all(&home);
    let d = Overlay2::new(&home).unwrap();
    let _c = Cleanup(&d);
    let top = stack(&d, depth, "layer");
    let lowers: Vec<PathBuf> = {
        // The same lower directories the driver stacks, for the reference.
        let mut v = Vec::new();
        for i in (0..depth).rev() {
            v.push(home.join(format!("layer-{i}")).join("diff"));
        }
        v
    };
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for i in 0..n {
        let id = format!("c-{i}");
        let t = Instant::now();
        d.create(&id, Some(&top), LayerKind::ReadWrite).unwrap();
        // Put back below, after the reference's mounts are gone.
        d.get(&id, None).unwrap().keep();
        ours.push(t.elapsed());

        let b = work.join(format!("bare-{depth}-{i}"));
        let t = Instant::now();
        for sub in ["upper", "work", "merged"] {
            fs::create_dir_all(b.join(sub)).unwrap();
        }
        let ov = Overlay {
            lower: lowers.clone(),
            data: Vec::new(),
            upper: Some(b.join("upper")),
            work: Some(b.join("work")),
            options: vec!["index=off".into()],
        };
        mount::mount_overlay_fsconfig(&ov, &b.join("merged")).unwrap();
        bare.push(t.elapsed());
    }
    for i in 0..n {
        let b = work.join(format!("bare-{depth}-{i}"));
        mount::unmount(&b.join("merged"), true).unwrap();
        fs::remove_dir_all(&b).unwrap();
        d.put(&format!("c-{i}")).unwrap();
    }
    (ms(median(ours)), ms(median(bare)))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches` runs benches as tests: nothing to check.
        return;
    }
    if strata_sys::fs::euid() != 0 {
        println!("SKIPPED (requirement not met: root): driver benchmarks mount overlayfs");
        return;
    }
    let work = std::env::var_os("STRATA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/bench-driver"));
    fs::create_dir_all(&work).unwrap();
    let work = fs::canonicalize(&work).unwrap();
    let mut rows: Vec<(String, String, String)> = Vec::new();

    for depth in [1, 100] {
        let (ours, bare) = create_mount(&work, depth, 50);
        rows.push((
            format!("overlay2 create+mount, {depth}-layer stack"),
            format!("{ours:.3} ms vs bare mkdir+mount {bare:.3} ms"),
            format!("{:.2}x (target <= 3x)", ours / bare),
        ));
    }

    let tar = rootfs_tar(&work);
    println!("rootfs tar: {}", tar.display());

    // (2) native vs naive diff and changes of a one-file change.
    let home = work.join("overlay2-debian");
    let _ = fs::remove_dir_all(&home);
    let d = Overlay2::new(&home).unwrap();
    let overlay2_diff;
    let overlay2_create;
    {
        let _c = Cleanup(&d);
        d.create("base", None, LayerKind::ReadOnly).unwrap();
        d.apply_diff("base", None, &mut fs::File::open(&tar).unwrap())
            .unwrap();
        d.create("c", Some("base"), LayerKind::ReadWrite).unwrap();
        let merged = d.get("c", None).unwrap();
        fs::write(merged.join("etc/motd"), b"changed\n").unwrap();
        let base = d.get("base", None).unwrap();
        let time = |f: &mut dyn FnMut()| {
            let mut v = Vec::new();
            for _ in 0..11 {
                let t = Instant::now();
                f();
                v.push(t.elapsed());
            }
            ms(median(v))
        };
        let native_diff = time(&mut || {
            d.native_diff()
                .unwrap()
                .diff("c", Some("base"), &mut std::io::sink())
                .unwrap();
        });
        let naive_diff = time(&mut || {
            strata_archive::diff_trees(Some(base.path()), merged.path(), std::io::sink()).unwrap();
        });
        let native_changes = time(&mut || {
            d.native_diff().unwrap().changes("c", Some("base")).unwrap();
        });
        let naive_changes = time(&mut || {
            strata_archive::changes_trees(Some(base.path()), merged.path()).unwrap();
        });
        rows.push((
            "diff of a one-file change, Debian rootfs".into(),
            format!("native {native_diff:.3} ms vs naive {naive_diff:.1} ms"),
            format!("{:.0}x faster", naive_diff / native_diff),
        ));
        rows.push((
            "changes of a one-file change, Debian rootfs".into(),
            format!("native {native_changes:.3} ms vs naive {naive_changes:.1} ms"),
            format!("{:.0}x faster", naive_changes / native_changes),
        ));
        base.release().unwrap();
        merged.release().unwrap();
        overlay2_diff = native_diff;
        overlay2_create = create_get(&d, "base", 50);
    }

    // (3) vfs create vs cp -a.
    let home = work.join("vfs-debian");
    let _ = fs::remove_dir_all(&home);
    let v = Vfs::new(&home).unwrap();
    v.create("base", None, LayerKind::ReadOnly).unwrap();
    v.apply_diff("base", None, &mut fs::File::open(&tar).unwrap())
        .unwrap();
    let src = v.get("base", None).unwrap();
    let mut ours = Vec::new();
    let mut cp = Vec::new();
    for i in 0..3 {
        sh("sync");
        let t = Instant::now();
        v.create(&format!("child-{i}"), Some("base"), LayerKind::ReadOnly)
            .unwrap();
        ours.push(t.elapsed());
        let dst = work.join(format!("cp-{i}"));
        let _ = fs::remove_dir_all(&dst);
        sh("sync");
        let t = Instant::now();
        let ok = Command::new("cp")
            .arg("-a")
            .arg(src.path())
            .arg(&dst)
            .status()
            .unwrap()
            .success();
        cp.push(t.elapsed());
        assert!(ok);
        fs::remove_dir_all(&dst).unwrap();
        v.remove(&format!("child-{i}")).unwrap();
    }
    src.release().unwrap();
    // One full copy, as allocated on the disk.
    v.create("child-du", Some("base"), LayerKind::ReadOnly)
        .unwrap();
    let vfs_bytes = allocated(&v.content_dir("child-du").unwrap());
    v.remove("child-du").unwrap();
    let (ours, cp) = (ms(median(ours)), ms(median(cp)));
    let vfs_create = ours;
    rows.push((
        "vfs create on a Debian rootfs layer".into(),
        format!("{ours:.0} ms vs cp -a {cp:.0} ms"),
        format!("{:.2}x (target <= 1x)", ours / cp),
    ));

    btrfs(
        &tar,
        overlay2_create,
        vfs_create,
        overlay2_diff,
        vfs_bytes,
        &mut rows,
    );

    println!();
    println!("{:<46} {:<44} ratio", "benchmark", "measured");
    for (a, b, c) in rows {
        println!("{a:<46} {b:<44} {c}");
    }
}

/// Per container: create a read-write layer on `base` and `get` it
/// (mounting, for overlay2), median of `n`.
fn create_get(d: &dyn Driver, base: &str, n: usize) -> f64 {
    let mut v = Vec::new();
    for i in 0..n {
        let id = format!("cg-{i}");
        let t = Instant::now();
        d.create(&id, Some(base), LayerKind::ReadWrite).unwrap();
        d.get(&id, None).unwrap().keep();
        v.push(t.elapsed());
    }
    for i in 0..n {
        let id = format!("cg-{i}");
        d.put(&id).unwrap();
        d.remove(&id).unwrap();
    }
    ms(median(v))
}

/// Bytes allocated under `dir` (`du -sB1`).
fn allocated(dir: &Path) -> u64 {
    let out = Command::new("du").arg("-sB1").arg(dir).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("du's output")
}

/// Bytes in use on the file system holding `dir`, after a sync.
fn used(dir: &Path) -> u64 {
    use std::os::fd::AsFd;
    let fd = strata_sys::fs::open_dir(dir).unwrap();
    strata_sys::fs::syncfs(fd.as_fd()).unwrap();
    let st = strata_sys::fs::statfs(fd.as_fd()).unwrap();
    (st.blocks - st.blocks_free) * st.block_size
}

/// (4) btrfs on a loop-mounted btrfs, against the figures of overlay2
/// and vfs measured above.
fn btrfs(
    tar: &Path,
    overlay2_create: f64,
    vfs_create: f64,
    overlay2_diff: f64,
    vfs_bytes: u64,
    rows: &mut Vec<(String, String, String)>,
) {
    let Some(fs) = LoopFs::btrfs_of(4 << 30) else {
        println!("SKIPPED (requirement not met: a loop-mounted btrfs): btrfs benchmarks");
        return;
    };
    let d = Btrfs::new(&fs.path().join("btrfs")).unwrap();
    let _c = Cleanup(&d);
    d.create("base", None, LayerKind::ReadOnly).unwrap();
    d.apply_diff("base", None, &mut fs::File::open(tar).unwrap())
        .unwrap();
    let ours = create_get(&d, "base", 50);
    rows.push((
        "btrfs create+get vs overlay2 create+mount".into(),
        format!("{ours:.3} ms vs {overlay2_create:.3} ms"),
        format!("{:.2}x (target <= 1.5x)", ours / overlay2_create),
    ));
    rows.push((
        "btrfs create+get vs vfs create".into(),
        format!("{ours:.3} ms vs {vfs_create:.0} ms"),
        format!("{:.0}x faster (target >= 20x)", vfs_create / ours),
    ));

    d.create("c", Some("base"), LayerKind::ReadWrite).unwrap();
    {
        let m = d.get("c", None).unwrap();
        fs::write(m.join("etc/motd"), b"changed\n").unwrap();
    }
    let mut v = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        d.diff("c", Some("base"), &mut std::io::sink()).unwrap();
        v.push(t.elapsed());
    }
    let diff = ms(median(v));
    let mut v = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let (new, old) = (d.get("c", None).unwrap(), d.get("base", None).unwrap());
        strata_archive::diff_trees(Some(old.path()), new.path(), std::io::sink()).unwrap();
        v.push(t.elapsed());
    }
    let naive = ms(median(v));
    rows.push((
        "btrfs diff of a one-file change, native/naive".into(),
        format!("find-new {diff:.3} ms vs naive {naive:.1} ms"),
        format!("{:.0}x faster", naive / diff),
    ));
    rows.push((
        "btrfs diff of a one-file change vs overlay2".into(),
        format!("{diff:.3} ms vs {overlay2_diff:.3} ms"),
        format!("{:.2}x (target <= 2x)", diff / overlay2_diff),
    ));

    let before = used(fs.path());
    for i in 0..10 {
        d.create(&format!("ten-{i}"), Some("base"), LayerKind::ReadWrite)
            .unwrap();
    }
    let ten = used(fs.path()).saturating_sub(before);
    let vfs_ten = 10 * vfs_bytes;
    rows.push((
        "disk space of 10 containers, btrfs vs vfs".into(),
        format!("{} KiB vs {} KiB", ten >> 10, vfs_ten >> 10),
        format!(
            "1/{:.0} (target <= 1/5)",
            vfs_ten as f64 / ten.max(1) as f64
        ),
    ));
}
