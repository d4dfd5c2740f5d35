//! Crash and concurrency tests through the built `strata` binary, on
//! overlay2, vfs and erofs: `strata import`, `strata load`, `strata
//! commit`, `strata rmi` and `strata create` killed (SIGKILL) at random
//! moments leave nothing `strata check` calls corruption, only debris
//! that `check --repair` removes, and every image left works;
//! several processes creating, committing and removing at once leave the
//! store consistent.
//!
//! The kill moments are random: a failure prints the seed, and
//! `STRATA_CRASH_SEED=<seed>` replays it.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{findings_where, not_notes, require_root, Strata};

/// xorshift64*: reproducible from the seed printed at the start.
struct Rng(u64);

impl Rng {
    fn seeded(what: &str) -> Self {
        let seed = std::env::var("STRATA_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{what}: STRATA_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `len` bytes that do not compress and differ with `seed`.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

impl Strata {
    /// Runs `args` and SIGKILLs it after `after`; true when it had
    /// already finished (successfully).
    fn kill_after(&self, args: &[&str], after: Duration) -> bool {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        thread::sleep(after);
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(
                status.success(),
                "strata {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return true;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        false
    }

    /// `strata check` (JSON); asserts it found no corruption.
    fn check_no_corruption(&self, when: &str) -> Value {
        let (report, _) = self.check_report(when);
        let corrupt = findings_where(&report, |f| f["Corruption"] == true);
        assert!(corrupt.is_empty(), "{when}: corruption: {corrupt:#?}");
        report
    }

    /// Repairs, then asserts a second check finds nothing at all.
    fn repair_then_clean(&self) {
        self.ok(&["check", "--repair"]);
        let report = self.json(&["check", "--format", "json", "--verify-digests"]);
        let left = not_notes(&report);
        assert!(
            left.is_empty() && report["Clean"] == true,
            "after repair: {left:#?}"
        );
    }

    /// Every image listed works: a container made from it mounts and
    /// shows the base's files; returns the images' tags.
    fn images_work(&self) -> Vec<String> {
        let images = self.json(&["images", "--format", "json"]);
        let mut tags = Vec::new();
        for img in images.as_array().unwrap() {
            let id = img["ID"].as_str().unwrap();
            let c = self.ok(&["create", id]);
            let merged = PathBuf::from(self.ok(&["mount", &c]));
            assert_eq!(
                fs::read_to_string(merged.join("etc/os-release")).unwrap(),
                "ID=strata-crash\n",
                "image {id}"
            );
            tags.extend(
                img["RepoTags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_owned()),
            );
            self.ok(&["umount", &c]);
            self.ok(&["rm", &c]);
        }
        // The layers listed are the images' layers, each whole.
        let layers = self.json(&["layers", "--format", "json"]);
        assert!(!layers.as_array().unwrap().is_empty());
        tags
    }

    /// A root file system tarball of about `mb` MB: nested directories
    /// of incompressible files, `small` small files and a symlink.
    fn rootfs_tar(&self, mb: usize, small: u64) -> PathBuf {
        let src = self.dir.path().join("rootfs");
        for d in ["etc", "bin", "usr/lib", "usr/share/doc"] {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        fs::write(src.join("etc/os-release"), "ID=strata-crash\n").unwrap();
        for i in 0..mb * 4 {
            let dir = src.join(format!("usr/lib/m{}", i % 16));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(format!("lib{i}.so")), data(i as u64, 256 << 10)).unwrap();
        }
        for i in 0..small {
            fs::write(
                src.join(format!("usr/share/doc/f{i}")),
                data(1 << 20 | i, 300),
            )
            .unwrap();
        }
        std::os::unix::fs::symlink("../usr/lib/m0/lib0.so", src.join("bin/tool")).unwrap();
        let tar = self.dir.path().join("rootfs.tar");
        let ok = Command::new("tar")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tar -c of the rootfs");
        fs::remove_dir_all(&src).unwrap();
        tar
    }
}

/// How long an uninterrupted run takes, in ms (at least 1).
fn timed(f: impl FnOnce()) -> u64 {
    let t = Instant::now();
    f();
    (t.elapsed().as_millis() as u64).max(1)
}

const KILLS: usize = 16;

/// Bytes each container adds before its commit.
const CHANGE: usize = 4 << 20;

fn import_killed(driver: &'static str) {
    import_killed_with(driver, &[]);
}

/// [`import_killed`] on a store first opened with `options` (driver
/// options: `--storage-opt KEY=VALUE`).
fn import_killed_with(driver: &'static str, options: &[&str]) {
    let s = Strata::new(driver);
    if !options.is_empty() {
        let mut args = options.to_vec();
        args.push("info");
        s.ok(&args);
    }
    let mut rng = Rng::seeded(&format!("import_killed({driver})"));
    let tar = s.rootfs_tar(30, 400);
    let tar = tar.to_str().unwrap();
    let full = timed(|| {
        s.ok(&["import", tar, "crash:whole"]);
    });
    let mut finished = 0;
    for i in 0..KILLS {
        // Kill anywhere from start-up to a little past the usual end.
        let at = Duration::from_millis(rng.below(full * 13 / 10));
        let tag = format!("crash:{i}");
        if s.kill_after(&["import", tar, &tag], at) {
            finished += 1;
        }
        s.check_no_corruption(&format!("import {i} killed after {at:?}"));
    }
    eprintln!("import ({driver}, {full} ms whole): {finished} of {KILLS} finished before the kill");
    s.repair_then_clean();
    let tags = s.images_work();
    assert!(tags
        .iter()
        .any(|t| t == "crash:whole:latest" || t == "crash:whole"));
}

/// `load` of a ten-layer image killed at random moments. A load of that
/// many layers is made durable by one flush of the file system before
/// anything is published, on erofs too (whose import fsyncs its image).
fn load_killed(driver: &'static str) {
    let s = Strata::new(driver);
    let mut rng = Rng::seeded(&format!("load_killed({driver})"));
    let tar = s.rootfs_tar(2, 100);
    s.ok(&["import", tar.to_str().unwrap(), "crash:0"]);
    for i in 1..10u64 {
        let c = s.ok(&["create", &format!("crash:{}", i - 1)]);
        let merged = PathBuf::from(s.ok(&["mount", &c]));
        fs::write(
            merged.join(format!("usr/share/doc/layer{i}")),
            data(i, 64 << 10),
        )
        .unwrap();
        s.ok(&["umount", &c]);
        s.ok(&["commit", &c, &format!("crash:{i}")]);
        s.ok(&["rm", &c]);
    }
    let archive = s.dir.path().join("ten-layers.tar");
    let archive = archive.to_str().unwrap();
    s.ok(&["save", "-o", archive, "crash:9"]);
    let all: Vec<String> = (0..10).rev().map(|i| format!("crash:{i}")).collect();
    let mut rmi = vec!["rmi"];
    rmi.extend(all.iter().map(String::as_str));
    s.ok(&rmi);
    let full = timed(|| {
        s.ok(&["load", "-i", archive]);
    });
    s.ok(&["rmi", "crash:9"]);
    let mut finished = 0;
    for i in 0..KILLS {
        let at = Duration::from_millis(rng.below(full * 13 / 10));
        if s.kill_after(&["load", "-i", archive], at) {
            finished += 1;
            s.ok(&["rmi", "crash:9"]);
        }
        s.check_no_corruption(&format!("load {i} killed after {at:?}"));
    }
    eprintln!("load ({driver}, {full} ms whole): {finished} of {KILLS} finished before the kill");
    s.repair_then_clean();
    s.ok(&["load", "-i", archive]);
    let tags = s.images_work();
    assert!(tags.iter().any(|t| t == "crash:9"), "{tags:?}");
}

fn commit_killed(driver: &'static str) {
    let s = Strata::new(driver);
    let mut rng = Rng::seeded(&format!("commit_killed({driver})"));
    let tar = s.rootfs_tar(4, 200);
    s.ok(&["import", tar.to_str().unwrap(), "base"]);
    // Each container changes the base: a new file, a deleted one, a
    // replaced one; its commit is a new layer.
    let prepare = |i: usize| {
        let c = s.ok(&["create", "--name", &format!("c{i}"), "base"]);
        let merged = PathBuf::from(s.ok(&["mount", &c]));
        fs::create_dir_all(merged.join("data")).unwrap();
        fs::write(
            merged.join(format!("data/c{i}.bin")),
            data(i as u64, CHANGE),
        )
        .unwrap();
        fs::remove_file(merged.join("usr/share/doc/f1")).unwrap();
        fs::write(merged.join("usr/lib/m0/lib0.so"), format!("c{i}")).unwrap();
        s.ok(&["umount", &c]);
        c
    };
    let first = prepare(KILLS);
    let full = timed(|| {
        s.ok(&["commit", &first, "crash:whole"]);
    });
    let mut finished = 0;
    for i in 0..KILLS {
        let c = prepare(i);
        let at = Duration::from_millis(rng.below(full * 13 / 10));
        if s.kill_after(&["commit", &c, &format!("crash:{i}")], at) {
            finished += 1;
        }
        s.check_no_corruption(&format!("commit {i} killed after {at:?}"));
    }
    eprintln!("commit ({driver}, {full} ms whole): {finished} of {KILLS} finished before the kill");
    s.repair_then_clean();
    // Every committed image that survived holds its container's change.
    for tag in s.images_work() {
        let Some(i) = tag
            .strip_prefix("crash:")
            .and_then(|t| t.parse::<usize>().ok())
        else {
            continue;
        };
        let c = s.ok(&["create", &tag]);
        let merged = PathBuf::from(s.ok(&["mount", &c]));
        assert!(
            fs::read(merged.join(format!("data/c{i}.bin"))).unwrap() == data(i as u64, CHANGE),
            "image {tag} lost its change"
        );
        assert!(!merged.join("usr/share/doc/f1").exists(), "image {tag}");
        s.ok(&["umount", &c]);
        s.ok(&["rm", &c]);
    }
}

/// `rmi` killed at random moments, among images committed from one
/// another (so each removal touches the reference index: the image on
/// its top layer, under its parent, and its layer under the one below):
/// what a kill leaves is at most entries too many (`stale-index`,
/// debris), never an entry too few; the images left keep working, and
/// removing the rest removes every layer.
fn rmi_killed(driver: &'static str) {
    let s = Strata::new(driver);
    let mut rng = Rng::seeded(&format!("rmi_killed({driver})"));
    let tar = s.rootfs_tar(1, 20);
    s.ok(&["import", tar.to_str().unwrap(), "base"]);
    // crash:0 on base, then pairs: crash:2k+1 on crash:2k, crash:2k+2
    // on crash:2k (a parent with two children).
    let commit = |i: usize, from: &str| {
        let c = s.ok(&["create", from]);
        let merged = PathBuf::from(s.ok(&["mount", &c]));
        fs::write(merged.join(format!("c{i}")), data(i as u64, 4096)).unwrap();
        s.ok(&["umount", &c]);
        s.ok(&["commit", &c, &format!("crash:{i}")]);
        s.ok(&["rm", &c]);
    };
    commit(0, "base");
    for i in 1..=KILLS {
        commit(i, &format!("crash:{}", (i - 1) / 2 * 2));
    }
    commit(KILLS + 1, "base");
    let full = timed(|| {
        s.ok(&["rmi", &format!("crash:{}", KILLS + 1)]);
    });
    let mut finished = 0;
    // Children first, by tag: each removal can take untagged parents and
    // their layers with it.
    for i in (1..=KILLS).rev() {
        let at = Duration::from_millis(rng.below(full * 13 / 10));
        if s.kill_after(&["rmi", &format!("crash:{i}")], at) {
            finished += 1;
        }
        s.check_no_corruption(&format!("rmi crash:{i} killed after {at:?}"));
    }
    eprintln!("rmi ({driver}, {full} ms whole): {finished} of {KILLS} finished before the kill");
    s.repair_then_clean();
    s.images_work();
    // What the kills left is removed by the next rmi of each.
    for i in (0..=KILLS).rev() {
        let tag = format!("crash:{i}");
        if s.run(&["image", "inspect", &tag]).status.success() {
            s.ok(&["rmi", &tag]);
        }
    }
    s.ok(&["rmi", "base"]);
    // An image a killed rmi had untagged, while it still had a child,
    // and whose child went in a later kill, is left dangling: prune.
    s.ok(&["system", "prune", "-a"]);
    let layers = s.json(&["layers", "--format", "json"]);
    assert_eq!(layers.as_array().unwrap().len(), 0, "{layers:#}");
    s.repair_then_clean();
}

/// A store on `driver` with an image `base`, the generator for `test`,
/// and how long an uninterrupted `create` of it takes (ms).
fn base_to_create_on(driver: &'static str, test: &str) -> (Strata, Rng, u64) {
    let s = Strata::new(driver);
    let rng = Rng::seeded(&format!("{test}({driver})"));
    let tar = s.rootfs_tar(1, 40);
    s.ok(&["import", tar.to_str().unwrap(), "base"]);
    let full = timed(|| {
        s.ok(&["create", "--name", "whole", "base"]);
    });
    (s, rng, full)
}

/// `create` killed at random moments: every container that survives has
/// its init and read-write layers and mounts; every name either names a
/// working container or is free again.
fn create_killed(driver: &'static str) {
    let (s, mut rng, full) = base_to_create_on(driver, "create_killed");
    let mut finished = 0;
    for i in 0..KILLS {
        let at = Duration::from_millis(rng.below(full * 13 / 10 + 1));
        if s.kill_after(&["create", "--name", &format!("k{i}"), "base"], at) {
            finished += 1;
        }
        s.check_no_corruption(&format!("create {i} killed after {at:?}"));
    }
    eprintln!("create ({driver}, {full} ms whole): {finished} of {KILLS} finished before the kill");
    s.repair_then_clean();
    for i in 0..KILLS {
        let name = format!("k{i}");
        let out = s.run(&["mount", &name]);
        if out.status.success() {
            let merged = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
            assert!(merged.join("etc/hosts").exists(), "{name}: no init layer");
            assert!(merged.join("usr").is_dir(), "{name}: no image content");
            s.ok(&["umount", &name]);
            s.ok(&["rm", &name]);
        } else {
            // Not published: the name is free again.
            s.ok(&["create", "--name", &name, "base"]);
            s.ok(&["rm", &name]);
        }
    }
}

/// The boot ID no machine has: the boot a power cut ended.
const EARLIER_BOOT: &str = "00000000-0000-4000-8000-000000000000";

impl Strata {
    /// Plays a power cut after containers were created without a flush:
    /// what a journaling file system can give back is every name in its
    /// order but not the bytes of files written without a flush, so each
    /// file a marked container's `create` wrote (its records, its name,
    /// its driver layers' `link` and `lower`) comes back empty or not at
    /// random; the markers become an earlier boot's.
    fn power_cut(&self, rng: &mut Rng) {
        let root = self.root();
        let image = root.join("image").join(self.driver);
        let home = root.join(self.driver);
        let unflushed = image.join("layerdb/unflushed");
        for boot in fs::read_dir(&unflushed).unwrap() {
            let boot = boot.unwrap().path();
            for m in fs::read_dir(&boot).unwrap() {
                let name = m.unwrap().file_name().into_string().unwrap();
                let (id, mount) = name.split_once('.').unwrap();
                let mut written = vec![
                    root.join("containers").join(id).join("config.json"),
                    home.join(mount).join("link"),
                    home.join(mount).join("lower"),
                    home.join(format!("{mount}-init/link")),
                    home.join(format!("{mount}-init/lower")),
                ];
                let record = image.join("layerdb/mounts").join(id);
                for f in ["mount-id", "init-id", "parent"] {
                    written.push(record.join(f));
                }
                for n in fs::read_dir(root.join("names")).unwrap() {
                    let n = n.unwrap().path();
                    if fs::read_to_string(&n).is_ok_and(|s| s.trim() == id) {
                        written.push(n);
                    }
                }
                for f in written.iter().filter(|f| f.is_file()) {
                    if rng.below(2) == 0 {
                        fs::write(f, "").unwrap();
                    }
                }
            }
            fs::rename(&boot, boot.with_file_name(EARLIER_BOOT)).unwrap();
        }
    }
}

/// `create` killed at random moments, then the power cut that takes
/// with it what `create` did not flush: once the store is opened, every
/// container is whole (it mounts, with its init layer and its image) or
/// absent, and `strata check` finds nothing at all.
fn create_killed_then_power_cut(driver: &'static str) {
    let (s, mut rng, full) = base_to_create_on(driver, "create_killed_then_power_cut");
    let (mut whole, mut gone) = (0, 0);
    for i in 0..KILLS {
        let at = Duration::from_millis(rng.below(full * 13 / 10 + 1));
        let name = format!("k{i}");
        s.kill_after(&["create", "--name", &name, "base"], at);
        s.power_cut(&mut rng);
        let when = format!("create {i} killed after {at:?}, then the power cut");
        // The first open after the crash.
        let listed = s.json(&["ps", "-a", "--format", "json"]);
        for c in listed.as_array().unwrap() {
            let id = c["Id"].as_str().unwrap();
            let merged = PathBuf::from(s.ok(&["mount", id]));
            assert!(
                merged.join("etc/hosts").exists(),
                "{when}: {id}: no init layer"
            );
            assert!(
                merged.join("usr").is_dir(),
                "{when}: {id}: no image content"
            );
            s.ok(&["umount", id]);
        }
        let report = s.check_no_corruption(&when);
        let left = not_notes(&report);
        assert!(left.is_empty(), "{when}: {left:#?}");
        // Gone is gone: the name is free again.
        if s.run(&["inspect", &name]).status.success() {
            whole += 1;
        } else {
            gone += 1;
            s.ok(&["create", "--name", &name, "base"]);
            s.ok(&["rm", &name]);
        }
    }
    eprintln!("create killed, then power cut: {whole} whole, {gone} absent");
}

/// Four processes at a time, each looping create, mount, write, umount,
/// commit, rm, rmi.
fn concurrent(driver: &'static str) {
    let s = Strata::new(driver);
    let tar = s.rootfs_tar(1, 40);
    s.ok(&["import", tar.to_str().unwrap(), "base"]);
    thread::scope(|scope| {
        for t in 0..4 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..10 {
                    let name = format!("t{t}-{i}");
                    let image = format!("img{t}:{i}");
                    let c = s.ok(&["create", "--name", &name, "base"]);
                    let merged = PathBuf::from(s.ok(&["mount", &c]));
                    fs::write(merged.join(format!("etc/{name}")), data(i, 64 << 10)).unwrap();
                    s.ok(&["umount", &c]);
                    s.ok(&["commit", &name, &image]);
                    s.ok(&["rm", &name]);
                    let c2 = s.ok(&["create", &image]);
                    s.ok(&["rm", &c2]);
                    s.ok(&["rmi", &image]);
                }
            });
        }
    });
    let report = s.json(&["check", "--format", "json", "--verify-digests"]);
    let found = not_notes(&report);
    assert!(found.is_empty(), "after concurrent work: {found:#?}");
    assert_eq!(s.images().len(), 1);
    assert_eq!(
        s.json(&["layers", "--format", "json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.json(&["ps", "-a", "--format", "json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn import_killed_overlay2() {
    if require_root() {
        import_killed("overlay2");
    }
}

#[test]
fn import_killed_vfs() {
    if require_root() {
        import_killed("vfs");
    }
}

#[test]
fn commit_killed_overlay2() {
    if require_root() {
        commit_killed("overlay2");
    }
}

#[test]
fn commit_killed_vfs() {
    if require_root() {
        commit_killed("vfs");
    }
}

#[test]
fn rmi_killed_overlay2() {
    if require_root() {
        rmi_killed("overlay2");
    }
}

#[test]
fn rmi_killed_vfs() {
    if require_root() {
        rmi_killed("vfs");
    }
}

#[test]
fn create_killed_overlay2() {
    if require_root() {
        create_killed("overlay2");
    }
}

#[test]
fn create_killed_vfs() {
    if require_root() {
        create_killed("vfs");
    }
}

#[test]
fn import_killed_erofs() {
    if require_root() {
        import_killed("erofs");
    }
}

/// Killed imports in erofs's object mode leave objects half-written or
/// named by nothing: debris that check --repair removes.
#[test]
fn import_killed_erofs_objects() {
    if require_root() {
        import_killed_with("erofs", &["--storage-opt", "erofs.objects=on"]);
    }
}

#[test]
fn load_killed_overlay2() {
    if require_root() {
        load_killed("overlay2");
    }
}

#[test]
fn load_killed_erofs() {
    if require_root() {
        load_killed("erofs");
    }
}

#[test]
fn commit_killed_erofs() {
    if require_root() {
        commit_killed("erofs");
    }
}

#[test]
fn rmi_killed_erofs() {
    if require_root() {
        rmi_killed("erofs");
    }
}

#[test]
fn create_killed_erofs() {
    if require_root() {
        create_killed("erofs");
    }
}

#[test]
fn create_killed_then_power_cut_overlay2() {
    if require_root() {
        create_killed_then_power_cut("overlay2");
    }
}

#[test]
fn create_killed_then_power_cut_erofs() {
    if require_root() && common::require_kernel_fs("create_killed_then_power_cut_erofs", "erofs") {
        create_killed_then_power_cut("erofs");
    }
}

#[test]
fn concurrent_work_leaves_the_store_consistent_overlay2() {
    if require_root() {
        concurrent("overlay2");
    }
}

#[test]
fn concurrent_work_leaves_the_store_consistent_vfs() {
    if require_root() {
        concurrent("vfs");
    }
}
