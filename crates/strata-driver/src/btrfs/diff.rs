//! The cheap diff btrfs offers: a snapshot knows what changed since it
//! was made. The inodes of a layer's subvolume that sit in tree blocks
//! written after the snapshot's transaction (btrfs-progs' `find-new`,
//! through `BTRFS_IOC_TREE_SEARCH`), with every directory above them,
//! are all that can differ from the parent; the naive compare is run
//! skipping the rest ([`strata_archive::changes_trees_known`]), so its
//! output is the naive diff's, read in time proportional to the change.
//!
//! It holds for a layer over the subvolume it is a snapshot of
//! (`parent_uuid`): a snapshot keeps its source's inode numbers, so an
//! inode that neither tree changed after the snapshot's transaction is
//! the same object in both. The parent's own changes since (an atime a
//! read updated) are searched too. The conformance suite proves the
//! result equal to the naive diff.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};

use strata_sys::btrfs as sys;

use super::Btrfs;
use crate::error::{Error, IoContext, Result};
use crate::{Change, DiffReport, Driver, NativeDiff};

/// What btrfs knows of a layer against the layer it is a snapshot of.
pub(super) struct Known {
    /// `st_dev` of the layer's and the parent's subvolumes.
    dev: u64,
    parent_dev: u64,
    /// Inodes that may differ, and the directories above them.
    pub(super) touched: BTreeSet<u64>,
}

impl Known {
    fn unchanged(&self, old: (u64, u64), new: (u64, u64)) -> bool {
        old.0 == self.parent_dev
            && new.0 == self.dev
            && old.1 == new.1
            && !self.touched.contains(&new.1)
    }
}

impl Btrfs {
    /// The subvolume facts of `id` and `parent`, when `id` is a snapshot
    /// of `parent`: its snapshot transaction and both subvolumes' handles.
    fn snapshot_of(&self, id: &str, parent: &str) -> Result<Option<Pair>> {
        let fd =
            |l: &str| strata_sys::fs::open_dir(&self.dir(l)).ctx(|| format!("opening layer {l}"));
        let (child, par) = (fd(id)?, fd(parent)?);
        let ci = sys::subvol_info(child.as_fd()).ctx(|| format!("subvolume of {id}"))?;
        let pi = sys::subvol_info(par.as_fd()).ctx(|| format!("subvolume of {parent}"))?;
        Ok((ci.parent_uuid == pi.uuid).then_some(Pair {
            child,
            parent: par,
            since: ci.otransid,
        }))
    }

    pub(super) fn known(&self, id: &str, parent: &str) -> Result<Known> {
        let Some(pair) = self.snapshot_of(id, parent)? else {
            return Err(Error::new(
                crate::ErrorKind::InvalidArgument,
                format!("layer {id} is not a snapshot of {parent}"),
            ));
        };
        // Delayed inode and directory items reach the trees at the
        // commit: commit first.
        strata_sys::fs::syncfs(pair.child.as_fd()).ctx(|| "syncing the file system".into())?;
        let mut touched = BTreeSet::new();
        for (fd, layer) in [(&pair.child, id), (&pair.parent, parent)] {
            touched_in(fd.as_fd(), pair.since, &mut touched)
                .ctx(|| format!("searching the changes of layer {layer}"))?;
        }
        let dev = |fd: &std::os::fd::OwnedFd| {
            strata_sys::fs::fstat(fd.as_fd())
                .map(|st| st.st_dev)
                .ctx(|| "stat of a layer".into())
        };
        Ok(Known {
            dev: dev(&pair.child)?,
            parent_dev: dev(&pair.parent)?,
            touched,
        })
    }
}

/// A layer and the layer it is a snapshot of.
struct Pair {
    child: std::os::fd::OwnedFd,
    parent: std::os::fd::OwnedFd,
    /// The transaction that made the snapshot.
    since: u64,
}

/// Adds to `touched` the inodes of the subvolume `fd` changed after
/// transaction `since`, and every directory above them there. An inode
/// in neither tree's set is the same object in both (a snapshot keeps
/// inode numbers), and so is everything below it.
fn touched_in(fd: BorrowedFd<'_>, since: u64, touched: &mut BTreeSet<u64>) -> std::io::Result<()> {
    let changed = sys::inodes_changed_since(fd, since)?;
    let mut todo: Vec<u64> = changed.iter().copied().collect();
    touched.extend(changed);
    let mut seen = BTreeSet::new();
    while let Some(ino) = todo.pop() {
        if !seen.insert(ino) {
            continue;
        }
        for p in sys::inode_parents(fd, ino)? {
            touched.insert(p);
            todo.push(p);
        }
    }
    Ok(())
}

impl NativeDiff for Btrfs {
    fn covers(&self, id: &str, parent: Option<&str>) -> bool {
        match parent {
            Some(p) => self.snapshot_of(id, p).is_ok_and(|s| s.is_some()),
            None => false,
        }
    }

    fn diff(&self, id: &str, parent: Option<&str>, out: &mut dyn Write) -> Result<DiffReport> {
        let p = parent.expect("covers() needs a parent");
        let known = self.known(id, p)?;
        let (new, old) = (self.get(id, None)?, self.get(p, None)?);
        let (_, report) =
            strata_archive::diff_trees_known(Some(&old), &new, out, &|o, n| known.unchanged(o, n))
                .map_err(|e| Error::archive(format!("diff of layer {id}"), e))?;
        Ok(report)
    }

    fn changes(&self, id: &str, parent: Option<&str>) -> Result<Vec<Change>> {
        let p = parent.expect("covers() needs a parent");
        let known = self.known(id, p)?;
        let (new, old) = (self.get(id, None)?, self.get(p, None)?);
        strata_archive::changes_trees_known(Some(&old), &new, &|o, n| known.unchanged(o, n))
            .map_err(|e| Error::archive(format!("changes of layer {id}"), e))
    }

    fn diff_size(&self, id: &str, parent: Option<&str>) -> Result<u64> {
        crate::naive::size_of_changes(self, id, &NativeDiff::changes(self, id, parent)?)
    }
}
