//! Image references as Docker and Podman read them:
//! `[registry[:port]/]path[:tag][@digest]`.
//!
//! The grammar is distribution's (`reference/regexp.go`), checked by
//! oci-spec's [`Reference`] parser; on top of it come the rules Docker's
//! `ParseNormalizedNamed` adds: a repository name must be lowercase (said
//! in Docker's words), a name without a registry is on Docker Hub, and an
//! official image's name there is `library/NAME`. So `debian`,
//! `library/debian` and `docker.io/library/debian` are one image,
//! `docker.io/library/debian:latest`, shown by its familiar name
//! `debian:latest`. A registry may be an IPv6 address in brackets
//! (`[::1]:5000/app`), which distribution accepts and oci-spec's grammar
//! does not yet: the bracketed host is checked here and the rest by it.

use std::fmt;

use oci_spec::distribution::{ParseError, Reference};

use crate::Digest;

/// Docker Hub, where a name without a registry lives.
pub const DOCKER_HUB: &str = "docker.io";

/// The namespace of Docker Hub's official images.
const OFFICIAL: &str = "library/";

/// A parsed reference, named the way Docker shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    /// The familiar name: `debian`, `user/app`, `localhost:5000/app`
    /// (Docker Hub's `docker.io/` and `library/` left out).
    pub name: String,
    /// The tag; `latest` when the reference has neither tag nor digest,
    /// empty when it is pinned by a digest alone (`NAME@sha256:...`).
    pub tag: String,
    /// The digest a reference pins its content to.
    pub digest: Option<Digest>,
}

/// Why a string is not a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidReference(String);

impl ImageRef {
    /// Parses `s` as Docker does (`docker pull`, `docker tag`).
    pub fn parse(s: &str) -> Result<Self, InvalidReference> {
        let bad = |why: &str| InvalidReference(format!("invalid reference format {s:?}: {why}"));
        if let Some(remote) = uppercase_repository(s) {
            // Docker's words (distribution's ParseNormalizedNamed).
            return Err(InvalidReference(format!(
                "invalid reference format: repository name ({remote}) must be lowercase"
            )));
        }
        if let Some(r) = plain(s) {
            return Ok(r);
        }
        let r = parse_bracketed(s).map_err(|e| bad(&reason(s, e)))?;
        if name_part(s).len() > 255 {
            return Err(bad("the name is longer than 255 bytes"));
        }
        let tag = r.tag().unwrap_or_default();
        if !tag.is_ascii() {
            return Err(bad(TAG_RULE));
        }
        let digest = match r.digest() {
            Some(d) => Some(Digest::parse(d).ok_or_else(|| {
                bad("only sha256 digests of 64 lowercase hex digits (NAME@sha256:HEX)")
            })?),
            None => None,
        };
        Ok(ImageRef {
            name: familiar(r.registry(), r.repository()),
            tag: tag.to_owned(),
            digest,
        })
    }

    /// The registry: `docker.io` for a name without one.
    pub fn registry(&self) -> &str {
        match self.name.split_once('/') {
            Some((first, _)) if is_registry(first) => first,
            _ => DOCKER_HUB,
        }
    }

    /// The repository on its registry: `library/debian`, `user/app`.
    pub fn repository(&self) -> String {
        match self.name.split_once('/') {
            Some((first, rest)) if is_registry(first) => rest.to_owned(),
            Some(_) => self.name.clone(),
            None => format!("{OFFICIAL}{}", self.name),
        }
    }

    /// The tag the reference names: `None` when it is pinned by a digest
    /// alone.
    pub fn tag(&self) -> Option<&str> {
        (!self.tag.is_empty()).then_some(self.tag.as_str())
    }

    /// The digest the reference pins its content to.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository under `tag`, pinned to nothing.
    pub fn with_tag(&self, tag: &str) -> Result<Self, InvalidReference> {
        ImageRef::parse(&format!("{}:{tag}", self.name))
    }

    /// The same repository pinned to `digest`, with no tag: how Docker
    /// names a repository digest (`debian@sha256:...`).
    pub fn with_digest(&self, digest: &Digest) -> Self {
        ImageRef {
            name: self.name.clone(),
            tag: String::new(),
            digest: Some(digest.clone()),
        }
    }

    /// The fully qualified reference:
    /// `docker.io/library/debian:latest`.
    pub fn full(&self) -> String {
        let mut s = format!("{}/{}", self.registry(), self.repository());
        self.push_tag_and_digest(&mut s);
        s
    }

    fn push_tag_and_digest(&self, s: &mut String) {
        if !self.tag.is_empty() {
            s.push(':');
            s.push_str(&self.tag);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
    }
}

/// `name[:tag][@digest]`, with the familiar name.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name.clone();
        self.push_tag_and_digest(&mut s);
        f.write_str(&s)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = InvalidReference;
    fn from_str(s: &str) -> Result<Self, InvalidReference> {
        ImageRef::parse(s)
    }
}

/// The common cases without the grammar: `[HOST[:PORT]/]PATH[:TAG]`
/// with an optional `@sha256:HEX`. `None` sends anything else, valid or
/// not, to the full parser: this accepts a subset of what the grammar
/// does, and reads it the same way (a test holds it to that). It exists
/// because the grammar is a regular expression compiled once per
/// process, which cost a short command such as `strata create` about
/// half of its CPU time.
fn plain(s: &str) -> Option<ImageRef> {
    let (s, digest) = match s.split_once('@') {
        Some((rest, d)) => (rest, Some(Digest::parse(d)?)),
        None => (s, None),
    };
    let (name, tag) = match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => (&s[..i], &s[i + 1..]),
        _ => (s, ""),
    };
    if !tag.is_empty() && !tag_ok(tag) || s.ends_with(':') {
        return None;
    }
    let comps: Vec<&str> = name.split('/').collect();
    let (registry, path) = match comps.as_slice() {
        [first, path @ ..] if !path.is_empty() && is_registry(first) => {
            // Docker Hub's own names are normalised by the grammar.
            if !host_and_port(first) || first.ends_with("docker.io") {
                return None;
            }
            (*first, path)
        }
        all => (DOCKER_HUB, all),
    };
    if !path.iter().all(|c| path_component(c)) {
        return None;
    }
    let repository = match path {
        [one] if registry == DOCKER_HUB => format!("{OFFICIAL}{one}"),
        _ => path.join("/"),
    };
    // The grammar's limit is on the repository (`library/` counted).
    if repository.len() > 255 {
        return None;
    }
    let tag = match (tag, &digest) {
        ("", None) => "latest",
        (t, _) => t,
    };
    Some(ImageRef {
        name: familiar(registry, &repository),
        tag: tag.to_owned(),
        digest,
    })
}

/// distribution's `domain`: labels of letters, digits and inner `-`,
/// joined by `.`, and an optional `:PORT` (no bracketed IPv6 here).
fn host_and_port(c: &str) -> bool {
    let (host, port) = match c.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (c, None),
    };
    host.split('.').all(host_label) && port.is_none_or(port_ok)
}

/// One label of a registry's host: letters, digits and inner `-`.
fn host_label(l: &str) -> bool {
    !l.is_empty()
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A registry's port: digits.
fn port_ok(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
}

/// distribution's `path-component`:
/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        // One run of [a-z0-9]+.
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
        // One separator: `.`, `_`, `__` or `-`+.
        match b[i] {
            b'.' => i += 1,
            b'_' if b.get(i + 1) == Some(&b'_') => i += 2,
            b'_' => i += 1,
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// distribution's `tag`: `[\w][\w.-]{0,127}`.
fn tag_ok(t: &str) -> bool {
    t.len() <= 128
        && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether the first of several components names a registry, as Docker
/// decides: it has a `.` or a `:`, or is `localhost`.
fn is_registry(c: &str) -> bool {
    c.contains(['.', ':']) || c == "localhost"
}

/// Docker's familiar name: Docker Hub's registry and `library/` left out.
fn familiar(registry: &str, repository: &str) -> String {
    if registry != DOCKER_HUB {
        return format!("{registry}/{repository}");
    }
    match repository.strip_prefix(OFFICIAL) {
        Some(name) if !name.contains('/') => name.to_owned(),
        _ => repository.to_owned(),
    }
}

/// The name as given: `s` without its `@digest` and `:tag`.
fn name_part(s: &str) -> &str {
    let s = s.split_once('@').map_or(s, |(n, _)| n);
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => &s[..i],
        _ => s,
    }
}

/// The repository path (`library/Upper`, `a/Upper`) when it has capitals,
/// as distribution's `ParseNormalizedNamed` finds it: after a first
/// component that is a registry (one with a `.` or `:`, `localhost`, or
/// capitals), up to the first `:`.
fn uppercase_repository(s: &str) -> Option<String> {
    let remainder = match s.split_once('/') {
        Some((first, rest)) if is_registry(first) || first.to_lowercase() != first => {
            if first == DOCKER_HUB || first == "index.docker.io" {
                rest.to_owned()
            } else {
                return upper(rest.split(':').next().unwrap_or(rest));
            }
        }
        _ => s.to_owned(),
    };
    let remainder = if remainder.contains('/') {
        remainder
    } else {
        format!("{OFFICIAL}{remainder}")
    };
    upper(remainder.split(':').next().unwrap_or(&remainder))
}

fn upper(remote: &str) -> Option<String> {
    (remote.to_lowercase() != remote).then(|| remote.to_owned())
}

/// A stand-in host for a bracketed IPv6 registry while oci-spec checks
/// the rest (`.invalid` is reserved: RFC 2606).
const IPV6_STAND_IN: &str = "ipv6.invalid";

/// oci-spec's parse, for a registry given as `[IPV6]` too (distribution's
/// `ipv6address`: `\[[a-fA-F0-9:]+\]`).
fn parse_bracketed(s: &str) -> Result<Reference, ParseError> {
    let Some(after) = s.strip_prefix('[') else {
        return Reference::try_from(s);
    };
    let (host, rest) = after
        .split_once(']')
        .ok_or(ParseError::ReferenceInvalidFormat)?;
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
        return Err(ParseError::ReferenceInvalidFormat);
    }
    let r = Reference::try_from(format!("{IPV6_STAND_IN}{rest}").as_str())?;
    let Some(port) = r.registry().strip_prefix(IPV6_STAND_IN) else {
        // `[::1]` with no path after it: not a registry.
        return Err(ParseError::ReferenceInvalidFormat);
    };
    let registry = format!("[{host}]{port}");
    let repository = r.repository().to_owned();
    Ok(match (r.tag(), r.digest()) {
        (Some(t), Some(d)) => {
            Reference::with_tag_and_digest(registry, repository, t.to_owned(), d.to_owned())
        }
        (None, Some(d)) => Reference::with_digest(registry, repository, d.to_owned()),
        (t, None) => Reference::with_tag(registry, repository, t.unwrap_or("latest").to_owned()),
    })
}

const TAG_RULE: &str = "tags are 1 to 128 letters, digits, . _ - (not starting with . or -)";

/// What is wrong with a reference the grammar refused, for the message.
fn reason(s: &str, e: ParseError) -> String {
    match e {
        ParseError::NameEmpty => "no name".to_owned(),
        ParseError::ReferenceInvalidFormat => hint(s).to_owned(),
        other => other.to_string(),
    }
}

/// The first rule `s` breaks, looked for in the order the parts are read.
fn hint(s: &str) -> &'static str {
    let (rest, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    let digest_ok = |d: &str| {
        d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty() && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
    };
    if digest.is_some_and(|d| !digest_ok(d)) {
        return "a digest is ALGORITHM:HEX (NAME@sha256:HEX)";
    }
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if name.is_empty() {
        return "no name";
    }
    if name.split('/').any(str::is_empty) {
        return "an empty name component (`//`, or `/` at an end)";
    }
    if tag.is_some_and(|t| !tag_ok(t)) {
        return TAG_RULE;
    }
    let comps: Vec<&str> = name.split('/').collect();
    let path = match comps.as_slice() {
        [registry, path @ ..] if !path.is_empty() && is_registry(registry) => {
            if let Some(why) = registry_hint(registry) {
                return why;
            }
            path
        }
        all => all,
    };
    if path.iter().any(|c| c.contains(':')) {
        return "a `:` is for the tag, or a registry's port (HOST:PORT/NAME[:TAG])";
    }
    "names are lowercase letters and digits, joined by . _ __ or -, separated by /"
}

/// What is wrong with a `HOST[:PORT]`, if anything.
fn registry_hint(c: &str) -> Option<&'static str> {
    let (host, port) = match c.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || c.starts_with('[') => (h, Some(p)),
        _ => (c, None),
    };
    if port.is_some_and(|p| !port_ok(p)) {
        return Some("a registry's port is digits (HOST:PORT/NAME)");
    }
    if !host.starts_with('[') && !host.split('.').all(host_label) {
        return Some("a registry is HOST[:PORT] with a host of letters, digits, . and -");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_like_docker() {
        let pinned = format!("app@sha256:{HEX}");
        let tagged_and_pinned = format!("localhost:5000/app:v1@sha256:{HEX}");
        let table = [
            ("busybox", "busybox:latest"),
            ("a/b:1.0", "a/b:1.0"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("Registry.Example.com/a/b:x", "Registry.Example.com/a/b:x"),
            ("a.b__c--d_e:_tag", "a.b__c--d_e:_tag"),
            // A port without a path is Docker's reading too: a tag.
            ("localhost:5000", "localhost:5000"),
            // Forms a hand-written parser refused.
            ("a.b-c_d/e", "a.b-c_d/e:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("[::1]:5000/x:tag", "[::1]:5000/x:tag"),
            ("[fe80::1]/x", "[fe80::1]/x:latest"),
            // Docker Hub's names, shown familiar.
            ("library/foo:1", "foo:1"),
            ("docker.io/library/foo:1", "foo:1"),
            ("index.docker.io/library/foo", "foo:latest"),
            ("docker.io/user/app:2", "user/app:2"),
            ("library/a/b", "library/a/b:latest"),
            (&pinned, &pinned),
            (&tagged_and_pinned, &tagged_and_pinned),
        ];
        for (input, want) in table {
            let got = ImageRef::parse(input).map(|r| r.to_string());
            assert_eq!(got.as_deref().ok(), Some(want), "{input:?}: {got:?}");
        }
    }

    #[test]
    fn names_are_qualified_as_docker_qualifies_them() {
        let table = [
            (
                "debian",
                "docker.io",
                "library/debian",
                "docker.io/library/debian:latest",
            ),
            (
                "user/app:1",
                "docker.io",
                "user/app",
                "docker.io/user/app:1",
            ),
            (
                "localhost:5000/x",
                "localhost:5000",
                "x",
                "localhost:5000/x:latest",
            ),
            ("[::1]:5000/a/b:t", "[::1]:5000", "a/b", "[::1]:5000/a/b:t"),
            ("quay.io/a/b", "quay.io", "a/b", "quay.io/a/b:latest"),
        ];
        for (input, registry, repository, full) in table {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!(
                (r.registry(), r.repository().as_str(), r.full().as_str()),
                (registry, repository, full),
                "{input:?}"
            );
        }
        let pinned = ImageRef::parse(&format!("debian@sha256:{HEX}")).unwrap();
        assert_eq!(pinned.tag, "");
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.digest().unwrap().hex(), HEX);
        assert_eq!(pinned.digest.unwrap().hex(), HEX);
    }

    /// The path without the grammar reads every name it takes as the
    /// grammar does: names from the tables here, then every string of up
    /// to five characters over an alphabet of the grammar's edges, then
    /// longer ones drawn at random.
    #[test]
    fn plain_names_read_as_the_grammar_reads_them() {
        let full = |s: &str| -> Option<ImageRef> {
            let r = parse_bracketed(s).ok()?;
            Some(ImageRef {
                name: familiar(r.registry(), r.repository()),
                tag: r.tag().unwrap_or_default().to_owned(),
                digest: r.digest().map(|d| Digest::parse(d).expect("sha256")),
            })
        };
        let mut checked = 0;
        let mut check = |s: &str| {
            if let Some(fast) = plain(s) {
                assert_eq!(Some(&fast), full(s).as_ref(), "{s:?}");
                checked += 1;
            }
        };
        for s in [
            "debian",
            "debian:12",
            "library/debian",
            "library/foo:1",
            "user/app:2",
            "library/a/b",
            "a.b__c--d_e:_tag",
            "a-b---c/d_e/f.g:T.1-x",
            &"a".repeat(247),
            &"a".repeat(248),
            &format!("a/{}", "b".repeat(253)),
            &format!("a/{}", "b".repeat(254)),
            "localhost:5000/app",
            "localhost:5000/app:v1",
            "localhost/a/b",
            "Registry.Example.com/a/b:x",
            "127.0.0.1:5000/x",
            "quay.io/a/b",
            "docker.io/library/foo:1",
            "index.docker.io/library/foo",
            "a.b-c_d/e",
            "-a.b/c",
            "localhost:5000",
            &format!("debian@sha256:{HEX}"),
            &format!("localhost:5000/app:v1@sha256:{HEX}"),
            &format!("x@sha256:{}", &HEX[1..]),
        ] {
            check(s);
        }
        let alphabet = b"aZ0._-/:";
        check(&format!("a.b:1/c@sha256:{HEX}"));
        let mut word = Vec::new();
        for len in 1..=5u32 {
            for n in 0..alphabet.len().pow(len) {
                word.clear();
                let mut n = n;
                for _ in 0..len {
                    word.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                check(std::str::from_utf8(&word).unwrap());
            }
        }
        let wide = b"abz09._-/:_-.Lx";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..50_000 {
            word.clear();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for k in 0..(seed % 24) {
                word.push(wide[((seed >> (k * 2 % 60)) % wide.len() as u64) as usize]);
            }
            let w = std::str::from_utf8(&word).unwrap();
            check(w);
            check(&format!("{w}@sha256:{HEX}"));
        }
        assert!(checked > 1000, "only {checked} names took the plain path");
        assert_eq!(plain(&"a".repeat(248)), None);
        for common in [
            "debian",
            "user/app:2",
            "localhost:5000/app:v1",
            &format!("debian@sha256:{HEX}"),
        ] {
            assert!(plain(common).is_some(), "{common:?} missed the plain path");
        }
    }

    #[test]
    fn accessors_give_the_parts_a_registry_client_needs() {
        let r = ImageRef::parse("localhost:5000/a/b:v1").unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), None);
        assert_eq!(
            r.with_tag("v2").unwrap().to_string(),
            "localhost:5000/a/b:v2"
        );
        assert!(r.with_tag("-bad").is_err());
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(
            r.with_digest(&d).to_string(),
            format!("localhost:5000/a/b@sha256:{HEX}")
        );
        let hub = ImageRef::parse("debian").unwrap();
        assert_eq!((hub.registry(), hub.tag()), ("docker.io", Some("latest")));
        assert_eq!(
            hub.with_digest(&d).to_string(),
            format!("debian@sha256:{HEX}")
        );
    }

    #[test]
    fn uppercase_names_are_refused_in_dockers_words() {
        for (input, remote) in [
            ("Upper", "library/Upper"),
            ("a/Upper:1", "a/Upper"),
            ("docker.io/Upper", "library/Upper"),
            ("localhost:5000/Up", "Up"),
        ] {
            assert_eq!(
                ImageRef::parse(input).unwrap_err().to_string(),
                format!("invalid reference format: repository name ({remote}) must be lowercase"),
            );
        }
        // Capitals in a registry or a tag are fine.
        assert!(ImageRef::parse("lowercase:Uppercase").is_ok());
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
            ("x:é", "tags are"),
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
            ("[::1]:5000", "invalid reference"),
            ("[xyz]/a", "invalid reference"),
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
        let sha512 = format!("a@sha512:{}", "f".repeat(128));
        assert!(ImageRef::parse(&sha512)
            .unwrap_err()
            .to_string()
            .contains("sha256"));
    }
}
