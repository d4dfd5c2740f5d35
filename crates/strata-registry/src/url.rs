//! URLs as the client handles them: origins compared, `Location`s
//! resolved, query values encoded, and the part of a URL a message may
//! show.

/// A URL's path and query: what messages show of it (a storage host's
/// signed query is not shown).
pub(crate) fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split('?').next().unwrap_or(path)
}

/// Percent-encodes all but RFC 3986's unreserved characters.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL's scheme and authority, and what it takes to resolve a
/// `Location` against it.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) scheme: String,
    pub(crate) authority: String,
    host: String,
    port: u16,
    /// The URL's path up to its last `/`.
    dir: String,
}

impl Origin {
    pub(crate) fn parse(url: &str) -> Option<Origin> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse().ok()?),
            _ => (authority, default),
        };
        let path = rest[end..].split(['?', '#']).next().unwrap_or("");
        let dir = match path.rfind('/') {
            Some(i) => path[..=i].to_owned(),
            None => "/".to_owned(),
        };
        Some(Origin {
            authority: authority.to_owned(),
            host: host.to_ascii_lowercase(),
            port,
            scheme,
            dir,
        })
    }

    pub(crate) fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    pub(crate) fn same(&self, other: &Origin) -> bool {
        self.scheme == other.scheme && self.host == other.host && self.port == other.port
    }

    /// `location` (absolute, scheme-relative, absolute-path or relative)
    /// against this URL.
    pub(crate) fn resolve(&self, location: &str) -> String {
        if location.contains("://") {
            location.to_owned()
        } else if let Some(rest) = location.strip_prefix("//") {
            format!("{}://{rest}", self.scheme)
        } else if location.starts_with('/') {
            format!("{}{location}", self.base())
        } else {
            format!("{}{}{location}", self.base(), self.dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_request() {
        let o = Origin::parse("https://reg.example:5000/v2/a/blobs/sha256:00?x=1").unwrap();
        assert_eq!(o.resolve("https://cdn.example/b"), "https://cdn.example/b");
        assert_eq!(o.resolve("//cdn.example/b"), "https://cdn.example/b");
        assert_eq!(
            o.resolve("/v2/a/blobs/uploads/u"),
            "https://reg.example:5000/v2/a/blobs/uploads/u"
        );
        assert_eq!(o.resolve("c"), "https://reg.example:5000/v2/a/blobs/c");
    }

    #[test]
    fn origins_compare_by_scheme_host_and_port() {
        let a = Origin::parse("https://Reg.example/v2/").unwrap();
        assert!(a.same(&Origin::parse("https://reg.example:443/x").unwrap()));
        assert!(!a.same(&Origin::parse("http://reg.example/x").unwrap()));
        assert!(!a.same(&Origin::parse("https://reg.example:5000/x").unwrap()));
        assert!(!a.same(&Origin::parse("https://cdn.example/x").unwrap()));
        assert!(Origin::parse("https://user:pw@reg.example/").is_none());
        assert!(Origin::parse("file:///etc/passwd").is_none());
    }

    #[test]
    fn messages_leave_out_queries() {
        assert_eq!(
            path_of("https://s3.example/bucket/blob?X-Amz-Signature=abc"),
            "/bucket/blob"
        );
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
