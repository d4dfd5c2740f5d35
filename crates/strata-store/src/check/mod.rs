//! `strata check`: walks the store and says what does not add up, and
//! with `repair` fixes what can be fixed without losing committed data.
//!
//! Findings come in two classes ([`FindingKind::is_corruption`]):
//!
//! - **debris** that interrupted work may leave and nothing reads: staging
//!   directories, `-removing` renames, temp files of atomic writes, driver
//!   layers nothing names, layers no image or container reaches, image
//!   metadata without its config, mount records without a container,
//!   overlay2 `l/` links to nothing, volumes half-made or half-removed
//!   (`volumes/.<name>.creating`, `.removing`), entries of the reference
//!   index too many. Repair removes it (the index: rebuilt from the walk).
//! - **corruption**, which no crash of ours should leave: layer metadata
//!   that does not add up, missing driver layers or parents, image configs
//!   that fail their digest, images whose chain reaches a missing layer
//!   or whose recorded parent image is gone, tags naming missing images,
//!   broken containers, wrong sizes, content that no longer rebuilds to
//!   its diffID, volume directories without a readable `meta.json` or
//!   (local ones) without `_data`, containers whose mounts name a volume
//!   that is gone, a reference index that misses an entry or holds a
//!   malformed one. Repair fixes the kinds that lose nothing: it drops
//!   dangling tags and parent pointers to missing images, rewrites a
//!   wrong size and measures a lost one again, recreates a mount record
//!   or an `l/` link from what names it, rebuilds an overlay2 `lower`
//!   from the layer's parents (when each of them and its link is
//!   there), makes a container's lost init layer again on its image's
//!   top layer (when the container is not mounted), removes the records
//!   of a container whose read-write layer is gone, and gives a volume
//!   directory that has `_data` but no `meta.json` a fresh record (the
//!   local driver, no options or labels). It never touches a
//!   container's read-write layer's content, never removes an image, a
//!   layer that an image or a container reaches, or a volume's data;
//!   nor, while corruption remains, a layer or driver layer that seems
//!   unused, since the damaged record may be what names it.
//!
//! Records are read as the rest of the store reads them (`crate::ids`,
//! `atomic::read_capped`): a container whose `config.json` holds an ID
//! that is not its directory's name, or any malformed ID, name or volume
//! source, is a broken container whose record is kept and never used; a
//! layer whose `cache-id` is not a cache ID is a bad layer; a
//! `names/<name>` that holds anything but a container ID names no
//! container (debris), and an overlay2 `lower` or `link` that holds
//! anything but short link names is broken. No value read from a record
//! is joined to a path before it parses.
//!
//! The walk runs under the store lock, so it sees no work in progress
//! but a commit's layer, which fills with no store lock held and keeps
//! its staging directory locked meanwhile: that one is left alone, and
//! whatever else is half-made is debris of a process that died.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::container::{parse_config, Container};
use crate::error::Result;
use crate::layout::{record, Layout};
use crate::lock::Lock;
use crate::{atomic, Store};
// `is_temp`: a temp file of `atomic::write` is named `.<name>.tmp`, as
// the drivers' atomic writes name theirs.
use strata_driver::check::is_temp;
use strata_types::error::chain;

mod containers;
mod driver;
mod images;
mod layers;
mod refs;
mod staging;
mod volume;

/// What `check` does besides looking.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Fix what can be fixed without losing committed data.
    pub repair: bool,
    /// Rebuild every layer's tar (from its tar-split record) and compare
    /// with its diffID: reads all the content, so off by default.
    pub verify_digests: bool,
}

/// The class of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FindingKind {
    /// Staging directories, `-removing` renames, temp files of atomic
    /// writes: what interrupted work left.
    Debris,
    /// A driver layer that no layer, container or staged work names.
    OrphanDriverLayer,
    /// A layer no image and no container reaches.
    UnreferencedLayer,
    /// Image metadata without the image's config.
    OrphanImageMetadata,
    /// A mount record (`layerdb/mounts/<id>`) without its container.
    OrphanMountRecord,
    /// An overlay2 `l/` link to nothing.
    DanglingLink,
    /// An overlay2 layer whose `l/` link is missing or points elsewhere:
    /// the layers above it cannot be mounted.
    MissingLink,
    /// An overlay2 layer whose `lower` names a link that is not there,
    /// is missing, or is not what the layer's parents give.
    BrokenLower,
    /// A tag naming an image the store does not have.
    DanglingTag,
    /// Layer metadata that cannot be read or does not add up (a lost
    /// `size` among it, which repair measures again).
    BadLayer,
    /// A layer whose driver layer (`cache-id`) is gone.
    MissingDriverLayer,
    /// A layer whose parent is not in the store.
    MissingParent,
    /// A layer whose recorded size differs from the driver's count.
    WrongSize,
    /// An image config that fails its digest or cannot be used.
    BadImage,
    /// An image whose layer chain reaches a layer the store lacks.
    MissingLayer,
    /// An image whose recorded parent image (`imagedb/metadata`) is gone.
    MissingParentImage,
    /// A container whose records or layers are gone or disagree.
    BrokenContainer,
    /// A layer whose content no longer rebuilds to its diffID.
    DigestMismatch,
    /// A volume directory without a readable `meta.json`, or a local
    /// volume without its `_data`.
    BadVolume,
    /// A container whose mounts name a volume the store does not have.
    MissingVolume,
    /// Entries of the reference index (`refs/`) that name what no longer
    /// holds: what a crash between two steps of a change leaves.
    StaleIndex,
    /// The reference index misses what holds a layer or an image, or has
    /// an entry that is malformed.
    BadIndex,
    /// Worth knowing; not a problem.
    Note,
}

impl FindingKind {
    /// The name `strata check` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Debris => "debris",
            FindingKind::OrphanDriverLayer => "orphan-driver-layer",
            FindingKind::UnreferencedLayer => "unreferenced-layer",
            FindingKind::OrphanImageMetadata => "orphan-image-metadata",
            FindingKind::OrphanMountRecord => "orphan-mount-record",
            FindingKind::DanglingLink => "dangling-link",
            FindingKind::MissingLink => "missing-link",
            FindingKind::BrokenLower => "broken-lower",
            FindingKind::DanglingTag => "dangling-tag",
            FindingKind::BadLayer => "bad-layer",
            FindingKind::MissingDriverLayer => "missing-driver-layer",
            FindingKind::MissingParent => "missing-parent",
            FindingKind::WrongSize => "wrong-size",
            FindingKind::BadImage => "bad-image",
            FindingKind::MissingLayer => "missing-layer",
            FindingKind::MissingParentImage => "missing-parent-image",
            FindingKind::BrokenContainer => "broken-container",
            FindingKind::DigestMismatch => "digest-mismatch",
            FindingKind::BadVolume => "bad-volume",
            FindingKind::MissingVolume => "missing-volume",
            FindingKind::StaleIndex => "stale-index",
            FindingKind::BadIndex => "bad-index",
            FindingKind::Note => "note",
        }
    }

    /// Whether this is damage (which no crash should leave) rather than
    /// the debris of interrupted work.
    pub fn is_corruption(self) -> bool {
        !matches!(
            self,
            FindingKind::Debris
                | FindingKind::OrphanDriverLayer
                | FindingKind::UnreferencedLayer
                | FindingKind::OrphanImageMetadata
                | FindingKind::OrphanMountRecord
                | FindingKind::DanglingLink
                | FindingKind::StaleIndex
                | FindingKind::Note
        )
    }
}

/// One thing `check` found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: FindingKind,
    /// What it is about: a layer, image, container, tag or path.
    pub object: String,
    pub message: String,
    /// Whether `repair` fixed it.
    pub repaired: bool,
}

/// What `check` found, in the order it looked.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// Problems not repaired (notes are not problems).
    pub fn remaining(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| !f.repaired && f.kind != FindingKind::Note)
    }

    /// Nothing left to fix.
    pub fn is_clean(&self) -> bool {
        self.remaining().next().is_none()
    }
}

/// How many times `check --repair` walks the store at most.
pub const REPAIR_PASSES: usize = 3;

impl Store {
    /// Checks the store (see the module docs); with `repair`, fixes what
    /// can be fixed without losing committed data.
    pub fn check(&self, repair: bool) -> Result<Report> {
        self.check_with(CheckOptions {
            repair,
            ..CheckOptions::default()
        })
    }

    /// [`Store::check`] with options. A repair can make another possible
    /// (a rebuilt `lower` lets a lost size be measured), so repair goes
    /// again, at most [`REPAIR_PASSES`] times in all, while a pass repairs
    /// something and leaves something; the report is the first pass's
    /// findings, marked repaired when a later pass fixed them or no longer
    /// found them, then what later passes found anew.
    pub fn check_with(&self, opts: CheckOptions) -> Result<Report> {
        let lock = if opts.repair {
            self.lock()?
        } else {
            self.read_lock()?
        };
        let mut report = self.check_pass(&lock, opts)?;
        let mut last = report.clone();
        for _ in 1..REPAIR_PASSES {
            if !opts.repair || last.is_clean() || !last.findings.iter().any(|f| f.repaired) {
                break;
            }
            last = self.check_pass(&lock, opts)?;
            let key = |f: &Finding| (f.kind, f.object.clone());
            let now: BTreeMap<_, &Finding> = last.findings.iter().map(|f| (key(f), f)).collect();
            for f in report.findings.iter_mut().filter(|f| !f.repaired) {
                if now.get(&key(f)).is_none_or(|n| n.repaired) {
                    f.repaired = f.kind != FindingKind::Note;
                }
            }
            let seen: BTreeSet<_> = report.findings.iter().map(key).collect();
            report.findings.extend(
                last.findings
                    .iter()
                    .filter(|f| !seen.contains(&key(f)))
                    .cloned(),
            );
        }
        Ok(report)
    }

    /// One walk over the store.
    fn check_pass(&self, lock: &Lock, opts: CheckOptions) -> Result<Report> {
        let mut c = Checker {
            store: self,
            lock,
            opts,
            report: Report::default(),
        };
        c.debris()?;
        let layers = c.layers()?;
        let images = c.images(&layers)?;
        c.tags(&images)?;
        c.driver_shared()?;
        c.containers(&layers, &images)?;
        c.mount_records()?;
        c.names()?;
        c.unreferenced_layers(&layers)?;
        c.driver_layers()?;
        c.driver_records(&layers)?;
        c.refs()?;
        // After the layers: no volume finding keeps a layer from being
        // collected.
        c.volumes()?;
        if opts.verify_digests {
            c.digests(&layers)?;
        }
        Ok(c.report)
    }
}

struct Checker<'s> {
    store: &'s Store,
    /// The walk and its repairs run under the store lock.
    lock: &'s Lock,
    opts: CheckOptions,
    report: Report,
}

/// Entries of a directory, by name (none when it does not exist): the
/// same listing the drivers' checks walk.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    strata_driver::check::entries(dir).map_err(from_driver)
}

/// A driver check helper's error as the store's, unchanged: the same
/// kind, message and source.
fn from_driver(e: strata_driver::Error) -> crate::Error {
    let kind = e.kind();
    let (msg, source) = e.into_parts();
    crate::Error::from_parts(kind, msg, source)
}

/// A container's record, read as the store reads it: capped, not
/// through a symlink, every ID and name validated, its ID `name`.
pub(crate) fn read_config(name: &str, dir: &Path) -> std::result::Result<Container, String> {
    let bytes = atomic::read_capped(&dir.join(record::CONFIG), atomic::RECORD_CAP)
        .map_err(|e| chain(&e))?;
    parse_config(name, &bytes)
}

/// Removes `p`, a file or a whole directory, not following a symlink;
/// nothing there is no error.
fn remove_path(p: &Path) -> Result<()> {
    strata_driver::check::remove_path(p).map_err(from_driver)
}

impl Checker<'_> {
    /// Records a finding; with `repair`, runs `fix` (when there is one)
    /// and records whether it worked.
    fn found(
        &mut self,
        kind: FindingKind,
        object: impl Into<String>,
        message: impl Into<String>,
        fix: Option<&dyn Fn() -> Result<()>>,
    ) {
        let mut message = message.into();
        let mut repaired = false;
        if let (true, Some(fix)) = (self.opts.repair, fix) {
            match fix() {
                Ok(()) => repaired = true,
                Err(e) => message = format!("{message}; repair failed: {}", chain(&e)),
            }
        }
        self.report.findings.push(Finding {
            kind,
            object: object.into(),
            message,
            repaired,
        });
    }

    /// Every container whose config reads (the broken ones are the
    /// containers check's to report).
    fn container_configs(&self) -> Result<Vec<Container>> {
        Ok(self.store.readable_containers()?.0)
    }

    fn note(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.found(FindingKind::Note, object, message, None);
    }

    fn layout(&self) -> &Layout {
        &self.store.layout
    }

    /// Corruption found so far and not repaired.
    fn corrupt(&self) -> bool {
        self.report
            .findings
            .iter()
            .any(|f| f.kind.is_corruption() && !f.repaired)
    }
}
