//! Finding a plugin's socket by name, as Docker's `pkg/plugins` does.

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::IoContext;
use crate::{check_name, Error, ErrorKind, Result};

/// Spec files are one URL or a small JSON object; anything longer is not
/// a spec file.
const MAX_SPEC: u64 = 64 << 10;

/// Where plugins are looked for by default, first match winning: strata's
/// own directories, then Docker's, so plugins installed for Docker are
/// found too.
pub fn default_dirs() -> Vec<PathBuf> {
    [
        "/run/strata/plugins",
        "/etc/strata/plugins",
        "/run/docker/plugins",
        "/etc/docker/plugins",
        "/usr/lib/docker/plugins",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// The socket of plugin `name`: the first `NAME.sock` or `NAME/NAME.sock`
/// that is a socket in any of `dirs`; failing that, the address in the
/// first `NAME.spec`, `NAME/NAME.spec`, `NAME.json` or `NAME/NAME.json`.
pub fn locate(name: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    check_name(name).map_err(|e| Error::within(format!("volume plugin name {name:?}"), e))?;
    for dir in dirs {
        for path in candidates(dir, name, "sock") {
            if fs::metadata(&path).is_ok_and(|m| m.file_type().is_socket()) {
                return Ok(path);
            }
        }
    }
    for dir in dirs {
        for ext in ["spec", "json"] {
            for path in candidates(dir, name, ext) {
                if path.exists() {
                    return read_spec(name, &path);
                }
            }
        }
    }
    let searched = if dirs.is_empty() {
        "no plugin directories given".to_string()
    } else {
        let dirs: Vec<_> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!("searched {}", dirs.join(", "))
    };
    Err(Error::new(
        ErrorKind::NotFound,
        format!("volume plugin {name} not found: no {name}.sock, {name}.spec or {name}.json ({searched})"),
    ))
}

/// `DIR/NAME.EXT` and `DIR/NAME/NAME.EXT`.
fn candidates(dir: &Path, name: &str, ext: &str) -> [PathBuf; 2] {
    let file = format!("{name}.{ext}");
    [dir.join(&file), dir.join(name).join(file)]
}

/// `NAME.json`: Docker's fields; `Name` is ignored (the file name is the
/// plugin's name, as in Docker) and `TLSConfig` only applies to tcp.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonSpec {
    addr: String,
}

/// The socket path named by a `.spec` (a URL) or `.json` file.
fn read_spec(name: &str, path: &Path) -> Result<PathBuf> {
    let mut text = String::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_SPEC).read_to_string(&mut text))
        .ctx(|| format!("volume plugin {name}: failed to read {}", path.display()))?;
    let addr = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str::<JsonSpec>(&text)
            .map_err(|e| {
                Error::with(
                    ErrorKind::InvalidArgument,
                    format!("volume plugin {name}: bad spec file {}", path.display()),
                    e,
                )
            })?
            .addr
    } else {
        text.trim().to_string()
    };
    socket_of(&addr).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "volume plugin {name}: {} gives address {addr:?}: only unix:///absolute/path sockets are supported (no tcp)",
                path.display()
            ),
        )
    })
}

/// The path of a `unix:///path` URL.
fn socket_of(addr: &str) -> Option<PathBuf> {
    addr.strip_prefix("unix://")
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
}
