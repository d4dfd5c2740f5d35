//! What Docker and Podman would refuse or warn about in an image strata
//! handles without trouble, said as warnings (the CLI prints them), and
//! `flatten`, which makes an image too deep for them into one they run.
//!
//! - **Depth.** Docker's layer store refuses a chain deeper than 125
//!   layers (`max depth exceeded`, moby `layer/layer_store.go`
//!   `maxLayerDepth`), and Podman's overlay mounts one option string per
//!   container, which runs out at about as many layers. strata mounts
//!   with the new mount API (`lowerdir+` per layer, DESIGN §2), so it
//!   runs such an image; whoever receives it may not.
//! - **Platform.** `docker create`/`run` warn when the image's platform
//!   is not the host's and none was asked for (moby
//!   `daemon/create.go`); strata says the same.

use serde_json::{json, Value};
use strata_archive::Digest;
use strata_driver::Flush;

use crate::container::Container;
use crate::error::{Error, ErrorKind, Result};
use crate::publish::{Filled, NewImage};
use crate::{ImageRef, Store};

/// The deepest image Docker runs.
pub const DOCKER_MAX_DEPTH: usize = 125;

impl Store {
    /// The warning for an image deeper than Docker and Podman run, or
    /// `None`.
    pub fn depth_warning(&self, id: &Digest) -> Result<Option<String>> {
        let image = self.image(id)?;
        let depth = image.diff_ids.len();
        if depth <= DOCKER_MAX_DEPTH {
            return Ok(None);
        }
        let name = image.tags.first().map_or_else(
            || crate::short(id.hex()).to_owned(),
            |t| strata_image::familiar(&t.to_string()).to_owned(),
        );
        Ok(Some(format!(
            "image {name} has {depth} layers: Docker and Podman cannot run an image deeper than \
             {DOCKER_MAX_DEPTH} layers; `strata flatten {name} NEWNAME` makes a one-layer copy"
        )))
    }

    /// Docker's warning when `image`'s platform is not the host's, or
    /// `None`. The OS and the architecture are compared (a CPU variant
    /// alone does not warn, as Docker's matcher takes older variants).
    pub fn platform_warning(&self, image: &str) -> Result<Option<String>> {
        let id = self.resolve_image(image)?;
        let config: Value = serde_json::from_slice(&self.image_config(&id)?)
            .map_err(|e| Error::with(ErrorKind::Corrupt, format!("image {id}: its config"), e))?;
        let field = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or("");
        let (os, arch) = (field("os"), field("architecture"));
        let variant = Some(field("variant")).filter(|v| !v.is_empty());
        let host_arch = strata_image::oci_arch();
        if (os.is_empty() && arch.is_empty()) || (os == "linux" && arch == host_arch) {
            return Ok(None);
        }
        Ok(Some(format!(
            "The requested image's platform ({}) does not match the detected host platform \
             (linux/{host_arch}) and no specific platform was requested",
            [os, arch]
                .into_iter()
                .chain(variant)
                .collect::<Vec<_>>()
                .join("/")
        )))
    }

    /// `strata flatten`: a copy of `image` with one layer holding its
    /// whole root file system (the union of its layers, whiteouts
    /// applied), the same config, and one history entry. Tagged
    /// `reference` when given; returns the new image ID.
    ///
    /// The layers are read with no store lock held, the new layer filling
    /// in its locked staging directory as a commit's does.
    pub fn flatten(&self, image: &str, reference: Option<&str>) -> Result<Digest> {
        self.flatten_as(image, reference, "strata flatten")
    }

    /// `strata commit --squash` (Podman's): the container's image and its
    /// changes as one layer. The commit's full image is a step, removed
    /// once the one-layer image is made (or its making failed).
    pub fn commit_squashed(
        &self,
        c: &Container,
        reference: Option<&str>,
        comment: &str,
    ) -> Result<Digest> {
        if let Some(r) = reference {
            ImageRef::parse(r)?;
        }
        let full = self.commit(c, None, comment)?;
        let flat = self.flatten_as(
            full.as_str(),
            reference,
            &format!("strata commit --squash {}", c.name),
        );
        if let Err(e) = self.remove_image(full.as_str(), false) {
            tracing::warn!("the unsquashed image {full} stays: {e}");
        }
        flat
    }

    fn flatten_as(&self, image: &str, reference: Option<&str>, created_by: &str) -> Result<Digest> {
        let r = crate::image::new_tag(reference)?;
        let (id, mut config, top, staged) = {
            let lock = self.lock()?;
            let id = self.resolve_image(image)?;
            let config = self.images.image_json(&id)?;
            let img = self.image(&id)?;
            let chain = crate::layer::chain_ids(&img.diff_ids);
            let top = chain.last().map(|c| self.layer(c)).transpose()?;
            let staged = self.layers.begin_live(&lock, None)?;
            (id, config, top, staged)
        };
        let filled = match &top {
            Some(top) => self.fill_from_diff(
                &staged,
                None,
                (&top.cache_id, None),
                &format!("tree of layer {}", top.cache_id),
            ),
            // An image without layers flattens to one empty layer.
            None => self.layers.fill(
                &staged.path,
                &staged.cache_id,
                None,
                &mut std::io::Cursor::new(vec![0u8; 1024]),
                Flush::Driver,
            ),
        };
        let lock = self.lock()?;
        let report = self
            .layers
            .kept_or_discarded(&staged.path, &staged.cache_id, filled)?;
        if let Some(top) = &top {
            if let Err(e) = self.layer(&top.chain_id) {
                self.layers.discard(&staged.path, &staged.cache_id);
                return Err(Error::with(
                    e.kind(),
                    format!("image {image} was removed while it was flattened"),
                    e,
                ));
            }
        }
        let flat = NewImage {
            parent: None,
            tag: r.as_ref(),
        };
        let (_, new) = self.publish_image(
            &lock,
            Filled::live(&staged, None, &report),
            flat,
            |layer| {
                let (now, obj) = crate::publish::dated(&mut config)?;
                obj.insert(
                    "rootfs".into(),
                    json!({ "type": "layers", "diff_ids": [layer.diff_id.as_str()] }),
                );
                obj.insert(
                    "history".into(),
                    json!([{ "created": now, "created_by": created_by, "comment": format!("flattened from {id}") }]),
                );
                Ok(serde_json::to_vec(&config).expect("serialising JSON"))
            },
        )?;
        Ok(new)
    }
}
