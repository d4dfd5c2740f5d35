//! Garbage collection of layers: a layer lives while an image's chain or
//! a container's parent chain reaches it. [`Store::remove_image`] and
//! [`Store::remove_container`] remove the layers nothing reaches any more,
//! walking down from what they removed with the reference index (`refs`):
//! what they touch, not the whole store. `system prune` and `check
//! --repair` walk the whole store ([`Store::collect_layers`]), which also
//! finds layers an interrupted command left unreachable.

use std::collections::{BTreeMap, BTreeSet};

use strata_archive::Digest;

use crate::error::{Error, Result};
use crate::layer::{chain_ids, Layer};
use crate::lock::Lock;
use crate::{refs, Store};

impl Store {
    /// How many things hold each of `layers` (from [`Store::layers`])
    /// directly, as Docker's layer store counts them: the images whose
    /// top layer it is, the layers made on it, and the containers made on
    /// it. A layer with none is removed by the next `rmi` or `system
    /// prune`. With the errors of the images and containers that did not
    /// read back (their holds are not counted).
    pub fn layer_refs(&self, layers: &[Layer]) -> Result<(BTreeMap<Digest, usize>, Vec<Error>)> {
        let (images, mut bad) = self.readable_images()?;
        let (containers, bad_containers) = self.readable_containers()?;
        bad.extend(bad_containers);
        let mut refs: BTreeMap<Digest, usize> =
            layers.iter().map(|l| (l.chain_id.clone(), 0)).collect();
        let held = images
            .into_iter()
            .filter_map(|img| chain_ids(&img.diff_ids).pop())
            .chain(layers.iter().filter_map(|l| l.parent.clone()))
            .chain(containers.into_iter().filter_map(|c| c.parent_layer))
            .chain(self.docker_container_parents()?);
        for chain in held {
            if let Some(n) = refs.get_mut(&chain) {
                *n += 1;
            }
        }
        Ok((refs, bad))
    }

    /// Removes the layers that nothing holds any more, from each of `tops`
    /// (layers that lost a holder) down their chains, with the reference
    /// index: a layer is kept while an image or a layer recorded as
    /// holding it is there, or a container is made on it. Layers that do
    /// not read back, or whose index record is damaged, are kept for
    /// `check`.
    pub(crate) fn collect_from(&self, lock: &Lock, tops: Vec<Digest>) -> Result<Vec<Digest>> {
        if tops.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_refs(lock)?;
        let held: BTreeSet<Digest> = self
            .containers()?
            .into_iter()
            .filter_map(|c| c.parent_layer)
            .chain(self.docker_container_parents()?)
            .collect();
        let mut removed = Vec::new();
        let mut work = tops;
        while let Some(chain) = work.pop() {
            if held.contains(&chain) {
                continue;
            }
            match refs::is_held(&self.layout, &chain) {
                Ok(false) => {}
                Ok(true) => continue,
                // Kept: what the damaged record names may hold it.
                Err(e) => {
                    tracing::warn!("layer {chain} kept: {}", strata_types::error::chain(&e));
                    continue;
                }
            }
            let Ok(layer) = self.layers.layer(&chain) else {
                continue;
            };
            removed.extend(self.layers.remove(lock, &[&layer])?);
            work.extend(layer.parent);
        }
        Ok(removed)
    }

    /// Removes the layers no image and no container reaches, walking the
    /// whole store.
    pub(crate) fn collect_layers(&self, lock: &Lock) -> Result<Vec<Digest>> {
        let layers: BTreeMap<Digest, Layer> = self
            .layers()?
            .into_iter()
            .map(|l| (l.chain_id.clone(), l))
            .collect();
        let mut live = BTreeSet::new();
        let mut roots: Vec<Digest> = Vec::new();
        for img in self.images()? {
            roots.extend(chain_ids(&img.diff_ids).pop());
        }
        for c in self.containers()? {
            roots.extend(c.parent_layer.clone());
        }
        roots.extend(self.docker_container_parents()?);
        for r in roots {
            let mut cur = Some(r);
            while let Some(c) = cur {
                if !live.insert(c.clone()) {
                    break;
                }
                cur = layers.get(&c).and_then(|l| l.parent.clone());
            }
        }
        // Children before parents: a layer's depth orders them.
        let depth = |l: &Layer| {
            let mut n = 0;
            let mut cur = l.parent.clone();
            while let Some(p) = cur {
                n += 1;
                cur = layers.get(&p).and_then(|l| l.parent.clone());
            }
            n
        };
        let mut dead: Vec<&Layer> = layers
            .values()
            .filter(|l| !live.contains(&l.chain_id))
            .collect();
        dead.sort_by_key(|l| std::cmp::Reverse(depth(l)));
        self.layers.remove(lock, &dead)
    }
}
