//! The `overlay2` driver: kernel overlayfs, with Docker's on-disk layout.
//!
//! ```text
//! <home>/                        e.g. <root>/overlay2
//!   l/<SHORT> -> ../<id>/diff    short names, so a mount(2) option string fits a page
//!   <id>/
//!     diff/                      the layer's upper directory: its changes
//!     link                       SHORT
//!     lower                      l/P1:l/P2:...  the parent's chain, topmost first (absent on a base layer)
//!     work/                      overlay's work directory (layers with a parent)
//!     merged/                    where the union view is mounted
//!   refs/<id>                    mount reference count (see `refs`)
//!   probe                        what the start-up probe found, for this kernel and these options
//!   lock                         flock held while counts or layers change
//! ```
//!
//! Mounts go through the new mount API, one `lowerdir+` per layer, when
//! the kernel has it (Linux ≥ 6.8): stacks reach overlayfs's own limit of
//! 500 layers (Docker, with one option string, stops at 125). Elsewhere
//! the option string uses the short relative `l/` names.
//!
//! Mount options: `index=off` (as Docker), and `redirect_dir=off`,
//! `metacopy=off` so that the upper directory always holds a layer's whole
//! change; a probe at start-up checks that the kernel honours that (and
//! does not copy an opaque flag up) before native diff is trusted, as
//! Docker's `doesSupportNativeDiff` does. Inside a user namespace the
//! mount uses `userxattr` and the markers are `user.overlay.*`.

mod check;
mod erofs;
mod probe;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::{Path, PathBuf};

use strata_archive::{ApplyOptions, ApplyReport, Change, DiffReport, OverlayXattrs, Target};
use strata_sys::mount::{self, Overlay};

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::refs::{Locked, Refs};
use crate::{check_id, Check, Driver, LayerKind, Mount, NativeDiff};

/// mount(2) copies at most a page of options.
const PAGE_SIZE: usize = 4096;

/// overlayfs's own limit on lower layers under one upper (OVL_MAX_STACK).
pub const MAX_LAYERS: usize = 500;

/// The statfs magic of overlayfs: no overlay on top of overlay.
const OVERLAY_MAGIC: i64 = 0x794c_7630;

pub struct Overlay2 {
    home: PathBuf,
    refs: Refs,
    xattrs: OverlayXattrs,
    userns: bool,
    union: Union,
    native_diff: bool,
    backing_fs: String,
    /// Opened without writing: sizes are counted in the upper directory
    /// rather than by mounting.
    read_only: bool,
    /// Whether the probe's answer is known (a read-only open of a home
    /// that never recorded one does not probe).
    probed: bool,
    /// The `erofs` driver: image layers are EROFS images ([`erofs`]).
    images: Option<erofs::Images>,
}

/// What mounts the union: kernel overlayfs, or strata's FUSE union (the
/// `fuse` driver, same layout).
enum Union {
    Kernel {
        new_mount_api: bool,
    },
    #[cfg(feature = "fuse")]
    Fuse(crate::fuse::Mounter),
}

impl Overlay2 {
    /// Opens (creating if needed) an overlay2 home. Fails when overlayfs
    /// cannot be mounted here, when the backing file system is itself
    /// overlay, or when it lacks d_type.
    pub fn new(home: &Path) -> Result<Self> {
        Overlay2::open(home, false)
    }

    /// [`Overlay2::new`], or with `read_only` an existing home opened
    /// without writing to it: nothing made, no probe mounted or recorded
    /// (the recorded answer is used; without one, the old mount API and
    /// no native diff, which are always correct).
    pub fn open(home: &Path, read_only: bool) -> Result<Self> {
        let (home, backing) = open_home(home, read_only)?;
        if backing.0 == OVERLAY_MAGIC {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} is on overlayfs: overlay2 cannot stack on it (use vfs)",
                    home.display()
                ),
            ));
        }
        let userns = mount::in_user_namespace();
        let xattrs = if userns {
            OverlayXattrs::User
        } else {
            OverlayXattrs::Trusted
        };
        let options = mount_options(userns);
        let (found, probed) = if read_only {
            match probe::recorded(&home, &options) {
                Some(found) => (found, true),
                None => (
                    probe::Probed {
                        new_mount_api: false,
                        native_diff: false,
                    },
                    false,
                ),
            }
        } else {
            (probe::cached(&home, &options, xattrs)?, true)
        };
        Ok(Overlay2 {
            refs: refs(&home, read_only)?,
            home,
            xattrs,
            userns,
            union: Union::Kernel {
                new_mount_api: found.new_mount_api,
            },
            native_diff: found.native_diff,
            backing_fs: backing.1,
            read_only,
            probed,
            images: None,
        })
    }

    /// Opens (creating if needed) a home for the `erofs` driver: this
    /// layout and kernel overlay mounts, each image layer kept as one
    /// EROFS image ([`erofs`]). Fails where overlay2 would, or when the
    /// kernel cannot mount an EROFS image from a file.
    pub fn erofs_open(home: &Path, opts: &crate::Options) -> Result<Self> {
        let mut d = Overlay2::open(home, opts.read_only)?;
        erofs::probe(&d.home, opts.read_only)?;
        d.images = Some(erofs::Images::open(&d.home, opts)?);
        Ok(d)
    }

    /// Opens (creating if needed) a home for the `fuse` driver: this
    /// layout, mounted by strata's FUSE union served as `server` says.
    /// Fails when FUSE cannot be used here.
    #[cfg(feature = "fuse")]
    pub fn fuse(home: &Path, server: crate::fuse::Server) -> Result<Self> {
        Overlay2::fuse_open(home, server, false)
    }

    /// [`Overlay2::fuse`], or with `read_only` an existing home opened
    /// without writing to it.
    #[cfg(feature = "fuse")]
    pub fn fuse_open(home: &Path, server: crate::fuse::Server, read_only: bool) -> Result<Self> {
        let mounter = crate::fuse::Mounter::new(server)?;
        let (home, backing) = open_home(home, read_only)?;
        let userns = mounter.userxattr();
        Ok(Overlay2 {
            refs: refs(&home, read_only)?,
            home,
            xattrs: if userns {
                OverlayXattrs::User
            } else {
                OverlayXattrs::Trusted
            },
            userns,
            union: Union::Fuse(mounter),
            // The union never writes redirects or metacopies: a layer's
            // upper directory is always its whole change.
            native_diff: true,
            backing_fs: backing.1,
            read_only,
            probed: true,
            images: None,
        })
    }

    /// Mounts with mount(2) and one option string even where the new
    /// mount API works: the path older kernels take, kept testable here.
    #[cfg_attr(not(feature = "fuse"), allow(irrefutable_let_patterns))]
    pub fn with_mount_syscall(mut self) -> Self {
        if let Union::Kernel { new_mount_api } = &mut self.union {
            *new_mount_api = false;
        }
        self
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.home.join(id)
    }

    /// The `lower` file of layer `id`: each name `l/<short>` and nothing
    /// else, since it becomes a mount option (a `../../etc` written there
    /// would put the host's `/etc` under the container).
    fn lower_of(&self, id: &str) -> Result<Option<Vec<String>>> {
        match fs::read_to_string(self.dir(id).join("lower")) {
            Ok(s) => {
                let names: Vec<String> = s.trim().split(':').map(str::to_owned).collect();
                if let Some(bad) = names.iter().find(|n| !is_short_path(n)) {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!("the lower chain of layer {id} names {bad:?}, not a short link"),
                    ));
                }
                Ok(Some(names))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx(|| format!("reading the lower chain of layer {id}")),
        }
    }

    /// The layer an `l/<short>` entry of a `lower` leads to.
    fn layer_of_short(&self, short: &str) -> Result<String> {
        let target =
            fs::read_link(self.home.join(short)).ctx(|| format!("reading the link {short}"))?;
        let id = target
            .to_str()
            .and_then(|t| t.strip_prefix("../"))
            .and_then(|t| t.strip_suffix("/diff"))
            .filter(|t| crate::check_id(t).is_ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!("{short} links to {}, not a layer", target.display()),
                )
            })?;
        Ok(id.to_owned())
    }

    fn link_of(&self, id: &str) -> Result<String> {
        link_in(&self.home, id)
    }

    /// Removes the entries of `l/` that lead to layer `id`'s `diff`.
    fn unlink_links_to(&self, id: &str) {
        let l = self.home.join("l");
        let want = PathBuf::from(format!("../{id}/diff"));
        let Ok(entries) = fs::read_dir(&l) else {
            return;
        };
        for e in entries.flatten() {
            if fs::read_link(e.path()).is_ok_and(|t| t == want) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    fn require(&self, id: &str) -> Result<()> {
        require_in(&self.home, id)
    }

    fn make(&self, id: &str, parent: Option<&str>) -> Result<()> {
        check_id(id)?;
        let dir = self.dir(id);
        let _lock = self.refs.lock_to_create(id, || dir.exists())?;
        let lower = match parent {
            None => None,
            Some(p) => {
                self.require(p)?;
                let mut chain = vec![short_path(&self.link_of(p)?)];
                chain.extend(self.lower_of(p)?.unwrap_or_default());
                Some(lower_line(id, &chain)?)
            }
        };
        let result = self.make_dirs(id, &dir, lower.as_deref());
        if result.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    fn make_dirs(&self, id: &str, dir: &Path, lower: Option<&str>) -> Result<()> {
        let mk = |p: &Path, mode: u32| {
            fs::DirBuilder::new()
                .mode(mode)
                .create(p)
                .ctx(|| format!("creating {}", p.display()))
        };
        mk(dir, 0o710)?;
        mk(&dir.join("diff"), 0o755)?;
        // The union view's root is 0755 whatever the umask (moby's
        // DriverTestCreateEmpty checks it).
        if !strata_sys::fs::umask_keeps(0o755) {
            set_mode(&dir.join("diff"), 0o755)?;
        }
        let short = short_id()?;
        symlink(format!("../{id}/diff"), self.home.join("l").join(&short))
            .ctx(|| format!("linking l/{short} for layer {id}"))?;
        write_file(&dir.join("link"), &short)?;
        if let Some(lower) = lower {
            write_file(&dir.join("lower"), lower)?;
            // `merged` is made by the first mount, as Docker makes it: a
            // container's init layer, only ever a lower, never has one.
            mk(&dir.join("work"), 0o700)?;
        }
        Ok(())
    }

    fn mount(&self, id: &str, lower: &[String], label: Option<&str>) -> Result<PathBuf> {
        let dir = self.dir(id);
        let merged = dir.join("merged");
        // Docker makes `merged` as it mounts a layer and removes it as it
        // unmounts: a layer of a copy of its data root may have none.
        match fs::DirBuilder::new().mode(0o700).create(&merged) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).ctx(|| format!("creating {}", merged.display()))
            }
            _ => {}
        }
        let new_mount_api = match &self.union {
            Union::Kernel { new_mount_api } => *new_mount_api,
            #[cfg(feature = "fuse")]
            Union::Fuse(m) => {
                let lower = self.lower_dirs(id)?;
                m.mount(&lower, &dir.join("diff"), &dir.join("work"), &merged)?;
                return Ok(merged);
            }
        };
        let mut options = mount_options(self.userns);
        if let Some(label) = label {
            options.push(format!("context=\"{label}\""));
        }
        // An erofs image layer is read-only: its image is the top lower
        // of a mount with no upper directory.
        let image = self.images.is_some() && self.image_path(id).exists();
        // The object store, where layer images' files keep their content
        // (erofs object mode): a data-only layer.
        let objects = self
            .objects_dir()
            .filter(|_| self.chain_uses_objects(id, lower));
        let result = if new_mount_api {
            let own = image.then(|| dir.join("diff"));
            let ov = Overlay {
                lower: own
                    .into_iter()
                    .chain(lower.iter().map(|l| self.home.join(l)))
                    .collect(),
                data: objects.into_iter().collect(),
                upper: (!image).then(|| dir.join("diff")),
                work: (!image).then(|| dir.join("work")),
                options,
            };
            mount::mount_overlay_fsconfig(&ov, &merged)
        } else {
            let own = image.then(|| PathBuf::from(id).join("diff"));
            let ov = Overlay {
                lower: own
                    .into_iter()
                    .chain(lower.iter().map(PathBuf::from))
                    .collect(),
                data: objects
                    .map(|_| PathBuf::from(erofs::OBJECTS))
                    .into_iter()
                    .collect(),
                upper: (!image).then(|| PathBuf::from(id).join("diff")),
                work: (!image).then(|| PathBuf::from(id).join("work")),
                options,
            };
            let data = ov.data();
            if data.len() >= PAGE_SIZE {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "layer {id}: {} lower layers make a {}-byte mount option string; mount(2) takes at most {}, and this kernel lacks lowerdir+",
                        lower.len(),
                        data.len(),
                        PAGE_SIZE - 1
                    ),
                ));
            }
            mount::mount_overlay_legacy(&data, &self.home, &merged)
        };
        result.ctx(|| format!("mounting layer {id} ({} lower layers)", lower.len()))?;
        Ok(merged)
    }

    fn unmount(&self, id: &str) -> Result<()> {
        let merged = self.dir(id).join("merged");
        match &self.union {
            #[cfg(feature = "fuse")]
            Union::Fuse(m) if m.mounted(&merged) => m.unmount(&merged),
            #[cfg(feature = "fuse")]
            Union::Fuse(_) => Ok(()),
            Union::Kernel { .. } if mount::is_mountpoint(&merged).unwrap_or(false) => {
                mount::unmount(&merged, true).ctx(|| format!("unmounting layer {id}"))
            }
            Union::Kernel { .. } => Ok(()),
        }
    }

    fn mounted(&self, _lock: &Locked, id: &str) -> bool {
        let merged = self.dir(id).join("merged");
        match &self.union {
            #[cfg(feature = "fuse")]
            Union::Fuse(m) => m.mounted(&merged),
            Union::Kernel { .. } => mount::is_mountpoint(&merged).unwrap_or(false),
        }
    }

    /// The absolute diff directories of the layers below `id`.
    fn lower_dirs(&self, id: &str) -> Result<Vec<PathBuf>> {
        let chain = self.lower_of(id)?.unwrap_or_default();
        chain
            .iter()
            .map(|l| {
                // `l/<short>` is `../<layer>/diff` as `create` made it:
                // one readlink resolves it. Anything else is resolved in
                // full.
                match self.layer_of_short(l) {
                    Ok(layer) => Ok(self.dir(&layer).join("diff")),
                    Err(_) => fs::canonicalize(self.home.join(l))
                        .ctx(|| format!("resolving {l} below layer {id}")),
                }
            })
            .collect()
    }

    /// Unpacks a layer over its real parent straight into its upper
    /// directory, as the kernel would write it (whiteouts as overlay's).
    fn apply_upper(
        &self,
        id: &str,
        input: &mut (dyn Read + Send),
        record: Option<&mut dyn Write>,
    ) -> Result<ApplyReport> {
        self.require(id)?;
        let opts = ApplyOptions {
            target: Target::Overlay(self.xattrs),
            // Hard links may name files of the layers below.
            lowers: self.lower_dirs(id)?,
            ..ApplyOptions::default()
        };
        crate::apply_to(input, &self.dir(id).join("diff"), &opts, record)
            .map_err(|e| Error::archive(format!("applying a layer to {id}"), e))
    }
}

/// The `lower` file that `create` writes for layer `id` on `parents`
/// (the parent first, then its parent, down to the base layer): their
/// short names under `l/`, topmost first; none for a base layer. For
/// `strata check` ([`crate::Check`]), given a layer's parents from the
/// store's records, rebuilds a lost or damaged `lower` from them. Fails,
/// naming what is missing, unless every parent has its `diff`, its
/// `link` and the `l/` link to that `diff`.
pub(crate) fn lower_for(home: &Path, id: &str, parents: &[&str]) -> Result<Option<String>> {
    if parents.is_empty() {
        return Ok(None);
    }
    let mut chain = Vec::with_capacity(parents.len());
    for p in parents {
        require_in(home, p)?;
        let short = link_in(home, p)?;
        let short = short.as_str();
        if short.is_empty() || !short.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("the link of layer {p}, {short:?}, is not a short name"),
            ));
        }
        let want = PathBuf::from(format!("../{p}/diff"));
        if fs::read_link(home.join("l").join(short)).ok() != Some(want) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("l/{short} does not link to layer {p}"),
            ));
        }
        chain.push(short_path(short));
    }
    lower_line(id, &chain).map(Some)
}

/// Layer `id` under `home`, with its `diff`, or NotFound.
fn require_in(home: &Path, id: &str) -> Result<()> {
    check_id(id)?;
    if home.join(id).join("diff").is_dir() {
        Ok(())
    } else {
        Err(Error::no_layer(id))
    }
}

/// The short name in layer `id`'s `link` file.
fn link_in(home: &Path, id: &str) -> Result<String> {
    let s = fs::read_to_string(home.join(id).join("link"))
        .ctx(|| format!("reading the short name of layer {id}"))?;
    let short = s.trim();
    // Joined to `l/` to remove the link: a `../../etc/x` written there
    // must not name a file outside the home.
    if !is_short_path(&short_path(short)) {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("the link of layer {id} holds {short:?}, not a short name"),
        ));
    }
    Ok(short.to_owned())
}

/// How `lower` names a layer: its short link, relative to the home (the
/// directory a mount(2) option string is resolved in).
fn short_path(short: &str) -> String {
    format!("l/{short}")
}

/// Whether `s` is what [`short_path`] makes of a short name.
fn is_short_path(s: &str) -> bool {
    s.strip_prefix("l/").is_some_and(is_short_name)
}

/// Whether `s` is a short link name, by the rule links are read with
/// (`create` makes 26 of `[A-Z0-9]`): letters and digits.
fn is_short_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The `lower` file of layer `id` over `chain` (short paths, topmost
/// first); refused past overlayfs's stacking limit. Every layer mounts
/// with its own `diff` as the upper directory, so the limit counts the
/// lower layers alone: `chain` may hold [`MAX_LAYERS`] of them.
fn lower_line(id: &str, chain: &[String]) -> Result<String> {
    if chain.len() > MAX_LAYERS {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "layer {id} would stack {} lower layers: overlayfs mounts at most {MAX_LAYERS} under one upper",
                chain.len()
            ),
        ));
    }
    Ok(chain.join(":"))
}

/// Makes the home (with its `l/`) if needed, unless `read_only`; its
/// canonical path and the file system it is on.
fn open_home(home: &Path, read_only: bool) -> Result<(PathBuf, (i64, String))> {
    let home = crate::make_home(home, "l", 0o710, read_only)?;
    let backing = crate::backing_fs(&home)?;
    Ok((home, backing))
}

/// The mount reference counts in `<home>/refs`, made when missing
/// unless `read_only`.
fn refs(home: &Path, read_only: bool) -> Result<Refs> {
    let (dir, lock) = (home.join("refs"), home.join("lock"));
    if read_only {
        Ok(Refs::existing(&dir, &lock))
    } else {
        Refs::new(&dir, &lock)
    }
}

fn mount_options(userns: bool) -> Vec<String> {
    let mut o = vec!["index=off".to_owned()];
    if userns {
        o.push("userxattr".to_owned());
    } else {
        o.push("redirect_dir=off".to_owned());
        o.push("metacopy=off".to_owned());
    }
    o
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .ctx(|| format!("setting the mode of {}", p.display()))
}

fn write_file(p: &Path, content: &str) -> Result<()> {
    fs::write(p, content).ctx(|| format!("writing {}", p.display()))
}

/// 26 characters of [A-Z0-9], as Docker's short layer names.
fn short_id() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut buf = [0u8; 26];
    strata_sys::fs::random_bytes(&mut buf).ctx(|| "reading random bytes".into())?;
    Ok(buf
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

impl Driver for Overlay2 {
    fn name(&self) -> &'static str {
        match self.union {
            Union::Kernel { .. } if self.images.is_some() => "erofs",
            Union::Kernel { .. } => "overlay2",
            #[cfg(feature = "fuse")]
            Union::Fuse(_) => "fuse",
        }
    }

    fn home(&self) -> &Path {
        &self.home
    }

    fn create(&self, id: &str, parent: Option<&str>, kind: LayerKind) -> Result<()> {
        self.make(id, parent)?;
        if self.images.is_some() && kind != LayerKind::ReadOnly {
            // Its files stay in `diff/`, as overlay2's do.
            if let Err(e) = write_file(&self.dir(id).join(erofs::FILES), "") {
                let _ = self.remove(id);
                return Err(e);
            }
        }
        Ok(())
    }

    fn layers_independent(&self) -> bool {
        // A layer is its own upper directory; `lower` only names the
        // parents' directories.
        true
    }

    fn remove(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let lock = self.refs.lock()?;
        let dir = self.dir(id);
        if !dir.exists() {
            return Err(Error::no_layer(id));
        }
        let image_held = match self.images {
            Some(_) => self.image_in_use(&lock, id)?,
            None => false,
        };
        if self.refs.get(&lock, id)? > 0 || self.mounted(&lock, id) || image_held {
            return Err(Error::new(
                ErrorKind::InUse,
                format!("layer {id} is mounted: unmount it first"),
            ));
        }
        match self.link_of(id) {
            Ok(short) => {
                let _ = fs::remove_file(self.home.join("l").join(short));
            }
            // Its `link` record lost (a power cut after a create that
            // flushed nothing): the entry of `l/` that leads to it is
            // found by its target, or it would be left dangling.
            Err(_) => self.unlink_links_to(id),
        }
        let objects = match self.images {
            Some(_) => {
                // Views a killed process left mounted inside it go first.
                for m in mount::mounts_under(&dir).unwrap_or_default() {
                    let _ = mount::unmount(&m, true);
                }
                Overlay2::objects_of(&dir)
            }
            None => Ok(Vec::new()),
        };
        // Rename first: a crash mid-way leaves `-removing` debris, never a
        // half-deleted layer under its own name.
        let doomed = self.home.join(format!("{id}-removing"));
        fs::rename(&dir, &doomed).ctx(|| format!("removing layer {id}"))?;
        fs::remove_dir_all(&doomed).ctx(|| format!("removing layer {id}"))?;
        if self.images.is_some() {
            // The layer is gone: what follows is tidying, reported, not
            // failed on (check finds objects nothing names).
            let tidied = self.forget_image(&lock, id).and_then(|()| {
                // Its objects no image names any more: one unlink each.
                objects.and_then(|o| self.drop_objects(&o))
            });
            if let Err(e) = tidied {
                tracing::warn!("removing layer {id}: {e}");
            }
        }
        self.refs.set(&lock, id, 0)
    }

    fn get(&self, id: &str, mount_label: Option<&str>) -> Result<Mount<'_>> {
        let lock = self.refs.lock()?;
        self.require(id)?;
        let count = self.refs.get(&lock, id)?;
        if self.images.is_some() {
            return self.get_over_images(&lock, id, count, mount_label);
        }
        let (path, count) = match self.lower_of(id)? {
            // A base layer is its diff directory: nothing to mount.
            None => (self.dir(id).join("diff"), count),
            Some(_) if self.mounted(&lock, id) => (self.dir(id).join("merged"), count),
            // Not mounted: whatever count is on disk is stale (a reboot, a
            // killed process); this mount starts from zero.
            Some(lower) => (self.mount(id, &lower, mount_label)?, 0),
        };
        self.refs.set(&lock, id, count + 1)?;
        Ok(Mount::new(self, id, path))
    }

    fn put(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let lock = self.refs.lock()?;
        if !self.dir(id).exists() {
            // Removed meanwhile: nothing to give back.
            return Ok(());
        }
        let count = self.refs.get(&lock, id)?;
        if self.images.is_some() {
            return self.put_over_images(&lock, id, count);
        }
        if count > 1 {
            return self.refs.set(&lock, id, count - 1);
        }
        self.unmount(id)?;
        self.refs.set(&lock, id, 0)
    }

    fn in_use(&self, id: &str) -> Result<bool> {
        check_id(id)?;
        let lock = self.refs.lock()?;
        Ok(self.mounted(&lock, id)
            || (self.refs.get(&lock, id)? > 0 && self.lower_of(id)?.is_none()))
    }

    fn content_dir(&self, id: &str) -> Result<PathBuf> {
        self.require(id)?;
        Ok(self.dir(id).join("diff"))
    }

    fn content(&self, id: &str) -> Result<crate::Content<'_>> {
        match self.images {
            Some(_) => self.image_content(id),
            None => Ok(crate::Content::dir(self.content_dir(id)?)),
        }
    }

    fn apply_diff_recording(
        &self,
        id: &str,
        parent: Option<&str>,
        input: &mut (dyn Read + Send),
        record: Option<&mut dyn Write>,
        flush: crate::Flush,
    ) -> Result<ApplyReport> {
        if self.images.is_some() && !self.dir(id).join(erofs::FILES).exists() {
            // Into the layer's image, whatever parent is named.
            let here = flush == crate::Flush::Driver && self.flushes_layers();
            return self.write_image(id, input, record, here);
        }
        // A layer that keeps its files in `diff/` over images: those
        // are mounted while it is applied, as copy-up looks in them.
        self.with_images(id, false, || {
            if self.covers(id, parent) {
                self.apply_upper(id, input, record)
            } else {
                crate::naive::apply_diff(self, id, input, record)
            }
        })
    }

    fn metadata(&self, id: &str) -> Result<std::collections::BTreeMap<String, String>> {
        self.require(id)?;
        let dir = self.dir(id);
        let shown = |sub: &str| dir.join(sub).to_string_lossy().into_owned();
        let mut m = std::collections::BTreeMap::from([
            ("MergedDir".to_owned(), shown("merged")),
            ("UpperDir".to_owned(), shown("diff")),
            ("WorkDir".to_owned(), shown("work")),
        ]);
        let lowers = self.lower_dirs(id)?;
        if !lowers.is_empty() {
            let lowers: Vec<String> = lowers
                .iter()
                .map(|l| l.to_string_lossy().into_owned())
                .collect();
            m.insert("LowerDir".to_owned(), lowers.join(":"));
        }
        Ok(m)
    }

    fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.dir(id).join("diff").is_dir()
    }

    fn status(&self) -> Vec<(String, String)> {
        let layers = crate::count_entries(&self.home.join("l"));
        let probed = |v: String| {
            if self.probed {
                v
            } else {
                "not probed (the store was opened to be read)".to_owned()
            }
        };
        vec![
            ("Backing Filesystem".into(), self.backing_fs.clone()),
            ("Supports d_type".into(), probed("true".into())),
            (
                "Native Overlay Diff".into(),
                probed(self.native_diff.to_string()),
            ),
            ("userxattr".into(), self.userns.to_string()),
            (
                "Mount API".into(),
                match &self.union {
                    Union::Kernel {
                        new_mount_api: true,
                    } => format!("fsconfig lowerdir+ (up to {MAX_LAYERS} layers)"),
                    Union::Kernel {
                        new_mount_api: false,
                    } => probed("mount(2) option string".into()),
                    #[cfg(feature = "fuse")]
                    Union::Fuse(m) => m.describe(),
                },
            ),
            ("Layers".into(), layers.to_string()),
        ]
        .into_iter()
        .chain(self.images.iter().flat_map(|i| {
            [
                (
                    "Layer Images".into(),
                    "EROFS, one file per image layer, mounted from the file".into(),
                ),
                (
                    "Objects".into(),
                    match i.objects {
                        true => format!(
                            "on: file content kept once in {}, shared by every layer",
                            self.home.join(erofs::OBJECTS).display()
                        ),
                        false => "off: each image holds its files' content".into(),
                    },
                ),
                (
                    "fs-verity".into(),
                    match &i.verity {
                        erofs::Verity::On => "on: new images sealed (SHA-256, 4 KiB blocks)".into(),
                        erofs::Verity::Off => {
                            "off: images checked by their metadata digest before each mount".into()
                        }
                        erofs::Verity::Unavailable(why) => format!(
                            "asked for, not available: {why}; images checked by their \
                             metadata digest before each mount"
                        ),
                    },
                ),
            ]
        }))
        .collect()
    }

    fn cleanup(&self) -> Result<()> {
        let lock = self.refs.lock()?;
        for m in mount::mounts_under(&self.home).ctx(|| "listing mounts".into())? {
            match &self.union {
                #[cfg(feature = "fuse")]
                Union::Fuse(f) => f.unmount(&m)?,
                Union::Kernel { .. } => {
                    mount::unmount(&m, true).ctx(|| format!("unmounting {}", m.display()))?
                }
            }
        }
        if let Some(images) = &self.images {
            images.clear_all(&lock)?;
        }
        self.refs.clear_all(&lock)
    }

    fn native_diff(&self) -> Option<&dyn NativeDiff> {
        self.native_diff.then_some(self as &dyn NativeDiff)
    }

    /// erofs with full images: one fsync of the image (and of its record
    /// and directory) makes a layer durable. Object mode leaves it to the
    /// store's flush: a layer is hundreds of object files.
    fn flushes_layers(&self) -> bool {
        self.images.as_ref().is_some_and(|i| !i.objects)
    }

    /// Without the probe's answer (a read-only open), a layer over its
    /// real parent is measured in its upper directory rather than by
    /// mounting: with redirect_dir and metacopy off, that directory
    /// holds every file the layer adds or changes, and an image layer's
    /// is exactly what its tar unpacked.
    fn diff_size(&self, id: &str, parent: Option<&str>) -> Result<u64> {
        let upper = self.native_diff || self.read_only;
        if upper && NativeDiff::covers(self, id, parent) {
            return NativeDiff::diff_size(self, id, parent);
        }
        crate::naive::diff_size(self, id, parent)
    }

    /// Docker's overlay2 records the size of the diff directory it
    /// unpacked a layer into (moby `directory.Size`): regular files and
    /// symbolic links, each inode once.
    fn docker_size(&self, id: &str) -> Result<Option<u64>> {
        self.require(id)?;
        let content = self.content(id)?;
        dir_size(&content, true).map(Some)
    }

    /// Docker's overlay2 limits a container's size with xfs project
    /// quotas (FS_IOC_FSSETXATTR project ids on the upper directory);
    /// strata does not, and says so with the backing file system.
    fn quota(&self) -> Result<&dyn crate::Quota> {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the {} storage driver cannot limit a container's size (--storage-opt size): \
                 that takes xfs project quotas, which strata does not implement \
                 (backing file system: {})",
                self.name(),
                self.backing_fs
            ),
        ))
    }

    fn checker(&self) -> Option<&dyn Check> {
        Some(self)
    }
}

impl NativeDiff for Overlay2 {
    fn covers(&self, id: &str, parent: Option<&str>) -> bool {
        // An image whose files keep their content in the object store
        // shows it only under an overlay, where its own whiteouts are
        // not seen: its diff is the naive one, between views.
        if self.images.is_some() && self.uses_objects(id) {
            return false;
        }
        let Ok(lower) = self.lower_of(id) else {
            return false;
        };
        match (parent, lower) {
            (None, None) => true,
            (Some(p), Some(chain)) => self
                .link_of(p)
                .is_ok_and(|link| chain.first() == Some(&short_path(&link))),
            _ => false,
        }
    }

    fn diff(&self, id: &str, _parent: Option<&str>, out: &mut dyn Write) -> Result<DiffReport> {
        self.require(id)?;
        // The upper directory alone is read: an image layer's own image
        // is mounted on it, the layers below are not looked at.
        let (_, report) = self.with_images_of(&[id.to_owned()], || {
            strata_archive::diff_upper(&self.dir(id).join("diff"), out, self.xattrs)
                .map_err(|e| Error::archive(format!("diff of layer {id}"), e))
        })?;
        Ok(report)
    }

    fn changes(&self, id: &str, _parent: Option<&str>) -> Result<Vec<Change>> {
        self.require(id)?;
        let lowers = self.lower_dirs(id)?;
        let lowers: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
        self.with_images(id, true, || {
            strata_archive::changes_upper(&self.dir(id).join("diff"), &lowers, self.xattrs)
                .map_err(|e| Error::archive(format!("changes of layer {id}"), e))
        })
    }

    fn diff_size(&self, id: &str, _parent: Option<&str>) -> Result<u64> {
        self.require(id)?;
        if self.images.is_some() {
            if let Some(n) = self.image_size(id)? {
                return Ok(n);
            }
        }
        dir_size(&self.dir(id).join("diff"), false)
    }
}

/// Bytes of regular-file content under `dir` (each inode once); with
/// `symlinks`, each symbolic link's length too, as Docker counts.
fn dir_size(dir: &Path, symlinks: bool) -> Result<u64> {
    use std::collections::HashSet;
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).ctx(|| format!("listing {}", d.display()))? {
            let e = e.ctx(|| format!("listing {}", d.display()))?;
            let md = e
                .metadata()
                .ctx(|| format!("looking up {}", e.path().display()))?;
            if md.is_dir() {
                stack.push(e.path());
            } else if (md.is_file() || (symlinks && md.is_symlink()))
                && seen.insert((md.dev(), md.ino()))
            {
                total += md.len();
            }
        }
    }
    Ok(total)
}

/// A driver in a new temporary directory (kept alive by the first
/// value) holding `layers` (id, parent, kind), made in order; `None`
/// (SKIPPED) when not root.
#[cfg(test)]
fn with_layers(
    layers: &[(&str, Option<&str>, LayerKind)],
) -> Option<(tempfile::TempDir, Overlay2)> {
    if !crate::conformance::require_root() {
        return None;
    }
    let home = tempfile::tempdir().unwrap();
    let d = Overlay2::new(home.path()).unwrap();
    for (id, parent, kind) in layers {
        d.create(id, *parent, *kind).unwrap();
    }
    Some((home, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `strata check` rebuilds a `lower` from is what `create` wrote.
    #[test]
    fn lower_for_gives_what_create_writes() {
        let Some((_tmp, d)) = with_layers(&[
            ("a", None, LayerKind::ReadOnly),
            ("b", Some("a"), LayerKind::ReadOnly),
            ("c", Some("b"), LayerKind::ReadWrite),
        ]) else {
            return;
        };
        let home = d.home();
        let lower = |id: &str| fs::read_to_string(home.join(id).join("lower")).unwrap();
        assert_eq!(lower_for(home, "b", &["a"]).unwrap(), Some(lower("b")));
        assert_eq!(lower_for(home, "c", &["b", "a"]).unwrap(), Some(lower("c")));
        assert_eq!(lower_for(home, "a", &[]).unwrap(), None);
    }

    /// The kernel stacks 500 lower layers under one upper: a layer over
    /// 500 is made, one over 501 is refused, saying how many it counted.
    #[test]
    fn the_stacking_limit_counts_lower_layers() {
        let mut chain = vec![short_path("A"); MAX_LAYERS];
        assert!(lower_line("top", &chain).is_ok());
        chain.push(short_path("B"));
        let err = lower_line("top", &chain).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        let msg = err.to_string();
        assert!(msg.contains("501 lower layers"), "{msg}");
        assert!(msg.contains("at most 500"), "{msg}");
    }

    /// Nothing is rebuilt from a parent that is gone or has lost its link.
    #[test]
    fn lower_for_refuses_a_parent_without_its_link() {
        let Some((_tmp, d)) = with_layers(&[
            ("a", None, LayerKind::ReadOnly),
            ("b", Some("a"), LayerKind::ReadOnly),
        ]) else {
            return;
        };
        let home = d.home();
        let err = lower_for(home, "c", &["b", "gone"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(lower_for(home, "c", &["../b"]).is_err());
        let short = d.link_of("a").unwrap();
        fs::remove_file(home.join("l").join(&short)).unwrap();
        let err = lower_for(home, "c", &["b", "a"]).unwrap_err();
        assert!(err.to_string().contains(&short), "{err}");
        fs::write(home.join("b/link"), "../../x").unwrap();
        let err = lower_for(home, "c", &["b"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    }
}
