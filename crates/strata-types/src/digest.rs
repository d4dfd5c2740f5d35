//! Content digests in OCI form (image spec, descriptor.md, "Digests"),
//! restricted to what the store keeps: `sha256:` + 64 lowercase hex digits.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A content digest in OCI form, `sha256:<64 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// The digest a finished sha256 hasher holds.
    pub fn from_sha256(hasher: Sha256) -> Self {
        let bytes = hasher.finalize();
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        Digest(s)
    }

    /// Parses `sha256:<64 lowercase hex>`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("sha256:")?;
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Digest(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part, as used for file names in the store.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_serde!(Digest, |s: &str| Digest::parse(s)
    .ok_or_else(|| format!("bad digest {s:?}")));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        assert_eq!(
            Digest::from_sha256(Sha256::new()).as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_refuses_malformed_digests() {
        assert!(Digest::parse("sha256:abc").is_none());
        assert!(Digest::parse(&format!("sha512:{}", "a".repeat(64))).is_none());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_none());
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_some());
    }

    #[test]
    fn deserialising_validates() {
        let hex = "a".repeat(64);
        let d: Digest = serde_json::from_str(&format!("\"sha256:{hex}\"")).unwrap();
        assert_eq!(d.hex(), hex);
        assert!(serde_json::from_str::<Digest>("\"sha256:../x\"").is_err());
    }
}
