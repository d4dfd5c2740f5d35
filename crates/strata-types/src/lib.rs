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
//! | [`parse_size`] | `512m`, `10G`: sizes as Docker's command line writes them |
//! | [`whiteout`] | the whiteout names of layers and aufs branches |
//! | [`error_type!`] | the one error pattern of the library crates |
#![forbid(unsafe_code)]

/// `Serialize` as the string it holds (`.0`), and a `Deserialize` that
/// validates with `$parse` (`&str` to `Result<Self, impl Display>`): a
/// record holding a malformed value does not read back.
macro_rules! string_serde {
    ($name:ty, $parse:expr) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                $parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

mod digest;
pub mod error;
mod ids;
mod reference;
mod size;
mod volume;
pub mod whiteout;

pub use digest::Digest;
pub use error::{ErrorKind, IoKind};
pub use ids::{short, CacheId, ContainerId, ContainerName, InvalidId, MountId};
pub use reference::{ImageRef, InvalidReference, DOCKER_HUB};
pub use size::{parse_size, InvalidSize};
pub use volume::{InvalidVolumeName, VolumeName};
