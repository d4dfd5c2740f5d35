//! The `btrfs` driver, as Docker's: each layer is a btrfs subvolume, and
//! a layer with a parent is a snapshot of the parent's subvolume, made in
//! O(1) by sharing every extent (no copy). `get` hands out the
//! subvolume's directory: no mount. Works only with its home on btrfs.
//!
//! ```text
//! <home>/                  e.g. <root>/btrfs, on a btrfs file system
//!   subvolumes/<id>/       the layer: a subvolume (a snapshot of its parent's)
//!   subvolumes/<id>-creating/   a create that did not finish (debris)
//!   subvolumes/<id>-removing/   a remove that did not finish (debris)
//!   refs/<id>              reference count (see `refs`)
//!   lock
//! ```
//!
//! A layer is made under `-creating` and renamed into place, so a layer
//! with its final name is complete; a remove renames it to `-removing`
//! first. Deleting a subvolume deletes the subvolumes a container made
//! inside its own (`btrfs subvolume create` in a container), deepest
//! first, found in the root tree ([`strata_sys::btrfs::child_subvols`]).
//!
//! The kernel is reached through ioctls only ([`strata_sys::btrfs`]):
//! `BTRFS_IOC_SUBVOL_CREATE`, `BTRFS_IOC_SNAP_CREATE_V2`,
//! `BTRFS_IOC_SNAP_DESTROY`, the subvolume flags, tree search and the
//! quota ioctls.
//!
//! Size limits (`--storage-opt size=`) are quota groups (`quota`).
//!
//! The diff is the naive compare of a layer with its parent, walking only
//! what changed since the snapshot (`diff`: btrfs's `find-new`).

mod check;
mod diff;
mod quota;

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use strata_sys::btrfs as sys;

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::refs::Refs;
use crate::{check_id, Driver, LayerKind, Mount};

/// `renameat2`'s `RENAME_NOREPLACE`.
const RENAME_NOREPLACE: u32 = 1;

pub struct Btrfs {
    home: PathBuf,
    refs: Refs,
}

/// Whether the driver can work under `dir`: it must be on btrfs (`dir`,
/// or when it does not exist yet its nearest ancestor that does), and we
/// must be root, since deleting a subvolume and finding the subvolumes
/// inside one need `CAP_SYS_ADMIN` (so a rootless store on a btrfs home
/// goes on to the next driver). The table's probe.
pub fn probe(dir: &Path) -> Result<()> {
    if strata_sys::fs::euid() != 0 || strata_sys::mount::in_user_namespace() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "the btrfs driver deletes subvolumes, which takes root of the machine \
             (CAP_SYS_ADMIN; in a user namespace only on a btrfs mounted with \
             user_subvol_rm_allowed)",
        ));
    }
    require_btrfs(dir)
}

/// Whether `dir` (or its nearest existing ancestor) is on btrfs.
fn require_btrfs(dir: &Path) -> Result<()> {
    let mut at = dir;
    while !at.exists() {
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    let (magic, name) = crate::backing_fs(at)?;
    if magic == sys::SUPER_MAGIC {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} is on {name}, not btrfs: the btrfs driver keeps its layers as subvolumes",
                dir.display()
            ),
        ))
    }
}

impl Btrfs {
    /// Opens (making it if needed) the driver with its home at `home`,
    /// which must be on btrfs.
    pub fn new(home: &Path) -> Result<Self> {
        Btrfs::open(home, false)
    }

    /// [`Btrfs::new`], or with `read_only` an existing home opened
    /// without writing to it.
    pub fn open(home: &Path, read_only: bool) -> Result<Self> {
        require_btrfs(home)?;
        let home = crate::make_home(home, "subvolumes", 0o700, read_only)?;
        let (dir, lock) = (home.join("refs"), home.join("lock"));
        Ok(Btrfs {
            refs: if read_only {
                Refs::existing(&dir, &lock)
            } else {
                Refs::new(&dir, &lock)?
            },
            home,
        })
    }

    fn subvolumes(&self) -> PathBuf {
        self.home.join("subvolumes")
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.subvolumes().join(id)
    }

    fn open_subvolumes(&self) -> Result<std::os::fd::OwnedFd> {
        let p = self.subvolumes();
        strata_sys::fs::open_dir(&p).ctx(|| format!("opening {}", p.display()))
    }

    /// The subvolumes directory and `id-state`, the name layer `id` has
    /// while an `action` works on it, after deleting the subvolume an
    /// interrupted earlier one left under that name.
    fn clear_debris(
        &self,
        id: &str,
        state: &str,
        action: &str,
    ) -> Result<(std::os::fd::OwnedFd, String)> {
        let subvols = self.open_subvolumes()?;
        let name = format!("{id}-{state}");
        if self.subvolumes().join(&name).exists() {
            destroy(subvols.as_fd(), OsStr::new(&name))
                .ctx(|| format!("removing the debris of an earlier {action} of {id}"))?;
        }
        Ok((subvols, name))
    }

    fn make(&self, id: &str, parent: Option<&str>) -> Result<()> {
        check_id(id)?;
        if let Some(p) = parent {
            check_id(p)?;
        }
        let _lock = self.refs.lock_to_create(id, || self.dir(id).exists())?;
        let (subvols, staging) = self.clear_debris(id, "creating", "create")?;
        match parent {
            None => sys::subvol_create(subvols.as_fd(), OsStr::new(&staging))
                .and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    // The kernel applies the umask to a new subvolume's root.
                    fs::set_permissions(
                        self.subvolumes().join(&staging),
                        fs::Permissions::from_mode(0o755),
                    )
                })
                .ctx(|| format!("creating the subvolume of layer {id}"))?,
            Some(p) => {
                let from = match strata_sys::fs::open_dir_at(subvols.as_fd(), OsStr::new(p)) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(Error::no_parent(p))
                    }
                    Err(e) => return Err(Error::io(format!("opening layer {p}"), e)),
                };
                sys::snapshot(from.as_fd(), subvols.as_fd(), OsStr::new(&staging), false)
                    .ctx(|| format!("snapshotting layer {p} as {id}"))?;
            }
        }
        let published = strata_sys::fs::rename_at(
            subvols.as_fd(),
            OsStr::new(&staging),
            subvols.as_fd(),
            OsStr::new(id),
            RENAME_NOREPLACE,
        )
        .ctx(|| format!("creating layer {id}"));
        if let Err(e) = published {
            let _ = destroy(subvols.as_fd(), OsStr::new(&staging));
            return Err(e);
        }
        Ok(())
    }
}

/// Deletes the subvolume `name` in `dir` with every subvolume inside it,
/// deepest first. A read-only subvolume with subvolumes inside is made
/// writable first, since deleting those changes its directories.
fn destroy(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let sub = strata_sys::fs::open_dir_at(dir, name)?;
    let children = sys::child_subvols(sub.as_fd())?;
    if !children.is_empty() && sys::is_readonly(sub.as_fd())? {
        sys::set_readonly(sub.as_fd(), false)?;
    }
    for c in children {
        let path = Path::new(strata_sys::fs::os(&c.path));
        let (Some(parent), Some(child)) = (path.parent(), path.file_name()) else {
            continue;
        };
        if parent.as_os_str().is_empty() {
            destroy(sub.as_fd(), child)?;
        } else {
            let at = strata_sys::fs::open_beneath(sub.as_fd(), parent)?;
            destroy(at.as_fd(), child)?;
        }
    }
    sys::subvol_destroy(dir, name)
}

impl Driver for Btrfs {
    fn name(&self) -> &'static str {
        "btrfs"
    }

    fn home(&self) -> &Path {
        &self.home
    }

    fn create(&self, id: &str, parent: Option<&str>, _kind: LayerKind) -> Result<()> {
        self.make(id, parent)
    }

    fn remove(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let _lock = self.refs.lock_to_remove(id, || self.dir(id).is_dir())?;
        let (subvols, doomed) = self.clear_debris(id, "removing", "remove")?;
        strata_sys::fs::rename_at(
            subvols.as_fd(),
            OsStr::new(id),
            subvols.as_fd(),
            OsStr::new(&doomed),
            RENAME_NOREPLACE,
        )
        .ctx(|| format!("removing layer {id}"))?;
        destroy(subvols.as_fd(), OsStr::new(&doomed))
            .ctx(|| format!("deleting the subvolume of layer {id}"))
    }

    fn get(&self, id: &str, _mount_label: Option<&str>) -> Result<Mount<'_>> {
        check_id(id)?;
        let dir = self.dir(id);
        self.refs.take_dir(id, &dir)?;
        Ok(Mount::new(self, id, dir))
    }

    fn put(&self, id: &str) -> Result<()> {
        check_id(id)?;
        self.refs.release(id)
    }

    fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.dir(id).is_dir()
    }

    fn in_use(&self, id: &str) -> Result<bool> {
        check_id(id)?;
        self.refs.held(id)
    }

    fn content_dir(&self, id: &str) -> Result<PathBuf> {
        check_id(id)?;
        let dir = self.dir(id);
        if !dir.is_dir() {
            return Err(Error::no_layer(id));
        }
        Ok(dir)
    }

    fn status(&self) -> Vec<(String, String)> {
        let layers = crate::count_entries(&self.subvolumes());
        let backing = crate::backing_fs(&self.home)
            .map(|(_, n)| n)
            .unwrap_or_else(|e| format!("unknown ({e})"));
        let quota = match strata_sys::fs::open_dir(&self.home)
            .and_then(|fd| sys::quota_enabled(fd.as_fd()))
        {
            Ok(true) => "on (size limits are quota groups)".to_owned(),
            Ok(false) => "off (turned on by the first size limit)".to_owned(),
            Err(e) => format!("unknown ({e})"),
        };
        vec![
            ("Backing Filesystem".into(), backing),
            (
                "Layers".into(),
                format!("{layers} (subvolumes; a child is a snapshot of its parent)"),
            ),
            ("Quota".into(), quota),
        ]
    }

    fn cleanup(&self) -> Result<()> {
        let lock = self.refs.lock()?;
        self.refs.clear_all(&lock)
    }

    fn checker(&self) -> Option<&dyn crate::Check> {
        Some(self)
    }

    fn native_diff(&self) -> Option<&dyn crate::NativeDiff> {
        Some(self)
    }

    fn quota(&self) -> Result<&dyn crate::Quota> {
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::conformance::{require_root, LoopFs};
    use crate::Check;

    /// Root and a loop-mounted btrfs, or SKIPPED.
    fn on_btrfs() -> Option<(LoopFs, Btrfs)> {
        if !require_root() {
            return None;
        }
        let fs = LoopFs::btrfs()?;
        let d = Btrfs::new(&fs.path().join("home")).expect("opening btrfs");
        Some((fs, d))
    }

    fn free_bytes(p: &Path) -> u64 {
        let fd = strata_sys::fs::open_dir(p).unwrap();
        strata_sys::fs::syncfs(fd.as_fd()).unwrap();
        let st = strata_sys::fs::statfs(fd.as_fd()).unwrap();
        st.blocks_available * st.block_size
    }

    #[test]
    fn probe_refuses_a_home_not_on_btrfs() {
        let t = tempfile::tempdir().unwrap();
        if crate::backing_fs(t.path()).unwrap().0 == sys::SUPER_MAGIC {
            return;
        }
        let err = require_btrfs(&t.path().join("not/yet")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("not btrfs"), "{err}");
        let err = Btrfs::new(t.path()).err().expect("opened off btrfs");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    }

    /// A child is a snapshot: a subvolume of its own that shares its
    /// parent's extents, so making it takes no data space.
    #[test]
    fn child_is_a_snapshot_not_a_copy() {
        let Some((fs, d)) = on_btrfs() else { return };
        d.create("base", None, LayerKind::ReadOnly).unwrap();
        let big = vec![0x5a_u8; 64 << 20];
        fs::write(d.dir("base").join("big"), &big).unwrap();
        let before = free_bytes(fs.path());
        d.create("ctr", Some("base"), LayerKind::ReadWrite).unwrap();
        let after = free_bytes(fs.path());
        assert!(
            before.saturating_sub(after) < 8 << 20,
            "a snapshot of a 64 MiB layer took {} bytes",
            before.saturating_sub(after)
        );
        let md = fs::metadata(d.dir("ctr")).unwrap();
        assert_eq!(md.ino(), sys::SUBVOL_ROOT_INO, "ctr is not a subvolume");
        assert_eq!(fs::read(d.dir("ctr").join("big")).unwrap().len(), big.len());
        let ctr = strata_sys::fs::open_dir(&d.dir("ctr")).unwrap();
        let base = strata_sys::fs::open_dir(&d.dir("base")).unwrap();
        assert_ne!(
            sys::subvol_id(ctr.as_fd()).unwrap(),
            sys::subvol_id(base.as_fd()).unwrap()
        );
    }

    /// Subvolumes a container made inside its layer, nested and read-only
    /// ones among them, go with it.
    #[test]
    fn remove_deletes_nested_subvolumes() {
        let Some((_fs, d)) = on_btrfs() else { return };
        d.create("base", None, LayerKind::ReadOnly).unwrap();
        d.create("ctr", Some("base"), LayerKind::ReadWrite).unwrap();
        let root = d.dir("ctr");
        fs::create_dir_all(root.join("var/lib")).unwrap();
        let lib = strata_sys::fs::open_dir(&root.join("var/lib")).unwrap();
        sys::subvol_create(lib.as_fd(), OsStr::new("sub")).unwrap();
        let sub = strata_sys::fs::open_dir(&root.join("var/lib/sub")).unwrap();
        sys::subvol_create(sub.as_fd(), OsStr::new("inner")).unwrap();
        fs::write(root.join("var/lib/sub/inner/file"), b"x").unwrap();
        let top = strata_sys::fs::open_dir(&root).unwrap();
        sys::snapshot(sub.as_fd(), top.as_fd(), OsStr::new("ro"), true).unwrap();
        let ro = strata_sys::fs::open_dir(&root.join("ro")).unwrap();
        assert!(sys::is_readonly(ro.as_fd()).unwrap());
        let mut children: Vec<String> = sys::child_subvols(top.as_fd())
            .unwrap()
            .into_iter()
            .map(|c| String::from_utf8(c.path).unwrap())
            .collect();
        children.sort();
        assert_eq!(children, ["ro", "var/lib/sub"]);
        drop((lib, sub, top, ro));
        d.remove("ctr").unwrap();
        assert!(!d.exists("ctr"));
        let left: Vec<_> = fs::read_dir(d.subvolumes())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["base"]);
        d.remove("base").unwrap();
    }

    /// A container limited to 16 MiB cannot write past it (EDQUOT),
    /// while the image below it and another container are unaffected;
    /// the limit reads back from the quota tree.
    #[test]
    fn size_limit_stops_writes_past_it() {
        use std::io::Write;

        use crate::Quota;
        let Some((_fs, d)) = on_btrfs() else { return };
        d.create("base", None, LayerKind::ReadOnly).unwrap();
        fs::write(d.dir("base").join("lib"), vec![1u8; 1 << 20]).unwrap();
        d.create("ctr", Some("base"), LayerKind::ReadWrite).unwrap();
        d.create("free", Some("base"), LayerKind::ReadWrite)
            .unwrap();
        assert_eq!(d.size_limit("ctr").unwrap(), None);
        d.set_size_limit("ctr", 16 << 20).unwrap();
        assert_eq!(d.size_limit("ctr").unwrap(), Some(16 << 20));
        assert_eq!(d.size_limit("free").unwrap(), None);
        assert!(d
            .status()
            .iter()
            .any(|(k, v)| k == "Quota" && v.starts_with("on")));

        let chunk = vec![0xa5u8; 1 << 20];
        let write_mib = |path: &Path, n: usize| -> io::Result<()> {
            let mut f = fs::File::create(path)?;
            for _ in 0..n {
                f.write_all(&chunk)?;
            }
            f.sync_all()
        };
        let err = write_mib(&d.dir("ctr").join("big"), 64)
            .expect_err("wrote 64 MiB under a 16 MiB limit");
        assert_eq!(err.raw_os_error(), Some(122), "not EDQUOT: {err}");
        write_mib(&d.dir("free").join("big"), 64).expect("the unlimited container");
        fs::write(d.dir("base").join("more"), b"more").expect("the image's layer");
        // Deleting frees the space again.
        fs::remove_file(d.dir("ctr").join("big")).unwrap();
        write_mib(&d.dir("ctr").join("small"), 4).expect("a write under the limit");
        d.remove("ctr").unwrap();
        d.remove("free").unwrap();
        let err = d.set_size_limit("gone", 16 << 20).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        let err = d.set_size_limit("base", 1024).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }

    /// The native diff reads what changed, not the tree: one file
    /// changed among a thousand leaves a handful of inodes to look at,
    /// and a snapshot of something else is not covered.
    #[test]
    fn native_diff_walks_only_what_changed() {
        use crate::NativeDiff;
        let Some((_fs, d)) = on_btrfs() else { return };
        d.create("base", None, LayerKind::ReadOnly).unwrap();
        for i in 0..1000 {
            let dir = d.dir("base").join(format!("d{}", i % 20));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(format!("f{i}")), format!("{i}")).unwrap();
        }
        d.create("other", None, LayerKind::ReadOnly).unwrap();
        d.create("ctr", Some("base"), LayerKind::ReadWrite).unwrap();
        fs::write(d.dir("ctr").join("d7/f7"), b"changed").unwrap();
        assert!(d.covers("ctr", Some("base")));
        assert!(!d.covers("ctr", Some("other")));
        assert!(!d.covers("ctr", None));
        let known = d.known("ctr", "base").unwrap();
        assert!(
            known.touched.len() < 100,
            "{} inodes to look at for one changed file",
            known.touched.len()
        );
        let changes: Vec<String> = NativeDiff::changes(&d, "ctr", Some("base"))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        let naive: Vec<String> = strata_archive::changes_trees(Some(&d.dir("base")), &d.dir("ctr"))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(changes, naive);
        assert!(changes.contains(&"C /d7/f7".to_owned()), "{changes:?}");
    }

    /// A half-made layer left as a subvolume is debris the check's repair
    /// deletes as a subvolume; a plain directory in a layer's place is
    /// reported.
    #[test]
    fn check_repairs_subvolume_debris_and_reports_plain_dirs() {
        let Some((_fs, d)) = on_btrfs() else { return };
        d.create("base", None, LayerKind::ReadOnly).unwrap();
        let subvols = d.open_subvolumes().unwrap();
        sys::snapshot(
            strata_sys::fs::open_dir(&d.dir("base")).unwrap().as_fd(),
            subvols.as_fd(),
            OsStr::new("half-creating"),
            true,
        )
        .unwrap();
        fs::create_dir(d.dir("plain")).unwrap();
        let listing = d.list().unwrap();
        assert_eq!(listing.debris.len(), 1, "{:?}", listing.debris);
        d.repair(&listing.debris[0]).unwrap();
        assert!(!d.subvolumes().join("half-creating").exists());
        let parents: BTreeMap<String, crate::check::Parents> = [
            ("base".to_owned(), Ok(vec![])),
            ("plain".to_owned(), Ok(vec![])),
        ]
        .into_iter()
        .collect();
        let mut found = Vec::new();
        d.check_layers(&parents, &mut |f| found.push(f)).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].object, "plain");
    }
}
