//! The branches as the union sees them: handles on their directories,
//! whiteout and opaque markers in both on-disk formats, name resolution
//! top-down and the merged directory listing.

// `Stat`'s field types differ between architectures: the conversions
// that are no-ops here are not everywhere.
#![allow(clippy::useless_conversion)]

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use strata_sys::{fs, xattr, Errno, FileType, Stat};

use crate::options::WhiteoutFormat;

// aufs: `.wh.NAME` hides NAME; `.wh..wh..opq` makes its directory
// opaque; `.wh..wh.orph` is where strata stages copy-ups when no workdir
// is given (aufs's own orphan dir name; hidden as every `.wh.` name).
pub(crate) use strata_types::whiteout::{
    OPAQUE as WH_OPAQUE, ORPHANS as WH_ORPH, PREFIX as WH_PREFIX,
};

/// One branch directory taking part in a union directory (or the branch
/// holding a non-directory): the branch index (0 = topmost) and an
/// `O_PATH` handle on the node in that branch.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub branch: usize,
    pub fd: Arc<OwnedFd>,
}

impl Layer {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What a name resolves to: the topmost entry's stat, and the layers
/// (one for a non-directory; the merged stack, topmost first, for a
/// directory).
pub(crate) struct Found {
    pub stat: Stat,
    pub layers: Vec<Layer>,
}

impl Found {
    pub fn kind(&self) -> FileType {
        FileType::from_raw_mode(self.stat.st_mode)
    }
}

/// One entry of a merged listing.
pub(crate) struct Listed {
    pub name: Vec<u8>,
    pub kind: FileType,
    /// Identity of the topmost entry: (st_dev of its directory, d_ino).
    pub key: (u64, u64),
}

/// Whiteout and opaque conventions of one union.
pub(crate) struct Markers {
    pub format: WhiteoutFormat,
    opaque_xattr: &'static [u8],
}

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

pub(crate) fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

fn aufs_whiteout_name(name: &[u8]) -> Vec<u8> {
    [WH_PREFIX, name].concat()
}

/// `lstat`, with names too long for a whiteout (`.wh.` + 252 bytes or
/// more) simply absent.
fn lstat_opt(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Stat>> {
    match fs::lstat_at(dir, fs::os(name)) {
        Err(e) if errno(&e) == Some(Errno::NAMETOOLONG) => Ok(None),
        r => r,
    }
}

impl Markers {
    pub fn new(format: WhiteoutFormat, userxattr: bool) -> Markers {
        let opaque_xattr: &'static [u8] = if userxattr {
            b"user.overlay.opaque"
        } else {
            b"trusted.overlay.opaque"
        };
        Markers {
            format,
            opaque_xattr,
        }
    }

    /// Names the union never shows nor lets anyone create: every `.wh.`
    /// name in aufs format.
    pub fn is_reserved(&self, name: &[u8]) -> bool {
        self.format == WhiteoutFormat::Aufs && name.starts_with(WH_PREFIX)
    }

    /// xattrs that belong to the on-disk format, hidden from the union.
    pub fn is_private_xattr(&self, name: &[u8]) -> bool {
        self.format == WhiteoutFormat::Overlay
            && (name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay."))
    }

    /// Whether `st` (found at a name) is an overlay whiteout.
    fn is_overlay_whiteout(&self, st: &Stat) -> bool {
        self.format == WhiteoutFormat::Overlay
            && FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
            && st.st_rdev == 0
    }

    /// Whether `dir` holds a whiteout for `name`.
    pub fn has_whiteout(&self, dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<bool> {
        match self.format {
            WhiteoutFormat::Aufs => Ok(lstat_opt(dir, &aufs_whiteout_name(name))?.is_some()),
            WhiteoutFormat::Overlay => {
                Ok(lstat_opt(dir, name)?.is_some_and(|st| self.is_overlay_whiteout(&st)))
            }
        }
    }

    /// Whether the directory `dir` (an `O_PATH` handle) is opaque.
    pub fn is_opaque(&self, dir: BorrowedFd<'_>) -> io::Result<bool> {
        match self.format {
            WhiteoutFormat::Aufs => Ok(lstat_opt(dir, WH_OPAQUE)?.is_some()),
            WhiteoutFormat::Overlay => {
                Ok(xattr::get(dir, true, self.opaque_xattr)?.is_some_and(|v| v == b"y"))
            }
        }
    }

    /// Marks the directory `dir` (an `O_PATH` handle) opaque.
    pub fn mark_opaque(&self, dir: BorrowedFd<'_>) -> io::Result<()> {
        match self.format {
            WhiteoutFormat::Aufs => match fs::create_file_at(dir, fs::os(WH_OPAQUE), 0o444) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            },
            WhiteoutFormat::Overlay => xattr::set(dir, true, self.opaque_xattr, b"y"),
        }
    }

    /// Writes a whiteout for `name` in `dir`, where nothing has the name
    /// (overlay) or the name's entry was just removed.
    pub fn write_whiteout(&self, dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
        match self.format {
            WhiteoutFormat::Aufs => {
                match fs::create_file_at(dir, fs::os(&aufs_whiteout_name(name)), 0o444) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                    Err(e) => Err(e),
                }
            }
            WhiteoutFormat::Overlay => {
                fs::mknod_at(dir, fs::os(name), FileType::CharacterDevice, 0, 0)
            }
        }
    }

    /// Removes an aufs whiteout for `name` from `dir`, if there is one
    /// (an overlay whiteout is replaced by renaming over it instead).
    pub fn remove_aufs_whiteout(&self, dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
        if self.format != WhiteoutFormat::Aufs {
            return Ok(());
        }
        match fs::unlink_at(dir, fs::os(&aufs_whiteout_name(name))) {
            Err(e) if !matches!(errno(&e), Some(Errno::NOENT | Errno::NAMETOOLONG)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Resolves `name` in a union directory whose layers are `layers`
    /// (topmost first), overlayfs's way: the first layer with the name
    /// wins; a whiteout ends the search; a non-directory hides whatever
    /// is below; a directory merges with directories of the same name
    /// below it until an opaque one, a whiteout or a non-directory.
    pub fn resolve(&self, layers: &[Layer], name: &[u8]) -> io::Result<Option<Found>> {
        let mut found: Option<Found> = None;
        for layer in layers {
            let dir = layer.fd();
            if self.format == WhiteoutFormat::Aufs && self.has_whiteout(dir, name)? {
                break;
            }
            let Some(st) = lstat_opt(dir, name)? else {
                continue;
            };
            if self.is_overlay_whiteout(&st) {
                break;
            }
            let fd = Arc::new(fs::open_path_at(dir, fs::os(name))?);
            let here = Layer {
                branch: layer.branch,
                fd,
            };
            match &mut found {
                None if !is_dir(&st) => {
                    return Ok(Some(Found {
                        stat: st,
                        layers: vec![here],
                    }))
                }
                None => {
                    let opaque = self.is_opaque(here.fd())?;
                    found = Some(Found {
                        stat: st,
                        layers: vec![here],
                    });
                    if opaque {
                        break;
                    }
                }
                Some(f) => {
                    if !is_dir(&st) {
                        break;
                    }
                    let opaque = self.is_opaque(here.fd())?;
                    f.layers.push(here);
                    if opaque {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }

    /// The merged listing of a union directory: every visible name once,
    /// upper layers first, whiteouts and what they hide left out (a
    /// whiteout hides only what is below its own layer), the format's
    /// private names left out.
    pub fn list(&self, layers: &[Layer]) -> io::Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut hidden: HashSet<Vec<u8>> = HashSet::new();
        for layer in layers {
            let dev = fs::fstat(layer.fd())?.st_dev;
            let mut whiteouts = Vec::new();
            for ent in fs::read_dir_ino(layer.fd())? {
                if self.format == WhiteoutFormat::Aufs {
                    if let Some(target) = ent.name.strip_prefix(WH_PREFIX) {
                        if !target.starts_with(WH_PREFIX) {
                            whiteouts.push(target.to_vec());
                        }
                        continue;
                    }
                } else if ent.kind == FileType::CharacterDevice || ent.kind == FileType::Unknown {
                    let st = lstat_opt(layer.fd(), &ent.name)?;
                    if st.is_some_and(|st| self.is_overlay_whiteout(&st)) {
                        whiteouts.push(ent.name);
                        continue;
                    }
                }
                if hidden.contains(&ent.name) || seen.contains(&ent.name) {
                    continue;
                }
                seen.insert(ent.name.clone());
                let kind = if ent.kind == FileType::Unknown {
                    lstat_opt(layer.fd(), &ent.name)?
                        .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode))
                } else {
                    ent.kind
                };
                out.push(Listed {
                    name: ent.name,
                    kind,
                    key: (u64::from(dev), ent.ino),
                });
            }
            hidden.extend(whiteouts);
        }
        Ok(out)
    }
}
