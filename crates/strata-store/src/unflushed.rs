//! Containers created without a flush, and what the next boot makes of
//! them.
//!
//! A container holds no user data when `create` makes it: its records and
//! an init layer of empty files. Flushing them would cost more than the
//! rest of `create` (a `syncfs` writes whatever else is dirty on the file
//! system; an fsync per file costs a journal commit apiece), so `create`
//! flushes nothing. Instead it leaves a marker, made before the renames
//! that publish the container:
//!
//! ```text
//! image/<driver>/layerdb/unflushed/<boot-id>/<container-id>.<mount-id>
//! ```
//!
//! A journaling file system keeps the order of these name operations
//! across a crash, but not the bytes of files written without a flush: a
//! container published before a power cut may come back with empty
//! records. Markers of the running boot name nothing to check (no crash
//! has happened since: the page cache still holds every byte); the first
//! open after a reboot checks each container a marker of an earlier boot
//! names, then drops the marker:
//!
//! - a container whose `config.json` reads back and names the marker's
//!   mount ID is made whole: its mount record and name are written again
//!   from it (durably), a lost init layer is made again, and its view
//!   must mount;
//! - anything less is removed, records and driver layers: a container
//!   is whole or absent once the store is opened.
//!
//! `rm` drops a container's marker. A driver whose `create` copies
//! content (vfs) gets no marker: its layers are flushed as before.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use strata_driver::check::FindingKind;

use crate::error::{IoContext, Result};
use crate::ids::{ContainerId, MountId};
use crate::layout::{record, Layout};
use crate::lock::Lock;
use crate::{atomic, Container, Store};

/// The running boot's ID, or `None` when it cannot be read (then
/// `create` flushes, as there is no telling a crash from a marker).
/// Read once: an open and a `create` ask several times, and it does not
/// change while the process lives.
pub(crate) fn boot_id() -> Option<String> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        strata_sys::process::boot_id()
            .ok()
            .filter(|b| is_boot_id(b))
    })
    .clone()
}

/// Whether `s` is a boot ID as the kernel writes it (a UUID): what a
/// directory name under `unflushed/` must be before it names anything.
fn is_boot_id(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// `unflushed/<boot>/<container-id>.<mount-id>`.
fn marker(layout: &Layout, boot: &str, c: &Container) -> PathBuf {
    layout
        .unflushed()
        .join(boot)
        .join(format!("{}.{}", c.id, c.mount_id))
}

/// Marks container `c` as created without a flush in boot `boot`: made
/// before anything of it is published.
pub(crate) fn mark(layout: &Layout, boot: &str, c: &Container) -> Result<()> {
    let p = marker(layout, boot, c);
    let dir = p.parent().expect("a marker is in its boot's directory");
    match fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(crate::Error::io(format!("creating {}", dir.display()), e))
        }
        _ => {}
    }
    fs::File::create(&p).ctx(|| format!("creating {}", p.display()))?;
    Ok(())
}

/// Drops `c`'s marker, if the running boot made one.
pub(crate) fn unmark(layout: &Layout, c: &Container) {
    if let Some(boot) = boot_id() {
        let _ = fs::remove_file(marker(layout, &boot, c));
    }
}

/// Whether `dir` (a store's `layerdb/unflushed/`) holds anything but
/// this boot's markers: a crash may have left containers half there,
/// which the next open must make whole or remove.
pub(crate) fn earlier_boot_left(dir: &Path) -> bool {
    let now = boot_id();
    fs::read_dir(dir).is_ok_and(|mut entries| {
        entries.any(|e| {
            e.map_or(true, |e| {
                now.as_deref() != Some(e.file_name().to_string_lossy().as_ref())
            })
        })
    })
}

/// The IDs a marker's name holds, parsed; `None` for a name that is not
/// a marker's.
fn parse_marker(name: &str) -> Option<(ContainerId, MountId)> {
    let (id, mount) = name.split_once('.')?;
    Some((ContainerId::parse(id).ok()?, MountId::parse(mount).ok()?))
}

impl Store {
    /// Checks the containers that markers of earlier boots name (see the
    /// module docs): each is made whole or removed, then its marker
    /// dropped. Markers of the running boot are left alone.
    pub(crate) fn recover_unflushed(&self, lock: &Lock) -> Result<()> {
        let dir = self.layout.unflushed();
        let now = boot_id();
        for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
            let e = e.ctx(|| format!("listing {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if now.as_deref() == Some(name.as_str()) {
                continue;
            }
            let boot = e.path();
            // Not a boot's directory (a file, a symlink, a name no boot
            // has): nothing in it is read.
            if !is_boot_id(&name) || !e.file_type().is_ok_and(|t| t.is_dir()) {
                tracing::warn!("{}: not a boot's markers: removed", boot.display());
                let _ = fs::remove_dir_all(&boot).or_else(|_| fs::remove_file(&boot));
                continue;
            }
            let mut markers = Vec::new();
            for m in fs::read_dir(&boot).ctx(|| format!("listing {}", boot.display()))? {
                let m = m.ctx(|| format!("listing {}", boot.display()))?;
                if let Some((id, mount)) = parse_marker(&m.file_name().to_string_lossy()) {
                    self.recover_one(lock, &id, &mount)?;
                }
                markers.push(m.path());
            }
            // What was made whole is flushed before the markers that
            // would have it checked again go.
            if !markers.is_empty() {
                self.layers.sync_driver()?;
            }
            for m in markers {
                let _ = fs::remove_file(m);
            }
            fs::remove_dir(&boot).ctx(|| format!("removing {}", boot.display()))?;
        }
        Ok(())
    }

    /// Makes the container `id` whole, or removes what there is of it.
    fn recover_one(&self, lock: &Lock, id: &ContainerId, mount: &MountId) -> Result<()> {
        match self.containers.container(id) {
            Ok(c) if &c.mount_id == mount => match self.make_whole(lock, &c) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::warn!(
                    "container {} ({}) was not whole after a crash: removed ({e})",
                    c.name,
                    c.id
                ),
            },
            _ => tracing::warn!("container {id} was half made when the system stopped: removed"),
        }
        self.remove_half(lock, id, mount)
    }

    /// Writes again what `c`'s config says its other records hold, makes
    /// a lost init layer again, and mounts its view once to see it works.
    fn make_whole(&self, _: &Lock, c: &Container) -> Result<()> {
        let driver = self.driver.as_ref();
        if !driver.exists(&c.mount_id) {
            return Err(crate::Error::new(
                crate::ErrorKind::NotFound,
                "its read-write layer is gone",
            ));
        }
        let record = self.layout.mount_record(&c.id);
        if !record.is_dir() {
            fs::create_dir(&record).ctx(|| format!("creating {}", record.display()))?;
        }
        atomic::write(&record.join(record::MOUNT_ID), c.mount_id.as_bytes())?;
        atomic::write(&record.join(record::INIT_ID), c.init_id().as_bytes())?;
        if let Some(p) = &c.parent_layer {
            atomic::write(&record.join(record::PARENT), p.as_str().as_bytes())?;
        }
        let name_ok = self
            .containers
            .name_target(&c.name)
            .is_ok_and(|t| t.as_ref() == Some(&c.id));
        if !name_ok && !self.containers.name_taken(&c.name) {
            atomic::write(&self.layout.name(&c.name), c.id.as_bytes())?;
        }
        if !driver.exists(&c.init_id()) {
            let parent = c.parent_layer.as_ref().map(|p| self.layer(p)).transpose()?;
            self.containers
                .make_init_layer(c, parent.as_ref().map(|l| l.cache_id.as_str()))?;
        }
        self.repair_driver_records(c)?;
        let view = driver
            .get(&c.mount_id, None)
            .map_err(|e| crate::Error::driver("mounting its view", e))?;
        drop(view);
        Ok(())
    }

    /// The driver's own records of `c`'s two layers (overlay2's `link`
    /// and `lower`), checked by the driver and repaired where it can; one
    /// it cannot repair fails.
    fn repair_driver_records(&self, c: &Container) -> Result<()> {
        let Some(check) = self.driver.checker() else {
            return Ok(());
        };
        let mut image = Vec::new();
        let mut cur = c.parent_layer.clone();
        while let Some(chain) = cur {
            let l = self.layer(&chain)?;
            image.push(l.cache_id.to_string());
            cur = l.parent;
        }
        let mut below_rw = vec![c.init_id()];
        below_rw.extend(image.iter().cloned());
        let parents = BTreeMap::from([
            (c.init_id(), Ok(image)),
            (c.mount_id.to_string(), Ok(below_rw)),
        ]);
        let ours = [c.init_id(), c.mount_id.to_string()];
        let mut failed = None;
        check
            .check_layers(&parents, &mut |f| {
                if f.kind == FindingKind::Note || !ours.contains(&f.object) {
                    return;
                }
                let done = match f.repair {
                    Some(_) => check.repair(&f).map_err(|e| e.to_string()),
                    None => Err(f.message.clone()),
                };
                if let Err(why) = done {
                    failed.get_or_insert(format!("layer {}: {why}", f.object));
                }
            })
            .map_err(|e| crate::Error::driver("checking its layers", e))?;
        match failed {
            None => Ok(()),
            Some(why) => Err(crate::Error::new(crate::ErrorKind::Corrupt, why)),
        }
    }

    /// Removes every trace of container `id` whose read-write layer is
    /// `mount`: records, name, driver layers.
    fn remove_half(&self, lock: &Lock, id: &ContainerId, mount: &MountId) -> Result<()> {
        for dir in [self.layout.container(id), self.layout.mount_record(id)] {
            crate::staging::remove_record(&self.layout, lock, &dir)?;
        }
        let names = self.layout.names();
        for e in fs::read_dir(&names).ctx(|| format!("listing {}", names.display()))? {
            let e = e.ctx(|| format!("listing {}", names.display()))?;
            // Its name, or a name whose bytes the crash lost (a whole
            // container's is written again from its config).
            let holds = atomic::read(&e.path()).ok();
            let names_it = match holds.as_deref().map(ContainerId::parse) {
                Some(Ok(other)) => &other == id,
                _ => true,
            };
            if names_it {
                let _ = fs::remove_file(e.path());
            }
        }
        self.layers.remove_stale(mount.as_str())?;
        self.layers.remove_stale(&mount.init_id())?;
        // A layer whose own record of its shared entry was lost leaves
        // that entry behind (overlay2's `l/` link): links to nothing go.
        if let Some(check) = self.driver.checker() {
            check
                .check_shared(&mut |f| {
                    if f.kind == FindingKind::DanglingLink {
                        let _ = check.repair(&f);
                    }
                })
                .map_err(|e| crate::Error::driver("checking the driver's links", e))?;
        }
        Ok(())
    }
}
