//! The driver side of `strata check`: what the store knows of the
//! driver's layers (which ones it names, each one's parents), given to
//! the driver's own check ([`strata_driver::Check`]), whose findings are
//! folded into the report. The store never looks inside the driver's
//! home itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use strata_archive::Digest;
use strata_driver::check::{self as driver, Parents};
use strata_driver::Check;
use strata_types::error::chain;

use super::{entries, Checker, FindingKind};
use crate::atomic;
use crate::error::{ErrorKind, Result};
use crate::ids::DriverLayer;
use crate::layer::{chain_id, Layer};
use crate::layout::record;

impl Checker<'_> {
    /// Every driver id the store names: layers, containers, mount
    /// records and staged work.
    fn named_driver_ids(&self) -> Result<BTreeSet<String>> {
        let layout = self.layout();
        let mut named = BTreeSet::new();
        // A value that is not an ID names no driver layer (the record
        // it is in is reported where it is read).
        let mut read = |dir: &Path, files: &[&str]| {
            for f in files {
                if let Some(id) = atomic::read(&dir.join(f))
                    .ok()
                    .and_then(|id| DriverLayer::parse(f, &id).ok())
                {
                    named.insert(id.driver_id());
                }
            }
        };
        for dir in [layout.layers(), layout.layer_staging()] {
            for (_, p) in entries(&dir)? {
                read(&p, &record::DRIVER_LAYERS);
            }
        }
        for (_, p) in entries(&layout.mounts())? {
            read(&p, &[record::MOUNT_ID, record::INIT_ID]);
        }
        for (_, p) in entries(&layout.tmp())? {
            read(&p, &record::DRIVER_LAYERS);
        }
        for c in self.container_configs()? {
            named.insert(c.init_id());
            named.insert(c.mount_id.to_string());
        }
        Ok(named)
    }

    /// A finding of the driver's own check, folded into the report under
    /// the store's kind for it, and repaired by the driver.
    fn driver_finding(&mut self, check: &dyn Check, f: driver::Finding) {
        let kind = match f.kind {
            driver::FindingKind::Debris => FindingKind::Debris,
            driver::FindingKind::DanglingLink => FindingKind::DanglingLink,
            driver::FindingKind::MissingLink => FindingKind::MissingLink,
            driver::FindingKind::BrokenLower => FindingKind::BrokenLower,
            driver::FindingKind::Damaged => FindingKind::BadLayer,
            _ => FindingKind::Note,
        };
        let mut message = f.message.clone();
        if let (true, Some(why)) = (self.opts.repair, &f.blocked) {
            message.push_str(&format!("; {why}"));
        }
        let fix = || {
            check
                .repair(&f)
                .map_err(|e| crate::Error::new(ErrorKind::Io, chain(&e)))
        };
        let fix: Option<&dyn Fn() -> Result<()>> = match &f.repair {
            Some(_) => Some(&fix),
            None => None,
        };
        self.found(kind, f.object.clone(), message, fix);
    }

    /// What layers share in the driver (overlay2's `l/` links). Looked
    /// at before the containers: an entry left by a lost init layer would
    /// otherwise lead to the one repair makes in its place, as a second
    /// name for it.
    pub(super) fn driver_shared(&mut self) -> Result<()> {
        let store = self.store;
        let Some(check) = store.driver.checker() else {
            return Ok(());
        };
        check
            .check_shared(&mut |f| self.driver_finding(check, f))
            .map_err(|e| crate::Error::driver("checking the driver's links", e))
    }

    /// Driver layers nothing names, and driver debris. An unnamed layer
    /// is removed only when the store is otherwise sound: a layer whose
    /// `cache-id` is lost still holds an image's content.
    pub(super) fn driver_layers(&mut self) -> Result<()> {
        let store = self.store;
        let Some(check) = store.driver.checker() else {
            self.note(
                self.store.driver.home().display().to_string(),
                format!(
                    "orphan layers of the {} driver are not checked",
                    self.store.driver.name()
                ),
            );
            return Ok(());
        };
        let found = check
            .list()
            .map_err(|e| crate::Error::driver("listing the driver's layers", e))?;
        for f in found.debris {
            self.driver_finding(check, f);
        }
        let named = self.named_driver_ids()?;
        let sound = !self.corrupt();
        for layer in found.layers {
            if named.contains(&layer.id) {
                continue;
            }
            let mut message = "no layer, container or staged work names it".to_owned();
            if self.opts.repair && !sound {
                message.push_str("; left in place while the store has corruption");
            }
            let fix = || self.store.layers.remove_stale(&layer.id);
            let fix: Option<&dyn Fn() -> Result<()>> = if sound { Some(&fix) } else { None };
            self.found(
                FindingKind::OrphanDriverLayer,
                layer.path.display().to_string(),
                message,
                fix,
            );
        }
        Ok(())
    }

    /// Each driver layer's own records (overlay2's `link` and `lower`)
    /// against the parents the store knows for it.
    pub(super) fn driver_records(&mut self, store_layers: &BTreeMap<Digest, Layer>) -> Result<()> {
        let store = self.store;
        let Some(check) = store.driver.checker() else {
            return Ok(());
        };
        let parents = self.layers_below(store_layers)?;
        check
            .check_layers(&parents, &mut |f| self.driver_finding(check, f))
            .map_err(|e| crate::Error::driver("checking the driver's layers", e))
    }

    /// The parents of every driver layer the store names (driver ids, the
    /// parent first, down to the base layer), from the layers' records
    /// and the containers' configs, or why they cannot be told. A
    /// layer's `parent` is trusted only when it gives the layer's
    /// chainID, so a damaged record never decides a `lower`.
    fn layers_below(&self, layers: &BTreeMap<Digest, Layer>) -> Result<BTreeMap<String, Below>> {
        let stack = |top: Option<&Digest>| -> Below {
            let mut out = Vec::new();
            let mut cur = top;
            while let Some(c) = cur {
                let Some(l) = layers.get(c) else {
                    return Err(format!("layer {c} is not in the store"));
                };
                if chain_id(l.parent.as_ref(), &l.diff_id) != l.chain_id || out.len() > layers.len()
                {
                    return Err(format!("the records of layer {c} do not add up"));
                }
                out.push(l.cache_id.to_string());
                cur = l.parent.as_ref();
            }
            Ok(out)
        };
        let mut below = BTreeMap::new();
        for l in layers.values() {
            // The layer's own stack, less the layer: its own record is
            // checked with its parents'.
            let parents = stack(Some(&l.chain_id)).map(|s| s[1..].to_vec());
            below.insert(l.cache_id.to_string(), parents);
        }
        for c in self.container_configs()? {
            let image = stack(c.parent_layer.as_ref());
            let rw = image.clone().map(|s| {
                let mut v = vec![c.init_id()];
                v.extend(s);
                v
            });
            below.insert(c.init_id(), image);
            below.insert(c.mount_id.to_string(), rw);
        }
        Ok(below)
    }
}

/// A driver layer's parents (driver ids, the parent first), or why the
/// store cannot tell them.
type Below = Parents;
