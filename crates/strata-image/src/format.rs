//! The JSON of the archive formats: Docker's `manifest.json` (ours to
//! define; OCI's index and manifest come from `oci-spec`), and the rules
//! shared by load and save.

use std::collections::BTreeMap;

use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_archive::Digest;

/// Largest JSON document (index, manifest, config) read from an archive:
/// a declared size above it is refused before anything is read.
pub const MAX_JSON: u64 = 16 << 20;

/// `oci-layout`'s content.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// The annotation holding an image's name in an OCI index (a full
/// reference, or only a tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and Docker 25 put the full name in.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One image of a docker-archive's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerManifest {
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
pub fn host_platform() -> (&'static str, &'static str, Option<&'static str>) {
    let arch = oci_arch();
    let variant = match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    };
    ("linux", arch, variant)
}

/// A reference as Docker shows it: `docker.io/library/busybox:1` is
/// `busybox:1`, `docker.io/me/app:2` is `me/app:2`.
pub fn familiar(reference: &str) -> &str {
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

/// The OCI name of this machine's architecture.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// `rootfs.diff_ids` of a config.
pub fn diff_ids(v: &Value) -> std::result::Result<Vec<Digest>, String> {
    let ids = v
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .ok_or("the config has no rootfs.diff_ids")?;
    ids.iter()
        .map(|d| {
            d.as_str()
                .and_then(Digest::parse)
                .ok_or_else(|| format!("bad diff_id {d}"))
        })
        .collect()
}
