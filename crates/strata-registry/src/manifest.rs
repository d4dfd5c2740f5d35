//! Manifests and indexes by tag or digest
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests>),
//! size-capped and digest-checked.

use sha2::{Digest as _, Sha256};
use strata_archive::Digest;
use ureq::http::Method;

use crate::client::{Client, Payload, Req};
use crate::error::{Error, ErrorKind, Result};

/// Largest manifest or index accepted, as containerd caps them.
pub const MAX_MANIFEST: u64 = 4 << 20;

/// What `get_manifest` accepts: OCI and Docker schema 2 manifests and
/// indexes (manifest lists).
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A manifest or index as the registry served it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    /// Its media type: the `Content-Type`, else the document's own
    /// `mediaType`.
    pub media_type: String,
    /// The sha256 of `bytes`, checked against the digest asked for and
    /// the `Docker-Content-Digest` the registry sent.
    pub digest: Digest,
}

impl Client {
    /// The manifest or index `reference` (a tag or a `sha256:` digest)
    /// names in `repo`. A digest pins the content: anything else is
    /// refused.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<Manifest> {
        check_repo(repo)?;
        let pinned = parse_reference(reference)?;
        let what = format!("manifest {repo}:{reference}");
        let req = Req::new(
            Method::GET,
            self.url(&format!("{repo}/manifests/{reference}")),
            vec![pull_scope(repo)],
        )
        .header("accept", MANIFEST_MEDIA_TYPES.join(", "));
        let mut resp = self.send(req)?;
        if resp.status().as_u16() != 200 {
            return Err(self.refusal(resp, &what));
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let declared = header("content-length").and_then(|l| l.trim().parse::<u64>().ok());
        let too_large = || {
            Error::new(
                ErrorKind::Corrupt,
                format!(
                    "{}: {what} is larger than {} MiB, more than any manifest may be",
                    self.registry(),
                    MAX_MANIFEST >> 20
                ),
            )
        };
        if declared.is_some_and(|n| n > MAX_MANIFEST) {
            return Err(too_large());
        }
        let content_type = header("content-type");
        let served = header("docker-content-digest");
        let bytes = match resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
        {
            Ok(b) => b,
            Err(ureq::Error::BodyExceedsLimit(_)) => return Err(too_large()),
            Err(e) => return Err(crate::client::network(self.registry(), &what, e)),
        };
        let digest = Digest::from_sha256(Sha256::new_with_prefix(&bytes));
        if let Some(want) = &pinned {
            if &digest != want {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "{}: {what}: the registry sent content whose sha256 is {digest}",
                        self.registry()
                    ),
                ));
            }
        }
        if let Some(served) = served.as_deref().map(str::trim) {
            if served.starts_with("sha256:") && served != digest.to_string() {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "{}: {what}: Docker-Content-Digest says {served}, the content's sha256 is {digest}",
                        self.registry()
                    ),
                ));
            }
        }
        let media_type = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim().to_owned())
            .filter(|c| MANIFEST_MEDIA_TYPES.contains(&c.as_str()))
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()?
                    .get("mediaType")?
                    .as_str()
                    .map(str::to_owned)
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Server,
                    format!("{}: {what} has no media type", self.registry()),
                )
            })?;
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Stores `bytes` as the manifest `reference` (a tag or its digest)
    /// in `repo`; returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest> {
        check_repo(repo)?;
        parse_reference(reference)?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(Error::new(
                ErrorKind::Refused,
                format!(
                    "manifest for {repo}:{reference} is larger than {} MiB",
                    MAX_MANIFEST >> 20
                ),
            ));
        }
        let digest = Digest::from_sha256(Sha256::new_with_prefix(bytes));
        let what = format!("storing manifest {repo}:{reference}");
        let req = Req::new(
            Method::PUT,
            self.url(&format!("{repo}/manifests/{reference}")),
            vec![push_scope(repo)],
        )
        .header("content-type", media_type)
        .body(Payload::Bytes(bytes));
        let resp = self.send(req)?;
        let status = resp.status().as_u16();
        if status != 201 && status != 200 {
            return Err(self.refusal(resp, &what));
        }
        if let Some(served) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if served.starts_with("sha256:") && served.trim() != digest.to_string() {
                return Err(Error::new(
                    ErrorKind::Server,
                    format!(
                        "{}: {what}: the registry recorded {served}, not {digest}",
                        self.registry()
                    ),
                ));
            }
        }
        Ok(digest)
    }
}

impl Client {
    /// Every tag of `repo`, in the registry's order, following its
    /// `Link: <...>; rel="next"` pages (a bounded number of them).
    pub fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        check_repo(repo)?;
        let what = format!("the tags of {repo}");
        let mut url = self.url(&format!("{repo}/tags/list?n=1000"));
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let req = Req::new(Method::GET, url.clone(), vec![pull_scope(repo)]);
            let mut resp = self.send(req)?;
            if resp.status().as_u16() != 200 {
                return Err(self.refusal(resp, &what));
            }
            let next = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body = resp
                .body_mut()
                .with_config()
                .limit(MAX_MANIFEST)
                .read_to_vec()
                .map_err(|e| crate::client::network(self.registry(), &what, e))?;
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
                Error::new(
                    ErrorKind::Server,
                    format!("{}: {what}: not a tag list", self.registry()),
                )
            })?;
            // A repository with no tags may say `null`.
            if let Some(list) = v.get("tags").and_then(|t| t.as_array()) {
                for t in list {
                    let t = t.as_str().unwrap_or_default();
                    if parse_reference(t).ok() == Some(None) {
                        tags.push(t.to_owned());
                    }
                }
            }
            match next {
                Some(n) => {
                    url = crate::client::Origin::parse(&url)
                        .expect("our own URL parses")
                        .resolve(&n)
                }
                None => return Ok(tags),
            }
        }
        Err(Error::new(
            ErrorKind::Server,
            format!(
                "{}: {what}: more than {MAX_TAG_PAGES} pages",
                self.registry()
            ),
        ))
    }
}

/// Pages of a tag list followed before giving up.
const MAX_TAG_PAGES: usize = 1000;

/// The target of the `rel="next"` link in a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// A repository name as the distribution spec allows it:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub(crate) fn check_repo(repo: &str) -> Result<()> {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
            && !c.contains("..")
            && !c.contains("___")
    };
    if repo.len() > 255 || !repo.split('/').all(component_ok) {
        return Err(Error::new(
            ErrorKind::Refused,
            format!("{repo:?} is not a repository name"),
        ));
    }
    Ok(())
}

/// A tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`) gives `None`; a sha256
/// digest gives itself.
pub(crate) fn parse_reference(reference: &str) -> Result<Option<Digest>> {
    if reference.contains(':') {
        return Digest::parse(reference).map(Some).ok_or_else(|| {
            Error::new(
                ErrorKind::Refused,
                format!("{reference:?} is not a sha256 digest"),
            )
        });
    }
    let b = reference.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if !ok {
        return Err(Error::new(
            ErrorKind::Refused,
            format!("{reference:?} is not a tag"),
        ));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_the_rel_next_link() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", </next>; rel=next"#).as_deref(),
            Some("/next")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }

    #[test]
    fn repository_names_and_references_are_checked() {
        for ok in ["library/debian", "a", "my-org/sub.dir/app_1", "a__b"] {
            check_repo(ok).unwrap();
        }
        for bad in [
            "", "Upper", "a//b", "/a", "a/", "-a", "a/../b", "a?b", "a b",
        ] {
            assert!(check_repo(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_reference("latest").unwrap(), None);
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(parse_reference(&d).unwrap().is_some());
        for bad in ["", ".x", "a/b", "sha256:zz", "md5:00", &"x".repeat(129)] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }
}
