//! `strata load` against what real tools write: a two-layer busybox image
//! built with umoci (gzip layers, a whiteout of a file and of a directory,
//! a mode change), copied by skopeo to a docker-archive, an OCI archive,
//! an OCI layout and zstd layers; the legacy docker-archive and the
//! Docker 25 archive (plain and gzip layers) and zstd layers built by
//! hand from its blobs; multi-platform and nested indexes; skopeo's
//! `dir:` layout and podman's `docker-dir`; whole archives compressed
//! with gzip, zstd, xz and bzip2. Every load
//! must give the image ID and diffIDs the source declares, the tags the
//! source names, and a container whose tree is `umoci unpack`'s. On a
//! terminal load draws a progress bar; elsewhere it prints only the
//! result. When `dockerd` can run here, `docker save` and `docker load`
//! are checked too.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/dockerd.rs"]
mod dockerd;
#[path = "common/fixtures.rs"]
mod fixtures;
#[path = "common/podman.rs"]
mod podman;

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use common::{assert_success, require_root, sh, skip, Strata};
use containers::on_terminal;
use dockerd::Dockerd;
use fixtures::{
    assert_same_tree, have_tools, last_frame, shows, without_escapes, Busybox, Declared,
    CONTAINERD_NAME, INIT_PATHS, REF_NAME,
};
use podman::Podman;

/// A store (overlay2) and the busybox image built in its temp dir, when
/// root and the tools are there.
fn setup(test: &str) -> Option<(Strata, Busybox)> {
    setup_with(test, TOOLS)
}

/// What [`setup`] needs.
const TOOLS: &[&str] = &["umoci", "skopeo", "busybox", "gzip"];

/// [`setup_with`], and a private dockerd to compare with (SKIPPED when
/// it cannot run here).
fn setup_with_docker(test: &str, tools: &[&str]) -> Option<(Strata, Busybox, Dockerd)> {
    let (s, bb) = setup_with(test, tools)?;
    let docker = Dockerd::start(test)?;
    Some((s, bb, docker))
}

/// The same, needing `tools`.
fn setup_with(test: &str, tools: &[&str]) -> Option<(Strata, Busybox)> {
    if !require_root() || !have_tools(test, tools) {
        return None;
    }
    let s = Strata::new("overlay2");
    let work = s.path("fixture");
    fs::create_dir(&work).unwrap();
    let bb = Busybox::build(&work);
    Some((s, bb))
}

fn loaded_id(id: &str) -> String {
    format!("Loaded image ID: {id}")
}

/// A container of `image` shows exactly what `umoci unpack` of `v2`
/// gives, init layer aside.
fn assert_mount_matches_umoci(s: &Strata, bb: &Busybox, image: &str) {
    let merged = s.mount_image(image);
    assert_same_tree(image, &merged, &bb.rootfs("v2"), INIT_PATHS);
}

/// `image` is loaded as `want` declares it, the store checks clean, and
/// its mount matches umoci's unpack.
fn assert_loaded(s: &Strata, bb: &Busybox, image: &str, want: &Declared) {
    s.assert_image(image, want);
    s.assert_check_clean();
    assert_mount_matches_umoci(s, bb, image);
}

/// A docker-archive fixture `archive` that skopeo reads as `want` (so
/// the hand-made archive is what we mean) loads as `name`, and the image
/// is `want` ([`assert_loaded`]).
fn assert_loads_as(s: &Strata, bb: &Busybox, archive: &Path, name: &str, want: &Declared) {
    assert_eq!(&Declared::of_docker_archive(archive), want);
    assert_eq!(s.load(archive, &[]), [format!("Loaded image: {name}")]);
    assert_loaded(s, bb, name, want);
}

#[test]
fn loads_a_skopeo_docker_archive() {
    let Some((s, bb)) = setup("loads_a_skopeo_docker_archive") else {
        return;
    };
    let archive = bb.docker_archive("d.tar", "busybox:v2");
    let want = Declared::of_docker_archive(&archive);
    assert_eq!(want, bb.declared(), "skopeo changed the image");
    let out = s.run(&["load", "-i", archive.to_str().unwrap()]);
    assert_success(&out);
    // skopeo writes docker.io/library/busybox:v2; Docker shows busybox:v2.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: busybox:v2\n"
    );
    // Not on a terminal: no progress bar, nothing on stderr.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_loaded(&s, &bb, "busybox:v2", &want);
    assert_eq!(s.tags_of(&want.id), ["busybox:v2"]);
    assert_eq!(s.layers_json().len(), 2);
    let img = &s.json(&["image", "inspect", "busybox:v2"])[0];
    assert_eq!(img["Config"]["Cmd"], json!(["/bin/sh"]), "{img:#}");
}

#[test]
fn loads_a_skopeo_oci_archive() {
    let Some((s, bb)) = setup("loads_a_skopeo_oci_archive") else {
        return;
    };
    let archive = bb.oci_archive("o.tar", "busybox:v2");
    let want = Declared::by_skopeo(&format!("oci-archive:{}", archive.display()));
    assert_eq!(want, bb.declared());
    assert_eq!(s.load(&archive, &[]), ["Loaded image: busybox:v2"]);
    s.assert_image("busybox:v2", &want);
    assert_eq!(s.tags_of(&want.id), ["busybox:v2"]);
    s.assert_check_clean();
}

#[test]
fn loads_a_skopeo_oci_layout_directory() {
    let Some((s, bb)) = setup("loads_a_skopeo_oci_layout_directory") else {
        return;
    };
    let layout = bb.oci_dir("oci", "busybox:v2");
    let want = Declared::by_skopeo(&format!("oci:{}:busybox:v2", layout.path().display()));
    assert_eq!(want, layout.declared("busybox:v2"));
    assert_eq!(s.load(layout.path(), &[]), ["Loaded image: busybox:v2"]);
    assert_loaded(&s, &bb, "busybox:v2", &want);
}

#[test]
fn loads_zstd_layers() {
    let Some((s, bb)) = setup("loads_zstd_layers") else {
        return;
    };
    let Some(layout) = bb.zstd_dir("zstd", "busybox:zstd") else {
        skip("loads_zstd_layers", "this skopeo cannot write zstd layers");
        return;
    };
    // Other blobs, other compression: the same diffIDs and image ID.
    let want = layout.declared("busybox:zstd");
    assert_eq!(want, bb.declared());
    assert_eq!(s.load(layout.path(), &[]), ["Loaded image: busybox:zstd"]);
    assert_loaded(&s, &bb, "busybox:zstd", &want);
}

/// zstd layers compressed by the `zstd` tool, whatever skopeo can do:
/// the diffIDs and image ID the layout declares, and umoci's tree.
#[test]
fn loads_zstd_layers_made_without_skopeo() {
    let test = "loads_zstd_layers_made_without_skopeo";
    let Some((s, bb)) = setup_with(test, &["umoci", "busybox", "gzip", "zstd"]) else {
        return;
    };
    let layout = bb.zstd_layout("zstd-tool", "zstd-tool");
    let want = layout.declared("busybox:zstd-tool");
    assert_eq!(want, bb.declared());
    for d in layout.manifest("busybox:zstd-tool")["layers"]
        .as_array()
        .unwrap()
    {
        let blob = fs::read(layout.blob(d["digest"].as_str().unwrap())).unwrap();
        assert_eq!(blob[..4], [0x28, 0xb5, 0x2f, 0xfd], "not a zstd frame");
    }
    assert_eq!(
        s.load(layout.path(), &[]),
        ["Loaded image: busybox:zstd-tool"]
    );
    assert_loaded(&s, &bb, "busybox:zstd-tool", &want);
}

#[test]
fn mount_matches_umoci_unpack_on_vfs() {
    if !require_root()
        || !have_tools(
            "mount_matches_umoci_unpack_on_vfs",
            &["umoci", "skopeo", "busybox", "gzip"],
        )
    {
        return;
    }
    let s = Strata::new("vfs");
    let work = s.path("fixture");
    fs::create_dir(&work).unwrap();
    let bb = Busybox::build(&work);
    let layout = bb.oci_dir("oci", "busybox:v2");
    assert_eq!(s.load(layout.path(), &[]), ["Loaded image: busybox:v2"]);
    s.assert_image("busybox:v2", &bb.declared());
    assert_mount_matches_umoci(&s, &bb, "busybox:v2");
}

/// umoci's layout names its images `base` and `v2`: bare tags, which are
/// no image name, so both load untagged (reported by ID); the layer they
/// share is stored once.
#[test]
fn bare_ref_names_load_untagged() {
    let Some((s, bb)) = setup("bare_ref_names_load_untagged") else {
        return;
    };
    let base = bb.layout.declared("base");
    let v2 = bb.declared();
    let mut out = s.load(bb.layout.path(), &[]);
    out.sort();
    let mut want = vec![loaded_id(&base.id), loaded_id(&v2.id)];
    want.sort();
    assert_eq!(out, want);
    s.assert_image(&base.id, &base);
    s.assert_image(&v2.id, &v2);
    assert!(s.tags_of(&base.id).is_empty());
    assert!(s.tags_of(&v2.id).is_empty());
    assert_eq!(s.layers_json().len(), 2, "the shared layer is stored once");
    s.assert_check_clean();
}

/// How an OCI index's annotations name an image: a ref.name with `:` or
/// `/` is a full reference, a bare one is only a tag (no name: untagged),
/// and `io.containerd.image.name` wins over ref.name.
#[test]
fn index_annotations_give_the_tags() {
    let Some((_s, bb)) = setup("index_annotations_give_the_tags") else {
        return;
    };
    let cases: &[(Value, Option<&str>)] = &[
        (json!({}), None),
        (json!({ REF_NAME: "v2" }), None),
        (json!({ REF_NAME: "busybox:v2" }), Some("busybox:v2")),
        (
            json!({ REF_NAME: "docker.io/library/busybox:full" }),
            Some("busybox:full"),
        ),
        (
            json!({ REF_NAME: "registry.example/team/app:1.0" }),
            Some("registry.example/team/app:1.0"),
        ),
        (
            json!({ REF_NAME: "registry.example/team/app" }),
            Some("registry.example/team/app:latest"),
        ),
        (
            json!({ REF_NAME: "v2", CONTAINERD_NAME: "docker.io/library/busybox:named" }),
            Some("busybox:named"),
        ),
        (
            json!({ REF_NAME: "busybox:ref", CONTAINERD_NAME: "docker.io/library/busybox:wins" }),
            Some("busybox:wins"),
        ),
    ];
    let want = bb.declared();
    for (n, (annotations, tag)) in cases.iter().enumerate() {
        let l = bb.layout.copy_to(&bb.dir.join(format!("annotated-{n}")));
        let mut desc = l.descriptor("v2");
        desc["annotations"] = annotations.clone();
        l.set_index(vec![desc]);
        let s = Strata::new("overlay2");
        let out = s.load(l.path(), &[]);
        match tag {
            Some(t) => {
                assert_eq!(out, [format!("Loaded image: {t}")], "{annotations}");
                assert_eq!(s.tags_of(&want.id), [t.to_string()], "{annotations}");
            }
            None => {
                assert_eq!(out, [loaded_id(&want.id)], "{annotations}");
                assert!(s.tags_of(&want.id).is_empty(), "{annotations}");
            }
        }
        s.assert_image(&want.id, &want);
    }
}

#[test]
fn quiet_prints_only_the_ids() {
    let Some((s, bb)) = setup("quiet_prints_only_the_ids") else {
        return;
    };
    let archive = bb.docker_archive("d.tar", "busybox:v2");
    assert_eq!(s.load(&archive, &["-q"]), [bb.declared().id]);
    assert_eq!(s.tags_of(&bb.declared().id), ["busybox:v2"]);
}

/// From standard input, and compressed as a whole (`docker save | gzip`,
/// and the xz and bzip2 that `docker load` reads too), from a file and
/// from standard input.
#[test]
fn loads_from_standard_input_and_compressed() {
    let test = "loads_from_standard_input_and_compressed";
    let Some((s, bb)) = setup(test) else {
        return;
    };
    let archive = bb.docker_archive("d.tar", "busybox:v2");
    assert_eq!(
        s.ok_with_input(&["load"], &archive),
        "Loaded image: busybox:v2"
    );
    s.assert_image("busybox:v2", &bb.declared());

    for (tool, ext) in [
        ("gzip", "gz"),
        ("zstd", "zst"),
        ("xz", "xz"),
        ("bzip2", "bz2"),
    ] {
        if !have_tools(test, &[tool]) {
            continue;
        }
        let packed = bb.dir.join(format!("d.tar.{ext}"));
        sh(&format!(
            "{tool} -c '{}' > '{}'",
            archive.display(),
            packed.display()
        ));
        let s = Strata::new("overlay2");
        assert_eq!(s.load(&packed, &[]), ["Loaded image: busybox:v2"], "{tool}");
        s.assert_image("busybox:v2", &bb.declared());
        let s = Strata::new("overlay2");
        assert_eq!(
            s.ok_with_input(&["load"], &packed),
            "Loaded image: busybox:v2",
            "{tool} on standard input"
        );
        s.assert_check_clean();
        assert_mount_matches_umoci(&s, &bb, "busybox:v2");
    }
}

/// A load reading a pipe spools the archive under `tmp/`; a command that
/// opens the store to change it meanwhile (and so clears `tmp/` of
/// debris) leaves the spool of the live load alone, and the load
/// completes.
#[test]
fn a_store_opened_during_a_load_leaves_its_spool_alone() {
    let Some((s, bb)) = setup("a_store_opened_during_a_load_leaves_its_spool_alone") else {
        return;
    };
    let archive = fs::read(bb.docker_archive("d.tar", "busybox:v2")).unwrap();
    let mut load = s
        .cmd(&["load"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = load.stdin.take().unwrap();
    input.write_all(&archive[..archive.len() / 2]).unwrap();
    let tmp = s.root().join("tmp");
    let spools = || -> Vec<String> {
        fs::read_dir(&tmp)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("load-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while spools().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no spool appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = spools();
    s.ok(&["volume", "create", "meanwhile"]);
    assert_eq!(spools(), before, "the live load's spool was cleared");
    input.write_all(&archive[archive.len() / 2..]).unwrap();
    drop(input);
    let out = load.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Loaded image: busybox:v2"
    );
    assert!(spools().is_empty(), "the spool stayed after the load");
    s.assert_check_clean();
}

/// skopeo's `dir:` layout, with the manifest it copies (OCI) and with a
/// Docker schema 2 one (`--format v2s2`): each loads untagged (the
/// layout names no image), with the image ID and diffIDs skopeo reads
/// from it.
#[test]
fn loads_a_skopeo_dir_layout() {
    // The first store holds the fixture.
    let Some((_fixture, bb)) = setup("loads_a_skopeo_dir_layout") else {
        return;
    };
    for (name, extra) in [("oci", ""), ("v2s2", "--format v2s2")] {
        let dir = bb.dir.join(format!("skopeo-dir-{name}"));
        sh(&format!(
            "skopeo copy -q {extra} '{}' 'dir:{}'",
            bb.source(),
            dir.display()
        ));
        let want = Declared::by_skopeo(&format!("dir:{}", dir.display()));
        assert_eq!(want, bb.declared(), "{name}");
        let s = Strata::new("overlay2");
        assert_eq!(s.load(&dir, &[]), [loaded_id(&want.id)], "{name}");
        assert_loaded(&s, &bb, &want.id, &want);
    }
}

/// The `dir:` layout of `skopeo copy --all` of a multi-platform image:
/// `manifest.json` the list, each platform's manifest beside it as
/// `<hex>.manifest.json`; the host's image loads.
#[test]
fn loads_the_hosts_image_of_a_dir_layout_list() {
    let Some((s, bb)) = setup("loads_the_hosts_image_of_a_dir_layout_list") else {
        return;
    };
    let (l, want) = bb.platform_layout("multi", false);
    let dir = bb.dir.join("dir-list");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let mut list = l.index();
    list["mediaType"] = json!(fixtures::OCI_INDEX);
    fs::write(dir.join("manifest.json"), list.to_string()).unwrap();
    for m in list["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        fs::copy(
            l.blob(d),
            dir.join(format!("{}.manifest.json", fixtures::hex(d))),
        )
        .unwrap();
    }
    for blob in fs::read_dir(l.path().join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        fs::copy(blob.path(), dir.join(blob.file_name())).unwrap();
    }
    assert_eq!(s.load(&dir, &[]), [loaded_id(&want.id)]);
    assert_loaded(&s, &bb, &want.id, &want);
}

/// `podman save --format docker-dir` (skopeo's `dir:` layout with a
/// Docker schema 2 manifest), from a podman of the test's own: what
/// podman holds, strata loads with the same image ID and diffIDs.
#[test]
fn loads_a_podman_docker_dir() {
    let test = "loads_a_podman_docker_dir";
    let Some((s, bb)) = setup_with(test, &["umoci", "skopeo", "busybox", "gzip", "podman"]) else {
        return;
    };
    let podman = Podman::new();
    let archive = bb.docker_archive("d.tar", "busybox:v2");
    podman.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    let want = podman.declared("busybox:v2");
    assert_eq!(want, bb.declared(), "podman changed the image");
    let dir = s.path("podman-docker-dir");
    podman.ok(&[
        "save",
        "--format",
        "docker-dir",
        "-o",
        dir.to_str().unwrap(),
        "busybox:v2",
    ]);
    assert_eq!(s.load(&dir, &[]), [loaded_id(&want.id)]);
    assert_loaded(&s, &bb, &want.id, &want);
}

/// The same image again, from the same archive or another format: the
/// same ID, and no layer unpacked again.
#[test]
fn loading_again_unpacks_nothing_new() {
    let Some((s, bb)) = setup("loading_again_unpacks_nothing_new") else {
        return;
    };
    let docker = bb.docker_archive("d.tar", "busybox:v2");
    let oci = bb.oci_archive("o.tar", "busybox:oci");
    assert_eq!(s.load(&docker, &[]), ["Loaded image: busybox:v2"]);
    let layers = s.layers_json();
    assert_eq!(layers.len(), 2);
    assert_eq!(s.load(&docker, &[]), ["Loaded image: busybox:v2"]);
    assert_eq!(
        s.layers_json(),
        layers,
        "the second load changed the layers"
    );
    assert_eq!(s.load(&oci, &[]), ["Loaded image: busybox:oci"]);
    assert_eq!(s.layers_json(), layers, "the OCI load changed the layers");
    let id = bb.declared().id;
    assert_eq!(s.tags_of(&id), ["busybox:oci", "busybox:v2"]);
    assert_eq!(s.images().len(), 1);
    s.assert_check_clean();
}

/// `reference` is `want` and the store's only image, and the store
/// checks clean.
fn assert_only_image(s: &Strata, reference: &str, want: &Declared) {
    s.assert_image(reference, want);
    let images = s.images();
    assert_eq!(images.len(), 1, "{images:#?}");
    s.assert_check_clean();
}

/// A multi-platform index: this machine's manifest is the one loaded,
/// though another platform's comes first.
#[test]
fn multi_platform_index_picks_the_host() {
    let Some((s, bb)) = setup("multi_platform_index_picks_the_host") else {
        return;
    };
    let (layout, want) = bb.platform_layout("platforms", false);
    assert_eq!(s.load(layout.path(), &[]), [loaded_id(&want.id)]);
    let img = &s.json(&["image", "inspect", &want.id])[0];
    assert_eq!(img["Architecture"], fixtures::host_arch());
    assert_only_image(&s, &want.id, &want);
}

/// index.json -> index -> index -> manifests by platform: followed, the
/// host's chosen, named by the outer descriptor's ref.name.
#[test]
fn nested_index_is_followed() {
    let Some((s, bb)) = setup("nested_index_is_followed") else {
        return;
    };
    let (layout, want) = bb.platform_layout("nested", true);
    assert_eq!(s.load(layout.path(), &[]), ["Loaded image: busybox:nested"]);
    assert_only_image(&s, "busybox:nested", &want);
}

/// The docker-archive of Docker before 25, with its repeated layer
/// stored once behind a symlink inside the archive; and the archive
/// Docker 25 and later write (an OCI layout and a manifest.json in one
/// tar): one image, named once. Each into a store of its own.
#[test]
fn loads_the_archives_of_docker_before_and_since_25() {
    let Some((s, bb)) = setup("loads_the_archives_of_docker_before_and_since_25") else {
        return;
    };
    let (archive, want) = bb.legacy_archive();
    // The top layer applied twice changes nothing more: the mount is
    // umoci's unpack.
    assert_loads_as(&s, &bb, &archive, "busybox:legacy", &want);
    assert_eq!(s.layers_json().len(), 3);

    let s = Strata::new("overlay2");
    let (archive, want) = bb.moby25_archive();
    assert_loads_as(&s, &bb, &archive, "busybox:moby", &want);
    assert_eq!(s.tags_of(&want.id), ["busybox:moby"]);
}

/// The Docker 25 archive with gzip layer blobs (Docker with the
/// containerd image store): `manifest.json`'s `Layers` name compressed
/// blobs, whose digests are not the diffIDs.
#[test]
fn loads_a_docker25_archive_with_gzip_layers() {
    let Some((s, bb)) = setup("loads_a_docker25_archive_with_gzip_layers") else {
        return;
    };
    let (archive, want) = bb.moby25_gzip_archive();
    let list = sh(&format!("tar -tf '{}'", archive.display()));
    for d in bb.layout.manifest("v2")["layers"].as_array().unwrap() {
        let name = format!(
            "blobs/sha256/{}",
            fixtures::hex(d["digest"].as_str().unwrap())
        );
        assert!(list.lines().any(|l| l == name), "{name} not in {list}");
    }
    assert_loads_as(&s, &bb, &archive, "busybox:moby-gzip", &want);
    assert_eq!(s.tags_of(&want.id), ["busybox:moby-gzip"]);
}

/// On a terminal, load draws a bar of bytes and layers (ending at all
/// of both) and clears it before the result; through a pipe, stderr
/// stays empty.
#[test]
fn load_shows_progress_on_a_terminal_only() {
    let test = "load_shows_progress_on_a_terminal_only";
    let Some((s, bb)) = setup(test) else {
        return;
    };
    if !have_tools(test, &["script"]) {
        return;
    }
    let archive = bb.docker_archive("d.tar", "busybox:v2");
    let screen = on_terminal(&s, &["load", "-i", archive.to_str().unwrap()]);
    let frame = last_frame(&screen, "loading");
    assert_eq!((frame.layers_done, frame.layers), (2, 2), "{frame:?}");
    // The layers skopeo wrote are the tars themselves.
    let blobs: u64 = bb.layer_tars().iter().map(|t| t.len() as u64).sum();
    assert_eq!(frame.bytes, frame.total, "{frame:?}");
    assert!(
        shows(frame.total, blobs),
        "{frame:?}: the layers are {blobs} bytes"
    );
    let after = &screen[screen.rfind(&frame.text).unwrap() + frame.text.len()..];
    let (cleared, result) = after
        .split_once("Loaded image: busybox:v2")
        .unwrap_or_else(|| panic!("no result after the bar: {screen:?}"));
    assert!(
        cleared.contains("\x1b[2K"),
        "the bar is not cleared: {after:?}"
    );
    assert_eq!(without_escapes(result).trim(), "", "{screen:?}");
    s.assert_image("busybox:v2", &bb.declared());

    let s = Strata::new("overlay2");
    let out = s.run(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: busybox:v2\n"
    );
}

/// What Docker itself saves loads with the same ID and diffIDs.
#[test]
fn loads_what_docker_saves() {
    let test = "loads_what_docker_saves";
    let Some((s, bb, docker)) = setup_with_docker(test, TOOLS) else {
        return;
    };
    let archive = bb.docker_archive("d.tar", "busybox:v2");
    let loaded = docker.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("busybox:v2"), "{loaded}");
    let want = docker.declared("busybox:v2");
    assert_eq!(want, bb.declared(), "docker changed the image");
    let saved = s.path("docker-saved.tar");
    docker.ok(&["save", "-o", saved.to_str().unwrap(), "busybox:v2"]);
    assert_eq!(s.load(&saved, &[]), ["Loaded image: busybox:v2"]);
    assert_loaded(&s, &bb, "busybox:v2", &want);
}

/// Docker and strata agree on streams: each loads what the other saves
/// to a pipe (strata's layers gzip'd with `--compress gzip`), both load
/// an archive compressed whole with xz and with bzip2 with the same
/// image ID, and both refuse to save to a terminal in the same words.
#[test]
fn docker_agrees_on_streams_and_compressed_archives() {
    let test = "docker_agrees_on_streams_and_compressed_archives";
    let tools = [
        "umoci", "skopeo", "busybox", "gzip", "xz", "bzip2", "script",
    ];
    let Some((s, bb, docker)) = setup_with_docker(test, &tools) else {
        return;
    };
    let want = bb.declared();
    let archive = bb.docker_archive("d.tar", "busybox:v2");
    for tool in ["xz", "bzip2"] {
        let packed = bb.dir.join(format!("d.tar.{tool}"));
        sh(&format!(
            "{tool} -c '{}' > '{}'",
            archive.display(),
            packed.display()
        ));
        let loaded = docker.ok(&["load", "-i", packed.to_str().unwrap()]);
        assert!(loaded.contains("busybox:v2"), "{tool}: {loaded}");
        assert_eq!(docker.declared("busybox:v2"), want, "docker, {tool}");
        docker.ok(&["rmi", "busybox:v2"]);
        let s = Strata::new("overlay2");
        assert_eq!(s.load(&packed, &[]), ["Loaded image: busybox:v2"], "{tool}");
        s.assert_image("busybox:v2", &want);
    }

    s.load(&archive, &[]);
    let loaded = sh(&format!(
        "{} | {} load",
        s.command_line(&["save", "--compress", "gzip", "busybox:v2"]),
        docker.command_line()
    ));
    assert!(loaded.contains("busybox:v2"), "{loaded}");
    assert_eq!(docker.declared("busybox:v2"), want);
    let other = Strata::new("overlay2");
    let loaded = sh(&format!(
        "{} save busybox:v2 | {}",
        docker.command_line(),
        other.command_line(&["load"])
    ));
    assert_eq!(loaded, "Loaded image: busybox:v2");
    other.assert_image("busybox:v2", &want);

    let refusal = |line: String| {
        let out = sh(&format!("script -qec \"{line}\" /dev/null || true"));
        out.replace('\r', "")
            .lines()
            .find_map(|l| {
                l.split_once("cowardly")
                    .map(|(_, rest)| format!("cowardly{rest}"))
            })
            .unwrap_or_else(|| panic!("{line}: no refusal on the terminal: {out:?}"))
    };
    assert_eq!(
        refusal(s.command_line(&["save", "busybox:v2"])),
        refusal(format!("{} save busybox:v2", docker.command_line()))
    );
}

/// What strata saves, Docker loads with the same ID and diffIDs, and
/// runs (when it can run containers here).
#[test]
fn docker_loads_what_strata_saves() {
    let test = "docker_loads_what_strata_saves";
    let Some((s, bb, docker)) = setup_with_docker(test, TOOLS) else {
        return;
    };
    let archive = bb.docker_archive("d.tar", "busybox:v2");
    s.load(&archive, &[]);
    let saved = s.path("strata-saved.tar");
    s.ok(&["save", "-o", saved.to_str().unwrap(), "busybox:v2"]);
    let loaded = docker.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert!(loaded.contains("busybox:v2"), "{loaded}");
    assert_eq!(docker.declared("busybox:v2"), bb.declared());
    let run = docker.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox:v2",
        "cat",
        "/etc/added",
        "/etc/motd",
    ]);
    if run.status.success() {
        assert_eq!(String::from_utf8_lossy(&run.stdout), "new\nhello\n");
    } else {
        eprintln!(
            "note: {test}: docker cannot run containers here: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

/// load → save → load keeps everything: the saved layers are the
/// source's layer tars byte for byte (gzip taken off), and a second store
/// loading the saved archive has the same image ID and diffIDs.
#[test]
fn load_save_load_keeps_the_image_byte_for_byte() {
    let Some((s, bb)) = setup("load_save_load_keeps_the_image_byte_for_byte") else {
        return;
    };
    let want = bb.declared();
    let layout = bb.oci_dir("oci", "busybox:v2");
    assert_eq!(s.load(layout.path(), &[]), ["Loaded image: busybox:v2"]);
    let layers = bb.layer_tars();
    for (format, name) in [
        ("docker-archive", "saved.tar"),
        ("oci-archive", "saved-oci.tar"),
        ("oci-dir", "saved-dir"),
    ] {
        let out = s.path(name);
        let blobs = common::save_unpacked(&s, "busybox:v2", format, &[], &out);
        for (tar, diff) in layers.iter().zip(&want.diff_ids) {
            let blob = blobs.join("blobs/sha256").join(fixtures::hex(diff));
            assert!(
                fs::read(&blob).unwrap() == *tar,
                "{format}: layer {diff} is not the source's tar"
            );
        }
        let again = Strata::new("overlay2");
        let lines = again.load(&out, &[]);
        assert_eq!(lines, ["Loaded image: busybox:v2"], "{format}");
        again.assert_image("busybox:v2", &want);
        again.assert_check_clean();
    }
}
