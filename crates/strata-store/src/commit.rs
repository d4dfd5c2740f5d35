//! `strata commit`: a container's changes become a layer on its image's,
//! and a new image with that layer.
//!
//! What the container wrote in its volumes (the image's `VOLUME`s among
//! them) is not among the changes: a volume is mounted over the path, so
//! the read-write layer only ever holds the mount point, and `cp` writes
//! into the volume too. The new image keeps the image's own content at
//! that path, as Docker's commit does.

use std::io::Write;

use serde_json::{json, Value};
use strata_archive::Digest;
use strata_driver::Flush;

use crate::container::Container;
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::layer::Layer;
use crate::lock::Lock;
use crate::publish::{Filled, NewImage};
use crate::staging::LiveStaging;
use crate::Store;

impl Store {
    /// `strata commit`: the container's changes become a layer on its
    /// image's, and a new image with that layer, a history entry and the
    /// old image as parent. Returns the new image ID.
    ///
    /// The container's files are read with no store lock held: a running
    /// container decides how long reading it takes, and no other command
    /// may wait on it. What the commit builds on is read and its layer
    /// begun under the lock; the layer's staging directory holds a lock of
    /// its own while it fills (so opening the store meanwhile leaves it
    /// alone); the lock is taken again to publish, after checking that
    /// the container and its image layer are still there.
    pub fn commit(&self, c: &Container, reference: Option<&str>, comment: &str) -> Result<Digest> {
        let r = crate::image::new_tag(reference)?;
        let (mut config, parent, staged) = {
            let lock = self.lock()?;
            let config = self.images.image_json(&c.image)?;
            let parent = c.parent_layer.as_ref().map(|p| self.layer(p)).transpose()?;
            let staged = self
                .layers
                .begin_live(&lock, parent.as_ref().map(|p| p.cache_id.as_str()))?;
            (config, parent, staged)
        };
        let parent_cache = parent.as_ref().map(|p| p.cache_id.as_str());
        let init = c.init_id();
        let filled = self.fill_from_diff(
            &staged,
            parent_cache,
            (&c.mount_id, Some(&init)),
            &format!("diff of container {}", c.name),
        );
        let lock = self.lock()?;
        let report = self
            .layers
            .kept_or_discarded(&staged.path, &staged.cache_id, filled)?;
        if let Err(e) = self.still_there(&lock, c, parent.as_ref()) {
            self.layers.discard(&staged.path, &staged.cache_id);
            return Err(e);
        }
        let (_, id) = self.publish_image(
            &lock,
            Filled::live(&staged, parent.as_ref(), &report),
            NewImage {
                parent: Some(&c.image),
                tag: r.as_ref(),
            },
            |layer| {
                let (now, obj) = crate::publish::dated(&mut config)?;
                obj.insert("container".into(), json!(c.id));
                // The image's own comment is the commit's message, as
                // Docker writes it (`inspect` shows it as `Comment`); the
                // parent's is not inherited.
                obj.remove("comment");
                if !comment.is_empty() {
                    obj.insert("comment".into(), json!(comment));
                }
                let rootfs = obj
                    .entry("rootfs")
                    .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
                match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
                    Some(ids) => ids.push(json!(layer.diff_id.as_str())),
                    None => {
                        return Err(Error::new(
                            ErrorKind::Corrupt,
                            "image config has no rootfs.diff_ids",
                        ))
                    }
                }
                let entry = json!({ "created": now, "created_by": format!("strata commit {}", c.name), "comment": comment });
                match obj.get_mut("history").and_then(Value::as_array_mut) {
                    Some(h) => h.push(entry),
                    None => {
                        obj.insert("history".into(), json!([entry]));
                    }
                }
                Ok(serde_json::to_vec(&config).expect("serialising JSON"))
            },
        )?;
        Ok(id)
    }

    /// Whether what a commit read is still the container's, and its image
    /// layer still there to publish on.
    fn still_there(&self, _: &Lock, c: &Container, parent: Option<&Layer>) -> Result<()> {
        self.containers.container(&c.id).map_err(|e| {
            let what = match e.kind() {
                ErrorKind::NotFound => "was removed while it was committed",
                _ => "cannot be read back to finish the commit",
            };
            Error::with(e.kind(), format!("container {} {what}", c.name), e)
        })?;
        if let Some(p) = parent {
            self.layer(&p.chain_id).map_err(|e| {
                Error::with(
                    e.kind(),
                    format!(
                        "the image layer of container {} went away during the commit",
                        c.name
                    ),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Streams the driver's diff of layer `id` against `from` into a
    /// begun layer through a pipe: the change is never held whole, on
    /// disk or in memory. `what` names the diff in errors.
    pub(crate) fn fill_from_diff(
        &self,
        staged: &LiveStaging,
        parent_cache: Option<&str>,
        (id, from): (&str, Option<&str>),
        what: &str,
    ) -> Result<strata_driver::ApplyReport> {
        let (mut reader, writer) = std::io::pipe().ctx(|| "making a pipe".into())?;
        std::thread::scope(|s| {
            let diff = s.spawn(move || {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, writer);
                let r = self.driver.diff(id, from, &mut w);
                let flushed = w.flush();
                r.map_err(|e| Error::driver(what, e))
                    .and_then(|rep| flushed.map(|()| rep).ctx(|| format!("writing the {what}")))
            });
            let filled = self.layers.fill(
                &staged.path,
                &staged.cache_id,
                parent_cache,
                &mut reader,
                Flush::Driver,
            );
            drop(reader);
            let diffed = diff.join().expect("the diff thread does not panic");
            // When the layer side fails first, the diff only sees the pipe
            // close: report the cause, not the broken pipe.
            match (diffed, filled) {
                (Ok(_), filled) => filled,
                (Err(d), Err(l)) if is_broken_pipe(&d) => Err(l),
                (Err(d), _) => Err(d),
            }
        })
    }
}

/// Whether an error comes from writing to a pipe whose reader went away.
fn is_broken_pipe(e: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cur = err.source();
    }
    false
}
