//! Graph drivers: one trait, several ways to realise the union view of a
//! layer stack.
//!
//! [`Driver`] is Docker's graphdriver contract (Create, Remove, Get, Put,
//! Exists, Status, Cleanup; Diff, ApplyDiff, Changes, DiffSize). The diff
//! side has default methods that work for any driver by mounting the
//! layers and comparing trees (moby's "naive diff"); a driver that can do
//! better returns a [`NativeDiff`] from [`Driver::native_diff`], and the
//! defaults use it for the layer/parent pairs it covers.
//!
//! Drivers: [`btrfs::Btrfs`] (a subvolume per layer, a child a snapshot
//! of its parent), [`overlay2::Overlay2`] (kernel overlayfs), `fuse` (the
//! same layout served by strata's FUSE union: [`fuse`], behind the `fuse`
//! cargo feature) and [`vfs::Vfs`] (a full copy per layer), each a row
//! of one table, [`BACKENDS`]. [`open`] picks one the way Docker and
//! Podman do: btrfs if the store is on btrfs, else overlay2 if it mounts
//! here, else fuse if FUSE can be used, else vfs, saying why it skipped
//! each.
//!
//! Mount reference counts live on disk ([`refs`]), under a lock file, so
//! that a layer mounted by one `strata` process is known to the next.
//! [`Driver::get`] hands out a [`Mount`] guard that gives its reference
//! back when dropped, or keeps it for a later `put` ([`Mount::keep`]).
//!
//! Besides [`NativeDiff`], a driver may offer [`Check`]: it checks and
//! repairs its own on-disk layout for `strata check`, so that nothing
//! outside the driver knows its directories; and [`Quota`]: per-layer
//! size limits (btrfs quota groups), refused with the reason by a driver
//! that cannot enforce them.
#![forbid(unsafe_code)]

mod backends;
pub mod btrfs;
pub mod check;
mod error;
pub mod fuse;
pub mod overlay2;
mod refs;
pub mod vfs;

#[cfg(feature = "testing")]
pub mod conformance;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub use backends::{backend, names, Backend, Capabilities, Options, Skipped, BACKENDS};
pub use check::Check;
pub use error::{Error, ErrorKind, Result};
pub use strata_archive::{ApplyReport, Change, ChangeKind, DiffReport};

/// The graph-driver contract. Ids are opaque names chosen by the caller
/// (the store uses random hex); a parent is the id of the layer below.
pub trait Driver: Send + Sync {
    /// `overlay2`, `vfs`, ...
    fn name(&self) -> &'static str;

    /// The directory the driver keeps its layers in.
    fn home(&self) -> &Path;

    /// A new layer of `kind` on `parent` (or on nothing).
    fn create(&self, id: &str, parent: Option<&str>, kind: LayerKind) -> Result<()>;

    /// Deletes a layer. Refused (`InUse`) while it is mounted.
    fn remove(&self, id: &str) -> Result<()>;

    /// The layer's union view, mounted on the first call. Every call
    /// takes a reference, which the returned guard gives back
    /// ([`Driver::put`]) when dropped; [`Mount::keep`] keeps it instead,
    /// for a mount that outlives the guard (`strata mount`, a running
    /// container), to be given back by a later `put`. A driver's `get`
    /// ends in [`Mount::new`].
    fn get(&self, id: &str, mount_label: Option<&str>) -> Result<Mount<'_>>;

    /// Gives back a reference; the last one unmounts. A put without a get
    /// is not an error. Called by a [`Mount`] guard when it drops; called
    /// directly only for a reference that was kept ([`Mount::keep`]),
    /// possibly by another process, or that a killed process left.
    fn put(&self, id: &str) -> Result<()>;

    fn exists(&self, id: &str) -> bool;

    /// Whether a layer holds references from `get` (or is mounted).
    fn in_use(&self, id: &str) -> Result<bool>;

    /// The directory holding the files the layer itself wrote (overlay2's
    /// `diff/`, a vfs layer's whole tree), for reading without a mount.
    fn content_dir(&self, id: &str) -> Result<PathBuf>;

    /// The layer's own files, readable while the guard lives: the
    /// [`Driver::content_dir`] of a driver that keeps them in a
    /// directory; the erofs driver mounts the layer's image for as long
    /// as the guard lives.
    fn content(&self, id: &str) -> Result<Content<'_>> {
        Ok(Content::dir(self.content_dir(id)?))
    }

    /// What `strata info` shows, as ordered key/value pairs.
    fn status(&self) -> Vec<(String, String)>;

    /// The layer's directories by Docker's names for them, as `inspect`
    /// shows them under `GraphDriver.Data` (Docker's `GetMetadata`):
    /// overlay2's `LowerDir`, `UpperDir`, `WorkDir`, `MergedDir`. None
    /// for a driver Docker shows none for (vfs).
    fn metadata(&self, id: &str) -> Result<std::collections::BTreeMap<String, String>> {
        check_id(id)?;
        Ok(std::collections::BTreeMap::new())
    }

    /// Unmounts everything under the driver's home and forgets all
    /// references.
    fn cleanup(&self) -> Result<()>;

    /// Whether a layer's content can be written before its parent's is
    /// complete: `create` does not copy the parent (overlay2 stacks
    /// directories; vfs copies). Lets a load unpack a chain's layers at
    /// once.
    fn layers_independent(&self) -> bool {
        false
    }

    /// Whether [`Driver::apply_diff`] makes the layer's content durable
    /// itself (the erofs driver fsyncs the one image a layer is), so that
    /// the store need not flush its whole file system before it publishes
    /// the layer: it flushes its own records of it instead.
    fn flushes_layers(&self) -> bool {
        false
    }

    /// The driver's own diff, when it has one.
    fn native_diff(&self) -> Option<&dyn NativeDiff> {
        None
    }

    /// The driver's check and repair of its own layout, for `strata
    /// check`; `None` when it has none (the store then notes that the
    /// driver's layers are not checked).
    fn checker(&self) -> Option<&dyn Check> {
        None
    }

    /// The driver's per-layer size limits (`--storage-opt size=`), or why
    /// it has none: a driver or file system that cannot enforce a limit
    /// refuses it with this error (`Unsupported`) rather than ignoring it.
    fn quota(&self) -> Result<&dyn Quota> {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the {} storage driver cannot limit a container's size (--storage-opt size)",
                self.name()
            ),
        ))
    }

    /// The layer tar of `id` over `parent`.
    fn diff(&self, id: &str, parent: Option<&str>, out: &mut dyn Write) -> Result<DiffReport> {
        match self.native_diff() {
            Some(n) if n.covers(id, parent) => n.diff(id, parent, out),
            _ => naive::diff(self, id, parent, out),
        }
    }

    /// What changed in `id` over `parent`, sorted by path.
    fn changes(&self, id: &str, parent: Option<&str>) -> Result<Vec<Change>> {
        match self.native_diff() {
            Some(n) if n.covers(id, parent) => n.changes(id, parent),
            _ => naive::changes(self, id, parent),
        }
    }

    /// Unpacks a layer tar into the (new, empty) layer `id`; returns what
    /// apply reports (the diffID among it).
    fn apply_diff(
        &self,
        id: &str,
        parent: Option<&str>,
        input: &mut (dyn Read + Send),
    ) -> Result<ApplyReport> {
        self.apply_diff_recording(id, parent, input, None, Flush::Driver)
    }

    /// [`Driver::apply_diff`], also writing to `record` the tar-split
    /// record that [`strata_archive::reassemble`] turns back into the
    /// exact tar, the content made durable as `flush` says.
    fn apply_diff_recording(
        &self,
        id: &str,
        _parent: Option<&str>,
        input: &mut (dyn Read + Send),
        record: Option<&mut dyn Write>,
        _flush: Flush,
    ) -> Result<ApplyReport> {
        naive::apply_diff(self, id, input, record)
    }

    /// Bytes of file content `id` adds over `parent`.
    fn diff_size(&self, id: &str, parent: Option<&str>) -> Result<u64> {
        match self.native_diff() {
            Some(n) if n.covers(id, parent) => n.diff_size(id, parent),
            _ => naive::diff_size(self, id, parent),
        }
    }

    /// The size Docker's driver of the same name records for layer `id`
    /// when it unpacks it, where that differs from [`Driver::diff_size`]'s
    /// count: a store that is a copy of Docker's data root holds sizes
    /// counted so. `None` when the driver counts as Docker does.
    fn docker_size(&self, _id: &str) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// A diff straight from a driver's own record of a layer's changes (the
/// overlay upper directory), valid for a layer over its real parent.
pub trait NativeDiff {
    /// Whether `parent` is the layer's actual parent, so the native record
    /// is the whole change.
    fn covers(&self, id: &str, parent: Option<&str>) -> bool;
    fn diff(&self, id: &str, parent: Option<&str>, out: &mut dyn Write) -> Result<DiffReport>;
    fn changes(&self, id: &str, parent: Option<&str>) -> Result<Vec<Change>>;
    fn diff_size(&self, id: &str, parent: Option<&str>) -> Result<u64>;
}

/// Per-layer size limits, as Docker's `--storage-opt size=`: the data a
/// layer may hold (for a snapshot, its parent's shared data included, as
/// btrfs quota groups count it). A write past the limit fails with
/// `EDQUOT`; the other layers are unaffected.
pub trait Quota {
    /// Limits layer `id` to `bytes`, turning quota on in the file system
    /// first when it is off.
    fn set_size_limit(&self, id: &str, bytes: u64) -> Result<()>;

    /// The limit on layer `id`, if it has one.
    fn size_limit(&self, id: &str) -> Result<Option<u64>>;
}

/// What a layer is for, as the driver is told when it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// An image's layer: written once, then only read and stacked on.
    ReadOnly,
    /// A container's init layer: read-only as an image's layer is, and
    /// small (the few files strata writes for every container); a driver
    /// may keep it as it keeps a read-write layer's files (the erofs
    /// driver does: one image to mount per container is saved).
    Init,
    /// A container's read-write layer.
    ReadWrite,
}

/// A reference to a layer's union view, taken by [`Driver::get`]. The
/// view stays mounted while the guard lives; dropping the guard gives the
/// reference back ([`Driver::put`]), so an error path never leaks a
/// mount. Derefs to the view's path.
#[must_use = "dropping the guard at once puts the layer back"]
pub struct Mount<'d> {
    driver: &'d dyn Driver,
    id: String,
    path: PathBuf,
    /// Whether dropping the guard puts the layer back.
    armed: bool,
}

impl<'d> Mount<'d> {
    /// The guard of a reference `driver` just took on layer `id`, whose
    /// view is at `path`: what each driver's `get` returns.
    pub fn new(driver: &'d dyn Driver, id: &str, path: PathBuf) -> Self {
        Mount {
            driver,
            id: id.to_owned(),
            path,
            armed: true,
        }
    }

    /// The union view.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layer's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Keeps the reference past the guard: the view stays mounted until a
    /// [`Driver::put`] of this layer, from this process or a later one,
    /// gives it back. For `strata mount` and a running container's root
    /// file system.
    pub fn keep(mut self) -> PathBuf {
        self.armed = false;
        std::mem::take(&mut self.path)
    }

    /// Gives the reference back now, with `put`'s error (dropping the
    /// guard only logs it).
    pub fn release(mut self) -> Result<()> {
        self.armed = false;
        self.driver.put(&self.id)
    }
}

/// A guard derefs to the path it keeps usable.
macro_rules! path_guard {
    ($($guard:ident),*) => {$(
        impl std::ops::Deref for $guard<'_> {
            type Target = Path;

            fn deref(&self) -> &Path {
                &self.path
            }
        }

        impl AsRef<Path> for $guard<'_> {
            fn as_ref(&self) -> &Path {
                &self.path
            }
        }
    )*};
}

path_guard!(Mount, Content);

impl std::fmt::Debug for Mount<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("driver", &self.driver.name())
            .field("id", &self.id)
            .field("path", &self.path)
            .finish()
    }
}

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Err(e) = self.driver.put(&self.id) {
            tracing::warn!("releasing layer {}: {e}", self.id);
        }
    }
}

/// A layer's own files ([`Driver::content`]): derefs to the directory
/// showing them, which stays readable while the guard lives.
pub struct Content<'d> {
    path: PathBuf,
    release: Option<Box<dyn FnOnce() + 'd>>,
}

impl<'d> Content<'d> {
    /// A directory that needs nothing given back.
    pub fn dir(path: PathBuf) -> Self {
        Content {
            path,
            release: None,
        }
    }

    /// A directory readable until `release` runs (when the guard drops).
    pub fn with_release(path: PathBuf, release: impl FnOnce() + 'd) -> Self {
        Content {
            path,
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for Content<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.release.take() {
            r();
        }
    }
}

/// Makes a driver's home, with its subdirectory `sub` of mode `mode`,
/// where they are missing (unless `read_only`: then nothing is made);
/// the home's canonical path.
pub(crate) fn make_home(home: &Path, sub: &str, mode: u32, read_only: bool) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;

    use crate::error::IoContext;
    if !read_only {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(home.join(sub))
            .ctx(|| format!("creating {}", home.display()))?;
    }
    std::fs::canonicalize(home).ctx(|| format!("resolving {}", home.display()))
}

/// How many entries `dir` holds (0 when it cannot be read): the layer
/// count the drivers' `status` shows.
pub(crate) fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// statfs magic and a name for the file system holding `dir`.
pub(crate) fn backing_fs(dir: &Path) -> Result<(i64, String)> {
    use std::os::fd::AsFd;

    use crate::error::IoContext;
    let fd = strata_sys::fs::open_dir(dir).ctx(|| format!("opening {}", dir.display()))?;
    let magic =
        strata_sys::fs::fs_magic(fd.as_fd()).ctx(|| format!("statfs of {}", dir.display()))?;
    let name = match magic {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794c_7630 => "overlayfs",
        0x6573_5546 => "fuse",
        0x2FC1_2FC1 => "zfs",
        _ => "unknown",
    };
    Ok((magic, format!("{name} (0x{magic:x})")))
}

/// Who makes an applied layer's content durable before the caller
/// publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// The driver, one layer at a time, where it
    /// [flushes its layers](Driver::flushes_layers); else the caller's
    /// flush of the file system (`syncfs`).
    Driver,
    /// The caller's one flush of the file system for all the layers it
    /// publishes together, even on a driver that flushes its layers
    /// itself: a load of many small layers flushes once, not once a layer.
    Caller,
}

/// `strata_archive::apply`, or `apply_recording` when a record is asked for.
pub(crate) fn apply_to(
    input: &mut (dyn Read + Send),
    dir: &Path,
    opts: &strata_archive::ApplyOptions,
    record: Option<&mut dyn Write>,
) -> strata_archive::Result<ApplyReport> {
    match record {
        None => strata_archive::apply(input, dir, opts),
        Some(w) => strata_archive::apply_recording(input, dir, opts, w).map(|(_, r)| r),
    }
}

/// Names a layer may not have: the driver's own files and directories
/// live beside the layers.
const RESERVED: &[&str] = &[
    "l",
    "dir",
    "refs",
    "lock",
    "probe",
    "image-refs",
    "erofs-probe",
    "verity",
    "objects",
    "objects-mode",
    "objects.lock",
];

/// Refuses ids that are not a single plain path component (or that would
/// collide with the driver's own entries).
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 255
        && id != "."
        && id != ".."
        && !id.ends_with("-removing")
        && !RESERVED.contains(&id)
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid layer id {id:?}: use letters, digits, '-', '_' and '.'"),
        ))
    }
}

/// Opens the driver `name` (or, with `None`, the first in [`BACKENDS`]
/// that works here, logging why others were skipped) with its home under
/// `root/<name>`; fuse unions are served by this process's threads.
pub fn open(root: &Path, name: Option<&str>) -> Result<Box<dyn Driver>> {
    open_with(root, name, fuse::Server::Threads)
}

/// Opens the first driver of the table that works here, with its home
/// under `root/<name>`, and says which drivers it skipped before it, and
/// why (the automatic choice of a new store).
pub fn open_choosing(
    root: &Path,
    opts: impl Into<Options>,
) -> Result<(Box<dyn Driver>, Vec<Skipped>)> {
    let opts = Options {
        read_only: false,
        ..opts.into()
    };
    backends::choose(root, &opts)
}

/// [`open`], with the fuse driver's unions served and the driver's
/// storage options given as `opts` says (a [`fuse::Server`] alone is
/// options with nothing else set).
pub fn open_with(
    root: &Path,
    name: Option<&str>,
    opts: impl Into<Options>,
) -> Result<Box<dyn Driver>> {
    let opts = Options {
        read_only: false,
        ..opts.into()
    };
    backends::open(root, name, &opts)
}

/// Opens the existing driver `name` with its home under `root/<name>`
/// without writing anything there (see [`Options::read_only`]): for
/// commands that only read the store.
pub fn open_read_only(
    root: &Path,
    name: &str,
    opts: impl Into<Options>,
) -> Result<Box<dyn Driver>> {
    let opts = Options {
        read_only: true,
        ..opts.into()
    };
    backends::open(root, Some(name), &opts)
}

/// The defaults of the diff side: mount and compare.
pub(crate) mod naive {
    use super::*;

    pub fn diff<D: Driver + ?Sized>(
        d: &D,
        id: &str,
        parent: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<DiffReport> {
        let new = d.get(id, None)?;
        let old = parent.map(|p| d.get(p, None)).transpose()?;
        let (_, report) = strata_archive::diff_trees(old.as_ref().map(|m| m.path()), &new, out)
            .map_err(|e| Error::archive(format!("diff of layer {id}"), e))?;
        Ok(report)
    }

    pub fn changes<D: Driver + ?Sized>(
        d: &D,
        id: &str,
        parent: Option<&str>,
    ) -> Result<Vec<Change>> {
        let new = d.get(id, None)?;
        let old = parent.map(|p| d.get(p, None)).transpose()?;
        strata_archive::changes_trees(old.as_ref().map(|m| m.path()), &new)
            .map_err(|e| Error::archive(format!("changes of layer {id}"), e))
    }

    pub fn apply_diff<D: Driver + ?Sized>(
        d: &D,
        id: &str,
        input: &mut (dyn Read + Send),
        record: Option<&mut dyn Write>,
    ) -> Result<ApplyReport> {
        let m = d.get(id, None)?;
        let opts = strata_archive::ApplyOptions::default();
        super::apply_to(input, &m, &opts, record)
            .map_err(|e| Error::archive(format!("applying a layer to {id}"), e))
    }

    /// Sizes of the regular files added or modified: what moby's naive
    /// DiffSize counts.
    pub fn diff_size<D: Driver + ?Sized>(d: &D, id: &str, parent: Option<&str>) -> Result<u64> {
        size_of_changes(d, id, &changes(d, id, parent)?)
    }

    /// The bytes of the regular files `changes` adds or modifies in `id`.
    pub fn size_of_changes<D: Driver + ?Sized>(d: &D, id: &str, changes: &[Change]) -> Result<u64> {
        let m = d.get(id, None)?;
        let mut total = 0;
        // Each inode once: hard links share their content.
        let mut seen = std::collections::HashSet::new();
        for c in changes.iter().filter(|c| c.kind != ChangeKind::Deleted) {
            use std::os::unix::fs::MetadataExt;
            let path = m.join(strata_sys::fs::os(&c.path[1..]));
            if let Ok(md) = std::fs::symlink_metadata(&path) {
                if md.is_file() && seen.insert((md.dev(), md.ino())) {
                    total += md.len();
                }
            }
        }
        Ok(total)
    }
}
