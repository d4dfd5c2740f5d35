//! `push`: an image of the store to a registry. Each layer's tar is
//! rebuilt from its tar-split record (so its diffID is the one the
//! config names) and compressed on the fly (gzip on several threads, or
//! zstd); a layer the repository already has is not sent, and one another
//! repository of the same registry has is mounted from it.
//!
//! Where each layer's compressed blob went is recorded per diffID
//! (digest, repository, media type, size: Docker's
//! `v2metadata-by-diffid`), by push and by pull alike, so a layer pushed
//! or pulled before is found with no compression at all: a HEAD in this
//! repository, else a cross-repository mount from one it was in. A layer
//! no record serves is compressed once, straight into a chunked upload
//! that hashes what it sends; the digest is named in the closing `PUT`
//! (what containers/image and Docker do: the registry checks it). Several
//! layers go at once, and the manifest lists them in the image's order
//! once every layer's digest and size are known. The manifest is an OCI
//! image manifest; the image config is the stored one, byte for byte, so
//! the image ID survives the trip.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use strata_archive::Digest;
use strata_registry::Client;

use super::{LayerStatus, Progress};
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
    fn name(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "gzip",
            LayerCompression::Zstd => "zstd",
        }
    }

    /// The level layers are compressed at unless one is asked for.
    pub(super) fn default_level(self) -> i32 {
        match self {
            LayerCompression::Gzip => GZIP_LEVEL,
            LayerCompression::Zstd => ZSTD_LEVEL,
        }
    }

    pub(super) fn media_type(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            LayerCompression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Compressed bytes handed to the upload thread at a time, and how many
/// may wait to be sent.
const PIPE_PIECE: usize = 256 << 10;
const PIPE_DEPTH: usize = 16;

/// Layers compressed and sent at once unless told otherwise (Docker's
/// `max-concurrent-uploads` default).
pub const MAX_CONCURRENT_UPLOADS: usize = 5;

/// gzip's level: what Podman and skopeo compress layers at, matched by
/// the bytes it makes. containers/image deflates with pgzip at Go's
/// `DefaultCompression`, which klauspost/compress takes as its level 5,
/// one of the greedy hash-table encoders it uses for 1-6 (no lazy
/// matching, no hash chains): its blob of Debian's minbase tar is within
/// 0.01% of the size zlib's level 3 makes of it. Level 6, Docker's (Go's
/// compress/gzip default, on one thread), makes blobs 2% smaller for
/// about a quarter more CPU; `--compression-level 6` asks for that.
const GZIP_LEVEL: i32 = 3;
/// zstd's level: the library's default.
const ZSTD_LEVEL: i32 = 3;

/// How `push_with` pushes.
#[derive(Debug, Clone, Copy)]
pub struct PushOptions {
    /// How layers are compressed.
    pub compression: LayerCompression,
    /// Layers compressed and sent at once (at least one).
    pub max_concurrent_uploads: usize,
    /// The compression level: gzip 0-9 (default 3), zstd 1-22 (default
    /// 3). Only layers compressed by this push are made at it.
    pub compression_level: Option<i32>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            compression: LayerCompression::default(),
            max_concurrent_uploads: MAX_CONCURRENT_UPLOADS,
            compression_level: None,
        }
    }
}

impl PushOptions {
    /// The level asked for, or the format's default; one out of the
    /// format's range is refused.
    fn level(&self) -> Result<i32> {
        let (range, default) = match self.compression {
            LayerCompression::Gzip => (0..=9, GZIP_LEVEL),
            LayerCompression::Zstd => (1..=22, ZSTD_LEVEL),
        };
        match self.compression_level {
            None => Ok(default),
            Some(l) if range.contains(&l) => Ok(l),
            Some(l) => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "compression level {l}: {} takes {} to {}",
                    self.compression.name(),
                    range.start(),
                    range.end()
                ),
            )),
        }
    }
}

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

/// Where a layer's blob is: its digest, compressed size, and how it
/// got there.
type LayerPushed = (Digest, u64, Reached);

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

/// Where a push sends layers, and how.
#[derive(Clone, Copy)]
struct Dest<'a> {
    client: &'a Client,
    repo: &'a str,
    opts: &'a PushOptions,
    progress: &'a dyn Progress,
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
        let opts = PushOptions {
            compression,
            ..PushOptions::default()
        };
        self.push_with(client, image, repository, tag, &opts, progress)
    }

    /// [`Store::push`] with every option.
    pub fn push_with(
        &self,
        client: &Client,
        image: &str,
        repository: &str,
        tag: &str,
        opts: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<Pushed> {
        let compression = opts.compression;
        opts.level()?;
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
        let to = Dest {
            client,
            repo: repository,
            opts,
            progress,
        };
        let reached = self.push_layers(&to, &plan.layers).map_err(ctx)?;
        let (mut sent, mut present, mut mounted) = (0, 0, 0);
        let mut descriptors = Vec::new();
        for (digest, size, how) in reached {
            match how {
                Reached::Sent => sent += 1,
                Reached::Present => present += 1,
                Reached::Mounted => mounted += 1,
            }
            descriptors.push(json!({
                "mediaType": compression.media_type(),
                "digest": digest.to_string(),
                "size": size,
            }));
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

    /// Every layer of `layers`, `max_concurrent_uploads` at a time:
    /// where each went, in the order given. A failure stops the layers not
    /// yet begun; the first in the image's order is the one returned.
    fn push_layers(&self, to: &Dest<'_>, layers: &[Layer]) -> Result<Vec<LayerPushed>> {
        let (opts, progress) = (to.opts, to.progress);
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let done: Mutex<Vec<Option<Result<LayerPushed>>>> =
            Mutex::new(layers.iter().map(|_| None).collect());
        let workers = opts.max_concurrent_uploads.clamp(1, layers.len().max(1));
        for layer in layers {
            progress.layer(&layer.diff_id, LayerStatus::Waiting);
        }
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(layer) = layers.get(i) else { return };
                    let got = self.push_layer(to, layer);
                    match &got {
                        Err(_) => failed.store(true, Ordering::Relaxed),
                        Ok((_, _, how)) => {
                            let status = match how {
                                Reached::Sent => LayerStatus::Pushed,
                                Reached::Mounted => LayerStatus::Mounted,
                                Reached::Present => LayerStatus::LayerExists,
                            };
                            progress.layer(&layer.diff_id, status);
                            progress.layer_done();
                        }
                    }
                    done.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(got);
                });
            }
        });
        let done = done.into_inner().unwrap_or_else(|p| p.into_inner());
        // The first error in layer order, else every layer's.
        done.into_iter().flatten().collect()
    }

    /// Sends `layer` compressed unless the repository has it or can
    /// mount it: its digest, compressed size, and how it got there.
    fn push_layer(&self, to: &Dest<'_>, layer: &Layer) -> Result<LayerPushed> {
        let what = format!("layer {}", layer.diff_id);
        let here = format!("{}/{}", to.client.registry(), to.repo);
        let compression = to.opts.compression;
        let (digest, size, how) = match self.push_known(to, layer, &here)? {
            Some(r) => r,
            None => self.push_unknown(&what, to, layer)?,
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
    fn push_known(&self, to: &Dest<'_>, layer: &Layer, here: &str) -> Result<Option<LayerPushed>> {
        let (client, repo, compression) = (to.client, to.repo, to.opts.compression);
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

    /// `layer` no record serves: compressed once, into an upload that
    /// hashes what it sends and names that digest when it ends. The
    /// upload runs on a thread of its own, so that compression goes on
    /// while the bytes before are on their way.
    fn push_unknown(&self, what: &str, to: &Dest<'_>, layer: &Layer) -> Result<LayerPushed> {
        let Dest {
            client,
            repo,
            opts,
            progress,
        } = *to;
        let level = opts.level()?;
        progress.layer(&layer.diff_id, LayerStatus::Pushing { done: 0 });
        let (tx, rx) = sync_channel::<Piece>(PIPE_DEPTH);
        std::thread::scope(|s| {
            let sender = s.spawn(|| {
                let mut reader = PipeReader {
                    rx,
                    cur: Vec::new(),
                    pos: 0,
                };
                client
                    .upload_stream(repo, &mut reader)
                    .map_err(|e| registry(what, e))
            });
            let mut pipe = Pipe {
                tx: Some(tx),
                buf: Vec::with_capacity(PIPE_PIECE),
                broken: false,
                sent: 0,
                report: &|done| progress.layer(&layer.diff_id, LayerStatus::Pushing { done }),
            };
            let compressed = self
                .compress_layer(layer, opts.compression, level, &mut pipe)
                .and_then(|()| pipe.end());
            let broken = pipe.broken;
            // Hangs up: an upload not yet ended fails rather than
            // closing on part of a blob.
            drop(pipe);
            let sent = sender.join().expect("the upload thread does not panic");
            let (digest, size) = match (sent, compressed) {
                // The upload's failure, unless compression failed first.
                (Err(e), _) if broken => return Err(e),
                (_, Err(e)) | (Err(e), Ok(())) => return Err(e),
                (Ok(d), Ok(())) => d,
            };
            Ok((digest, size, Reached::Sent))
        })
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
    /// compressed into `out` at `level`; gzip deflates on every core (the
    /// same bytes for the same tar whatever their number).
    pub(super) fn compress_layer(
        &self,
        layer: &Layer,
        compression: LayerCompression,
        level: i32,
        out: &mut (dyn Write + Send),
    ) -> Result<()> {
        let failed = |e| Error::io(format!("compressing layer {}", layer.diff_id), e);
        let diff_id = match compression {
            LayerCompression::Gzip => {
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                let level = u32::try_from(level).unwrap_or(0);
                strata_archive::parallel_gzip(out, level, threads, |gz| self.layer_tar(layer, gz))
                    .map_err(failed)??
            }
            LayerCompression::Zstd => {
                let mut z = zstd::stream::write::Encoder::new(out, level).map_err(failed)?;
                let d = self.layer_tar(layer, &mut z)?;
                z.finish().map_err(failed)?;
                d
            }
        };
        if diff_id != layer.diff_id {
            let found = format!("its content hashes to {diff_id}");
            return Err(super::not_its_diff_id(layer, &found));
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

/// What the compressor hands the upload thread.
enum Piece {
    Bytes(Vec<u8>),
    /// The blob is whole: finish the upload.
    End,
}

/// The compressor's end of the pipe to the upload thread.
struct Pipe<'p> {
    tx: Option<SyncSender<Piece>>,
    buf: Vec<u8>,
    /// The upload thread hung up.
    broken: bool,
    /// Bytes handed to the upload thread, told to `report` as they go.
    sent: u64,
    report: &'p (dyn Fn(u64) + Sync),
}

impl Pipe<'_> {
    fn send(&mut self, piece: Piece) -> io::Result<()> {
        let len = match &piece {
            Piece::Bytes(b) => b.len() as u64,
            Piece::End => 0,
        };
        let sent = self.tx.as_ref().and_then(|tx| tx.send(piece).ok());
        if sent.is_none() {
            self.broken = true;
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the upload stopped",
            ));
        }
        if len > 0 {
            self.sent += len;
            (self.report)(self.sent);
        }
        Ok(())
    }

    /// Sends the rest and says the blob is whole.
    fn end(&mut self) -> Result<()> {
        let failed = |e| Error::io("ending the upload".to_owned(), e);
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() {
            self.send(Piece::Bytes(rest)).map_err(failed)?;
        }
        self.send(Piece::End).map_err(failed)?;
        self.tx = None;
        Ok(())
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIPE_PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIPE_PIECE {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(PIPE_PIECE));
            self.send(Piece::Bytes(full))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The upload thread's end of the pipe: the blob's bytes, then its end;
/// an error when the compressor hangs up without ending it.
struct PipeReader {
    rx: Receiver<Piece>,
    cur: Vec<u8>,
    pos: usize,
}

impl io::Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Piece::Bytes(b)) => {
                    self.cur = b;
                    self.pos = 0;
                }
                Ok(Piece::End) => return Ok(0),
                Err(_) => return Err(io::Error::other("the layer's compression failed")),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
