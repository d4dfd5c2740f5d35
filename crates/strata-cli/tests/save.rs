//! `strata save` against the tools that read its output: skopeo reads
//! the docker-archive, the OCI archive and the OCI layout directory and
//! reports strata's image ID and diffIDs; umoci unpacks the layout into
//! the very tree a container of the image shows. Every blob is checked
//! against its name with sha256sum, and the imported layer comes back
//! byte for byte. On a terminal save draws a progress bar; elsewhere it
//! prints nothing.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::{listing, require_root, save_unpacked, sh, sha256_of, untar, Strata};
use containers::on_terminal;
use fixtures::{
    assert_same_tree, have_tools, last_frame, shows, strings, without_escapes, BUSYBOX_TREE,
    INIT_PATHS,
};
use serde_json::Value;

/// A store holding `busybox:v2`, two layers: an imported busybox root
/// file system (`busybox:base`) and a commit that adds, changes and
/// deletes files.
struct Fixture {
    s: Strata,
    /// The tar `busybox:base` was imported from: its layer, byte for byte.
    base_tar: PathBuf,
    v2: String,
}

fn setup(test: &str) -> Option<Fixture> {
    if !require_root() || !have_tools(test, &["skopeo", "umoci", "busybox"]) {
        return None;
    }
    let s = Strata::new("overlay2");
    let src = s.path("rootfs");
    sh(&format!("set -e; R='{}'; {BUSYBOX_TREE}", src.display()));
    s.import_tree(&src, "busybox:base");
    let base_tar = src.with_extension("tar");
    s.ok(&["create", "--name", "work", "busybox:base"]);
    let m = s.ok(&["mount", "work"]);
    sh(&format!(
        "set -e; cd '{m}'; echo new > etc/added; rm etc/delete-me; chmod 644 etc/motd; \
         echo changed > etc/motd; rm -r var/old; mkdir var/new; echo n > var/new/file"
    ));
    s.ok(&["umount", "work"]);
    let v2 = s.ok(&["commit", "work", "busybox:v2"]);
    Some(Fixture { s, base_tar, v2 })
}

impl Fixture {
    /// `strata save -o <tmp>/<out> --format <format> images...`.
    fn save(&self, out: &str, format: &str, images: &[&str]) -> PathBuf {
        let path = self.s.path(out);
        let mut args = vec!["save", "-o", path.to_str().unwrap(), "--format", format];
        args.extend_from_slice(images);
        self.s.ok(&args);
        path
    }

    /// `strata save -o <dest> --format <format> images...`, which must
    /// fail; returns its stderr.
    fn save_err(&self, dest: &Path, format: &str, images: &[&str]) -> String {
        let mut args = vec!["save", "-o", dest.to_str().unwrap(), "--format", format];
        args.extend_from_slice(images);
        self.s.err(&args)
    }

    /// The image ID and diffIDs `strata image inspect` reports.
    fn inspect(&self, image: &str) -> (String, Vec<String>) {
        let v = &self.s.json(&["image", "inspect", image])[0];
        (
            v["Id"].as_str().unwrap().to_owned(),
            strings(&v["RootFS"]["Layers"]),
        )
    }

    /// A second image on `busybox:base`: `other:1`, sharing its layer.
    fn other(&self) -> String {
        self.s.ok(&["create", "--name", "other", "busybox:base"]);
        let m = self.s.ok(&["mount", "other"]);
        fs::write(Path::new(&m).join("etc/other"), "other\n").unwrap();
        self.s.ok(&["umount", "other"]);
        self.s.ok(&["commit", "other", "other:1"])
    }

    /// Mounts a new container of `image`; returns its merged path.
    fn mount_image(&self, image: &str) -> PathBuf {
        let c = self.s.ok(&["create", image]);
        PathBuf::from(self.s.ok(&["mount", &c]))
    }
}

/// skopeo's view of an image: (config digest, diffIDs from the config).
fn skopeo(source: &str) -> (String, Vec<String>) {
    let manifest: Value =
        serde_json::from_str(&sh(&format!("skopeo inspect --raw '{source}'"))).unwrap();
    let config: Value =
        serde_json::from_str(&sh(&format!("skopeo inspect --config --raw '{source}'"))).unwrap();
    (
        manifest["config"]["digest"].as_str().unwrap().to_owned(),
        strings(&config["rootfs"]["diff_ids"]),
    )
}

/// The member names of a tar, in order.
fn members(tar: &Path) -> Vec<String> {
    sh(&format!("tar -tf '{}'", tar.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The blobs of a layout, each checked against its name with sha256sum.
fn checked_blobs(layout: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let bytes = fs::read(layout.join("blobs/sha256").join(&name)).unwrap();
        assert_eq!(sha256_of(&bytes), format!("sha256:{name}"), "blob {name}");
        out.insert(format!("sha256:{name}"));
    }
    out
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Checks the OCI side of a layout holding `busybox:v2` alone: index
/// entry (Docker 25's annotations, the platform), manifest, config and
/// layers; returns the manifest.
fn check_oci(f: &Fixture, layout: &Path) -> Value {
    let (id, diff_ids) = f.inspect("busybox:v2");
    assert_eq!(
        fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    let entry = &entries[0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "v2"
    );
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "docker.io/library/busybox:v2"
    );
    assert_eq!(entry["platform"]["os"], "linux");
    let config = fs::read(layout.join("blobs/sha256").join(&id[7..])).unwrap();
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(entry["platform"]["architecture"], config["architecture"]);

    let digest = entry["digest"].as_str().unwrap();
    let manifest_bytes = fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap();
    assert_eq!(entry["size"], manifest_bytes.len());
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], id.as_str());
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for (l, d) in layers.iter().zip(&diff_ids) {
        assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(l["digest"], d.as_str());
        let len = fs::metadata(layout.join("blobs/sha256").join(&d[7..]))
            .unwrap()
            .len();
        assert_eq!(l["size"], len);
    }
    // The layer as it was imported, byte for byte; every blob matches
    // its name; nothing else is there.
    assert_eq!(
        fs::read(layout.join("blobs/sha256").join(&diff_ids[0][7..])).unwrap(),
        fs::read(&f.base_tar).unwrap()
    );
    let want: BTreeSet<String> = [id, digest.to_owned()]
        .into_iter()
        .chain(diff_ids)
        .collect();
    assert_eq!(checked_blobs(layout), want);
    manifest
}

#[test]
fn docker_archive_is_what_docker_25_writes() {
    let Some(f) = setup("docker_archive_is_what_docker_25_writes") else {
        return;
    };
    let (id, diff_ids) = f.inspect("busybox:v2");
    assert_eq!(id, f.v2);
    let tar = f.save("d.tar", "docker-archive", &["busybox:v2"]);

    // Blobs first, then the documents that name them.
    let names = members(&tar);
    assert_eq!(
        names[names.len() - 4..],
        ["index.json", "oci-layout", "manifest.json", "repositories"]
    );
    assert_eq!(&names[..2], ["blobs/", "blobs/sha256/"]);
    // Owned by root, mtime 0, 0644/0755.
    let listing = sh(&format!(
        "tar --numeric-owner --full-time -tvf '{}'",
        tar.display()
    ));
    for line in listing.lines() {
        let ok = (line.starts_with("-rw-r--r-- 0/0") || line.starts_with("drwxr-xr-x 0/0"))
            && line.contains("1970-01-01 00:00:00");
        assert!(ok, "{line}");
    }

    let dir = untar(&tar);
    check_oci(&f, &dir);
    let manifest = read_json(&dir.join("manifest.json"));
    let mut layers = Vec::new();
    for d in &diff_ids {
        layers.push(format!("blobs/sha256/{}", &d[7..]));
    }
    assert_eq!(
        manifest,
        serde_json::json!([{
            "Config": format!("blobs/sha256/{}", &id[7..]),
            "RepoTags": ["busybox:v2"],
            "Layers": layers,
        }])
    );
    assert_eq!(
        read_json(&dir.join("repositories")),
        serde_json::json!({ "busybox": { "v2": &diff_ids[1][7..] } })
    );

    // skopeo reads it (manifest.json) and sees strata's image.
    let source = format!("docker-archive:{}", tar.display());
    assert_eq!(skopeo(&source), (id.clone(), diff_ids.clone()));
    let named = format!("{source}:busybox:v2");
    assert_eq!(skopeo(&named), (id, diff_ids));

    // The same images give the same bytes.
    let again = f.save("again.tar", "docker-archive", &["busybox:v2"]);
    assert_eq!(fs::read(&tar).unwrap(), fs::read(&again).unwrap());
}

#[test]
fn oci_archive_is_read_by_skopeo() {
    let Some(f) = setup("oci_archive_is_read_by_skopeo") else {
        return;
    };
    let tar = f.save("o.tar", "oci-archive", &["busybox:v2"]);
    let names = members(&tar);
    assert_eq!(names[names.len() - 2..], ["index.json", "oci-layout"]);
    assert!(!names
        .iter()
        .any(|n| n == "manifest.json" || n == "repositories"));
    check_oci(&f, &untar(&tar));
    let want = f.inspect("busybox:v2");
    assert_eq!(skopeo(&format!("oci-archive:{}", tar.display())), want);
    assert_eq!(skopeo(&format!("oci-archive:{}:v2", tar.display())), want);
}

#[test]
fn oci_dir_unpacks_to_the_containers_tree() {
    let Some(f) = setup("oci_dir_unpacks_to_the_containers_tree") else {
        return;
    };
    let layout = f.save("layout", "oci-dir", &["busybox:v2"]);
    assert_eq!(listing(&layout), ["blobs", "index.json", "oci-layout"]);
    check_oci(&f, &layout);
    assert_eq!(
        skopeo(&format!("oci:{}:v2", layout.display())),
        f.inspect("busybox:v2")
    );

    let bundle = f.s.path("bundle");
    sh(&format!(
        "umoci unpack --image '{}:v2' '{}'",
        layout.display(),
        bundle.display()
    ));
    let merged = f.mount_image("busybox:v2");
    assert_same_tree("umoci unpack", &merged, &bundle.join("rootfs"), INIT_PATHS);

    // An empty directory is fine too.
    let empty = f.s.path("empty");
    fs::create_dir(&empty).unwrap();
    f.save("empty", "oci-dir", &["busybox:v2"]);
    check_oci(&f, &empty);
}

#[test]
fn shared_layers_are_written_once() {
    let Some(f) = setup("shared_layers_are_written_once") else {
        return;
    };
    let other = f.other();
    let (_, v2_layers) = f.inspect("busybox:v2");
    let (_, other_layers) = f.inspect("other:1");
    assert_eq!(v2_layers[0], other_layers[0]);

    let tar = f.save("two.tar", "docker-archive", &["busybox:v2", "other:1"]);
    let names = members(&tar);
    let blobs = names
        .iter()
        .filter(|n| n.starts_with("blobs/sha256/") && n.len() > "blobs/sha256/".len())
        .count();
    // Two configs, two manifests, three distinct layers.
    assert_eq!(blobs, 7, "{names:?}");
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "a member twice: {names:?}");
    let dir = untar(&tar);
    checked_blobs(&dir);
    let manifest = read_json(&dir.join("manifest.json"));
    assert_eq!(manifest.as_array().unwrap().len(), 2);
    assert_eq!(manifest[1]["RepoTags"], serde_json::json!(["other:1"]));
    let source = format!("docker-archive:{}", tar.display());
    assert_eq!(
        skopeo(&format!("{source}:busybox:v2")),
        f.inspect("busybox:v2")
    );
    assert_eq!(skopeo(&format!("{source}:other:1")), f.inspect("other:1"));
    assert_eq!(f.inspect("other:1").0, other);

    let layout = f.save("two", "oci-dir", &["busybox:v2", "other:1"]);
    assert_eq!(checked_blobs(&layout).len(), 7);
    let index = read_json(&layout.join("index.json"));
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["io.containerd.image.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        ["docker.io/library/busybox:v2", "docker.io/library/other:1"]
    );
}

#[test]
fn tags_are_the_ones_the_images_were_named_by() {
    let Some(f) = setup("tags_are_the_ones_the_images_were_named_by") else {
        return;
    };
    f.s.ok(&["tag", "busybox:v2", "quay.io/me/box:7"]);
    // Named by ID (a prefix): untagged, as docker save does.
    let tar = f.save("by-id.tar", "docker-archive", &[&f.v2[7..19]]);
    let dir = untar(&tar);
    assert_eq!(
        read_json(&dir.join("manifest.json"))[0]["RepoTags"],
        Value::Null
    );
    assert!(!dir.join("repositories").exists());
    let index = read_json(&dir.join("index.json"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert!(
        index["manifests"][0].get("annotations").is_none(),
        "{index}"
    );
    assert_eq!(
        skopeo(&format!("docker-archive:{}", tar.display())),
        f.inspect("busybox:v2")
    );

    // Named by two tags: one image, both tags, one index entry each.
    let tar = f.save(
        "tags.tar",
        "docker-archive",
        &["busybox:v2", "quay.io/me/box:7", &f.v2],
    );
    let dir = untar(&tar);
    let manifest = read_json(&dir.join("manifest.json"));
    assert_eq!(manifest.as_array().unwrap().len(), 1);
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["busybox:v2", "quay.io/me/box:7"])
    );
    let top = &f.inspect("busybox:v2").1[1][7..];
    assert_eq!(
        read_json(&dir.join("repositories")),
        serde_json::json!({ "busybox": { "v2": top }, "quay.io/me/box": { "7": top } })
    );
    let index = read_json(&dir.join("index.json"));
    let annotations: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["annotations"])
        .collect();
    assert_eq!(
        annotations,
        [
            &serde_json::json!({
                "org.opencontainers.image.ref.name": "v2",
                "io.containerd.image.name": "docker.io/library/busybox:v2",
            }),
            &serde_json::json!({
                "org.opencontainers.image.ref.name": "7",
                "io.containerd.image.name": "quay.io/me/box:7",
            }),
        ]
    );
}

/// The bytes of the files in a tar: what save counts as its work.
fn content_bytes(tar: &Path) -> u64 {
    let mut a = ::tar::Archive::new(fs::File::open(tar).unwrap());
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().header().size().unwrap())
        .sum()
}

/// On a terminal, save draws a bar of bytes and layers (ending with all
/// the layers, and the total the archive's files make) and clears it;
/// through a pipe it prints nothing. Both write the same archive.
#[test]
fn save_shows_progress_on_a_terminal_only() {
    let test = "save_shows_progress_on_a_terminal_only";
    let Some(f) = setup(test).filter(|_| have_tools(test, &["script"])) else {
        return;
    };
    let tty = f.s.path("tty.tar");
    let screen = on_terminal(&f.s, &["save", "-o", tty.to_str().unwrap(), "busybox:v2"]);
    let frame = last_frame(&screen, "saving");
    assert_eq!((frame.layers_done, frame.layers), (2, 2), "{frame:?}");
    let total = content_bytes(&tty);
    assert!(
        shows(frame.total, total),
        "{frame:?}: the files are {total} bytes"
    );
    // The config and manifests may come after the last layer.
    assert!(
        frame.bytes <= frame.total && shows(frame.bytes, total),
        "{frame:?}"
    );
    let after = &screen[screen.rfind(&frame.text).unwrap() + frame.text.len()..];
    assert!(
        after.contains("\x1b[2K"),
        "the bar is not cleared: {after:?}"
    );
    assert_eq!(
        without_escapes(after).trim(),
        "",
        "save printed more than the bar: {after:?}"
    );

    let piped = f.s.path("piped.tar");
    let out =
        f.s.run(&["save", "-o", piped.to_str().unwrap(), "busybox:v2"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(
        fs::read(&tty).unwrap() == fs::read(&piped).unwrap(),
        "the archives differ"
    );
}

/// Every path of the store with its size and mtime, the lock aside.
fn snapshot(root: &Path) -> String {
    sh(&format!(
        "cd '{}' && find . ! -name lock -printf '%p %y %s %T@\\n' | sort",
        root.display()
    ))
}

#[test]
fn a_failed_save_leaves_no_output_and_the_store_untouched() {
    let Some(f) = setup("a_failed_save_leaves_no_output_and_the_store_untouched") else {
        return;
    };
    let out = f.s.path("out");
    fs::create_dir(&out).unwrap();
    let before = snapshot(&f.s.root());
    for format in ["docker-archive", "oci-archive", "oci-dir"] {
        let target = out.join("x");
        let err = f.save_err(&target, format, &["busybox:v2", "nosuch:1"]);
        assert!(err.contains("no such image: nosuch:1"), "{format}: {err}");
        assert!(listing(&out).is_empty(), "{format}: {:?}", listing(&out));
    }
    assert_eq!(snapshot(&f.s.root()), before);

    // A non-empty directory is refused for oci-dir, and left alone.
    fs::write(out.join("keep"), "keep").unwrap();
    let err = f.save_err(&out, "oci-dir", &["busybox:v2"]);
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(listing(&out), ["keep"]);
    // An archive over a directory is refused.
    let err =
        f.s.err(&["save", "-o", out.to_str().unwrap(), "busybox:v2"]);
    assert!(err.contains("is a directory"), "{err}");
    assert_eq!(listing(&out), ["keep"]);

    // A layer whose content changed since it was stored fails the save,
    // naming it; the file that was there before is kept as it was.
    let target = out.join("keep");
    let chain =
        f.s.json(&["layers", "--format", "json"])
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["Parent"].is_null())
            .map(|l| {
                (
                    l["ChainID"].as_str().unwrap().to_owned(),
                    l["CacheID"].as_str().unwrap().to_owned(),
                )
            })
            .unwrap();
    fs::write(
        f.s.root()
            .join("overlay2")
            .join(&chain.1)
            .join("diff/etc/owned"),
        "MINE\n",
    )
    .unwrap();
    for format in ["docker-archive", "oci-dir"] {
        let dest = if format == "oci-dir" {
            out.join("dir")
        } else {
            target.clone()
        };
        let err = f.save_err(&dest, format, &["busybox:v2"]);
        assert!(err.contains(&chain.0), "{format}: {err}");
        assert_eq!(listing(&out), ["keep"], "{format}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
    }
}

/// Without `-o`, `save` and `export` write to standard output, the same
/// bytes they write to a file; `save | load` through a shell pipe gives
/// another store the image. `oci-dir` still needs a directory.
#[test]
fn save_and_export_write_to_a_pipe() {
    let Some(f) = setup("save_and_export_write_to_a_pipe") else {
        return;
    };
    for args in [&["save", "busybox:v2"][..], &["export", "work"]] {
        let file = f.s.path(&format!("{}.tar", args[0]));
        let mut with_o = args.to_vec();
        with_o.extend(["-o", file.to_str().unwrap()]);
        f.s.ok(&with_o);
        for piped in [args.to_vec(), [args, &["-o", "-"]].concat()] {
            let out = f.s.run(&piped);
            assert!(out.status.success(), "{piped:?}: {out:?}");
            assert!(
                out.stdout == fs::read(&file).unwrap(),
                "{piped:?}: standard output is not what -o writes"
            );
        }
    }

    let other = Strata::new("overlay2");
    let loaded = sh(&format!(
        "{} | {}",
        f.s.command_line(&["save", "busybox:v2"]),
        other.command_line(&["load"])
    ));
    assert_eq!(loaded.trim(), "Loaded image: busybox:v2");
    assert_eq!(
        other.json(&["image", "inspect", "busybox:v2"])[0]["Id"],
        f.v2.as_str()
    );
    other.assert_check_clean();

    let err = f.s.err(&["save", "--format", "oci-dir", "busybox:v2"]);
    assert!(err.contains("oci-dir needs -o"), "{err}");
}

/// Without `-o` on a terminal, `save` and `export` refuse as Docker
/// does, and write nothing there.
#[test]
fn save_and_export_refuse_a_terminal() {
    let test = "save_and_export_refuse_a_terminal";
    let Some(f) = setup(test).filter(|_| have_tools(test, &["script"])) else {
        return;
    };
    for args in [
        &["save", "busybox:v2"][..],
        &["save", "-o", "-", "busybox:v2"],
        &["export", "work"],
    ] {
        let screen = on_terminal(&f.s, args);
        assert_eq!(
            screen.trim(),
            "strata: error: cowardly refusing to save to a terminal. Use the -o flag or redirect",
            "{args:?}"
        );
    }
}

/// `save --compress gzip|zstd` writes each layer compressed, its
/// descriptor naming the compressed blob (Docker's docker-archive lists
/// it in manifest.json too): every blob matches its digest, each layer
/// decompresses to its diffID, skopeo reads and copies the archive with
/// strata's image ID and diffIDs, a fresh store loads it, and the archive
/// is smaller than the uncompressed one.
#[test]
fn compressed_layers_are_read_by_skopeo() {
    let test = "compressed_layers_are_read_by_skopeo";
    let Some(f) = setup(test).filter(|_| have_tools(test, &["gzip", "zstd"])) else {
        return;
    };
    let want = f.inspect("busybox:v2");
    let plain = f.save("plain.tar", "oci-archive", &["busybox:v2"]);
    for (format, compress, transport) in [
        ("oci-archive", "gzip", "oci-archive"),
        ("oci-archive", "zstd", "oci-archive"),
        ("oci-dir", "gzip", "oci"),
        ("docker-archive", "gzip", "docker-archive"),
    ] {
        let case = format!("{format} --compress {compress}");
        let out = f.s.path(&format!("{format}-{compress}"));
        let layout = save_unpacked(&f.s, "busybox:v2", format, &["--compress", compress], &out);
        if format != "oci-dir" {
            assert!(
                fs::metadata(&out).unwrap().len() < fs::metadata(&plain).unwrap().len() * 3 / 4,
                "{case}: not smaller than the uncompressed archive"
            );
        }
        checked_blobs(&layout);
        let index = read_json(&layout.join("index.json"));
        let manifest = read_json(
            &layout
                .join("blobs/sha256")
                .join(&index["manifests"][0]["digest"].as_str().unwrap()[7..]),
        );
        let layers = manifest["layers"].as_array().unwrap();
        for (l, diff_id) in layers.iter().zip(&want.1) {
            assert_eq!(
                l["mediaType"],
                format!("application/vnd.oci.image.layer.v1.tar+{compress}"),
                "{case}"
            );
            let blob = layout
                .join("blobs/sha256")
                .join(&l["digest"].as_str().unwrap()[7..]);
            let unpacked = sh(&format!("{compress} -dc '{}' | sha256sum", blob.display()));
            assert_eq!(
                format!("sha256:{}", unpacked.split_whitespace().next().unwrap()),
                *diff_id,
                "{case}: a layer does not decompress to its diffID"
            );
        }
        if format == "docker-archive" {
            let listed: Vec<String> = layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", &l["digest"].as_str().unwrap()[7..]))
                .collect();
            assert_eq!(
                read_json(&layout.join("manifest.json"))[0]["Layers"],
                serde_json::json!(listed)
            );
        }
        let source = format!("{transport}:{}", out.display());
        assert_eq!(skopeo(&source), want, "{case}");
        let copy = f.s.path(&format!("copy-{format}-{compress}"));
        sh(&format!(
            "skopeo copy -q '{source}' 'oci:{}:c'",
            copy.display()
        ));
        let again = Strata::new("overlay2");
        again.ok(&["load", "-i", out.to_str().unwrap()]);
        assert_eq!(
            again.json(&["image", "inspect", "busybox:v2"])[0]["Id"],
            want.0.as_str(),
            "{case}"
        );
        again.assert_check_clean();
    }
}

/// A sparse file as GNU tar writes one (`--sparse`, in PAX format: 1 TiB
/// apparent, data at its start and in its middle, the rest holes):
/// `import` keeps its holes (on overlay2 a sparse file in the layer, on
/// erofs holes of the layer's image file: a container sees the terabyte,
/// the disk holds a few blocks), and `save` gives the imported tar back
/// byte for byte.
#[test]
fn a_terabyte_sparse_file_imports_as_holes_and_saves_byte_for_byte() {
    let test = "a_terabyte_sparse_file_imports_as_holes_and_saves_byte_for_byte";
    if !require_root() || !fixtures::have_tools(test, &["tar"]) {
        return;
    }
    for driver in ["overlay2", "erofs"] {
        if driver == "erofs" && !common::require_kernel_fs(test, "erofs") {
            continue;
        }
        sparse_terabyte_on(driver);
    }
}

fn sparse_terabyte_on(driver: &'static str) {
    use std::os::unix::fs::{FileExt, MetadataExt};
    const TIB: u64 = 1 << 40;
    let s = Strata::new(driver);
    let src = s.path("src");
    fs::create_dir(&src).unwrap();
    let big = fs::File::create(src.join("big")).unwrap();
    big.set_len(TIB).unwrap();
    big.write_all_at(b"head", 0).unwrap();
    big.write_all_at(b"middle", TIB / 2).unwrap();
    drop(big);
    let tar = s.path("sparse.tar");
    sh(&format!(
        "tar --sparse --format=pax -cf '{}' -C '{}' big",
        tar.display(),
        src.display()
    ));
    let bytes = fs::read(&tar).unwrap();
    assert!(
        bytes.len() < 1 << 20,
        "the tar holds the data, not the holes"
    );
    s.ok(&["import", tar.to_str().unwrap(), "sparse:1"]);

    s.ok(&["create", "--name", "c", "sparse:1"]);
    let merged = PathBuf::from(s.ok(&["mount", "c"]).trim());
    let m = fs::metadata(merged.join("big")).unwrap();
    let f = fs::File::open(merged.join("big")).unwrap();
    let mut buf = [0u8; 6];
    f.read_exact_at(&mut buf, TIB / 2).unwrap();
    drop(f);
    s.ok(&["umount", "c"]);
    assert_eq!(m.len(), TIB, "{driver}");
    // What the store holds on disk: the data, not the holes (erofs
    // counts an image file's blocks by its length, so the store's own
    // files are what is measured).
    let out = sh(&format!("du -s -B1 '{}'", s.root().display()));
    let used: u64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(used < 8 << 20, "{driver}: the store holds {used} bytes");
    if driver == "overlay2" {
        assert!(
            m.blocks() * 512 < 1 << 20,
            "{} bytes allocated",
            m.blocks() * 512
        );
    }
    assert_eq!(&buf, b"middle", "{driver}");

    let blobs = save_unpacked(&s, "sparse:1", "oci-dir", &[], &s.path("saved"));
    let digest = sha256_of(&bytes);
    let blob = blobs.join("blobs/sha256").join(&digest["sha256:".len()..]);
    assert!(
        fs::read(&blob).unwrap() == bytes,
        "{driver}: the saved layer is not the imported tar"
    );
}
