//! Reading an archive's images: Docker's `manifest.json` or an OCI
//! layout's `index.json` (nested indexes followed, the host's platform
//! picked), every document checked against its descriptor, and what each
//! layer's blob must be. The blobs themselves are read by the caller, who
//! checks them against [`LayerDesc`] as it unpacks them.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde_json::Value;
use strata_archive::{sha256, Digest};

use crate::error::{Error, ErrorKind, Result};
use crate::format::{self, DockerManifest, MAX_JSON};
use crate::platform::{self, Platform};
use crate::source::{clean, BlobKey, Source};
use crate::ImageRef;

/// Index levels followed (index → index → manifest) before giving up.
const MAX_NESTING: usize = 8;

pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_LAYERS: &[&str] = &[
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// An image as the archive describes it: its documents checked, its
/// layers not yet read.
pub struct ImageDesc {
    pub id: Digest,
    pub config: Vec<u8>,
    pub tags: Vec<ImageRef>,
    pub layers: Vec<LayerDesc>,
    /// How errors name the image.
    pub what: String,
}

pub struct LayerDesc {
    /// How errors name its blob: its path in the archive.
    pub name: String,
    /// What its blob is looked up by in the source.
    pub key: BlobKey,
    pub diff_id: Digest,
    /// The blob's digest and length, when the archive declares them.
    pub blob: Option<Digest>,
    pub size: Option<u64>,
    /// A foreign (non-distributable) layer: its descriptor's media type
    /// says a registry may not serve it.
    pub foreign: bool,
}

/// The images of the archive or layout `src`: a docker-archive when it
/// has `manifest.json` listing images, the `dir:` layout of skopeo (and
/// of `podman save --format docker-dir`) when its `manifest.json` is one
/// manifest, else an OCI layout.
pub fn read_images(src: &dyn Source) -> Result<Vec<ImageDesc>> {
    if src.has(&path("manifest.json")) {
        let bytes = read_file(src, "manifest.json")?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => crate::dir_layout::plan(src, &bytes, &m),
            _ => plan_docker(src, &bytes),
        }
    } else if src.has(&path("index.json")) {
        plan_oci(src)
    } else {
        Err(bad(
            "neither a docker-archive (no manifest.json) nor an OCI layout (no index.json)",
        ))
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

fn mismatch(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, msg)
}

fn within(what: &str, e: Error) -> Error {
    Error::within(what, e)
}

pub(crate) fn path(name: &str) -> BlobKey {
    BlobKey::Path(name.to_owned())
}

/// A document of an archive by path, at most [`MAX_JSON`] bytes.
fn read_file(src: &dyn Source, name: &str) -> Result<Vec<u8>> {
    src.read_small(&path(name), MAX_JSON)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::with(
            ErrorKind::InvalidArgument,
            format!("{what} is not valid"),
            e,
        )
    })
}

/// The diffIDs an image config lists.
fn config_diff_ids(config: &[u8], what: &str) -> Result<Vec<Digest>> {
    let v: Value = parse_json(config, &format!("the config of {what}"))?;
    format::diff_ids(&v).map_err(|why| bad(format!("the config of {what}: {why}")))
}

/// The digest a docker-archive path spells out, if it does:
/// `blobs/sha256/<hex>`, or a legacy config's `<hex>.json`.
fn digest_named_by(path: &str) -> Option<Digest> {
    let path = clean(path)?;
    let hex = path
        .strip_prefix("blobs/sha256/")
        .or_else(|| path.strip_suffix(".json").filter(|h| !h.contains('/')))?;
    Digest::parse(&format!("sha256:{hex}"))
}

/// A reference from an archive, as Docker would show it.
fn tag(reference: &str, what: &str) -> Result<ImageRef> {
    ImageRef::parse(format::familiar(reference))
        .map_err(|e| within(&format!("{what} is tagged {reference:?}"), e.into()))
}

/// The images of a docker-archive's `manifest.json`.
fn plan_docker(src: &dyn Source, manifest_json: &[u8]) -> Result<Vec<ImageDesc>> {
    let manifests: Vec<DockerManifest> = parse_json(manifest_json, "manifest.json")?;
    if manifests.is_empty() {
        return Err(bad("manifest.json lists no image"));
    }
    let mut plans: Vec<ImageDesc> = Vec::new();
    for m in manifests {
        let tags = m.repo_tags.clone().unwrap_or_default();
        let what = match tags.first() {
            Some(t) => format!("image {t}"),
            None => format!("image {}", m.config),
        };
        let config =
            read_file(src, &m.config).map_err(|e| within(&format!("the config of {what}"), e))?;
        let id = sha256(&config);
        if let Some(named) = digest_named_by(&m.config) {
            if named != id {
                return Err(mismatch(format!(
                    "the config of {what} ({}) has sha256 {id}, not the digest its name says",
                    m.config
                )));
            }
        }
        let diffs = config_diff_ids(&config, &what)?;
        if diffs.len() != m.layers.len() {
            return Err(bad(format!(
                "{what}: its config lists {} layers, manifest.json {}",
                diffs.len(),
                m.layers.len()
            )));
        }
        let layers = m
            .layers
            .iter()
            .zip(diffs)
            .map(|(name, diff_id)| LayerDesc {
                blob: digest_named_by(name).filter(|_| name.contains("blobs/")),
                key: BlobKey::Path(name.clone()),
                name: name.clone(),
                diff_id,
                size: None,
                foreign: false,
            })
            .collect();
        let tags = tags
            .iter()
            .map(|t| tag(t, &what))
            .collect::<Result<Vec<_>>>()?;
        merge(
            &mut plans,
            ImageDesc {
                id,
                config,
                tags,
                layers,
                what,
            },
        );
    }
    Ok(plans)
}

/// Adds `plan`, or its tags to the plan of the same image.
fn merge(plans: &mut Vec<ImageDesc>, plan: ImageDesc) {
    match plans.iter_mut().find(|p| p.id == plan.id) {
        Some(p) => {
            for t in plan.tags {
                if !p.tags.contains(&t) {
                    p.tags.push(t);
                }
            }
        }
        None => plans.push(plan),
    }
}

/// Where a descriptor's blob is in an OCI layout.
fn blob_name(d: &Descriptor) -> Result<(String, Digest)> {
    let digest = d.digest().to_string();
    let ours = Digest::parse(&digest).ok_or_else(|| {
        bad(format!(
            "digest {digest:?}: only sha256 digests are supported"
        ))
    })?;
    Ok((format!("blobs/sha256/{}", ours.hex()), ours))
}

/// A JSON blob of an OCI layout, checked against its descriptor.
fn read_blob_json(src: &dyn Source, d: &Descriptor, what: &str) -> Result<Vec<u8>> {
    let (_, digest) = blob_name(d).map_err(|e| within(what, e))?;
    if d.size() > MAX_JSON {
        return Err(bad(format!(
            "{what}: its descriptor declares {} bytes, more than any image document may be",
            d.size()
        )));
    }
    let bytes = if is_index(d.media_type()) || is_manifest(d.media_type()) {
        src.read_manifest(&digest, MAX_JSON)
    } else {
        src.read_small(&BlobKey::Digest(digest.clone()), MAX_JSON)
    }
    .map_err(|e| within(what, e))?;
    if bytes.len() as u64 != d.size() {
        return Err(mismatch(format!(
            "{what}: the blob is {} bytes, its descriptor says {}",
            bytes.len(),
            d.size()
        )));
    }
    let got = sha256(&bytes);
    if got != digest {
        return Err(mismatch(format!(
            "{what}: the blob's sha256 is {got}, its descriptor says {digest}"
        )));
    }
    Ok(bytes)
}

/// The images of an OCI layout's `index.json`.
fn plan_oci(src: &dyn Source) -> Result<Vec<ImageDesc>> {
    let layout: Value = parse_json(
        &read_file(src, "oci-layout").map_err(|e| within("an OCI layout needs oci-layout", e))?,
        "oci-layout",
    )?;
    // Every layout so far is 1.0.0; a later 1.x reads the same, while
    // another major version is another format (umoci refuses all but
    // 1.0.0; skopeo does not look).
    match layout.get("imageLayoutVersion").and_then(Value::as_str) {
        None => return Err(bad("oci-layout has no imageLayoutVersion")),
        Some(v) if v.split('.').next() != Some("1") => {
            return Err(bad(format!(
                "oci-layout: imageLayoutVersion {v:?} is not supported (only 1.x is)"
            )))
        }
        Some(_) => {}
    }
    let index: ImageIndex = parse_json(&read_file(src, "index.json")?, "index.json")?;
    if index.manifests().is_empty() {
        return Err(bad("index.json lists no image"));
    }
    // Entries for other platforms, and for worse matches of the host's,
    // are left out when the host's is there (index.json used as a
    // multi-platform index); a lone entry for another platform is loaded,
    // as Docker does.
    let entries = index.manifests();
    let host = format::host_platform();
    let top = entries.iter().filter_map(|d| platform::rank(d, host)).max();
    let chosen: Vec<(usize, &Descriptor)> = entries
        .iter()
        .enumerate()
        .filter(|(_, d)| d.platform().is_none() || top.is_none() || platform::rank(d, host) == top)
        .collect();
    if top.is_none() && entries.len() > 1 && entries.iter().all(|d| d.platform().is_some()) {
        return Err(platform::none_for(host, entries, "index.json"));
    }
    let mut plans = Vec::new();
    for (i, d) in chosen {
        let tags = names_of(d);
        let what = match tags.first() {
            Some(t) => format!("image {t}"),
            None => format!("image {} of index.json", i + 1),
        };
        let manifest = pick(src, d, 0, &what, format::host_platform())?;
        plans.push(plan_manifest(src, &manifest, tags, what)?);
    }
    let mut merged = Vec::new();
    for p in plans {
        merge(&mut merged, p);
    }
    Ok(merged)
}

/// The image the manifest or index `digest` (of `media_type`, `size`
/// bytes) leads to (for an index, the entry for `platform`, this
/// machine's when `None`),
/// every document on the way read from `src` by digest and checked
/// against its descriptor: how a source that has no `index.json` of its
/// own (a registry) is read.
pub fn read_image(
    src: &dyn Source,
    media_type: &str,
    digest: &Digest,
    size: u64,
    platform: Option<Platform<'_>>,
    tags: Vec<ImageRef>,
    what: String,
) -> Result<ImageDesc> {
    let oci_digest: oci_spec::image::Digest = digest.to_string().parse().map_err(|e| {
        Error::with(
            ErrorKind::InvalidArgument,
            format!("{what}: digest {digest}"),
            e,
        )
    })?;
    let top = Descriptor::new(MediaType::from(media_type), size, oci_digest);
    let platform = match platform {
        Some(p) => p,
        None => format::host_platform(),
    };
    let manifest = pick(src, &top, 0, &what, platform)?;
    plan_manifest(src, &manifest, tags, what)
}

/// The name an index entry gives its image: containerd's full name if
/// there is one, else `ref.name` when it is a full reference (a bare tag
/// names no repository: the image loads untagged, by ID).
fn names_of(d: &Descriptor) -> Vec<ImageRef> {
    let Some(a) = d.annotations() else {
        return Vec::new();
    };
    let name = a.get(format::CONTAINERD_NAME).or_else(|| {
        a.get(format::REF_NAME)
            .filter(|r| r.contains(':') || r.contains('/'))
    });
    match name.map(|n| ImageRef::parse(format::familiar(n))) {
        Some(Ok(r)) => vec![r],
        Some(Err(e)) => {
            tracing::warn!("ignoring an image name in index.json: {e}");
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn is_index(m: &MediaType) -> bool {
    match m {
        MediaType::ImageIndex => true,
        MediaType::Other(s) => s == DOCKER_LIST,
        _ => false,
    }
}

fn is_manifest(m: &MediaType) -> bool {
    match m {
        MediaType::ImageManifest => true,
        MediaType::Other(s) => s == DOCKER_MANIFEST,
        _ => false,
    }
}

/// The image manifest `d` leads to: itself, or the entry for this
/// machine's platform in the index it names (nested indexes followed).
fn pick(
    src: &dyn Source,
    d: &Descriptor,
    depth: usize,
    what: &str,
    host: Platform<'_>,
) -> Result<Descriptor> {
    if is_manifest(d.media_type()) {
        return Ok(d.clone());
    }
    if !is_index(d.media_type()) {
        return Err(bad(format!(
            "{what}: media type {} is neither an image manifest nor an index",
            d.media_type()
        )));
    }
    if depth >= MAX_NESTING {
        return Err(bad(format!(
            "{what}: indexes nested more than {MAX_NESTING} deep"
        )));
    }
    let bytes = read_blob_json(src, d, &format!("the index of {what}"))?;
    let index: ImageIndex = parse_json(&bytes, &format!("the index of {what}"))?;
    let chosen = match platform::best(index.manifests(), host) {
        Some(c) => c,
        None => {
            let unplatformed: Vec<&Descriptor> = index
                .manifests()
                .iter()
                .filter(|c| c.platform().is_none())
                .collect();
            match unplatformed.as_slice() {
                [one] if index.manifests().len() == 1 => *one,
                _ => return Err(platform::none_for(host, index.manifests(), what)),
            }
        }
    };
    pick(src, chosen, depth + 1, what, host)
}

fn is_layer(m: &MediaType) -> bool {
    match m {
        MediaType::ImageLayer
        | MediaType::ImageLayerGzip
        | MediaType::ImageLayerZstd
        | MediaType::ImageLayerNonDistributable
        | MediaType::ImageLayerNonDistributableGzip
        | MediaType::ImageLayerNonDistributableZstd => true,
        MediaType::Other(s) => DOCKER_LAYERS.contains(&s.as_str()),
        _ => false,
    }
}

fn is_foreign(m: &MediaType) -> bool {
    match m {
        MediaType::ImageLayerNonDistributable
        | MediaType::ImageLayerNonDistributableGzip
        | MediaType::ImageLayerNonDistributableZstd => true,
        MediaType::Other(s) => s.contains(".foreign."),
        _ => false,
    }
}

/// An image from its manifest's descriptor.
fn plan_manifest(
    src: &dyn Source,
    d: &Descriptor,
    tags: Vec<ImageRef>,
    what: String,
) -> Result<ImageDesc> {
    let bytes = read_blob_json(src, d, &format!("the manifest of {what}"))?;
    let manifest: ImageManifest = parse_json(&bytes, &format!("the manifest of {what}"))?;
    let config = read_blob_json(src, manifest.config(), &format!("the config of {what}"))?;
    let id = sha256(&config);
    let diffs = config_diff_ids(&config, &what)?;
    if diffs.len() != manifest.layers().len() {
        return Err(bad(format!(
            "{what}: its config lists {} layers, its manifest {}",
            diffs.len(),
            manifest.layers().len()
        )));
    }
    let mut layers = Vec::new();
    for (i, (l, diff_id)) in manifest.layers().iter().zip(diffs).enumerate() {
        if !is_layer(l.media_type()) {
            return Err(bad(format!(
                "layer {} of {what}: media type {} is not a layer strata can unpack",
                i + 1,
                l.media_type()
            )));
        }
        let (name, blob) =
            blob_name(l).map_err(|e| within(&format!("layer {} of {what}", i + 1), e))?;
        layers.push(LayerDesc {
            name,
            key: BlobKey::Digest(blob.clone()),
            diff_id,
            blob: Some(blob),
            size: Some(l.size()),
            foreign: is_foreign(l.media_type()),
        });
    }
    Ok(ImageDesc {
        id,
        config,
        tags,
        layers,
        what,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use serde_json::json;
    use strata_types::error::chain;

    use super::*;

    const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

    /// An OCI layout in a temp dir, its blobs written as the tests go;
    /// counts the images made, so that no two are the same.
    struct Layout(tempfile::TempDir, std::cell::Cell<u32>);

    impl Layout {
        fn new() -> Layout {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
            fs::write(dir.path().join("oci-layout"), format::OCI_LAYOUT).unwrap();
            Layout(dir, 0.into())
        }

        /// Stores `v` as a blob; returns its descriptor.
        fn put(&self, media_type: &str, v: &Value) -> Value {
            let bytes = serde_json::to_vec(v).unwrap();
            let digest = sha256(&bytes);
            fs::write(
                self.0.path().join("blobs/sha256").join(digest.hex()),
                &bytes,
            )
            .unwrap();
            json!({ "mediaType": media_type, "digest": digest.to_string(), "size": bytes.len() })
        }

        /// An image of no layers whose config names `platform`, behind a
        /// manifest of `media_type`; returns (the manifest's descriptor
        /// with that platform, the image ID).
        fn image(&self, media_type: &str, platform: &str) -> (Value, Digest) {
            let mut p = platform.split('/');
            let (os, arch, variant) = (p.next().unwrap(), p.next().unwrap(), p.next());
            let mut platform = json!({ "os": os, "architecture": arch });
            if let Some(v) = variant {
                platform["variant"] = json!(v);
            }
            let mut config = platform.clone();
            config["rootfs"] = json!({ "type": "layers", "diff_ids": [] });
            self.1.set(self.1.get() + 1);
            config["comment"] = json!(format!("image {}", self.1.get()));
            let config_type = match media_type {
                DOCKER_MANIFEST => DOCKER_CONFIG,
                _ => OCI_CONFIG,
            };
            let config = self.put(config_type, &config);
            let id = Digest::parse(config["digest"].as_str().unwrap()).unwrap();
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": config,
                "layers": [],
            });
            let mut desc = self.put(media_type, &manifest);
            desc["platform"] = platform;
            (desc, id)
        }

        /// An index (of `media_type`) of `manifests`; returns its
        /// descriptor.
        fn index(&self, media_type: &str, manifests: Vec<Value>) -> Value {
            let index =
                json!({ "schemaVersion": 2, "mediaType": media_type, "manifests": manifests });
            self.put(media_type, &index)
        }

        /// Writes `index.json` listing `manifests` and reads the layout.
        fn read(&self, manifests: Vec<Value>) -> Result<Vec<ImageDesc>> {
            let index =
                json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
            fs::write(
                self.0.path().join("index.json"),
                serde_json::to_vec(&index).unwrap(),
            )
            .unwrap();
            let src = crate::source::DirSource::open(self.0.path()).unwrap();
            read_images(&src)
        }

        /// The ID of the one image `index.json` listing `manifests`
        /// gives.
        fn only(&self, manifests: Vec<Value>) -> Digest {
            match self.read(manifests) {
                Ok(images) if images.len() == 1 => images.into_iter().next().unwrap().id,
                Ok(images) => panic!("{} images", images.len()),
                Err(e) => panic!("{}", chain(&e)),
            }
        }
    }

    /// This machine's platform as `os/arch[/variant]`.
    fn host() -> String {
        platform::describe(format::host_platform())
    }

    /// An architecture that is not this machine's.
    fn other_arch() -> &'static str {
        if format::oci_arch() == "s390x" {
            "ppc64le"
        } else {
            "s390x"
        }
    }

    #[test]
    fn index_picks_the_hosts_manifest_among_several() {
        let l = Layout::new();
        let (a, _) = l.image(OCI_MANIFEST, &format!("linux/{}", other_arch()));
        let (b, want) = l.image(OCI_MANIFEST, &host());
        let (c, _) = l.image(OCI_MANIFEST, "windows/amd64");
        let (d, _) = l.image(OCI_MANIFEST, "linux/riscv64/rva23");
        let list = l.index(OCI_INDEX, vec![a, b, c, d]);
        assert_eq!(l.only(vec![list]), want);
    }

    /// The base level of the host's architecture wins over a variant that
    /// needs a newer CPU (amd64 `v3` needs AVX2), wherever it is listed.
    #[test]
    fn index_prefers_the_base_level_over_a_newer_cpu_variant() {
        let (os, arch, _) = format::host_platform();
        let newer = match arch {
            "amd64" => "v3",
            "arm64" => "v9.0",
            "arm" => "v8",
            _ => return,
        };
        let l = Layout::new();
        let (base, want) = l.image(OCI_MANIFEST, &host());
        let (variant, _) = l.image(OCI_MANIFEST, &format!("{os}/{arch}/{newer}"));
        let first = l.index(OCI_INDEX, vec![base.clone(), variant.clone()]);
        let last = l.index(OCI_INDEX, vec![variant, base]);
        assert_eq!(l.only(vec![first]), want.clone());
        assert_eq!(l.only(vec![last]), want);
    }

    /// Two manifests for the host's platform: the first one listed, as
    /// containerd and Docker take it.
    #[test]
    fn index_takes_the_first_of_equal_matches() {
        let l = Layout::new();
        let (a, want) = l.image(OCI_MANIFEST, &host());
        let (mut b, _) = l.image(OCI_MANIFEST, &host());
        b["annotations"] = json!({ "second": "yes" });
        let list = l.index(OCI_INDEX, vec![a, b]);
        assert_eq!(l.only(vec![list]), want);
    }

    #[test]
    fn index_without_the_hosts_platform_is_refused_naming_it() {
        let l = Layout::new();
        let (a, _) = l.image(OCI_MANIFEST, &format!("linux/{}", other_arch()));
        let (b, _) = l.image(OCI_MANIFEST, "windows/amd64");
        let list = l.index(OCI_INDEX, vec![a, b]);
        let e = match l.read(vec![list]) {
            Ok(_) => panic!("an index without {} was read", host()),
            Err(e) => e,
        };
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let msg = chain(&e);
        assert!(
            msg.contains(&format!("no manifest for {}", host())),
            "{msg}"
        );
        assert!(msg.contains(&format!("linux/{}", other_arch())), "{msg}");
        assert!(msg.contains("windows/amd64"), "{msg}");
    }

    /// Docker's manifest list and image manifest (what `docker manifest
    /// inspect` shows, and what registries serve), nested in an OCI index.
    #[test]
    fn docker_manifest_list_is_followed() {
        let l = Layout::new();
        let (a, _) = l.image(DOCKER_MANIFEST, &format!("linux/{}", other_arch()));
        let (b, want) = l.image(DOCKER_MANIFEST, &host());
        let list = l.index(DOCKER_LIST, vec![a, b]);
        assert_eq!(l.only(vec![list.clone()]), want.clone());
        let outer = l.index(OCI_INDEX, vec![list]);
        assert_eq!(l.only(vec![outer]), want);
    }

    /// `levels` indexes, each listing the next, the last one the host's
    /// manifest; returns the outermost's descriptor and the image ID.
    fn nested(l: &Layout, levels: usize) -> (Value, Digest) {
        let (mut d, id) = l.image(OCI_MANIFEST, &host());
        for _ in 0..levels {
            d = l.index(OCI_INDEX, vec![d]);
        }
        (d, id)
    }

    #[test]
    fn indexes_nested_up_to_the_limit_are_followed() {
        let l = Layout::new();
        let (d, want) = nested(&l, MAX_NESTING);
        assert_eq!(l.only(vec![d]), want);
    }

    #[test]
    fn indexes_nested_past_the_limit_are_refused() {
        let l = Layout::new();
        let (d, _) = nested(&l, MAX_NESTING + 1);
        let e = match l.read(vec![d]) {
            Ok(_) => panic!("indexes nested {} deep were read", MAX_NESTING + 1),
            Err(e) => e,
        };
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let msg = chain(&e);
        assert!(
            msg.contains(&format!("nested more than {MAX_NESTING}")),
            "{msg}"
        );
    }

    /// index.json itself as the platform list (as `docker buildx` writes
    /// it): the host's best match only.
    #[test]
    fn index_json_as_a_platform_list_loads_the_best_match_only() {
        let (os, arch, _) = format::host_platform();
        let l = Layout::new();
        let (other, _) = l.image(OCI_MANIFEST, &format!("linux/{}", other_arch()));
        let (base, want) = l.image(OCI_MANIFEST, &host());
        let mut list = vec![other, base];
        if arch == "amd64" {
            let (v3, _) = l.image(OCI_MANIFEST, &format!("{os}/{arch}/v3"));
            list.push(v3);
        }
        assert_eq!(l.only(list), want);
    }

    /// `oci-layout`: JSON with an imageLayoutVersion of major version 1.
    #[test]
    fn oci_layout_must_be_version_1() {
        let l = Layout::new();
        let (d, want) = l.image(OCI_MANIFEST, &host());
        for (layout, ok) in [
            (r#"{"imageLayoutVersion":"1.0.0"}"#, true),
            (r#"{"imageLayoutVersion":"1.1.0"}"#, true),
            (r#"{"imageLayoutVersion":"2.0.0"}"#, false),
            (r#"{"imageLayoutVersion":"10.0.0"}"#, false),
            (r#"{"imageLayoutVersion":1}"#, false),
            (r#"{}"#, false),
            (r#"{"imageLayoutVersion":"1.0.0""#, false),
        ] {
            fs::write(l.0.path().join("oci-layout"), layout).unwrap();
            match l.read(vec![d.clone()]) {
                Ok(images) if ok => assert_eq!(images[0].id, want, "{layout}"),
                Ok(_) => panic!("{layout} was accepted"),
                Err(e) if ok => panic!("{layout}: {}", chain(&e)),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{layout}");
                    assert!(chain(&e).contains("oci-layout"), "{layout}: {}", chain(&e));
                }
            }
        }
    }
}
