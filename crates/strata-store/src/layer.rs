//! The layer store: one directory per chainID under `layerdb/sha256`,
//! one value per small file (`diff`, `size`, `cache-id`, `parent`), over
//! the driver layers that hold the content.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_archive::Digest;
use strata_driver::{Driver, Flush};

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::ids::CacheId;
use crate::layout::{self, record, Layout};
use crate::lock::Lock;
use crate::staging::{self, LiveStaging};
use crate::{atomic, random_hex, refs, Store};

pub(crate) use crate::layout::record::TAR_SPLIT;

/// A read-only layer in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub chain_id: Digest,
    pub diff_id: Digest,
    /// The driver's id for the layer's content.
    pub cache_id: CacheId,
    /// Bytes of file content the layer adds.
    pub size: u64,
    pub parent: Option<Digest>,
}

impl Layer {
    /// The layer that driver layer `cache_id`, filled on `parent` as
    /// `report` says, is.
    pub(crate) fn filled(
        parent: Option<&Layer>,
        report: &strata_driver::ApplyReport,
        cache_id: CacheId,
    ) -> Layer {
        Layer {
            chain_id: chain_id(parent.map(|p| &p.chain_id), &report.diff_id),
            diff_id: report.diff_id.clone(),
            cache_id,
            size: report.size,
            parent: parent.map(|p| p.chain_id.clone()),
        }
    }
}

/// chainID(1) = diffID(1); chainID(n) = sha256(chainID(n-1) + " " + diffID(n)).
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => strata_archive::sha256(format!("{p} {diff_id}").as_bytes()),
    }
}

/// The chainIDs of a stack of diffIDs, bottom to top.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let c = chain_id(out.last(), d);
        out.push(c);
    }
    out
}

fn parse_digest(s: &str, what: &str) -> Result<Digest> {
    Digest::parse(s).ok_or_else(|| {
        Error::new(
            ErrorKind::Corrupt,
            format!("{what}: {s:?} is not a sha256 digest"),
        )
    })
}

/// A layer's `cache-id`, which names a directory of the driver's.
pub(crate) fn parse_cache_id(s: &str, what: &str) -> Result<CacheId> {
    CacheId::parse(s)
        .map_err(|e| Error::with(ErrorKind::Corrupt, format!("{what}: its cache-id"), e))
}

/// The layers of a store: `layerdb/sha256` and the driver layers its
/// records name.
#[derive(Clone)]
pub struct LayerStore {
    layout: Layout,
    driver: Arc<dyn Driver>,
}

impl LayerStore {
    pub(crate) fn new(layout: Layout, driver: Arc<dyn Driver>) -> LayerStore {
        LayerStore { layout, driver }
    }

    /// Where a layer's tar-split record is.
    pub fn tar_split_path(&self, chain: &Digest) -> PathBuf {
        self.layout.layer(chain).join(TAR_SPLIT)
    }

    /// The layer with this chainID.
    pub fn layer(&self, chain: &Digest) -> Result<Layer> {
        let dir = self.layout.layer(chain);
        if !dir.is_dir() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("layer {chain} is not in the store"),
            ));
        }
        let what = format!("layer {chain}");
        let parent = match atomic::read(&dir.join(record::PARENT)) {
            Ok(p) => Some(parse_digest(&p, &what)?),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Layer {
            chain_id: chain.clone(),
            diff_id: parse_digest(&atomic::read(&dir.join(record::DIFF))?, &what)?,
            cache_id: parse_cache_id(&atomic::read(&dir.join(record::CACHE_ID))?, &what)?,
            size: atomic::read(&dir.join(record::SIZE))?
                .parse()
                .map_err(|_| Error::new(ErrorKind::Corrupt, format!("{what}: bad size")))?,
            parent,
        })
    }

    /// Every layer, by chainID.
    pub fn layers(&self) -> Result<Vec<Layer>> {
        let dir = self.layout.layers();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
            let e = e.ctx(|| format!("listing {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(chain) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            match self.layer(&chain) {
                Ok(l) => out.push(l),
                // Removed (renamed away) by another process while listing.
                Err(_) if !e.path().exists() => {}
                Err(err) => return Err(err),
            }
        }
        out.sort_by(|a, b| a.chain_id.cmp(&b.chain_id));
        Ok(out)
    }

    /// Writes the layer's original tar, byte for byte, from its content
    /// and its tar-split record; returns the digest of what was written
    /// (its diffID when nothing changed).
    pub fn layer_tar(&self, layer: &Layer, out: &mut dyn std::io::Write) -> Result<Digest> {
        let record = fs::File::open(self.tar_split_path(&layer.chain_id))
            .ctx(|| format!("layer {} has no tar-split record", layer.chain_id))?;
        let content = self
            .driver
            .content(&layer.cache_id)
            .map_err(|e| Error::driver(format!("layer {}", layer.chain_id), e))?;
        strata_archive::reassemble(record, &content, out).map_err(|e| {
            Error::with(
                ErrorKind::Corrupt,
                format!("rebuilding the tar of layer {}", layer.chain_id),
                e,
            )
        })
    }

    /// Unpacks a layer tar on `parent` and records it. A layer whose
    /// chainID is already stored is not kept twice: the new copy is
    /// dropped and the stored one returned.
    pub fn register(
        &self,
        lock: &Lock,
        parent: Option<&Layer>,
        input: &mut (dyn Read + Send),
    ) -> Result<Layer> {
        let parent_cache = parent.map(|p| p.cache_id.as_str());
        let (staging, cache_id) = self.begin(parent_cache)?;
        let report = match self.fill(&staging, &cache_id, parent_cache, input, Flush::Driver) {
            Ok(r) => r,
            Err(e) => {
                self.discard(&staging, &cache_id);
                return Err(e);
            }
        };
        self.finish(lock, &staging, cache_id, parent, &report)
    }

    /// Publishes a filled layer under its chainID. A layer whose chainID
    /// is already stored is dropped and the stored one returned.
    pub(crate) fn finish(
        &self,
        lock: &Lock,
        staging: &Path,
        cache_id: CacheId,
        parent: Option<&Layer>,
        report: &strata_driver::ApplyReport,
    ) -> Result<Layer> {
        let layer = Layer::filled(parent, report, cache_id);
        if let Ok(existing) = self.layer(&layer.chain_id) {
            self.discard(staging, &layer.cache_id);
            return Ok(existing);
        }
        self.stage_metadata(staging, &layer)?;
        self.flush_staged(&[staging], Flush::Driver)?;
        self.publish(lock, staging, &layer.chain_id, layer.parent.as_ref())?;
        self.sync_layerdb()?;
        Ok(layer)
    }

    /// A new, empty driver layer on `parent_cache`, named by a fresh
    /// staging directory (so a crash from here on is cleaned up by the
    /// next open). Returns the staging directory and the cache-id.
    pub(crate) fn begin(&self, parent_cache: Option<&str>) -> Result<(PathBuf, CacheId)> {
        let staging = staging::new_staging(&self.layout)?;
        let made = (|| {
            let cache_id = CacheId::parse(&random_hex(32)?).expect("random_hex(32) is an ID");
            atomic::write_staged(&staging.join(record::CACHE_ID), cache_id.as_bytes())?;
            self.driver
                .create(&cache_id, parent_cache, strata_driver::LayerKind::ReadOnly)
                .map_err(|e| Error::driver("creating a layer", e))?;
            Ok(cache_id)
        })();
        match made {
            Ok(id) => Ok((staging, id)),
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(e)
            }
        }
    }

    /// [`LayerStore::begin`] for a layer filled with no store lock held:
    /// its staging directory is locked until the returned value is
    /// dropped, so that an `open` or `check --repair` meanwhile does not
    /// take it for debris ([`staging::is_live`]). The store lock is held
    /// while it begins.
    pub(crate) fn begin_live(&self, _: &Lock, parent_cache: Option<&str>) -> Result<LiveStaging> {
        let (path, cache_id) = self.begin(parent_cache)?;
        match staging::hold_staging(&path) {
            Ok(lock) => Ok(LiveStaging::new(path, cache_id, lock)),
            Err(e) => {
                self.discard(&path, &cache_id);
                Err(e)
            }
        }
    }

    /// Unpacks a layer tar into a begun layer, with its tar-split record
    /// beside it in the staging directory, the content made durable as
    /// `flush` says (pass the same to [`LayerStore::flush_staged`]). On
    /// error the caller discards the layer.
    pub(crate) fn fill(
        &self,
        staging: &Path,
        cache_id: &str,
        parent_cache: Option<&str>,
        input: &mut (dyn Read + Send),
        flush: Flush,
    ) -> Result<strata_driver::ApplyReport> {
        let record_path = staging.join(TAR_SPLIT);
        // What extraction throws away, so `save` can give back the exact
        // tar (strata_archive::reassemble).
        let file = fs::File::create(&record_path).ctx(|| "creating the tar-split record".into())?;
        let mut record = std::io::BufWriter::new(file);
        let report = self
            .driver
            .apply_diff_recording(cache_id, parent_cache, input, Some(&mut record), flush)
            .map_err(|e| Error::driver("unpacking a layer", e))?;
        // Made durable with the content by the syncfs before publishing.
        record
            .into_inner()
            .map_err(|e| Error::io("writing the tar-split record", e.into_error()))?;
        Ok(report)
    }

    /// Throws away a layer that was begun and not published.
    pub(crate) fn discard(&self, staging: &Path, cache_id: &str) {
        let _ = self.driver.remove(cache_id);
        let _ = fs::remove_dir_all(staging);
    }

    /// `filled`'s value; on its error the begun layer is thrown away first.
    pub(crate) fn kept_or_discarded<T>(
        &self,
        staging: &Path,
        cache_id: &str,
        filled: Result<T>,
    ) -> Result<T> {
        if filled.is_err() {
            self.discard(staging, cache_id);
        }
        filled
    }

    /// Writes a filled layer's metadata into its staging directory.
    pub(crate) fn stage_metadata(&self, staging: &Path, layer: &Layer) -> Result<()> {
        atomic::write_staged(
            &staging.join(record::DIFF),
            layer.diff_id.as_str().as_bytes(),
        )?;
        atomic::write_staged(
            &staging.join(record::SIZE),
            layer.size.to_string().as_bytes(),
        )?;
        if let Some(p) = &layer.parent {
            atomic::write_staged(&staging.join(record::PARENT), p.as_str().as_bytes())?;
        }
        Ok(())
    }

    /// Moves a staged layer into `layerdb` under its chainID, recorded in
    /// the reference index as made on `parent` first. The caller made its
    /// content durable first ([`LayerStore::sync_driver`]) and makes the
    /// rename durable after ([`LayerStore::sync_layerdb`]).
    pub(crate) fn publish(
        &self,
        lock: &Lock,
        staging: &Path,
        chain: &Digest,
        parent: Option<&Digest>,
    ) -> Result<()> {
        if let Some(p) = parent {
            refs::add_layer(&self.layout, lock, chain, p, None)?;
        }
        fs::rename(staging, self.layout.layer(chain))
            .ctx(|| format!("publishing layer {chain}"))?;
        refs::stamp(&self.layout, lock)
    }

    pub(crate) fn sync_layerdb(&self) -> Result<()> {
        atomic::sync_dir(&self.layout.layers()).ctx(|| "syncing layerdb".into())
    }

    /// Makes staged layers durable before they are published: their
    /// records (each file of each staging directory, and the directory)
    /// when the driver made their content durable itself
    /// ([`Driver::flushes_layers`], filled with [`Flush::Driver`]),
    /// else everything ([`LayerStore::sync_driver`]).
    pub(crate) fn flush_staged(&self, staging: &[&Path], flush: Flush) -> Result<()> {
        if flush == Flush::Caller || !self.driver.flushes_layers() {
            return self.sync_driver();
        }
        let mut all: Vec<PathBuf> = Vec::new();
        for dir in staging {
            for e in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
                let e = e.ctx(|| format!("listing {}", dir.display()))?;
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    all.push(e.path());
                }
            }
            all.push(dir.to_path_buf());
        }
        atomic::sync_paths(&all).ctx(|| "syncing the staged layers".into())
    }

    /// Makes the driver's content durable before the metadata that names
    /// it is published (syncfs of the file system holding the store).
    pub(crate) fn sync_driver(&self) -> Result<()> {
        let fd = strata_sys::fs::open_dir(self.layout.root()).ctx(|| "opening the store".into())?;
        strata_sys::fs::syncfs(std::os::fd::AsFd::as_fd(&fd))
            .ctx(|| "syncing the store's file system".into())
    }

    /// Removes a driver layer that no live process can be using (it is
    /// named by nothing, or by the staging of a process that died), with
    /// the mount references a killed process left on it: a vfs layer
    /// keeps a count on disk that only `put` gives back. Gone already is
    /// fine.
    pub(crate) fn remove_stale(&self, id: &str) -> Result<()> {
        use strata_driver::ErrorKind as D;
        let mut tries = 0;
        loop {
            match self.driver.remove(id) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == D::NotFound => return Ok(()),
                Err(e) if e.kind() == D::InUse && tries < 1024 => {
                    tries += 1;
                    self.driver
                        .put(id)
                        .map_err(|e| Error::driver(format!("releasing layer {id}"), e))?;
                }
                Err(e) => return Err(Error::driver(format!("removing layer {id}"), e)),
            }
        }
    }

    /// Removes the layers of `dead`, children before parents: each
    /// record is renamed `-removing` first, then its driver layer goes,
    /// then the record, then its entries in the reference index.
    pub(crate) fn remove(&self, lock: &Lock, dead: &[&Layer]) -> Result<Vec<Digest>> {
        let mut removed = Vec::new();
        let removals = (!dead.is_empty())
            .then(|| crate::staging::Removals::begin(&self.layout, lock))
            .transpose()?;
        for l in dead {
            let dir = self.layout.layer(&l.chain_id);
            let doomed = layout::removing(&dir);
            fs::rename(&dir, &doomed).ctx(|| format!("removing layer {}", l.chain_id))?;
            match self.driver.remove(&l.cache_id) {
                Ok(()) => {}
                Err(e) if e.kind() == strata_driver::ErrorKind::NotFound => {}
                Err(e) => {
                    // Put the metadata back: the layer stays whole and
                    // listed rather than leaking its content unnamed.
                    let _ = fs::rename(&doomed, &dir);
                    return Err(Error::driver(format!("removing layer {}", l.chain_id), e));
                }
            }
            fs::remove_dir_all(&doomed).ctx(|| format!("removing layer {}", l.chain_id))?;
            refs::remove_layer(&self.layout, lock, &l.chain_id, l.parent.as_ref())?;
            removed.push(l.chain_id.clone());
        }
        if let Some(r) = removals {
            r.done();
        }
        refs::stamp(&self.layout, lock)?;
        Ok(removed)
    }
}

/// The facade's layer methods: [`LayerStore`]'s, kept on [`Store`].
impl Store {
    /// The layer with this chainID.
    pub fn layer(&self, chain: &Digest) -> Result<Layer> {
        self.layers.layer(chain)
    }

    /// Every layer, by chainID.
    pub fn layers(&self) -> Result<Vec<Layer>> {
        self.layers.layers()
    }

    /// [`LayerStore::layer_tar`].
    pub fn layer_tar(&self, layer: &Layer, out: &mut dyn std::io::Write) -> Result<Digest> {
        self.layers.layer_tar(layer, out)
    }

    pub(crate) fn tar_split_path(&self, chain: &Digest) -> PathBuf {
        self.layers.tar_split_path(chain)
    }

    pub(crate) fn discard_layer(&self, staging: &Path, cache_id: &str) {
        self.layers.discard(staging, cache_id)
    }

    pub(crate) fn stage_metadata(&self, staging: &Path, layer: &Layer) -> Result<()> {
        self.layers.stage_metadata(staging, layer)
    }

    pub(crate) fn publish_layer(&self, lock: &Lock, staging: &Path, layer: &Layer) -> Result<()> {
        self.layers
            .publish(lock, staging, &layer.chain_id, layer.parent.as_ref())
    }

    pub(crate) fn sync_layerdb(&self) -> Result<()> {
        self.layers.sync_layerdb()
    }

    pub(crate) fn sync_driver(&self) -> Result<()> {
        self.layers.sync_driver()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_of_one_is_the_diff_id() {
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(chain_id(None, &d), d);
    }
}
