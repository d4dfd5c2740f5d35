//! Layers: their records against their parents, driver layers, sizes
//! and digests; and the layers nothing reaches.
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use strata_archive::Digest;
use strata_image::diff_ids;

use strata_types::error::chain as error_chain;

use super::{entries, is_temp, Checker, Finding, FindingKind};
use crate::atomic;
use crate::error::{ErrorKind, Result};
use crate::ids::CacheId;
use crate::layer::{chain_id, chain_ids, Layer};
use crate::layout::{self, record};

impl Checker<'_> {
    /// Every layer that reads back, checked against its parent, its
    /// driver layer and its size.
    pub(super) fn layers(&mut self) -> Result<BTreeMap<Digest, Layer>> {
        let store = self.store;
        let mut layers = BTreeMap::new();
        let mut sizeless = Vec::new();
        for (name, path) in entries(&self.layout().layers())? {
            if layout::is_removing(&name) || is_temp(&name) {
                continue;
            }
            let Some(chain) = Digest::parse(&format!("sha256:{name}")) else {
                self.note(path.display().to_string(), "not a layer: ignored");
                continue;
            };
            match store.layer(&chain) {
                Ok(l) => {
                    layers.insert(chain, l);
                }
                Err(e) => match sizeless_layer(&path, &chain) {
                    Some(l) => sizeless.push(l),
                    None => {
                        self.found(FindingKind::BadLayer, chain.as_str(), error_chain(&e), None)
                    }
                },
            }
        }
        let measured = self.lost_sizes(sizeless, &mut layers);
        for l in layers.values() {
            let object = l.chain_id.as_str();
            let want = chain_id(l.parent.as_ref(), &l.diff_id);
            if want != l.chain_id {
                self.found(
                    FindingKind::BadLayer,
                    object,
                    format!("its parent and diffID give the chainID {want}"),
                    None,
                );
            }
            let parent = match &l.parent {
                Some(p) => match layers.get(p) {
                    Some(p) => Some(p),
                    None => {
                        self.found(
                            FindingKind::MissingParent,
                            object,
                            format!("its parent {p} is not in the store"),
                            None,
                        );
                        continue;
                    }
                },
                None => None,
            };
            if !store.driver.exists(&l.cache_id) {
                self.found(
                    FindingKind::MissingDriverLayer,
                    object,
                    format!(
                        "its content ({} layer {}) is gone",
                        store.driver.name(),
                        l.cache_id
                    ),
                    None,
                );
                continue;
            }
            if measured.contains(&l.chain_id) {
                continue;
            }
            let parent_cache = parent.map(|p| p.cache_id.as_str());
            match store.driver.diff_size(&l.cache_id, parent_cache) {
                Ok(n) if n == l.size => {}
                // A layer Docker unpacked (the store is a copy of its
                // data root) holds the size Docker counted.
                Ok(_) if self.counted_by_docker(&l.cache_id, l.size) => {}
                Ok(n) => {
                    let size_file = self.layout().layer(&l.chain_id).join(record::SIZE);
                    self.found(
                        FindingKind::WrongSize,
                        object,
                        format!("size says {} bytes, the content has {n}", l.size),
                        Some(&|| atomic::write(&size_file, n.to_string().as_bytes())),
                    );
                }
                Err(e) => self.note(object, format!("could not measure its size: {e}")),
            }
        }
        Ok(layers)
    }

    /// Whether `size` is what Docker's driver records for driver layer
    /// `cache_id` (see `Driver::docker_size`).
    fn counted_by_docker(&self, cache_id: &str, size: u64) -> bool {
        matches!(self.store.driver.docker_size(cache_id), Ok(Some(n)) if n == size)
    }

    /// Layers whose only fault is their `size` (see [`sizeless_layer`]):
    /// measured as the wrong-size check measures a layer, and with repair
    /// the size is written back. The rest of the record reads, so the
    /// layer joins the others for the checks that follow (a lower file
    /// that keeps it from being measured is among them: a second repair
    /// then measures it). Returns their chainIDs: measured already.
    fn lost_sizes(
        &mut self,
        sizeless: Vec<(Layer, &str)>,
        layers: &mut BTreeMap<Digest, Layer>,
    ) -> BTreeSet<Digest> {
        let store = self.store;
        let cache_ids: BTreeMap<Digest, CacheId> = layers
            .values()
            .chain(sizeless.iter().map(|(l, _)| l))
            .map(|l| (l.chain_id.clone(), l.cache_id.clone()))
            .collect();
        let mut chains = BTreeSet::new();
        for (mut l, why) in sizeless {
            let object = l.chain_id.as_str().to_owned();
            let parent_cache = match &l.parent {
                None => Ok(None),
                Some(p) => cache_ids.get(p).map(|c| Some(c.as_str())).ok_or_else(|| {
                    format!("its parent {p}, to measure it over, is not in the store")
                }),
            };
            let size = parent_cache.and_then(|pc| {
                store
                    .driver
                    .diff_size(&l.cache_id, pc)
                    .map_err(|e| format!("its content cannot be measured: {}", error_chain(&e)))
            });
            match size {
                Ok(n) => {
                    let size_file = self.layout().layer(&l.chain_id).join(record::SIZE);
                    self.found(
                        FindingKind::BadLayer,
                        object,
                        format!("{why}; the content has {n} bytes"),
                        Some(&|| atomic::write(&size_file, n.to_string().as_bytes())),
                    );
                    l.size = n;
                }
                Err(e) => {
                    self.found(FindingKind::BadLayer, object, format!("{why}; {e}"), None);
                }
            }
            chains.insert(l.chain_id.clone());
            layers.insert(l.chain_id.clone(), l);
        }
        chains
    }

    /// Layers nothing reaches; collected (as `rmi` would) only when the
    /// store is otherwise sound, so that a layer reached only from a
    /// damaged image or container is never taken for garbage.
    pub(super) fn unreferenced_layers(&mut self, layers: &BTreeMap<Digest, Layer>) -> Result<()> {
        let store = self.store;
        let mut roots: Vec<Digest> = Vec::new();
        for (name, _) in entries(&self.layout().image_configs())? {
            let Some(id) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            if let Ok(ids) = store.images.image_json(&id).map(|v| diff_ids(&v)) {
                roots.extend(ids.ok().and_then(|d| chain_ids(&d).pop()));
            }
        }
        for c in self.container_configs()? {
            roots.extend(c.parent_layer);
        }
        roots.extend(store.docker_container_parents()?);
        let mut live = BTreeSet::new();
        for r in roots {
            let mut cur = Some(r);
            while let Some(c) = cur.filter(|c| live.insert(c.clone())) {
                cur = layers.get(&c).and_then(|l| l.parent.clone());
            }
        }
        let dead: Vec<&Layer> = layers
            .values()
            .filter(|l| !live.contains(&l.chain_id))
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        let sound = !self.corrupt();
        let removed = if self.opts.repair && sound {
            store.collect_layers(self.lock)?
        } else {
            Vec::new()
        };
        for l in dead {
            let repaired = removed.contains(&l.chain_id);
            let mut message = "no image and no container reaches it".to_owned();
            if self.opts.repair && !sound {
                message.push_str("; left in place while the store has corruption");
            }
            self.report.findings.push(Finding {
                kind: FindingKind::UnreferencedLayer,
                object: l.chain_id.as_str().to_owned(),
                message,
                repaired,
            });
        }
        Ok(())
    }

    /// Rebuilds every layer's tar and compares with its diffID.
    pub(super) fn digests(&mut self, layers: &BTreeMap<Digest, Layer>) -> Result<()> {
        let store = self.store;
        for l in layers.values() {
            if !store.driver.exists(&l.cache_id) {
                continue;
            }
            let object = l.chain_id.as_str();
            if store.tar_split_path(&l.chain_id).is_file() {
                match store.layer_tar(l, &mut io::sink()) {
                    Ok(d) if d == l.diff_id => {}
                    Ok(d) => self.found(
                        FindingKind::DigestMismatch,
                        object,
                        format!("its content rebuilds to {d}, not its diffID {}", l.diff_id),
                        None,
                    ),
                    Err(e) => self.found(
                        FindingKind::DigestMismatch,
                        object,
                        format!("its content no longer rebuilds: {}", error_chain(&e)),
                        None,
                    ),
                }
                continue;
            }
            // Without a record the only check is a fresh diff, whose tar
            // our writer normalises: a different digest is no proof.
            let parent_cache = l
                .parent
                .as_ref()
                .and_then(|p| layers.get(p))
                .map(|p| p.cache_id.as_str());
            match store.driver.diff(&l.cache_id, parent_cache, &mut io::sink()) {
                Ok(r) if r.diff_id == l.diff_id => {}
                Ok(r) => self.note(
                    object,
                    format!(
                        "no tar-split record; a fresh diff gives {} (not {}), which a normalised tar may explain",
                        r.diff_id, l.diff_id
                    ),
                ),
                Err(e) => self.note(object, format!("no tar-split record, and diffing failed: {e}")),
            }
        }
        Ok(())
    }
}

/// The record of a layer whose only fault is its `size` file (missing,
/// or not a number), and what is wrong with it; `None` when anything else
/// is missing or unreadable too.
fn sizeless_layer(dir: &Path, chain: &Digest) -> Option<(Layer, &'static str)> {
    let why = match atomic::read(&dir.join(record::SIZE)) {
        Err(e) if e.kind() == ErrorKind::NotFound => "its size file is missing",
        Ok(s) if s.parse::<u64>().is_err() => "its size file does not hold a number",
        _ => return None,
    };
    let parent = match atomic::read(&dir.join(record::PARENT)) {
        Ok(p) => Some(Digest::parse(&p)?),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(_) => return None,
    };
    let layer = Layer {
        chain_id: chain.clone(),
        diff_id: Digest::parse(&atomic::read(&dir.join(record::DIFF)).ok()?)?,
        cache_id: CacheId::parse(&atomic::read(&dir.join(record::CACHE_ID)).ok()?).ok()?,
        size: 0,
        parent,
    };
    Some((layer, why))
}
