//! `strata load`: every image of a docker-archive or an OCI layout into the
//! store. The archive's documents are read and checked first; the layers
//! are then unpacked straight from the archive (at their offsets, several
//! at once when the driver allows), each checked against its descriptor
//! and its diffID; nothing is published until every layer of every image
//! has passed, so a bad archive leaves the store as it was.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use strata_archive::Digest;

use super::format::{self, DockerManifest, MAX_JSON};
use super::source::{clean, Source};
use super::Progress;
use crate::error::{Error, ErrorKind, Result};
use crate::image::{diff_ids, ImageRef};
use crate::layer::{chain_ids, Layer};
use crate::Store;

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

/// One image `load` put in the store.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    /// The tags it was given; empty for an untagged image.
    pub tags: Vec<ImageRef>,
    /// Layers unpacked, and layers found already in the store.
    pub layers_new: usize,
    pub layers_present: usize,
}

/// An image as the archive describes it, checked but not yet loaded.
struct Plan {
    id: Digest,
    config: Vec<u8>,
    tags: Vec<ImageRef>,
    layers: Vec<LayerPlan>,
    /// How errors name the image.
    what: String,
}

struct LayerPlan {
    /// Where its blob is in the archive.
    name: String,
    diff_id: Digest,
    /// The blob's digest and length, when the archive declares them.
    blob: Option<Digest>,
    size: Option<u64>,
}

/// A layer to unpack.
struct Job<'a> {
    plan: &'a LayerPlan,
    chain: Digest,
    parent: Parent,
    what: String,
}

enum Parent {
    None,
    Stored(Layer),
    /// A layer unpacked by an earlier job of this load.
    Job(usize),
}

/// A begun layer: its staging directory and driver id.
struct Slot {
    staging: PathBuf,
    cache_id: String,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

fn mismatch(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, msg)
}

/// `e`, introduced by what was being done.
fn within(what: &str, e: Error) -> Error {
    Error::with(e.kind(), what, e)
}

fn sha256(bytes: &[u8]) -> Digest {
    sha256_hex(Sha256::new_with_prefix(bytes))
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
    diff_ids(&v).map_err(|why| bad(format!("the config of {what}: {why}")))
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

impl Store {
    /// Loads every image of the archive or layout at `input` (a tar file,
    /// plain or compressed, or a directory).
    pub fn load(&self, input: &Path, progress: &dyn Progress) -> Result<Vec<Loaded>> {
        let source = Source::open(input, &self.root.join("tmp"))?;
        self.load_from(&source, progress)
    }

    /// [`Store::load`] from a stream (standard input): spooled to a file
    /// in the store's staging area first, since an archive's manifest
    /// usually comes after its layers.
    pub fn load_reader(
        &self,
        input: &mut dyn Read,
        progress: &dyn Progress,
    ) -> Result<Vec<Loaded>> {
        let source = Source::spooled(input, &self.root.join("tmp"))?;
        self.load_from(&source, progress)
    }

    fn load_from(&self, src: &Source, progress: &dyn Progress) -> Result<Vec<Loaded>> {
        let plans = if src.has("manifest.json") {
            plan_docker(src)?
        } else if src.has("index.json") {
            plan_oci(src)?
        } else {
            return Err(bad(
                "neither a docker-archive (no manifest.json) nor an OCI layout (no index.json)",
            ));
        };
        let _lock = self.lock()?;
        let mut jobs: Vec<Job<'_>> = Vec::new();
        let mut counts = Vec::new();
        for plan in &plans {
            let diffs: Vec<Digest> = plan.layers.iter().map(|l| l.diff_id.clone()).collect();
            let chains = chain_ids(&diffs);
            let (mut new, mut present) = (0, 0);
            for (i, (lp, chain)) in plan.layers.iter().zip(&chains).enumerate() {
                if self.layer(chain).is_ok() || jobs.iter().any(|j| &j.chain == chain) {
                    present += 1;
                    continue;
                }
                new += 1;
                let parent = match i.checked_sub(1).map(|p| &chains[p]) {
                    None => Parent::None,
                    Some(pc) => match jobs.iter().position(|j| &j.chain == pc) {
                        Some(j) => Parent::Job(j),
                        None => Parent::Stored(self.layer(pc)?),
                    },
                };
                jobs.push(Job {
                    plan: lp,
                    chain: chain.clone(),
                    parent,
                    what: format!("layer {} of {} ({})", i + 1, plan.what, lp.name),
                });
            }
            counts.push((new, present));
        }
        let total: u64 = jobs
            .iter()
            .map(|j| src.open_entry(&j.plan.name).map(|(_, n)| n).unwrap_or(0))
            .sum();
        progress.start(total, jobs.len());
        let layers = self.unpack(src, &jobs, progress)?;
        // Everything checked: make it durable, then visible.
        let published = (|| {
            self.sync_driver()?;
            for (slot, layer) in &layers {
                self.publish_layer(&slot.staging, &layer.chain_id)?;
            }
            self.sync_layerdb()
        })();
        if let Err(e) = published {
            for (slot, _) in layers.iter().rev() {
                if slot.staging.exists() {
                    self.discard_layer(&slot.staging, &slot.cache_id);
                }
            }
            return Err(e);
        }
        let mut out = Vec::new();
        for (plan, (new, present)) in plans.iter().zip(counts) {
            let id = self.put_image(&plan.config, None)?;
            debug_assert_eq!(id, plan.id);
            for t in &plan.tags {
                self.tag_locked(&id, t)?;
            }
            out.push(Loaded {
                id,
                tags: plan.tags.clone(),
                layers_new: new,
                layers_present: present,
            });
        }
        Ok(out)
    }

    /// Unpacks every job into a staged layer, in parallel when the driver
    /// allows; on any error discards them all.
    fn unpack(
        &self,
        src: &Source,
        jobs: &[Job<'_>],
        progress: &dyn Progress,
    ) -> Result<Vec<(Slot, Layer)>> {
        let mut slots: Vec<Slot> = Vec::with_capacity(jobs.len());
        let discard = |slots: &[Slot]| {
            for s in slots.iter().rev() {
                self.discard_layer(&s.staging, &s.cache_id);
            }
        };
        let parent_cache = |slots: &[Slot], job: &Job<'_>| -> Option<String> {
            match &job.parent {
                Parent::None => None,
                Parent::Stored(l) => Some(l.cache_id.clone()),
                Parent::Job(i) => Some(slots[*i].cache_id.clone()),
            }
        };
        let mut layers = Vec::with_capacity(jobs.len());
        if !self.driver.layers_independent() {
            for job in jobs {
                let pc = parent_cache(&slots, job);
                let filled = self
                    .begin_layer(pc.as_deref())
                    .and_then(|(staging, cache_id)| {
                        slots.push(Slot { staging, cache_id });
                        self.fill_job(
                            src,
                            job,
                            slots.last().expect("pushed"),
                            pc.as_deref(),
                            jobs,
                            progress,
                        )
                    });
                match filled {
                    Ok(l) => layers.push(l),
                    Err(e) => {
                        discard(&slots);
                        return Err(e);
                    }
                }
            }
            return Ok(slots.into_iter().zip(layers).collect());
        }
        for job in jobs {
            let pc = parent_cache(&slots, job);
            match self.begin_layer(pc.as_deref()) {
                Ok((staging, cache_id)) => slots.push(Slot { staging, cache_id }),
                Err(e) => {
                    discard(&slots);
                    return Err(within(&job.what, e));
                }
            }
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<Layer>>>> =
            Mutex::new((0..jobs.len()).map(|_| None).collect());
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 4)
            .min(jobs.len());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs.len() || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let pc = parent_cache(&slots, &jobs[i]);
                    let r = self.fill_job(src, &jobs[i], &slots[i], pc.as_deref(), jobs, progress);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().expect("no worker panics holding it")[i] = Some(r);
                });
            }
        });
        let results = results.into_inner().expect("no worker panicked");
        let mut first_err = None;
        for r in results {
            match r {
                Some(Ok(l)) => layers.push(l),
                Some(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                None => {}
            }
        }
        if let Some(e) = first_err {
            discard(&slots);
            return Err(e);
        }
        Ok(slots.into_iter().zip(layers).collect())
    }

    /// Unpacks one layer's blob into its begun layer and checks it: the
    /// blob against its descriptor, the content against the diffID.
    fn fill_job(
        &self,
        src: &Source,
        job: &Job<'_>,
        slot: &Slot,
        parent_cache: Option<&str>,
        jobs: &[Job<'_>],
        progress: &dyn Progress,
    ) -> Result<Layer> {
        let checked = (|| {
            let (reader, len) = src.open_entry(&job.plan.name)?;
            if let Some(size) = job.plan.size {
                if size != len {
                    return Err(mismatch(format!(
                        "the blob is {len} bytes, its descriptor says {size}"
                    )));
                }
            }
            let mut input = Counted {
                inner: reader,
                hasher: Sha256::new(),
                progress,
            };
            let report =
                self.fill_layer(&slot.staging, &slot.cache_id, parent_cache, &mut input)?;
            // Whatever follows the tar's end is part of the blob too.
            io::copy(&mut input, &mut io::sink()).map_err(|e| Error::io("reading the blob", e))?;
            let got = sha256_hex(input.hasher);
            if let Some(blob) = &job.plan.blob {
                if &got != blob {
                    return Err(mismatch(format!(
                        "the blob's sha256 is {got}, its descriptor says {blob}"
                    )));
                }
            }
            if report.diff_id != job.plan.diff_id {
                return Err(mismatch(format!(
                    "its content's sha256 (diffID) is {}, the image config says {}",
                    report.diff_id, job.plan.diff_id
                )));
            }
            let parent = match &job.parent {
                Parent::None => None,
                Parent::Stored(l) => Some(l.chain_id.clone()),
                Parent::Job(i) => Some(jobs[*i].chain.clone()),
            };
            let layer = Layer {
                chain_id: job.chain.clone(),
                diff_id: report.diff_id,
                cache_id: slot.cache_id.clone(),
                size: report.size,
                parent,
            };
            self.stage_metadata(&slot.staging, &layer)?;
            Ok(layer)
        })();
        progress.layer_done();
        checked.map_err(|e| within(&job.what, e))
    }
}

fn sha256_hex(h: Sha256) -> Digest {
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Digest::parse(&format!("sha256:{hex}")).expect("a sha256 digest")
}

/// Hashes a blob as it is read and reports progress.
struct Counted<'a> {
    inner: Box<dyn Read + Send>,
    hasher: Sha256,
    progress: &'a dyn Progress,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// The images of a docker-archive's `manifest.json`.
fn plan_docker(src: &Source) -> Result<Vec<Plan>> {
    let manifests: Vec<DockerManifest> =
        parse_json(&src.read_small("manifest.json")?, "manifest.json")?;
    if manifests.is_empty() {
        return Err(bad("manifest.json lists no image"));
    }
    let mut plans: Vec<Plan> = Vec::new();
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
            .map(|(name, diff_id)| LayerPlan {
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
            Plan {
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
fn merge(plans: &mut Vec<Plan>, plan: Plan) {
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
fn plan_oci(src: &Source) -> Result<Vec<Plan>> {
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
fn plan_manifest(src: &Source, d: &Descriptor, tags: Vec<ImageRef>, what: String) -> Result<Plan> {
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
        layers.push(LayerPlan {
            name,
            diff_id,
            blob: Some(blob),
            size: Some(l.size()),
        });
    }
    Ok(Plan {
        id,
        config,
        tags,
        layers,
        what,
    })
}
