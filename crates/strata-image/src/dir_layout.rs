//! The `dir:` layout skopeo writes (`skopeo copy … dir:PATH`), which
//! `podman save --format docker-dir` writes too:
//!
//! ```text
//! version                 "Directory Transport Version: 1.1\n"
//! manifest.json           one image manifest (OCI, or Docker schema 2),
//!                         or the list of a `copy --all`
//! <hex>.manifest.json     with a list: each platform's manifest
//! <hex>                   every other blob (config, layers) by digest
//! ```
//!
//! It names no image: what it holds loads untagged, as `podman load`
//! of it does. Its documents are read through [`Flat`], which finds a
//! blob by its bare hex and a manifest by `manifest.json` or
//! `<hex>.manifest.json`, and checked as an OCI layout's are.

use serde_json::{Map, Value};
use strata_archive::{sha256, Digest};

use crate::error::{Error, Result};
use crate::read::{bad, path, read_image, ImageDesc, DOCKER_LIST, DOCKER_MANIFEST};
use crate::source::{Blob, BlobKey, Source};

/// The versions of the layout read: 1.0 and 1.1 differ only in the
/// per-platform manifests of a list.
const VERSION: &str = "Directory Transport Version: 1.";

/// The image of a `dir:` layout whose `manifest.json` is `bytes` (the
/// object `m`).
pub(crate) fn plan(
    src: &dyn Source,
    bytes: &[u8],
    m: &Map<String, Value>,
) -> Result<Vec<ImageDesc>> {
    const WHAT: &str = "the image of the dir: layout (skopeo, podman docker-dir)";
    match src.read_small(&path("version"), 256) {
        Ok(v) if String::from_utf8_lossy(&v).starts_with(VERSION) => {}
        Ok(v) => {
            return Err(bad(format!(
                "manifest.json is one manifest, as in skopeo's dir: layout, but its version file says {:?}, not {VERSION}x",
                String::from_utf8_lossy(&v).trim()
            )))
        }
        Err(e) => {
            return Err(Error::within(
                "manifest.json is one manifest, as in skopeo's dir: layout, which needs its version file",
                e,
            ))
        }
    }
    let media_type = media_type(m)?;
    let top = sha256(bytes);
    let flat = Flat {
        inner: src,
        top: top.clone(),
    };
    let mut image = read_image(
        &flat,
        &media_type,
        &top,
        bytes.len() as u64,
        None,
        Vec::new(),
        WHAT.to_owned(),
    )?;
    // The pipeline that unpacks the layers opens them in `src` itself:
    // by their names in this layout.
    for l in &mut image.layers {
        if let BlobKey::Digest(d) = &l.key {
            l.name = d.hex().to_owned();
            l.key = BlobKey::Path(l.name.clone());
        }
    }
    Ok(vec![image])
}

/// What `manifest.json` is, from its `mediaType`, or from its shape when
/// it has none (OCI makes the field optional).
fn media_type(m: &Map<String, Value>) -> Result<String> {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    if m.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(bad(
            "manifest.json is a Docker schema 1 manifest (skopeo's dir: layout of an old image), which strata does not load: copy it again with --format v2s2 or oci",
        ));
    }
    if let Some(t) = m.get("mediaType").and_then(Value::as_str) {
        return match t {
            OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST => Ok(t.to_owned()),
            other => Err(bad(format!(
                "manifest.json of the dir: layout: media type {other} is neither an image manifest nor an index"
            ))),
        };
    }
    Ok(if m.contains_key("manifests") {
        OCI_INDEX
    } else {
        OCI_MANIFEST
    }
    .to_owned())
}

/// A `dir:` layout seen as a source keyed by digest.
struct Flat<'a> {
    inner: &'a dyn Source,
    /// The digest of `manifest.json`.
    top: Digest,
}

impl Flat<'_> {
    fn key(key: &BlobKey) -> BlobKey {
        match key {
            BlobKey::Digest(d) => BlobKey::Path(d.hex().to_owned()),
            BlobKey::Path(p) => BlobKey::Path(p.clone()),
        }
    }
}

impl Source for Flat<'_> {
    fn open(&self, key: &BlobKey) -> Result<Blob<'_>> {
        self.inner.open(&Flat::key(key))
    }

    fn read_manifest(&self, digest: &Digest, cap: u64) -> Result<Vec<u8>> {
        let name = if *digest == self.top {
            "manifest.json".to_owned()
        } else {
            format!("{}.manifest.json", digest.hex())
        };
        self.inner.read_small(&path(&name), cap)
    }
}
