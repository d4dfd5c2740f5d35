//! The mounts a container's config records (`Mounts`, as `docker
//! inspect` shows them): volumes and host binds, for the runtime to mount.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A mount's kind in a container's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Volume,
    Bind,
}

/// A mount in a container's config (`Mounts`, as `docker inspect` shows
/// them). The run issue makes them; the store only records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    #[serde(rename = "Type")]
    pub kind: MountKind,
    /// The volume's name (volumes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The host directory: a volume's data, or the bound host path.
    pub source: PathBuf,
    /// Absolute, inside the container.
    pub destination: String,
    /// The volume's driver (volumes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The spec's mode: `ro`, `rw`, `nocopy`, comma-separated; may be empty.
    #[serde(default)]
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
}

impl Mount {
    /// Whether a volume plugin (not the local driver) serves this mount.
    pub fn is_plugin(&self) -> bool {
        self.kind == MountKind::Volume
            && self
                .driver
                .as_deref()
                .is_some_and(|d| d != strata_volume::local::DRIVER)
    }

    /// The name of the local volume this mounts, if it is one.
    pub fn local_volume(&self) -> Option<&str> {
        match self.kind {
            MountKind::Volume if !self.is_plugin() => self.name.as_deref(),
            _ => None,
        }
    }
}
