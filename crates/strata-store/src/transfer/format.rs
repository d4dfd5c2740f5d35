//! The JSON of the archive formats: Docker's `manifest.json` (ours to
//! define; OCI's index and manifest come from `oci-spec`), and the rules
//! shared by load and save.

use std::collections::BTreeMap;

use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};

/// Largest JSON document (index, manifest, config) read from an archive:
/// a declared size above it is refused before anything is read.
pub(crate) const MAX_JSON: u64 = 16 << 20;

/// `oci-layout`'s content.
pub(crate) const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// The annotation holding an image's name in an OCI index (a full
/// reference, or only a tag).
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and Docker 25 put the full name in.
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One image of a docker-archive's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerManifest {
    /// Path of the config in the archive.
    pub config: String,
    /// `name:tag` references; `null` for an untagged image.
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars, bottom to top.
    pub layers: Vec<String>,
    /// Descriptors of layers kept elsewhere (foreign layers), by diffID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_sources: Option<BTreeMap<String, Descriptor>>,
}

/// This machine's platform in OCI's words: (`os`, `architecture`,
/// `variant`).
pub(crate) fn host_platform() -> (&'static str, &'static str, Option<&'static str>) {
    let arch = crate::image::oci_arch();
    let variant = match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    };
    ("linux", arch, variant)
}

/// A reference as Docker shows it: `docker.io/library/busybox:1` is
/// `busybox:1`, `docker.io/me/app:2` is `me/app:2`.
pub(crate) fn familiar(reference: &str) -> &str {
    for prefix in [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ] {
        if let Some(rest) = reference.strip_prefix(prefix) {
            return rest;
        }
    }
    reference
}
