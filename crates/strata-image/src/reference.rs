//! Image references: `name[:tag]` with Docker's character rules.

use crate::error::{Error, ErrorKind, Result};

/// A `name[:tag]` reference, `latest` when no tag is given.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageRef {
    pub name: String,
    pub tag: String,
}

impl ImageRef {
    /// Parses and checks `name[:tag]` with Docker's character rules.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid reference {s:?}: {why}"),
            )
        };
        let (name, tag) = match s.rfind(':') {
            Some(i) if !s[i..].contains('/') => (&s[..i], &s[i + 1..]),
            _ => (s, "latest"),
        };
        if name.is_empty() || name.len() > 255 {
            return Err(bad("empty or too long name"));
        }
        let name_ok = name.split('/').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphanumeric())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
                && part.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || matches!(b, b'.' | b'_' | b'-' | b':')
                })
        });
        if !name_ok {
            return Err(bad(
                "names are lowercase letters, digits and . _ - separated by /",
            ));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(bad("tags are up to 128 letters, digits, . _ -"));
        }
        Ok(ImageRef {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_docker() {
        assert_eq!(
            ImageRef::parse("busybox").unwrap().to_string(),
            "busybox:latest"
        );
        assert_eq!(ImageRef::parse("a/b:1.0").unwrap().to_string(), "a/b:1.0");
        assert_eq!(
            ImageRef::parse("localhost:5000/app").unwrap().to_string(),
            "localhost:5000/app:latest"
        );
        assert!(ImageRef::parse("Upper").is_err());
        assert!(ImageRef::parse("x:").is_err());
        assert!(ImageRef::parse("../x").is_err());
        assert!(ImageRef::parse("").is_err());
    }
}
