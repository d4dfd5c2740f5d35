//! Driver benchmarks, each printed as a ratio against a reference
//! measured in the same run on the same directories:
//!
//! 1. overlay2 create + mount of a container layer, per operation, on a
//!    1-layer and a 100-layer stack, vs a bare mkdir + mount(2) of the
//!    same lower directories (target <= 3x);
//! 2. native diff and changes of a one-file change in a container on a
//!    Debian rootfs layer, vs the naive walk of the same layers;
//! 3. vfs create of a layer on a Debian rootfs layer vs `cp -a`
//!    (target <= 1x).
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
    let (ours, cp) = (ms(median(ours)), ms(median(cp)));
    rows.push((
        "vfs create on a Debian rootfs layer".into(),
        format!("{ours:.0} ms vs cp -a {cp:.0} ms"),
        format!("{:.2}x (target <= 1x)", ours / cp),
    ));

    println!();
    println!("{:<46} {:<44} ratio", "benchmark", "measured");
    for (a, b, c) in rows {
        println!("{a:<46} {b:<44} {c}");
    }
}
