//! Image fixtures for the tests of `strata load` and `strata save`: a
//! small two-layer busybox image built with umoci from busybox-static's
//! binary, the archives skopeo makes of it, and the shapes no tool here
//! writes (the legacy docker-archive, the Docker 25 archive with plain or
//! gzip layers, zstd layers without skopeo, multi-platform and nested
//! indexes), built by hand from its blobs; and the progress bar that
//! load and save draw on a terminal, read back.
//!
//! What a source declares (its config digest, which is the image ID, and
//! its diffIDs) is read from the source itself, by skopeo or from the
//! layout's own JSON, so the tests compare strata with the source and not
//! with strata.
//!
//! A test file uses it with `mod common;` followed by
//! `#[path = "common/fixtures.rs"] mod fixtures;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::common::{not_notes, sh, sha256_of, skip, Strata};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// The name of an image in an OCI index: a full reference or a bare tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The full name containerd and Docker 25 put beside it.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Paths a container's init layer adds to the merged view; they are not
/// part of any image.
pub const INIT_PATHS: &[&str] = &[
    "etc/hosts",
    "etc/resolv.conf",
    "etc/hostname",
    "etc/mtab",
    "proc",
    "sys",
    "dev",
];

/// True when every tool is on `PATH`; otherwise prints a loud SKIPPED
/// line, and fails under CI, where `scripts/test.sh` installs them.
pub fn have_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    skip(test, &format!("not installed: {}", missing.join(", ")))
}

pub fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v '{tool}' >/dev/null"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// This machine's architecture in OCI's words.
pub fn host_arch() -> &'static str {
    match sh("uname -m").as_str() {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" => "arm",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "i686" | "i386" => "386",
        other => panic!("unknown machine {other}"),
    }
}

/// An architecture that is not this machine's.
pub fn other_arch() -> &'static str {
    if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
}

/// The hex part of `sha256:<hex>`.
pub fn hex(digest: &str) -> &str {
    digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"))
}

/// What a source says about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The config's digest: the image ID.
    pub id: String,
    /// The config's `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
}

impl Declared {
    /// Asked of skopeo: `source` is a transport reference such as
    /// `docker-archive:/x.tar` or `oci:/dir:tag`.
    pub fn by_skopeo(source: &str) -> Declared {
        let manifest: Value =
            serde_json::from_str(&sh(&format!("skopeo inspect --raw '{source}'"))).unwrap();
        let config: Value =
            serde_json::from_str(&sh(&format!("skopeo inspect --config --raw '{source}'")))
                .unwrap();
        Declared {
            id: manifest["config"]["digest"].as_str().unwrap().to_owned(),
            diff_ids: diff_ids(&config),
        }
    }

    /// [`Declared::by_skopeo`] of the docker-archive tar at `archive`.
    pub fn of_docker_archive(archive: &Path) -> Declared {
        Declared::by_skopeo(&format!("docker-archive:{}", archive.display()))
    }

    /// chainID(n) = sha256(chainID(n-1) + " " + diffID(n)), computed
    /// with sha256sum.
    pub fn chain_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for d in &self.diff_ids {
            let next = match out.last() {
                None => d.clone(),
                Some(prev) => sha256_of(format!("{prev} {d}").as_bytes()),
            };
            out.push(next);
        }
        out
    }
}

fn diff_ids(config: &Value) -> Vec<String> {
    strings(&config["rootfs"]["diff_ids"])
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout(pub PathBuf);

impl Layout {
    /// A new, empty layout at `dir`.
    pub fn init(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let l = Layout(dir.to_owned());
        l.set_index(vec![]);
        l
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn blob(&self, digest: &str) -> PathBuf {
        self.0.join("blobs/sha256").join(hex(digest))
    }

    pub fn read(&self, digest: &str) -> Vec<u8> {
        fs::read(self.blob(digest)).unwrap()
    }

    pub fn json(&self, digest: &str) -> Value {
        serde_json::from_slice(&self.read(digest)).unwrap()
    }

    /// Stores `bytes` as a blob; returns its descriptor.
    pub fn put(&self, media_type: &str, bytes: &[u8]) -> Value {
        let digest = sha256_of(bytes);
        fs::write(self.blob(&digest), bytes).unwrap();
        json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
    }

    pub fn put_json(&self, media_type: &str, v: &Value) -> Value {
        self.put(media_type, &serde_json::to_vec(v).unwrap())
    }

    /// Stores an image manifest of `config` and `layers` (descriptors
    /// from [`Layout::put`]); returns its descriptor.
    pub fn put_manifest(&self, config: &Value, layers: &[Value]) -> Value {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers,
        });
        self.put_json(OCI_MANIFEST, &manifest)
    }

    pub fn index(&self) -> Value {
        serde_json::from_slice(&fs::read(self.0.join("index.json")).unwrap()).unwrap()
    }

    pub fn set_index(&self, manifests: Vec<Value>) {
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
        fs::write(
            self.0.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    /// The index's descriptor whose ref.name is `name`.
    pub fn descriptor(&self, name: &str) -> Value {
        self.index()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"][REF_NAME] == name)
            .unwrap_or_else(|| panic!("no {name} in {}", self.0.display()))
            .clone()
    }

    pub fn manifest(&self, name: &str) -> Value {
        self.json(self.descriptor(name)["digest"].as_str().unwrap())
    }

    pub fn config(&self, name: &str) -> Value {
        self.json(self.manifest(name)["config"]["digest"].as_str().unwrap())
    }

    /// What the layout's own JSON declares for `name`.
    pub fn declared(&self, name: &str) -> Declared {
        let manifest = self.manifest(name);
        Declared {
            id: manifest["config"]["digest"].as_str().unwrap().to_owned(),
            diff_ids: diff_ids(&self.config(name)),
        }
    }

    /// A copy of the whole layout at `dir`.
    pub fn copy_to(&self, dir: &Path) -> Layout {
        sh(&format!("cp -a '{}' '{}'", self.0.display(), dir.display()));
        Layout(dir.to_owned())
    }
}

/// The shell that makes the busybox root file system in `$R`: busybox
/// with symlinks and a hard link to it, files of several modes and an
/// owner, a file to delete, a directory tree to remove, a sticky `/tmp`.
pub const BUSYBOX_TREE: &str = r#"
mkdir -p $R/bin $R/etc $R/usr/bin $R/var/old/sub
cp "$(command -v busybox)" $R/bin/busybox
for a in sh ls cat; do ln -s busybox $R/bin/$a; done
ln -s /bin/busybox $R/usr/bin/env
ln $R/bin/busybox $R/usr/bin/busybox.hard
echo hello > $R/etc/motd
chmod 600 $R/etc/motd
echo gone > $R/etc/delete-me
echo old > $R/var/old/sub/file
echo mine > $R/etc/owned
chown 1000:1000 $R/etc/owned
mkdir -m 1777 $R/tmp
"#;

/// The umoci script: `base` is busybox with symlinks, a hard link, an
/// absolute symlink, a file owned by 1000, a sticky directory and a
/// private file; `v2` adds a file and a directory, deletes a file and a
/// directory (whiteouts) and changes a mode, then gets a Cmd and Env
/// (an empty-layer history entry).
const BUILD: &str = r#"
umoci init --layout L
umoci new --image L:base
umoci unpack --image L:base B
R=B/rootfs
$BUSYBOX_TREE
umoci repack --image L:base B
umoci unpack --image L:base C
R=C/rootfs
echo new > $R/etc/added
rm $R/etc/delete-me
chmod 644 $R/etc/motd
rm -r $R/var/old
mkdir $R/var/new
echo n > $R/var/new/file
umoci repack --image L:v2 C
umoci config --image L:v2 --config.cmd /bin/sh --config.env PATH=/usr/bin:/bin
umoci gc --layout L
rm -rf B C
"#;

/// The busybox image in an OCI layout made by umoci (tags `base` and
/// `v2`, gzip layers), and what the tests derive from it, each made once
/// in `dir`.
pub struct Busybox {
    pub dir: PathBuf,
    /// The layout umoci wrote; its ref.names are bare tags.
    pub layout: Layout,
}

impl Busybox {
    /// Builds the image in `dir` (which must exist).
    pub fn build(dir: &Path) -> Busybox {
        let build = BUILD.replace("$BUSYBOX_TREE", BUSYBOX_TREE);
        sh(&format!("cd '{}' && set -e && {build}", dir.display()));
        Busybox {
            dir: dir.to_owned(),
            layout: Layout(dir.join("L")),
        }
    }

    /// `oci:<layout>:v2`, for skopeo.
    pub fn source(&self) -> String {
        format!("oci:{}:v2", self.layout.path().display())
    }

    /// What umoci's layout declares for `v2`.
    pub fn declared(&self) -> Declared {
        self.layout.declared("v2")
    }

    fn copy(&self, dest: &str, extra: &str) {
        sh(&format!(
            "skopeo copy -q {extra} '{}' '{dest}'",
            self.source()
        ));
    }

    /// `skopeo copy` to `docker-archive:<dir>/<file>:<reference>`.
    pub fn docker_archive(&self, file: &str, reference: &str) -> PathBuf {
        let out = self.dir.join(file);
        self.copy(&format!("docker-archive:{}:{reference}", out.display()), "");
        out
    }

    /// `skopeo copy` to `oci-archive:<dir>/<file>:<name>`.
    pub fn oci_archive(&self, file: &str, name: &str) -> PathBuf {
        let out = self.dir.join(file);
        self.copy(&format!("oci-archive:{}:{name}", out.display()), "");
        out
    }

    /// `skopeo copy` to `oci:<dir>/<name>:<ref_name>`.
    pub fn oci_dir(&self, name: &str, ref_name: &str) -> Layout {
        let out = self.dir.join(name);
        self.copy(&format!("oci:{}:{ref_name}", out.display()), "");
        Layout(out)
    }

    /// The image with zstd layers (`skopeo copy --dest-compress-format
    /// zstd`), or None when this skopeo cannot write them.
    pub fn zstd_dir(&self, name: &str, ref_name: &str) -> Option<Layout> {
        let out = self.dir.join(name);
        let dest = format!("oci:{}:{ref_name}", out.display());
        let ok = Command::new("skopeo")
            .args(["copy", "-q", "--dest-compress-format", "zstd"])
            .arg(self.source())
            .arg(&dest)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return None;
        }
        let l = Layout(out);
        let zstd = l.manifest(ref_name)["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["mediaType"].as_str().unwrap().ends_with("+zstd"));
        zstd.then_some(l)
    }

    /// `umoci unpack` of `tag`: the tree a container of it must show.
    pub fn rootfs(&self, tag: &str) -> PathBuf {
        let bundle = self.dir.join(format!("unpacked-{tag}"));
        if !bundle.exists() {
            sh(&format!(
                "umoci unpack --image '{}:{tag}' '{}'",
                self.layout.path().display(),
                bundle.display()
            ));
        }
        bundle.join("rootfs")
    }

    /// The layers of `v2`, decompressed: each one's diffID is its sha256.
    pub fn layer_tars(&self) -> Vec<Vec<u8>> {
        self.layout.manifest("v2")["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let blob = self.layout.blob(d["digest"].as_str().unwrap());
                let out = Command::new("gzip").arg("-dc").arg(&blob).output().unwrap();
                assert!(out.status.success(), "gunzip {}", blob.display());
                out.stdout
            })
            .collect()
    }

    /// The legacy docker-archive, as Docker before 25 wrote it:
    /// `<v1-id>/{layer.tar,json,VERSION}`, `<config-hex>.json`,
    /// `manifest.json` and `repositories`, tagged `busybox:legacy`. The
    /// image has three layers, the third one the second again: Docker
    /// writes a repeated layer once and makes the repeat a symlink,
    /// `<id3>/layer.tar -> ../<id2>/layer.tar`.
    pub fn legacy_archive(&self) -> (PathBuf, Declared) {
        let dir = self.dir.join("legacy");
        fs::create_dir(&dir).unwrap();
        let tars = self.layer_tars();
        let d: Vec<String> = tars.iter().map(|t| sha256_of(t)).collect();
        let mut config = self.layout.config("v2");
        config["rootfs"]["diff_ids"] = json!([d[0], d[1], d[1]]);
        config["history"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "created_by": "the top layer again" }));
        let config = serde_json::to_vec(&config).unwrap();
        let declared = Declared {
            id: sha256_of(&config),
            diff_ids: vec![d[0].clone(), d[1].clone(), d[1].clone()],
        };
        fs::write(dir.join(format!("{}.json", hex(&declared.id))), &config).unwrap();
        let mut ids: Vec<String> = Vec::new();
        for (n, chain) in declared.chain_ids().iter().enumerate() {
            let id = hex(&sha256_of(format!("v1 {chain}").as_bytes())).to_owned();
            let layer = dir.join(&id);
            fs::create_dir(&layer).unwrap();
            fs::write(layer.join("VERSION"), "1.0").unwrap();
            let mut v1 = json!({ "id": id, "created": "1970-01-01T00:00:00Z" });
            if let Some(parent) = ids.last() {
                v1["parent"] = json!(parent);
            }
            fs::write(layer.join("json"), serde_json::to_vec(&v1).unwrap()).unwrap();
            match n {
                2 => std::os::unix::fs::symlink(
                    format!("../{}/layer.tar", ids[1]),
                    layer.join("layer.tar"),
                )
                .unwrap(),
                _ => fs::write(layer.join("layer.tar"), &tars[n]).unwrap(),
            }
            ids.push(id);
        }
        let manifest = json!([{
            "Config": format!("{}.json", hex(&declared.id)),
            "RepoTags": ["busybox:legacy"],
            "Layers": ids.iter().map(|i| format!("{i}/layer.tar")).collect::<Vec<_>>(),
        }]);
        fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        let repositories = json!({ "busybox": { "legacy": ids[2] } });
        fs::write(
            dir.join("repositories"),
            serde_json::to_vec(&repositories).unwrap(),
        )
        .unwrap();
        let out = self.dir.join("legacy.tar");
        sh(&format!(
            "cd '{}' && tar --sort=name --numeric-owner -cf '{}' *",
            dir.display(),
            out.display()
        ));
        (out, declared)
    }

    /// The archive Docker 25 and later write: an OCI layout with
    /// uncompressed layers plus `manifest.json` and `repositories`, in one
    /// tar; tagged `busybox:moby` both in `RepoTags` and in the index's
    /// `io.containerd.image.name` (its ref.name is the bare tag).
    pub fn moby25_archive(&self) -> (PathBuf, Declared) {
        self.moby25("moby25", "moby", false)
    }

    /// The same with umoci's gzip layer blobs, as Docker with the
    /// containerd image store writes an image pulled from a registry:
    /// `manifest.json`'s `Layers` name the compressed blobs. Tagged
    /// `busybox:moby-gzip`.
    pub fn moby25_gzip_archive(&self) -> (PathBuf, Declared) {
        self.moby25("moby25-gzip", "moby-gzip", true)
    }

    /// The Docker 25 archive `<dir>/<name>.tar`, tagged `busybox:<tag>`.
    fn moby25(&self, name: &str, tag: &str, gzip: bool) -> (PathBuf, Declared) {
        let dir = self.dir.join(name);
        let l = Layout::init(&dir);
        let config = l.put(OCI_CONFIG, &self.layout.read(self.declared().id.as_str()));
        let layers: Vec<Value> = if gzip {
            self.layout.manifest("v2")["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let media_type = d["mediaType"].as_str().unwrap();
                    assert!(media_type.ends_with("+gzip"), "umoci wrote {media_type}");
                    l.put(media_type, &self.layout.read(d["digest"].as_str().unwrap()))
                })
                .collect()
        } else {
            self.layer_tars()
                .iter()
                .map(|t| l.put(OCI_LAYER, t))
                .collect()
        };
        let mut desc = l.put_manifest(&config, &layers);
        desc["annotations"] = json!({
            CONTAINERD_NAME: format!("docker.io/library/busybox:{tag}"),
            REF_NAME: tag,
        });
        l.set_index(vec![desc]);
        let blob = |d: &Value| format!("blobs/sha256/{}", hex(d["digest"].as_str().unwrap()));
        let docker = json!([{
            "Config": blob(&config),
            "RepoTags": [format!("busybox:{tag}")],
            "Layers": layers.iter().map(blob).collect::<Vec<_>>(),
        }]);
        fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec(&docker).unwrap(),
        )
        .unwrap();
        let top = hex(layers[1]["digest"].as_str().unwrap()).to_owned();
        let repositories = json!({ "busybox": { tag: top } });
        fs::write(
            dir.join("repositories"),
            serde_json::to_vec(&repositories).unwrap(),
        )
        .unwrap();
        let out = self.dir.join(format!("{name}.tar"));
        sh(&format!(
            "cd '{}' && tar --sort=name --numeric-owner -cf '{}' blobs index.json manifest.json oci-layout repositories",
            dir.display(),
            out.display()
        ));
        (out, self.declared())
    }

    /// `v2` in a layout of its own with zstd layer blobs compressed here
    /// by the `zstd` tool (no skopeo involved), named `busybox:<tag>`.
    pub fn zstd_layout(&self, name: &str, tag: &str) -> Layout {
        let l = Layout::init(&self.dir.join(name));
        let config = l.put(OCI_CONFIG, &self.layout.read(self.declared().id.as_str()));
        let layers: Vec<Value> = self
            .layer_tars()
            .iter()
            .enumerate()
            .map(|(n, t)| {
                let tar = self.dir.join(format!("{name}-layer{n}.tar"));
                fs::write(&tar, t).unwrap();
                let out = Command::new("zstd")
                    .args(["-q", "-c"])
                    .arg(&tar)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "zstd {}", tar.display());
                l.put(&format!("{OCI_LAYER}+zstd"), &out.stdout)
            })
            .collect();
        let mut desc = l.put_manifest(&config, &layers);
        desc["annotations"] = json!({ REF_NAME: format!("busybox:{tag}") });
        l.set_index(vec![desc]);
        l
    }

    /// A layout whose index lists `v2` twice by platform: first for
    /// another architecture (a config of its own, the same layers), then
    /// for this machine's. Nested: `index.json` -> index (ref.name
    /// `busybox:nested`) -> index -> the two manifests. Returns the layout
    /// and what the host's manifest declares.
    pub fn platform_layout(&self, name: &str, nested: bool) -> (Layout, Declared) {
        let l = self.layout.copy_to(&self.dir.join(name));
        let mut host = l.descriptor("v2");
        host.as_object_mut().unwrap().remove("annotations");
        host["platform"] = json!({ "os": "linux", "architecture": host_arch() });
        let mut config = l.config("v2");
        config["architecture"] = json!(other_arch());
        let mut manifest = l.manifest("v2");
        manifest["config"] = l.put_json(OCI_CONFIG, &config);
        let mut other = l.put_json(OCI_MANIFEST, &manifest);
        other["platform"] = json!({ "os": "linux", "architecture": other_arch() });
        let platforms = vec![other, host];
        if nested {
            let index = |m: Vec<Value>| json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": m });
            let inner = l.put_json(OCI_INDEX, &index(platforms));
            let mut outer = l.put_json(OCI_INDEX, &index(vec![inner]));
            outer["annotations"] = json!({ REF_NAME: "busybox:nested" });
            l.set_index(vec![outer]);
        } else {
            l.set_index(platforms);
        }
        (l, self.declared())
    }
}

/// Every path under `root` but those in `ignore` (and below them), with
/// what the tests compare: type, permission bits, owner, the content
/// (length and FNV-1a hash) or the link target, and the mtime of all but
/// directories (a directory's changes as the init layer is made).
pub fn tree(root: &Path, ignore: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, "", ignore, &mut out);
    out
}

fn walk(root: &Path, rel: &str, ignore: &[&str], out: &mut BTreeMap<String, String>) {
    let dir = if rel.is_empty() {
        root.to_owned()
    } else {
        root.join(rel)
    };
    for entry in fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if ignore.contains(&path.as_str()) {
            continue;
        }
        let full = root.join(&path);
        let md = fs::symlink_metadata(&full).unwrap();
        let ft = md.file_type();
        let owner = format!("{}:{}", md.uid(), md.gid());
        let mode = md.mode() & 0o7777;
        let what = if ft.is_symlink() {
            format!(
                "symlink {owner} {} -> {}",
                md.mtime(),
                fs::read_link(&full).unwrap().display()
            )
        } else if ft.is_dir() {
            format!("dir {mode:04o} {owner}")
        } else if ft.is_file() {
            let data = fs::read(&full).unwrap();
            format!(
                "file {mode:04o} {owner} {} {} bytes {:016x}",
                md.mtime(),
                data.len(),
                fnv1a(&data)
            )
        } else if ft.is_char_device() || ft.is_block_device() {
            format!("device {mode:04o} {owner} {:x}", md.rdev())
        } else {
            format!("other {mode:04o} {owner}")
        };
        out.insert(path.clone(), what);
        if ft.is_dir() {
            walk(root, &path, ignore, out);
        }
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Asserts the trees at `got` (strata's) and `want` (the reference's)
/// hold the same paths with the same types, modes, owners, contents and
/// link targets, `ignore` aside; lists every difference.
pub fn assert_same_tree(what: &str, got: &Path, want: &Path, ignore: &[&str]) {
    let got = tree(got, ignore);
    let want = tree(want, ignore);
    let mut diffs = Vec::new();
    for path in got
        .keys()
        .chain(want.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (g, w) = (got.get(path), want.get(path));
        if g != w {
            diffs.push(format!("  {path}: strata {g:?}, reference {w:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: the trees differ:\n{}",
        diffs.join("\n")
    );
    assert!(!want.is_empty(), "{what}: the reference tree is empty");
}

/// The last frame of the progress bar `strata load` or `strata save`
/// drew on a terminal, as `progress.rs` styles it: `{what} (D/N layers
/// done) [=====>   ] BYTES/TOTAL RATE ETA`.
#[derive(Debug)]
pub struct Frame {
    pub text: String,
    pub layers_done: usize,
    pub layers: usize,
    /// The bytes done and the total, as shown (two decimals of KiB, MiB
    /// or GiB).
    pub bytes: u64,
    pub total: u64,
}

/// The last frame `what` (`loading`, `saving`) drew in `screen`, the
/// output of `containers::on_terminal`; panics when there is none.
pub fn last_frame(screen: &str, what: &str) -> Frame {
    let head = format!("{what} (");
    let start = screen
        .rfind(&head)
        .unwrap_or_else(|| panic!("no {what} bar was drawn: {screen:?}"));
    let text: String = screen[start..]
        .chars()
        .take_while(|c| !c.is_control())
        .collect();
    let parse = || -> Option<Frame> {
        let (layers, rest) = text.strip_prefix(&head)?.split_once(" layers done) [")?;
        let (done, all) = layers.split_once('/')?;
        let (_, rest) = rest.split_once("] ")?;
        let (bytes, rest) = rest.split_once('/')?;
        let total: Vec<&str> = rest.split_whitespace().take(2).collect();
        Some(Frame {
            layers_done: done.parse().ok()?,
            layers: all.parse().ok()?,
            bytes: shown_bytes(bytes)?,
            total: shown_bytes(&total.join(" "))?,
            text: text.clone(),
        })
    };
    parse().unwrap_or_else(|| panic!("not a bar of layers and bytes: {text:?}"))
}

/// `1.91 MiB` in bytes.
fn shown_bytes(s: &str) -> Option<u64> {
    let (n, unit) = s.trim().split_once(' ')?;
    let unit: u64 = match unit {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    Some((n.parse::<f64>().ok()? * unit as f64).round() as u64)
}

/// `screen` without its CSI escape sequences (`ESC [ params letter`).
pub fn without_escapes(screen: &str) -> String {
    let mut out = String::new();
    let mut chars = screen.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `shown` (rounded to two decimals of its unit) is `bytes`.
pub fn shows(shown: u64, bytes: u64) -> bool {
    shown.abs_diff(bytes) <= bytes / 100
}

impl Strata {
    /// `strata load -i input` (plus `extra` arguments); returns stdout's
    /// lines, panics with stderr on failure.
    pub fn load(&self, input: &Path, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["load", "-i", input.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.ok(&args).lines().map(str::to_owned).collect()
    }

    /// Asserts `image` is in the store as `want` declares it: its ID, its
    /// diffIDs in order, and each layer under the chainID computed from
    /// them.
    pub fn assert_image(&self, image: &str, want: &Declared) {
        let got = &self.json(&["image", "inspect", image])[0];
        assert_eq!(got["Id"], want.id.as_str(), "{image}: image ID");
        let layers: Vec<&str> = got["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert_eq!(layers, want.diff_ids, "{image}: diffIDs");
        let stored = self.layers_json();
        for (chain, diff) in want.chain_ids().iter().zip(&want.diff_ids) {
            let layer = stored
                .iter()
                .find(|l| l["ChainID"] == chain.as_str())
                .unwrap_or_else(|| panic!("{image}: no layer {chain} in {stored:#?}"));
            assert_eq!(layer["DiffID"], diff.as_str(), "{image}: layer {chain}");
        }
    }

    /// The tags `strata images` lists for the image `id`.
    pub fn tags_of(&self, id: &str) -> Vec<String> {
        let images = self.json(&["images", "--format", "json"]);
        let image = images
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ID"] == id)
            .unwrap_or_else(|| panic!("no image {id} in {images:#}"));
        let mut tags = strings(&image["RepoTags"]);
        tags.sort();
        tags
    }

    /// Asserts `strata check` finds nothing but notes.
    pub fn assert_check_clean(&self) {
        let (report, ok) = self.check_report("check");
        let found = not_notes(&report);
        assert!(found.is_empty() && ok, "check: {found:#?}");
    }

    /// Creates a container of `image` and mounts it; returns the merged
    /// path.
    pub fn mount_image(&self, image: &str) -> PathBuf {
        let c = self.ok(&["create", image]);
        PathBuf::from(self.ok(&["mount", &c]))
    }
}

/// A JSON array of strings (diffIDs, tags), in order.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}
