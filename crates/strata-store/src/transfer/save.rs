//! `strata save`: images out of the store as a docker-archive, an OCI
//! archive or an OCI layout directory.
//!
//! All three hold the OCI image layout Docker 25's `docker save` writes;
//! the docker-archive adds Docker's two files beside it, which is all
//! Docker 20.10 and older read:
//!
//! ```text
//! blobs/sha256/<image-id hex>     an image's config, byte-exact
//! blobs/sha256/<diffID hex>       a layer, uncompressed, byte for byte as it
//!                                 came in; once, however many images share it
//!                                 (with --compress: blobs/sha256/<blob hex>,
//!                                 the tar gzip'd or zstd'd)
//! blobs/sha256/<manifest hex>     an image's OCI manifest
//! index.json                      one entry per tag; one without annotations
//!                                 for an image saved untagged
//! oci-layout
//! manifest.json                   docker-archive: [{Config, RepoTags, Layers}]
//! repositories                    docker-archive: {"name":{"tag":"<top diffID hex>"}},
//!                                 when anything is tagged
//! ```
//!
//! # Tags
//!
//! An image named by tag records that tag: `RepoTags` and `repositories`
//! get Docker's short form (`busybox:latest`), the index entry
//! `org.opencontainers.image.ref.name` = the tag alone and
//! `io.containerd.image.name` = the full name
//! (`docker.io/library/busybox:latest`), as Docker 25 writes them. An
//! image named by ID or ID prefix is saved untagged, as `docker save` and
//! `podman save` do.
//!
//! # Concurrency
//!
//! Images and layers are looked up under the store lock, which is dropped
//! before any layer is streamed: a long save does not hold up other
//! `strata` processes. A layer removed meanwhile fails the save (its
//! record or content is gone, or no longer matches its diffID).
//!
//! # Compression
//!
//! Layers are written as their tars, as `docker save` writes them, unless
//! [`SaveOptions::compression`] asks for gzip or zstd. The store keeps no
//! compressed blob of what it loaded or pulled (that would be a second
//! copy of every layer), so a compressed save compresses each layer
//! afresh: the diffIDs and the image ID are kept, the blob digests are
//! this encoder's. The manifests name the blobs' digests and a tar header
//! their lengths, both known only once a layer is compressed: every
//! layer is compressed into a spool directory under `tmp/` first, then
//! streamed.
//!
//! # Output
//!
//! An archive is written in one pass (a layer's length is known from its
//! tar-split record before its content is rebuilt) to a temp file beside
//! the target, renamed over it at the end. `oci-dir` writes into a
//! directory that must not exist or be empty: each blob goes to a temp
//! name, is synced and renamed into place, and `index.json` comes last.
//! Whatever fails, no half archive or half layout is left behind. An
//! archive may go to a stream instead (standard output), where a failure
//! leaves what was written, as `docker save` to a pipe does.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::Value;
use strata_archive::{Compression, Digest};
use strata_image::{
    layout, Content, DirSink, Entry, SaveFormat, SaveImage, SaveLayer, Sink, TarSink,
};
use strata_sys::atomic::AtomicFile;

use super::push::HashWriter;
use super::{LayerCompression, Progress};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::layer::{chain_ids, Layer};
use crate::{atomic, random_hex, ImageRef, Store};

/// An image to write.
pub(super) struct Planned {
    pub(super) id: Digest,
    pub(super) config: Vec<u8>,
    /// Bottom to top.
    pub(super) layers: Vec<Layer>,
    /// The tags the archive records.
    tags: Vec<ImageRef>,
}

/// Where `save` writes.
pub enum SaveTo<'a> {
    /// A file (an archive) or a directory (`oci-dir`), made whole or not
    /// at all.
    Path(&'a Path),
    /// A stream (standard output): an archive format only. A failure
    /// part way leaves what was written.
    Stream(&'a mut dyn Write),
}

/// How `save` writes.
#[derive(Debug, Clone, Copy)]
pub struct SaveOptions {
    pub format: SaveFormat,
    /// Layers compressed with this, else kept as their tars.
    pub compression: Option<LayerCompression>,
}

impl Store {
    /// Writes `images` (each a name[:tag], an ID or a unique ID prefix) to
    /// `out` in `format`, layers uncompressed; layers shared between them
    /// are written once.
    pub fn save(
        &self,
        images: &[String],
        format: SaveFormat,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<()> {
        let opts = SaveOptions {
            format,
            compression: None,
        };
        self.save_to(images, opts, SaveTo::Path(out), progress)
    }

    /// Writes `images` to `to` as `opts` says.
    pub fn save_to(
        &self,
        images: &[String],
        opts: SaveOptions,
        to: SaveTo<'_>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let format = opts.format;
        let plan = self.plan_save(images)?;
        let make_dir = match (&to, format) {
            (SaveTo::Path(out), SaveFormat::OciDir) => oci_dir_target(out)?,
            (SaveTo::Path(out), _) => {
                archive_target(out)?;
                false
            }
            (SaveTo::Stream(_), SaveFormat::OciDir) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "an OCI layout directory cannot be written to a stream: name the directory",
                ))
            }
            (SaveTo::Stream(_), _) => false,
        };
        let blobs = match opts.compression {
            None => self.layer_sizes(&plan)?,
            Some(c) => self.compress_for_save(&plan, c)?,
        };
        let images: Vec<SaveImage> = plan
            .iter()
            .map(|p| SaveImage {
                id: p.id.clone(),
                config: p.config.clone(),
                layers: p
                    .layers
                    .iter()
                    .map(|l| blobs.layers[&l.diff_id].clone())
                    .collect(),
                tags: p.tags.clone(),
            })
            .collect();
        let entries = layout(&images, format)?;
        let layers: BTreeMap<Digest, LayerBlob<'_>> = plan
            .iter()
            .flat_map(|p| &p.layers)
            .map(|l| {
                let blob = blobs.layers[&l.diff_id].blob.clone();
                match &blobs.spool {
                    Some(spool) => (blob, LayerBlob::Spooled(spool.path.join(l.diff_id.hex()))),
                    None => (blob, LayerBlob::Tar(l)),
                }
            })
            .collect();
        let count = entries
            .iter()
            .filter(|e| matches!(e.content, Content::Layer(_)))
            .count();
        progress.start(entries.iter().map(|e| e.size).sum(), count);
        let w = Writing {
            store: self,
            entries: &entries,
            layers: &layers,
            progress,
        };
        match to {
            SaveTo::Path(out) if format == SaveFormat::OciDir => w.to_dir(out, make_dir),
            SaveTo::Path(out) => w.to_archive(out),
            SaveTo::Stream(out) => w.to_stream(out),
        }
    }

    /// Resolves the names under the store lock: each image once, with the
    /// tags it was named by.
    fn plan_save(&self, names: &[String]) -> Result<Vec<Planned>> {
        if names.is_empty() {
            return Err(Error::new(ErrorKind::InvalidArgument, "no image to save"));
        }
        let _lock = self.lock()?;
        let repos = self.repositories()?;
        let mut plan: Vec<Planned> = Vec::new();
        for name in names {
            let id = self.resolve_image(name)?;
            // resolve_image tries a tag first: a name that is a tag was
            // resolved by it.
            let tag = ImageRef::parse(name).ok().filter(|r| {
                repos
                    .get(&r.name)
                    .is_some_and(|m| m.contains_key(&r.to_string()))
            });
            let i = match plan.iter().position(|p| p.id == id) {
                Some(i) => i,
                None => {
                    plan.push(self.plan_image(id, name)?);
                    plan.len() - 1
                }
            };
            if let Some(t) = tag {
                if !plan[i].tags.contains(&t) {
                    plan[i].tags.push(t);
                }
            }
        }
        Ok(plan)
    }

    /// An image's config and layers; `name` is what the user called it.
    pub(super) fn plan_image(&self, id: Digest, name: &str) -> Result<Planned> {
        let ctx = |e: Error| Error::with(e.kind(), format!("image {name}"), e);
        let config = self.image_config(&id).map_err(ctx)?;
        let v: Value = serde_json::from_slice(&config)
            .map_err(|e| Error::with(ErrorKind::Corrupt, format!("image {name}: bad config"), e))?;
        let diff_ids = strata_image::diff_ids(&v)
            .map_err(|why| Error::new(ErrorKind::Corrupt, format!("image {name}: {why}")))?;
        let layers = chain_ids(&diff_ids)
            .iter()
            .map(|c| self.layer(c))
            .collect::<Result<Vec<_>>>()
            .map_err(ctx)?;
        Ok(Planned {
            id,
            config,
            layers,
            tags: Vec::new(),
        })
    }

    /// Every layer as its tar: its length, by diffID, from the end of
    /// its tar-split record (no content read).
    fn layer_sizes(&self, plan: &[Planned]) -> Result<Blobs> {
        let mut layers = BTreeMap::new();
        for l in plan.iter().flat_map(|p| &p.layers) {
            if layers.contains_key(&l.diff_id) {
                continue;
            }
            let record = File::open(self.tar_split_path(&l.chain_id))
                .ctx(|| format!("layer {} has no tar-split record", l.chain_id))?;
            let (diff_id, size) = strata_archive::recorded_tar_size(record).map_err(|e| {
                Error::with(
                    ErrorKind::Corrupt,
                    format!("reading the tar-split record of layer {}", l.chain_id),
                    e,
                )
            })?;
            // A record Docker wrote names no digest: the rebuilt tar is
            // checked against the diffID as it is written.
            let diff_id = diff_id.unwrap_or_else(|| l.diff_id.clone());
            if diff_id != l.diff_id {
                let found = format!("its tar-split record describes {diff_id}");
                return Err(super::not_its_diff_id(l, &found));
            }
            layers.insert(l.diff_id.clone(), SaveLayer::uncompressed(diff_id, size));
        }
        Ok(Blobs {
            layers,
            spool: None,
        })
    }

    /// Every layer compressed into a file of a spool directory (named by
    /// diffID), since the manifests, and so the archive's layout, need
    /// the compressed blobs' digests and lengths before anything is
    /// written.
    fn compress_for_save(&self, plan: &[Planned], compression: LayerCompression) -> Result<Blobs> {
        let path = self.layout.tmp().join(format!("save-{}", random_hex(8)?));
        fs::create_dir(&path).ctx(|| format!("creating {}", path.display()))?;
        // Held, so that another command's open does not take it for a
        // crash's debris meanwhile.
        let spool = match crate::staging::hold_staging(&path) {
            Ok(held) => Spool { path, _held: held },
            Err(e) => {
                let _ = fs::remove_dir(&path);
                return Err(e);
            }
        };
        let mut layers = BTreeMap::new();
        for l in plan.iter().flat_map(|p| &p.layers) {
            if layers.contains_key(&l.diff_id) {
                continue;
            }
            let dest = spool.path.join(l.diff_id.hex());
            let writing = || format!("writing {}", dest.display());
            let file = File::create(&dest).ctx(writing)?;
            let mut out = HashWriter::to(BufWriter::with_capacity(1 << 20, file));
            self.compress_layer(l, compression, compression.default_level(), &mut out)?;
            out.flush().ctx(writing)?;
            let (blob, size) = out.finish();
            let kind = match compression {
                LayerCompression::Gzip => Compression::Gzip,
                LayerCompression::Zstd => Compression::Zstd,
            };
            let layer = SaveLayer {
                diff_id: l.diff_id.clone(),
                blob,
                size,
                compression: kind,
            };
            layers.insert(l.diff_id.clone(), layer);
        }
        Ok(Blobs {
            layers,
            spool: Some(spool),
        })
    }
}

/// How each layer of a save is written, by diffID, and the spool
/// directory holding the compressed ones.
struct Blobs {
    layers: BTreeMap<Digest, SaveLayer>,
    spool: Option<Spool>,
}

/// A directory of compressed layers, removed when the save ends.
struct Spool {
    path: std::path::PathBuf,
    _held: File,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Where a layer blob's bytes come from.
enum LayerBlob<'a> {
    /// The layer's tar, rebuilt from its tar-split record.
    Tar(&'a Layer),
    /// A compressed copy in the spool.
    Spooled(std::path::PathBuf),
}

/// One save's files on their way out.
struct Writing<'a> {
    store: &'a Store,
    entries: &'a [Entry],
    /// The layer blobs the entries name, by digest.
    layers: &'a BTreeMap<Digest, LayerBlob<'a>>,
    progress: &'a dyn Progress,
}

impl Writing<'_> {
    /// Writes the entries as a tar to a temp file beside `out`, then
    /// renames it over `out`.
    fn to_archive(&self, out: &Path) -> Result<()> {
        archive_target(out)?;
        let writing = || format!("writing {}", out.display());
        // Errors name the user's file, never the temp file beside it.
        let file = AtomicFile::create_unique(out, &random_hex(6)?).ctx(writing)?;
        let mut sink = TarSink::new(BufWriter::with_capacity(1 << 20, file));
        self.write_entries(&mut sink)?;
        let file = sink
            .finish()?
            .into_inner()
            .map_err(|e| Error::io(writing(), e.into_error()))?;
        file.commit().ctx(writing)
    }

    /// Writes the entries as a tar to `out` (standard output).
    fn to_stream(&self, out: &mut dyn Write) -> Result<()> {
        let mut sink = TarSink::new(BufWriter::with_capacity(1 << 20, out));
        self.write_entries(&mut sink)?;
        let mut w = sink.finish()?;
        w.flush().ctx(|| "writing the archive".into())
    }

    /// Writes the entries into the directory `out`, making it first when
    /// `make` (else it is there and empty); on failure, takes back all it
    /// wrote.
    fn to_dir(&self, out: &Path, make: bool) -> Result<()> {
        if make {
            fs::create_dir(out).ctx(|| format!("creating {}", out.display()))?;
        }
        let result = self
            .write_entries(&mut DirSink::new(out.to_path_buf()))
            .and_then(|()| atomic::sync_dir(out).ctx(|| format!("syncing {}", out.display())));
        if result.is_err() {
            if make {
                let _ = fs::remove_dir_all(out);
            } else if let Ok(dir) = fs::read_dir(out) {
                // It was empty: all in it is ours.
                for e in dir.flatten() {
                    let p = e.path();
                    let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
                }
            }
        }
        result
    }

    /// The blob directories, then every entry in order.
    fn write_entries(&self, sink: &mut dyn Sink) -> Result<()> {
        sink.dir("blobs")?;
        sink.dir("blobs/sha256")?;
        for e in self.entries {
            let mut w = Counted {
                inner: sink.start_file(&e.path, e.size)?,
                written: 0,
                progress: self.progress,
            };
            match &e.content {
                Content::Bytes(b) => w.write_all(b).ctx(|| format!("writing {}", e.path))?,
                Content::Layer(digest) => self.write_layer(&self.layers[digest], &mut w)?,
            }
            if w.written != e.size {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!("{}: wrote {} bytes, not {}", e.path, w.written, e.size),
                ));
            }
            sink.finish_file()?;
            if let Content::Layer(_) = e.content {
                self.progress.layer_done();
            }
        }
        Ok(())
    }

    /// Rebuilds a layer's tar into `out`, checking it is the layer, or
    /// copies its compressed blob from the spool.
    fn write_layer(&self, blob: &LayerBlob<'_>, out: &mut dyn Write) -> Result<()> {
        let l = match blob {
            LayerBlob::Tar(l) => l,
            LayerBlob::Spooled(path) => {
                let mut f = File::open(path).ctx(|| format!("opening {}", path.display()))?;
                io::copy(&mut f, out).ctx(|| format!("copying {}", path.display()))?;
                return Ok(());
            }
        };
        let got = self.store.layer_tar(l, out)?;
        if got != l.diff_id {
            let found = format!("its content hashes to {got}");
            return Err(super::not_its_diff_id(l, &found));
        }
        Ok(())
    }
}

/// Checks an archive can be written at `out`.
fn archive_target(out: &Path) -> Result<()> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("cannot write the archive to {}: {why}", out.display()),
        )
    };
    if out.file_name().is_none() {
        return Err(bad("not a file name"));
    }
    if out.is_dir() {
        return Err(bad("it is a directory"));
    }
    // The archive is renamed over `out`: a device or a pipe there would
    // be replaced by a file, not written to.
    if fs::metadata(out).is_ok_and(|m| !m.is_file()) {
        return Err(bad("it is not a regular file"));
    }
    Ok(())
}

/// Checks an OCI layout can be written at `out`: a directory that does
/// not exist (true: it must be made) or is empty.
fn oci_dir_target(out: &Path) -> Result<bool> {
    match fs::read_dir(out).map(|mut d| d.next().is_none()) {
        Ok(true) => Ok(false),
        Ok(false) => Err(Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "{} is not empty: oci-dir writes a new layout into a directory that does not exist or is empty",
                out.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(format!("opening {}", out.display()), e)),
    }
}

/// Counts what is written through it and reports it as progress.
struct Counted<'a> {
    inner: &'a mut dyn Write,
    written: u64,
    progress: &'a dyn Progress,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
