//! The driver side of `strata check`: a driver that knows its own
//! on-disk layout checks it and repairs it ([`Check`], which a driver
//! returns from [`Driver::checker`](crate::Driver::checker)), so that the
//! store never names a driver's directories. The store says what it knows
//! (which layers it names, each layer's parents), the driver says what
//! does not add up as [`Finding`]s, and the store folds them into its
//! report and decides which to repair.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// A layer's parents as the store knows them (driver ids, the parent
/// first, down to the base layer), or why the store cannot tell them.
pub type Parents = std::result::Result<Vec<String>, String>;

/// What a driver finding is about; the store reports each under a kind of
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindingKind {
    /// A layer left half-made or half-removed (`-creating`, `-removing`).
    Debris,
    /// An entry shared between layers that leads nowhere (overlay2's `l/`
    /// link to nothing).
    DanglingLink,
    /// A layer whose own link is missing, points elsewhere or holds
    /// something that is not a link name: the layers above it cannot be
    /// mounted.
    MissingLink,
    /// A layer whose record of the layers below it is missing, names
    /// something that is not there, or is not what its parents give.
    BrokenLower,
    /// A layer whose stored content is not what was written (an erofs
    /// image changed on disk): not repairable in place.
    Damaged,
    /// Worth knowing; not a problem.
    Note,
}

/// A fix a finding offers, carried out by [`Check::repair`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// Remove a file, symlink or directory tree.
    Remove(PathBuf),
    /// Make `link` a symlink to `target`, replacing what is there.
    Relink { link: PathBuf, target: PathBuf },
    /// Write `content` to `file` atomically (temp file, fsync, rename).
    Write { file: PathBuf, content: String },
}

/// One thing a driver's check found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: FindingKind,
    /// What it is about: a layer id or a path.
    pub object: String,
    pub message: String,
    /// Why it cannot be repaired, when it could be in principle (said
    /// after the message when repairing, e.g. `not rebuilt: ...`).
    pub blocked: Option<String>,
    /// The fix, when there is one that loses nothing.
    pub repair: Option<Repair>,
}

impl Finding {
    pub fn new(kind: FindingKind, object: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            kind,
            object: object.into(),
            message: message.into(),
            blocked: None,
            repair: None,
        }
    }

    pub fn with_repair(mut self, repair: Repair) -> Self {
        self.repair = Some(repair);
        self
    }

    pub fn blocked(mut self, why: impl Into<String>) -> Self {
        self.blocked = Some(why.into());
        self
    }
}

/// A layer directory in a driver's home.
#[derive(Debug, Clone)]
pub struct LayerDir {
    pub id: String,
    /// Where it is, for the report.
    pub path: PathBuf,
}

/// What a driver's home holds: its layers, and the debris of creates and
/// removes that did not finish (as findings).
#[derive(Debug, Default)]
pub struct Listing {
    pub layers: Vec<LayerDir>,
    pub debris: Vec<Finding>,
}

/// A driver that checks and repairs its own layout. The store calls, in
/// this order: [`Check::check_shared`] before it makes any layer again,
/// [`Check::list`] to find the layers nothing names, then
/// [`Check::check_layers`] with the parents it knows of each layer.
///
/// The checks hand each finding to `found` as they go, and the store
/// repairs it there and then (when repairing, and when it may): a check
/// that builds on an earlier one (overlay2's `lower` resolves through the
/// `l/` links checked before it) sees the earlier repairs.
pub trait Check {
    /// The layers in the home, and the debris.
    fn list(&self) -> Result<Listing>;

    /// What layers share (overlay2's `l/` links): looked at before the
    /// store makes a lost layer again, since an entry left by the lost
    /// one would otherwise lead to the new one, as a second name for it.
    fn check_shared(&self, found: &mut dyn FnMut(Finding)) -> Result<()> {
        let _ = found;
        Ok(())
    }

    /// Each layer's own records, against `parents` (the layers the store
    /// has published). Others are work a crash interrupted or orphans,
    /// reported as such by the store: their records may be half written,
    /// and are not corruption.
    fn check_layers(
        &self,
        parents: &BTreeMap<String, Parents>,
        found: &mut dyn FnMut(Finding),
    ) -> Result<()> {
        let _ = (parents, found);
        Ok(())
    }

    /// Carries out the repair `finding` offers (nothing when it offers
    /// none).
    fn repair(&self, finding: &Finding) -> Result<()> {
        match &finding.repair {
            None => Ok(()),
            Some(r) => apply(r),
        }
    }
}

/// Carries out one repair.
pub fn apply(repair: &Repair) -> Result<()> {
    match repair {
        Repair::Remove(p) => remove_path(p),
        Repair::Relink { link, target } => {
            remove_path(link)?;
            std::os::unix::fs::symlink(target, link).ctx(|| format!("linking {}", link.display()))
        }
        Repair::Write { file, content } => write_atomic(file, content.as_bytes()),
    }
}

/// Entries of `dir` as (name, path), sorted by name; none when `dir`
/// does not exist.
pub fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
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

/// The layers under `dir` and the debris among them, leaving out the
/// driver's own entries (`own`, and the probe's `probe*`).
pub(crate) fn list_layers(dir: &Path, own: &[&str]) -> Result<Listing> {
    let mut out = Listing::default();
    for (name, path) in entries(dir)? {
        if own.contains(&name.as_str()) || name.starts_with("probe") {
            continue;
        }
        if name.ends_with("-removing") || name.ends_with("-creating") {
            out.debris.push(
                Finding::new(
                    FindingKind::Debris,
                    path.display().to_string(),
                    "a driver layer left half-made or half-removed",
                )
                .with_repair(Repair::Remove(path)),
            );
        } else {
            out.layers.push(LayerDir { id: name, path });
        }
    }
    Ok(out)
}

/// A small record file, read as the store reads its own: not through a
/// symlink, a regular file of the caller's, at most `cap` bytes, UTF-8,
/// trimmed. `None` when it is not such a file.
pub(crate) fn read_record(path: &Path, cap: u64) -> Option<String> {
    let file = strata_sys::fs::open_nofollow(path).ok()?;
    let md = file.metadata().ok()?;
    if !md.is_file() || md.uid() != strata_sys::fs::euid() || md.len() > cap {
        return None;
    }
    let mut s = String::new();
    file.take(cap + 1).read_to_string(&mut s).ok()?;
    if s.len() as u64 > cap {
        return None;
    }
    Some(s.trim().to_owned())
}

/// Whether a name is a temp file of an atomic write (`.<name>.tmp`).
pub fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Removes `p`, a file or a whole directory, not following a symlink;
/// nothing there is no error.
pub fn remove_path(p: &Path) -> Result<()> {
    let r = match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    r.ctx(|| format!("removing {}", p.display()))
}

/// Temp file made new beside `path` (a symlink at the temp name is
/// replaced, never followed), written, synced, renamed over `path`, and
/// the directory synced.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    (|| -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut f = File::options().write(true).create_new(true).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })()
    .ctx(|| format!("writing {}", path.display()))
}
