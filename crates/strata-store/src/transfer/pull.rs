//! `pull`: an image from a registry into the store, through the same
//! pipeline as `load` (plan, then unpack and verify each layer as it
//! streams, then publish all or nothing). The registry is one more
//! image [`Source`]: blobs by digest from `/v2/<repo>/blobs/`, manifests
//! and indexes from `/v2/<repo>/manifests/`, each checked against its
//! digest as it arrives; layers already in the store (same chainID) are
//! never fetched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use strata_archive::Digest;
use strata_image::{parse_platform, read_image, Blob, BlobKey, ImageRef, Source};
use strata_registry::Client;

use super::{Loaded, Progress};
use crate::error::{Error, ErrorKind, Result};
use crate::Store;

/// What `pull` brought in.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: Loaded,
    /// The digest of the manifest or index the reference named: what
    /// pins this content (`name@digest`).
    pub digest: Digest,
}

/// Layers `pull` downloads at once by default, as `docker pull`.
pub const MAX_CONCURRENT_DOWNLOADS: usize = 3;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions<'a> {
    /// The name to give the image.
    pub tag: Option<&'a ImageRef>,
    /// `os/arch[/variant]`; this machine's when `None`.
    pub platform: Option<&'a str>,
    /// Layers downloaded (and unpacked) at once.
    pub max_concurrent_downloads: usize,
}

impl Default for PullOptions<'_> {
    fn default() -> Self {
        PullOptions {
            tag: None,
            platform: None,
            max_concurrent_downloads: MAX_CONCURRENT_DOWNLOADS,
        }
    }
}

impl Store {
    /// Pulls `reference` (a tag or a `sha256:` digest) of `repository`
    /// from the registry `client` speaks to, for `platform`
    /// (`os/arch[/variant]`; this machine's when `None`), and tags it
    /// `tag` when given.
    pub fn pull(
        &self,
        client: &Client,
        repository: &str,
        reference: &str,
        tag: Option<&ImageRef>,
        platform: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Pulled> {
        let opts = PullOptions {
            tag,
            platform,
            ..PullOptions::default()
        };
        self.pull_with(client, repository, reference, &opts, progress)
    }

    /// [`Store::pull`] with every option.
    pub fn pull_with(
        &self,
        client: &Client,
        repository: &str,
        reference: &str,
        opts: &PullOptions<'_>,
        progress: &dyn Progress,
    ) -> Result<Pulled> {
        let (tag, platform) = (opts.tag, opts.platform);
        let platform = platform.map(parse_platform).transpose()?;
        let what = format!("{}/{repository}:{reference}", client.registry());
        let top = client
            .get_manifest(repository, reference)
            .map_err(|e| from_registry(&what, e))?;
        let src = RegistrySource {
            client,
            repo: repository.to_owned(),
            partials: self.layout.partial_blobs(),
            manifests: Mutex::new(HashMap::from([(top.digest.clone(), top.bytes.clone())])),
            ahead: Ahead::default(),
        };
        let plan = read_image(
            &src,
            &top.media_type,
            &top.digest,
            top.bytes.len() as u64,
            platform,
            tag.into_iter().cloned().collect(),
            format!("image {what}"),
        )?;
        // Foreign layers (Windows base layers, once) live at URLs the
        // manifest names outside the registry; strata fetches only from
        // the registry it was pointed at.
        if let Some((i, l)) = plan.layers.iter().enumerate().find(|(_, l)| l.foreign) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "pulling {what}: layer {} ({}) is a foreign (non-distributable) layer, which strata does not fetch",
                    i + 1,
                    l.name
                ),
            ));
        }
        // A driver whose layers copy their parent applies them one at a
        // time; the downloads still overlap: the layers after the one
        // being applied are fetched ahead into their partial files.
        let ahead = if self.driver.layers_independent() {
            Vec::new()
        } else {
            self.layers_to_fetch(&plan).into_iter().skip(1).collect()
        };
        src.ahead.queue(&ahead);
        let fetchers = opts
            .max_concurrent_downloads
            .saturating_sub(1)
            .min(ahead.len());
        let mut loaded = std::thread::scope(|s| {
            for _ in 0..fetchers {
                s.spawn(|| src.fetch_ahead());
            }
            let loaded = self.load_from(
                &src,
                std::slice::from_ref(&plan),
                opts.max_concurrent_downloads,
                progress,
            );
            src.ahead.stop();
            loaded
        })?;
        let image = loaded.pop().expect("one image planned, one loaded");
        // Where its layers came from, for a push to another repository
        // of this registry to mount them.
        let here = format!("{}/{repository}", client.registry());
        for (diff_id, record) in src.blob_records(&plan, &here) {
            if let Err(e) = self.add_blob_record(&diff_id, record) {
                tracing::warn!("recording where layer {diff_id} came from: {e}");
            }
        }
        Ok(Pulled {
            image,
            digest: top.digest,
        })
    }
}

impl Store {
    /// The blobs of `plan`'s layers not in the store, bottom first.
    fn layers_to_fetch(&self, plan: &strata_image::ImageDesc) -> Vec<Digest> {
        let diffs: Vec<Digest> = plan.layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = crate::layer::chain_ids(&diffs);
        let mut out: Vec<Digest> = Vec::new();
        for (l, chain) in plan.layers.iter().zip(&chains) {
            if let (Some(blob), false) = (&l.blob, self.layer(chain).is_ok()) {
                if !out.contains(blob) {
                    out.push(blob.clone());
                }
            }
        }
        out
    }
}

/// Blobs fetched ahead of their turn, and where each stands.
#[derive(Default)]
struct Ahead {
    state: Mutex<Vec<(Digest, Fetch)>>,
    changed: Condvar,
    stop: AtomicBool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fetch {
    Queued,
    Running,
    /// Fetched, or given up on: its turn opens it as usual.
    Finished,
    /// Its turn came first: streamed then, not fetched ahead.
    Taken,
    /// The registry sent bytes that are not the blob: its turn fails.
    Corrupt(String),
}

impl Ahead {
    fn queue(&self, blobs: &[Digest]) {
        let mut st = self.state.lock().expect("no panic holds it");
        st.extend(blobs.iter().map(|d| (d.clone(), Fetch::Queued)));
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The next blob to fetch ahead, marked running.
    fn next(&self) -> Option<Digest> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let mut st = self.state.lock().expect("no panic holds it");
        let (d, f) = st.iter_mut().find(|(_, f)| *f == Fetch::Queued)?;
        *f = Fetch::Running;
        Some(d.clone())
    }

    fn finished(&self, digest: &Digest, corrupt: Option<std::io::Error>) {
        let mut st = self.state.lock().expect("no panic holds it");
        for (d, f) in st.iter_mut() {
            if d == digest {
                *f = match &corrupt {
                    Some(e) => Fetch::Corrupt(e.to_string()),
                    None => Fetch::Finished,
                };
            }
        }
        self.changed.notify_all();
    }

    /// `digest`'s turn: waits while it is being fetched ahead; one not
    /// yet begun is taken from the queue; one found corrupt fails.
    fn turn(&self, digest: &Digest) -> strata_image::Result<()> {
        let mut st = self.state.lock().expect("no panic holds it");
        loop {
            let Some((_, f)) = st.iter_mut().find(|(d, _)| d == digest) else {
                return Ok(());
            };
            match f {
                Fetch::Queued => {
                    *f = Fetch::Taken;
                    return Ok(());
                }
                Fetch::Running => {
                    st = self.changed.wait(st).expect("no panic holds it");
                }
                Fetch::Finished | Fetch::Taken => return Ok(()),
                Fetch::Corrupt(why) => {
                    return Err(strata_image::Error::new(
                        strata_image::ErrorKind::Corrupt,
                        why.clone(),
                    ))
                }
            }
        }
    }
}

/// A repository of a registry as an image source.
struct RegistrySource<'c> {
    client: &'c Client,
    repo: String,
    /// Where partly fetched blobs are kept ([`super::partial`]).
    partials: std::path::PathBuf,
    /// Manifests and indexes already fetched, by digest.
    manifests: Mutex<HashMap<Digest, Vec<u8>>>,
    /// Layer blobs fetched ahead of their turn.
    ahead: Ahead,
}

impl RegistrySource<'_> {
    /// For each layer of `plan`, its blob as the manifests fetched
    /// describe it (digest, media type, size), from repository `here`.
    fn blob_records(
        &self,
        plan: &strata_image::ImageDesc,
        here: &str,
    ) -> Vec<(Digest, super::push::BlobRecord)> {
        let manifests = self.manifests.lock().expect("no panic holds it");
        let described: Vec<serde_json::Value> = manifests
            .values()
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .filter_map(|m| m.get("layers").and_then(|l| l.as_array()).cloned())
            .flatten()
            .collect();
        let mut out = Vec::new();
        for l in &plan.layers {
            let Some(blob) = &l.blob else { continue };
            let found = described
                .iter()
                .find(|d| d.get("digest").and_then(|v| v.as_str()) == Some(blob.as_str()));
            let (Some(media_type), Some(size)) = (
                found
                    .and_then(|d| d.get("mediaType"))
                    .and_then(|v| v.as_str()),
                found.and_then(|d| d.get("size")).and_then(|v| v.as_u64()),
            ) else {
                continue;
            };
            out.push((
                l.diff_id.clone(),
                super::push::BlobRecord {
                    digest: blob.to_string(),
                    source_repository: here.to_owned(),
                    media_type: media_type.to_owned(),
                    size,
                },
            ));
        }
        out
    }

    /// Fetches queued blobs ahead into their partial files until none is
    /// left or the pull ends.
    fn fetch_ahead(&self) {
        while let Some(d) = self.ahead.next() {
            let corrupt = super::partial::fetch(
                self.client,
                &self.repo,
                &d,
                &self.partials,
                &self.ahead.stop,
            );
            self.ahead.finished(&d, corrupt);
        }
    }
}

impl Source for RegistrySource<'_> {
    fn open(&self, key: &BlobKey) -> strata_image::Result<Blob<'_>> {
        let BlobKey::Digest(digest) = key else {
            return Err(strata_image::Error::new(
                strata_image::ErrorKind::NotFound,
                format!("a registry has no file {key:?}"),
            ));
        };
        self.ahead.turn(digest)?;
        let (reader, size) = super::partial::open(self.client, &self.repo, digest, &self.partials)
            .map_err(to_image)?;
        Ok(Blob {
            reader: Box::new(reader),
            size,
            verified: true,
        })
    }

    fn read_manifest(&self, digest: &Digest, cap: u64) -> strata_image::Result<Vec<u8>> {
        let cached = self
            .manifests
            .lock()
            .expect("no panic holds the manifest cache")
            .get(digest)
            .cloned();
        let bytes = match cached {
            Some(b) => b,
            None => {
                let m = self
                    .client
                    .get_manifest(&self.repo, &digest.to_string())
                    .map_err(to_image)?;
                m.bytes
            }
        };
        if bytes.len() as u64 > cap {
            return Err(strata_image::Error::new(
                strata_image::ErrorKind::InvalidArgument,
                format!(
                    "manifest {digest} is {} bytes, more than any image document may be",
                    bytes.len()
                ),
            ));
        }
        self.manifests
            .lock()
            .expect("no panic holds the manifest cache")
            .insert(digest.clone(), bytes.clone());
        Ok(bytes)
    }
}

fn kind_of(e: &strata_registry::Error) -> ErrorKind {
    use strata_registry::ErrorKind as R;
    match e.kind() {
        R::NotFound => ErrorKind::NotFound,
        R::Corrupt => ErrorKind::Corrupt,
        R::Unauthorized | R::Denied => ErrorKind::PermissionDenied,
        R::Refused => ErrorKind::InvalidArgument,
        _ => ErrorKind::Io,
    }
}

fn from_registry(what: &str, e: strata_registry::Error) -> Error {
    Error::with(kind_of(&e), format!("pulling {what}"), e)
}

fn to_image(e: strata_registry::Error) -> strata_image::Error {
    use strata_image::ErrorKind as I;
    let kind = match kind_of(&e) {
        ErrorKind::NotFound => I::NotFound,
        ErrorKind::Corrupt => I::Corrupt,
        _ => I::Io,
    };
    let msg = e.to_string();
    strata_image::Error::with(kind, msg, e)
}
