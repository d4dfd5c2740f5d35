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
use crate::source::{clean, Source};
use crate::ImageRef;

/// Index levels followed (index → index → manifest) before giving up.
const MAX_NESTING: usize = 8;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
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
    /// Where its blob is in the archive.
    pub name: String,
    pub diff_id: Digest,
    /// The blob's digest and length, when the archive declares them.
    pub blob: Option<Digest>,
    pub size: Option<u64>,
}

/// The images of the archive or layout `src`: a docker-archive when it
/// has `manifest.json`, else an OCI layout.
pub fn read_images(src: &Source) -> Result<Vec<ImageDesc>> {
    if src.has("manifest.json") {
        plan_docker(src)
    } else if src.has("index.json") {
        plan_oci(src)
    } else {
        Err(bad(
            "neither a docker-archive (no manifest.json) nor an OCI layout (no index.json)",
        ))
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

fn mismatch(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, msg)
}

fn within(what: &str, e: Error) -> Error {
    Error::within(what, e)
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
        .map_err(|e| within(&format!("{what} is tagged {reference:?}"), e))
}

/// The images of a docker-archive's `manifest.json`.
fn plan_docker(src: &Source) -> Result<Vec<ImageDesc>> {
    let manifests: Vec<DockerManifest> =
        parse_json(&src.read_small("manifest.json")?, "manifest.json")?;
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
        let config = src
            .read_small(&m.config)
            .map_err(|e| within(&format!("the config of {what}"), e))?;
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
                name: name.clone(),
                diff_id,
                size: None,
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
fn read_blob_json(src: &Source, d: &Descriptor, what: &str) -> Result<Vec<u8>> {
    let (name, digest) = blob_name(d).map_err(|e| within(what, e))?;
    if d.size() > MAX_JSON {
        return Err(bad(format!(
            "{what}: its descriptor declares {} bytes, more than any image document may be",
            d.size()
        )));
    }
    let bytes = src.read_small(&name).map_err(|e| within(what, e))?;
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
fn plan_oci(src: &Source) -> Result<Vec<ImageDesc>> {
    let layout: Value = parse_json(
        &src.read_small("oci-layout")
            .map_err(|e| within("an OCI layout needs oci-layout", e))?,
        "oci-layout",
    )?;
    if !layout
        .get("imageLayoutVersion")
        .is_some_and(Value::is_string)
    {
        return Err(bad("oci-layout has no imageLayoutVersion"));
    }
    let index: ImageIndex = parse_json(&src.read_small("index.json")?, "index.json")?;
    if index.manifests().is_empty() {
        return Err(bad("index.json lists no image"));
    }
    // Entries for other platforms are left out when the host's is there
    // (index.json used as a multi-platform index); a lone entry for
    // another platform is loaded, as Docker does.
    let entries = index.manifests();
    let any_host = entries.iter().any(|d| host_rank(d).is_some());
    let chosen: Vec<(usize, &Descriptor)> = entries
        .iter()
        .enumerate()
        .filter(|(_, d)| d.platform().is_none() || host_rank(d).is_some() || !any_host)
        .collect();
    if !any_host && entries.len() > 1 && entries.iter().all(|d| d.platform().is_some()) {
        return Err(no_host_manifest(entries, "index.json"));
    }
    let mut plans = Vec::new();
    for (i, d) in chosen {
        let tags = names_of(d);
        let what = match tags.first() {
            Some(t) => format!("image {t}"),
            None => format!("image {} of index.json", i + 1),
        };
        let manifest = pick(src, d, 0, &what)?;
        plans.push(plan_manifest(src, &manifest, tags, what)?);
    }
    let mut merged = Vec::new();
    for p in plans {
        merge(&mut merged, p);
    }
    Ok(merged)
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

/// How well a descriptor's platform fits this machine: 2 with the exact
/// variant, 1 when either names none; `None` for another platform or no
/// platform at all.
fn host_rank(d: &Descriptor) -> Option<u8> {
    let (os, arch, variant) = format::host_platform();
    let p = d.platform().as_ref()?;
    if p.os().to_string() != os || p.architecture().to_string() != arch {
        return None;
    }
    match (p.variant().as_deref(), variant) {
        (Some(a), Some(b)) if a == b => Some(2),
        (Some(_), Some(_)) => None,
        _ => Some(1),
    }
}

fn no_host_manifest(entries: &[Descriptor], what: &str) -> Error {
    let (os, arch, _) = format::host_platform();
    let have: Vec<String> = entries
        .iter()
        .filter_map(|c| c.platform().as_ref())
        .map(|p| match p.variant() {
            Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
            None => format!("{}/{}", p.os(), p.architecture()),
        })
        .collect();
    Error::new(
        ErrorKind::NotFound,
        format!(
            "{what}: no manifest for {os}/{arch} (there are: {})",
            have.join(", ")
        ),
    )
}

/// The image manifest `d` leads to: itself, or the entry for this
/// machine's platform in the index it names (nested indexes followed).
fn pick(src: &Source, d: &Descriptor, depth: usize, what: &str) -> Result<Descriptor> {
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
    let best = index
        .manifests()
        .iter()
        .filter_map(|c| host_rank(c).map(|r| (r, c)))
        .max_by_key(|(r, _)| *r)
        .map(|(_, c)| c);
    let chosen = match best {
        Some(c) => c,
        None => {
            let unplatformed: Vec<&Descriptor> = index
                .manifests()
                .iter()
                .filter(|c| c.platform().is_none())
                .collect();
            match unplatformed.as_slice() {
                [one] if index.manifests().len() == 1 => *one,
                _ => return Err(no_host_manifest(index.manifests(), what)),
            }
        }
    };
    pick(src, chosen, depth + 1, what)
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

/// An image from its manifest's descriptor.
fn plan_manifest(
    src: &Source,
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
            diff_id,
            blob: Some(blob),
            size: Some(l.size()),
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
