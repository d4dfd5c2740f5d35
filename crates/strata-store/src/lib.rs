//! The store: layers, images and containers over one graph driver, laid
//! out like Docker's data root so an operator recognises it.
//!
//! ```text
//! <root>/                                   0700
//!   <driver>/                               the driver's home (overlay2/, vfs/)
//!   image/<driver>/
//!     imagedb/content/sha256/<hex>          image config, byte-exact; <hex> is its sha256
//!     imagedb/metadata/sha256/<hex>/parent  the image this one was committed from
//!     imagedb/metadata/sha256/<hex>/lastUpdated
//!     layerdb/sha256/<chain-hex>/{diff,size,cache-id,parent,tar-split.json.gz}
//!     layerdb/mounts/<container-id>/{mount-id,init-id,parent}
//!     layerdb/tmp/                          layers and containers being made
//!     repositories.json                     tags -> image IDs
//!   containers/<id>/config.json
//!   containers/<id>/{state.json,bundle/,hosts,hostname,resolv.conf,runtime/}
//!                                           a container's runs (see `start`)
//!   volumes/<name>/{_data/,meta.json}       volumes (see strata_volume::local); their
//!                                           staging (`.<name>.creating`) is removed on open
//!   names/<name>                            the container ID a name stands for
//!   tmp/                                    staging (and `load`'s spooled archives); emptied on open
//!   lock                                    flock taken by every change
//! ```
//!
//! # Trust
//!
//! The store is opened only when it is the caller's: the root, the lock
//! file and every directory above are real directories (opened without
//! following symlinks) that the caller owns and other users cannot
//! write to (`secure`; looser modes on the caller's own directories are
//! tightened, with a warning). Nothing read from it is trusted as a path
//! or an ID: every ID and name in a record is parsed into a validated
//! type (`ids`: [`ContainerId`], [`MountId`], [`CacheId`],
//! [`ContainerName`], and [`Digest`]) before it names a file, a
//! container's ID must be the name of its directory, and records are
//! read through one capped, no-follow reader (`atomic::read_capped`). A
//! record that fails is corrupt: `strata check` reports it, and nothing
//! in it is used.
//!
//! # Concurrency and crashes
//!
//! Every change runs under an exclusive `flock` on `lock`, so several
//! `strata` processes can share a store. Metadata is written atomically
//! (temp file, fsync, rename, fsync of the directory). A layer's or a
//! container's metadata is assembled in `layerdb/tmp/` and renamed into
//! place last: a crash leaves staging debris, never a half-made object
//! under its real name. Removal renames to `*-removing` first.
//!
//! # Garbage collection
//!
//! Layers carry no reference counts that could drift: a layer lives while
//! an image's chain or a container's parent chain reaches it, and
//! [`Store::remove_image`] and [`Store::remove_container`] remove the
//! layers nothing reaches any more.
#![forbid(unsafe_code)]

mod atomic;
mod check;
mod container;
mod copy;
mod error;
mod ids;
mod image;
mod layer;
mod port;
mod secure;
mod security;
mod start;
mod system;
mod time;
mod transfer;
pub mod view;
mod volume;

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub use check::{CheckOptions, Finding, FindingKind, Report};
pub use container::{
    override_env, storage_size, Container, ContainerSpec, HostConfig, RunConfig, NETWORK_MODES,
};
pub use copy::CopyReport;
pub use error::{Error, ErrorKind, Result};
pub use ids::{short, CacheId, ContainerId, ContainerName, InvalidId, MountId};
pub use image::Image;
pub use layer::{chain_id, Layer};
pub use port::{PortMapping, Protocol};
pub use security::{Seccomp, Security};
pub use start::{Started, State, Status};
pub use strata_archive::{Change, ChangeKind, Digest};
use strata_driver::Driver;
pub use strata_image::{ImageRef, SaveFormat};
pub use system::{ContainerUsage, DiskUsage, ImageUsage, OnDisk, Pruned, Usage, VolumeUsage};
pub use transfer::{Loaded, NoProgress, Progress};
pub use volume::{Mount, MountKind, Volume, ANONYMOUS_LABEL};

// The crates below the store that the `strata` command also drives on
// their own (`strata archive`, the fuse driver's union server, `strata
// union-mount`), so that the command depends on the store and run
// crates alone.
pub use strata_archive as archive;
pub use strata_driver as driver;
pub use strata_union as union;

use error::IoContext;

pub struct Store {
    root: PathBuf,
    driver: Box<dyn Driver>,
    /// Where volume plugins are looked for.
    plugin_dirs: Vec<PathBuf>,
}

/// Holds the store lock until dropped.
pub struct Lock {
    _file: fs::File,
}

impl Store {
    /// Opens the store at `root`, creating it with `driver` (or the best
    /// driver that works here) when new. An existing store keeps the
    /// driver it was made with: asking for another is an error naming it.
    pub fn open(root: &Path, driver: Option<&str>) -> Result<Store> {
        Store::open_with(root, driver, strata_driver::fuse::Server::Threads)
    }

    /// [`Store::open`], with the `fuse` driver's unions served as `server`
    /// says (the CLI: by `strata union-mount` processes, so that mounts
    /// outlive the command).
    pub fn open_with(
        root: &Path,
        driver: Option<&str>,
        server: strata_driver::fuse::Server,
    ) -> Result<Store> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .ctx(|| format!("creating the store at {}", root.display()))?;
        // A root that is a symlink is followed, once, here (the operator's
        // choice, as Docker's --data-root); every directory below is
        // checked without following any (see `secure`).
        let root = fs::canonicalize(root).ctx(|| format!("resolving {}", root.display()))?;
        let root_fd = secure::open_root(&root)?;
        // Held from before the driver is chosen until staging is clean: two
        // first opens of one root must not make it with two drivers.
        let lock = lock_at(&root)?;
        // Before a driver opens (or makes) its home, and before `image/`
        // says which driver the store has.
        // Drivers a store may have been made with, in the order `open` looks.
        for d in strata_driver::names() {
            secure::store_dir(
                root_fd.as_fd(),
                &root,
                Path::new(d),
                secure::HOME_MAX,
                false,
            )?;
        }
        secure::store_dir(
            root_fd.as_fd(),
            &root,
            Path::new("image"),
            secure::DIR_MAX,
            false,
        )?;
        let existing = strata_driver::names().find(|d| root.join("image").join(d).is_dir());
        let is_have = |have: &str, want: &str| {
            have == want || strata_driver::backend(want).is_ok_and(|b| b.name == have)
        };
        let name = match (existing, driver) {
            (Some(have), Some(want)) if !is_have(have, want) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "the store at {} uses the {have} driver, not {want}",
                        root.display()
                    ),
                ))
            }
            (Some(have), _) => Some(have),
            (None, want) => want,
        };
        let driver = strata_driver::open_with(&root, name, server)
            .map_err(|e| Error::driver("opening the storage driver", e))?;
        let store = Store {
            root,
            driver,
            plugin_dirs: strata_volume::plugin::default_dirs(),
        };
        store.secure_dirs(root_fd.as_fd())?;
        store.clean_staging()?;
        drop(lock);
        Ok(store)
    }

    /// Makes the store's directories that are missing and checks every
    /// one (see `secure`): real directories of the caller's, closed to
    /// other users, or the store is not opened.
    fn secure_dirs(&self, root_fd: std::os::fd::BorrowedFd<'_>) -> Result<()> {
        let image = Path::new("image").join(self.driver.name());
        let home = self
            .driver
            .home()
            .strip_prefix(&self.root)
            .ok()
            .filter(|h| h.components().count() == 1)
            .map(Path::to_owned);
        let mut dirs: Vec<(PathBuf, u32, bool)> = Vec::new();
        if let Some(h) = home {
            dirs.push((h, secure::HOME_MAX, false));
        }
        for d in ["tmp", "containers", "names"] {
            dirs.push((d.into(), secure::DIR_MAX, true));
        }
        for d in [
            "imagedb/content/sha256",
            "imagedb/metadata/sha256",
            "layerdb/sha256",
            "layerdb/mounts",
            "layerdb/tmp",
        ] {
            dirs.push((image.join(d), secure::DIR_MAX, true));
        }
        // Made by the first volume: checked when there.
        dirs.push(("volumes".into(), secure::VOLUMES_MAX, false));
        for (rel, max, create) in dirs {
            secure::store_dir(root_fd, &self.root, &rel, max, create)?;
        }
        if self.root.join("volumes").is_dir() {
            for (dir, mode) in self.local_volumes()?.tighten_modes()? {
                tracing::warn!(
                    "{} was mode {mode:o}: now {:o}, so that other users cannot reach volumes",
                    dir.display(),
                    mode & !0o077
                );
            }
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Looks for volume plugins in `dirs` instead of the default
    /// directories (`strata_volume::plugin::default_dirs`).
    pub fn set_plugin_dirs(&mut self, dirs: Vec<PathBuf>) {
        self.plugin_dirs = dirs;
    }

    pub fn driver(&self) -> &dyn Driver {
        self.driver.as_ref()
    }

    fn image_dir(&self) -> PathBuf {
        self.root.join("image").join(self.driver.name())
    }

    /// Takes the store lock, waiting for other processes.
    pub fn lock(&self) -> Result<Lock> {
        lock_at(&self.root)
    }
}

/// Locks the staging directory `dir` (an flock on the directory itself)
/// for work done without the store lock; released when the file drops.
fn hold_staging(dir: &Path) -> Result<fs::File> {
    let file = fs::File::open(dir).ctx(|| format!("opening {}", dir.display()))?;
    strata_sys::fs::lock_exclusive(std::os::fd::AsFd::as_fd(&file))
        .ctx(|| format!("locking {}", dir.display()))?;
    Ok(file)
}

/// Whether a live process holds the staging directory `dir` (see
/// [`hold_staging`]): then it is work in progress, not debris.
fn is_live(dir: &Path) -> bool {
    // O_DIRECTORY: a fifo planted there is refused, never opened.
    strata_sys::fs::open_dir(dir).is_ok_and(|fd| {
        strata_sys::fs::try_lock_exclusive(std::os::fd::AsFd::as_fd(&fd)).is_ok_and(|got| !got)
    })
}

/// The store lock of the store at `root`.
fn lock_at(root: &Path) -> Result<Lock> {
    let file = secure::open_lock(root)?;
    strata_sys::fs::lock_exclusive(std::os::fd::AsFd::as_fd(&file))
        .ctx(|| format!("locking {}", root.join("lock").display()))?;
    Ok(Lock { _file: file })
}

impl Store {
    /// Removes what crashed or interrupted work left: staging directories
    /// (but those a live process holds, see [`is_live`]) and `-removing`
    /// debris, with the driver layers they had made, and
    /// the volumes' staging (`volumes/.<name>.creating`, `.removing`) and
    /// temp files.
    fn clean_staging(&self) -> Result<()> {
        for dir in [self.root.join("tmp"), self.image_dir().join("layerdb/tmp")] {
            for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
                let e = e.ctx(|| format!("listing {}", dir.display()))?;
                if is_live(&e.path()) {
                    continue;
                }
                // A container whose config was published before the crash
                // is complete but for its mounts record: finish publishing.
                // Every ID read back is parsed before it names a path:
                // staging that holds anything else is debris, removed
                // without following what it says.
                if let Some(id) = atomic::read(&e.path().join("container-id"))
                    .ok()
                    .and_then(|id| ContainerId::parse(&id).ok())
                {
                    let published = self.root.join("containers").join(&id).join("config.json");
                    let mounts = self.image_dir().join("layerdb/mounts").join(&id);
                    if published.is_file()
                        && !mounts.exists()
                        && !e.path().join("container").exists()
                    {
                        // Only if no container took the name meanwhile;
                        // else this one is found by its ID.
                        if let Ok(name) = self.container(&id).map(|c| c.name) {
                            if e.path().join("name").exists() && !self.name_taken(&name) {
                                fs::rename(
                                    e.path().join("name"),
                                    self.root.join("names").join(name),
                                )
                                .ctx(|| format!("finishing container {id}"))?;
                            }
                        }
                        fs::rename(e.path(), &mounts)
                            .ctx(|| format!("finishing container {id}"))?;
                        continue;
                    }
                }
                // A staged layer or container names the driver layers it
                // made: remove them with it.
                for id in staged_driver_layers(&e.path()) {
                    let _ = self.remove_stale_layer(&id.driver_id());
                }
                let _ = fs::remove_dir_all(e.path());
            }
        }
        for dir in [
            self.image_dir().join("layerdb/sha256"),
            self.image_dir().join("layerdb/mounts"),
            self.root.join("containers"),
        ] {
            for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
                let e = e.ctx(|| format!("listing {}", dir.display()))?;
                if e.file_name().to_string_lossy().ends_with("-removing") {
                    // A layer or container being removed names its driver
                    // layers: finish removing them first, or they leak.
                    for id in staged_driver_layers(&e.path()) {
                        self.remove_stale_layer(&id.driver_id())?;
                    }
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        // A volume half-made or half-removed, and temp files of its
        // records; never anything under a published volume's `_data`.
        if self.root.join("volumes").is_dir() {
            self.local_volumes()?.clean_staging()?;
        }
        Ok(())
    }

    /// A fresh staging directory under `layerdb/tmp`.
    fn staging(&self) -> Result<PathBuf> {
        let p = self.image_dir().join("layerdb/tmp").join(random_hex(16)?);
        fs::create_dir(&p).ctx(|| format!("creating {}", p.display()))?;
        Ok(p)
    }

    /// What `strata info` shows.
    pub fn info(&self) -> Result<Vec<(String, String)>> {
        let mut v = vec![
            ("Root".to_owned(), self.root.display().to_string()),
            ("Storage Driver".to_owned(), self.driver.name().to_owned()),
        ];
        v.extend(self.driver.status());
        let built: Vec<&str> = strata_driver::BACKENDS.iter().map(|b| b.name).collect();
        v.push(("Drivers Built".to_owned(), built.join(", ")));
        v.push(("Images".into(), self.images()?.len().to_string()));
        v.push(("Image Layers".into(), self.layers()?.len().to_string()));
        v.push(("Containers".into(), self.containers()?.len().to_string()));
        Ok(v)
    }
}

/// The driver layers a staging or `-removing` record names
/// (`cache-id`, `mount-id`, `init-id`), parsed: a value that is not a
/// driver ID names nothing, and is never passed to the driver.
fn staged_driver_layers(dir: &Path) -> Vec<ids::DriverLayer> {
    let mut out = Vec::new();
    for f in ["cache-id", "mount-id", "init-id"] {
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

/// `n` random bytes as hex.
pub(crate) fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    strata_sys::fs::random_bytes(&mut buf).ctx(|| "reading random bytes".into())?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit fills its layer with no store lock held: a store opened
    /// meanwhile (any `strata` command) must not take its staging for
    /// debris; once the commit's process lets go, it is debris.
    #[test]
    fn opening_leaves_live_staging_alone() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path(), Some("vfs")).unwrap();
        let staged = {
            let _lock = store.lock().unwrap();
            store.begin_live_layer(None).unwrap()
        };
        std::fs::write(staged.path.join("marker"), "filling").unwrap();
        Store::open(root.path(), Some("vfs")).unwrap();
        assert!(staged.path.join("marker").exists(), "live staging removed");
        assert!(store.driver().exists(&staged.cache_id));
        let report = store.check(true).unwrap();
        assert!(
            report
                .findings
                .iter()
                .all(|f| f.kind != FindingKind::Debris),
            "{:?}",
            report.findings
        );
        assert!(
            staged.path.join("marker").exists(),
            "check --repair removed it"
        );
        let path = staged.path.clone();
        let cache_id = staged.cache_id.clone();
        drop(staged);
        Store::open(root.path(), Some("vfs")).unwrap();
        assert!(!path.exists(), "dead staging kept");
        assert!(!store.driver().exists(&cache_id));
    }
}
