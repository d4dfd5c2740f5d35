//! What Docker and Podman cannot take from strata, said as warnings:
//! an image deeper than 125 layers (on `load`, `pull` and `commit`; `flatten`
//! and `commit --squash` make a one-layer copy), and an image whose
//! platform is not the host's (on `create`/`run`, Docker's words). Where
//! a dockerd can start, the same archives show what Docker does.

mod common;
#[path = "common/dockerd.rs"]
mod dockerd;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::path::{Path, PathBuf};

use common::{sh, sha256_of, Strata};
use dockerd::Dockerd;
use fixtures::{host_arch, other_arch};
use serde_json::json;
use strata_registry::testing::{self, Config, Registry};
use strata_test_support::{layer_tar, Entry};

/// A docker-archive in `dir` of an image `tag` for `linux/arch` with
/// `n` layers, layer `i` adding `/f<i>`.
fn archive(dir: &Path, tag: &str, n: usize, arch: &str) -> PathBuf {
    let root = dir.join(tag.replace(':', "-"));
    fs::create_dir_all(&root).unwrap();
    let (mut layers, mut diff_ids, mut history) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let tar = layer_tar(&[(&format!("f{i}"), Entry::File(format!("{i}\n").into_bytes()))]);
        diff_ids.push(sha256_of(&tar));
        fs::write(root.join(format!("{i}.tar")), &tar).unwrap();
        layers.push(format!("{i}.tar"));
        history
            .push(json!({ "created": "2024-01-01T00:00:00Z", "created_by": format!("layer {i}") }));
    }
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": { "Cmd": ["/f0"], "Env": ["KEPT=yes"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    });
    let bytes = serde_json::to_vec(&config).unwrap();
    let name = format!("{}.json", &sha256_of(&bytes)["sha256:".len()..]);
    fs::write(root.join(&name), &bytes).unwrap();
    let manifest = json!([{ "Config": name, "RepoTags": [tag], "Layers": layers }]);
    fs::write(root.join("manifest.json"), manifest.to_string()).unwrap();
    let out = dir.join(format!("{}.tar", tag.replace(':', "-")));
    sh(&format!(
        "tar -C '{}' -cf '{}' .",
        root.display(),
        out.display()
    ));
    out
}

/// Runs strata; returns (stdout, stderr), panicking on failure.
fn both(s: &Strata, args: &[&str]) -> (String, String) {
    let out = s.run(args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "strata {args:?}: {o}{e}");
    (o, e)
}

fn layer_count(s: &Strata, image: &str) -> usize {
    s.json(&["image", "inspect", image])[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .len()
}

const TOO_DEEP: &str = "Docker and Podman cannot run an image deeper than 125 layers";

#[test]
fn images_deeper_than_125_layers_warn_and_flatten() {
    let (s, work) = (Strata::new("vfs"), tempfile::tempdir().unwrap());
    let [deep, fits] =
        [("deep:1", 126), ("fits:1", 125)].map(|(t, n)| archive(work.path(), t, n, host_arch()));

    let (_, err) = both(&s, &["load", "-i", fits.to_str().unwrap()]);
    assert!(!err.contains("warning"), "125 layers warned: {err}");
    let (_, err) = both(&s, &["load", "-i", deep.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "strata: warning: image deep:1 has 126 layers: {TOO_DEEP}; \
             `strata flatten deep:1 NEWNAME` makes a one-layer copy"
        )),
        "{err}"
    );

    // Committing on it warns too: one layer more.
    s.ok(&["create", "--name", "c", "deep:1"]);
    let (_, err) = both(&s, &["commit", "c", "deeper:1"]);
    assert!(
        err.contains("has 127 layers") && err.contains(TOO_DEEP),
        "{err}"
    );

    // flatten: one layer, the whole tree, the same config.
    let (id, err) = both(&s, &["flatten", "deep:1", "flat:1"]);
    assert!(
        id.starts_with("sha256:") && !err.contains("warning"),
        "{id} {err}"
    );
    assert_eq!(layer_count(&s, "flat:1"), 1);
    let flat = &s.json(&["image", "inspect", "flat:1"])[0];
    assert_eq!(flat["Config"]["Cmd"], json!(["/f0"]), "{flat}");
    assert_eq!(flat["Config"]["Env"], json!(["KEPT=yes"]), "{flat}");
    let c = s.ok(&["create", "flat:1"]);
    let merged = PathBuf::from(s.ok(&["mount", &c]));
    for i in [0, 57, 125] {
        assert_eq!(
            fs::read_to_string(merged.join(format!("f{i}"))).unwrap(),
            format!("{i}\n")
        );
    }
    s.ok(&["umount", &c]);

    // commit --squash: the container's whole tree as one layer; the
    // unsquashed step is not left behind.
    let before = s.images().len();
    let (_, err) = both(&s, &["commit", "--squash", "c", "squashed:1"]);
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(layer_count(&s, "squashed:1"), 1);
    assert_eq!(s.images().len(), before + 1, "{:#?}", s.images());
    s.assert_check_clean();

    // What Docker says of the same archives.
    let Some(docker) = Dockerd::start("images_deeper_than_125_layers_warn_and_flatten") else {
        return;
    };
    docker.ok(&["load", "-i", fits.to_str().unwrap()]);
    let out = docker.docker(&["load", "-i", deep.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("max depth exceeded"),
        "docker load of 126 layers: {said}"
    );
}

/// A pull of an image deeper than 125 layers warns as a load does.
#[test]
fn a_pulled_image_deeper_than_125_layers_warns() {
    if !common::require_root() {
        return;
    }
    let reg = match Registry::start(Config::default()) {
        Ok(r) => r,
        Err(why) => return testing::skip(&why),
    };
    let (s, work) = (Strata::new("vfs"), tempfile::tempdir().unwrap());
    let deep = archive(work.path(), "deep:1", 126, host_arch());
    s.ok(&["load", "-i", deep.to_str().unwrap()]);
    let dest = format!("{}/test/deep:1", reg.addr);
    s.ok(&["push", "--tls-verify=false", "deep:1", &dest]);
    s.ok(&["rmi", "deep:1"]);
    let (_, err) = both(&s, &["pull", "-q", "--tls-verify=false", &dest]);
    assert!(
        err.contains(&format!(
            "strata: warning: image {dest} has 126 layers: {TOO_DEEP}"
        )),
        "{err}"
    );
}

#[test]
fn another_platform_warns_as_docker_does() {
    let (s, work) = (Strata::new("vfs"), tempfile::tempdir().unwrap());
    let [other, native] = [("other:1", other_arch()), ("native:1", host_arch())]
        .map(|(t, arch)| archive(work.path(), t, 1, arch));
    s.ok(&["load", "-i", other.to_str().unwrap()]);
    s.ok(&["load", "-i", native.to_str().unwrap()]);
    let (_, err) = both(&s, &["create", "native:1"]);
    assert!(!err.contains("warning"), "{err}");
    let (_, err) = both(&s, &["create", "other:1"]);
    let want = format!(
        "The requested image's platform (linux/{}) does not match the detected host platform \
         (linux/{}) and no specific platform was requested",
        other_arch(),
        host_arch()
    );
    assert!(err.contains(&format!("strata: warning: {want}")), "{err}");

    let Some(docker) = Dockerd::start("another_platform_warns_as_docker_does") else {
        return;
    };
    docker.ok(&["load", "-i", other.to_str().unwrap()]);
    let out = docker.docker(&["create", "--network", "none", "other:1"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "docker create: {said}");
    let theirs: Vec<&str> = said
        .lines()
        .filter_map(|l| l.strip_prefix("WARNING: "))
        .collect();
    assert_eq!(theirs, [want.as_str()], "docker said: {said}");
}
