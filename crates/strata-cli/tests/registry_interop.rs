//! `strata push` and `pull` against the other registry clients, on a real
//! registry (Debian's `docker-registry` on 127.0.0.1, plain HTTP) and the
//! two-layer busybox image umoci builds (see common/fixtures.rs): what
//! `skopeo copy` pushes (OCI and Docker schema 2 manifests, gzip and zstd
//! layers) strata pulls with the image ID and diffIDs skopeo reads back;
//! what strata pushes, skopeo, podman and Docker pull with the image ID
//! and diffIDs strata has. podman keeps its store in the test's temp dir;
//! Docker is a dockerd of the test's own (SKIPPED loudly when it cannot
//! start here).

mod common;
#[path = "common/dockerd.rs"]
mod dockerd;
#[path = "common/fixtures.rs"]
mod fixtures;
#[path = "common/podman.rs"]
mod podman;

use std::process::Command;

use serde_json::Value;

use common::{require_root, sh, Strata};
use dockerd::Dockerd;
use fixtures::{assert_same_tree, have_tools, strings, Busybox, Declared, Layout, INIT_PATHS};
use podman::Podman;
use strata_registry::testing::{self, Config, Registry};

/// A store (overlay2), the busybox image and a plain-HTTP registry, when
/// root and the tools are there.
fn setup(test: &str, tools: &[&str]) -> Option<(Strata, Busybox, Registry)> {
    if !require_root() {
        return None;
    }
    let mut need = vec!["umoci", "skopeo", "busybox", "gzip"];
    need.extend_from_slice(tools);
    if !have_tools(test, &need) {
        return None;
    }
    let reg = match Registry::start(Config::default()) {
        Ok(r) => r,
        Err(why) => {
            testing::skip(&format!("{test}: {why}"));
            return None;
        }
    };
    let s = Strata::new("overlay2");
    let work = s.path("fixture");
    std::fs::create_dir(&work).unwrap();
    let bb = Busybox::build(&work);
    Some((s, bb, reg))
}

/// What skopeo reads from the registry for `reference` (no scheme): the
/// manifest's config digest and the config's diffIDs.
fn skopeo_declared(reference: &str) -> Declared {
    let inspect = |extra: &str| -> Value {
        serde_json::from_str(&sh(&format!(
            "skopeo inspect --tls-verify=false --raw {extra} 'docker://{reference}'"
        )))
        .unwrap()
    };
    let manifest = inspect("");
    let config = inspect("--config");
    Declared {
        id: manifest["config"]["digest"].as_str().unwrap().to_owned(),
        diff_ids: strings(&config["rootfs"]["diff_ids"]),
    }
}

/// What strata says of `image`: its ID and diffIDs.
fn strata_declared(s: &Strata, image: &str) -> Declared {
    let got = &s.json(&["image", "inspect", image])[0];
    Declared {
        id: got["Id"].as_str().unwrap().to_owned(),
        diff_ids: strings(&got["RootFS"]["Layers"]),
    }
}

/// Loads umoci's `v2` into `s` as `busybox:v2` and pushes it to `dest`;
/// returns what strata declares for it and the pushed manifest's digest.
fn load_and_push(s: &Strata, bb: &Busybox, dest: &str) -> (Declared, String) {
    let archive = bb.oci_archive("bb-oci.tar", "busybox:v2");
    s.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    let mine = strata_declared(s, "busybox:v2");
    assert_eq!(mine, bb.declared(), "strata load of umoci's image");
    let out = s.ok(&["push", "--tls-verify=false", "busybox:v2", dest]);
    let digest = out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in {out:?}"))
        .to_owned();
    (mine, digest)
}

/// What skopeo pushes, strata pulls as skopeo reads it back, for an OCI
/// manifest, a Docker schema 2 manifest (skopeo converts the config, so
/// that image has an ID of its own) and zstd layers (when this skopeo
/// writes them); a container of each shows umoci's tree.
#[test]
fn pulls_what_skopeo_pushes() {
    let test = "pulls_what_skopeo_pushes";
    let Some((s, bb, reg)) = setup(test, &[]) else {
        return;
    };
    let cases = [
        ("oci", "--format oci"),
        ("v2s2", "--format v2s2"),
        ("zstd", "--format oci --dest-compress-format zstd"),
    ];
    let mut pulled = 0;
    for (tag, flags) in cases {
        let dest = format!("{}/interop/busybox:{tag}", reg.addr);
        let copy = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "skopeo copy -q --dest-tls-verify=false {flags} '{}' 'docker://{dest}'",
                bb.source()
            ))
            .output()
            .unwrap();
        if !copy.status.success() {
            assert_eq!(tag, "zstd", "skopeo copy {flags}: {copy:?}");
            eprintln!(
                "SKIPPED: {test}: zstd layers (this skopeo cannot write them: {})",
                String::from_utf8_lossy(&copy.stderr).trim()
            );
            continue;
        }
        let want = skopeo_declared(&dest);
        assert_eq!(want.diff_ids, bb.declared().diff_ids, "{dest}: skopeo");
        if tag != "v2s2" {
            assert_eq!(want.id, bb.declared().id, "{dest}: skopeo");
        }
        let id = s.ok(&["pull", "-q", "--tls-verify=false", &dest]);
        assert_eq!(id, want.id, "{dest}");
        s.assert_image(&dest, &want);
        let merged = s.mount_image(&dest);
        assert_same_tree(&dest, &merged, &bb.rootfs("v2"), INIT_PATHS);
        pulled += 1;
    }
    assert!(pulled >= 2);
}

/// What strata pushes, skopeo reads with strata's image ID and diffIDs,
/// and copies into an OCI layout (checking every blob's digest as it
/// goes) that declares the same; the layout's tree is umoci's.
#[test]
fn skopeo_pulls_what_strata_pushes() {
    let test = "skopeo_pulls_what_strata_pushes";
    let Some((s, bb, reg)) = setup(test, &[]) else {
        return;
    };
    let dest = format!("{}/interop/busybox:v2", reg.addr);
    let (mine, digest) = load_and_push(&s, &bb, &dest);
    assert_eq!(skopeo_declared(&dest), mine);
    let raw = sh(&format!(
        "skopeo inspect --tls-verify=false --raw 'docker://{dest}' | sha256sum"
    ));
    assert_eq!(
        format!("sha256:{}", raw.split_whitespace().next().unwrap()),
        digest,
        "the digest push printed is the manifest's"
    );

    let copied = s.path("copied");
    sh(&format!(
        "skopeo copy -q --src-tls-verify=false 'docker://{dest}' 'oci:{}:v2'",
        copied.display()
    ));
    let layout = Layout(copied.clone());
    assert_eq!(layout.declared("v2"), mine);
    let unpacked = s.path("unpacked");
    sh(&format!(
        "umoci unpack --image '{}:v2' '{}'",
        copied.display(),
        unpacked.display()
    ));
    assert_same_tree(
        "skopeo's copy",
        &unpacked.join("rootfs"),
        &bb.rootfs("v2"),
        &[],
    );
}

/// What strata pushes, podman pulls (`--tls-verify=false`) with strata's
/// image ID, diffIDs and manifest digest.
#[test]
fn podman_pulls_what_strata_pushes() {
    let test = "podman_pulls_what_strata_pushes";
    let Some((s, bb, reg)) = setup(test, &["podman"]) else {
        return;
    };
    let dest = format!("{}/interop/busybox:v2", reg.addr);
    let (mine, digest) = load_and_push(&s, &bb, &dest);
    let podman = Podman::new();
    let id = podman.ok(&["pull", "-q", "--tls-verify=false", &dest]);
    assert_eq!(format!("sha256:{id}"), mine.id);
    assert_eq!(podman.declared(&dest), mine);
    let v: Value = serde_json::from_str(&podman.ok(&["image", "inspect", &dest])).unwrap();
    assert_eq!(v[0]["Digest"], digest.as_str(), "{v:#}");
}

/// What strata pushes, Docker pulls (from a dockerd of the test's own,
/// the registry named insecure) with strata's image ID, diffIDs and
/// manifest digest.
#[test]
fn docker_pulls_what_strata_pushes() {
    let test = "docker_pulls_what_strata_pushes";
    let Some((s, bb, reg)) = setup(test, &[]) else {
        return;
    };
    // 127.0.0.0/8 is insecure by default in dockerd; said anyway, so a
    // daemon.json elsewhere cannot change it.
    let Some(docker) = Dockerd::start_with(test, &["--insecure-registry", &reg.addr]) else {
        return;
    };
    let dest = format!("{}/interop/busybox:v2", reg.addr);
    let (mine, digest) = load_and_push(&s, &bb, &dest);
    let out = docker.ok(&["pull", &dest]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert_eq!(docker.declared(&dest), mine);
    let digests = docker.ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", &dest]);
    let want = format!("{}/interop/busybox@{digest}", reg.addr);
    assert!(digests.contains(&want), "{digests}");
}
