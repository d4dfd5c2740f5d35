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
//!   (`volumes/.<name>.creating`, `.removing`). Repair removes it.
//! - **corruption**, which no crash of ours should leave: layer metadata
//!   that does not add up, missing driver layers or parents, image configs
//!   that fail their digest, images whose chain reaches a missing layer
//!   or whose recorded parent image is gone, tags naming missing images,
//!   broken containers, wrong sizes, content that no longer rebuilds to
//!   its diffID, volume directories without a readable `meta.json` or
//!   (local ones) without `_data`, containers whose mounts name a volume
//!   that is gone. Repair fixes the kinds that lose nothing: it drops
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
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use strata_archive::Digest;

use crate::container::{parse_config, Container};
use crate::error::{ErrorKind, IoContext, Result};
use crate::ids::{CacheId, ContainerId, DriverLayer};
use crate::layer::{chain_id, chain_ids, Layer, TAR_SPLIT};
use crate::{atomic, Store};
use strata_image::diff_ids;

mod driver;
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
        let _lock = self.lock()?;
        let mut report = self.check_pass(opts)?;
        let mut last = report.clone();
        for _ in 1..REPAIR_PASSES {
            if !opts.repair || last.is_clean() || !last.findings.iter().any(|f| f.repaired) {
                break;
            }
            last = self.check_pass(opts)?;
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

    /// One walk over the store, under the caller's lock.
    fn check_pass(&self, opts: CheckOptions) -> Result<Report> {
        let mut c = Checker {
            store: self,
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
    opts: CheckOptions,
    report: Report,
}

/// Entries of a directory, by name (none when it does not exist).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("listing {}", dir.display())),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.ctx(|| format!("listing {}", dir.display()))?;
        out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
    }
    out.sort();
    Ok(out)
}

/// A container's record, read as the store reads it: capped, not
/// through a symlink, every ID and name validated, its ID `name`.
pub(crate) fn read_config(name: &str, dir: &Path) -> std::result::Result<Container, String> {
    let bytes = atomic::read_capped(&dir.join("config.json"), atomic::RECORD_CAP)
        .map_err(|e| chain_text(&e))?;
    parse_config(name, &bytes)
}

/// Whether a name is a temp file of [`atomic::write`].
fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn remove_path(p: &Path) -> Result<()> {
    let r = match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    r.ctx(|| format!("removing {}", p.display()))
}

/// Removes a record directory the way the store does: rename to
/// `-removing`, then delete.
fn remove_record(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let name = dir.file_name().expect("a record dir").to_string_lossy();
    let doomed = dir.with_file_name(format!("{name}-removing"));
    fs::rename(dir, &doomed).ctx(|| format!("removing {}", dir.display()))?;
    remove_path(&doomed)
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
                Err(e) => message = format!("{message}; repair failed: {}", chain_text(&e)),
            }
        }
        self.report.findings.push(Finding {
            kind,
            object: object.into(),
            message,
            repaired,
        });
    }

    /// `names/<name>` entries whose container is gone (a crash between
    /// removing a container's records and its name), and containers whose
    /// name is missing from the index.
    fn names(&mut self) -> Result<()> {
        let store = self.store;
        for (name, path) in entries(&store.root.join("names"))? {
            // What the file holds is a container ID, or the name names
            // no container: never a path to follow.
            let id = match atomic::read(&path).map(|s| ContainerId::parse(&s)) {
                Ok(Ok(id)) => id,
                Ok(Err(e)) => {
                    self.found(
                        FindingKind::Debris,
                        format!("name {name}"),
                        format!("names no container: {e}"),
                        Some(&|| remove_path(&path)),
                    );
                    continue;
                }
                // Unreadable now (EIO, EACCES): said, never removed.
                Err(e) if e.kind() == crate::ErrorKind::Io => {
                    self.found(
                        FindingKind::Note,
                        format!("name {name}"),
                        format!("cannot be read: {}", chain_text(&e)),
                        None,
                    );
                    continue;
                }
                Err(e) => {
                    self.found(
                        FindingKind::Debris,
                        format!("name {name}"),
                        format!("names no container: {}", chain_text(&e)),
                        Some(&|| remove_path(&path)),
                    );
                    continue;
                }
            };
            let live = match store.container(&id) {
                Ok(c) => c.name == name,
                // A container whose config is damaged is reported as
                // broken; its name stays with it.
                Err(_) => store.root.join("containers").join(&id).is_dir(),
            };
            if !live {
                self.found(
                    FindingKind::Debris,
                    format!("name {name}"),
                    "names no container",
                    Some(&|| remove_path(&path)),
                );
            }
        }
        for c in self.container_configs()? {
            let path = store.root.join("names").join(&c.name);
            if !path.exists() {
                let id = c.id.clone();
                self.found(
                    FindingKind::BrokenContainer,
                    format!("container {}", c.name),
                    "its name is missing from names/",
                    Some(&move || atomic::write(&path, id.as_bytes())),
                );
            }
        }
        Ok(())
    }

    /// Every container whose config reads (the broken ones are the
    /// containers check's to report).
    fn container_configs(&self) -> Result<Vec<Container>> {
        Ok(self.store.readable_containers()?.0)
    }

    fn note(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.found(FindingKind::Note, object, message, None);
    }

    /// Corruption found so far and not repaired.
    fn corrupt(&self) -> bool {
        self.report
            .findings
            .iter()
            .any(|f| f.kind.is_corruption() && !f.repaired)
    }

    fn image_dir(&self) -> PathBuf {
        self.store.image_dir()
    }

    /// Staging, `-removing` renames and temp files.
    fn debris(&mut self) -> Result<()> {
        let store = self.store;
        let image_dir = self.image_dir();
        let mut staged = Vec::new();
        for dir in [store.root.join("tmp"), image_dir.join("layerdb/tmp")] {
            // (A commit fills its staged layer with no store lock held.)
            staged.extend(
                entries(&dir)?
                    .into_iter()
                    .map(|(_, p)| p)
                    .filter(|p| !crate::is_live(p)),
            );
        }
        for dir in [
            image_dir.join("layerdb/sha256"),
            image_dir.join("layerdb/mounts"),
            store.root.join("containers"),
        ] {
            for (name, p) in entries(&dir)? {
                if name.ends_with("-removing") {
                    staged.push(p);
                }
            }
        }
        let first = self.report.findings.len();
        for p in &staged {
            self.found(
                FindingKind::Debris,
                p.display().to_string(),
                "left by interrupted work",
                None,
            );
        }
        // One cleanup, as `open` does it, covers them all.
        if self.opts.repair && !staged.is_empty() {
            if let Err(e) = store.clean_staging() {
                self.found(FindingKind::Note, "staging", chain_text(&e), None);
            }
            for (f, p) in self.report.findings[first..].iter_mut().zip(&staged) {
                f.repaired = fs::symlink_metadata(p).is_err();
            }
        }
        // Temp files of atomic writes, wherever metadata is written.
        let mut dirs = vec![image_dir.clone(), image_dir.join("imagedb/content/sha256")];
        for sub in [
            "imagedb/metadata/sha256",
            "layerdb/sha256",
            "layerdb/mounts",
        ] {
            dirs.extend(entries(&image_dir.join(sub))?.into_iter().map(|(_, p)| p));
        }
        dirs.extend(
            entries(&store.root.join("containers"))?
                .into_iter()
                .map(|(_, p)| p),
        );
        for dir in dirs.iter().filter(|d| d.is_dir()) {
            for (name, p) in entries(dir)? {
                if is_temp(&name) {
                    self.found(
                        FindingKind::Debris,
                        p.display().to_string(),
                        "temp file of an interrupted write",
                        Some(&|| remove_path(&p)),
                    );
                }
            }
        }
        Ok(())
    }

    /// Every layer that reads back, checked against its parent, its
    /// driver layer and its size.
    fn layers(&mut self) -> Result<BTreeMap<Digest, Layer>> {
        let store = self.store;
        let mut layers = BTreeMap::new();
        let mut sizeless = Vec::new();
        for (name, path) in entries(&self.image_dir().join("layerdb/sha256"))? {
            if name.ends_with("-removing") || is_temp(&name) {
                continue;
            }
            let Some(chain) = Digest::parse(&format!("sha256:{name}")) else {
                self.note(path.display().to_string(), "not a layer: ignored");
                continue;
            };
            match store.layer(&chain) {
                Ok(l) => {
                    layers.insert(chain, l);
                }
                Err(e) => match sizeless_layer(&path, &chain) {
                    Some(l) => sizeless.push(l),
                    None => self.found(FindingKind::BadLayer, chain.as_str(), chain_text(&e), None),
                },
            }
        }
        let measured = self.lost_sizes(sizeless, &mut layers);
        for l in layers.values() {
            let object = l.chain_id.as_str();
            let want = chain_id(l.parent.as_ref(), &l.diff_id);
            if want != l.chain_id {
                self.found(
                    FindingKind::BadLayer,
                    object,
                    format!("its parent and diffID give the chainID {want}"),
                    None,
                );
            }
            let parent = match &l.parent {
                Some(p) => match layers.get(p) {
                    Some(p) => Some(p),
                    None => {
                        self.found(
                            FindingKind::MissingParent,
                            object,
                            format!("its parent {p} is not in the store"),
                            None,
                        );
                        continue;
                    }
                },
                None => None,
            };
            if !store.driver.exists(&l.cache_id) {
                self.found(
                    FindingKind::MissingDriverLayer,
                    object,
                    format!(
                        "its content ({} layer {}) is gone",
                        store.driver.name(),
                        l.cache_id
                    ),
                    None,
                );
                continue;
            }
            if measured.contains(&l.chain_id) {
                continue;
            }
            let parent_cache = parent.map(|p| p.cache_id.as_str());
            match store.driver.diff_size(&l.cache_id, parent_cache) {
                Ok(n) if n == l.size => {}
                Ok(n) => {
                    let size_file = store
                        .image_dir()
                        .join("layerdb/sha256")
                        .join(l.chain_id.hex())
                        .join("size");
                    self.found(
                        FindingKind::WrongSize,
                        object,
                        format!("size says {} bytes, the content has {n}", l.size),
                        Some(&|| atomic::write(&size_file, n.to_string().as_bytes())),
                    );
                }
                Err(e) => self.note(object, format!("could not measure its size: {e}")),
            }
        }
        Ok(layers)
    }

    /// Layers whose only fault is their `size` (see [`sizeless_layer`]):
    /// measured as the wrong-size check measures a layer, and with repair
    /// the size is written back. The rest of the record reads, so the
    /// layer joins the others for the checks that follow (a lower file
    /// that keeps it from being measured is among them: a second repair
    /// then measures it). Returns their chainIDs: measured already.
    fn lost_sizes(
        &mut self,
        sizeless: Vec<(Layer, &str)>,
        layers: &mut BTreeMap<Digest, Layer>,
    ) -> BTreeSet<Digest> {
        let store = self.store;
        let cache_ids: BTreeMap<Digest, CacheId> = layers
            .values()
            .chain(sizeless.iter().map(|(l, _)| l))
            .map(|l| (l.chain_id.clone(), l.cache_id.clone()))
            .collect();
        let mut chains = BTreeSet::new();
        for (mut l, why) in sizeless {
            let object = l.chain_id.as_str().to_owned();
            let parent_cache = match &l.parent {
                None => Ok(None),
                Some(p) => cache_ids.get(p).map(|c| Some(c.as_str())).ok_or_else(|| {
                    format!("its parent {p}, to measure it over, is not in the store")
                }),
            };
            let size = parent_cache.and_then(|pc| {
                store
                    .driver
                    .diff_size(&l.cache_id, pc)
                    .map_err(|e| format!("its content cannot be measured: {}", chain_text(&e)))
            });
            match size {
                Ok(n) => {
                    let size_file = self
                        .image_dir()
                        .join("layerdb/sha256")
                        .join(l.chain_id.hex())
                        .join("size");
                    self.found(
                        FindingKind::BadLayer,
                        object,
                        format!("{why}; the content has {n} bytes"),
                        Some(&|| atomic::write(&size_file, n.to_string().as_bytes())),
                    );
                    l.size = n;
                }
                Err(e) => {
                    self.found(FindingKind::BadLayer, object, format!("{why}; {e}"), None);
                }
            }
            chains.insert(l.chain_id.clone());
            layers.insert(l.chain_id.clone(), l);
        }
        chains
    }

    /// Every image config, checked against its digest and its chain;
    /// returns the IDs of the images present (good or bad).
    fn images(&mut self, layers: &BTreeMap<Digest, Layer>) -> Result<BTreeSet<Digest>> {
        let store = self.store;
        let image_dir = self.image_dir();
        let mut ids = BTreeSet::new();
        for (name, _) in entries(&image_dir.join("imagedb/content/sha256"))? {
            let Some(id) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            ids.insert(id.clone());
            let config = match store.image_json(&id) {
                Ok(v) => v,
                Err(e) => {
                    self.found(FindingKind::BadImage, id.as_str(), chain_text(&e), None);
                    continue;
                }
            };
            let diffs = match diff_ids(&config) {
                Ok(d) => d,
                Err(why) => {
                    self.found(FindingKind::BadImage, id.as_str(), why, None);
                    continue;
                }
            };
            if let Some((i, c)) = chain_ids(&diffs)
                .iter()
                .enumerate()
                .find(|(_, c)| !layers.contains_key(c))
            {
                self.found(
                    FindingKind::MissingLayer,
                    id.as_str(),
                    format!("its layer {} (chainID {c}) is not in the store", i + 1),
                    None,
                );
            }
        }
        for (name, path) in entries(&image_dir.join("imagedb/metadata/sha256"))? {
            let known = Digest::parse(&format!("sha256:{name}")).is_some_and(|d| ids.contains(&d));
            if !known {
                self.found(
                    FindingKind::OrphanImageMetadata,
                    format!("sha256:{name}"),
                    "image metadata without the image's config",
                    Some(&|| remove_path(&path)),
                );
                continue;
            }
            self.parent_image(&name, &path.join("parent"), &ids);
        }
        Ok(ids)
    }

    /// An image's recorded parent (set by `commit`) must be in the store:
    /// `rmi` keeps a parent while it has children. The pointer is all
    /// that names a missing parent, so repair drops it; the image's own
    /// config and history keep everything it records.
    fn parent_image(&mut self, name: &str, file: &Path, ids: &BTreeSet<Digest>) {
        let Ok(parent) = atomic::read(file) else {
            return;
        };
        if Digest::parse(&parent).is_some_and(|p| ids.contains(&p)) {
            return;
        }
        self.found(
            FindingKind::MissingParentImage,
            format!("sha256:{name}"),
            format!("its parent image {parent} is not in the store"),
            Some(&|| remove_path(file)),
        );
    }

    /// Tags that name images the store lacks.
    fn tags(&mut self, images: &BTreeSet<Digest>) -> Result<()> {
        let store = self.store;
        let repos = match store.repositories() {
            Ok(r) => r,
            Err(e) => {
                self.found(
                    FindingKind::BadImage,
                    "repositories.json",
                    chain_text(&e),
                    None,
                );
                return Ok(());
            }
        };
        for (name, tags) in &repos {
            for (tag, id) in tags {
                if Digest::parse(id).is_some_and(|d| images.contains(&d)) {
                    continue;
                }
                let untag = || {
                    let mut repos = store.repositories()?;
                    if let Some(m) = repos.get_mut(name) {
                        m.remove(tag);
                        if m.is_empty() {
                            repos.remove(name);
                        }
                    }
                    store.save_repositories(&repos)
                };
                self.found(
                    FindingKind::DanglingTag,
                    tag.as_str(),
                    format!("names {id}, which is not in the store"),
                    Some(&untag),
                );
            }
        }
        Ok(())
    }

    /// Every container: its config, mount record, layers, parent, image.
    fn containers(
        &mut self,
        layers: &BTreeMap<Digest, Layer>,
        images: &BTreeSet<Digest>,
    ) -> Result<()> {
        let store = self.store;
        let driver = store.driver.as_ref();
        for (name, dir) in entries(&store.root.join("containers"))? {
            if name.ends_with("-removing") {
                continue;
            }
            // Parsed and validated as everywhere else: an ID that is not
            // its directory's name, or any malformed ID or name in it,
            // makes the record broken, and nothing in it is used.
            let read =
                read_config(&name, &dir).and_then(|c| store.check_volume_sources(&c).map(|()| c));
            let c: Container = match read {
                Ok(c) => c,
                Err(e) => {
                    self.found(
                        FindingKind::BrokenContainer,
                        name,
                        format!("config.json: {e}"),
                        None,
                    );
                    continue;
                }
            };
            let record = self.image_dir().join("layerdb/mounts").join(&c.id);
            let mut why = Vec::new();
            let mut record_ok = true;
            for (file, want) in [
                ("mount-id", c.mount_id.to_string()),
                ("init-id", c.init_id()),
            ] {
                match atomic::read(&record.join(file)) {
                    Ok(got) if got == want => {}
                    Ok(got) => {
                        record_ok = false;
                        why.push(format!("its mount record's {file} is {got}, not {want}"));
                    }
                    Err(_) => {
                        record_ok = false;
                        why.push(format!("its mount record has no {file}"));
                    }
                }
            }
            let rw = driver.exists(&c.mount_id);
            let init = driver.exists(&c.init_id());
            if !rw {
                why.push(format!("its read-write layer {} is gone", c.mount_id));
            }
            if !init {
                why.push(format!("its init layer {} is gone", c.init_id()));
            }
            let parent_ok = c
                .parent_layer
                .as_ref()
                .is_none_or(|p| layers.contains_key(p));
            if let Some(p) = c.parent_layer.as_ref().filter(|_| !parent_ok) {
                why.push(format!("its image layer {p} is not in the store"));
            }
            if !images.contains(&c.image) {
                why.push(format!("its image {} is not in the store", c.image));
            }
            if why.is_empty() {
                continue;
            }
            let object = format!("{} ({})", c.name, c.id);
            let mut message = why.join("; ");
            let parent_cache = c
                .parent_layer
                .as_ref()
                .and_then(|p| layers.get(p))
                .map(|l| l.cache_id.clone());
            // The init layer holds only what `create` writes: it can be
            // made again on the image's top layer, but not under a view
            // that is mounted (its lower chain would change beneath it).
            let init_blocked = if init || !rw {
                None
            } else if parent_cache.as_ref().is_some_and(|p| !driver.exists(p)) {
                Some("its image layer's content is gone")
            } else if !parent_ok {
                Some("its image layer is not in the store")
            } else if driver.in_use(&c.mount_id).unwrap_or(true) {
                Some("the container is mounted")
            } else {
                None
            };
            let cdir = dir.clone();
            let drop_records = || {
                if driver.exists(&c.init_id()) {
                    driver
                        .remove(&c.init_id())
                        .map_err(|e| crate::Error::driver("removing the init layer", e))?;
                }
                remove_record(&record)?;
                remove_record(&cdir)
            };
            let rewrite_record = || {
                let staging = store.staging()?;
                atomic::write(&staging.join("mount-id"), c.mount_id.as_bytes())?;
                atomic::write(&staging.join("init-id"), c.init_id().as_bytes())?;
                if let Some(p) = &c.parent_layer {
                    atomic::write(&staging.join("parent"), p.as_str().as_bytes())?;
                }
                remove_record(&record)?;
                fs::rename(&staging, &record)
                    .ctx(|| format!("writing the mount record of {}", c.id))
            };
            let remake_init = || {
                // Named by staging until it is whole and durable: a crash
                // midway leaves debris the next open removes, and the next
                // check makes it again.
                let staging = store.staging()?;
                atomic::write(&staging.join("init-id"), c.init_id().as_bytes())?;
                // What is left of the old one (a directory without its
                // `diff`) holds nothing but what `create` wrote.
                store.remove_stale_layer(&c.init_id())?;
                store.make_init_layer(&c, parent_cache.as_deref())?;
                store.sync_driver()?;
                remove_path(&staging)
            };
            let remake = || {
                if !init {
                    remake_init()?;
                }
                if !record_ok {
                    rewrite_record()?;
                }
                Ok(())
            };
            // Without its read-write layer the container has nothing left
            // to lose; with that layer whole, the init layer and the record
            // are made again from what the container's config says. The
            // read-write layer itself is never touched (a `lower` naming
            // the old init layer is the overlay2 check's to rebuild).
            let fix: Option<&dyn Fn() -> Result<()>> = if !rw {
                Some(&drop_records)
            } else if parent_ok && images.contains(&c.image) && init_blocked.is_none() {
                Some(&remake)
            } else {
                None
            };
            if let (true, Some(blocked)) = (self.opts.repair, init_blocked) {
                message.push_str(&format!("; the init layer is not made again: {blocked}"));
            }
            self.found(FindingKind::BrokenContainer, object, message, fix);
        }
        Ok(())
    }

    /// Mount records whose container is gone.
    fn mount_records(&mut self) -> Result<()> {
        let store = self.store;
        for (name, dir) in entries(&self.image_dir().join("layerdb/mounts"))? {
            if name.ends_with("-removing") || store.root.join("containers").join(&name).is_dir() {
                continue;
            }
            let fix = || {
                // Only what parses as a driver ID is removed; a malformed
                // one names nothing (and its layer, if any, is an orphan
                // the next walk finds).
                for f in ["mount-id", "init-id"] {
                    if let Some(id) = atomic::read(&dir.join(f))
                        .ok()
                        .and_then(|id| DriverLayer::parse(f, &id).ok())
                    {
                        store.remove_stale_layer(&id.driver_id())?;
                    }
                }
                remove_record(&dir)
            };
            self.found(
                FindingKind::OrphanMountRecord,
                name,
                "a mount record without its container",
                Some(&fix),
            );
        }
        Ok(())
    }

    /// Layers nothing reaches; collected (as `rmi` would) only when the
    /// store is otherwise sound, so that a layer reached only from a
    /// damaged image or container is never taken for garbage.
    fn unreferenced_layers(&mut self, layers: &BTreeMap<Digest, Layer>) -> Result<()> {
        let store = self.store;
        let mut roots: Vec<Digest> = Vec::new();
        for (name, _) in entries(&self.image_dir().join("imagedb/content/sha256"))? {
            let Some(id) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            if let Ok(ids) = store.image_json(&id).map(|v| diff_ids(&v)) {
                roots.extend(ids.ok().and_then(|d| chain_ids(&d).pop()));
            }
        }
        for c in self.container_configs()? {
            roots.extend(c.parent_layer);
        }
        let mut live = BTreeSet::new();
        for r in roots {
            let mut cur = Some(r);
            while let Some(c) = cur.filter(|c| live.insert(c.clone())) {
                cur = layers.get(&c).and_then(|l| l.parent.clone());
            }
        }
        let dead: Vec<&Layer> = layers
            .values()
            .filter(|l| !live.contains(&l.chain_id))
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        let sound = !self.corrupt();
        let removed = if self.opts.repair && sound {
            store.collect_layers()?
        } else {
            Vec::new()
        };
        for l in dead {
            let repaired = removed.contains(&l.chain_id);
            let mut message = "no image and no container reaches it".to_owned();
            if self.opts.repair && !sound {
                message.push_str("; left in place while the store has corruption");
            }
            self.report.findings.push(Finding {
                kind: FindingKind::UnreferencedLayer,
                object: l.chain_id.as_str().to_owned(),
                message,
                repaired,
            });
        }
        Ok(())
    }

    /// Rebuilds every layer's tar and compares with its diffID.
    fn digests(&mut self, layers: &BTreeMap<Digest, Layer>) -> Result<()> {
        let store = self.store;
        for l in layers.values() {
            if !store.driver.exists(&l.cache_id) {
                continue;
            }
            let object = l.chain_id.as_str();
            let dir = self
                .image_dir()
                .join("layerdb/sha256")
                .join(l.chain_id.hex());
            if dir.join(TAR_SPLIT).is_file() {
                match store.layer_tar(l, &mut io::sink()) {
                    Ok(d) if d == l.diff_id => {}
                    Ok(d) => self.found(
                        FindingKind::DigestMismatch,
                        object,
                        format!("its content rebuilds to {d}, not its diffID {}", l.diff_id),
                        None,
                    ),
                    Err(e) => self.found(
                        FindingKind::DigestMismatch,
                        object,
                        format!("its content no longer rebuilds: {}", chain_text(&e)),
                        None,
                    ),
                }
                continue;
            }
            // Without a record the only check is a fresh diff, whose tar
            // our writer normalises: a different digest is no proof.
            let parent_cache = l
                .parent
                .as_ref()
                .and_then(|p| layers.get(p))
                .map(|p| p.cache_id.as_str());
            match store.driver.diff(&l.cache_id, parent_cache, &mut io::sink()) {
                Ok(r) if r.diff_id == l.diff_id => {}
                Ok(r) => self.note(
                    object,
                    format!(
                        "no tar-split record; a fresh diff gives {} (not {}), which a normalised tar may explain",
                        r.diff_id, l.diff_id
                    ),
                ),
                Err(e) => self.note(object, format!("no tar-split record, and diffing failed: {e}")),
            }
        }
        Ok(())
    }
}

/// The record of a layer whose only fault is its `size` file (missing,
/// or not a number), and what is wrong with it; `None` when anything else
/// is missing or unreadable too.
fn sizeless_layer(dir: &Path, chain: &Digest) -> Option<(Layer, &'static str)> {
    let why = match atomic::read(&dir.join("size")) {
        Err(e) if e.kind() == ErrorKind::NotFound => "its size file is missing",
        Ok(s) if s.parse::<u64>().is_err() => "its size file does not hold a number",
        _ => return None,
    };
    let parent = match atomic::read(&dir.join("parent")) {
        Ok(p) => Some(Digest::parse(&p)?),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(_) => return None,
    };
    let layer = Layer {
        chain_id: chain.clone(),
        diff_id: Digest::parse(&atomic::read(&dir.join("diff")).ok()?)?,
        cache_id: CacheId::parse(&atomic::read(&dir.join("cache-id")).ok()?).ok()?,
        size: 0,
        parent,
    };
    Some((layer, why))
}

/// An error and its sources, `: `-joined.
fn chain_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
