//! The store: layers, images and containers over one graph driver, laid
//! out like Docker's data root so an operator recognises it.
//!
//! The on-disk tree is drawn once, on [`Layout`], which owns every path
//! of it.
//!
//! The store is a thin facade over its parts, each owning its part of
//! the tree and its logic: [`LayerStore`] (`layerdb/sha256`),
//! [`ImageStore`] (`imagedb`, `repositories.json`), [`ContainerStore`]
//! (`containers/`, `names/`, `layerdb/mounts`) and [`VolumeStore`]
//! (`volumes/`, plugins). What spans parts (creating and removing
//! containers, removing images, garbage collection, `check`) is the
//! facade's.
//!
//! # Trust
//!
//! The store is opened only when it is the caller's: the root, the lock
//! file and every directory above are real directories (opened without
//! following symlinks) that the caller owns and other users cannot
//! write to (`secure`; looser modes on the caller's own directories are
//! tightened, with a warning, when the store is opened to be changed).
//! Nothing read from it is trusted as a path or an ID: every ID and
//! name in a record is parsed into a validated type (`ids`:
//! [`ContainerId`], [`MountId`], [`CacheId`], [`ContainerName`], and
//! [`Digest`]) before it names a file, a
//! container's ID must be the name of its directory, and records are
//! read through one capped, no-follow reader (`atomic::read_capped`). A
//! record that fails is corrupt: `strata check` reports it, and nothing
//! in it is used.
//!
//! # Concurrency and crashes
//!
//! Every change runs under an exclusive `flock` on `lock`, so several
//! `strata` processes can share a store; a function that needs it held
//! takes the [`Lock`] guard as proof. Metadata is written atomically
//! (temp file, fsync, rename, fsync of the directory). A layer's or a
//! container's metadata is assembled in `layerdb/tmp/` and renamed into
//! place last: a crash leaves staging debris, never a half-made object
//! under its real name. Removal renames to `*-removing` first. A
//! container is created without a flush: the first open after a crash
//! makes it whole or removes it (`unflushed`).
//!
//! # Garbage collection
//!
//! A layer lives while an image's chain or a container's parent chain
//! reaches it, and [`Store::remove_image`] and [`Store::remove_container`]
//! remove the layers nothing reaches any more. They find them with the
//! reference index (`refs`: what holds each layer, which images were
//! committed from each image), kept under the lock beside the records it
//! describes, so that their cost follows what they touch rather than the
//! size of the store; `check` compares it with a walk and `check
//! --repair` rebuilds it.
#![forbid(unsafe_code)]

mod atomic;
mod check;
mod commit;
mod compat;
mod container;
mod copy;
mod error;
pub mod filter;
mod gc;
mod ids;
mod image;
mod init_layer;
mod layer;
mod layout;
pub mod links;
pub mod listing;
mod lock;
mod mount;
mod port;
mod publish;
mod refs;
mod run_config;
mod secure;
mod security;
mod staging;
mod start;
mod stream;
mod system;
mod time;
mod transfer;
mod unflushed;
pub mod view;
mod volume;

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use check::{CheckOptions, Finding, FindingKind, Report};
pub use compat::DOCKER_MAX_DEPTH;
pub use container::{Container, ContainerStore};
pub use error::{Error, ErrorKind, Result};
pub use ids::{short, CacheId, ContainerId, ContainerName, InvalidId, MountId};
pub use image::{Image, ImageStore};
pub use layer::{chain_id, Layer, LayerStore};
pub use layout::Layout;
pub use lock::Lock;
pub use mount::{Mount, MountKind};
pub use port::{PortMapping, Protocol};
pub use run_config::{
    override_env, parse_label, storage_size, ContainerSpec, HostConfig, RunConfig, NETWORK_MODES,
};
pub use security::{Seccomp, Security};
pub use start::{Started, State, Status};
pub use strata_archive::{Change, ChangeKind, Digest};
use strata_driver::Driver;
pub use strata_image::{familiar, ImageRef, SaveFormat};
pub use strata_types::parse_size;
pub use stream::CopyReport;
pub use system::{ContainerUsage, DiskUsage, ImageUsage, OnDisk, Pruned, Usage, VolumeUsage};
pub use transfer::{
    LayerCompression, LayerStatus, Loaded, NoProgress, Progress, PullOptions, Pulled, PushOptions,
    Pushed, SaveOptions, SaveTo, MAX_CONCURRENT_DOWNLOADS, MAX_CONCURRENT_UPLOADS,
};
pub use volume::{Volume, VolumeStore, ANONYMOUS_LABEL};

// The crates below the store that the `strata` command also drives on
// their own (`strata archive`, the fuse driver's union server, `strata
// union-mount`), so that the command depends on the store and run
// crates alone.
pub use strata_archive as archive;
pub use strata_driver as driver;
/// The registry client `pull` and `push` speak through.
pub use strata_registry as registry;
pub use strata_union as union;

use error::IoContext;

/// A store: the facade over its parts (see the crate docs).
pub struct Store {
    layout: Layout,
    driver: Arc<dyn Driver>,
    layers: LayerStore,
    images: ImageStore,
    containers: ContainerStore,
    volumes: VolumeStore,
    /// Opened to change the store, or only to read it.
    access: secure::Access,
}

impl Store {
    /// Opens the store at `root`, creating it with `driver` (or the best
    /// driver that works here) when new. An existing store keeps the
    /// driver it was made with: asking for another is an error naming it.
    pub fn open(root: &Path, driver: Option<&str>) -> Result<Store> {
        Store::open_with(root, driver, strata_driver::fuse::Server::Threads)
    }

    /// [`Store::open`], with the `fuse` driver's unions served and the
    /// driver's storage options given as `opts` says (the CLI: unions
    /// served by `strata union-mount` processes, so that mounts outlive
    /// the command; `--storage-opt` before the command). A
    /// [`strata_driver::fuse::Server`] alone is options with nothing else
    /// set.
    pub fn open_with(
        root: &Path,
        driver: Option<&str>,
        opts: impl Into<strata_driver::Options>,
    ) -> Result<Store> {
        let opts = opts.into();
        // A store that cannot be opened is not left behind as an empty
        // directory (a mistyped --driver, a file system the driver
        // refuses): what this call made, it takes back.
        let made = first_missing(root);
        let opened = Store::open_made(root, driver, opts, secure::Access::Write);
        if let (Err(_), Some(made)) = (&opened, made) {
            let _ = fs::remove_dir_all(made);
        }
        opened
    }

    /// Opens an existing store for a command that only reads it
    /// (`images`, `ps`, `inspect`, `layers`, `check` without repair):
    /// nothing on disk is made, re-moded, cleaned or recovered, so a
    /// copy of another tool's data root (Docker's) stays as it was.
    /// Staging debris stays for the next command that changes the store.
    /// The store refuses [`Store::lock`], so nothing can change it by
    /// mistake.
    ///
    /// Two cases open it as [`Store::open_with`] does: a root that is not
    /// a store yet (made), and a store where an earlier boot left
    /// containers created unflushed (a crash): those are made whole or
    /// removed first, or a listing could show a container half there.
    pub fn open_read_only(
        root: &Path,
        driver: Option<&str>,
        opts: impl Into<strata_driver::Options>,
    ) -> Result<Store> {
        let opts = opts.into();
        let made: Vec<Layout> = strata_driver::names()
            .map(|d| Layout::new(root, d))
            .filter(|l| l.image_dir().is_dir())
            .collect();
        let crashed = made
            .iter()
            .any(|l| unflushed::earlier_boot_left(&l.unflushed()));
        if made.is_empty() || crashed {
            return Store::open_with(root, driver, opts);
        }
        Store::open_made(root, driver, opts, secure::Access::ReadOnly)
    }

    fn open_made(
        root: &Path,
        driver: Option<&str>,
        opts: strata_driver::Options,
        access: secure::Access,
    ) -> Result<Store> {
        let write = access == secure::Access::Write;
        if write {
            atomic::make_dirs(root)?;
        }
        // A root that is a symlink is followed, once, here (the operator's
        // choice, as Docker's --data-root); every directory below is
        // checked without following any (see `secure`).
        let root = fs::canonicalize(root).ctx(|| format!("resolving {}", root.display()))?;
        let root_fd = secure::open_root(&root, access)?;
        // Held from before the driver is chosen until staging is clean: two
        // first opens of one root must not make it with two drivers.
        let lock = if write {
            Some(lock::lock_at(&root)?)
        } else {
            None
        };
        // A reader waits, as a writer does, for a change in progress to
        // finish (a container and its anonymous volumes go in one locked
        // step), through the lock file if there is one: none is made.
        let _read = if write {
            None
        } else {
            Some(lock::lock_existing(&root)?)
        };
        // Before a driver opens (or makes) its home, and before `image/`
        // says which driver the store has.
        // Drivers a store may have been made with, in the order `open` looks.
        let mut dirs = secure::Dirs::new(root_fd.as_fd(), &root, access);
        for d in strata_driver::names() {
            dirs.check(Path::new(d), secure::HOME_MAX, false)?;
        }
        dirs.check(Layout::images_rel(), secure::DIR_MAX, false)?;
        let existing = strata_driver::names().find(|d| Layout::image_of(&root, d).is_dir());
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
        let driver = match (access, name) {
            (secure::Access::ReadOnly, Some(name)) => {
                strata_driver::open_read_only(&root, name, opts).map(|d| (d, Vec::new()))
            }
            (_, None) => strata_driver::open_choosing(&root, opts),
            (_, name) => strata_driver::open_with(&root, name, opts).map(|d| (d, Vec::new())),
        };
        let (driver, skipped) =
            driver.map_err(|e| Error::driver("opening the storage driver", e))?;
        let driver: Arc<dyn Driver> = driver.into();
        let layout = Layout::new(&root, driver.name());
        let layers = LayerStore::new(layout.clone(), driver.clone());
        let store = Store {
            images: ImageStore::new(layout.clone(), layers.clone()),
            containers: ContainerStore::new(layout.clone(), driver.clone()),
            volumes: {
                let v = VolumeStore::new(layout.clone(), strata_volume::plugin::default_dirs());
                if write {
                    v
                } else {
                    v.read_only()
                }
            },
            layers,
            layout,
            driver,
            access,
        };
        store.secure_dirs(&mut dirs)?;
        if !skipped.is_empty() {
            let text: String = skipped
                .iter()
                .map(|(name, why)| format!("{name}: {}\n", why.replace('\n', " ")))
                .collect();
            atomic::write(&store.layout.driver_choice(), text.as_bytes())?;
        }
        if let Some(lock) = lock {
            // A new store is indexed from the start (`refs`).
            if existing.is_none() {
                store.rebuild_refs(&lock)?;
            }
            store.clean_staging(&lock, false)?;
            store.recover_unflushed(&lock)?;
        }
        Ok(store)
    }

    /// Makes the store's directories that are missing and checks every
    /// one (see `secure`): real directories of the caller's, closed to
    /// other users, or the store is not opened.
    fn secure_dirs(&self, dirs: &mut secure::Dirs<'_>) -> Result<()> {
        let root = self.layout.root();
        let home = self
            .driver
            .home()
            .strip_prefix(root)
            .ok()
            .filter(|h| h.components().count() == 1)
            .map(Path::to_owned);
        let mut wanted: Vec<(PathBuf, u32, bool)> = Vec::new();
        if let Some(h) = home {
            wanted.push((h, secure::HOME_MAX, false));
        }
        for d in self.layout.made_dirs() {
            wanted.push((d, secure::DIR_MAX, true));
        }
        // Made by the first volume: checked when there.
        wanted.push((Layout::volumes_rel().to_owned(), secure::VOLUMES_MAX, false));
        for (rel, max, create) in wanted {
            dirs.check(&rel, max, create)?;
        }
        if self.access == secure::Access::Write && self.layout.volumes().is_dir() {
            for (dir, mode) in self.volumes.local()?.tighten_modes()? {
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
        self.layout.root()
    }

    /// Every path of the store's tree.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The layers (`layerdb/sha256`) and their driver layers.
    pub fn layer_store(&self) -> &LayerStore {
        &self.layers
    }

    /// The images (`imagedb`) and their tags.
    pub fn image_store(&self) -> &ImageStore {
        &self.images
    }

    /// The containers' records (`containers/`, `names/`, `layerdb/mounts`).
    pub fn container_store(&self) -> &ContainerStore {
        &self.containers
    }

    /// The volumes (`volumes/`) and volume plugins.
    pub fn volume_store(&self) -> &VolumeStore {
        &self.volumes
    }

    /// Looks for volume plugins in `dirs` instead of the default
    /// directories (`strata_volume::plugin::default_dirs`).
    pub fn set_plugin_dirs(&mut self, dirs: Vec<PathBuf>) {
        self.volumes.set_plugin_dirs(dirs);
    }

    pub fn driver(&self) -> &dyn Driver {
        self.driver.as_ref()
    }

    /// Takes the store lock, waiting for other processes. Functions that
    /// change the store take the [`Lock`] as proof that it is held; a
    /// store opened read-only refuses it.
    pub fn lock(&self) -> Result<Lock> {
        if self.access == secure::Access::ReadOnly {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "the store at {} was opened to be read, not changed",
                    self.root().display()
                ),
            ));
        }
        lock::lock_at(self.layout.root())
    }

    /// The store lock for a walk that changes nothing: on a store opened
    /// read-only, taken without making the lock file.
    pub(crate) fn read_lock(&self) -> Result<Lock> {
        match self.access {
            secure::Access::Write => self.lock(),
            secure::Access::ReadOnly => lock::lock_existing(self.layout.root()),
        }
    }

    /// Whether `root` holds a store: its lock file and its `image/`
    /// directory are there.
    pub fn is_store(root: &Path) -> bool {
        Layout::lock_of(root).is_file() && root.join(Layout::images_rel()).is_dir()
    }

    /// The names a store's root may hold: its own directories and files,
    /// every driver's home, and `extra` (records others keep there, such
    /// as a rootless store's namespace record). Anything else is not the
    /// store's.
    pub fn own_entries(extra: &[&'static str]) -> Vec<&'static str> {
        let mut names = layout::ROOT_ENTRIES.to_vec();
        names.extend(strata_driver::names());
        names.extend_from_slice(extra);
        names
    }

    /// What `strata info` shows.
    pub fn info(&self) -> Result<Vec<(String, String)>> {
        let mut v = vec![
            ("Root".to_owned(), self.root().display().to_string()),
            ("Storage Driver".to_owned(), self.driver.name().to_owned()),
        ];
        v.extend(self.driver.status());
        // What the automatic choice passed over when it made the store.
        if let Ok(bytes) = atomic::read_capped(&self.layout.driver_choice(), 64 << 10) {
            let text = String::from_utf8_lossy(&bytes);
            let skipped: Vec<&str> = text.lines().take(8).collect();
            if !skipped.is_empty() {
                v.push(("Drivers Skipped".to_owned(), skipped.join("; ")));
            }
        }
        let built: Vec<&str> = strata_driver::BACKENDS.iter().map(|b| b.name).collect();
        v.push(("Drivers Built".to_owned(), built.join(", ")));
        v.push(("Images".into(), self.images()?.len().to_string()));
        v.push(("Image Layers".into(), self.layers()?.len().to_string()));
        v.push(("Containers".into(), self.containers()?.len().to_string()));
        Ok(v)
    }
}

/// The outermost directory of `path` that does not exist (what
/// creating it recursively makes first), if any.
fn first_missing(path: &Path) -> Option<PathBuf> {
    let mut missing = None;
    for p in path.ancestors() {
        if p.as_os_str().is_empty() || fs::symlink_metadata(p).is_ok() {
            break;
        }
        missing = Some(p.to_owned());
    }
    missing
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
            let lock = store.lock().unwrap();
            store.layer_store().begin_live(&lock, None).unwrap()
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
