//! Volumes through the binary: `volume create|ls|inspect|rm|prune`,
//! `create -v` and `--volumes-from`, the lifetimes `rm -v` and prune
//! follow, population from the image, and hostile specs and images.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::PathBuf;

use common::{as_root, require_root, sh, Strata};
use serde_json::Value;

impl Strata {
    /// Imports `base:1`: `/data/f` (owner 1000, dir mode 0750), and the
    /// symlinks `up -> ../../..`, `evil -> /etc/..`, `abs -> /data`.
    fn volume_image(&self) {
        let src = self.path("rootfs");
        fs::create_dir_all(src.join("data/sub")).unwrap();
        fs::create_dir_all(src.join("etc")).unwrap();
        fs::write(src.join("data/f"), "from the image").unwrap();
        symlink("../../..", src.join("up")).unwrap();
        symlink("/etc/..", src.join("evil")).unwrap();
        symlink("/data", src.join("abs")).unwrap();
        sh(&format!(
            "chown 1000:1000 '{0}/data' && chmod 0750 '{0}/data'",
            src.display()
        ));
        self.import_tree(&src, "base:1");
    }

    /// The container's `Mounts`, from `inspect`.
    fn mounts(&self, c: &str) -> Vec<Value> {
        self.json(&["inspect", c])[0]["Mounts"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn data(&self, volume: &str) -> PathBuf {
        self.root().join("volumes").join(volume).join("_data")
    }
}

#[test]
fn volume_commands() {
    let Some(s) = as_root("vfs") else { return };
    assert_eq!(s.ok(&["volume", "create", "v1"]), "v1");
    let anon = s.ok(&["volume", "create"]);
    assert_eq!(anon.len(), 64, "{anon}");
    assert!(anon.bytes().all(|b| b.is_ascii_hexdigit()));
    // Creating an existing volume again returns it, as Docker does.
    assert_eq!(s.ok(&["volume", "create", "v1"]), "v1");
    s.ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=1m",
        "t1",
    ]);
    let v = s.json(&["volume", "inspect", "t1"]);
    assert_eq!(v[0]["Name"], "t1");
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Scope"], "local");
    assert_eq!(v[0]["Options"]["type"], "tmpfs");
    assert_eq!(v[0]["Mountpoint"], s.data("t1").to_str().unwrap(), "{v}");
    assert!(v[0]["CreatedAt"].as_str().unwrap().ends_with('Z'));
    // `inspect` finds volumes too.
    assert_eq!(s.json(&["inspect", "v1"])[0]["Name"], "v1");
    let meta: Value =
        serde_json::from_slice(&fs::read(s.root().join("volumes/v1/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["Driver"], "local");
    let mut want = vec![anon.clone(), "t1".into(), "v1".into()];
    want.sort();
    assert_eq!(s.volume_names(), want);
    assert_eq!(s.ok(&["volume", "rm", "v1", "t1"]), "v1\nt1");
    assert!(s
        .err(&["volume", "rm", "v1"])
        .contains("no such volume: v1"));
    s.ok(&["volume", "rm", "-f", "v1"]);
    assert_eq!(s.volume_names(), [anon]);
}

#[test]
fn bad_names_and_options_create_nothing() {
    let Some(s) = store("vfs") else { return };
    for (bad, why) in [
        ("a/b", "invalid volume name"),
        ("..", "invalid volume name"),
        (".hidden", "invalid volume name"),
        ("_x", "invalid volume name"),
        ("a\u{1}b", "invalid volume name"),
    ] {
        let e = s.err(&["volume", "create", bad]);
        assert!(e.contains(why), "{bad:?}: {e}");
    }
    // Longer than its staging name (`.<name>.creating`) can be: refused
    // by name, before the file system says ENAMETOOLONG.
    for n in [246, 256, 300] {
        let long = "x".repeat(n);
        let e = s.err(&["volume", "create", &long]);
        assert!(e.contains(&format!("{n} bytes, at most 245")), "{e}");
        assert!(!e.contains("too long"), "{e}");
        let spec = format!("{long}:/data");
        let e = s.err(&["create", "-v", &spec, "base:1"]);
        assert!(e.contains("at most 245"), "{e}");
    }
    let longest = "x".repeat(245);
    s.ok(&["volume", "create", &longest]);
    s.ok(&["volume", "rm", &longest]);
    let e = s.err(&["volume", "create", "--opt", "o=size=1m", "v"]);
    assert!(e.contains("volume v: option \"o\" needs"), "{e}");
    let e = s.err(&["volume", "create", "--opt", "bogus=1", "v"]);
    assert!(e.contains("invalid option \"bogus\""), "{e}");
    let e = s.err(&["volume", "create", "--driver", "nosuch", "v"]);
    assert!(e.contains("volume plugin nosuch not found"), "{e}");
    assert!(s.volume_names().is_empty());
    assert!(!s.root().join("a").exists() && !s.root().join("volumes/a").exists());
}

#[test]
fn named_volume_outlives_its_container_and_is_shared() {
    let Some(s) = store("vfs") else { return };
    s.ok(&["create", "--name", "c1", "-v", "shared:/data", "base:1"]);
    // Made on first use, and filled from the image.
    assert_eq!(s.volume_names(), ["shared"]);
    let data = s.data("shared");
    assert_eq!(
        fs::read_to_string(data.join("f")).unwrap(),
        "from the image"
    );
    fs::write(data.join("written"), "by c1").unwrap();
    s.ok(&["create", "--name", "c2", "-v", "shared:/srv:ro", "base:1"]);
    let (m1, m2) = (&s.mounts("c1")[0], &s.mounts("c2")[0]);
    assert_eq!(m1["Name"], "shared");
    assert_eq!(m2["Name"], "shared");
    assert_eq!(m1["Type"], "volume");
    assert_eq!(
        (m1["RW"].as_bool(), m2["RW"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(m1["Destination"], "/data");
    assert_eq!(m2["Destination"], "/srv");
    // One directory behind both mounts: what one writes the other sees.
    assert_eq!(m1["Source"], m2["Source"]);
    assert_eq!(m1["Source"], data.to_str().unwrap());
    let ps = s.json(&["ps", "-a", "--format", "json"]);
    assert_eq!(ps[0]["Mounts"][0]["Name"], "shared");
    // In use, even by a container that never ran; -f does not override.
    for args in [
        &["volume", "rm", "shared"][..],
        &["volume", "rm", "-f", "shared"],
    ] {
        let e = s.err(args);
        assert!(
            e.contains("volume shared is in use by container c1, c2"),
            "{e}"
        );
    }
    s.ok(&["rm", "-v", "c1"]);
    s.ok(&["rm", "c2"]);
    // Named volumes outlive their containers, rm -v or not.
    assert_eq!(s.volume_names(), ["shared"]);
    assert_eq!(fs::read_to_string(data.join("written")).unwrap(), "by c1");
    // A new container gets the data, not the image's copy again.
    fs::remove_file(data.join("f")).unwrap();
    s.ok(&["create", "--name", "c3", "-v", "shared:/data", "base:1"]);
    assert!(!data.join("f").exists());
    s.ok(&["rm", "c3"]);
    s.ok(&["volume", "rm", "shared"]);
    assert!(!s.root().join("volumes/shared").exists());
}

#[test]
fn volumes_from_and_rm_v() {
    let Some(s) = store("vfs") else { return };
    let (host, bind) = host_dir_at_h(&s);
    s.ok(&[
        "create", "--name", "a", "-v", "named:/n", "-v", "/anon", "-v", &bind, "base:1",
    ]);
    let ma = s.mounts("a");
    assert_eq!(ma.len(), 3);
    let anon = ma[1]["Name"].as_str().unwrap().to_owned();
    assert_eq!(anon.len(), 64);
    assert_eq!(ma[2]["Type"], "bind");
    assert_eq!(ma[2]["Source"], host.to_str().unwrap());
    let labels = &s.json(&["volume", "inspect", &anon])[0]["Labels"];
    assert!(
        labels.get("com.docker.volume.anonymous").is_some(),
        "{labels}"
    );

    s.ok(&["create", "--name", "b", "--volumes-from", "a:ro", "base:1"]);
    let mb = s.mounts("b");
    assert_eq!(mb.len(), 3);
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!(x["Source"], y["Source"]);
        assert_eq!(x["Destination"], y["Destination"]);
        assert_eq!(y["RW"], false);
    }
    // -v replaces an inherited mount at the same path.
    s.ok(&[
        "create",
        "--name",
        "c",
        "--volumes-from",
        "a",
        "-v",
        "other:/n",
        "base:1",
    ]);
    let mc = s.mounts("c");
    assert_eq!(mc.len(), 3);
    assert!(mc
        .iter()
        .any(|m| m["Name"] == "other" && m["Destination"] == "/n"));
    s.ok(&["rm", "c"]);

    // b still uses the anonymous volume: rm -v a keeps it.
    s.ok(&["rm", "-v", "a"]);
    assert!(s.volume_names().contains(&anon));
    // The last user gone, rm -v removes it; named volumes and host paths stay.
    s.ok(&["rm", "-v", "b"]);
    let names = s.volume_names();
    assert!(!names.contains(&anon), "{names:?}");
    assert!(names.contains(&"named".to_owned()));
    assert_eq!(fs::read_to_string(host.join("keep")).unwrap(), "host data");
    assert!(s
        .err(&["create", "--volumes-from", "nosuch", "base:1"])
        .contains("no such container: nosuch"));
}

/// `--volumes-from C:rw` never widens a mount C has read-only, and a
/// `:ro` on the consumer narrows a read-write one (moby: `RW = m.RW &&
/// mode`).
#[test]
fn volumes_from_rw_never_widens() {
    let Some(s) = store("vfs") else { return };
    let host = s.host_dir("host", &[]);
    let bind = format!("{}:/h:ro", host.display());
    s.ok(&[
        "create", "--name", "a", "-v", "x:/d:ro", "-v", &bind, "-v", "y:/w", "base:1",
    ]);
    let rw = |c: &str| -> Vec<(String, bool)> {
        s.mounts(c)
            .iter()
            .map(|m| {
                (
                    m["Destination"].as_str().unwrap().to_owned(),
                    m["RW"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let want_a = [
        ("/d".into(), false),
        ("/h".into(), false),
        ("/w".into(), true),
    ];
    assert_eq!(rw("a"), want_a);
    s.ok(&["create", "--name", "b", "--volumes-from", "a:rw", "base:1"]);
    assert_eq!(rw("b"), want_a, "--volumes-from a:rw");
    s.ok(&["create", "--name", "c", "--volumes-from", "a", "base:1"]);
    assert_eq!(rw("c"), want_a, "--volumes-from a");
    s.ok(&["create", "--name", "d", "--volumes-from", "a:ro", "base:1"]);
    assert!(rw("d").iter().all(|(_, rw)| !rw), "{:?}", rw("d"));
    // Through a second hand, too.
    s.ok(&["create", "--name", "e", "--volumes-from", "b:rw", "base:1"]);
    assert_eq!(rw("e"), want_a, "--volumes-from b:rw");
    let modes: Vec<String> = s
        .mounts("e")
        .iter()
        .map(|m| m["Mode"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(modes, ["ro", "ro", "rw"]);
}

#[test]
fn prune_rules() {
    let Some(s) = store("vfs") else { return };
    let (host, bind) = host_dir_at_h(&s);
    s.ok(&[
        "create", "--name", "gone", "-v", "/a1", "-v", &bind, "base:1",
    ]);
    let a1 = s.mounts("gone")[0]["Name"].as_str().unwrap().to_owned();
    s.ok(&["rm", "gone"]); // without -v: the anonymous volume stays
    s.ok(&[
        "create", "--name", "live", "-v", "/a2", "-v", "used:/u", "base:1",
    ]);
    let a2 = s.mounts("live")[0]["Name"].as_str().unwrap().to_owned();
    s.ok(&["volume", "create", "idle"]);
    // Docker ≥ 23: prune takes unused anonymous volumes only.
    let out = s.ok(&["volume", "prune", "-f"]);
    assert!(
        out.contains(&a1) && out.contains("Total volumes removed: 1"),
        "{out}"
    );
    let mut want = vec![a2.clone(), "idle".into(), "used".into()];
    want.sort();
    assert_eq!(s.volume_names(), want);
    // --all: every unused volume; those in use stay.
    let out = s.ok(&["volume", "prune", "--all", "-f"]);
    assert!(
        out.contains("idle") && out.contains("Total volumes removed: 1"),
        "{out}"
    );
    let mut want = vec![a2, "used".into()];
    want.sort();
    assert_eq!(s.volume_names(), want);
    assert_eq!(fs::read_to_string(host.join("keep")).unwrap(), "host data");
}

#[test]
fn population_from_the_image_and_nocopy() {
    let Some(s) = store("overlay2") else { return };
    s.ok(&[
        "create",
        "--name",
        "c",
        "-v",
        "/data",
        "-v",
        "empty:/data/sub:nocopy",
        "base:1",
    ]);
    let m = s.mounts("c");
    let anon = s.data(m[0]["Name"].as_str().unwrap());
    assert_eq!(
        fs::read_to_string(anon.join("f")).unwrap(),
        "from the image"
    );
    assert!(anon.join("sub").is_dir());
    // The directory takes the image's owner and mode.
    let md = fs::metadata(&anon).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (1000, 1000, 0o750)
    );
    assert_eq!(m[1]["Mode"], "rw,nocopy");
    assert_eq!(fs::read_dir(s.data("empty")).unwrap().count(), 0);
    // Through an in-root symlink: abs -> /data.
    s.ok(&["create", "-v", "via:/abs", "base:1"]);
    assert!(s.data("via").join("f").is_file());
    // Nothing there in the image: an empty volume.
    s.ok(&["create", "-v", "fresh:/nothing/here", "base:1"]);
    assert_eq!(fs::read_dir(s.data("fresh")).unwrap().count(), 0);
    // Nothing stays mounted after create.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(s.root().to_str().unwrap()), "{mounts}");
}

#[test]
fn bad_specs_and_escapes_create_nothing() {
    let Some(s) = store("vfs") else { return };
    let missing = format!("{}:/x", s.path("no/such/dir").display());
    for (spec, why) in [
        ("", "empty part"),
        ("v:", "empty part"),
        ("relative", "not absolute"),
        ("v:relative/path", "not absolute"),
        ("v:/a/../etc", "contains `..`"),
        ("v:/", "cannot be `/`"),
        ("v:/data:ro:x", "too many `:`"),
        ("v:/data:bogus", "unknown mode"),
        ("/data:ro", "a mode needs a source"),
        ("bad/name:/data", "invalid volume name"),
        ("v:/up/x", "climbs out of the container root"),
        ("v:/evil", "resolves to the container root"),
        ("/evil", "resolves to the container root"),
        ("v:/data/f", "not a directory in the image"),
        (&missing, "does not exist"),
    ] {
        let e = s.err(&["create", "-v", spec, "base:1"]);
        assert!(e.contains(why), "{spec:?}: {e}");
    }
    let e = s.err(&["create", "-v", "a:/x", "-v", "b:/x", "base:1"]);
    assert!(e.contains("duplicate mount point /x"), "{e}");
    let e = s.err(&["create", "--volumes-from", "c:x", "base:1"]);
    assert!(e.contains("--volumes-from"), "{e}");
    // Nothing made: no volumes, no containers, no driver layers beyond
    // the image's, nothing outside the root.
    assert!(s.volume_names().is_empty(), "{:?}", s.volume_names());
    assert_eq!(s.ok(&["ps", "-a", "--format", "json"]), "[]");
    let layers = fs::read_dir(s.root().join("vfs/dir")).unwrap().count();
    assert_eq!(layers, 1);
    assert!(!s.path("no").exists());
}

/// Volume content is not in the container's layer: `diff`, `commit` and
/// `export` never see it (the store never mounts volumes into the merged
/// view; the runtime does, at run time).
#[test]
fn export_and_commit_leave_volume_content_out() {
    let Some(s) = store("overlay2") else { return };
    s.ok(&["create", "--name", "c", "-v", "v:/data", "base:1"]);
    fs::write(s.data("v").join("secret"), "volume only").unwrap();
    assert_eq!(s.ok(&["diff", "c"]), "");
    let tar = s.path("export.tar");
    s.ok(&["export", "-o", tar.to_str().unwrap(), "c"]);
    let listing = sh(&format!("tar -tf '{}'", tar.display()));
    assert!(listing.contains("data/f"), "{listing}");
    assert!(!listing.contains("secret"), "{listing}");
    let id = s.ok(&["commit", "c", "base:2"]);
    assert!(id.starts_with("sha256:"));
    s.ok(&["create", "--name", "d", "base:2"]);
    let merged = PathBuf::from(s.ok(&["mount", "d"]));
    assert!(merged.join("data/f").exists());
    assert!(!merged.join("data/secret").exists());
    s.ok(&["umount", "d"]);
}

#[test]
fn system_prune_takes_volumes_only_when_asked() {
    let Some(s) = store("vfs") else { return };
    s.ok(&["create", "--name", "gone", "-v", "/a1", "base:1"]);
    let a1 = s.mounts("gone")[0]["Name"].as_str().unwrap().to_owned();
    s.ok(&["rm", "gone"]);
    fs::write(s.data(&a1).join("big"), vec![1u8; 4000]).unwrap();
    s.ok(&["volume", "create", "named"]);
    let out = s.ok(&["system", "prune"]);
    assert!(!out.contains("Deleted Volumes"), "{out}");
    assert!(s.volume_names().contains(&a1));
    let out = s.ok(&["system", "prune", "--volumes"]);
    assert!(out.contains(&format!("Deleted Volumes:\n{a1}\n")), "{out}");
    // 4000 bytes of volume content.
    assert!(out.ends_with("Total reclaimed space: 4kB"), "{out}");
    assert_eq!(s.volume_names(), ["named"]);
}

#[test]
fn open_removes_volume_staging_and_keeps_volumes() {
    let Some(s) = as_root("vfs") else { return };
    s.ok(&["volume", "create", "v"]);
    fs::write(s.data("v").join(".f.tmp"), "data").unwrap();
    let vols = s.root().join("volumes");
    // A create and a remove killed half-way, and a torn record write.
    fs::create_dir_all(vols.join(".w.creating/_data")).unwrap();
    fs::write(vols.join(".w.creating/_data/f"), "x").unwrap();
    fs::create_dir_all(vols.join(".x.removing/_data")).unwrap();
    fs::write(vols.join("v/.meta.json.tmp"), "{").unwrap();
    // `volume ls` only reads: the staging stays for the next command
    // that changes the store, which removes it as it opens the store.
    assert_eq!(s.volume_names(), ["v"]);
    assert!(vols.join(".w.creating").exists());
    s.ok(&["volume", "create", "other"]);
    assert_eq!(s.volume_names(), ["other", "v"]);
    for gone in [".w.creating", ".x.removing", "v/.meta.json.tmp"] {
        assert!(!vols.join(gone).exists(), "{gone} is still there");
    }
    assert_eq!(fs::read(s.data("v").join(".f.tmp")).unwrap(), b"data");
    assert!(vols.join(".lock").exists());
    assert!(s.findings(&[]).is_empty());
}

#[test]
fn check_reports_volume_damage_and_repairs_what_loses_nothing() {
    let Some(s) = store("vfs") else { return };
    let id = s.ok(&["create", "--name", "c", "-v", "used:/data", "base:1"]);
    s.ok(&["volume", "create", "nodata"]);
    s.ok(&["volume", "create", "garbled"]);
    assert!(s.findings(&[]).is_empty());
    let vols = s.root().join("volumes");
    // A volume whose record is lost keeps its data.
    fs::create_dir_all(s.data("lost")).unwrap();
    fs::write(s.data("lost").join("f"), "precious").unwrap();
    fs::remove_dir(s.data("nodata")).unwrap();
    fs::write(vols.join("garbled/meta.json"), "{").unwrap();
    fs::remove_dir_all(vols.join("used")).unwrap();
    let c = format!("c ({id})");
    let want = |lost_repaired: bool| {
        vec![
            ("bad-volume".to_owned(), "volume garbled".to_owned(), false),
            ("bad-volume".into(), "volume lost".into(), lost_repaired),
            ("bad-volume".into(), "volume nodata".into(), false),
            ("missing-volume".into(), c.clone(), false),
        ]
    };
    assert_eq!(s.findings(&[]), want(false));
    assert!(!s.run(&["check"]).status.success());
    assert_eq!(s.findings(&["--repair"]), want(true));
    assert_eq!(
        fs::read_to_string(s.data("lost").join("f")).unwrap(),
        "precious"
    );
    let v = s.json(&["volume", "inspect", "lost"]);
    assert_eq!(v[0]["Driver"], "local", "{v}");
    // What repair cannot fix without losing something stays.
    let left: Vec<String> = s
        .findings(&["--repair"])
        .into_iter()
        .map(|(k, o, _)| format!("{k} {o}"))
        .collect();
    assert_eq!(
        left,
        [
            "bad-volume volume garbled".to_owned(),
            "bad-volume volume nodata".into(),
            format!("missing-volume {c}"),
        ]
    );
    assert!(vols.join("garbled/meta.json").exists());
}

/// A container can leave a set-user-ID root program in a volume. Docker
/// keeps `volumes/` 0701 and `volumes/<name>/` 0755, so a host user who
/// knows the volume's name can run it from `_data`; strata keeps both
/// 0700, and tightens a store whose volume directories are looser (with
/// a warning) when it opens it.
#[test]
fn a_set_user_id_file_in_a_volume_is_out_of_other_users_reach() {
    if !require_root() {
        return;
    }
    let have_setpriv = std::process::Command::new("sh")
        .args(["-c", "command -v setpriv"])
        .output()
        .unwrap()
        .status
        .success();
    if !have_setpriv {
        common::skip(
            "a_set_user_id_file_in_a_volume_is_out_of_other_users_reach",
            "setpriv (util-linux) is not installed",
        );
        return;
    }
    let s = Strata::new("vfs");
    // Only the store's own modes may stand in nobody's way.
    sh(&format!("chmod 0755 '{}'", s.dir.path().display()));
    s.ok(&["volume", "create", "v"]);
    // The store root as loose as it may be, as Docker's is.
    sh(&format!("chmod 0711 '{}'", s.root().display()));
    let suid = s.data("v").join("suid");
    let control = s.path("control");
    for p in [&suid, &control] {
        sh(&format!(
            "cp /bin/true '{0}' && chown 0:0 '{0}' && chmod 04755 '{0}'",
            p.display()
        ));
    }
    let as_nobody = |what: &str, p: &PathBuf| {
        std::process::Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            // Through a shell: setpriv resolves its own command before
            // it drops root.
            .args(if what == "exec" {
                vec!["sh", "-c", "exec \"$0\""]
            } else {
                vec!["stat"]
            })
            .arg(p)
            .output()
            .unwrap()
            .status
            .success()
    };
    // The probe works: nobody runs the same file where it may.
    assert!(as_nobody("stat", &control) && as_nobody("exec", &control));
    let denied = |when: &str| {
        assert!(
            !as_nobody("stat", &suid),
            "{when}: nobody reaches {}",
            suid.display()
        );
        assert!(
            !as_nobody("exec", &suid),
            "{when}: nobody runs {}",
            suid.display()
        );
    };
    denied("a new volume");
    let mode = |p: PathBuf| fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(s.root().join("volumes")), 0o700);
    assert_eq!(mode(s.root().join("volumes/v")), 0o700);

    // Docker's modes: reachable, until the next strata command that
    // changes the store (one that only reads changes no mode).
    sh(&format!(
        "chmod 0701 '{0}/volumes' && chmod 0755 '{0}/volumes/v'",
        s.root().display()
    ));
    assert!(
        as_nobody("exec", &suid),
        "the probe: Docker's modes let nobody in"
    );
    assert!(s.run(&["volume", "ls"]).status.success());
    assert_eq!(mode(s.root().join("volumes/v")), 0o755);
    let warned = s.warnings(&["volume", "create", "w"]);
    assert!(
        warned.contains("other users cannot reach volumes"),
        "{warned}"
    );
    assert_eq!(mode(s.root().join("volumes")), 0o700);
    assert_eq!(mode(s.root().join("volumes/v")), 0o700);
    assert_eq!(mode(s.data("v")), 0o755);
    denied("a store tightened on open");
    let out = s.run(&["volume", "ls"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A store on `driver` with the image `base:1` the volume tests start
/// from, when root (SKIPPED otherwise).
fn store(driver: &'static str) -> Option<Strata> {
    let s = as_root(driver)?;
    s.volume_image();
    Some(s)
}

/// A host directory `host` holding `keep`, and the `-v` spec binding it
/// at `/h`.
fn host_dir_at_h(s: &Strata) -> (PathBuf, String) {
    let host = s.host_dir("host", &[("keep", "host data")]);
    let bind = format!("{}:/h", host.display());
    (host, bind)
}
