//! The vocabulary of strata's crates, as validated types: pure data, no
//! I/O. A value from outside (an argument, a record read from disk, a
//! document in an archive) is parsed into one of these once, where it
//! comes in; past that point it is known to have its shape.
//!
//! | type | what |
//! |---|---|
//! | [`ContainerId`], [`MountId`], [`CacheId`], [`ContainerName`] | the store's identifiers |
//! | [`VolumeName`] | a volume's name |
//! | [`Digest`] | `sha256:<hex>`: image IDs, diffIDs, chainIDs |
//! | [`ImageRef`] | `[registry[:port]/]path[:tag][@digest]` |
//! | [`whiteout`] | the whiteout names of layers and aufs branches |
//! | [`error_type!`] | the one error pattern of the library crates |
#![forbid(unsafe_code)]

mod digest;
pub mod error;
mod ids;
mod reference;
mod volume;
pub mod whiteout;

pub use digest::Digest;
pub use error::{ErrorKind, IoKind};
pub use ids::{short, CacheId, ContainerId, ContainerName, InvalidId, MountId};
pub use reference::{ImageRef, InvalidReference, DOCKER_HUB};
pub use volume::{InvalidVolumeName, VolumeName};
