//! The reference index: what holds each layer, and which images were
//! committed from each image, kept on disk so that `rmi` (and the
//! collection of the layers an image or a container leaves) reads what
//! it touches, not every image and layer of the store. A daemonless
//! store keeps no reference counts in memory; this is the record it
//! keeps instead.
//!
//! ```text
//! image/<driver>/refs/
//!   complete                         written last: the index covers the store
//!   layers/<chain-hex>/image-<hex>   image <hex>'s top layer is this layer
//!   layers/<chain-hex>/layer-<hex>   layer <hex> is made on this layer
//!   images/<hex>/<child-hex>         image <child-hex> was committed from image <hex>
//! ```
//!
//! Each entry is an empty file, one per edge: adding one is creating it
//! (made durable by an fsync of its directory, or by the flush of the
//! change it is part of), removing one an unlink, and no record grows with its siblings
//! to be rewritten (a base layer under a thousand images has a thousand
//! entries, each touched only with its own layer). Adding is idempotent,
//! so an interrupted change can simply be made again.
//!
//! # Crashes: too many, never too few
//!
//! An entry is written (durably) before what it describes is published,
//! and removed after what it describes is gone. A crash between the two
//! leaves an entry too many, never one too few, so a reader takes an
//! entry as a claim and checks that what it names is there (one `stat`)
//! before it keeps anything for it. `strata check` compares the index
//! with a walk of the store: entries too many are `stale-index`
//! (debris), entries missing or malformed are `bad-index` (corruption);
//! `check --repair` rebuilds the index from the walk.
//!
//! Entries are read as records are (`atomic::read_capped`'s rules): a
//! name that is not an ID of the kind the directory holds, an entry that
//! is not an empty regular file of the caller's, or a directory that is
//! not a real directory is corrupt, refused before the command changes
//! anything.
//!
//! # What is not in it
//!
//! Containers: what collection keeps for them is read from their records
//! (bounded by the containers, not the images), so `create` writes
//! nothing here.
//!
//! # Stores without it
//!
//! A new store is indexed from the start. A store made before the index
//! (no `complete`) is indexed by the first command that needs it (one
//! walk); until then, changes leave it alone. A store opened read-only
//! (a copy of Docker's data root) never gets one. Every change stamps
//! `complete` after it: a store changed since by a strata from before
//! the index (which writes no entries) is indexed again ([`covers`]).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata_archive::Digest;
use strata_sys::atomic::Batch;

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::layer::chain_ids;
use crate::layout::{record, Layout};
use crate::lock::Lock;
use crate::{atomic, Store};

/// `refs/complete`.
const COMPLETE: &str = "complete";
const LAYERS: &str = "layers";
const IMAGES: &str = "images";

/// What holds a layer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Holder {
    /// The image whose top layer it is.
    Image(Digest),
    /// A layer made on it.
    Layer(Digest),
}

impl Holder {
    fn entry(&self) -> String {
        match self {
            Holder::Image(d) => format!("image-{}", d.hex()),
            Holder::Layer(d) => format!("layer-{}", d.hex()),
        }
    }

    fn parse(name: &str) -> Option<Holder> {
        let (kind, hex) = name.split_once('-')?;
        let d = parse_hex(hex)?;
        match kind {
            "image" => Some(Holder::Image(d)),
            "layer" => Some(Holder::Layer(d)),
            _ => None,
        }
    }

    /// Whether what it names is in the store.
    fn is_there(&self, layout: &Layout) -> bool {
        match self {
            Holder::Image(d) => layout.image_config(d).is_file(),
            Holder::Layer(d) => layout.layer(d).is_dir(),
        }
    }
}

fn parse_hex(hex: &str) -> Option<Digest> {
    Digest::parse(&format!("sha256:{hex}"))
}

/// Whether the store has an index (kept by every change from now on).
pub(crate) fn indexed(layout: &Layout) -> bool {
    layout.refs().join(COMPLETE).is_file()
}

/// Marks the index as following the store as it is now, after a change
/// to the directories [`covers`] compares: `complete`'s mtime is set to
/// the time of day, which is never behind the kernel's coarser clock
/// that dated the change. Lost in a crash, it only makes the next
/// reader rebuild.
pub(crate) fn stamp(layout: &Layout, _: &Lock) -> Result<()> {
    if !indexed(layout) {
        return Ok(());
    }
    let p = layout.refs().join(COMPLETE);
    fs::File::options()
        .write(true)
        .open(&p)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .ctx(|| format!("stamping {}", p.display()))
}

/// Whether the index still covers the store: no layer, image config or
/// image metadata came or went since it was last stamped. A change made
/// without it (by a strata from before the index, on a store a newer one
/// had indexed) dates those directories after `complete`: then it is
/// rebuilt before anything trusts it.
fn covers(layout: &Layout) -> bool {
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(stamped) = mtime(&layout.refs().join(COMPLETE)) else {
        return false;
    };
    [
        layout.layers(),
        layout.image_configs(),
        layout.image_metadata_dir(),
    ]
    .iter()
    .all(|d| mtime(d).is_some_and(|t| t <= stamped))
}

/// Makes the entry `name` in `dir` when the store is indexed: durably
/// (one fsync, of `dir`: [`strata_sys::atomic::create_empty`]), or with
/// `batch`, made, not flushed, and noted in the batch, whose flush makes
/// it durable before anything the batch publishes.
fn add(layout: &Layout, _: &Lock, dir: &Path, name: &str, batch: Option<&mut Batch>) -> Result<()> {
    if !indexed(layout) {
        return Ok(());
    }
    // Never through a symlink planted in the index: each directory on the
    // way is a real one, or not there yet.
    for d in [dir.parent().and_then(Path::parent), dir.parent(), Some(dir)]
        .into_iter()
        .flatten()
    {
        match fs::symlink_metadata(d) {
            Ok(md) if !md.is_dir() => return Err(damaged(d, Some("is not a directory"))),
            _ => {}
        }
    }
    let parent = dir.parent().expect("an index directory has a parent");
    let made = !dir.is_dir();
    if made {
        atomic::make_dirs(dir)?;
    }
    let path = dir.join(name);
    match batch {
        Some(batch) => {
            strata_sys::fs::write_nofollow(&path, b"")
                .ctx(|| format!("writing {}", path.display()))?;
            if made {
                batch.touched(parent);
            }
            batch.touched(dir);
            Ok(())
        }
        None => {
            if made {
                atomic::sync_dir(parent).ctx(|| format!("syncing {}", parent.display()))?;
            }
            strata_sys::atomic::create_empty(&path).ctx(|| format!("writing {}", path.display()))
        }
    }
}

/// Removes the entry `name` from `dir`. Not flushed: an entry a crash
/// brings back is one too many, which readers allow for.
fn remove(layout: &Layout, _: &Lock, dir: &Path, name: &str) -> Result<()> {
    if !indexed(layout) {
        return Ok(());
    }
    match fs::remove_file(dir.join(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("removing {}", dir.join(name).display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// Removes the index directory of an object that is gone, with any
/// entries left in it (too many, by a crash).
fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", dir.display()), e))
        }
        _ => Ok(()),
    }
}

/// Records that layer `chain` is made on `parent`: before it is
/// published, alone or as part of `batch` (see [`add`]).
pub(crate) fn add_layer(
    layout: &Layout,
    lock: &Lock,
    chain: &Digest,
    parent: &Digest,
    batch: Option<&mut Batch>,
) -> Result<()> {
    add(
        layout,
        lock,
        &layout.layer_refs(parent),
        &Holder::Layer(chain.clone()).entry(),
        batch,
    )
}

/// Forgets layer `chain` (made on `parent`, if any): after it is gone.
pub(crate) fn remove_layer(
    layout: &Layout,
    lock: &Lock,
    chain: &Digest,
    parent: Option<&Digest>,
) -> Result<()> {
    if let Some(p) = parent {
        remove(
            layout,
            lock,
            &layout.layer_refs(p),
            &Holder::Layer(chain.clone()).entry(),
        )?;
    }
    remove_dir(&layout.layer_refs(chain))
}

/// What the index records of an image: its top layer (none for an
/// image of no layers) and the image it was committed from.
pub(crate) struct ImageEdges<'a> {
    pub id: &'a Digest,
    pub top: Option<&'a Digest>,
    pub parent: Option<&'a Digest>,
}

impl ImageEdges<'_> {
    /// Each entry: its directory and name.
    fn entries(&self, layout: &Layout) -> Vec<(PathBuf, String)> {
        let on_top = self
            .top
            .map(|t| (layout.layer_refs(t), Holder::Image(self.id.clone()).entry()));
        let under_parent = self
            .parent
            .map(|p| (layout.image_children(p), self.id.hex().to_owned()));
        on_top.into_iter().chain(under_parent).collect()
    }

    /// Records the image, as part of `batch` (see [`add`]): before
    /// its config is written.
    pub(crate) fn add_in(&self, layout: &Layout, lock: &Lock, batch: &mut Batch) -> Result<()> {
        for (dir, name) in self.entries(layout) {
            add(layout, lock, &dir, &name, Some(batch))?;
        }
        Ok(())
    }

    /// Forgets the image: after its config is gone.
    pub(crate) fn remove(&self, layout: &Layout, lock: &Lock) -> Result<()> {
        for (dir, name) in self.entries(layout) {
            remove(layout, lock, &dir, &name)?;
        }
        if indexed(layout) {
            remove_dir(&layout.image_children(self.id))?;
        }
        Ok(())
    }
}

/// The entries of the index directory `dir`, each checked (see the
/// module docs) and parsed by `parse`, until `enough` says so of one;
/// none when it does not exist.
fn read<T>(
    dir: &Path,
    parse: impl Fn(&str) -> Option<T>,
    mut enough: impl FnMut(&T) -> bool,
) -> Result<Vec<T>> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
        Ok(md) if !md.is_dir() => return Err(damaged(dir, Some("is not a directory"))),
        Ok(_) => {}
    }
    let me = strata_sys::fs::euid();
    let mut out = Vec::new();
    for e in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let e = e.ctx(|| format!("listing {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let md = e
            .metadata()
            .ctx(|| format!("reading {}", e.path().display()))?;
        match (entry_problem(&md, me), parse(&name)) {
            (None, Some(v)) => {
                let stop = enough(&v);
                out.push(v);
                if stop {
                    break;
                }
            }
            (bad, _) => return Err(damaged(&e.path(), bad)),
        }
    }
    Ok(out)
}

/// What is wrong with an entry whose metadata is `md`, if anything.
fn entry_problem(md: &fs::Metadata, me: u32) -> Option<&'static str> {
    if !md.is_file() {
        Some("is not a regular file")
    } else if md.len() != 0 {
        Some("is not empty")
    } else if md.uid() != me {
        Some("is not owned by the user who runs strata")
    } else {
        None
    }
}

/// The error for a damaged entry at `path`.
fn damaged(path: &Path, problem: Option<&str>) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!(
            "{} {}: the reference index is damaged (strata check --repair rebuilds it)",
            path.display(),
            problem.unwrap_or("names nothing the index records")
        ),
    )
}

/// What holds layer `chain`, as recorded (possibly too many), every
/// entry checked.
pub(crate) fn holders(layout: &Layout, chain: &Digest) -> Result<Vec<Holder>> {
    read(&layout.layer_refs(chain), Holder::parse, |_| false)
}

/// Whether anything recorded as holding `chain` is still there. Reads
/// entries until one is: a layer under many others costs one entry, not
/// one per sibling.
pub(crate) fn is_held(layout: &Layout, chain: &Digest) -> Result<bool> {
    let held = |h: &Holder| h.is_there(layout);
    Ok(read(&layout.layer_refs(chain), Holder::parse, held)?
        .last()
        .is_some_and(held))
}

/// The images recorded as committed from `id` that are still there.
pub(crate) fn children(layout: &Layout, id: &Digest) -> Result<Vec<Digest>> {
    let mut out: Vec<Digest> = read(&layout.image_children(id), parse_hex, |_| false)?
        .into_iter()
        .filter(|c| layout.image_config(c).is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// The index as paths relative to `refs/` (`layers/<hex>/image-<hex>`).
pub(crate) type Entries = BTreeSet<PathBuf>;

/// An index on disk, read for `check`: its entries, and what in it is
/// malformed.
pub(crate) struct OnDisk {
    pub entries: Entries,
    /// Entries too many left by interrupted writes (temp files).
    pub temp: Vec<PathBuf>,
    pub malformed: Vec<String>,
}

/// Reads the whole index (for `check`), every entry checked.
pub(crate) fn on_disk(layout: &Layout) -> Result<OnDisk> {
    let root = layout.refs();
    let mut out = OnDisk {
        entries: Entries::new(),
        temp: Vec::new(),
        malformed: Vec::new(),
    };
    for e in fs::read_dir(&root).ctx(|| format!("listing {}", root.display()))? {
        let e = e.ctx(|| format!("listing {}", root.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        match (name.as_str(), is_dir) {
            (COMPLETE, false) => continue,
            (LAYERS, true) => kind(&e.path(), LAYERS, |n| Holder::parse(n).is_some(), &mut out)?,
            (IMAGES, true) => kind(&e.path(), IMAGES, |n| parse_hex(n).is_some(), &mut out)?,
            _ if strata_driver::check::is_temp(&name) => out.temp.push(e.path()),
            _ => out
                .malformed
                .push(format!("{} is not part of the index", e.path().display())),
        }
    }
    Ok(out)
}

/// One half of the index (`layers/` or `images/`) into `out`.
fn kind(dir: &Path, rel: &str, entry_ok: impl Fn(&str) -> bool, out: &mut OnDisk) -> Result<()> {
    for e in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let e = e.ctx(|| format!("listing {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let me = strata_sys::fs::euid();
        if !is_dir || parse_hex(&name).is_none() {
            out.malformed
                .push(format!("{} names no object", e.path().display()));
            continue;
        }
        let sub = e.path();
        for f in fs::read_dir(&sub).ctx(|| format!("listing {}", sub.display()))? {
            let f = f.ctx(|| format!("listing {}", sub.display()))?;
            let n = f.file_name().to_string_lossy().into_owned();
            if strata_driver::check::is_temp(&n) {
                out.temp.push(f.path());
                continue;
            }
            let md = f
                .metadata()
                .ctx(|| format!("reading {}", f.path().display()))?;
            match entry_problem(&md, me) {
                None if entry_ok(&n) => {
                    out.entries.insert(Path::new(rel).join(&name).join(&n));
                }
                bad => out.malformed.push(damaged(&f.path(), bad).to_string()),
            }
        }
    }
    Ok(())
}

impl Store {
    /// The index a walk of the store gives: what `check` compares the
    /// index with and what a rebuild writes. An edge to what is not in
    /// the store holds nothing, and is left out (what is missing is
    /// `check`'s to report). Fails when an image or a layer does not read
    /// back: the index must not miss what it holds.
    pub(crate) fn expected_refs(&self) -> Result<Entries> {
        let mut out = Entries::new();
        let layer_there = |c: &Digest| self.layout.layer(c).is_dir();
        for l in self.layers.layers()? {
            if let Some(p) = l.parent.as_ref().filter(|p| layer_there(p)) {
                out.insert(
                    Path::new(LAYERS)
                        .join(p.hex())
                        .join(Holder::Layer(l.chain_id.clone()).entry()),
                );
            }
        }
        for img in self.images.images()? {
            if let Some(top) = chain_ids(&img.diff_ids).pop().filter(layer_there) {
                out.insert(
                    Path::new(LAYERS)
                        .join(top.hex())
                        .join(Holder::Image(img.id.clone()).entry()),
                );
            }
            let parent = atomic::read(&self.layout.image_metadata(&img.id).join(record::PARENT))
                .ok()
                .and_then(|p| Digest::parse(&p))
                .filter(|p| self.layout.image_config(p).is_file());
            if let Some(p) = parent {
                out.insert(Path::new(IMAGES).join(p.hex()).join(img.id.hex()));
            }
        }
        Ok(out)
    }

    /// Indexes a store made before the index, once, on the first command
    /// that needs it; and again a store changed without it since.
    pub(crate) fn ensure_refs(&self, lock: &Lock) -> Result<()> {
        if indexed(&self.layout) && covers(&self.layout) {
            return Ok(());
        }
        self.rebuild_refs(lock)
    }

    /// Writes the index afresh from a walk of the store: assembled beside
    /// the old one, made durable, then put in its place. A crash leaves
    /// no `refs/complete`, so the next command that needs it rebuilds.
    pub(crate) fn rebuild_refs(&self, _: &Lock) -> Result<()> {
        let want = self.expected_refs()?;
        let refs = self.layout.refs();
        let new = refs.with_file_name("refs.new");
        let old = refs.with_file_name("refs.old");
        remove_dir(&new)?;
        remove_dir(&old)?;
        atomic::make_dirs(&new)?;
        for e in &want {
            let p = new.join(e);
            atomic::make_dirs(p.parent().expect("an entry is in a directory"))?;
            atomic::write_staged(&p, b"")?;
        }
        atomic::write_staged(&new.join(COMPLETE), b"")?;
        if want.is_empty() {
            atomic::sync_dir(&new).ctx(|| format!("syncing {}", new.display()))?;
        } else {
            // One flush for every entry, as staged layers are made durable.
            self.layers.sync_driver()?;
        }
        if refs.exists() {
            fs::rename(&refs, &old).ctx(|| format!("replacing {}", refs.display()))?;
        }
        fs::rename(&new, &refs).ctx(|| format!("replacing {}", refs.display()))?;
        let parent = self.layout.image_dir();
        atomic::sync_dir(parent).ctx(|| format!("syncing {}", parent.display()))?;
        remove_dir(&old)
    }
}
