//! The `erofs` driver: overlay2's layout and mounts, with each image
//! layer kept as one EROFS image file instead of a directory of loose
//! files.
//!
//! ```text
//! <home>/                        e.g. <root>/erofs
//!   <id>/
//!     layer.erofs                the layer's files: one EROFS image, written
//!                                straight from the layer's tar (image layers)
//!     layer.erofs.meta           `<data_end> sha256:<hex> <size> <verity>`: what
//!                                the kernel parses in the image (checked before
//!                                each mount), the bytes of file content, and
//!                                the image's fs-verity digest (or `-`)
//!     diff/                      where the image is mounted while a layer
//!                                above is (image layers); a container's
//!                                upper directory (read-write layers)
//!     files                      (empty) a layer that keeps its files in diff/, as
//!                                overlay2's do: a container's init and
//!                                read-write layers
//!     link, lower, work/, merged/   as overlay2's
//!   image-refs/<id>              how many mounted layers hold the image mounted
//!   l/, refs/, probe, lock       as overlay2's
//!   erofs-probe                  the kernel release file-backed EROFS mounts were found to work on
//!   verity                       `on` or `off`: `--storage-opt erofs.verity`, as last given
//! ```
//!
//! A layer's image is written in one pass from its tar
//! (`strata_erofs::write_layer_recording`): no loose files, one `fsync`,
//! and its tar-split record in the same pass. It is mounted (file-backed,
//! read-only) on its `diff/` while a layer stacked on it is mounted, so
//! the overlay mounts, the `l/` short links, the native diff of a
//! container's upper directory and `strata check` are overlay2's own.
//! Removing a layer is one unlink of its image (and its small files).
//!
//! Before an image is mounted, the sha256 of what the kernel parses in
//! it (the superblock's block, directories, inodes, xattrs and inline
//! data: everything but the blocks of file content) is compared with the
//! one recorded when it was written: an image changed on disk behind
//! strata's back never reaches the kernel's EROFS parser.
//!
//! With `--storage-opt erofs.verity=on`, on a file system with fs-verity
//! (ext4 with the `verity` feature, btrfs), each new image is sealed with
//! fs-verity once written and its digest recorded: the kernel then checks
//! every block read from it, file content included, and a mount compares
//! the digest (O(1)) instead of hashing the metadata. Where the file
//! system cannot, `info` says so and images are written as without it.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use strata_archive::ApplyReport;
use strata_sys::mount;

use super::Overlay2;
use crate::error::{chain, Error, ErrorKind, IoContext, Result};
use crate::refs::{Locked, Refs};

/// A layer's image file, in its directory.
pub(crate) const IMAGE: &str = "layer.erofs";
/// The object store (object mode), in the home.
pub(crate) const OBJECTS: &str = "objects";
/// The objects a layer's image names, one sha256 hex per line, beside it.
pub(crate) const IMAGE_OBJECTS: &str = "layer.erofs.objects";
/// Held shared while an image is written, exclusive while objects are
/// removed: an object a new image is about to name is never removed.
const OBJECTS_LOCK: &str = "objects.lock";

/// Marks a layer that keeps its files in `diff/` as overlay2's do (a
/// container's init and read-write layers): it gets no image.
pub(crate) const FILES: &str = "files";
/// What the image's metadata digest is, beside it.
pub(crate) const IMAGE_META: &str = "layer.erofs.meta";
/// Longest `layer.erofs.meta` read.
const META_CAP: u64 = 4 << 10;
/// That the image, as it is now, was checked since the machine booted,
/// beside it (see [`Overlay2::checked_before`]).
pub(crate) const IMAGE_CHECKED: &str = "layer.erofs.checked";

/// The erofs side of an [`Overlay2`]: the image mounts' counts, and
/// whether new images get fs-verity.
pub(crate) struct Images {
    refs: Refs,
    pub verity: Verity,
    /// Object mode (`--storage-opt erofs.objects=on`): new images keep
    /// their files' content in the object store.
    pub objects: bool,
}

/// fs-verity for new images (`--storage-opt erofs.verity=on`, kept in
/// the home's `verity` file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verity {
    Off,
    On,
    /// Asked for, and the file system cannot: why.
    Unavailable(String),
}

impl Images {
    /// Counts in `<home>/image-refs`, changed under the driver's lock;
    /// the verity setting from `opts` (recorded) or the home's record.
    pub fn open(home: &Path, opts: &crate::Options) -> Result<Self> {
        let (dir, lock) = (home.join("image-refs"), home.join("lock"));
        Ok(Images {
            // Counted even by a command that only reads: an image it
            // mounts must not be unmounted under it by another's release.
            refs: if opts.read_only && !dir.is_dir() {
                Refs::existing(&dir, &lock)
            } else {
                Refs::new(&dir, &lock)?
            },
            verity: verity_setting(home, opts)?,
            objects: objects_setting(home, opts)?,
        })
    }

    pub fn clear_all(&self, lock: &Locked) -> Result<()> {
        self.refs.clear_all(lock)
    }
}

/// An `on`/`off` driver option `key` (`--storage-opt`), recorded in the
/// home's file `record` when given (unless read-only); the record's
/// value when not.
fn switch(home: &Path, opts: &crate::Options, key: &str, record: &str) -> Result<bool> {
    let record = home.join(record);
    let asked = match opts.storage_opts.iter().find(|(k, _)| k == key) {
        None => None,
        Some((_, v)) => Some(match v.as_str() {
            "on" | "true" | "1" => true,
            "off" | "false" | "0" => false,
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("--storage-opt {key}={v}: want on or off"),
                ))
            }
        }),
    };
    if let (Some(on), false) = (asked, opts.read_only) {
        strata_sys::atomic::write(&record, if on { b"on\n" } else { b"off\n" })
            .ctx(|| format!("recording {}", record.display()))?;
    }
    Ok(asked.unwrap_or_else(|| read_capped(&record).is_ok_and(|r| r.trim() == "on")))
}

/// Object mode, `erofs.objects`: overlay follows a lower's metacopy
/// redirect into a data-only layer without `metacopy=on` (which would
/// make a container's upper directory hold metadata-only copies) since
/// Linux 6.16.
fn objects_setting(home: &Path, opts: &crate::Options) -> Result<bool> {
    let on = switch(home, opts, "erofs.objects", "objects-mode")?;
    if on && !opts.read_only {
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut v = release
            .trim()
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
        if (major, minor) < (6, 16) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "erofs.objects needs Linux 6.16 or later (overlay data-only layers \
                     without metacopy); this is {}",
                    release.trim()
                ),
            ));
        }
        let dir = home.join(OBJECTS);
        match fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).ctx(|| format!("creating {}", dir.display()))
            }
            _ => {}
        }
        let lock = home.join(OBJECTS_LOCK);
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .ctx(|| format!("creating {}", lock.display()))?;
    }
    Ok(on)
}

/// The home's record of `erofs.verity`, changed first by the option when
/// it is given; when on, whether the file system can (a file made and
/// sealed in the home).
fn verity_setting(home: &Path, opts: &crate::Options) -> Result<Verity> {
    let on = switch(home, opts, "erofs.verity", "verity")?;
    if !on {
        return Ok(Verity::Off);
    }
    if opts.read_only {
        return Ok(Verity::On);
    }
    let probe = home.join(format!(".verity-probe.{}", std::process::id()));
    let _ = fs::remove_file(&probe);
    let tried = fs::write(&probe, [0u8; 4096])
        .and_then(|()| fs::File::open(&probe))
        .and_then(|f| strata_sys::verity::enable(std::os::fd::AsFd::as_fd(&f)));
    let _ = fs::remove_file(&probe);
    Ok(match tried {
        Ok(()) => Verity::On,
        Err(e) => Verity::Unavailable(format!(
            "the file system of {} cannot ({e}): fs-verity needs a kernel built with \
             CONFIG_FS_VERITY, and on ext4 the verity feature",
            home.display()
        )),
    })
}

/// Whether file-backed EROFS mounts work here: an empty image is written
/// and mounted in the home, once per kernel release (remembered in
/// `erofs-probe`).
pub(crate) fn probe(home: &Path, read_only: bool) -> Result<()> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let record = home.join("erofs-probe");
    if fs::read_to_string(&record).is_ok_and(|r| r == release) {
        return Ok(());
    }
    if read_only {
        // Nothing is mounted or written by a command that only reads.
        return Ok(());
    }
    let refused = |why: String| {
        Error::new(
            ErrorKind::Unsupported,
            format!("EROFS images cannot be mounted from files here: {why}"),
        )
    };
    let pid = std::process::id();
    let img = home.join(format!(".erofs-probe.{pid}.img"));
    let mnt = home.join(format!(".erofs-probe.{pid}.mnt"));
    let _ = fs::remove_dir(&mnt);
    strata_erofs::write_image(&[0u8; 1024][..], &img, &strata_erofs::Options::default())
        .map_err(|e| refused(format!("writing a probe image: {e}")))?;
    let tried = fs::create_dir(&mnt)
        .map_err(|e| refused(format!("making {}: {e}", mnt.display())))
        .and_then(|()| {
            mount::mount_erofs_file(&img, &mnt).map_err(|e| {
                refused(format!(
                    "{e} (file-backed EROFS needs Linux 6.12 with \
                     CONFIG_EROFS_FS_BACKED_BY_FILE, and image files on a file system \
                     the kernel reads pages of directly: not tmpfs)"
                ))
            })
        });
    if tried.is_ok() {
        let _ = mount::unmount(&mnt, true);
    }
    let _ = fs::remove_dir(&mnt);
    let _ = fs::remove_file(&img);
    tried?;
    let tmp = home.join(format!(".erofs-probe.{pid}.tmp"));
    fs::write(&tmp, &release)
        .and_then(|()| fs::rename(&tmp, &record))
        .ctx(|| format!("recording the probe in {}", record.display()))
}

impl Overlay2 {
    fn images(&self) -> &Images {
        self.images
            .as_ref()
            .expect("called on the erofs driver only")
    }

    pub(crate) fn image_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(IMAGE)
    }

    /// Writes layer `id`'s image from `input` (and its tar-split record to
    /// `record`), the layers below consulted where the layer copies up
    /// from them; made durable here when `flush` (else by the caller's
    /// flush of the file system).
    pub(crate) fn write_image(
        &self,
        id: &str,
        input: &mut (dyn Read + Send),
        record: Option<&mut dyn Write>,
        flush: bool,
    ) -> Result<ApplyReport> {
        self.require(id)?;
        let path = self.image_path(id);
        if path.exists() || !dir_is_empty(&self.dir(id).join("diff"))? {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("layer {id} already holds files: a layer is applied to once"),
            ));
        }
        // The layers below are mounted only if the layer needs them (a
        // hard link to a file only they have, a parent it leaves out),
        // each when a lookup first reaches it (a parent left out is
        // found in the layer just below: one mount, not one per layer
        // below), and for as long as the image is being written.
        // Each lower's link is read when that layer is first reached too:
        // a deep chain's layers are mostly never looked at.
        let below = self.lower_of(id)?.unwrap_or_default();
        let held = std::sync::Mutex::new(Vec::new());
        let mut prepare = || -> std::io::Result<strata_archive::Lowers<'_>> {
            let (below, held) = (&below, &held);
            let open = move |i: usize| -> std::io::Result<std::os::fd::OwnedFd> {
                let layer = self
                    .layer_of_short(&below[i])
                    .map_err(std::io::Error::other)?;
                let lock = self.refs.lock().map_err(std::io::Error::other)?;
                self.hold_images(&lock, std::slice::from_ref(&layer))
                    .map_err(std::io::Error::other)?;
                let dir = self.dir(&layer).join("diff");
                held.lock().unwrap_or_else(|e| e.into_inner()).push(layer);
                strata_sys::fs::open_dir(&dir)
            };
            Ok(strata_archive::Lowers::lazy(
                below.len(),
                self.xattrs,
                Box::new(open),
            ))
        };
        let written = self.write_image_over(id, &path, input, record, &mut prepare, flush);
        let held = held.into_inner().unwrap_or_else(|e| e.into_inner());
        let released = if held.is_empty() {
            Ok(())
        } else {
            self.refs
                .lock()
                .and_then(|lock| self.release_images(&lock, &held))
        };
        let report = written?;
        released?;
        Ok(report)
    }

    fn write_image_over(
        &self,
        id: &str,
        path: &Path,
        input: &mut (dyn Read + Send),
        record: Option<&mut dyn Write>,
        below: &mut strata_erofs::Below<'_>,
        flush: bool,
    ) -> Result<ApplyReport> {
        // Full images are made durable here, one fsync each (see
        // `flushes_layers`), unless the caller flushes the file system
        // (`Flush::Caller`); object mode leaves it to the store's
        // flush of its file system before it publishes the layer.
        let opts = strata_erofs::Options {
            opaque_xattr: self.xattrs,
            lowers: Vec::new(),
            // Synced below with its records, all at once.
            sync: false,
            objects: self.images().objects.then(|| self.home.join(OBJECTS)),
        };
        // Objects this image is about to name are not removed meanwhile.
        let _shared = match opts.objects {
            Some(_) => Some(self.objects_lock(false)?),
            None => None,
        };
        let tmp = self.dir(id).join(format!(".{IMAGE}.partial"));
        let made = (|| {
            let mut file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .ctx(|| format!("creating the image of layer {id}"))?;
            let report = strata_erofs::write_layer_over(input, &mut file, &opts, record, below)
                .map_err(|e| image_err(id, e))?;
            let digest = strata_erofs::metadata_digest(&file, report.data_end)
                .map_err(|e| image_err(id, e))?;
            // What is stamped as checked is this file, the one hashed
            // (a read-only handle on it: verity wants no writer).
            let hashed = strata_sys::fs::reopen(std::os::fd::AsFd::as_fd(&file), 0)
                .ctx(|| format!("reopening the image of layer {id}"))?;
            // Sealed by a read-only handle, with no writer left.
            drop(file);
            let verity = match self.images().verity {
                Verity::On => {
                    let f = fs::File::open(&tmp)
                        .ctx(|| format!("reopening the image of layer {id}"))?;
                    let fd = std::os::fd::AsFd::as_fd(&f);
                    strata_sys::verity::enable(fd)
                        .ctx(|| format!("turning fs-verity on for the image of layer {id}"))?;
                    let d = strata_sys::verity::measure(fd)
                        .ctx(|| format!("measuring the image of layer {id}"))?
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::Io,
                                format!("the image of layer {id} has no fs-verity digest"),
                            )
                        })?;
                    hex(&d)
                }
                _ => "-".to_owned(),
            };
            if !report.objects.is_empty() {
                // Named before the image is in place: what names an
                // object is always listed.
                let list = self.dir(id).join(IMAGE_OBJECTS);
                let mut text = report.objects.join("\n");
                text.push('\n');
                fs::write(&list, text).ctx(|| format!("listing the objects of layer {id}"))?;
            }
            let meta = self.dir(id).join(IMAGE_META);
            let meta_tmp = self.dir(id).join(format!(".{IMAGE_META}.tmp"));
            let text = format!("{} {digest} {} {verity}\n", report.data_end, report.size);
            fs::write(&meta_tmp, text.as_bytes())
                .ctx(|| format!("recording the image digest of layer {id}"))?;
            if flush {
                // The image, its digest record, and the records `create`
                // wrote (its `link`, `lower`, the layer's directory and
                // the home's entries for it), at once: then the renames.
                let dir = self.dir(id);
                let (home, l) = (self.home.clone(), self.home.join("l"));
                let mut all = vec![tmp.clone(), meta_tmp.clone(), dir.clone(), home, l];
                all.extend(
                    ["link", "lower"]
                        .map(|f| dir.join(f))
                        .into_iter()
                        .filter(|p| p.exists()),
                );
                strata_sys::atomic::sync_paths(&all)
                    .ctx(|| format!("syncing the image of layer {id}"))?;
            }
            fs::rename(&meta_tmp, &meta)
                .ctx(|| format!("recording the image digest of layer {id}"))?;
            fs::rename(&tmp, path).ctx(|| format!("putting the image of layer {id} in place"))?;
            // Its metadata was hashed as written: the first mount need not
            // hash it again (stamped after the rename, which dates it).
            if let Some(stamp) = self.check_stamp(id, &hashed) {
                self.write_stamp(id, &stamp);
            }
            if flush && report.data_end > strata_erofs::BLOCK_SIZE {
                // The file content just written, now on disk (and read for
                // fs-verity), leaves the page cache: pages left here would
                // be dropped one by one by the unlink that removes the
                // layer. A mount reads the file through this cache again
                // (file-backed EROFS reads are buffered), so what
                // containers read comes back. The metadata (after the
                // content) stays, for the check at a mount.
                let block = strata_erofs::BLOCK_SIZE;
                let data = report.data_end - block;
                if let Err(e) =
                    strata_sys::fs::drop_cached(std::os::fd::AsFd::as_fd(&hashed), block, data)
                {
                    tracing::debug!("layer {id}: dropping the image's cached data: {e}");
                }
            }
            if flush {
                // The two renames.
                strata_sys::atomic::sync_dir(&self.dir(id))
                    .ctx(|| format!("syncing the directory of layer {id}"))?;
            }
            Ok(report)
        })();
        match made {
            Ok(r) => Ok(ApplyReport {
                diff_id: r.diff_id,
                compression: r.compression,
                tar_size: r.tar_size,
                size: r.size,
                entries: r.entries,
                skipped: r.skipped,
                consulted_lowers: r.consulted_lowers,
            }),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                let _ = fs::remove_file(self.dir(id).join(IMAGE_META));
                let _ = fs::remove_file(self.dir(id).join(IMAGE_OBJECTS));
                Err(e)
            }
        }
    }

    /// The layers whose images a mount of `id` stacks: the layers below
    /// (from its `lower`), and `id` itself when `with_self`. Each by id.
    pub(crate) fn image_chain(&self, id: &str, with_self: bool) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if with_self {
            out.push(id.to_owned());
        }
        for short in self.lower_of(id)?.unwrap_or_default() {
            out.push(self.layer_of_short(&short)?);
        }
        Ok(out)
    }

    /// Whether layer `id` is seen through an overlay: it has layers
    /// below, or its image's files keep their content in the object
    /// store. Else its view is its `diff/` itself (its image, mounted,
    /// or a plain directory).
    fn through_overlay(&self, id: &str, lower: &Option<Vec<String>>) -> bool {
        lower.is_some() || (self.uses_objects(id) && self.image_path(id).exists())
    }

    /// [`Driver::get`](crate::Driver::get) for the erofs driver. A layer
    /// seen through an overlay: the first reference mounts the images it
    /// stacks (its own and those below), then the overlay, and holds the
    /// images until the last reference goes; later ones count. A layer
    /// that is its own `diff/`: every reference holds its image.
    pub(crate) fn get_over_images(
        &self,
        lock: &Locked,
        id: &str,
        count: u64,
        label: Option<&str>,
    ) -> Result<crate::Mount<'_>> {
        let lower = self.lower_of(id)?;
        if !self.through_overlay(id, &lower) {
            let own = [id.to_owned()];
            self.hold_images(lock, &own)?;
            if let Err(e) = self.refs.set(lock, id, count + 1) {
                let _ = self.release_images(lock, &own);
                return Err(e);
            }
            return Ok(crate::Mount::new(self, id, self.dir(id).join("diff")));
        }
        if self.mounted(lock, id) {
            self.refs.set(lock, id, count + 1)?;
            return Ok(crate::Mount::new(self, id, self.dir(id).join("merged")));
        }
        // Not mounted: whatever count is on disk is stale; this mount
        // starts from zero.
        let chain = self.image_chain(id, true)?;
        self.hold_images(lock, &chain)?;
        let path = self.mount(id, lower.as_deref().unwrap_or_default(), label);
        let path = match path.and_then(|p| self.refs.set(lock, id, 1).map(|()| p)) {
            Ok(p) => p,
            Err(e) => {
                let _ = self.unmount(id);
                let _ = self.release_images(lock, &chain);
                return Err(e);
            }
        };
        Ok(crate::Mount::new(self, id, path))
    }

    /// [`Driver::put`](crate::Driver::put) for the erofs driver, the
    /// layer's count `count` (see [`Overlay2::get_over_images`]). The
    /// images an overlay held are given back with its last reference
    /// whether or not its unmount succeeded.
    pub(crate) fn put_over_images(&self, lock: &Locked, id: &str, count: u64) -> Result<()> {
        let lower = self.lower_of(id)?;
        if !self.through_overlay(id, &lower) {
            if count == 0 {
                return Ok(());
            }
            let released = self.release_images(lock, &[id.to_owned()]);
            self.refs.set(lock, id, count - 1)?;
            return released;
        }
        if count > 1 {
            return self.refs.set(lock, id, count - 1);
        }
        let chain = self.image_chain(id, true)?;
        let unmounted = self.unmount(id);
        let released = match count {
            1 => self.release_images(lock, &chain),
            _ => Ok(()),
        };
        self.refs.set(lock, id, 0)?;
        unmounted.and(released)
    }

    /// Mounts the image of each layer of `ids` that has one (checked
    /// first) and counts a hold on it.
    pub(crate) fn hold_images(&self, lock: &Locked, ids: &[String]) -> Result<()> {
        for (i, id) in ids.iter().enumerate() {
            if let Err(e) = self.hold_image(lock, id) {
                let _ = self.release_images(lock, &ids[..i]);
                return Err(e);
            }
        }
        Ok(())
    }

    fn hold_image(&self, lock: &Locked, id: &str) -> Result<()> {
        if !self.image_path(id).exists() {
            // An image layer never applied to, or one that keeps its
            // files in `diff/`: nothing to mount.
            return Ok(());
        }
        let refs = &self.images().refs;
        let diff = self.dir(id).join("diff");
        let count = if mount::is_mountpoint(&diff).unwrap_or(false) {
            refs.get(lock, id)?
        } else {
            self.mount_image(id, &diff)?;
            // Not mounted: whatever count is on disk is stale.
            0
        };
        if let Err(e) = refs.set(lock, id, count + 1) {
            if count == 0 {
                let _ = self.unmount_image(id);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Checks layer `id`'s image and mounts it at `at`: the file checked
    /// is the file mounted (through its descriptor), whatever happens to
    /// the path meanwhile.
    fn mount_image(&self, id: &str, at: &Path) -> Result<()> {
        use std::os::fd::AsRawFd;
        let file = fs::File::open(self.image_path(id))
            .ctx(|| format!("opening the image of layer {id}"))?;
        let stamp = self.check_stamp(id, &file);
        if !self.checked_before(id, stamp.as_deref()) {
            self.verify_image_file(id, &file)?;
            if let Some(stamp) = &stamp {
                self.write_stamp(id, stamp);
            }
        }
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        mount::mount_erofs_file(&by_fd, at).ctx(|| format!("mounting the image of layer {id}"))
    }

    /// Gives back a hold on the image of each layer of `ids`; the last
    /// one unmounts it (lazily: what still uses it keeps it).
    pub(crate) fn release_images(&self, lock: &Locked, ids: &[String]) -> Result<()> {
        let refs = &self.images().refs;
        let mut first = Ok(());
        for id in ids {
            if !self.image_path(id).exists() {
                continue;
            }
            let done = refs.get(lock, id).and_then(|count| {
                if count > 1 {
                    refs.set(lock, id, count - 1)
                } else {
                    let unmounted = self.unmount_image(id);
                    refs.set(lock, id, 0).and(unmounted)
                }
            });
            if first.is_ok() {
                first = done;
            }
        }
        first
    }

    fn unmount_image(&self, id: &str) -> Result<()> {
        let diff = self.dir(id).join("diff");
        if mount::is_mountpoint(&diff).unwrap_or(false) {
            mount::unmount(&diff, true).ctx(|| format!("unmounting the image of layer {id}"))?;
        }
        Ok(())
    }

    /// Whether layer `id`'s image is mounted and held by a mounted layer
    /// (so it cannot be removed); a mount nothing holds (a killed
    /// process's) is taken down.
    pub(crate) fn image_in_use(&self, lock: &Locked, id: &str) -> Result<bool> {
        let diff = self.dir(id).join("diff");
        if !self.image_path(id).exists() || !mount::is_mountpoint(&diff).unwrap_or(false) {
            return Ok(false);
        }
        if self.images().refs.get(lock, id)? > 0 {
            return Ok(true);
        }
        self.unmount_image(id)?;
        Ok(false)
    }

    pub(crate) fn forget_image(&self, lock: &Locked, id: &str) -> Result<()> {
        self.images().refs.set(lock, id, 0)
    }

    /// What `layer.erofs.meta` records.
    fn image_meta(&self, id: &str) -> Result<ImageMeta> {
        let recorded = read_capped(&self.dir(id).join(IMAGE_META))
            .ctx(|| format!("reading the image record of layer {id}"))?;
        let mut parts = recorded.split_whitespace();
        let parsed = (|| {
            let data_end = parts.next()?.parse::<u64>().ok()?;
            let digest = parts.next()?.to_owned();
            let size = parts.next()?.parse::<u64>().ok()?;
            let verity = match parts.next()? {
                "-" => None,
                v if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(v.to_ascii_lowercase())
                }
                _ => return None,
            };
            parts.next().is_none().then_some(ImageMeta {
                data_end,
                digest,
                size,
                verity,
            })
        })();
        parsed.ok_or_else(|| {
            Error::new(
                ErrorKind::Corrupt,
                format!("the image record of layer {id} holds {recorded:?}"),
            )
        })
    }

    /// The bytes of file content layer `id`'s image holds, as recorded
    /// when it was written (no mount); None for a layer with no image.
    pub(crate) fn image_size(&self, id: &str) -> Result<Option<u64>> {
        if !self.image_path(id).exists() {
            return Ok(None);
        }
        Ok(Some(self.image_meta(id)?.size))
    }

    /// What names the image open as `file` as it is now, in this boot:
    /// the boot ID, its device, inode, change time and size, and the
    /// metadata digest recorded for it. None when a part cannot be read.
    fn check_stamp(&self, id: &str, file: &fs::File) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let boot = strata_sys::process::boot_id().ok()?;
        let md = file.metadata().ok()?;
        let meta = self.image_meta(id).ok()?;
        Some(format!(
            "{boot} {} {} {}.{} {} {}\n",
            md.dev(),
            md.ino(),
            md.ctime(),
            md.ctime_nsec(),
            md.size(),
            meta.digest
        ))
    }

    /// Writes the stamp. Not flushed: lost, it only costs the next mount
    /// the hashing. Never written through a link planted at the name.
    fn write_stamp(&self, id: &str, stamp: &str) {
        let path = self.dir(id).join(IMAGE_CHECKED);
        if let Err(e) = strata_sys::fs::write_nofollow(&path, stamp.as_bytes()) {
            tracing::debug!("layer {id}: recording that its image was checked: {e}");
        }
    }

    /// Whether layer `id`'s image was checked before a mount since the
    /// machine booted and has not changed since: its stamp
    /// (`layer.erofs.checked`) is `stamp`. Any write to the file (or a
    /// new file at its name) changes its change time, which no one but
    /// the kernel sets, so a second mount of the same image skips
    /// hashing its metadata again (15 MB for a Debian base image); a new
    /// boot checks again, and `strata check` always does.
    fn checked_before(&self, id: &str, stamp: Option<&str>) -> bool {
        let Some(stamp) = stamp else {
            return false;
        };
        let path = self.dir(id).join(IMAGE_CHECKED);
        crate::check::read_record(&path, META_CAP).is_some_and(|s| s == stamp.trim())
    }

    /// Refuses an image whose metadata is not what was written.
    pub(crate) fn verify_image(&self, id: &str) -> Result<()> {
        let file = fs::File::open(self.image_path(id))
            .ctx(|| format!("opening the image of layer {id}"))?;
        self.verify_image_file(id, &file)
    }

    /// [`Overlay2::verify_image`] of the image opened as `file`.
    fn verify_image_file(&self, id: &str, file: &fs::File) -> Result<()> {
        let checked = self.hash_image_file(id, file);
        if checked.is_err() {
            // Found damaged (by `check` too): no mount may skip the hash.
            let _ = fs::remove_file(self.dir(id).join(IMAGE_CHECKED));
        }
        checked
    }

    fn hash_image_file(&self, id: &str, file: &fs::File) -> Result<()> {
        let damaged = |why: String| {
            Error::new(
                ErrorKind::Corrupt,
                format!("the image of layer {id} is damaged: {why}; it is not mounted"),
            )
        };
        let meta = self.image_meta(id).map_err(|e| damaged(chain(&e)))?;
        if let Some(want) = &meta.verity {
            // The kernel checks every block as it is read: the digest is
            // all there is to compare.
            let got = strata_sys::verity::measure(std::os::fd::AsFd::as_fd(file))
                .ctx(|| format!("measuring the image of layer {id}"))?;
            return match got.map(|d| hex(&d)) {
                Some(got) if &got == want => Ok(()),
                Some(got) => Err(damaged(format!(
                    "its fs-verity digest is {got}, not {want} as written"
                ))),
                None => Err(damaged(
                    "fs-verity is off on it, though it was sealed".into(),
                )),
            };
        }
        let want = meta.digest.as_str();
        let got = strata_erofs::metadata_digest(file, meta.data_end)
            .map_err(|e| damaged(e.to_string()))?;
        if got.as_str() != want {
            return Err(damaged(format!(
                "its metadata hashes to {got}, not {want} as written"
            )));
        }
        Ok(())
    }

    /// Layer `id`'s own files, its image mounted while the guard lives
    /// (under an overlay with the object store, at `content/`, when its
    /// files keep their content there).
    pub(crate) fn image_content(&self, id: &str) -> Result<crate::Content<'_>> {
        self.require(id)?;
        let ids = vec![id.to_owned()];
        {
            let lock = self.refs.lock()?;
            self.hold_images(&lock, &ids)?;
        }
        let release_images = move || {
            let released = self
                .refs
                .lock()
                .and_then(|lock| self.release_images(&lock, &ids));
            if let Err(e) = released {
                tracing::warn!("releasing the image of layer {}: {e}", ids[0]);
            }
        };
        let diff = self.dir(id).join("diff");
        if !(self.uses_objects(id) && self.image_path(id).exists()) {
            return Ok(crate::Content::with_release(diff, release_images));
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Each guard its own view: one's release never takes another's.
        let view = self
            .dir(id)
            .join(format!("content.{}.{n}", std::process::id()));
        let mounted = (|| {
            match fs::create_dir(&view) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(e).ctx(|| format!("creating {}", view.display()))
                }
                _ => {}
            }
            let ov = mount::Overlay {
                lower: vec![diff],
                data: vec![self.home.join(OBJECTS)],
                upper: None,
                work: None,
                options: super::mount_options(self.userns),
            };
            mount::mount_overlay_fsconfig(&ov, &view)
                .ctx(|| format!("mounting the files of layer {id}"))
        })();
        if let Err(e) = mounted {
            let _ = fs::remove_dir(&view);
            release_images();
            return Err(e);
        }
        let unmount = view.clone();
        Ok(crate::Content::with_release(view, move || {
            if let Err(e) = mount::unmount(&unmount, true) {
                tracing::warn!("unmounting {}: {e}", unmount.display());
            }
            let _ = fs::remove_dir(&unmount);
            release_images();
        }))
    }

    /// The object store, when the driver is erofs.
    pub(crate) fn objects_dir(&self) -> Option<PathBuf> {
        self.images.as_ref().map(|_| self.home.join(OBJECTS))
    }

    /// Whether layer `id` or a layer of `lower` (its `lower` names)
    /// keeps file content in the object store: its mounts then take the
    /// store as a data-only layer (which kernels before 6.16 refuse
    /// without metacopy, so it is added only where it is used).
    pub(crate) fn chain_uses_objects(&self, id: &str, lower: &[String]) -> bool {
        self.uses_objects(id)
            || lower.iter().any(|short| {
                self.layer_of_short(short)
                    .is_ok_and(|l| self.uses_objects(&l))
            })
    }

    /// Whether layer `id`'s image keeps file content in the object store.
    pub(crate) fn uses_objects(&self, id: &str) -> bool {
        self.dir(id).join(IMAGE_OBJECTS).exists()
    }

    /// The objects lock, shared (writing an image) or exclusive and
    /// without waiting (removing objects: None when an image is being
    /// written, and the removal is left to a later one or to `check`).
    fn objects_lock(&self, exclusive: bool) -> Result<fs::File> {
        let path = self.home.join(OBJECTS_LOCK);
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("opening {}", path.display()))?;
        let fd = std::os::fd::AsFd::as_fd(&f);
        if exclusive {
            if !strata_sys::fs::try_lock_exclusive(fd).ctx(|| "locking the objects".into())? {
                return Err(Error::new(ErrorKind::InUse, "an image is being written"));
            }
        } else {
            strata_sys::fs::lock_shared(fd).ctx(|| "locking the objects".into())?;
        }
        Ok(f)
    }

    /// The objects lock held exclusively (inside: nothing to hold when
    /// there is no lock file, which only an image write makes), or None
    /// while an image is being written.
    pub(crate) fn objects_busy(&self) -> Result<Option<Option<fs::File>>> {
        if !self.home.join(OBJECTS_LOCK).exists() {
            return Ok(Some(None));
        }
        match self.objects_lock(true) {
            Ok(f) => Ok(Some(Some(f))),
            Err(e) if e.kind() == ErrorKind::InUse => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The objects a layer's image names, as its list says (none when
    /// it has no list). An unreadable list is an error: taken for empty,
    /// it would let live objects go.
    pub(crate) fn objects_of(dir: &Path) -> Result<Vec<String>> {
        let path = dir.join(IMAGE_OBJECTS);
        let text = match read_capped_any(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
        };
        Ok(text
            .lines()
            .filter(|l| is_object_name(l))
            .map(str::to_owned)
            .collect())
    }

    /// Removes the objects of `gone` (a removed layer's list) that no
    /// other layer's image names; left for later when an image is being
    /// written meanwhile.
    pub(crate) fn drop_objects(&self, gone: &[String]) -> Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        let Some(_lock) = self.objects_busy()? else {
            return Ok(());
        };
        let live = self.live_objects()?;
        let objects = self.home.join(OBJECTS);
        for o in gone
            .iter()
            .filter(|o| !live.contains(*o) && is_object_name(o))
        {
            let _ = fs::remove_file(objects.join(&o[..2]).join(&o[2..]));
        }
        Ok(())
    }

    /// Every object a layer's image names.
    pub(crate) fn live_objects(&self) -> Result<std::collections::HashSet<String>> {
        let mut live = std::collections::HashSet::new();
        for e in fs::read_dir(&self.home).ctx(|| format!("listing {}", self.home.display()))? {
            let e = e.ctx(|| format!("listing {}", self.home.display()))?;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                live.extend(Overlay2::objects_of(&e.path())?);
            }
        }
        Ok(live)
    }

    /// Runs `f` with the images of `id` (when `with_self`) and of the
    /// layers below it mounted.
    pub(crate) fn with_images<T>(
        &self,
        id: &str,
        with_self: bool,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if self.images.is_none() {
            return f();
        }
        self.with_images_of(&self.image_chain(id, with_self)?, f)
    }

    /// Runs `f` with the images of the layers `ids` mounted (those that
    /// have one).
    pub(crate) fn with_images_of<T>(
        &self,
        ids: &[String],
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if self.images.is_none() {
            return f();
        }
        {
            let lock = self.refs.lock()?;
            self.hold_images(&lock, ids)?;
        }
        let out = f();
        let lock = self.refs.lock()?;
        let released = self.release_images(&lock, ids);
        let out = out?;
        released?;
        Ok(out)
    }
}

/// What `layer.erofs.meta` holds: `<data_end> <metadata digest> <size>
/// <fs-verity digest in hex, or ->`.
struct ImageMeta {
    data_end: u64,
    digest: String,
    size: u64,
    verity: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn image_err(id: &str, e: strata_erofs::Error) -> Error {
    Error::image(format!("writing the image of layer {id}"), e)
}

fn dir_is_empty(dir: &Path) -> Result<bool> {
    Ok(fs::read_dir(dir)
        .ctx(|| format!("listing {}", dir.display()))?
        .next()
        .is_none())
}

/// Whether `s` is an object's name: 64 lowercase hex digits.
pub(crate) fn is_object_name(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Longest object list read: a million objects.
const LIST_CAP: u64 = 65 << 20;

/// A layer's object list, refused past [`LIST_CAP`] (cut short, it would
/// leave objects out).
fn read_capped_any(path: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    fs::File::open(path)?
        .take(LIST_CAP + 1)
        .read_to_string(&mut s)?;
    if s.len() as u64 > LIST_CAP {
        return Err(std::io::Error::other("longer than any object list"));
    }
    Ok(s)
}

fn read_capped(path: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    fs::File::open(path)?
        .take(META_CAP)
        .read_to_string(&mut s)?;
    Ok(s)
}
