//! `pull`: an image from a registry into the store, through the same
//! pipeline as `load` (plan, then unpack and verify each layer as it
//! streams, then publish all or nothing). The registry is one more
//! image [`Source`]: blobs by digest from `/v2/<repo>/blobs/`, manifests
//! and indexes from `/v2/<repo>/manifests/`, each checked against its
//! digest as it arrives; layers already in the store (same chainID) are
//! never fetched.

use std::collections::HashMap;
use std::sync::Mutex;

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
        let mut loaded = self.load_from(
            &src,
            std::slice::from_ref(&plan),
            opts.max_concurrent_downloads,
            progress,
        )?;
        let image = loaded.pop().expect("one image planned, one loaded");
        Ok(Pulled {
            image,
            digest: top.digest,
        })
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
}

impl Source for RegistrySource<'_> {
    fn open(&self, key: &BlobKey) -> strata_image::Result<Blob<'_>> {
        let BlobKey::Digest(digest) = key else {
            return Err(strata_image::Error::new(
                strata_image::ErrorKind::NotFound,
                format!("a registry has no file {key:?}"),
            ));
        };
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
