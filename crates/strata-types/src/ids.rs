//! Identifiers, parsed before they are used.
//!
//! Nothing read from disk is trusted as a path or an ID (DESIGN §4): a
//! container's `config.json`, a `names/<name>` file, a layer's `cache-id`
//! or a mount record's `mount-id` may have been edited by hand or by
//! someone with write access to a backup, and an ID such as `../../etc`
//! joined to a store directory names a host directory. Every such value is
//! parsed into one of these types at the read; a value that does not parse
//! makes the record corrupt and is never joined to a path.
//!
//! The types are pure (no I/O): their only job is the shape of a string.
//!
//! | type            | shape                                      | made by                    |
//! |-----------------|--------------------------------------------|----------------------------|
//! | [`ContainerId`] | 64 lowercase hex digits                    | `create` (`random_hex(32)`) |
//! | [`MountId`]     | 64 lowercase hex digits                    | `create` (`random_hex(32)`) |
//! | [`CacheId`]     | 64 lowercase hex digits                    | a new layer (`random_hex(32)`) |
//! | [`ContainerName`] | Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 bytes | `create --name`, or `strata-<short id>` |
//!
//! Digests (image IDs, chainIDs, diffIDs, parent pointers) are
//! [`Digest`](crate::Digest), which only `sha256:` + 64 lowercase hex
//! digits parses into. A container's init layer is its mount ID followed
//! by `-init` ([`MountId::init_id`], [`MountId::from_init_id`]).

use std::ffi::OsStr;
use std::fmt;
use std::ops::Deref;
use std::path::Path;

/// Why a string is not an identifier of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId {
    /// What it was to be: "container ID", "mount ID", ...
    pub what: &'static str,
    /// The value, as read (cut short when long).
    pub value: String,
    pub rule: &'static str,
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a {} ({})", self.value, self.what, self.rule)
    }
}

impl std::error::Error for InvalidId {}

impl InvalidId {
    fn new(what: &'static str, value: &str, rule: &'static str) -> Self {
        // A hostile value may be huge: show its start only, cut on a
        // character boundary.
        let mut end = value.len().min(80);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        let mut shown = value[..end].to_owned();
        if end < value.len() {
            shown.push('…');
        }
        InvalidId {
            what,
            value: shown,
            rule,
        }
    }
}

const HEX64: &str = "64 lowercase hex digits";

/// Whether `s` is 64 lowercase hex digits.
fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Docker's container-name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, here at
/// most 128 bytes.
fn is_container_name(n: &str) -> bool {
    n.len() <= 128
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

macro_rules! validated {
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:expr, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses `s`; anything but the type's shape is an error.
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                if ($check)(s) {
                    Ok($name(s.to_owned()))
                } else {
                    Err(InvalidId::new($what, s, $rule))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<OsStr> for $name {
            fn as_ref(&self) -> &OsStr {
                OsStr::new(&self.0)
            }
        }

        impl AsRef<Path> for $name {
            fn as_ref(&self) -> &Path {
                Path::new(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                $name::parse(s)
            }
        }

        string_serde!($name, $name::parse);
    };
}

validated!(
    /// A container's ID: 64 lowercase hex digits, and the name of its
    /// directories (`containers/<id>`, `layerdb/mounts/<id>`).
    ContainerId,
    "container ID",
    HEX64,
    is_hex64
);

validated!(
    /// The driver's ID of a container's read-write layer (`MountID` in
    /// its config, `mount-id` in its mount record).
    MountId,
    "mount ID",
    HEX64,
    is_hex64
);

validated!(
    /// The driver's ID of a read-only layer's content (`cache-id`).
    CacheId,
    "cache ID",
    HEX64,
    is_hex64
);

validated!(
    /// A container's name (`names/<name>`): Docker's rule.
    ContainerName,
    "container name",
    "[a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 bytes",
    is_container_name
);

/// The first 12 characters of `s`, or all of it when shorter: never a
/// slice past its end or inside a character, whatever `s` holds.
pub fn short(s: &str) -> &str {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    let mut end = hex.len().min(12);
    while !hex.is_char_boundary(end) {
        end -= 1;
    }
    &hex[..end]
}

impl ContainerId {
    /// The first 12 hex digits, as Docker shows IDs.
    pub fn short(&self) -> &str {
        short(&self.0)
    }
}

impl MountId {
    /// The ID of the container's init layer: `<mount-id>-init`.
    pub fn init_id(&self) -> String {
        format!("{}-init", self.0)
    }

    /// The mount ID an init layer's ID (`<mount-id>-init`) belongs to.
    pub fn from_init_id(s: &str) -> Result<Self, InvalidId> {
        s.strip_suffix("-init")
            .and_then(|m| MountId::parse(m).ok())
            .ok_or_else(|| InvalidId::new("init layer ID", s, "a mount ID followed by -init"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn ids_are_64_lowercase_hex_digits() {
        assert!(ContainerId::parse(HEX).is_ok());
        assert!(MountId::parse(HEX).is_ok());
        assert!(CacheId::parse(HEX).is_ok());
        for bad in [
            "",
            "abc",
            "../../victim",
            &HEX.to_uppercase(),
            &HEX[..63],
            &format!("{HEX}0"),
            &format!("../{}", &HEX[3..]),
            &format!("{}/", &HEX[..63]),
            &format!("sha256:{HEX}"),
        ] {
            assert!(ContainerId::parse(bad).is_err(), "{bad:?}");
            assert!(MountId::parse(bad).is_err(), "{bad:?}");
            assert!(CacheId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn init_ids_belong_to_a_mount_id() {
        let m = MountId::parse(HEX).unwrap();
        assert_eq!(MountId::from_init_id(&m.init_id()).unwrap(), m);
        for bad in [HEX, "-init", "../x-init", &format!("{HEX}-init/..")] {
            assert!(MountId::from_init_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn container_names_follow_dockers_rule() {
        for good in ["c", "web-1", "a.b_c", HEX, &"x".repeat(128)] {
            assert!(ContainerName::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "..", "../x", "a/b", ".x", "-x", "a b", &"x".repeat(129)] {
            assert!(ContainerName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserialising_validates() {
        let ok: ContainerId = serde_json::from_str(&format!("\"{HEX}\"")).unwrap();
        assert_eq!(ok, HEX);
        assert!(serde_json::from_str::<ContainerId>("\"../../victim\"").is_err());
        assert!(serde_json::from_str::<ContainerName>("\"../x\"").is_err());
    }

    #[test]
    fn short_never_slices_past_the_end() {
        assert_eq!(short(HEX), &HEX[..12]);
        assert_eq!(short(&format!("sha256:{HEX}")), &HEX[..12]);
        assert_eq!(short("abc"), "abc");
        assert_eq!(short("ééééééééé"), "éééééé");
        assert_eq!(short(""), "");
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let e = ContainerId::parse(&"é".repeat(100)).unwrap_err();
        assert!(e.value.ends_with('…'));
        assert!(e.value.len() <= 84);
    }
}
