//! Mount reference counts on disk, so that every `strata` process sees
//! the same count: one small file per layer holding a decimal number,
//! changed only under an exclusive `flock` on the driver's lock file.
//! The number is written padded to the width of the largest (21 bytes
//! with its newline) and in place, in one write at offset 0: a count is
//! never seen torn or empty, and a mount costs no new inode and rename.
//! (A count is runtime state: a reboot unmounts everything it counts.)

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use strata_sys::fs as sysfs;

use crate::error::{Error, ErrorKind, IoContext, Result};

pub(crate) struct Refs {
    dir: PathBuf,
    lock: PathBuf,
    /// Opened read-only: nothing is written (see [`Refs::existing`]).
    read_only: bool,
}

/// Holds the driver-wide lock until dropped (nothing, when a read-only
/// open found no lock file: no strata has counted anything there).
pub(crate) struct Locked {
    _file: Option<File>,
}

impl Refs {
    /// Counts under `dir`, lock file at `lock`.
    pub fn new(dir: &Path, lock: &Path) -> Result<Self> {
        fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        Ok(Refs {
            dir: dir.to_owned(),
            lock: lock.to_owned(),
            read_only: false,
        })
    }

    /// Counts under `dir`, read and never written (a read-only open): a
    /// missing `dir` counts every layer as unused; the lock file is not
    /// made; a directory driver's `get` is not counted (a command that
    /// only reads holds its layers for moments, and a removal meanwhile
    /// makes its read fail, never the store wrong); changing a count is
    /// an error, so nothing is mounted uncounted.
    pub fn existing(dir: &Path, lock: &Path) -> Self {
        Refs {
            dir: dir.to_owned(),
            lock: lock.to_owned(),
            read_only: true,
        }
    }

    /// Takes the driver-wide lock (blocking).
    pub fn lock(&self) -> Result<Locked> {
        if self.read_only {
            let file = match File::open(&self.lock) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Locked { _file: None }),
                Err(e) => return Err(e).ctx(|| format!("opening {}", self.lock.display())),
            };
            sysfs::lock_exclusive(file.as_fd())
                .ctx(|| format!("locking {}", self.lock.display()))?;
            return Ok(Locked { _file: Some(file) });
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .ctx(|| format!("opening {}", self.lock.display()))?;
        sysfs::lock_exclusive(file.as_fd()).ctx(|| format!("locking {}", self.lock.display()))?;
        Ok(Locked { _file: Some(file) })
    }

    pub fn get(&self, _: &Locked, id: &str) -> Result<u64> {
        match fs::read_to_string(self.dir.join(id)) {
            Ok(s) => Ok(s.trim().parse().unwrap_or(0)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e).ctx(|| format!("reading the mount count of {id}")),
        }
    }

    pub fn set(&self, _: &Locked, id: &str, n: u64) -> Result<()> {
        if self.read_only {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("the mount count of {id} cannot change: the driver was opened read-only"),
            ));
        }
        let path = self.dir.join(id);
        if n == 0 {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(e).ctx(|| format!("clearing the mount count of {id}"))
                }
                _ => Ok(()),
            };
        }
        sysfs::overwrite_nofollow(&path, format!("{n:<20}\n").as_bytes())
            .ctx(|| format!("writing the mount count of {id}"))
    }

    /// The lock, taken to make layer `id`: AlreadyExists when `exists`,
    /// asked under the lock, says it is there.
    pub fn lock_to_create(&self, id: &str, exists: impl FnOnce() -> bool) -> Result<Locked> {
        let lock = self.lock()?;
        if exists() {
            return Err(Error::layer_exists(id));
        }
        Ok(lock)
    }

    /// The lock, taken to remove layer `id` (which `exists`, asked under
    /// the lock, says is there): NotFound when it is not, InUse while it
    /// has references.
    pub fn lock_to_remove(&self, id: &str, exists: impl FnOnce() -> bool) -> Result<Locked> {
        let lock = self.lock()?;
        if !exists() {
            return Err(Error::no_layer(id));
        }
        if self.get(&lock, id)? > 0 {
            return Err(Error::layer_in_use(id));
        }
        Ok(lock)
    }

    /// A `get` of a driver that mounts nothing (its layer's content is the
    /// directory `dir`): counts one more reference to `id`; NotFound when
    /// `dir` is not a directory.
    pub fn take_dir(&self, id: &str, dir: &Path) -> Result<()> {
        let lock = self.lock()?;
        if !dir.is_dir() {
            return Err(Error::no_layer(id));
        }
        if self.read_only {
            return Ok(());
        }
        let n = self.get(&lock, id)?;
        self.set(&lock, id, n + 1)
    }

    /// A `put` of a driver that mounts nothing: one reference fewer (none
    /// stays none).
    pub fn release(&self, id: &str) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let lock = self.lock()?;
        let n = self.get(&lock, id)?;
        self.set(&lock, id, n.saturating_sub(1))
    }

    /// Whether `id` has references.
    pub fn held(&self, id: &str) -> Result<bool> {
        let lock = self.lock()?;
        Ok(self.get(&lock, id)? > 0)
    }

    /// Forgets every count (after everything was unmounted).
    pub fn clear_all(&self, _: &Locked) -> Result<()> {
        for e in fs::read_dir(&self.dir).ctx(|| format!("listing {}", self.dir.display()))? {
            let e = e.ctx(|| format!("listing {}", self.dir.display()))?;
            fs::remove_file(e.path()).ctx(|| format!("removing {}", e.path().display()))?;
        }
        Ok(())
    }
}
