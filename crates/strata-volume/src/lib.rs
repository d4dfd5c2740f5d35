//! Volumes: directories that bypass the union file system, bind-mounted
//! into containers and outliving them. A [`VolumeDriver`] is Docker's
//! volume driver contract; [`local::Local`] keeps volumes under
//! `<root>/volumes/<name>/_data` (with `meta.json` beside it), and
//! [`plugin::Plugin`] speaks the Docker volume plugin protocol (JSON over
//! HTTP on a unix socket) to a driver running elsewhere.
#![forbid(unsafe_code)]

mod atomic;
mod error;
pub mod local;
pub mod plugin;
pub mod spec;
#[cfg(feature = "testing")]
pub mod testing;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use error::{Error, ErrorKind, Result};
pub use strata_types::VolumeName;

/// A volume as a driver reports it (`VolumeDriver.Get` / `List`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    pub name: String,
    /// Where the volume's data is on the host, once known (a plugin may
    /// give it only when mounted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<PathBuf>,
    /// Driver-specific status, shown by `volume inspect`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status: BTreeMap<String, serde_json::Value>,
}

/// Whether a driver's volumes are this machine's or shared between
/// machines (`VolumeDriver.Capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Local,
    Global,
}

/// Docker's volume driver contract. `id` names the caller of a mount (a
/// container): a driver may count mounts per caller.
pub trait VolumeDriver: Send + Sync {
    /// `local`, or the plugin's name.
    fn name(&self) -> &str;
    /// Makes the volume; `opts` are `--opt K=V`.
    fn create(&self, name: &str, opts: &BTreeMap<String, String>) -> Result<()>;
    fn remove(&self, name: &str) -> Result<()>;
    /// Makes the volume's data available and returns where it is.
    fn mount(&self, name: &str, id: &str) -> Result<PathBuf>;
    fn unmount(&self, name: &str, id: &str) -> Result<()>;
    /// Where the data is, if the driver can say without a mount.
    fn path(&self, name: &str) -> Result<Option<PathBuf>>;
    fn get(&self, name: &str) -> Result<VolumeInfo>;
    fn list(&self) -> Result<Vec<VolumeInfo>>;
    fn scope(&self) -> Result<Scope>;
}

/// The longest volume name: its staging directories
/// (`.<name>.creating`, `.<name>.removing`) must fit in one file name
/// (NAME_MAX, 255 bytes), or making the volume would fail half-way with
/// ENAMETOOLONG.
pub const NAME_MAX: usize = VolumeName::MAX;

/// Checks a volume name as Docker does, `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (so
/// never `/`, `..`, NUL or empty), and at most [`NAME_MAX`] bytes
/// ([`VolumeName::parse`]).
pub fn check_name(name: &str) -> Result<()> {
    VolumeName::parse(name)?;
    Ok(())
}

/// [`check_name`] for a name read back from a record: at most 255 bytes,
/// the limit before [`NAME_MAX`] (a plugin volume of a longer name, which
/// has no staging directory, was made then and still works).
pub fn check_recorded_name(name: &str) -> Result<()> {
    VolumeName::parse_recorded(name)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_docker() {
        for ok in ["data", "a.b-c_d", "0"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "..", ".x", "a\0b", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_leave_room_for_their_staging() {
        assert!(check_name(&"x".repeat(NAME_MAX)).is_ok());
        assert_eq!(format!(".{}.creating", "x".repeat(NAME_MAX)).len(), 255);
        let e = check_name(&"x".repeat(NAME_MAX + 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("246 bytes, at most 245"), "{e}");
        assert!(!e.contains(&"x".repeat(17)), "the whole name shown: {e}");
    }
}
