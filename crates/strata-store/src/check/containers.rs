//! Containers: their records, mount records, driver layers, image and
//! parent layer; the names index.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use strata_archive::Digest;
use strata_types::error::chain;

use super::{entries, read_config, remove_path, Checker, FindingKind};
use crate::container::Container;
use crate::error::{IoContext, Result};
use crate::ids::{ContainerId, DriverLayer};
use crate::layer::Layer;
use crate::layout::{self, record};
use crate::{atomic, staging};

impl Checker<'_> {
    /// Every container: its config, mount record, layers, parent, image.
    pub(super) fn containers(
        &mut self,
        layers: &BTreeMap<Digest, Layer>,
        images: &BTreeSet<Digest>,
    ) -> Result<()> {
        let store = self.store;
        let lock = self.lock;
        let driver = store.driver.as_ref();
        for (name, dir) in entries(&store.layout.containers())? {
            if layout::is_removing(&name) {
                continue;
            }
            if crate::container::is_dockers(&dir) {
                self.note(
                    format!("container {name}"),
                    "a container of Docker's (config.v2.json): strata does not list or run it, \
                     and keeps its layers",
                );
                continue;
            }
            // Parsed and validated as everywhere else: an ID that is not
            // its directory's name, or any malformed ID or name in it,
            // makes the record broken, and nothing in it is used.
            let read = read_config(&name, &dir)
                .and_then(|c| store.containers.check_volume_sources(&c).map(|()| c));
            let c: Container = match read {
                Ok(c) => c,
                Err(e) => {
                    self.found(
                        FindingKind::BrokenContainer,
                        name,
                        format!("config.json: {e}"),
                        None,
                    );
                    continue;
                }
            };
            let mounts = store.layout.mount_record(&c.id);
            if !mounts.exists() {
                if let Some(dir) = staging::unfinished_container(&store.layout, &c.id) {
                    self.note(
                        format!("{} ({})", c.name, c.id),
                        format!(
                            "its publishing was cut short between its records' renames; its mount \
                             record is staged in {}, and the next change to the store finishes it",
                            dir.display()
                        ),
                    );
                    continue;
                }
            }
            let mut why = Vec::new();
            let mut record_ok = true;
            for (file, want) in [
                (record::MOUNT_ID, c.mount_id.to_string()),
                (record::INIT_ID, c.init_id()),
            ] {
                match atomic::read(&mounts.join(file)) {
                    Ok(got) if got == want => {}
                    Ok(got) => {
                        record_ok = false;
                        why.push(format!("its mount record's {file} is {got}, not {want}"));
                    }
                    Err(_) => {
                        record_ok = false;
                        why.push(format!("its mount record has no {file}"));
                    }
                }
            }
            let rw = driver.exists(&c.mount_id);
            let init = driver.exists(&c.init_id());
            if !rw {
                why.push(format!("its read-write layer {} is gone", c.mount_id));
            }
            if !init {
                why.push(format!("its init layer {} is gone", c.init_id()));
            }
            let parent_ok = c
                .parent_layer
                .as_ref()
                .is_none_or(|p| layers.contains_key(p));
            if let Some(p) = c.parent_layer.as_ref().filter(|_| !parent_ok) {
                why.push(format!("its image layer {p} is not in the store"));
            }
            if !images.contains(&c.image) {
                why.push(format!("its image {} is not in the store", c.image));
            }
            if why.is_empty() {
                continue;
            }
            let object = format!("{} ({})", c.name, c.id);
            let mut message = why.join("; ");
            let parent_cache = c
                .parent_layer
                .as_ref()
                .and_then(|p| layers.get(p))
                .map(|l| l.cache_id.clone());
            // The init layer holds only what `create` writes: it can be
            // made again on the image's top layer, but not under a view
            // that is mounted (its lower chain would change beneath it).
            let init_blocked = if init || !rw {
                None
            } else if parent_cache.as_ref().is_some_and(|p| !driver.exists(p)) {
                Some("its image layer's content is gone")
            } else if !parent_ok {
                Some("its image layer is not in the store")
            } else if driver.in_use(&c.mount_id).unwrap_or(true) {
                Some("the container is mounted")
            } else {
                None
            };
            let cdir = dir.clone();
            let drop_records = || {
                if driver.exists(&c.init_id()) {
                    driver
                        .remove(&c.init_id())
                        .map_err(|e| crate::Error::driver("removing the init layer", e))?;
                }
                staging::remove_record(&store.layout, lock, &mounts)?;
                staging::remove_record(&store.layout, lock, &cdir)
            };
            let rewrite_record = || {
                let staging = staging::new_staging(&store.layout)?;
                atomic::write(&staging.join(record::MOUNT_ID), c.mount_id.as_bytes())?;
                atomic::write(&staging.join(record::INIT_ID), c.init_id().as_bytes())?;
                if let Some(p) = &c.parent_layer {
                    atomic::write(&staging.join(record::PARENT), p.as_str().as_bytes())?;
                }
                staging::remove_record(&store.layout, lock, &mounts)?;
                fs::rename(&staging, &mounts)
                    .ctx(|| format!("writing the mount record of {}", c.id))
            };
            let remake_init = || {
                // Named by staging until it is whole and durable: a crash
                // midway leaves debris the next open removes, and the next
                // check makes it again.
                let staging = staging::new_staging(&store.layout)?;
                atomic::write(&staging.join(record::INIT_ID), c.init_id().as_bytes())?;
                // What is left of the old one (a directory without its
                // `diff`) holds nothing but what `create` wrote.
                store.layers.remove_stale(&c.init_id())?;
                store
                    .containers
                    .make_init_layer(&c, parent_cache.as_deref())?;
                store.layers.sync_driver()?;
                remove_path(&staging)
            };
            let remake = || {
                if !init {
                    remake_init()?;
                }
                if !record_ok {
                    rewrite_record()?;
                }
                Ok(())
            };
            // Without its read-write layer the container has nothing left
            // to lose; with that layer whole, the init layer and the record
            // are made again from what the container's config says. The
            // read-write layer itself is never touched (a `lower` naming
            // the old init layer is the overlay2 check's to rebuild).
            let fix: Option<&dyn Fn() -> Result<()>> = if !rw {
                Some(&drop_records)
            } else if parent_ok && images.contains(&c.image) && init_blocked.is_none() {
                Some(&remake)
            } else {
                None
            };
            if let (true, Some(blocked)) = (self.opts.repair, init_blocked) {
                message.push_str(&format!("; the init layer is not made again: {blocked}"));
            }
            self.found(FindingKind::BrokenContainer, object, message, fix);
        }
        Ok(())
    }

    /// Mount records whose container is gone.
    pub(super) fn mount_records(&mut self) -> Result<()> {
        let store = self.store;
        let lock = self.lock;
        for (name, dir) in entries(&store.layout.mounts())? {
            if layout::is_removing(&name) || store.layout.container(&name).is_dir() {
                continue;
            }
            let fix = || {
                // Only what parses as a driver ID is removed; a malformed
                // one names nothing (and its layer, if any, is an orphan
                // the next walk finds).
                for f in [record::MOUNT_ID, record::INIT_ID] {
                    if let Some(id) = atomic::read(&dir.join(f))
                        .ok()
                        .and_then(|id| DriverLayer::parse(f, &id).ok())
                    {
                        store.layers.remove_stale(&id.driver_id())?;
                    }
                }
                staging::remove_record(&store.layout, lock, &dir)
            };
            self.found(
                FindingKind::OrphanMountRecord,
                name,
                "a mount record without its container",
                Some(&fix),
            );
        }
        Ok(())
    }

    /// `names/<name>` entries whose container is gone (a crash between
    /// removing a container's records and its name), and containers whose
    /// name is missing from the index.
    pub(super) fn names(&mut self) -> Result<()> {
        let store = self.store;
        for (name, path) in entries(&store.layout.names())? {
            // What the file holds is a container ID, or the name names
            // no container: never a path to follow.
            let stray = match atomic::read(&path).map(|s| ContainerId::parse(&s)) {
                Ok(Ok(id)) => {
                    let live = match store.containers.container(&id) {
                        Ok(c) => c.name == name,
                        // A container whose config is damaged is reported
                        // as broken; its name stays with it.
                        Err(_) => store.layout.container(&id).is_dir(),
                    };
                    (!live).then(|| "names no container".to_owned())
                }
                Ok(Err(e)) => Some(format!("names no container: {e}")),
                // Unreadable now (EIO, EACCES): said, never removed.
                Err(e) if e.kind() == crate::ErrorKind::Io => {
                    self.found(
                        FindingKind::Note,
                        format!("name {name}"),
                        format!("cannot be read: {}", chain(&e)),
                        None,
                    );
                    None
                }
                Err(e) => Some(format!("names no container: {}", chain(&e))),
            };
            if let Some(why) = stray {
                self.found(
                    FindingKind::Debris,
                    format!("name {name}"),
                    why,
                    Some(&|| remove_path(&path)),
                );
            }
        }
        for c in self.container_configs()? {
            let path = store.layout.name(&c.name);
            // A publishing cut short: said once, by `containers`.
            if !path.exists() && staging::unfinished_container(&store.layout, &c.id).is_none() {
                let id = c.id.clone();
                self.found(
                    FindingKind::BrokenContainer,
                    format!("container {}", c.name),
                    "its name is missing from names/",
                    Some(&move || atomic::write(&path, id.as_bytes())),
                );
            }
        }
        Ok(())
    }
}
