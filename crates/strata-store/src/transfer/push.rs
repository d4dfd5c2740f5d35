//! `push`: an image of the store to a registry. Each layer's tar is
//! rebuilt from its tar-split record (so its diffID is the one the
//! config names) and compressed on the fly (gzip, or zstd); a layer the
//! repository already has is not sent, and one another repository of the
//! same registry has is mounted from it.
//!
//! Where each layer's compressed blob went is recorded per diffID
//! (digest, repository, media type, size: Docker's
//! `v2metadata-by-diffid`), so a layer pushed before needs no compression
//! pass to be found: a HEAD in this repository, else a cross-repository
//! mount from one it was pushed to. A layer never pushed has its digest
//! learnt by compressing once into a hasher, asked for with HEAD, and is
//! compressed again only when missing, into a chunked upload that must
//! come to the same digest. The manifest is an OCI image manifest; the
//! image config is the stored one, byte for byte, so the image ID
//! survives the trip.

use std::io::{self, Write};

use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use strata_archive::Digest;
use strata_registry::Client;

use super::Progress;
use crate::error::{Error, ErrorKind, Result};
use crate::layer::Layer;
use crate::Store;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// How layers are compressed on their way to a registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LayerCompression {
    /// What every client pulls.
    #[default]
    Gzip,
    /// Smaller and faster to unpack; Docker before 23 cannot pull it.
    Zstd,
}

impl LayerCompression {
    pub(super) fn media_type(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            LayerCompression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Bytes held in memory per upload chunk.
const CHUNK: usize = 8 << 20;

/// What `push` did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The image pushed.
    pub image: Digest,
    /// The digest of the manifest pushed: `repository@digest` names it.
    pub digest: Digest,
    /// Layers sent, layers the repository already had, and layers
    /// mounted from another repository of the registry.
    pub layers_sent: usize,
    pub layers_present: usize,
    pub layers_mounted: usize,
}

/// How a layer reached the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    Sent,
    Present,
    Mounted,
}

/// One place a layer's compressed blob was pushed to or pulled from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct BlobRecord {
    pub digest: String,
    /// `registry/repository`.
    pub source_repository: String,
    pub media_type: String,
    pub size: u64,
}

/// Whether a blob of `media_type` is what `compression` makes (Docker's
/// and OCI's names for one format alike).
fn same_format(media_type: &str, compression: LayerCompression) -> bool {
    match compression {
        LayerCompression::Gzip => media_type.ends_with("gzip"),
        LayerCompression::Zstd => media_type.ends_with("zstd"),
    }
}

impl Store {
    /// Pushes `image` (a name[:tag], an ID or a unique ID prefix) to
    /// `repository:tag` on the registry `client` speaks to, its layers
    /// compressed with `compression`.
    pub fn push(
        &self,
        client: &Client,
        image: &str,
        repository: &str,
        tag: &str,
        compression: LayerCompression,
        progress: &dyn Progress,
    ) -> Result<Pushed> {
        let (id, plan) = {
            let _lock = self.lock()?;
            let id = self.resolve_image(image)?;
            (id.clone(), self.plan_image(id, image)?)
        };
        let what = format!(
            "pushing {image} to {}/{repository}:{tag}",
            client.registry()
        );
        let ctx = |e: Error| Error::with(e.kind(), what.clone(), e);
        progress.start(0, plan.layers.len());
        let (mut sent, mut present, mut mounted) = (0, 0, 0);
        let mut descriptors = Vec::new();
        for layer in &plan.layers {
            let (digest, size, reached) = self
                .push_layer(client, repository, layer, compression)
                .map_err(ctx)?;
            match reached {
                Reached::Sent => sent += 1,
                Reached::Present => present += 1,
                Reached::Mounted => mounted += 1,
            }
            descriptors.push(json!({
                "mediaType": compression.media_type(),
                "digest": digest.to_string(),
                "size": size,
            }));
            progress.layer_done();
        }
        let config_digest = Digest::from_sha256(Sha256::new_with_prefix(&plan.config));
        let has_config = client
            .blob_exists(repository, &config_digest)
            .map_err(|e| registry(&what, e))?;
        if has_config.is_none() {
            client
                .upload_blob(
                    repository,
                    &config_digest,
                    plan.config.len() as u64,
                    &mut &plan.config[..],
                )
                .map_err(|e| registry(&what, e))?;
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": config_digest.to_string(),
                "size": plan.config.len(),
            },
            "layers": descriptors,
        });
        let bytes = serde_json::to_vec(&manifest).expect("a JSON value serializes");
        let digest = client
            .put_manifest(repository, tag, OCI_MANIFEST, &bytes)
            .map_err(|e| registry(&what, e))?;
        Ok(Pushed {
            image: id,
            digest,
            layers_sent: sent,
            layers_present: present,
            layers_mounted: mounted,
        })
    }

    /// Sends `layer` compressed unless the repository has it or can
    /// mount it: its digest, compressed size, and how it got there.
    fn push_layer(
        &self,
        client: &Client,
        repo: &str,
        layer: &Layer,
        compression: LayerCompression,
    ) -> Result<(Digest, u64, Reached)> {
        let what = format!("layer {}", layer.diff_id);
        let here = format!("{}/{repo}", client.registry());
        let reached = self.push_known(client, repo, layer, compression, &here)?;
        let (digest, size, how) = match reached {
            Some(r) => r,
            None => self.push_unknown(client, repo, layer, compression)?,
        };
        let record = BlobRecord {
            digest: digest.to_string(),
            source_repository: here,
            media_type: compression.media_type().to_owned(),
            size,
        };
        self.add_blob_record(&layer.diff_id, record)
            .map_err(|e| Error::with(e.kind(), what, e))?;
        Ok((digest, size, how))
    }

    /// `layer` by where its blob was pushed before, with no compression
    /// pass: present in `repo`, or mounted from another repository of
    /// the registry; `None` when no record serves.
    fn push_known(
        &self,
        client: &Client,
        repo: &str,
        layer: &Layer,
        compression: LayerCompression,
        here: &str,
    ) -> Result<Option<(Digest, u64, Reached)>> {
        let what = format!("layer {}", layer.diff_id);
        let prefix = format!("{}/", client.registry());
        let mut known: Vec<(Digest, String, u64)> = self
            .blob_records(&layer.diff_id)
            .into_iter()
            .filter(|r| same_format(&r.media_type, compression))
            .filter_map(|r| {
                let from = r.source_repository.strip_prefix(&prefix)?.to_owned();
                Some((Digest::parse(&r.digest)?, from, r.size))
            })
            .collect();
        // This repository's first.
        known.sort_by_key(|(_, from, _)| format!("{}/{from}", client.registry()) != here);
        for (digest, from, size) in known {
            if let Some(n) = client
                .blob_exists(repo, &digest)
                .map_err(|e| registry(&what, e))?
            {
                return Ok(Some((digest, n, Reached::Present)));
            }
            if from == repo {
                continue;
            }
            let mount = client
                .mount_blob(repo, &digest, &from)
                .map_err(|e| registry(&what, e))?;
            if mount == strata_registry::Mount::Mounted {
                return Ok(Some((digest, size, Reached::Mounted)));
            }
        }
        Ok(None)
    }

    /// `layer` never pushed with `compression` (or not found where it
    /// was): its digest learnt by compressing into a hasher, then sent
    /// unless the repository has it.
    fn push_unknown(
        &self,
        client: &Client,
        repo: &str,
        layer: &Layer,
        compression: LayerCompression,
    ) -> Result<(Digest, u64, Reached)> {
        let what = format!("layer {}", layer.diff_id);
        let mut hashing = HashWriter::<io::Sink>::default();
        self.compress_layer(layer, compression, &mut hashing)?;
        let (digest, size) = hashing.finish();
        if client
            .blob_exists(repo, &digest)
            .map_err(|e| registry(&what, e))?
            .is_some()
        {
            return Ok((digest, size, Reached::Present));
        }
        let mut upload = client
            .begin_upload(repo, CHUNK)
            .map_err(|e| registry(&what, e))?;
        self.compress_layer(layer, compression, &mut upload)?;
        upload
            .finish(Some(&digest))
            .map_err(|e| registry(&what, e))?;
        Ok((digest, size, Reached::Sent))
    }

    /// Where `diff_id`'s blobs were pushed; none when the record is
    /// missing or unreadable (it only saves work).
    fn blob_records(&self, diff_id: &Digest) -> Vec<BlobRecord> {
        let path = self.layout.blob_records(diff_id);
        crate::atomic::read_capped(&path, crate::atomic::RECORD_CAP)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Adds `record` to `diff_id`'s, the store lock held.
    pub(super) fn add_blob_record(&self, diff_id: &Digest, record: BlobRecord) -> Result<()> {
        /// Places kept per layer, the latest last.
        const KEPT: usize = 16;
        let _lock = self.lock()?;
        let mut records = self.blob_records(diff_id);
        records.retain(|r| r != &record);
        records.push(record);
        let drop = records.len().saturating_sub(KEPT);
        records.drain(..drop);
        let path = self.layout.blob_records(diff_id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let bytes = serde_json::to_vec(&records).expect("records serialize");
        crate::atomic::write(&path, &bytes)
    }

    /// The layer's tar, rebuilt, checked against its diffID and
    /// compressed into `out`. Both encoders give the same bytes for the
    /// same tar, which the two passes of `push_layer` rely on.
    pub(super) fn compress_layer(
        &self,
        layer: &Layer,
        compression: LayerCompression,
        out: &mut dyn Write,
    ) -> Result<()> {
        let failed = |e| Error::io(format!("compressing layer {}", layer.diff_id), e);
        let diff_id = match compression {
            LayerCompression::Gzip => {
                let mut gz = GzEncoder::new(out, flate2::Compression::default());
                let d = self.layer_tar(layer, &mut gz)?;
                gz.finish().map_err(failed)?;
                d
            }
            LayerCompression::Zstd => {
                let mut z = zstd::stream::write::Encoder::new(out, 3).map_err(failed)?;
                let d = self.layer_tar(layer, &mut z)?;
                z.finish().map_err(failed)?;
                d
            }
        };
        if diff_id != layer.diff_id {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "layer {}: its content hashes to {diff_id}, not its diffID {}",
                    layer.chain_id, layer.diff_id
                ),
            ));
        }
        Ok(())
    }
}

fn registry(what: &str, e: strata_registry::Error) -> Error {
    use strata_registry::ErrorKind as R;
    let kind = match e.kind() {
        R::NotFound => ErrorKind::NotFound,
        R::Corrupt => ErrorKind::Corrupt,
        R::Unauthorized | R::Denied => ErrorKind::PermissionDenied,
        R::Refused => ErrorKind::InvalidArgument,
        _ => ErrorKind::Io,
    };
    Error::with(kind, what.to_owned(), e)
}

/// Counts and hashes what is written to it, and passes it on to
/// `inner`, if any.
#[derive(Default)]
pub(super) struct HashWriter<W = io::Sink> {
    hasher: Sha256,
    len: u64,
    inner: Option<W>,
}

impl<W> HashWriter<W> {
    pub(super) fn to(inner: W) -> Self {
        HashWriter {
            hasher: Sha256::new(),
            len: 0,
            inner: Some(inner),
        }
    }

    pub(super) fn finish(self) -> (Digest, u64) {
        (Digest::from_sha256(self.hasher), self.len)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            Some(w) => w.write(buf)?,
            None => buf.len(),
        };
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}
