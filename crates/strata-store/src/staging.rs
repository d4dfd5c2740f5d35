//! Staging: layers and containers are assembled in `layerdb/tmp/<random>/`
//! and renamed into place last, so that a crash leaves staging debris,
//! never a half-made object under its real name; removal renames to
//! `*-removing` first. The next open (under the store lock) removes the
//! debris, or finishes what a crash interrupted.
//!
//! Looking for `-removing` names means listing `containers/`,
//! `layerdb/mounts` and `layerdb/sha256`, which costs what the store
//! holds (ext4 hashes every name of a large directory to list it): a
//! command on a store of a few hundred containers spent more on that
//! than on the rest of its open. So an open lists them only when a
//! removal may have left such a name:
//!
//! - a removal makes `layerdb/removing` before its first rename
//!   ([`Removals`]) and deletes it once its `-removing` names are gone:
//!   a removal cut short (a killed process, an error) leaves it;
//! - the first open of a boot looks everywhere, and writes the boot's
//!   ID to `layerdb/swept`: a power cut may lose the file made before a
//!   rename that reached the disk, but it is followed by a new boot.
//!
//! `check` always looks everywhere.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::ids::{self, ContainerId};
use crate::layout::{self, record, Layout};
use crate::lock::Lock;
use crate::{atomic, random_hex, Store};

/// A fresh staging directory under `layerdb/tmp`.
pub(crate) fn new_staging(layout: &Layout) -> Result<PathBuf> {
    let p = layout.layer_staging().join(random_hex(16)?);
    fs::create_dir(&p).ctx(|| format!("creating {}", p.display()))?;
    Ok(p)
}

/// Locks the staging directory `dir` (an flock on the directory itself)
/// for work done without the store lock; released when the file drops.
pub(crate) fn hold_staging(dir: &Path) -> Result<fs::File> {
    let file = fs::File::open(dir).ctx(|| format!("opening {}", dir.display()))?;
    strata_sys::fs::lock_exclusive(std::os::fd::AsFd::as_fd(&file))
        .ctx(|| format!("locking {}", dir.display()))?;
    Ok(file)
}

/// Whether a live process holds the staging directory `dir` (see
/// [`hold_staging`]): then it is work in progress, not debris.
pub(crate) fn is_live(dir: &Path) -> bool {
    // O_DIRECTORY: a fifo planted there is refused, never opened.
    strata_sys::fs::open_dir(dir).is_ok_and(|fd| {
        strata_sys::fs::try_lock_exclusive(std::os::fd::AsFd::as_fd(&fd)).is_ok_and(|got| !got)
    })
}

/// The driver layers a staging or `-removing` record names
/// (`cache-id`, `mount-id`, `init-id`), parsed: a value that is not a
/// driver ID names nothing, and is never passed to the driver.
pub(crate) fn staged_driver_layers(dir: &Path) -> Vec<ids::DriverLayer> {
    let mut out = Vec::new();
    for f in record::DRIVER_LAYERS {
        let Ok(s) = atomic::read(&dir.join(f)) else {
            continue;
        };
        match ids::DriverLayer::parse(f, &s) {
            Ok(id) => out.push(id),
            Err(e) => tracing::warn!("{}: {e}: not removed", dir.join(f).display()),
        }
    }
    out
}

/// The staging directory of container `id` whose publishing a crash cut
/// between its renames (its config is published, its mounts record is
/// still staged), if there is one: the next open under the lock finishes
/// it ([`Store::clean_staging`]), so it is not damage.
pub(crate) fn unfinished_container(layout: &Layout, id: &ContainerId) -> Option<PathBuf> {
    fs::read_dir(layout.layer_staging())
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|dir| {
            !dir.join(record::CONTAINER).exists()
                && atomic::read(&dir.join(record::CONTAINER_ID))
                    .ok()
                    .and_then(|got| ContainerId::parse(&got).ok())
                    .is_some_and(|got| &got == id)
        })
}

/// Says that removals are under way: `layerdb/removing` is there from
/// before a removal's first `-removing` rename until [`Removals::done`],
/// so that the next open looks for what a removal cut short left.
pub(crate) struct Removals {
    marker: PathBuf,
}

impl Removals {
    /// Makes the marker (the store lock, held, keeps other removals and
    /// the open that deletes it out).
    pub(crate) fn begin(layout: &Layout, _: &Lock) -> Result<Removals> {
        let marker = layout.removals();
        strata_sys::fs::write_nofollow(&marker, b"")
            .ctx(|| format!("creating {}", marker.display()))?;
        Ok(Removals { marker })
    }

    /// Every `-removing` name the removal made is gone: drops the marker.
    /// A removal that returns early never calls this, and its marker
    /// stays for the next open.
    pub(crate) fn done(self) {
        let _ = fs::remove_file(&self.marker);
    }
}

/// Removes a record directory as every removal does: renamed to its
/// `-removing` name (with [`Removals`] begun first), then deleted, not
/// following a symlink at its name. Nothing there is no error.
pub(crate) fn remove_record(layout: &Layout, lock: &Lock, dir: &Path) -> Result<()> {
    let Ok(md) = fs::symlink_metadata(dir) else {
        return Ok(());
    };
    let removals = Removals::begin(layout, lock)?;
    let doomed = layout::removing(dir);
    fs::rename(dir, &doomed).ctx(|| format!("removing {}", dir.display()))?;
    if md.is_dir() {
        fs::remove_dir_all(&doomed)
    } else {
        fs::remove_file(&doomed)
    }
    .ctx(|| format!("removing {}", dir.display()))?;
    removals.done();
    Ok(())
}

/// Whether the removal directories are to be looked through: a removal
/// may have been cut short ([`Removals`]), or no open has looked in this
/// boot (or the boot cannot be told).
fn must_sweep(layout: &Layout) -> bool {
    if fs::symlink_metadata(layout.removals()).is_ok() {
        return true;
    }
    let swept = atomic::read(&layout.swept()).unwrap_or_default();
    crate::unflushed::boot_id().is_none_or(|boot| swept != boot)
}

impl Store {
    /// Removes what crashed or interrupted work left: staging directories
    /// (but those a live process holds, see [`is_live`]) and `-removing`
    /// debris, with the driver layers they had made, and
    /// the volumes' staging (`volumes/.<name>.creating`, `.removing`) and
    /// temp files.
    ///
    /// The removal directories are looked through when `everywhere` says
    /// so (`check`), or a removal may have left something there (see the
    /// module's text).
    pub(crate) fn clean_staging(&self, lock: &Lock, everywhere: bool) -> Result<()> {
        for dir in self.layout.staging_dirs() {
            for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
                let e = e.ctx(|| format!("listing {}", dir.display()))?;
                if is_live(&e.path()) {
                    continue;
                }
                if self.finish_creating(lock, &e.path())? {
                    continue;
                }
                // A staged layer or container names the driver layers it
                // made: remove them with it.
                for id in staged_driver_layers(&e.path()) {
                    let _ = self.layers.remove_stale(&id.driver_id());
                }
                let _ = fs::remove_dir_all(e.path());
            }
        }
        if everywhere || must_sweep(&self.layout) {
            self.sweep_removals(lock)?;
        }
        // A volume half-made or half-removed, and temp files of its
        // records; never anything under a published volume's `_data`.
        if self.layout.volumes().is_dir() {
            self.volumes.local()?.clean_staging()?;
        }
        Ok(())
    }

    /// Finishes the removals a crash or an error cut short (their
    /// `-removing` names), then says so: the marker goes, and this boot
    /// is recorded as swept (not flushed: a lost record means one more
    /// sweep).
    fn sweep_removals(&self, _: &Lock) -> Result<()> {
        let mut left = false;
        for dir in self.layout.removal_dirs() {
            for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
                let e = e.ctx(|| format!("listing {}", dir.display()))?;
                if layout::is_removing(&e.file_name().to_string_lossy()) {
                    // A layer or container being removed names its driver
                    // layers: finish removing them first, or they leak.
                    for id in staged_driver_layers(&e.path()) {
                        self.layers.remove_stale(&id.driver_id())?;
                    }
                    left |= fs::remove_dir_all(e.path()).is_err();
                }
            }
        }
        if left {
            return Ok(());
        }
        let _ = fs::remove_file(self.layout.removals());
        if let Some(boot) = crate::unflushed::boot_id() {
            let _ = strata_sys::fs::write_nofollow(&self.layout.swept(), boot.as_bytes());
        }
        Ok(())
    }

    /// A container whose config was published before the crash is
    /// complete but for its mounts record: finishes publishing it from
    /// its staging `dir`. Whether `dir` was such a container.
    ///
    /// Every ID read back is parsed before it names a path: staging that
    /// holds anything else is debris, removed without following what it
    /// says.
    fn finish_creating(&self, _: &Lock, dir: &Path) -> Result<bool> {
        let Some(id) = atomic::read(&dir.join(record::CONTAINER_ID))
            .ok()
            .and_then(|id| ContainerId::parse(&id).ok())
        else {
            return Ok(false);
        };
        let mounts = self.layout.mount_record(&id);
        if !self.layout.container_config(&id).is_file()
            || mounts.exists()
            || dir.join(record::CONTAINER).exists()
        {
            return Ok(false);
        }
        // Only if no container took the name meanwhile; else this one is
        // found by its ID.
        if let Ok(name) = self.containers.container(&id).map(|c| c.name) {
            let staged_name = dir.join(record::NAME);
            if staged_name.exists() && !self.containers.name_taken(&name) {
                fs::rename(staged_name, self.layout.name(&name))
                    .ctx(|| format!("finishing container {id}"))?;
            }
        }
        fs::rename(dir, &mounts).ctx(|| format!("finishing container {id}"))?;
        Ok(true)
    }
}

/// A begun layer whose staging directory is locked (see
/// [`crate::LayerStore::begin_live`]).
pub(crate) struct LiveStaging {
    pub path: PathBuf,
    pub cache_id: crate::CacheId,
    _lock: fs::File,
}

impl LiveStaging {
    /// The begun layer at `path`, its staging held by `lock` (from
    /// [`hold_staging`]) until dropped.
    pub(crate) fn new(path: PathBuf, cache_id: crate::CacheId, lock: fs::File) -> LiveStaging {
        LiveStaging {
            path,
            cache_id,
            _lock: lock,
        }
    }
}
