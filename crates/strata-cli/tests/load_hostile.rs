//! `strata load` of hostile and broken archives, each built here byte by
//! byte: paths that escape the archive (`../`, absolute, symlinks inside
//! the tar, digests used as paths), missing blobs, digest and size
//! mismatches (gzip, zstd, plain; OCI and the Docker 25 form), malformed
//! JSON, enormous declared sizes, duplicate entries, truncation, and a
//! layer that climbs out of its root.
//!
//! Every one must be refused with a `strata: error:` that names the
//! problem, without a panic, and leave the store as it was: the same
//! images, the same layers (none of a half-loaded image's), no driver
//! layer or metadata left behind, and `strata check` clean. The store
//! holds an image (`keep:1`) beforehand, so "as it was" is not "empty",
//! and some archives share its layer.
//!
//! The keywords asserted on are case-insensitive; `a|b` accepts either.

mod common;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{require_root, sha256_of, Strata};

/// A blob that is not what its descriptor says (its digest or its size).
const DESCRIPTOR: &str = "descriptor";
/// A size refused: the messages say how many bytes.
const SIZE: &str = "bytes|size";
const DUPLICATE: &str = "two entries|duplicate";
const TRUNCATED: &str = "truncated";

/// What an archive entry holds.
#[derive(Clone)]
enum Body {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    /// A header declaring `size` bytes, followed by only `data`, then the
    /// end of the file.
    Truncated {
        size: u64,
        data: Vec<u8>,
    },
}

/// An archive as its entries in order, names written byte for byte (the
/// `tar` crate's path checks would refuse the hostile ones): tests build
/// a good one, then tamper with it.
#[derive(Clone, Default)]
struct Archive {
    entries: Vec<(String, Body)>,
}

impl Archive {
    /// Replaces the entry called `name`, or appends it.
    fn set(&mut self, name: &str, body: Body) -> &mut Self {
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 = body,
            None => self.entries.push((name.to_owned(), body)),
        }
        self
    }

    /// Appends, even when an entry of that name is there.
    fn push(&mut self, name: &str, body: Body) -> &mut Self {
        self.entries.push((name.to_owned(), body));
        self
    }

    fn remove(&mut self, name: &str) -> &mut Self {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| n != name);
        assert!(self.entries.len() < before, "no entry {name}");
        self
    }

    fn data(&self, name: &str) -> &[u8] {
        match self.entries.iter().find(|(n, _)| n == name) {
            Some((_, Body::File(d))) => d,
            _ => panic!("no file {name}"),
        }
    }

    fn json(&self, name: &str) -> Value {
        serde_json::from_slice(self.data(name)).unwrap()
    }

    fn set_json(&mut self, name: &str, v: &Value) -> &mut Self {
        self.set(name, Body::File(serde_json::to_vec(v).unwrap()))
    }

    /// The tar, and the offset of each file's data in it.
    fn tar(&self) -> (Vec<u8>, BTreeMap<String, usize>) {
        let mut out = Vec::new();
        let mut offsets = BTreeMap::new();
        for (name, body) in &self.entries {
            match body {
                Body::File(data) => {
                    out.extend_from_slice(&header(
                        name,
                        tar::EntryType::Regular,
                        data.len() as u64,
                        "",
                    ));
                    offsets.insert(name.clone(), out.len());
                    out.extend_from_slice(data);
                    out.resize(out.len().next_multiple_of(512), 0);
                }
                Body::Dir => out.extend_from_slice(&header(name, tar::EntryType::Directory, 0, "")),
                Body::Symlink(target) => {
                    out.extend_from_slice(&header(name, tar::EntryType::Symlink, 0, target))
                }
                Body::Truncated { size, data } => {
                    out.extend_from_slice(&header(name, tar::EntryType::Regular, *size, ""));
                    out.extend_from_slice(data);
                    return (out, offsets);
                }
            }
        }
        out.extend_from_slice(&[0; 1024]);
        (out, offsets)
    }

    /// [`refused`] as the tar `x.tar`: its error.
    fn refused_as_tar(&self, s: &Strata, keywords: &[&str]) -> String {
        refused(s, &self.file(s, "x.tar"), keywords)
    }

    /// Writes the tar to `s.path(name)`.
    fn file(&self, s: &Strata, name: &str) -> PathBuf {
        let path = s.path(name);
        fs::write(&path, self.tar().0).unwrap();
        path
    }

    /// Writes the entries as a directory tree at `s.path(name)`.
    fn dir(&self, s: &Strata, name: &str) -> PathBuf {
        let root = s.path(name);
        fs::create_dir(&root).unwrap();
        for (entry, body) in &self.entries {
            let path = root.join(entry);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            match body {
                Body::File(data) => fs::write(&path, data).unwrap(),
                Body::Dir => fs::create_dir_all(&path).unwrap(),
                Body::Symlink(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
                Body::Truncated { data, .. } => fs::write(&path, data).unwrap(),
            }
        }
        root
    }
}

/// A ustar header with `name` and `link` copied in as they are.
fn header(name: &str, kind: tar::EntryType, size: u64, link: &str) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    let old = h.as_old_mut();
    assert!(
        name.len() <= old.name.len() && link.len() <= old.linkname.len(),
        "{name} -> {link}: longer than a ustar header holds (is TMPDIR long?)"
    );
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(match kind {
        tar::EntryType::Regular => 0o644,
        _ => 0o755,
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    *h.as_bytes()
}

/// `len` bytes that do not compress and differ with `seed`.
fn noise(seed: u8, len: usize) -> Vec<u8> {
    strata_test_support::xorshift_bytes(
        0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed).wrapping_mul(0x2545_f491_4f6c_dd1d),
        len,
    )
}

/// A small layer: `etc/layer-<seed>` with 8 KiB of noise.
fn layer(seed: u8) -> Vec<u8> {
    let mut a = Archive::default();
    a.set("etc/", Body::Dir)
        .set(&format!("etc/layer-{seed}"), Body::File(noise(seed, 8192)));
    a.tar().0
}

/// A layer with one entry named `name`.
fn layer_with(name: &str) -> Vec<u8> {
    let mut a = Archive::default();
    a.set(name, Body::File(b"x\n".to_vec()));
    a.tar().0
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn config_for(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": diff_ids.iter().map(|_| json!({ "created_by": "test" })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// The first 12 hex digits of a digest: enough to say an error names it.
fn short(digest: &str) -> &str {
    &fixtures::hex(digest)[..12]
}

fn blob(digest: &str) -> String {
    format!("blobs/sha256/{}", fixtures::hex(digest))
}

/// An image: its layer tars, their diffIDs, its config and ID.
struct Image {
    layers: Vec<Vec<u8>>,
    diff_ids: Vec<String>,
    config: Vec<u8>,
    id: String,
}

impl Image {
    /// An image of the layers `layer(seed)` for each seed (seed 0 is the
    /// layer of `keep:1`).
    fn of(seeds: &[u8]) -> Image {
        Image::with_layers(seeds.iter().map(|s| layer(*s)).collect())
    }

    fn with_layers(layers: Vec<Vec<u8>>) -> Image {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256_of(l)).collect();
        let config = config_for(&diff_ids);
        Image {
            id: sha256_of(&config),
            layers,
            diff_ids,
            config,
        }
    }

    fn config_name(&self) -> String {
        format!("{}.json", fixtures::hex(&self.id))
    }

    /// As a docker-archive: `manifest.json` and the config first (as a
    /// streaming reader likes it), then `layer<n>/layer.tar`, tagged
    /// `hostile:1`.
    fn docker(&self) -> Archive {
        let mut a = Archive::default();
        let names: Vec<String> = (0..self.layers.len())
            .map(|n| format!("layer{n}/layer.tar"))
            .collect();
        a.set_json(
            "manifest.json",
            &json!([{ "Config": self.config_name(), "RepoTags": ["hostile:1"], "Layers": names }]),
        );
        a.set(&self.config_name(), Body::File(self.config.clone()));
        for (n, l) in self.layers.iter().enumerate() {
            a.set(&format!("layer{n}/"), Body::Dir);
            a.set(&names[n], Body::File(l.clone()));
        }
        a
    }

    /// As an OCI layout (layers gzip'd when `gzip`), named `hostile:1`.
    fn oci(&self, gzip_layers: bool) -> Oci {
        match gzip_layers {
            true => self.oci_with("+gzip", |l| gzip(l, 6)),
            false => self.oci_with("", <[u8]>::to_vec),
        }
    }

    /// As an OCI layout whose layer blobs are `compress(tar)`, of media
    /// type `tar<suffix>`, named `hostile:1`.
    fn oci_with(&self, suffix: &str, compress: impl Fn(&[u8]) -> Vec<u8>) -> Oci {
        let mut a = Archive::default();
        a.set(
            "oci-layout",
            Body::File(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        );
        a.set("index.json", Body::File(Vec::new()));
        a.set("blobs/", Body::Dir).set("blobs/sha256/", Body::Dir);
        let config = descriptor(fixtures::OCI_CONFIG, &self.config);
        let mut layers = Vec::new();
        let mut blobs = Vec::new();
        for l in &self.layers {
            let data = compress(l);
            layers.push(descriptor(
                &format!("{}{suffix}", fixtures::OCI_LAYER),
                &data,
            ));
            blobs.push(data);
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": fixtures::OCI_MANIFEST,
            "config": config,
            "layers": layers,
        });
        let mut o = Oci {
            archive: a,
            manifest: Value::Null,
        };
        o.set_manifest(manifest);
        o.archive.set(
            &blob(&sha256_of(&self.config)),
            Body::File(self.config.clone()),
        );
        for (d, data) in layers.iter().zip(blobs) {
            o.archive
                .set(&blob(d["digest"].as_str().unwrap()), Body::File(data));
        }
        o
    }
}

impl Oci {
    /// The Docker 25 form of the layout: a `manifest.json` beside it
    /// naming the config and the layers by their `blobs/sha256/<hex>`
    /// paths, tagged `hostile:1`.
    fn docker25(&self) -> Archive {
        let mut a = self.archive.clone();
        let layers: Vec<String> = (0..self.manifest["layers"].as_array().unwrap().len())
            .map(|n| blob(&self.layer(n)))
            .collect();
        a.set_json(
            "manifest.json",
            &json!([{ "Config": blob(&self.config()), "RepoTags": ["hostile:1"], "Layers": layers }]),
        );
        a
    }
}

impl Oci {
    /// The same image as skopeo's `dir:` layout: `version`,
    /// `manifest.json` the manifest itself, every other blob by its bare
    /// hex.
    fn dir_layout(&self) -> Archive {
        let mut a = Archive::default();
        a.set(
            "version",
            Body::File(b"Directory Transport Version: 1.1\n".to_vec()),
        );
        a.set_json("manifest.json", &self.manifest);
        for (name, body) in &self.archive.entries {
            if let (Some(hex), Body::File(_)) = (name.strip_prefix("blobs/sha256/"), body) {
                if !hex.is_empty() && format!("sha256:{hex}") != self.manifest_digest() {
                    a.set(hex, body.clone());
                }
            }
        }
        a
    }
}

/// `data` compressed by the `zstd` tool, followed by a skippable frame
/// (which decoders pass over, RFC 8878 section 3.1.2) holding `pad`.
fn zstd(data: &[u8], pad: &[u8]) -> Vec<u8> {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    fs::write(tmp.path(), data).unwrap();
    let out = Command::new("zstd")
        .args(["-q", "-c"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "zstd failed");
    let mut z = out.stdout;
    z.extend_from_slice(&0x184d_2a50u32.to_le_bytes());
    z.extend_from_slice(&(pad.len() as u32).to_le_bytes());
    z.extend_from_slice(pad);
    z
}

fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256_of(data), "size": data.len() })
}

/// An OCI layout being tampered with: its manifest is kept at hand, and
/// replacing it keeps the index pointing at it.
#[derive(Clone)]
struct Oci {
    archive: Archive,
    manifest: Value,
}

impl Oci {
    fn digest(&self, at: &str) -> String {
        self.manifest.pointer(at).unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn layer(&self, n: usize) -> String {
        self.digest(&format!("/layers/{n}"))
    }

    fn config(&self) -> String {
        self.digest("/config")
    }

    fn manifest_digest(&self) -> String {
        self.index()["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn index(&self) -> Value {
        self.archive.json("index.json")
    }

    fn set_index(&mut self, index: &Value) {
        self.archive.set_json("index.json", index);
    }

    /// Stores `manifest` as a blob (in the old one's place) and points
    /// the index at it.
    fn set_manifest(&mut self, manifest: Value) {
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let desc = descriptor(fixtures::OCI_MANIFEST, &bytes);
        if !self.manifest.is_null() {
            let old = blob(&self.manifest_digest());
            let at = self
                .archive
                .entries
                .iter()
                .position(|(n, _)| *n == old)
                .unwrap();
            self.archive.entries[at] = (blob(desc["digest"].as_str().unwrap()), Body::File(bytes));
        } else {
            self.archive
                .set(&blob(desc["digest"].as_str().unwrap()), Body::File(bytes));
        }
        let mut desc = desc;
        desc["annotations"] = json!({ fixtures::REF_NAME: "hostile:1" });
        self.set_index(&json!({ "schemaVersion": 2, "manifests": [desc] }));
        self.manifest = manifest;
    }

    /// Stores `config` as the image's config blob and points the manifest
    /// at it.
    fn set_config(&mut self, config: &[u8]) {
        self.archive.remove(&blob(&self.config()));
        let desc = descriptor(fixtures::OCI_CONFIG, config);
        self.archive.set(
            &blob(desc["digest"].as_str().unwrap()),
            Body::File(config.to_vec()),
        );
        let mut m = self.manifest.clone();
        m["config"] = desc;
        self.set_manifest(m);
    }
}

/// A store holding `keep:1` (the layer `layer(0)`), when root.
fn store() -> Option<Strata> {
    store_on("overlay2")
}

/// [`store`] on `driver`.
fn store_on(driver: &'static str) -> Option<Strata> {
    if !require_root() {
        return None;
    }
    let s = Strata::new(driver);
    let keep = s.path("keep.tar");
    fs::write(&keep, layer(0)).unwrap();
    s.ok(&["import", keep.to_str().unwrap(), "keep:1"]);
    Some(s)
}

/// What a refused load must leave alone.
#[derive(Debug, PartialEq)]
struct Snapshot {
    images: Value,
    layers: Value,
    files: Vec<String>,
}

fn snapshot(s: &Strata) -> Snapshot {
    let root = s.root();
    let mut files = Vec::new();
    for dir in [
        "overlay2",
        "overlay2/l",
        "image/overlay2/imagedb/content/sha256",
        "image/overlay2/imagedb/metadata/sha256",
        "image/overlay2/layerdb/sha256",
        "containers",
    ] {
        if let Ok(entries) = fs::read_dir(root.join(dir)) {
            for e in entries {
                files.push(format!(
                    "{dir}/{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    files.sort();
    files.push(
        fs::read_to_string(root.join("image/overlay2/repositories.json")).unwrap_or_default(),
    );
    Snapshot {
        images: s.json(&["images", "--format", "json"]),
        layers: s.json(&["layers", "--format", "json"]),
        files,
    }
}

/// Runs `cmd`, killing it after two minutes: a loader that hangs on a
/// hostile archive fails the test rather than the whole run.
fn bounded(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().unwrap()));
    let stderr = pipe(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("load did not finish in two minutes");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Loads `input`, and asserts it is refused cleanly: an exit status of
/// 1-ish (no panic, no signal), `strata: error:` with every keyword on
/// stderr, and the store as it was.
fn refused(s: &Strata, input: &Path, keywords: &[&str]) -> String {
    let before = snapshot(s);
    let out = bounded(s.cmd(&["load", "-i", input.to_str().unwrap()]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a hostile archive was loaded: {stdout}{stderr}"
    );
    assert!(
        out.status.code().is_some() && out.status.code() != Some(101),
        "load crashed ({}): {stderr}",
        out.status
    );
    assert!(stderr.contains("strata: error:"), "no error line: {stderr}");
    eprintln!("{}: {}", input.display(), stderr.trim());
    let lower = stderr.to_lowercase();
    for k in keywords {
        assert!(
            k.split('|').any(|alt| lower.contains(&alt.to_lowercase())),
            "the error does not say {k:?}: {stderr}"
        );
    }
    assert_eq!(
        snapshot(s),
        before,
        "a refused load changed the store ({stderr})"
    );
    s.assert_check_clean();
    stderr.into_owned()
}

/// `keep:1` still has its layer's content.
fn keep_is_intact(s: &Strata) {
    let merged = s.mount_image("keep:1");
    assert_eq!(
        fs::read(merged.join("etc/layer-0")).unwrap(),
        noise(0, 8192)
    );
}

// ---- depth -------------------------------------------------------------

/// An image of `depth` layers, layer `n` adding `opt/layer-<n>`.
fn deep(depth: usize) -> Image {
    Image::with_layers(
        (0..depth)
            .map(|n| layer_with(&format!("opt/layer-{n}")))
            .collect(),
    )
}

/// Deeper than Docker goes (125) but within overlay's 500: it loads, a
/// container of it shows every layer, a commit on it works, and save
/// then load into a fresh store keeps its identity.
#[test]
fn loads_an_image_130_layers_deep() {
    let Some(s) = store() else { return };
    let image = deep(130);
    s.ok(&[
        "load",
        "-i",
        image.docker().file(&s, "deep.tar").to_str().unwrap(),
    ]);
    let merged = s.mount_image("hostile:1");
    let names = common::listing(&merged.join("opt"));
    let mut want: Vec<String> = (0..130).map(|n| format!("layer-{n}")).collect();
    want.sort();
    assert_eq!(names, want);
    s.ok(&["create", "--name", "c", "hostile:1"]);
    let committed = s.ok(&["commit", "c", "deeper:1"]);
    let inspect = s.json(&["image", "inspect", "deeper:1"]);
    assert_eq!(
        inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(),
        131
    );
    let saved = s.path("deeper.tar");
    s.ok(&["save", "-o", saved.to_str().unwrap(), "deeper:1"]);
    let other = Strata::new("overlay2");
    other.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(
        other.json(&["image", "inspect", "deeper:1"])[0]["Id"],
        committed.as_str()
    );
}

/// Past what one overlay mount stacks (500 lower layers under the top
/// layer's own): refused at load, naming the limit, rather than loaded
/// and never mountable.
#[test]
fn refuses_an_image_deeper_than_overlay_mounts() {
    let Some(s) = store() else { return };
    let image = deep(502);
    refused(&s, &image.docker().file(&s, "too-deep.tar"), &["500"]);
}

/// The kernel stacks 500 lower layers under one upper, and a container's
/// read-write layer is that upper over its init layer and the image's: a
/// 499-layer image's container is exactly 500 lowers and mounts, showing
/// every layer; a 500-layer image's container is refused, saying why.
#[test]
fn a_container_stacks_up_to_the_kernels_500_lower_layers() {
    let Some(s) = store() else { return };
    stacks_up_to_500_lower_layers(&s);
}

/// [`a_container_stacks_up_to_the_kernels_500_lower_layers`] on erofs,
/// where each of the 499 layers is an image of its own, mounted (file
/// backed) under the container's overlay. Each layer leaves out `opt/`:
/// writing its image looks the directory up below, which mounts only the
/// layer just below (mounting every layer below, as it once did, made
/// loading this image 125,000 mounts and a minute and a half).
#[test]
fn a_container_stacks_up_to_the_kernels_500_lower_layers_on_erofs() {
    let test = "a_container_stacks_up_to_the_kernels_500_lower_layers_on_erofs";
    if !common::require_kernel_fs(test, "erofs") {
        return;
    }
    let Some(s) = store_on("erofs") else { return };
    stacks_up_to_500_lower_layers(&s);
}

/// Loads a 499-layer image and a 500-layer one into `s`: a container of
/// the first shows every layer; one of the second is refused.
fn stacks_up_to_500_lower_layers(s: &Strata) {
    let at_limit = deep(499).docker().file(s, "d499.tar");
    s.ok(&["load", "-i", at_limit.to_str().unwrap()]);
    s.ok(&["create", "--name", "c499", "hostile:1"]);
    let merged = PathBuf::from(s.ok(&["mount", "c499"]).trim());
    let layers = fs::read_dir(merged.join("opt")).unwrap().count();
    s.ok(&["umount", "c499"]);
    assert_eq!(layers, 499, "layers seen in the container");
    s.ok(&["rm", "c499"]);
    let past = deep(500).docker().file(s, "d500.tar");
    s.ok(&["load", "-i", past.to_str().unwrap()]);
    let err = s.err(&["create", "--name", "c500", "hostile:1"]);
    assert!(err.contains("501 lower layers"), "{err}");
    assert!(err.contains("at most 500"), "{err}");
    assert_eq!(s.ok(&["ps", "-a", "--format", "json"]).trim(), "[]");
}

// ---- paths that leave the archive -------------------------------------

#[test]
fn refuses_config_path_with_dotdot() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let mut a = img.docker();
    let mut m = a.json("manifest.json");
    m[0]["Config"] = json!("../evil.json");
    a.set_json("manifest.json", &m);
    a.refused_as_tar(&s, &["../evil.json"]);
}

#[test]
fn refuses_layer_path_with_dotdot() {
    let Some(s) = store() else { return };
    let mut a = Image::of(&[1, 2]).docker();
    let mut m = a.json("manifest.json");
    m[0]["Layers"][1] = json!("layer1/../../layer1/layer.tar");
    a.set_json("manifest.json", &m);
    a.refused_as_tar(&s, &["layer1/../../layer1/layer.tar"]);
}

/// The absolute path names a good layer outside the archive: a loader
/// that opens it would succeed.
#[test]
fn refuses_absolute_layer_path() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let outside = s.path("outside.tar");
    fs::write(&outside, &img.layers[1]).unwrap();
    let mut a = img.docker();
    a.remove("layer1/layer.tar");
    let mut m = a.json("manifest.json");
    m[0]["Layers"][1] = json!(outside.to_str().unwrap());
    a.set_json("manifest.json", &m);
    a.refused_as_tar(&s, &[outside.to_str().unwrap()]);
}

/// `evil -> ../../etc` and `Layers: ["evil/passwd"]`: the class of
/// CVE-2014-6407 and CVE-2014-9356 (`docker load` following links in the
/// archive out of it).
#[test]
fn refuses_symlink_entry_escaping_the_archive() {
    let Some(s) = store() else { return };
    let mut a = Image::of(&[1]).docker();
    a.push("evil", Body::Symlink("../../etc".into()));
    let mut m = a.json("manifest.json");
    m[0]["Layers"][0] = json!("evil/passwd");
    a.set_json("manifest.json", &m);
    a.refused_as_tar(&s, &["evil"]);
}

/// Symlink entries to a directory outside holding a good layer, by an
/// absolute and by a relative target: a loader that follows either would
/// succeed.
#[test]
fn refuses_symlink_entry_to_a_layer_outside() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let outside = s.path("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("layer.tar"), &img.layers[1]).unwrap();
    let relative = format!(
        "{}{}",
        "../".repeat(12),
        outside.to_str().unwrap().trim_start_matches('/')
    );
    for (n, target) in [outside.to_str().unwrap().to_owned(), relative]
        .into_iter()
        .enumerate()
    {
        let mut a = img.docker();
        a.remove("layer1/layer.tar");
        a.push("evil", Body::Symlink(target));
        let mut m = a.json("manifest.json");
        m[0]["Layers"][1] = json!("evil/layer.tar");
        a.set_json("manifest.json", &m);
        refused(&s, &a.file(&s, &format!("x{n}.tar")), &["evil"]);
    }
}

/// The config behind a symlink entry to a file outside with the right
/// content.
#[test]
fn refuses_config_symlink_to_a_file_outside() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1]);
    let outside = s.path("outside.json");
    fs::write(&outside, &img.config).unwrap();
    let mut a = img.docker();
    a.remove(&img.config_name());
    a.push(
        "config.json",
        Body::Symlink(outside.to_str().unwrap().into()),
    );
    let mut m = a.json("manifest.json");
    m[0]["Config"] = json!("config.json");
    a.set_json("manifest.json", &m);
    a.refused_as_tar(&s, &["config.json"]);
}

#[test]
fn refuses_symlink_loop() {
    let Some(s) = store() else { return };
    let mut a = Image::of(&[1]).docker();
    a.push("loop1", Body::Symlink("loop2".into()));
    a.push("loop2", Body::Symlink("loop1".into()));
    let mut m = a.json("manifest.json");
    m[0]["Layers"][0] = json!("loop1");
    a.set_json("manifest.json", &m);
    a.refused_as_tar(&s, &["loop"]);
}

/// Digests are not paths: `sha256:../../x`, too short, or not hex, in
/// index.json and in the manifest, in a tar and in a directory.
#[test]
fn refuses_digests_that_are_not_sha256_hex() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1]);
    let bad = [
        "sha256:../../../../etc/passwd".to_owned(),
        "sha256:abc".to_owned(),
        format!("sha256:{}", "g".repeat(64)),
        format!("sha256:{}/x", "0".repeat(62)),
    ];
    for (n, digest) in bad.iter().enumerate() {
        // The error names the bad value, or at least says it is a digest.
        let named = format!("digest|{}", &digest["sha256:".len()..]);
        let mut o = img.oci(false);
        let mut index = o.index();
        index["manifests"][0]["digest"] = json!(digest);
        o.set_index(&index);
        refused(&s, &o.archive.file(&s, &format!("index{n}.tar")), &[&named]);
        refused(&s, &o.archive.dir(&s, &format!("index{n}")), &[&named]);

        let mut o = img.oci(false);
        let mut m = o.manifest.clone();
        m["layers"][0]["digest"] = json!(digest);
        o.set_manifest(m);
        refused(&s, &o.archive.file(&s, &format!("layer{n}.tar")), &[&named]);

        let mut o = img.oci(false);
        let mut m = o.manifest.clone();
        m["config"]["digest"] = json!(digest);
        o.set_manifest(m);
        refused(&s, &o.archive.dir(&s, &format!("config{n}")), &[&named]);
    }
}

// ---- missing pieces, digests and sizes --------------------------------

#[test]
fn refuses_missing_docker_layer() {
    let Some(s) = store() else { return };
    let mut a = Image::of(&[1, 2]).docker();
    a.remove("layer1/layer.tar");
    a.refused_as_tar(&s, &["layer1/layer.tar"]);
}

#[test]
fn refuses_missing_docker_config() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1]);
    let mut a = img.docker();
    a.remove(&img.config_name());
    a.refused_as_tar(&s, &[short(&img.id)]);
}

#[test]
fn refuses_missing_oci_blobs() {
    let Some(s) = store() else { return };
    let o = Image::of(&[1, 2]).oci(true);
    for (what, digest) in [
        ("layer", o.layer(1)),
        ("config", o.config()),
        ("manifest", o.manifest_digest()),
    ] {
        let mut a = o.archive.clone();
        a.remove(&blob(&digest));
        refused(&s, &a.file(&s, &format!("{what}.tar")), &[short(&digest)]);
        refused(&s, &a.dir(&s, what), &[short(&digest)]);
    }
}

/// A layer whose content is not what the config's diff_ids say: refused,
/// naming the layer (by its path or its declared diffID).
#[test]
fn refuses_docker_layer_not_matching_its_diff_id() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let mut a = img.docker();
    a.set("layer1/layer.tar", Body::File(layer(9)));
    refused(
        &s,
        &a.file(&s, "x.tar"),
        &[
            "diff",
            &format!("layer1/layer.tar|{}", short(&img.diff_ids[1])),
        ],
    );
}

/// The blob is what its descriptor says; the config declares another
/// diffID for it.
#[test]
fn refuses_oci_layer_not_matching_its_diff_id() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let mut o = img.oci(true);
    let wrong = vec![img.diff_ids[0].clone(), sha256_of(&layer(9))];
    o.set_config(&config_for(&wrong));
    let names = format!("{}|{}", short(&wrong[1]), short(&o.layer(1)));
    o.archive.refused_as_tar(&s, &["diff", &names]);
    refused(&s, &o.archive.dir(&s, "x"), &["diff", &names]);
}

/// The same gzip stream with another mtime in its header: the same size
/// and diffID, but not the blob the descriptor names.
#[test]
fn refuses_oci_blob_not_matching_its_descriptor() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let mut o = img.oci(true);
    let digest = o.layer(1);
    let mut other = gzip(&img.layers[1], 6);
    other[4..8].copy_from_slice(&1_700_000_000u32.to_le_bytes());
    o.archive.set(&blob(&digest), Body::File(other));
    o.archive.refused_as_tar(&s, &[DESCRIPTOR, short(&digest)]);
    refused(&s, &o.archive.dir(&s, "x"), &[DESCRIPTOR, short(&digest)]);
}

/// zstd layers: the same frame followed by a skippable frame of other
/// bytes: the same size and diffID, but not the blob the descriptor
/// names. The layout as built loads, in a store of its own.
#[test]
fn refuses_zstd_blob_not_matching_its_descriptor() {
    let test = "refuses_zstd_blob_not_matching_its_descriptor";
    let Some(s) = store() else { return };
    if !fixtures::have_tools(test, &["zstd"]) {
        return;
    }
    let img = Image::of(&[1, 2]);
    let mut o = img.oci_with("+zstd", |l| zstd(l, &[0; 8]));
    let good = Strata::new("overlay2");
    let file = o.archive.file(&good, "good.tar");
    assert_eq!(good.load(&file, &[]), ["Loaded image: hostile:1"]);
    let digest = o.layer(1);
    let other = zstd(&img.layers[1], &[0xff; 8]);
    assert_eq!(other.len(), o.archive.data(&blob(&digest)).len());
    o.archive.set(&blob(&digest), Body::File(other));
    o.archive.refused_as_tar(&s, &[DESCRIPTOR, short(&digest)]);
    refused(&s, &o.archive.dir(&s, "x"), &[DESCRIPTOR, short(&digest)]);
}

/// Another layer of the same size in the blob's place.
#[test]
fn refuses_uncompressed_oci_blob_not_matching_its_descriptor() {
    let Some(s) = store() else { return };
    let mut o = Image::of(&[1, 2]).oci(false);
    let digest = o.layer(0);
    o.archive.set(&blob(&digest), Body::File(layer(9)));
    o.archive.refused_as_tar(&s, &[DESCRIPTOR, short(&digest)]);
}

/// The Docker 25 form with gzip layers (what Docker with the
/// containerd image store saves): a layer blob whose content is not the
/// sha256 its `blobs/sha256/<hex>` path names (the same gzip stream with
/// another mtime: the same size and diffID). The archive as built loads,
/// in a store of its own.
#[test]
fn refuses_docker25_blob_not_matching_its_path() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let o = img.oci(true);
    let good = Strata::new("overlay2");
    let file = o.docker25().file(&good, "good.tar");
    assert_eq!(good.load(&file, &[]), ["Loaded image: hostile:1"]);
    let digest = o.layer(1);
    let mut other = gzip(&img.layers[1], 6);
    other[4..8].copy_from_slice(&1_700_000_000u32.to_le_bytes());
    let mut a = o.docker25();
    a.set(&blob(&digest), Body::File(other));
    a.refused_as_tar(&s, &["sha256", short(&digest)]);
}

/// The same form, its config replaced by another (the same diffIDs)
/// under the old `blobs/sha256/<hex>` name.
#[test]
fn refuses_docker25_config_not_matching_its_path() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1]);
    let o = img.oci(true);
    let mut other: Value = serde_json::from_slice(&img.config).unwrap();
    other["os"] = json!("plan9");
    let mut a = o.docker25();
    a.set(
        &blob(&o.config()),
        Body::File(serde_json::to_vec(&other).unwrap()),
    );
    a.refused_as_tar(&s, &["config", short(&o.config())]);
}

/// The descriptor's size one more or one less than the blob's.
#[test]
fn refuses_descriptor_size_mismatch() {
    let Some(s) = store() else { return };
    let o = Image::of(&[1, 2]).oci(true);
    for (n, delta) in [1i64, -1].into_iter().enumerate() {
        let mut o2 = o.clone();
        let mut m = o2.manifest.clone();
        let size = m["layers"][1]["size"].as_i64().unwrap();
        m["layers"][1]["size"] = json!(size + delta);
        o2.set_manifest(m);
        let file = o2.archive.file(&s, &format!("x{n}.tar"));
        refused(&s, &file, &[DESCRIPTOR, SIZE]);
        refused(
            &s,
            &o2.archive.dir(&s, &format!("x{n}")),
            &[DESCRIPTOR, SIZE],
        );
    }
}

/// The config blob replaced by another config (same diff_ids) under the
/// old name.
#[test]
fn refuses_config_not_matching_its_descriptor() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1]);
    let mut o = img.oci(false);
    let mut other: Value = serde_json::from_slice(&img.config).unwrap();
    other["os"] = json!("plan9");
    let other = serde_json::to_vec(&other).unwrap();
    o.archive.set(&blob(&o.config()), Body::File(other));
    let names = format!("config|{}", short(&o.config()));
    o.archive.refused_as_tar(&s, &[DESCRIPTOR, &names]);
}

/// The manifest blob replaced by another manifest under the old name.
#[test]
fn refuses_manifest_not_matching_its_descriptor() {
    let Some(s) = store() else { return };
    let mut o = Image::of(&[1]).oci(false);
    let mut m = o.manifest.clone();
    m["annotations"] = json!({ "changed": "after the index was written" });
    let digest = o.manifest_digest();
    o.archive
        .set(&blob(&digest), Body::File(serde_json::to_vec(&m).unwrap()));
    let names = format!("manifest|{}", short(&digest));
    o.archive.refused_as_tar(&s, &[DESCRIPTOR, &names]);
}

// ---- malformed JSON -----------------------------------------------------

#[test]
fn refuses_malformed_manifest_json() {
    let Some(s) = store() else { return };
    for (n, bad) in [
        &b"[{\"Config\": "[..],
        b"{}",
        b"[{\"Config\": 5, \"Layers\": {}}]",
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = Image::of(&[1]).docker();
        a.set("manifest.json", Body::File(bad.to_vec()));
        refused(&s, &a.file(&s, &format!("x{n}.tar")), &["manifest.json"]);
    }
}

/// An OCI layout whose document `name` is each of `bads`, as a tar and
/// as a directory: refused, naming it.
fn refuses_bad_document(name: &str, bads: &[&[u8]]) {
    let Some(s) = store() else { return };
    for (n, bad) in bads.iter().enumerate() {
        let mut o = Image::of(&[1]).oci(false);
        o.archive.set(name, Body::File(bad.to_vec()));
        refused(&s, &o.archive.file(&s, &format!("x{n}.tar")), &[name]);
        refused(&s, &o.archive.dir(&s, &format!("x{n}")), &[name]);
    }
}

/// `oci-layout` not JSON, not an object, without imageLayoutVersion, or
/// of another major version than 1 (umoci refuses all but 1.0.0).
#[test]
fn refuses_malformed_oci_layout() {
    refuses_bad_document(
        "oci-layout",
        &[
            b"{\"imageLayoutVersion\": ",
            b"[]",
            b"{}",
            b"{\"imageLayoutVersion\": 1}",
            b"{\"imageLayoutVersion\": \"2.0.0\"}",
        ],
    );
}

#[test]
fn refuses_malformed_index_json() {
    refuses_bad_document(
        "index.json",
        &[
            b"{\"schemaVersion\": 2, \"manifests\": [",
            b"{\"schemaVersion\": 2, \"manifests\": {}}",
            b"[]",
        ],
    );
}

/// A manifest blob that is not JSON, under its right digest.
#[test]
fn refuses_malformed_oci_manifest() {
    let Some(s) = store() else { return };
    let mut o = Image::of(&[1]).oci(false);
    let bad = b"{\"schemaVersion\": 2, \"config\": ".to_vec();
    let old = blob(&o.manifest_digest());
    o.archive.remove(&old);
    let desc = descriptor(fixtures::OCI_MANIFEST, &bad);
    o.archive
        .set(&blob(desc["digest"].as_str().unwrap()), Body::File(bad));
    o.set_index(&json!({ "schemaVersion": 2, "manifests": [desc] }));
    o.archive.refused_as_tar(&s, &["manifest"]);
}

#[test]
fn refuses_malformed_docker_config() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1]);
    let bad = b"{\"rootfs\": ".to_vec();
    let name = format!("{}.json", fixtures::hex(&sha256_of(&bad)));
    let mut a = img.docker();
    a.remove(&img.config_name());
    a.set(&name, Body::File(bad));
    let mut m = a.json("manifest.json");
    m[0]["Config"] = json!(name);
    a.set_json("manifest.json", &m);
    a.refused_as_tar(&s, &["config"]);
}

/// A config that is not JSON (or not a config), under its right digest.
#[test]
fn refuses_malformed_oci_config() {
    let Some(s) = store() else { return };
    for (n, bad) in [&b"{\"rootfs\": "[..], b"{\"rootfs\": 5}", b"[]"]
        .into_iter()
        .enumerate()
    {
        let mut o = Image::of(&[1]).oci(false);
        o.set_config(bad);
        refused(&s, &o.archive.file(&s, &format!("x{n}.tar")), &["config"]);
    }
}

/// The config lists fewer (or more) diffIDs than there are layers.
#[test]
fn refuses_diff_id_count_mismatch() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    // "its config lists 1 layers, manifest.json 2"
    let words = ["config", "layers|diff"];

    let mut a = img.docker();
    let fewer = config_for(&img.diff_ids[..1]);
    let name = format!("{}.json", fixtures::hex(&sha256_of(&fewer)));
    a.remove(&img.config_name());
    a.set(&name, Body::File(fewer.clone()));
    let mut m = a.json("manifest.json");
    m[0]["Config"] = json!(name);
    a.set_json("manifest.json", &m);
    refused(&s, &a.file(&s, "fewer.tar"), &words);

    let mut o = img.oci(false);
    o.set_config(&fewer);
    refused(&s, &o.archive.file(&s, "fewer-oci.tar"), &words);

    let mut o = img.oci(false);
    let mut more = img.diff_ids.clone();
    more.push(sha256_of(&layer(9)));
    o.set_config(&config_for(&more));
    refused(&s, &o.archive.file(&s, "more-oci.tar"), &words);
}

// ---- enormous sizes --------------------------------------------------

/// Descriptors declaring 2^60 bytes: refused before anything that size
/// is read or allocated.
#[test]
fn refuses_enormous_descriptor_sizes() {
    let Some(s) = store() else { return };
    let o = Image::of(&[1]).oci(false);
    let huge = 1u64 << 60;
    for at in ["/config", "/layers/0"] {
        let mut o2 = o.clone();
        let mut m = o2.manifest.clone();
        m.pointer_mut(at).unwrap()["size"] = json!(huge);
        o2.set_manifest(m);
        let name = at.replace('/', "-");
        refused(&s, &o2.archive.file(&s, &format!("x{name}.tar")), &[SIZE]);
        refused(&s, &o2.archive.dir(&s, &format!("x{name}")), &[SIZE]);
    }
    let mut o2 = o.clone();
    let mut index = o2.index();
    index["manifests"][0]["size"] = json!(huge);
    o2.set_index(&index);
    refused(&s, &o2.archive.file(&s, "index.tar"), &[SIZE]);
}

/// A layer entry whose header claims a terabyte, the file ending after a
/// few KiB.
#[test]
fn refuses_enormous_tar_entry_with_truncated_body() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let mut a = img.docker();
    let partial = img.layers[1][..4096].to_vec();
    a.remove("layer1/layer.tar");
    a.push(
        "layer1/layer.tar",
        Body::Truncated {
            size: 1 << 40,
            data: partial,
        },
    );
    a.refused_as_tar(&s, &[TRUNCATED]);
}

/// manifest.json's header claims a terabyte: not read into memory.
#[test]
fn refuses_enormous_manifest_json() {
    let Some(s) = store() else { return };
    let mut a = Image::of(&[1]).docker();
    let body = a.data("manifest.json").to_vec();
    a.remove("manifest.json");
    a.push(
        "manifest.json",
        Body::Truncated {
            size: 1 << 40,
            data: body,
        },
    );
    a.refused_as_tar(&s, &["manifest.json|truncated|bytes"]);
}

// ---- duplicate entries ---------------------------------------------------

#[test]
fn refuses_duplicate_manifest_json() {
    let Some(s) = store() else { return };
    let mut a = Image::of(&[1]).docker();
    let mut other = a.json("manifest.json");
    other[0]["RepoTags"] = json!(["hostile:other"]);
    a.push(
        "manifest.json",
        Body::File(serde_json::to_vec(&other).unwrap()),
    );
    a.refused_as_tar(&s, &[DUPLICATE, "manifest.json"]);
}

#[test]
fn refuses_duplicate_index_json() {
    let Some(s) = store() else { return };
    let mut o = Image::of(&[1]).oci(false);
    let mut other = o.index();
    other["manifests"][0]["annotations"][fixtures::REF_NAME] = json!("hostile:other");
    o.archive.push(
        "index.json",
        Body::File(serde_json::to_vec(&other).unwrap()),
    );
    o.archive.refused_as_tar(&s, &[DUPLICATE, "index.json"]);
}

/// The same blob name twice, the second one different.
#[test]
fn refuses_duplicate_blob() {
    let Some(s) = store() else { return };
    let mut o = Image::of(&[1, 2]).oci(false);
    let digest = o.layer(0);
    o.archive.push(&blob(&digest), Body::File(layer(9)));
    o.archive.refused_as_tar(&s, &[DUPLICATE, short(&digest)]);
}

// ---- truncation and half-loaded images ----------------------------------

/// Cut in the middle of the third layer: the first two were unpacked
/// already, and must be gone again.
#[test]
fn refuses_truncated_docker_archive() {
    let Some(s) = store() else { return };
    let a = Image::of(&[1, 2, 3]).docker();
    let (bytes, at) = a.tar();
    let cut = at["layer2/layer.tar"] + 4096;
    let path = s.path("x.tar");
    fs::write(&path, &bytes[..cut]).unwrap();
    refused(&s, &path, &[TRUNCATED]);
}

#[test]
fn refuses_truncated_oci_archive() {
    let Some(s) = store() else { return };
    let o = Image::of(&[1, 2, 3]).oci(true);
    let (bytes, at) = o.archive.tar();
    let third = &at[&blob(&o.layer(2))];
    let path = s.path("x.tar");
    fs::write(&path, &bytes[..third + 2048]).unwrap();
    refused(&s, &path, &[TRUNCATED]);
}

/// A three-layer image whose third layer is bad (its diffID, or its
/// blob digest): nothing of the first two stays.
#[test]
fn bad_third_layer_leaves_no_layer_behind() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2, 3]);
    let mut a = img.docker();
    a.set("layer2/layer.tar", Body::File(layer(9)));
    refused(&s, &a.file(&s, "docker.tar"), &["diff"]);

    let mut o = img.oci(true);
    let digest = o.layer(2);
    o.archive
        .set(&blob(&digest), Body::File(gzip(&layer(9), 6)));
    refused(&s, &o.archive.file(&s, "oci.tar"), &[DESCRIPTOR]);
    refused(&s, &o.archive.dir(&s, "oci"), &[DESCRIPTOR]);
}

/// The same, when the first layer is `keep:1`'s: it stays, and works.
#[test]
fn bad_third_layer_keeps_a_shared_first_layer() {
    let Some(s) = store() else { return };
    let img = Image::of(&[0, 1, 2]);
    let mut a = img.docker();
    a.set("layer2/layer.tar", Body::File(layer(9)));
    refused(&s, &a.file(&s, "docker.tar"), &["diff"]);
    let (bytes, at) = img.docker().tar();
    let path = s.path("cut.tar");
    fs::write(&path, &bytes[..at["layer2/layer.tar"] + 100]).unwrap();
    refused(&s, &path, &[TRUNCATED]);
    keep_is_intact(&s);
}

/// A layer with an entry that climbs out of the layer root: the apply
/// refuses it (naming the entry); load must say so and clean up the
/// layer before it.
#[test]
fn refuses_layer_entry_climbing_out() {
    let Some(s) = store() else { return };
    let img = Image::with_layers(vec![layer(1), layer_with("../../etc/x")]);
    img.docker().refused_as_tar(&s, &["../../etc/x"]);
    refused(
        &s,
        &img.oci(true).archive.file(&s, "x-oci.tar"),
        &["../../etc/x"],
    );
}

// ---- not an image at all ---------------------------------------------

#[test]
fn refuses_empty_file() {
    let Some(s) = store() else { return };
    let path = s.path("empty.tar");
    fs::write(&path, b"").unwrap();
    refused(&s, &path, &["empty"]);
}

#[test]
fn refuses_file_that_is_not_a_tar() {
    let Some(s) = store() else { return };
    let path = s.path("text.tar");
    fs::write(
        &path,
        "this is text, and no archive of any kind at all\n".repeat(40),
    )
    .unwrap();
    refused(&s, &path, &["tar"]);
}

/// A good tar of neither format.
#[test]
fn refuses_tar_without_manifest_or_index() {
    let Some(s) = store() else { return };
    let path = s.path("plain.tar");
    fs::write(&path, layer(1)).unwrap();
    refused(&s, &path, &["manifest.json|index.json"]);
}

#[test]
fn refuses_oci_dir_without_index_json() {
    let Some(s) = store() else { return };
    let mut o = Image::of(&[1]).oci(false);
    o.archive.remove("index.json");
    refused(&s, &o.archive.dir(&s, "x"), &["index.json"]);
    let empty = s.path("empty");
    fs::create_dir(&empty).unwrap();
    refused(&s, &empty, &["index.json"]);
}

/// A blob that is a symlink to a file outside the layout, holding the
/// right content: a loader that follows it would succeed.
#[test]
fn refuses_oci_blob_symlink_outside() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let mut o = img.oci(false);
    let digest = o.layer(1);
    let outside = s.path("outside-blob");
    fs::write(&outside, &img.layers[1]).unwrap();
    o.archive.set(
        &blob(&digest),
        Body::Symlink(outside.to_str().unwrap().into()),
    );
    let names = format!("symlink|symbolic link|{}", short(&digest));
    refused(&s, &o.archive.dir(&s, "x"), &[&names]);
}

/// In an OCI **tar**, blobs that are symlink entries leaving the
/// layout: `../../etc/passwd` (the archive's own `etc/passwd`, absent),
/// `../../../etc/passwd`, and an absolute and a climbing relative target
/// at a file outside holding the right content (a loader that follows
/// those would succeed). The layer and the config.
#[test]
fn refuses_oci_tar_blob_symlink_escaping() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let o = img.oci(false);
    let outside = s.path("outside");
    fs::create_dir(&outside).unwrap();
    for (what, digest, content) in [
        ("layer", o.layer(1), &img.layers[1]),
        ("config", o.config(), &img.config),
    ] {
        let file = outside.join(what);
        fs::write(&file, content).unwrap();
        let climbing = format!(
            "{}{}",
            "../".repeat(12),
            file.to_str().unwrap().trim_start_matches('/')
        );
        let targets = [
            "../../etc/passwd".to_owned(),
            "../../../etc/passwd".to_owned(),
            file.to_str().unwrap().to_owned(),
            climbing,
        ];
        for (n, target) in targets.into_iter().enumerate() {
            let mut a = o.archive.clone();
            a.set(&blob(&digest), Body::Symlink(target));
            refused(
                &s,
                &a.file(&s, &format!("{what}{n}.tar")),
                &[short(&digest), "outside|not in the archive"],
            );
        }
    }
}

/// `blobs` itself a symlink to a copy of the blobs outside the layout.
#[test]
fn refuses_oci_blobs_dir_symlink_outside() {
    let Some(s) = store() else { return };
    let o = Image::of(&[1]).oci(false);
    let good = o.archive.dir(&s, "good");
    let layout = s.path("x");
    fs::create_dir(&layout).unwrap();
    for f in ["oci-layout", "index.json"] {
        fs::copy(good.join(f), layout.join(f)).unwrap();
    }
    std::os::unix::fs::symlink(good.join("blobs"), layout.join("blobs")).unwrap();
    refused(&s, &layout, &["symlink|symbolic link|blobs"]);
}

#[test]
fn refuses_missing_input() {
    let Some(s) = store() else { return };
    refused(
        &s,
        &s.path("no-such.tar"),
        &["no such file|not found|does not exist"],
    );
}

/// A ustar layer of `entries`: (name, kind, content or link target).
fn layer_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let linked = matches!(kind, tar::EntryType::Link | tar::EntryType::Symlink);
        let link = if linked {
            std::str::from_utf8(data).unwrap()
        } else {
            ""
        };
        let data: &[u8] = if linked { b"" } else { data };
        let h = header(name, *kind, data.len() as u64, link);
        b.append(&tar::Header::from_byte_slice(&h).clone(), data)
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// Not hostile: a second layer hard-linking a file only the first has
/// (what a build step that runs `ln` writes). containerd and GNU tar on
/// the merged tree accept it; so does load: the container shows both
/// names as one file, and save gives back the very layers.
#[test]
fn loads_a_layer_hard_linking_its_parents_file() {
    let Some(s) = store() else { return };
    hard_link_to_the_parents_file(&s);
}

/// The same on the erofs driver, where the second layer's image copies
/// the file up from the first's (unpacked at once, the load starts over
/// in order when the first is not there yet).
#[test]
fn loads_a_layer_hard_linking_its_parents_file_on_erofs() {
    let Some(s) = store_on("erofs") else { return };
    hard_link_to_the_parents_file(&s);
}

fn hard_link_to_the_parents_file(s: &Strata) {
    use tar::EntryType::{Directory as D, Link as L, Regular as F};
    let image = Image::with_layers(vec![
        layer_of(&[
            ("usr/", D, b""),
            ("usr/bin/", D, b""),
            ("usr/bin/tool", F, b"#!/bin/sh\necho tool\n"),
        ]),
        layer_of(&[
            ("usr/", D, b""),
            ("usr/bin/", D, b""),
            ("usr/bin/tool2", L, b"usr/bin/tool"),
        ]),
    ]);
    let archive = image.docker().file(s, "links.tar");
    s.ok(&["load", "-i", archive.to_str().unwrap()]);
    s.assert_check_clean();
    let merged = s.mount_image("hostile:1");
    use std::os::unix::fs::MetadataExt;
    let md = |rel: &str| fs::metadata(merged.join(rel)).unwrap();
    assert_eq!(
        fs::read(merged.join("usr/bin/tool2")).unwrap(),
        b"#!/bin/sh\necho tool\n"
    );
    assert_eq!(md("usr/bin/tool").ino(), md("usr/bin/tool2").ino());
    assert_eq!(md("usr/bin/tool2").nlink(), 2);

    let saved = s.path("saved.tar");
    s.ok(&["save", "-o", saved.to_str().unwrap(), "hostile:1"]);
    let mut files = BTreeMap::new();
    let mut a = tar::Archive::new(fs::File::open(&saved).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for (n, want) in image.layers.iter().enumerate() {
        let got = &files[layers[n].as_str().unwrap()];
        assert!(got == want, "layer {n} saves back byte for byte");
    }
}

/// Not hostile either: a second layer writing into a directory only the
/// first has, without an entry for it. Its directory looks as the first
/// layer made it (overlayfs copies it up so), however the two layers'
/// unpacking overlaps: the first layer holds much before the directory,
/// so a second layer unpacked beside it looks below before the
/// directory is there, and is unpacked again once it is.
#[test]
fn loads_a_layer_leaving_out_a_directory_of_its_parent() {
    let Some(s) = store() else { return };
    let entry = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(5);
        h.set_gid(6);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        (h, data.to_vec())
    };
    let tar_of = |entries: Vec<(tar::Header, Vec<u8>)>| {
        let mut b = tar::Builder::new(Vec::new());
        for (h, d) in entries {
            b.append(&h, d.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    };
    use tar::EntryType::{Directory as D, Regular as F};
    let image = Image::with_layers(vec![
        tar_of(vec![
            entry("big", F, 0o644, &noise(1, 48 << 20)),
            entry("srv/", D, 0o710, b""),
        ]),
        tar_of(vec![entry("srv/new", F, 0o644, b"new")]),
    ]);
    let archive = image.docker().file(&s, "parents.tar");
    s.ok(&["load", "-i", archive.to_str().unwrap()]);
    s.assert_check_clean();
    let merged = s.mount_image("hostile:1");
    use std::os::unix::fs::MetadataExt;
    let srv = fs::metadata(merged.join("srv")).unwrap();
    assert_eq!((srv.mode() & 0o7777, srv.uid(), srv.gid()), (0o710, 5, 6));
    assert_eq!(fs::read(merged.join("srv/new")).unwrap(), b"new");
}

// ---- compressed archives and the dir: layout ---------------------------

/// `data` through `tool` (`xz`, `bzip2`, `gzip`, `zstd`), when it is
/// installed.
fn packed(tool: &str, data: &[u8]) -> Option<Vec<u8>> {
    if !fixtures::have_tools("packed", &[tool]) {
        return None;
    }
    let tmp = tempfile::NamedTempFile::new().unwrap();
    fs::write(tmp.path(), data).unwrap();
    let out = Command::new(tool)
        .arg("-c")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{tool} failed");
    Some(out.stdout)
}

/// A whole archive compressed and cut in half, or with its middle
/// overwritten: refused, the error naming the file and its compression
/// (the archive's, not a layer's).
#[test]
fn refuses_truncated_or_corrupt_compressed_archives() {
    let Some(s) = store() else { return };
    let tar = Image::of(&[1, 2]).docker().tar().0;
    for tool in ["xz", "bzip2", "gzip", "zstd"] {
        let Some(whole) = packed(tool, &tar) else {
            continue;
        };
        let mut corrupt = whole.clone();
        let mid = corrupt.len() / 2;
        corrupt[mid..mid + 64].fill(0x55);
        for (how, bytes) in [
            ("cut", &whole[..whole.len() / 2]),
            ("corrupt", &corrupt[..]),
        ] {
            let name = format!("{how}.tar.{tool}");
            let path = s.path(&name);
            fs::write(&path, bytes).unwrap();
            let err = refused(&s, &path, &[&name, tool]);
            assert!(
                !err.contains("layer"),
                "{name}: the error blames a layer: {err}"
            );
        }
    }
}

/// A `dir:` layout whose blobs are not what the manifest says, each the
/// right length (so only the digest tells): a layer holding another
/// layer's tar, the config with a byte changed; and a layer missing.
#[test]
fn refuses_dir_layout_blob_not_matching_its_digest() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let o = img.oci(false);
    let good = o.dir_layout();
    let other = layer(3);
    assert_eq!(other.len(), img.layers[1].len());
    let mut config = img.config.clone();
    *config.last_mut().unwrap() = b' ';
    for (n, (name, body)) in [
        (fixtures::hex(&o.layer(1)).to_owned(), Some(other)),
        (fixtures::hex(&o.config()).to_owned(), Some(config)),
        (fixtures::hex(&o.layer(0)).to_owned(), None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = good.clone();
        match body {
            Some(b) => a.set(&name, Body::File(b)),
            None => a.remove(&name),
        };
        refused(
            &s,
            &a.dir(&s, &format!("d{n}")),
            &[short(&format!("sha256:{name}"))],
        );
    }
    // The untouched layout loads.
    s.ok(&["load", "-i", good.dir(&s, "good").to_str().unwrap()]);
}

/// A `dir:` layout that reaches outside itself: a digest that climbs
/// (`sha256:../../etc/passwd`), a blob that is a symlink to a file
/// outside holding the right content (absolute, and climbing).
#[test]
fn refuses_dir_layout_escaping() {
    let Some(s) = store() else { return };
    let img = Image::of(&[1, 2]);
    let o = img.oci(false);
    let mut m = o.manifest.clone();
    m["layers"][0]["digest"] = json!("sha256:../../../../etc/passwd");
    let mut a = o.dir_layout();
    a.set_json("manifest.json", &m);
    refused(&s, &a.dir(&s, "climbing"), &["digest|etc/passwd"]);

    let outside = s.path("outside-layer");
    fs::write(&outside, &img.layers[1]).unwrap();
    let hex = fixtures::hex(&o.layer(1)).to_owned();
    for (n, target) in [
        outside.to_str().unwrap().to_owned(),
        format!(
            "../{}",
            "../".repeat(8) + outside.to_str().unwrap().trim_start_matches('/')
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = o.dir_layout();
        a.set(&hex, Body::Symlink(target));
        refused(
            &s,
            &a.dir(&s, &format!("link{n}")),
            &[&hex[..12], "outside|not in the archive"],
        );
    }
}

/// What looks like a `dir:` layout but is not one strata reads: no
/// `version`, another major version, a Docker schema 1 manifest, a
/// manifest of another media type. Each error names the format.
#[test]
fn refuses_dir_layouts_it_cannot_read_naming_the_format() {
    let Some(s) = store() else { return };
    let o = Image::of(&[1]).oci(false);
    let schema1 = json!({ "schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": [] });
    let mut other_type = o.manifest.clone();
    other_type["mediaType"] = json!("application/vnd.example.thing");
    let good = o.dir_layout();
    let version_2 = b"Directory Transport Version: 2.0\n".to_vec();
    let cases = [
        (
            "no-version",
            good.clone().remove("version").clone(),
            "dir: layout|version",
        ),
        (
            "version-2",
            good.clone().set("version", Body::File(version_2)).clone(),
            "version",
        ),
        (
            "schema1",
            good.clone().set_json("manifest.json", &schema1).clone(),
            "schema 1",
        ),
        (
            "other-type",
            good.clone().set_json("manifest.json", &other_type).clone(),
            "application/vnd.example.thing",
        ),
    ];
    for (name, a, says) in cases {
        let err = refused(&s, &a.dir(&s, name), &[says]);
        assert!(!err.contains("invalid type: map"), "{name}: {err}");
    }
}
