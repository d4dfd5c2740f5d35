//! The table of storage drivers: the one place a driver is registered.
//!
//! [`BACKENDS`] lists every driver this build has, in the order the
//! automatic choice tries them: the file system's own snapshots when the
//! store is on btrfs (as Docker and Podman do), then a layer as one EROFS
//! image under the kernel union where the kernel mounts images from
//! files, then the kernel union over directories (Docker's and Podman's
//! default), then the FUSE union, then full copies. [`open`](crate::open),
//! the automatic choice, the store's list of homes, `strata info` and the
//! conformance suite's factories all read it. Adding a driver is a module
//! with a `Driver` implementation, one row here and one `conformance!`
//! line in `tests/conformance.rs` (see docs/ARCHITECTURE.md).

use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::{fuse, Driver};

/// How the caller wants drivers opened.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Who serves the `fuse` driver's unions.
    pub fuse_server: fuse::Server,
    /// Open an existing home without writing to it: nothing is made,
    /// probed or recorded (for commands that only read the store). The
    /// mount probe's recorded answer is used when there is one; without
    /// it the driver assumes the old mount API and no native diff.
    pub read_only: bool,
    /// Driver options (`--storage-opt KEY=VALUE` before the command, as
    /// dockerd's `--storage-opt`), each a key the driver's row lists in
    /// [`Backend::storage_opts`]; anything else is refused by name.
    pub storage_opts: Vec<(String, String)>,
}

impl From<fuse::Server> for Options {
    fn from(fuse_server: fuse::Server) -> Self {
        Options {
            fuse_server,
            ..Options::default()
        }
    }
}

/// What a driver can do beyond the core trait, as the table says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// It may offer a [`NativeDiff`](crate::NativeDiff) (whether it does
    /// here is the opened driver's to say).
    pub native_diff: bool,
    /// It checks and repairs its own layout ([`Check`](crate::Check)).
    pub check: bool,
    /// `get` mounts a union (rather than handing out a directory).
    pub mounts: bool,
    /// `create` copies the parent's content into the new layer (vfs), so
    /// a container's layers hold data at `create` and the store flushes
    /// them before it publishes the container; other drivers' new layers
    /// are empty or a snapshot, and a container is created without a
    /// flush (README, "Durability").
    pub copies_on_create: bool,
}

/// One row of the table.
#[derive(Debug)]
pub struct Backend {
    /// The name a store is made with and `--driver` takes; also the
    /// name of the driver's home under the store's root.
    pub name: &'static str,
    /// Other names `--driver` accepts for it (Docker's `overlay`).
    pub aliases: &'static [&'static str],
    /// Whether the driver can work with its home under `root`, checked
    /// before the home is made: the automatic choice skips a driver whose
    /// probe fails (and one whose `open` then fails), saying why.
    pub probe: fn(root: &Path) -> Result<()>,
    /// Opens (making it if needed) the driver with its home at `home`.
    pub open: fn(home: &Path, opts: &Options) -> Result<Box<dyn Driver>>,
    pub capabilities: Capabilities,
    /// The storage options (`--storage-opt`) the driver takes.
    pub storage_opts: &'static [&'static str],
}

impl Backend {
    /// Whether `name` names this driver.
    pub fn is(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// overlay2's, whether the kernel's overlayfs or the FUSE union mounts.
const OVERLAY: Capabilities = Capabilities {
    native_diff: true,
    check: true,
    mounts: true,
    copies_on_create: false,
};

/// Every driver of this build, in the order the automatic choice tries
/// them.
pub static BACKENDS: &[Backend] = &[
    Backend {
        name: "btrfs",
        aliases: &[],
        // Only where the store's root is on btrfs: elsewhere the table
        // goes on to overlay2.
        probe: crate::btrfs::probe,
        open: |home, opts| Ok(Box::new(crate::btrfs::Btrfs::open(home, opts.read_only)?)),
        capabilities: Capabilities {
            native_diff: true,
            check: true,
            mounts: false,
            copies_on_create: false,
        },
        storage_opts: &[],
    },
    Backend {
        name: "erofs",
        aliases: &[],
        // Where the kernel mounts an EROFS image from a file (Linux >=
        // 6.12, as root): `erofs_open` mounts a tiny image to find out,
        // and the table goes on to overlay2 where it cannot (older
        // kernels, user namespaces).
        probe: |_| Ok(()),
        open: |home, opts| Ok(Box::new(crate::overlay2::Overlay2::erofs_open(home, opts)?)),
        capabilities: OVERLAY,
        storage_opts: &["erofs.verity", "erofs.objects"],
    },
    Backend {
        name: "overlay2",
        aliases: &["overlay"],
        // Whether overlayfs mounts here is found by mounting in the home
        // (`Overlay2::new` probes and caches the answer).
        probe: |_| Ok(()),
        open: |home, opts| {
            Ok(Box::new(crate::overlay2::Overlay2::open(
                home,
                opts.read_only,
            )?))
        },
        capabilities: OVERLAY,
        storage_opts: &[],
    },
    #[cfg(feature = "fuse")]
    Backend {
        name: "fuse",
        aliases: &[],
        probe: |_| fuse::usable(),
        open: |home, opts| {
            Ok(Box::new(crate::overlay2::Overlay2::fuse_open(
                home,
                opts.fuse_server.clone(),
                opts.read_only,
            )?))
        },
        capabilities: OVERLAY,
        storage_opts: &[],
    },
    Backend {
        name: "vfs",
        aliases: &[],
        probe: |_| Ok(()),
        open: |home, opts| Ok(Box::new(crate::vfs::Vfs::open(home, opts.read_only)?)),
        capabilities: Capabilities {
            native_diff: false,
            check: true,
            mounts: false,
            copies_on_create: true,
        },
        storage_opts: &[],
    },
];

/// Drivers strata has that this build leaves out, with the cargo feature
/// that brings each in: a store made with one is recognised, and opening
/// it says what is missing.
static NOT_BUILT: &[(&str, &str)] = &[
    #[cfg(not(feature = "fuse"))]
    ("fuse", "fuse"),
];

/// Docker's drivers strata does not have, and why: what a user who asks
/// for one is told (docs/ARCHITECTURE.md, README "Graph drivers").
static NOT_OFFERED: &[(&str, &str)] = &[
    (
        "aufs",
        "aufs never reached mainline kernels and Docker removed its driver in \
         version 24; overlay2 does its job, and fuse where overlayfs cannot mount",
    ),
    (
        "devicemapper",
        "Docker deprecated its devicemapper driver and removed it in version 25, and \
         these kernels have no device-mapper thin provisioning; btrfs gives \
         block-level copy-on-write",
    ),
    (
        "zfs",
        "ZFS is not in mainline kernels (these machines have no zfs module); btrfs \
         gives block-level copy-on-write",
    ),
];

/// The row of the driver `name` (or one of its aliases).
pub fn backend(name: &str) -> Result<&'static Backend> {
    if let Some(b) = BACKENDS.iter().find(|b| b.is(name)) {
        return Ok(b);
    }
    if let Some((_, feature)) = NOT_BUILT.iter().find(|(n, _)| *n == name) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the {name} storage driver is not in this build of strata: \
                 build it with the cargo feature `{feature}`"
            ),
        ));
    }
    let known: Vec<&str> = BACKENDS.iter().map(|b| b.name).collect();
    if let Some((_, why)) = NOT_OFFERED.iter().find(|(n, _)| *n == name) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "strata has no {name} storage driver: {why} (known: {})",
                known.join(", ")
            ),
        ));
    }
    Err(Error::new(
        ErrorKind::InvalidArgument,
        format!(
            "unknown storage driver {name:?} (known: {})",
            known.join(", ")
        ),
    ))
}

/// The name of every driver a store may have been made with, built here
/// or not, in the order of the table: each one's home and image
/// directory are named so under the store's root.
pub fn names() -> impl Iterator<Item = &'static str> {
    BACKENDS
        .iter()
        .map(|b| b.name)
        .chain(NOT_BUILT.iter().map(|(n, _)| *n))
}

/// Opens the driver `name` with its home under `root/<name>`, or with
/// `None` the first in the table whose probe and open succeed here,
/// logging why each one before it was skipped.
pub(crate) fn open(root: &Path, name: Option<&str>, opts: &Options) -> Result<Box<dyn Driver>> {
    if let Some(name) = name {
        let b = backend(name)?;
        b.takes(&opts.storage_opts)?;
        return (b.open)(&root.join(b.name), opts);
    }
    choose(root, opts).map(|(d, _)| d)
}

impl Backend {
    /// Refuses, by name, a storage option the driver does not take.
    pub fn takes(&self, storage_opts: &[(String, String)]) -> Result<()> {
        match storage_opts
            .iter()
            .find(|(k, _)| !self.storage_opts.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) => Err(Error::new(
                ErrorKind::InvalidArgument,
                match self.storage_opts {
                    [] => format!(
                        "the {} storage driver takes no storage option ({k})",
                        self.name
                    ),
                    keys => format!(
                        "the {} storage driver has no storage option {k} (it has: {})",
                        self.name,
                        keys.join(", ")
                    ),
                },
            )),
        }
    }
}

/// A driver the automatic choice passed over, and why.
pub type Skipped = (&'static str, String);

/// The automatic choice: the first driver in the table whose probe and
/// open succeed here, with the ones skipped before it and why (what
/// `strata info` reports for a store made this way).
pub(crate) fn choose(root: &Path, opts: &Options) -> Result<(Box<dyn Driver>, Vec<Skipped>)> {
    let mut skipped = Vec::new();
    let mut last = None;
    for b in BACKENDS {
        let home = root.join(b.name);
        let had_home = std::fs::symlink_metadata(&home).is_ok();
        let opened = (b.probe)(root)
            .and_then(|()| b.takes(&opts.storage_opts))
            .and_then(|()| (b.open)(&home, opts));
        match opened {
            Ok(d) => return Ok((d, skipped)),
            Err(e) => {
                if !had_home {
                    forget_home(&home);
                }
                tracing::info!("storage driver {} skipped: {e}", b.name);
                skipped.push((b.name, e.to_string()));
                last = Some(e);
            }
        }
    }
    Err(last
        .unwrap_or_else(|| Error::new(ErrorKind::Unsupported, "this build has no storage driver")))
}

/// Removes the home a driver made before it was skipped, so that a store
/// keeps the home of the driver it has and not of those it tried
/// (overlay2's on a store on overlayfs, btrfs's without root). Left,
/// with a warning, when anything is mounted below it.
fn forget_home(home: &Path) {
    if std::fs::symlink_metadata(home).is_err() {
        return;
    }
    match strata_sys::mount::mounts_under(home) {
        Ok(m) if m.is_empty() => {
            if let Err(e) = std::fs::remove_dir_all(home) {
                tracing::warn!("{}: not removed: {e}", home.display());
            }
        }
        _ => tracing::warn!("{}: left, as something is mounted below it", home.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_find_their_row() {
        assert_eq!(backend("overlay2").unwrap().name, "overlay2");
        assert_eq!(backend("overlay").unwrap().name, "overlay2");
        assert_eq!(backend("vfs").unwrap().name, "vfs");
        let err = backend("aufs").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(
            err.to_string().contains("known: btrfs, erofs, overlay2"),
            "{err}"
        );
    }

    /// Docker's drivers strata leaves out are named with the reason.
    #[test]
    fn drivers_not_offered_say_why() {
        for (name, says) in [
            ("devicemapper", "removed it in version 25"),
            ("zfs", "no zfs module"),
            ("aufs", "fuse"),
        ] {
            let err = backend(name).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
            let msg = err.to_string();
            assert!(msg.contains(says) && msg.contains("btrfs"), "{msg}");
        }
        assert!(backend("btrfs").is_ok());
    }

    #[test]
    fn names_cover_every_row_once() {
        let all: Vec<&str> = names().collect();
        for b in BACKENDS {
            assert_eq!(all.iter().filter(|n| **n == b.name).count(), 1, "{all:?}");
        }
        assert!(
            all.contains(&"fuse"),
            "a store made with fuse is recognised: {all:?}"
        );
    }

    #[cfg(feature = "fuse")]
    #[test]
    fn fuse_has_a_row_with_the_feature() {
        assert_eq!(backend("fuse").unwrap().name, "fuse");
    }

    /// Without the feature a store made with fuse is refused, saying why.
    #[cfg(not(feature = "fuse"))]
    #[test]
    fn fuse_without_the_feature_names_it() {
        assert!(BACKENDS.iter().all(|b| b.name != "fuse"));
        let t = tempfile::tempdir().unwrap();
        let err = crate::open(t.path(), Some("fuse"))
            .err()
            .expect("opened fuse");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("cargo feature `fuse`"), "{err}");
        assert!(!t.path().join("fuse").exists(), "made a home for fuse");
    }
}
