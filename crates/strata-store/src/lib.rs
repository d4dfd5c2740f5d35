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
mod image;
mod layer;
mod port;
mod start;
mod system;
mod time;
mod transfer;
mod volume;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub use check::{CheckOptions, Finding, FindingKind, Report};
pub use container::{Container, ContainerSpec, RunConfig, NETWORK_MODES};
pub use copy::CopyReport;
pub use error::{Error, ErrorKind, Result};
pub use image::Image;
pub use layer::{chain_id, Layer};
pub use port::{PortMapping, Protocol};
pub use start::{Started, State, Status};
pub use strata_archive::{Change, ChangeKind, Digest};
use strata_driver::Driver;
pub use strata_image::{ImageRef, SaveFormat};
pub use system::{ContainerUsage, DiskUsage, ImageUsage, OnDisk, Pruned, Usage, VolumeUsage};
pub use transfer::{Loaded, NoProgress, Progress};
pub use volume::{Mount, MountKind, Volume, ANONYMOUS_LABEL};

use error::IoContext;

/// Drivers a store may have been made with, in the order `open` looks.
const DRIVERS: &[&str] = &["overlay2", "fuse", "vfs"];

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
        let root = fs::canonicalize(root).ctx(|| format!("resolving {}", root.display()))?;
        // Held from before the driver is chosen until staging is clean: two
        // first opens of one root must not make it with two drivers.
        let lock = lock_at(&root)?;
        let existing = DRIVERS
            .iter()
            .find(|d| root.join("image").join(d).is_dir())
            .copied();
        let name = match (existing, driver) {
            (Some(have), Some(want))
                if have != want && !(have == "overlay2" && want == "overlay") =>
            {
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
        for d in [
            store.root.join("tmp"),
            store.root.join("containers"),
            store.root.join("names"),
            store.image_dir().join("imagedb/content/sha256"),
            store.image_dir().join("imagedb/metadata/sha256"),
            store.image_dir().join("layerdb/sha256"),
            store.image_dir().join("layerdb/mounts"),
            store.image_dir().join("layerdb/tmp"),
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .ctx(|| format!("creating {}", d.display()))?;
        }
        store.tighten_modes()?;
        store.clean_staging()?;
        drop(lock);
        Ok(store)
    }

    /// No other user may reach into the store (CVE-2021-41091: a
    /// container's set-user-ID programs run from its merged dir by a
    /// local user). New directories are made that way; a store made
    /// before, or a root an operator created with `mkdir`, is tightened
    /// here, as dockerd does on start. What the owner has is kept. Each
    /// directory is opened without following a symlink and changed
    /// through that descriptor, and only when it is ours: a link planted
    /// in a writable root never turns this on another directory.
    fn tighten_modes(&self) -> Result<()> {
        use std::ffi::OsStr;
        use strata_sys::fs as sys;
        let root = sys::open_dir(&self.root).ctx(|| format!("opening {}", self.root.display()))?;
        let home = self.driver.home().file_name().map(OsStr::to_owned);
        let mut dirs: Vec<(Option<&OsStr>, u32)> = vec![(None, 0o711)];
        if let Some(h) = &home {
            dirs.push((Some(h.as_os_str()), 0o710));
        }
        dirs.push((Some(OsStr::new("containers")), 0o700));
        dirs.push((Some(OsStr::new("image")), 0o700));
        for (name, max) in dirs {
            let shown = name.map_or(self.root.clone(), |n| self.root.join(n));
            let fd = match name {
                None => root
                    .try_clone()
                    .ctx(|| format!("opening {}", shown.display()))?,
                Some(n) => match sys::open_dir_at(std::os::fd::AsFd::as_fd(&root), n) {
                    Ok(fd) => fd,
                    // A symlink (ELOOP), or not a directory: not ours to
                    // change; opening the store says what is wrong.
                    Err(_) => continue,
                },
            };
            let st = sys::fstat(std::os::fd::AsFd::as_fd(&fd))
                .ctx(|| format!("reading {}", shown.display()))?;
            let mode = st.st_mode & 0o7777;
            if st.st_uid != sys::euid() || mode & !max & 0o077 == 0 {
                continue;
            }
            let tight = mode & !(0o077 & !max);
            sys::fchmod(std::os::fd::AsFd::as_fd(&fd), tight)
                .ctx(|| format!("tightening {}", shown.display()))?;
            tracing::warn!(
                "{} was mode {mode:o}: now {tight:o}, so that other users cannot reach containers",
                shown.display()
            );
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

/// The store lock of the store at `root`.
fn lock_at(root: &Path) -> Result<Lock> {
    let path = root.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    strata_sys::fs::lock_exclusive(std::os::fd::AsFd::as_fd(&file))
        .ctx(|| format!("locking {}", path.display()))?;
    Ok(Lock { _file: file })
}

impl Store {
    /// Removes what crashed or interrupted work left: staging directories
    /// and `-removing` debris, with the driver layers they had made, and
    /// the volumes' staging (`volumes/.<name>.creating`, `.removing`) and
    /// temp files.
    fn clean_staging(&self) -> Result<()> {
        for dir in [self.root.join("tmp"), self.image_dir().join("layerdb/tmp")] {
            for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
                let e = e.ctx(|| format!("listing {}", dir.display()))?;
                // A container whose config was published before the crash
                // is complete but for its mounts record: finish publishing.
                if let Ok(id) = atomic::read(&e.path().join("container-id")) {
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
                for f in ["cache-id", "mount-id", "init-id"] {
                    if let Ok(id) = atomic::read(&e.path().join(f)) {
                        let _ = self.remove_stale_layer(&id);
                    }
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
                    for f in ["cache-id", "mount-id", "init-id"] {
                        if let Ok(id) = atomic::read(&e.path().join(f)) {
                            self.remove_stale_layer(&id)?;
                        }
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
        v.push(("Images".into(), self.images()?.len().to_string()));
        v.push(("Image Layers".into(), self.layers()?.len().to_string()));
        v.push(("Containers".into(), self.containers()?.len().to_string()));
        Ok(v)
    }
}

/// `n` random bytes as hex.
pub(crate) fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    strata_sys::fs::random_bytes(&mut buf).ctx(|| "reading random bytes".into())?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
