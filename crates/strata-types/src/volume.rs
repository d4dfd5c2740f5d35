//! Volume names, with Docker's rule.

use std::fmt;
use std::ops::Deref;

/// A volume's name: Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (so never `/`,
/// `..`, NUL or empty), and at most [`VolumeName::MAX`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeName(String);

/// Why a string is not a volume name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidVolumeName {
    #[error(
        "invalid volume name {0:?}: names are letters, digits, _ . - (starting with a letter or digit)"
    )]
    Characters(String),
    /// Shown shortened: the name itself is what is too long.
    #[error("invalid volume name {start}...: {len} bytes, at most {max}")]
    TooLong {
        start: String,
        len: usize,
        max: usize,
    },
}

impl VolumeName {
    /// The longest name of a new volume: its staging directories
    /// (`.<name>.creating`, `.<name>.removing`) must fit in one file name
    /// (NAME_MAX, 255 bytes), or making the volume would fail half-way
    /// with ENAMETOOLONG.
    pub const MAX: usize = 255 - ".".len() - ".creating".len();

    /// The longest name read back from a record: 255 bytes, the limit
    /// before [`VolumeName::MAX`] (a plugin volume of a longer name, which
    /// has no staging directory, was made then and still works).
    pub const MAX_RECORDED: usize = 255;

    /// Parses the name of a volume to make or use.
    pub fn parse(name: &str) -> Result<Self, InvalidVolumeName> {
        Self::parse_within(name, Self::MAX)
    }

    /// Parses a name read back from a record.
    pub fn parse_recorded(name: &str) -> Result<Self, InvalidVolumeName> {
        Self::parse_within(name, Self::MAX_RECORDED)
    }

    fn parse_within(name: &str, max: usize) -> Result<Self, InvalidVolumeName> {
        let chars_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !chars_ok {
            return Err(InvalidVolumeName::Characters(name.to_owned()));
        }
        if name.len() > max {
            return Err(InvalidVolumeName::TooLong {
                // ASCII by now: any byte is a character boundary.
                start: name[..16].to_owned(),
                len: name.len(),
                max,
            });
        }
        Ok(VolumeName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for VolumeName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for VolumeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<VolumeName> for String {
    fn from(v: VolumeName) -> String {
        v.0
    }
}

// Deserialising validates as a recorded name.
string_serde!(VolumeName, VolumeName::parse_recorded);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_docker() {
        for ok in ["data", "a.b-c_d", "0"] {
            assert!(VolumeName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "..", ".x", "a\0b", "é", &"x".repeat(256)] {
            assert!(VolumeName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn recorded_names_may_be_longer() {
        let long = "x".repeat(VolumeName::MAX + 1);
        assert!(VolumeName::parse(&long).is_err());
        assert!(VolumeName::parse_recorded(&long).is_ok());
        assert!(VolumeName::parse_recorded(&"x".repeat(256)).is_err());
    }
}
