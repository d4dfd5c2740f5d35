//! The store's own directories are real directories that belong to the
//! user running strata and that no other user can write to; otherwise
//! the store is not opened.
//!
//! A store directory another user controls lets that user choose where
//! strata writes: swap `names/` for a symlink to `/etc` and `create
//! --name passwd` writes there. So, as dockerd checks its data root:
//!
//! - every directory strata uses (the root, `containers/`, `names/`,
//!   `image/`, `image/<driver>/...`, `volumes/`, the driver's home,
//!   `tmp/`) is opened one component at a time from the root with
//!   `O_NOFOLLOW` (a symlink is refused, never followed), and `fstat`ed
//!   through that descriptor;
//! - it must belong to the caller's effective uid;
//! - group and others may not have more than the directory's cap
//!   (0700; the root 0711, the driver's home 0710, `volumes/` 0701): a
//!   looser directory the caller owns is tightened through the same
//!   descriptor, with a warning (CVE-2021-41091), as dockerd does on start;
//! - the lock file is a regular file the caller owns, opened without
//!   following a symlink.
//!
//! A store opened read-only (`Store::open_read_only`) is checked the
//! same way but never changed: nothing is made or tightened, and a
//! directory other users can write to is only warned about, since a
//! command that only reads writes nowhere they could choose.
//!
//! The root itself may be a symlink, as Docker's `--data-root` may: it is
//! the operator's choice, resolved once at open, and the directory it
//! leads to is what is checked. The root's parents are the operator's
//! business, as they are Docker's.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use strata_sys::fs as sys;

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::layout::{self, Layout};

/// The most the root's mode may give group and others.
pub(crate) const ROOT_MAX: u32 = 0o711;
/// The most a driver's home may give (its group may traverse).
pub(crate) const HOME_MAX: u32 = 0o710;
/// `volumes/` (strata_volume's local driver makes it 0701).
pub(crate) const VOLUMES_MAX: u32 = 0o701;
/// Every other store directory.
pub(crate) const DIR_MAX: u32 = 0o700;

/// How the store is opened: to change it (directories made and
/// tightened as needed) or only to read it (nothing on disk changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Write,
    ReadOnly,
}

/// Opens the store's root (following a symlink at the root itself) and
/// checks it as every store directory is checked.
pub(crate) fn open_root(root: &Path, access: Access) -> Result<OwnedFd> {
    let fd = sys::open_dir(root).ctx(|| format!("opening the store at {}", root.display()))?;
    vet(fd.as_fd(), root, ROOT_MAX, access)?;
    Ok(fd)
}

/// The store's directories, checked in one walk from the root: each
/// component opened without following a symlink, made (0700) when
/// missing and the caller says so (never when `access` is read-only), and
/// checked ([`vet`]). A directory several paths share (`image/<driver>/`)
/// is opened and checked once, and again only against a tighter cap.
pub(crate) struct Dirs<'r> {
    root_fd: BorrowedFd<'r>,
    root: &'r Path,
    access: Access,
    /// Checked so far: path below the root, its descriptor, the cap it
    /// was checked against.
    seen: Vec<(PathBuf, OwnedFd, u32)>,
}

impl<'r> Dirs<'r> {
    /// A walk from the root `root_fd` (shown as `root`).
    pub(crate) fn new(root_fd: BorrowedFd<'r>, root: &'r Path, access: Access) -> Self {
        Dirs {
            root_fd,
            root,
            access,
            seen: Vec::new(),
        }
    }

    /// Checks the store directory `rel`: [`DIR_MAX`] for the components
    /// before its last, `max` for the last, made when missing if `create`
    /// says so. Whether it is there (a missing one not to be made is no
    /// error).
    pub(crate) fn check(&mut self, rel: &Path, max: u32, create: bool) -> Result<bool> {
        let create = create && self.access == Access::Write;
        let names: Vec<&OsStr> = rel
            .components()
            .map(|c| match c {
                Component::Normal(n) => n,
                _ => panic!("store directories are relative names: {}", rel.display()),
            })
            .collect();
        let mut prefix = PathBuf::new();
        let mut parent: Option<usize> = None;
        for (i, name) in names.iter().enumerate() {
            prefix.push(name);
            let shown = self.root.join(&prefix);
            let cap = if i + 1 == names.len() { max } else { DIR_MAX };
            if let Some(k) = self.seen.iter().position(|(p, _, _)| *p == prefix) {
                let (_, fd, had) = &mut self.seen[k];
                if *had & !cap & 0o077 != 0 {
                    vet(fd.as_fd(), &shown, cap, self.access)?;
                    *had = cap;
                }
                parent = Some(k);
                continue;
            }
            let fd = {
                let dir = parent.map_or(self.root_fd, |k| self.seen[k].1.as_fd());
                match open_child(dir, name, &shown)? {
                    Some(fd) => fd,
                    None if create => {
                        match sys::mkdir_at(dir, name, 0o700) {
                            Ok(()) => {}
                            // Made meanwhile by another strata: checked below.
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                            Err(e) => {
                                return Err(Error::io(format!("creating {}", shown.display()), e))
                            }
                        }
                        open_child(dir, name, &shown)?.ok_or_else(|| {
                            Error::new(ErrorKind::Io, format!("{} vanished", shown.display()))
                        })?
                    }
                    None => return Ok(false),
                }
            };
            vet(fd.as_fd(), &shown, cap, self.access)?;
            self.seen.push((prefix.clone(), fd, cap));
            parent = Some(self.seen.len() - 1);
        }
        Ok(true)
    }
}

/// `name` in `dir`, a directory opened without following a symlink;
/// `None` when nothing has the name. A symlink or anything but a
/// directory is refused, saying what it is.
fn open_child(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<Option<OwnedFd>> {
    match sys::open_dir_at(dir, name) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            let st = sys::lstat_at(dir, name).ok().flatten();
            let kind = st.map(|s| strata_sys::FileType::from_raw_mode(s.st_mode));
            match kind {
                Some(strata_sys::FileType::Symlink) => {
                    let target = sys::readlink_at(dir, name)
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_else(|_| "?".into());
                    Err(refused(
                        shown,
                        format!(
                            "it is a symbolic link (to {target}), not a directory: strata never \
                             follows a link inside its store, where another user may have put it; \
                             if the store is yours, put the directory itself there"
                        ),
                    ))
                }
                Some(k) if k != strata_sys::FileType::Directory => Err(refused(
                    shown,
                    "it is not a directory: move it away and strata makes the directory".into(),
                )),
                _ => Err(Error::io(format!("opening {}", shown.display()), e)),
            }
        }
    }
}

/// A store directory must belong to the caller, and group and others may
/// have at most `max`'s bits: a looser one is tightened (with a
/// warning) through `fd`, so a swapped name is never changed instead.
/// Read-only, nothing is changed: a directory others can write to is
/// warned about, one they can only read or traverse (Docker makes its
/// `containers/` 0710) is left as it is.
fn vet(fd: BorrowedFd<'_>, shown: &Path, max: u32, access: Access) -> Result<()> {
    let st = sys::fstat(fd).ctx(|| format!("reading {}", shown.display()))?;
    let me = sys::euid();
    let mode = st.st_mode & 0o7777;
    if st.st_uid != me {
        return Err(refused(
            shown,
            format!(
                "it is owned by uid {}, not by uid {me} who runs strata (mode {mode:o}): \
                 its owner could choose where strata writes; if the store is yours, \
                 `chown -R {me} {}`, or use another --root",
                st.st_uid,
                shown.display()
            ),
        ));
    }
    if mode & !max & 0o077 == 0 {
        return Ok(());
    }
    let tight = mode & !(0o077 & !max);
    if access == Access::ReadOnly {
        if mode & 0o022 != 0 {
            tracing::warn!(
                "{} is mode {mode:o}, which lets other users change it: a command that \
                 changes the store makes it {tight:o}",
                shown.display()
            );
        }
        return Ok(());
    }
    sys::fchmod(fd, tight).map_err(|e| {
        Error::with(
            ErrorKind::PermissionDenied,
            format!(
                "refusing the store: {} is mode {mode:o}, which lets other users change it, \
                 and it could not be made {tight:o}",
                shown.display()
            ),
            e,
        )
    })?;
    tracing::warn!(
        "{} was mode {mode:o}: now {tight:o}, so that other users cannot reach containers",
        shown.display()
    );
    Ok(())
}

fn refused(shown: &Path, why: String) -> Error {
    Error::new(
        ErrorKind::PermissionDenied,
        format!("refusing the store: {}: {why}", shown.display()),
    )
}

/// The store's lock file, `<root>/lock`, when there is one: opened
/// read-only without following a symlink and not changed (for a store
/// opened read-only). `None` when no strata has changed the store yet.
pub(crate) fn existing_lock(root: &Path) -> Result<Option<File>> {
    let shown = Layout::lock_of(root);
    let dir = sys::open_dir(root).ctx(|| format!("opening {}", root.display()))?;
    let name = OsStr::new(layout::LOCK);
    // Looked at before it is opened: a fifo planted there would block
    // the open.
    let st = sys::lstat_at(dir.as_fd(), name).ctx(|| format!("reading {}", shown.display()))?;
    match st.map(|s| strata_sys::FileType::from_raw_mode(s.st_mode)) {
        None => return Ok(None),
        Some(strata_sys::FileType::RegularFile) => {}
        Some(_) => {
            return Err(refused(
                &shown,
                "it is not a regular file: remove it and strata makes the lock file".into(),
            ))
        }
    }
    let file =
        sys::open_file_at(dir.as_fd(), name).ctx(|| format!("opening {}", shown.display()))?;
    let st = sys::fstat(file.as_fd()).ctx(|| format!("reading {}", shown.display()))?;
    if strata_sys::FileType::from_raw_mode(st.st_mode) != strata_sys::FileType::RegularFile {
        return Err(refused(&shown, "it is not a regular file".into()));
    }
    if st.st_uid != sys::euid() {
        return Err(refused(
            &shown,
            format!(
                "it is owned by uid {}, not by uid {}",
                st.st_uid,
                sys::euid()
            ),
        ));
    }
    Ok(Some(file))
}

/// The store's lock file, `<root>/lock`: opened (made 0600 when
/// missing) without following a symlink, a regular file of the caller's
/// that others cannot write to.
pub(crate) fn open_lock(root: &Path) -> Result<File> {
    let shown = Layout::lock_of(root);
    let dir = sys::open_dir(root).ctx(|| format!("opening {}", root.display()))?;
    let name = OsStr::new(layout::LOCK);
    // Looked at before it is opened: a fifo planted there would block
    // the open.
    let file = loop {
        let st = sys::lstat_at(dir.as_fd(), name).ctx(|| format!("reading {}", shown.display()))?;
        match st.map(|s| strata_sys::FileType::from_raw_mode(s.st_mode)) {
            None => match sys::create_open_at(dir.as_fd(), name, 0, 0o600) {
                Ok(f) => break f,
                // Made meanwhile by another strata: open that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(format!("creating {}", shown.display()), e)),
            },
            Some(strata_sys::FileType::Symlink) => {
                return Err(refused(
                    &shown,
                    "it is a symbolic link, not the store's lock file: remove it".into(),
                ))
            }
            Some(strata_sys::FileType::RegularFile) => {
                break sys::open_file_at(dir.as_fd(), name)
                    .ctx(|| format!("opening {}", shown.display()))?
            }
            Some(_) => {
                return Err(refused(
                    &shown,
                    "it is not a regular file: remove it and strata makes the lock file".into(),
                ))
            }
        }
    };
    let st = sys::fstat(file.as_fd()).ctx(|| format!("reading {}", shown.display()))?;
    if strata_sys::FileType::from_raw_mode(st.st_mode) != strata_sys::FileType::RegularFile {
        return Err(refused(
            &shown,
            "it is not a regular file: remove it and strata makes the lock file".into(),
        ));
    }
    let me = sys::euid();
    if st.st_uid != me {
        return Err(refused(
            &shown,
            format!(
                "it is owned by uid {}, not by uid {me} who runs strata: if the store is yours, \
                 `chown {me} {}`",
                st.st_uid,
                shown.display()
            ),
        ));
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        let tight = mode & !0o022;
        sys::fchmod(file.as_fd(), tight).ctx(|| format!("tightening {}", shown.display()))?;
        tracing::warn!(
            "{} was mode {mode:o}: now {tight:o}, so that other users cannot change it",
            shown.display()
        );
    }
    Ok(file)
}
