//! Identifiers read from the store, parsed before they are used: the
//! validated types of `strata-types` ([`ContainerId`], [`MountId`],
//! [`CacheId`], [`ContainerName`]) and the store's own [`DriverLayer`],
//! what a staging or removal record names.

pub use strata_types::{short, CacheId, ContainerId, ContainerName, InvalidId, MountId};

/// A driver layer named by a store record: a layer's content, a
/// container's read-write layer, or its init layer. What the staging and
/// removal records name (`cache-id`, `mount-id`, `init-id`), parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum DriverLayer {
    Cache(CacheId),
    Mount(MountId),
    Init(MountId),
}

impl DriverLayer {
    /// Parses the content of the record file `file` (`cache-id`,
    /// `mount-id` or `init-id`).
    pub fn parse(file: &str, s: &str) -> Result<Self, InvalidId> {
        match file {
            "cache-id" => CacheId::parse(s).map(DriverLayer::Cache),
            "mount-id" => MountId::parse(s).map(DriverLayer::Mount),
            _ => MountId::from_init_id(s).map(DriverLayer::Init),
        }
    }

    /// The ID the driver knows it by.
    pub fn driver_id(&self) -> String {
        match self {
            DriverLayer::Cache(c) => c.to_string(),
            DriverLayer::Mount(m) => m.to_string(),
            DriverLayer::Init(m) => m.init_id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn driver_layers_name_their_driver_ids() {
        let m = MountId::parse(HEX).unwrap();
        assert_eq!(
            DriverLayer::parse("init-id", &m.init_id())
                .unwrap()
                .driver_id(),
            m.init_id()
        );
        assert!(DriverLayer::parse("cache-id", "../x").is_err());
    }
}
