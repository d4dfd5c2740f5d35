//! Garbage collection of layers: a layer lives while an image's chain or
//! a container's parent chain reaches it. Layers carry no reference
//! counts that could drift; [`Store::remove_image`] and
//! [`Store::remove_container`] remove the layers nothing reaches any more.

use std::collections::{BTreeMap, BTreeSet};

use strata_archive::Digest;

use crate::error::{Error, Result};
use crate::layer::{chain_ids, Layer};
use crate::lock::Lock;
use crate::Store;

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

    /// Removes the layers no image and no container reaches.
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
