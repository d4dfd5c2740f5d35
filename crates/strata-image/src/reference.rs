//! Image references: `name[:tag]` with Docker's character rules.

use crate::error::{Error, ErrorKind, Result};

/// A `name[:tag]` reference, `latest` when no tag is given.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageRef {
    pub name: String,
    pub tag: String,
}

impl ImageRef {
    /// Parses and checks `name[:tag]` with Docker's grammar
    /// (distribution's `reference/regexp.go`): `/`-separated path
    /// components of lowercase letters and digits joined by `.`, `_`,
    /// `__` or runs of `-`; a first component with a `.` or a `:`, or
    /// `localhost`, followed by more, is a registry (`HOST[:PORT]`); the
    /// tag is the part after the last `:` that has no `/` after it.
    /// Digests (`@sha256:...`) are refused: images are named by tag here.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid reference {s:?}: {why}"),
            )
        };
        if s.contains('@') {
            return Err(bad("digest references (NAME@DIGEST) are not supported"));
        }
        let (name, tag) = match s.rfind(':') {
            Some(i) if !s[i..].contains('/') => (&s[..i], &s[i + 1..]),
            _ => (s, "latest"),
        };
        if name.is_empty() {
            return Err(bad("no name"));
        }
        if name.len() > 255 {
            return Err(bad("the name is longer than 255 bytes"));
        }
        let comps: Vec<&str> = name.split('/').collect();
        if comps.iter().any(|c| c.is_empty()) {
            return Err(bad("an empty name component (`//`, or `/` at an end)"));
        }
        let path = match comps.as_slice() {
            [registry, rest @ ..] if !rest.is_empty() && is_registry(registry) => {
                check_registry(registry).map_err(bad)?;
                rest
            }
            all => all,
        };
        for c in path {
            if c.contains(':') {
                return Err(bad(
                    "a `:` is for the tag, or a registry's port (HOST:PORT/NAME[:TAG])",
                ));
            }
            if !is_path_component(c) {
                return Err(bad(
                    "names are lowercase letters and digits, joined by . _ __ or -, separated by /",
                ));
            }
        }
        let tag_ok = tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !tag_ok {
            return Err(bad(
                "tags are 1 to 128 letters, digits, . _ - (not starting with . or -)",
            ));
        }
        Ok(ImageRef {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

/// Whether the first of several components names a registry, as Docker
/// decides: it has a `.` or a `:`, or is `localhost`.
fn is_registry(c: &str) -> bool {
    c.contains(['.', ':']) || c == "localhost"
}

/// `HOST[:PORT]`: dot-separated labels of letters, digits and inner `-`,
/// and a port of digits.
fn check_registry(c: &str) -> std::result::Result<(), &'static str> {
    let (host, port) = match c.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (c, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !host.split('.').all(label_ok) {
        return Err("a registry is HOST[:PORT] with a host of letters, digits, . and -");
    }
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err("a registry's port is digits (HOST:PORT/NAME)");
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let sep = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        match &c[sep..i] {
            "." | "_" | "__" => {}
            s if s.bytes().all(|b| b == b'-') => {}
            _ => return false,
        }
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
        let table = [
            ("busybox", "busybox:latest"),
            ("a/b:1.0", "a/b:1.0"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("Registry.Example.com/a/b:x", "Registry.Example.com/a/b:x"),
            ("a.b__c--d_e:_tag", "a.b__c--d_e:_tag"),
            // A port without a path is Docker's reading too: a tag.
            ("localhost:5000", "localhost:5000"),
        ];
        for (input, want) in table {
            let got = ImageRef::parse(input).map(|r| r.to_string());
            assert_eq!(got.as_deref().ok(), Some(want), "{input:?}: {got:?}");
        }
    }

    #[test]
    fn odd_references_are_refused_with_the_reason() {
        let table = [
            ("", "no name"),
            ("a:b:c", "a `:` is for the tag"),
            (":tag", "no name"),
            ("name@", "digest"),
            ("name@sha256:abcd", "digest"),
            ("Upper", "lowercase"),
            ("a/Upper:1", "lowercase"),
            ("a//b", "empty name component"),
            ("/a", "empty name component"),
            ("a/", "empty name component"),
            ("x:", "tags are"),
            ("x:.t", "tags are"),
            ("x:-t", "tags are"),
            ("x:a/b", "port is digits"),
            ("localhost:/app", "port is digits"),
            ("localhost:50x/app", "port is digits"),
            ("host:5000:tag", "a `:` is for the tag"),
            ("-a.b/c", "registry is HOST"),
            ("../x", "registry is HOST"),
            ("a..b", "lowercase"),
            ("a._b", "lowercase"),
            ("a___b", "lowercase"),
            ("a-", "lowercase"),
            ("a b", "lowercase"),
        ];
        for (input, want) in table {
            let e = ImageRef::parse(input).expect_err(input).to_string();
            assert!(e.contains("invalid reference"), "{input:?}: {e}");
            assert!(e.contains(want), "{input:?}: {e}");
        }
        let long = "a".repeat(256);
        assert!(ImageRef::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("255"));
        let tag = format!("a:{}", "t".repeat(129));
        assert!(ImageRef::parse(&tag).is_err());
    }
}
