//! A new layer and an image on it, published with one flush: what
//! `import`, `commit` and the flattening `import` of an image make.
//!
//! Written one by one, the records of such a change cost an fsync each
//! and another of their directory (about fifteen after the layer's
//! flush: the layer's index entry and publication, the image's index
//! entries, its metadata and config, the tag). Here every record is
//! written first, not flushed; the one flush that makes the layer
//! durable makes them durable too (the store's `syncfs`; a driver that
//! flushes its own layers gets an fsync per record instead); then they
//! are put in place in steps, each made durable by one fsync per
//! directory it renamed into before the next begins:
//!
//! 1. the layer, under its chainID in `layerdb`;
//! 2. the image's metadata, then (a step of its own) its config;
//! 3. `repositories.json`, with the tag.
//!
//! So a crash leaves what the records written one by one would: the
//! index entries (made before anything they describe, as ever), a layer
//! without its image, an image without its tag; never an image whose
//! layer is missing, nor a tag naming no image.

use std::path::Path;

use strata_archive::Digest;
use strata_sys::atomic::Batch;

use crate::error::{IoContext, Result};
use crate::ids::CacheId;
use crate::layer::Layer;
use crate::lock::Lock;
use crate::staging::LiveStaging;
use crate::{refs, ImageRef, Store};

/// The layer a [`Store::publish_image`] publishes: filled at `staging`
/// (driver layer `cache_id`) on `parent`, as `report` says.
pub(crate) struct Filled<'a> {
    pub staging: &'a Path,
    pub cache_id: CacheId,
    pub parent: Option<&'a Layer>,
    pub report: &'a strata_driver::ApplyReport,
}

impl<'a> Filled<'a> {
    /// The layer filled at the live staging `staged`.
    pub fn live(
        staged: &'a LiveStaging,
        parent: Option<&'a Layer>,
        report: &'a strata_driver::ApplyReport,
    ) -> Filled<'a> {
        Filled {
            staging: &staged.path,
            cache_id: staged.cache_id.clone(),
            parent,
            report,
        }
    }
}

/// The image a [`Store::publish_image`] makes on its layer.
pub(crate) struct NewImage<'a> {
    /// The image committed from, recorded as its parent.
    pub parent: Option<&'a Digest>,
    /// The tag it gets.
    pub tag: Option<&'a ImageRef>,
}

/// The config's top-level object, which a new image's config is made by
/// changing, dated now (`created`); and that time.
pub(crate) fn dated(
    config: &mut serde_json::Value,
) -> Result<(String, &mut serde_json::Map<String, serde_json::Value>)> {
    let obj = config.as_object_mut().ok_or_else(|| {
        crate::error::Error::new(
            crate::error::ErrorKind::Corrupt,
            "image config is not an object",
        )
    })?;
    let now = crate::time::now_rfc3339();
    obj.insert("created".into(), serde_json::json!(now));
    Ok((now, obj))
}

impl Store {
    /// Publishes the filled layer and an image on it, whose config
    /// `config` makes from the layer; returns the
    /// layer and the image ID. A layer whose chainID is already stored is
    /// not kept twice: the new copy is dropped and the image made on the
    /// stored one.
    pub(crate) fn publish_image(
        &self,
        lock: &Lock,
        filled: Filled<'_>,
        image: NewImage<'_>,
        config: impl FnOnce(&Layer) -> Result<Vec<u8>>,
    ) -> Result<(Layer, Digest)> {
        let Filled {
            staging,
            cache_id,
            parent,
            report,
        } = filled;
        // The callers refused a tag no image may have before they filled
        // the layer (and `tag_in` refuses it before anything is flushed).
        let layer = Layer::filled(parent, report, cache_id);
        if let Ok(existing) = self.layer(&layer.chain_id) {
            self.layers.discard(staging, &layer.cache_id);
            let bytes = config(&existing)?;
            let id = self.images.put(lock, &bytes, image.parent)?;
            if let Some(r) = image.tag {
                self.images.tag(lock, &id, r)?;
            }
            return Ok((existing, id));
        }
        let written = (|| -> Result<(Batch, Digest)> {
            let bytes = config(&layer)?;
            self.layers.stage_metadata(staging, &layer)?;
            let mut batch = Batch::new();
            if let Some(p) = &layer.parent {
                refs::add_layer(&self.layout, lock, &layer.chain_id, p, Some(&mut batch))?;
            }
            batch.rename(staging, &self.layout.layer(&layer.chain_id));
            batch.barrier();
            let id = self.images.put_in(lock, &bytes, image.parent, &mut batch)?;
            batch.barrier();
            if let Some(r) = image.tag {
                self.images.tag_in(lock, &id, r, &mut batch)?;
            }
            // The one flush: the layer's content and records, and the
            // batch's.
            if self.driver.flushes_layers() {
                self.layers
                    .flush_staged(&[staging], strata_driver::Flush::Driver)?;
                batch
                    .sync_files()
                    .ctx(|| "syncing the image's records".into())?;
            } else {
                self.layers.sync_driver()?;
            }
            Ok((batch, id))
        })();
        // Nothing is in place yet: the layer goes (its index entries stay,
        // one too many, as readers allow), the batch's files with it.
        let (batch, id) = written.inspect_err(|_| self.layers.discard(staging, &layer.cache_id))?;
        batch.publish().map_err(|e| {
            // The layer not put in place is removed now, not left to the
            // next open.
            if staging.exists() {
                self.layers.discard(staging, &layer.cache_id);
            }
            crate::error::Error::io(
                format!("publishing layer {} and image {id}", layer.chain_id),
                e,
            )
        })?;
        refs::stamp(&self.layout, lock)?;
        Ok((layer, id))
    }
}
