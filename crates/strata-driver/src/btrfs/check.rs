//! The btrfs driver's check: its layers are the subvolumes under
//! `subvolumes/`, with the debris of creates and removes that did not
//! finish beside them; each layer must be a subvolume (a plain directory
//! cannot be snapshotted, so no layer can be made on it).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use strata_sys::btrfs as sys;

use super::{destroy, Btrfs};
use crate::check::{self, Check, Finding, FindingKind, Listing, Parents, Repair};
use crate::error::{IoContext, Result};

impl Check for Btrfs {
    fn list(&self) -> Result<Listing> {
        check::list_layers(&self.subvolumes(), &[])
    }

    fn check_layers(
        &self,
        parents: &BTreeMap<String, Parents>,
        found: &mut dyn FnMut(Finding),
    ) -> Result<()> {
        for layer in self.list()?.layers {
            if !parents.contains_key(&layer.id) {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(&layer.path) else {
                continue;
            };
            if !md.is_dir() || md.ino() != sys::SUBVOL_ROOT_INO {
                found(Finding::new(
                    FindingKind::BrokenLower,
                    layer.id,
                    format!(
                        "{} is not a btrfs subvolume: no layer can be made on it",
                        layer.path.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Debris that is a subvolume is deleted as one (with the subvolumes
    /// inside it); anything else as the default repair does.
    fn repair(&self, finding: &Finding) -> Result<()> {
        match &finding.repair {
            Some(Repair::Remove(path))
                if path.parent() == Some(self.subvolumes().as_path())
                    && std::fs::symlink_metadata(path)
                        .is_ok_and(|m| m.is_dir() && m.ino() == sys::SUBVOL_ROOT_INO) =>
            {
                let subvols = self.open_subvolumes()?;
                let name = path.file_name().unwrap_or(OsStr::new(""));
                destroy(subvols.as_fd(), name).ctx(|| format!("removing {}", path.display()))
            }
            Some(r) => check::apply(r),
            None => Ok(()),
        }
    }
}
