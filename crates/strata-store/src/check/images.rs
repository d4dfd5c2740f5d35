//! Images: configs against their digests and layer chains, parents,
//! tags.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use strata_archive::Digest;
use strata_image::diff_ids;
use strata_types::error::chain;

use super::{entries, remove_path, Checker, FindingKind};
use crate::atomic;
use crate::error::Result;
use crate::layer::{chain_ids, Layer};
use crate::layout::record;

impl Checker<'_> {
    /// Every image config, checked against its digest and its chain;
    /// returns the IDs of the images present (good or bad).
    pub(super) fn images(&mut self, layers: &BTreeMap<Digest, Layer>) -> Result<BTreeSet<Digest>> {
        let store = self.store;
        let mut ids = BTreeSet::new();
        for (name, _) in entries(&self.layout().image_configs())? {
            let Some(id) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            ids.insert(id.clone());
            let config = match store.images.image_json(&id) {
                Ok(v) => v,
                Err(e) => {
                    self.found(FindingKind::BadImage, id.as_str(), chain(&e), None);
                    continue;
                }
            };
            let diffs = match diff_ids(&config) {
                Ok(d) => d,
                Err(why) => {
                    self.found(FindingKind::BadImage, id.as_str(), why, None);
                    continue;
                }
            };
            if let Some((i, c)) = chain_ids(&diffs)
                .iter()
                .enumerate()
                .find(|(_, c)| !layers.contains_key(c))
            {
                self.found(
                    FindingKind::MissingLayer,
                    id.as_str(),
                    format!("its layer {} (chainID {c}) is not in the store", i + 1),
                    None,
                );
            }
        }
        for (name, path) in entries(&self.layout().image_metadata_dir())? {
            let known = Digest::parse(&format!("sha256:{name}")).is_some_and(|d| ids.contains(&d));
            if !known {
                self.found(
                    FindingKind::OrphanImageMetadata,
                    format!("sha256:{name}"),
                    "image metadata without the image's config",
                    Some(&|| remove_path(&path)),
                );
                continue;
            }
            self.parent_image(&name, &path.join(record::PARENT), &ids);
        }
        Ok(ids)
    }

    /// An image's recorded parent (set by `commit`) must be in the store:
    /// `rmi` keeps a parent while it has children. The pointer is all
    /// that names a missing parent, so repair drops it; the image's own
    /// config and history keep everything it records.
    fn parent_image(&mut self, name: &str, file: &Path, ids: &BTreeSet<Digest>) {
        let Ok(parent) = atomic::read(file) else {
            return;
        };
        if Digest::parse(&parent).is_some_and(|p| ids.contains(&p)) {
            return;
        }
        self.found(
            FindingKind::MissingParentImage,
            format!("sha256:{name}"),
            format!("its parent image {parent} is not in the store"),
            Some(&|| remove_path(file)),
        );
    }

    /// Tags that name images the store lacks.
    pub(super) fn tags(&mut self, images: &BTreeSet<Digest>) -> Result<()> {
        let (store, lock) = (self.store, self.lock);
        let repos = match store.repositories() {
            Ok(r) => r,
            Err(e) => {
                self.found(FindingKind::BadImage, "repositories.json", chain(&e), None);
                return Ok(());
            }
        };
        for (name, tags) in &repos {
            for (tag, id) in tags {
                if Digest::parse(id).is_some_and(|d| images.contains(&d)) {
                    continue;
                }
                let untag = || {
                    let mut repos = store.repositories()?;
                    if let Some(m) = repos.get_mut(name) {
                        m.remove(tag);
                        if m.is_empty() {
                            repos.remove(name);
                        }
                    }
                    store.images.save_repositories(lock, &repos)
                };
                self.found(
                    FindingKind::DanglingTag,
                    tag.as_str(),
                    format!("names {id}, which is not in the store"),
                    Some(&untag),
                );
            }
        }
        Ok(())
    }
}
