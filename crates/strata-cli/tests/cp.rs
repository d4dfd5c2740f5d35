//! `strata cp`, `strata system df` and `strata system prune` through the
//! built binary, on real overlay mounts (and vfs).
//!
//! The container's symlinks point out of it every way they can (`/evil ->
//! /`, `/up -> ../../../../..`, `/data -> /etc`): every copy must read and
//! write the container's files, never the host's (CVE-2018-15664,
//! CVE-2019-14271).

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{as_root, name_and_number, require_root, sh, write_files, Strata};

impl Strata {
    /// Imports a tarball of the tree `script` makes (run in an empty dir).
    fn import(&self, name: &str, reference: &str, script: &str) -> String {
        let src = self.path(name);
        fs::create_dir(&src).unwrap();
        sh(&format!("cd '{}' && {script}", src.display()));
        self.import_tree(&src, reference)
    }

    /// Runs `f` on the container's merged view, then unmounts it.
    fn in_container(&self, c: &str, f: impl FnOnce(&Path)) {
        let m = PathBuf::from(self.ok(&["mount", c]));
        f(&m);
        self.ok(&["umount", c]);
    }

    fn is_mounted(&self, path: &Path) -> bool {
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|m| Path::new(m) == path)
    }
}

fn read(p: impl AsRef<Path>) -> String {
    let p = p.as_ref();
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Mode bits, uid, gid.
fn attrs(p: impl AsRef<Path>) -> (u32, u32, u32) {
    let md = fs::symlink_metadata(p.as_ref()).unwrap();
    (md.permissions().mode() & 0o7777, md.uid(), md.gid())
}

/// The container `c`: a tree with owners and modes, and symlinks that
/// point out of the container every way they can.
const ROOTFS: &str = "mkdir -p etc srv/tree/sub && \
    echo container-os > etc/os-release && \
    echo tree-file > srv/tree/file && chmod 0640 srv/tree/file && \
    chown 1234:5678 srv/tree/file && \
    echo nested > srv/tree/sub/n && chmod 0750 srv/tree/sub && \
    ln -s file srv/tree/link && \
    ln -s / evil && ln -s ../../../../../../../../../.. up && \
    ln -s /etc data && ln -s /etc/.. etc-up";

fn container(s: &Strata, victim_dir: &Path) {
    s.import("rootfs", "base:1", ROOTFS);
    s.ok(&["create", "--name", "c", "base:1"]);
    s.in_container("c", |m| {
        // The init layer leaves /etc/hostname empty: give it content the
        // host's cannot have.
        fs::write(m.join("etc/hostname"), "container-hostname\n").unwrap();
        // The victim's directory exists in the container too: writes
        // aimed at the host's land here.
        fs::create_dir_all(m.join(victim_dir.strip_prefix("/").unwrap())).unwrap();
    });
}

fn copies_both_ways(driver: &'static str) {
    let s = Strata::new(driver);
    container(&s, s.dir.path());
    let out = s.path("out");
    fs::create_dir(&out).unwrap();
    let o = |p: &str| out.join(p).to_str().unwrap().to_owned();

    // Container to host: a file into a directory, owner and mode kept.
    s.ok(&["cp", "c:/srv/tree/file", &o("")]);
    assert_eq!(read(out.join("file")), "tree-file\n");
    assert_eq!(attrs(out.join("file")), (0o640, 1234, 5678));
    // A file to a new name.
    s.ok(&["cp", "c:/srv/tree/file", &o("renamed")]);
    assert_eq!(read(out.join("renamed")), "tree-file\n");
    // A directory to a new name, into a directory, and its contents.
    s.ok(&["cp", "c:/srv/tree", &o("tree2")]);
    s.ok(&["cp", "c:/srv/tree", &o("")]);
    fs::create_dir(out.join("contents")).unwrap();
    s.ok(&["cp", "c:/srv/tree/.", &o("contents")]);
    for d in ["tree2", "tree", "contents"] {
        let d = out.join(d);
        assert_eq!(read(d.join("file")), "tree-file\n");
        assert_eq!(attrs(d.join("file")), (0o640, 1234, 5678));
        assert_eq!(read(d.join("sub/n")), "nested\n");
        assert_eq!(attrs(d.join("sub")).0, 0o750);
        assert_eq!(fs::read_link(d.join("link")).unwrap(), Path::new("file"));
    }
    assert!(!out.join("contents/tree").exists());
    // A directory over a file, and a file into a missing directory, are
    // refused.
    s.err(&["cp", "c:/srv/tree", &o("file")]);
    s.err(&["cp", "c:/srv/tree/file", &o("nosuch/")]);
    s.err(&["cp", "c:/srv/nosuch", &o("")]);

    // Host to container.
    let host = s.path("host");
    fs::create_dir_all(host.join("hd/s")).unwrap();
    write_files(
        &host,
        &[("hf", "from-host\n"), ("hd/a", "a\n"), ("hd/s/b", "b\n")],
    );
    sh(&format!(
        "cd '{}' && chmod 0604 hf && chown 4321:8765 hf && chmod 0751 hd",
        host.display()
    ));
    let h = |p: &str| host.join(p).to_str().unwrap().to_owned();
    s.ok(&["cp", &h("hf"), "c:/srv/"]);
    s.ok(&["cp", &h("hf"), "c:/srv/renamed"]);
    s.ok(&["cp", &h("hd"), "c:/opt"]);
    s.ok(&["cp", &h("hd"), "c:/srv"]);
    s.ok(&["cp", &format!("{}/.", h("hd")), "c:/srv/tree"]);
    s.err(&["cp", &h("hf"), "c:/nosuch/x"]);
    s.in_container("c", |m| {
        for f in ["srv/hf", "srv/renamed"] {
            assert_eq!(read(m.join(f)), "from-host\n");
            assert_eq!(attrs(m.join(f)), (0o604, 4321, 8765));
        }
        for d in ["opt", "srv/hd", "srv/tree"] {
            assert_eq!(read(m.join(d).join("a")), "a\n");
            assert_eq!(read(m.join(d).join("s/b")), "b\n");
        }
        assert_eq!(attrs(m.join("opt")).0, 0o751);
        assert_eq!(read(m.join("srv/tree/file")), "tree-file\n");
    });
}

fn symlinks_stay_inside(driver: &'static str) {
    let s = Strata::new(driver);
    let victim = s.path("victim");
    fs::write(&victim, "host-victim\n").unwrap();
    container(&s, s.dir.path());
    let merged = PathBuf::from(s.ok(&["mount", "c"]));
    s.ok(&["umount", "c"]);
    let out = s.path("out");
    fs::create_dir(&out).unwrap();
    let o = |p: &str| out.join(p).to_str().unwrap().to_owned();

    // Reading through links that leave the container reads the
    // container's files.
    for (src, want) in [
        ("c:/evil/etc/hostname", "container-hostname\n"),
        ("c:/up/etc/hostname", "container-hostname\n"),
        ("c:/etc-up/etc/hostname", "container-hostname\n"),
        ("c:/data/os-release", "container-os\n"),
        ("c:/../../../../etc/os-release", "container-os\n"),
        ("c:/srv/../../../etc/hostname", "container-hostname\n"),
    ] {
        let _ = fs::remove_file(out.join("got"));
        s.ok(&["cp", src, &o("got")]);
        assert_eq!(read(out.join("got")), want, "{src}");
    }
    // The host's file is not in the container: not found, not read.
    let v = victim.to_str().unwrap();
    for src in [format!("c:/up{v}"), format!("c:/evil{v}"), format!("c:{v}")] {
        s.err(&["cp", &src, &o("stolen")]);
        assert!(!out.join("stolen").exists(), "{src}");
    }
    // A symlink as the source is copied as a symlink, not followed.
    s.ok(&["cp", "c:/evil", &o("evil")]);
    assert_eq!(fs::read_link(out.join("evil")).unwrap(), Path::new("/"));
    // -L follows it, inside the container.
    s.ok(&["cp", "-L", "c:/data", &o("data")]);
    assert_eq!(read(out.join("data/os-release")), "container-os\n");

    // Writing through them writes the container's files.
    let payload = s.path("payload");
    fs::write(&payload, "payload\n").unwrap();
    let p = payload.to_str().unwrap();
    let unique = format!("strata-cp-test-{}", std::process::id());
    let host_etc = Path::new("/etc").join(&unique);
    let wrote_host = |p: &Path| {
        let leaked = p.exists();
        if leaked && p.starts_with("/etc") {
            let _ = fs::remove_file(p);
        }
        leaked
    };
    s.ok(&["cp", p, &format!("c:/data/{unique}")]);
    assert!(!wrote_host(&host_etc), "cp wrote the host's /etc");
    s.ok(&["cp", p, &format!("c:/evil/etc/{unique}-2")]);
    assert!(!wrote_host(&host_etc.with_file_name(format!("{unique}-2"))));
    for dest in [
        format!("c:/up{v}"),
        format!("c:/evil{v}"),
        format!("c:/../../..{v}"),
        format!("c:/etc-up/..{v}"),
    ] {
        s.ok(&["cp", p, &dest]);
        assert_eq!(read(&victim), "host-victim\n", "{dest} reached the host");
    }
    s.in_container("c", |m| {
        assert_eq!(read(m.join("etc").join(&unique)), "payload\n");
        assert_eq!(read(m.join("etc").join(format!("{unique}-2"))), "payload\n");
        assert_eq!(read(m.join(v.strip_prefix('/').unwrap())), "payload\n");
        // Nothing replaced the links themselves.
        assert_eq!(fs::read_link(m.join("data")).unwrap(), Path::new("/etc"));
    });
    assert_eq!(read(&victim), "host-victim\n");
    // cp gives back the mount it took.
    if driver == "overlay2" {
        assert!(!s.is_mounted(&merged), "cp left the container mounted");
    }
}

#[test]
fn cp_copies_files_and_directories_on_overlay2() {
    if require_root() {
        copies_both_ways("overlay2");
    }
}

#[test]
fn cp_copies_files_and_directories_on_vfs() {
    if require_root() {
        copies_both_ways("vfs");
    }
}

#[test]
fn cp_symlinks_stay_inside_the_container_on_overlay2() {
    if require_root() {
        symlinks_stay_inside("overlay2");
    }
}

#[test]
fn cp_symlinks_stay_inside_the_container_on_vfs() {
    if require_root() {
        symlinks_stay_inside("vfs");
    }
}

/// Sizes of the layers, by diffID.
fn layer_sizes(s: &Strata) -> Vec<(String, u64)> {
    name_and_number(&s.layers_json(), "DiffID", "Size")
}

fn df_row(df: &Value, ty: &str) -> (u64, u64, u64, u64) {
    let types = df["Types"].as_array().unwrap();
    let r = types.iter().find(|r| r["Type"] == ty).unwrap();
    let n = |k: &str| r[k].as_u64().unwrap();
    (n("TotalCount"), n("Active"), n("Size"), n("Reclaimable"))
}

#[test]
fn system_df_adds_up_and_prune_removes_only_what_it_should() {
    let Some(s) = as_root("overlay2") else { return };
    let base = s.import(
        "base",
        "base:1",
        "mkdir etc && head -c 3000 /dev/zero > etc/big",
    );
    s.import("other", "other:1", "head -c 500 /dev/zero > o");
    s.ok(&["create", "--name", "c1", "base:1"]);
    s.in_container("c1", |m| {
        fs::write(m.join("etc/added"), vec![7u8; 1000]).unwrap()
    });
    // Committed twice: one layer, two images; one of them untagged.
    let dangling = s.ok(&["commit", "c1"]);
    let kept = s.ok(&["commit", "c1", "kept:1"]);
    // A volume no container uses: its content is reclaimable.
    s.ok(&["volume", "create", "vd"]);
    fs::write(s.root().join("volumes/vd/_data/v"), vec![3u8; 2000]).unwrap();
    let sizes = layer_sizes(&s);
    assert_eq!(sizes.len(), 3);
    let unique_total: u64 = sizes.iter().map(|(_, n)| n).sum();
    let base_size = sizes
        .iter()
        .find(|(_, n)| *n == 3000)
        .map(|(_, n)| *n)
        .unwrap();

    let df = s.json(&["system", "df", "--format", "json"]);
    let (total, active, size, reclaimable) = df_row(&df, "Images");
    assert_eq!((total, active), (4, 1));
    // A layer several images share counts once.
    assert_eq!(size, unique_total);
    let naive: u64 = s
        .json(&["images", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Size"].as_u64().unwrap())
        .sum();
    assert!(naive > size);
    // All but what the container stands on could go.
    assert_eq!(reclaimable, unique_total - base_size);
    let images = df["Images"].as_array().unwrap();
    for i in images {
        let (shared, unique) = (
            i["SharedSize"].as_u64().unwrap(),
            i["UniqueSize"].as_u64().unwrap(),
        );
        assert_eq!(shared + unique, i["Size"].as_u64().unwrap(), "{i}");
    }
    // Active means running, as in Docker; prune keeps stopped ones.
    assert_eq!(df_row(&df, "Containers"), (1, 0, 1000, 0));
    assert_eq!(df_row(&df, "Local Volumes"), (1, 0, 2000, 2000));
    assert_eq!(df["Volumes"][0]["Name"], "vd", "{df}");
    assert_eq!(df["Volumes"][0]["Size"], 2000, "{df}");
    assert_eq!(
        df_row(&df, "Layers"),
        (3, 3, unique_total, unique_total - base_size)
    );
    // Every allocated byte under the root is in exactly one bucket, and
    // the total matches du's count of the root (one file system, each
    // inode once).
    let d = &df["OnDisk"];
    let part = |k: &str| d[k].as_u64().unwrap();
    assert_eq!(
        part("Total"),
        part("LayerContent")
            + part("Metadata")
            + part("Containers")
            + part("Volumes")
            + part("Other"),
        "{d}"
    );
    assert!(part("Volumes") >= 2000, "{d}");
    assert!(part("LayerContent") >= unique_total, "{d}");
    let du_out = Command::new("du")
        .args(["-s", "-x", "-B1"])
        .arg(s.root())
        .output()
        .unwrap();
    let du: u64 = String::from_utf8_lossy(&du_out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(part("Total"), du, "{d} vs du -sxB1 {du}");
    let table = s.ok(&["system", "df"]);
    assert!(table.starts_with("TYPE"), "{table}");
    assert_eq!(table.lines().count(), 7, "{table}");
    assert!(table.contains("\nLocal Volumes "), "{table}");
    assert!(
        table.lines().last().unwrap().starts_with("On disk under"),
        "{table}"
    );

    // prune: the dangling image only; its layer is the kept image's too.
    let out = s.ok(&["system", "prune"]);
    assert!(out.contains(&format!("Deleted: {dangling}")), "{out}");
    assert!(!out.contains(&kept) && !out.contains(&base), "{out}");
    assert!(out.ends_with("Total reclaimed space: 0B"), "{out}");
    assert_eq!(s.images().len(), 3);
    // Nothing dangles any more.
    assert_eq!(s.ok(&["system", "prune"]), "Total reclaimed space: 0B");

    // prune -a: every image no container uses, and their layers.
    let out = s.ok(&["system", "prune", "-a"]);
    assert!(out.contains(&format!("Deleted: {kept}")), "{out}");
    assert!(out.contains("Untagged: other:1"), "{out}");
    assert!(!out.contains(&format!("Deleted: {base}")), "{out}");
    // 1000 + 500 bytes of layer content.
    assert_eq!(unique_total - base_size, 1500);
    assert!(out.ends_with("Total reclaimed space: 1.5kB"), "{out}");
    assert_eq!(layer_sizes(&s).len(), 1);
    let df = s.json(&["system", "df", "--format", "json"]);
    assert_eq!(df_row(&df, "Images"), (1, 1, base_size, 0));
    // The container still works.
    s.in_container("c1", |m| {
        assert_eq!(fs::read(m.join("etc/added")).unwrap().len(), 1000)
    });
}

/// Blobs an interrupted pull left for the next to resume go with
/// `system prune`, except one a pull is using now (it holds a lock on it:
/// here `flock` does, as a pull would).
#[test]
fn prune_removes_partial_downloads_no_pull_is_using() {
    let Some(s) = as_root("overlay2") else { return };
    s.import("other", "other:1", "head -c 500 /dev/zero > o");
    let dir = s.root().join("partial/sha256");
    fs::create_dir_all(&dir).unwrap();
    let (left, busy) = ("a".repeat(64), "b".repeat(64));
    fs::write(dir.join(&left), vec![1u8; 4000]).unwrap();
    fs::write(dir.join(&busy), vec![2u8; 100]).unwrap();
    // Not a name a pull writes: left for the operator.
    fs::write(dir.join("notes"), "x").unwrap();
    let mut holder = Command::new("flock")
        .arg(dir.join(&busy))
        .args(["sleep", "60"])
        .spawn()
        .expect("flock (util-linux)");
    // The lock is taken once `flock` has started its child.
    while !Command::new("flock")
        .args(["-n", "-E", "9"])
        .arg(dir.join(&busy))
        .arg("true")
        .status()
        .is_ok_and(|st| st.code() == Some(9))
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = s.ok(&["system", "prune"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        out.contains(&format!("Deleted partial download: sha256:{left}")),
        "{out}"
    );
    assert!(!out.contains(&busy), "{out}");
    assert!(out.ends_with("Total reclaimed space: 4kB"), "{out}");
    assert!(!dir.join(&left).exists());
    assert!(dir.join(&busy).exists() && dir.join("notes").exists());
    assert_eq!(s.images().len(), 1);
}

/// The container `v` of `base:1`, with a named volume at `/vol`, an
/// anonymous one at `/anon`, a host directory at `/bind`, a read-only
/// volume at `/ro`; returns the host directory.
fn volume_container(s: &Strata) -> PathBuf {
    s.import("rootfs", "base:1", ROOTFS);
    let host = s.host_dir("bound", &[("in-host", "host-side\n")]);
    let bind = format!("{}:/bind", host.display());
    s.ok(&[
        "create",
        "--name",
        "v",
        "-v",
        "named:/vol",
        "-v",
        "/anon",
        "-v",
        &bind,
        "-v",
        "rov:/ro:ro",
        "base:1",
    ]);
    host
}

/// The host directory of volume `name` (`volume inspect`'s Mountpoint).
fn volume_data(s: &Strata, name: &str) -> PathBuf {
    let v = s.json(&["volume", "inspect", name]);
    PathBuf::from(v[0]["Mountpoint"].as_str().unwrap())
}

/// `cp` into and out of a path under a volume or a bind uses the
/// volume's or the host's directory, as Docker and Podman do: never the
/// container's read-write layer, so neither `diff` nor `commit` has it.
#[test]
fn cp_reads_and_writes_volumes_and_binds() {
    let Some(s) = as_root("overlay2") else { return };
    let host = volume_container(&s);
    let anon = s.json(&["inspect", "v"])[0]["Mounts"][1]["Name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (named, anon_data) = (volume_data(&s, "named"), volume_data(&s, &anon));
    let files = s.path("files");
    fs::create_dir(&files).unwrap();
    fs::write(files.join("f"), "to-volume\n").unwrap();
    let f = files.join("f").to_str().unwrap().to_owned();

    s.ok(&["cp", &f, "v:/vol/"]);
    s.ok(&["cp", &f, "v:/vol/renamed"]);
    s.ok(&["cp", &f, "v://anon/./g"]);
    s.ok(&["cp", &f, "v:/bind/from-cp"]);
    // `/volx` is not under `/vol`: it is the container's own.
    s.ok(&["cp", &f, "v:/volx"]);
    assert_eq!(read(named.join("f")), "to-volume\n");
    assert_eq!(read(named.join("renamed")), "to-volume\n");
    assert_eq!(read(anon_data.join("g")), "to-volume\n");
    assert_eq!(read(host.join("from-cp")), "to-volume\n");
    // The mount point itself is the volume's root.
    s.ok(&["cp", &f, "v:/vol"]);
    assert_eq!(read(named.join("f")), "to-volume\n");

    // Out again: from the volume and the bind, which the container's
    // own file system does not have.
    let out = s.path("out");
    fs::create_dir(&out).unwrap();
    let o = |p: &str| out.join(p).to_str().unwrap().to_owned();
    s.ok(&["cp", "v:/vol/renamed", &o("r")]);
    s.ok(&["cp", "v:/bind/in-host", &o("")]);
    s.ok(&["cp", "v:/anon", &o("")]);
    s.ok(&["cp", "v:/vol/.", &o("all")]);
    assert_eq!(read(out.join("r")), "to-volume\n");
    assert_eq!(read(out.join("in-host")), "host-side\n");
    assert_eq!(read(out.join("anon/g")), "to-volume\n");
    assert_eq!(read(out.join("all/renamed")), "to-volume\n");

    // A read-only mount refuses; reading it is fine.
    fs::write(volume_data(&s, "rov").join("ro-file"), "ro\n").unwrap();
    let e = s.err(&["cp", &f, "v:/ro/x"]);
    assert!(e.contains("mounted volume is marked read-only"), "{e}");
    assert!(!volume_data(&s, "rov").join("x").exists());
    s.ok(&["cp", "v:/ro/ro-file", &o("")]);
    assert_eq!(read(out.join("ro-file")), "ro\n");

    // A symlink of the container's own leads into the volume, as it does
    // in the running container (Docker resolves it the same way).
    s.in_container("v", |m| {
        std::os::unix::fs::symlink("/vol", m.join("tovol")).unwrap();
        std::os::unix::fs::symlink("../anon", m.join("srv/toanon")).unwrap();
    });
    s.ok(&["cp", &f, "v:/tovol/via-link"]);
    s.ok(&["cp", &f, "v:/srv/toanon/"]);
    assert_eq!(read(named.join("via-link")), "to-volume\n");
    assert_eq!(read(anon_data.join("f")), "to-volume\n");
    s.ok(&["cp", "v:/tovol/via-link", &o("via-link")]);
    assert_eq!(read(out.join("via-link")), "to-volume\n");
    // Without -L the last symlink is copied as it is.
    s.ok(&["cp", "v:/tovol", &o("the-link")]);
    assert_eq!(
        fs::read_link(out.join("the-link")).unwrap(),
        Path::new("/vol")
    );
    s.ok(&["cp", "-L", "v:/tovol", &o("followed")]);
    assert_eq!(read(out.join("followed/via-link")), "to-volume\n");

    // Neither diff nor commit sees what went into the mounts.
    let diff = s.ok(&["diff", "v"]);
    assert!(diff.lines().any(|l| l == "A /volx"), "{diff}");
    for p in ["/vol/", "/anon/", "/bind/", "/ro/", "via-link", "/srv/f"] {
        assert!(!diff.contains(p), "{p} in the diff: {diff}");
    }
    s.in_container("v", |m| {
        for p in ["vol/f", "vol/renamed", "anon/g", "bind/from-cp"] {
            assert!(!m.join(p).exists(), "{p} in the container's layer");
        }
    });
    s.ok(&["commit", "v", "committed:1"]);
    s.ok(&["create", "--name", "w", "committed:1"]);
    s.in_container("w", |m| {
        assert!(m.join("volx").exists());
        for p in ["vol/f", "vol/renamed", "anon/g", "bind/from-cp"] {
            assert!(!m.join(p).exists(), "{p} committed");
        }
    });
}

/// A symlink inside a volume is resolved inside the volume: one pointing
/// at the host's `/etc`, or climbing out with `..`, never reaches it.
#[test]
fn cp_symlinks_in_a_volume_stay_inside_it() {
    let Some(s) = as_root("overlay2") else { return };
    volume_container(&s);
    let named = volume_data(&s, "named");
    let victim = s.path("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("secret"), "host-secret\n").unwrap();
    std::os::unix::fs::symlink("/etc", named.join("esc")).unwrap();
    std::os::unix::fs::symlink(&victim, named.join("victim")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", named.join("up")).unwrap();
    let f = s.path("f");
    fs::write(&f, "probe\n").unwrap();
    let f = f.to_str().unwrap();
    let probe = "strata-cp-volume-probe";
    let out = s.path("out");
    fs::create_dir(&out).unwrap();
    let o = out.to_str().unwrap();

    let host_etc = Path::new("/etc").join(probe);
    let escaped = |what: &str| {
        let hit = host_etc.exists() || victim.join(probe).exists();
        let _ = fs::remove_file(&host_etc);
        assert!(!hit, "{what} wrote outside the volume");
    };
    // Through the symlinks: nothing there inside the volume.
    for dest in [
        format!("v:/vol/esc/{probe}"),
        format!("v:/vol/victim/{probe}"),
        format!("v:/vol/up/etc/{probe}"),
        format!("v:/vol/up/{}/{probe}", victim.display()),
    ] {
        let _ = s.run(&["cp", f, &dest]);
        escaped(&dest);
    }
    for src in [
        "v:/vol/esc/hostname".to_owned(),
        "v:/vol/victim/secret".to_owned(),
        format!("v:/vol/up{}/secret", victim.display()),
    ] {
        let e = s.err(&["cp", &src, o]);
        assert!(e.contains("no such file"), "{src}: {e}");
    }
    let e = s.err(&["cp", "-L", "v:/vol/esc", o]);
    assert!(e.contains("no such file"), "{e}");
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
    // What the symlinks mean inside the volume is written.
    fs::create_dir(named.join("etc")).unwrap();
    s.ok(&["cp", f, &format!("v:/vol/esc/{probe}")]);
    escaped("a copy through /vol/esc");
    assert_eq!(read(named.join("etc").join(probe)), "probe\n");
    s.ok(&["cp", f, &format!("v:/vol/up/etc/{probe}-2")]);
    assert_eq!(
        read(named.join("etc").join(format!("{probe}-2"))),
        "probe\n"
    );
    assert_eq!(read(victim.join("secret")), "host-secret\n");
    escaped("the last copies");
}

/// A local volume with `type`/`device` options is mounted for the copy,
/// so the copy lands on its device, and unmounted after it.
#[test]
fn cp_mounts_a_volume_with_options_for_the_copy() {
    let Some(s) = as_root("overlay2") else { return };
    s.import("rootfs", "base:1", ROOTFS);
    let device = s.host_dir("device", &[("there", "on the device\n")]);
    s.bind_volume("bv", &device);
    s.ok(&["create", "--name", "c", "-v", "bv:/bv", "base:1"]);
    let f = s.path("f");
    fs::write(&f, "copied\n").unwrap();
    s.ok(&["cp", f.to_str().unwrap(), "c:/bv/f"]);
    assert_eq!(read(device.join("f")), "copied\n");
    let out = s.path("out");
    s.ok(&["cp", "c:/bv/there", out.to_str().unwrap()]);
    assert_eq!(read(&out), "on the device\n");
    let data = volume_data(&s, "bv");
    assert!(!s.is_mounted(&data), "{} left mounted", data.display());
    assert!(!data.join("f").exists());
    s.ok(&["rm", "c"]);
    s.ok(&["volume", "rm", "bv"]);
}
