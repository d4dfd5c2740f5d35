//! The `vfs` driver: each layer is a full copy of its parent. Works on
//! any file system, needs no mount; costs the disk (reflinks make the
//! copies nearly free on btrfs and XFS).
//!
//! ```text
//! <home>/                  e.g. <root>/vfs
//!   dir/<id>/              the layer's whole tree
//!   refs/<id>              reference count (see `refs`)
//!   lock
//! ```

mod copy;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::check::{self, Check, Listing};
use crate::error::{Error, IoContext, Result};
use crate::refs::Refs;
use crate::{check_id, Driver, LayerKind, Mount};

pub struct Vfs {
    home: PathBuf,
    refs: Refs,
    backing_fs: String,
}

impl Vfs {
    pub fn new(home: &Path) -> Result<Self> {
        Vfs::open(home, false)
    }

    /// [`Vfs::new`], or with `read_only` an existing home opened without
    /// writing to it.
    pub fn open(home: &Path, read_only: bool) -> Result<Self> {
        let home = crate::make_home(home, "dir", 0o710, read_only)?;
        let backing_fs = crate::backing_fs(&home)?.1;
        let (dir, lock) = (home.join("refs"), home.join("lock"));
        Ok(Vfs {
            refs: if read_only {
                Refs::existing(&dir, &lock)
            } else {
                Refs::new(&dir, &lock)?
            },
            home,
            backing_fs,
        })
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.home.join("dir").join(id)
    }

    fn make(&self, id: &str, parent: Option<&str>) -> Result<()> {
        check_id(id)?;
        let dir = self.dir(id);
        let _lock = self.refs.lock_to_create(id, || dir.exists())?;
        // Build under a staging name; the rename publishes a complete copy.
        let staging = self.home.join("dir").join(format!("{id}-creating"));
        let _ = fs::remove_dir_all(&staging);
        let result = match parent {
            None => fs::DirBuilder::new()
                .mode(0o755)
                .create(&staging)
                .ctx(|| format!("creating layer {id}"))
                .and_then(|()| set_mode(&staging, 0o755)),
            Some(p) => {
                check_id(p)?;
                let from = self.dir(p);
                if !from.is_dir() {
                    return Err(Error::no_parent(p));
                }
                copy::copy_tree(&from, &staging).ctx(|| format!("copying layer {p} into {id}"))
            }
        };
        if let Err(e) =
            result.and_then(|()| fs::rename(&staging, &dir).ctx(|| format!("creating layer {id}")))
        {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        Ok(())
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .ctx(|| format!("setting the mode of {}", p.display()))
}

impl Driver for Vfs {
    fn name(&self) -> &'static str {
        "vfs"
    }

    fn home(&self) -> &Path {
        &self.home
    }

    fn create(&self, id: &str, parent: Option<&str>, _kind: LayerKind) -> Result<()> {
        self.make(id, parent)
    }

    fn remove(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let dir = self.dir(id);
        let _lock = self.refs.lock_to_remove(id, || dir.exists())?;
        let doomed = self.home.join("dir").join(format!("{id}-removing"));
        fs::rename(&dir, &doomed).ctx(|| format!("removing layer {id}"))?;
        fs::remove_dir_all(&doomed).ctx(|| format!("removing layer {id}"))
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

    fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.dir(id).is_dir()
    }

    fn status(&self) -> Vec<(String, String)> {
        let layers = crate::count_entries(&self.home.join("dir"));
        vec![
            ("Backing Filesystem".into(), self.backing_fs.clone()),
            (
                "Copy".into(),
                "reflink when the file system can, else copy_file_range".into(),
            ),
            ("Layers".into(), layers.to_string()),
        ]
    }

    fn cleanup(&self) -> Result<()> {
        let lock = self.refs.lock()?;
        self.refs.clear_all(&lock)
    }

    fn checker(&self) -> Option<&dyn Check> {
        Some(self)
    }
}

/// A vfs layer is one directory tree, with nothing shared between
/// layers: the check lists them and their debris.
impl Check for Vfs {
    fn list(&self) -> Result<Listing> {
        check::list_layers(&self.home.join("dir"), &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check lists the layers, and a half-removed one as debris,
    /// which its repair removes.
    #[test]
    fn check_lists_layers_and_removes_debris() {
        let t = tempfile::tempdir().unwrap();
        let d = Vfs::new(t.path()).unwrap();
        d.create("a", None, LayerKind::ReadOnly).unwrap();
        let doomed = d.home().join("dir/b-removing");
        fs::create_dir_all(doomed.join("etc")).unwrap();
        let listing = d.list().unwrap();
        let ids: Vec<&str> = listing.layers.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        assert_eq!(listing.debris.len(), 1, "{:?}", listing.debris);
        assert_eq!(listing.debris[0].object, doomed.display().to_string());
        d.repair(&listing.debris[0]).unwrap();
        assert!(!doomed.exists());
        assert!(d.exists("a"));
    }
}
