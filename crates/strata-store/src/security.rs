//! What a container's record says about its confinement: the security
//! flags of `create`/`run` (`--privileged`, `--cap-add`, `--cap-drop`,
//! `--security-opt`), already checked and normalised by `strata-run`,
//! which also turns them into the runtime spec. The store only keeps
//! them, so that `start` confines the container as `create` was told.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Docker's `HostConfig` fields `Privileged`, `CapAdd`, `CapDrop` and
/// `SecurityOpt`, in a form that needs no second parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Security {
    /// `--privileged`: every capability and host device, no seccomp
    /// filter, no masked or read-only paths, `/sys` writable.
    pub privileged: bool,
    /// `--cap-add`: `CAP_*` names or `ALL`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`: `CAP_*` names or `ALL`.
    pub cap_drop: Vec<String>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--security-opt seccomp=...`.
    pub seccomp: Seccomp,
}

/// The seccomp filter a container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seccomp {
    /// strata's default profile (Docker's in effect).
    #[default]
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// `seccomp=PATH`: the profile, in Docker's format, as the file held
    /// it at `create` (as Docker keeps it: a later change to the file
    /// does not change the container).
    Profile(Value),
}
