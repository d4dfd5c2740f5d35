//! Which CAs a registry's certificate is checked against: the system's
//! (Debian's `ca-certificates` bundle) plus the registry's own, as Docker
//! reads them from `certs.d/<host:port>/*.crt`.

use std::fs;
use std::path::Path;

use ureq::tls::{parse_pem, Certificate, PemItem};

use crate::error::{Error, ErrorKind, Result};

/// The system's CA bundle on Debian and its derivatives.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The system roots plus every `*.crt` in `certs_d/<registry>/`.
pub fn roots(certs_d: Option<&Path>, registry: &str) -> Result<Vec<Certificate<'static>>> {
    let mut out = Vec::new();
    match fs::read(SYSTEM_BUNDLE) {
        Ok(pem) => out.extend(certificates(&pem, Path::new(SYSTEM_BUNDLE))?),
        Err(e) => tracing::warn!("no system CA bundle at {SYSTEM_BUNDLE}: {e}"),
    }
    let Some(dir) = certs_d.map(|d| d.join(registry)) else {
        return Ok(out);
    };
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(refused(&dir, e)),
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    files.sort();
    for f in files {
        let pem = fs::read(&f).map_err(|e| refused(&f, e))?;
        let certs = certificates(&pem, &f)?;
        if certs.is_empty() {
            return Err(Error::new(
                ErrorKind::Refused,
                format!("{} holds no PEM certificate", f.display()),
            ));
        }
        out.extend(certs);
    }
    Ok(out)
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<Certificate<'static>>> {
    let mut out = Vec::new();
    for item in parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(c)) => out.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::with(
                    ErrorKind::Refused,
                    format!("reading certificates from {}", path.display()),
                    e,
                ))
            }
        }
    }
    Ok(out)
}

fn refused(path: &Path, e: std::io::Error) -> Error {
    Error::with(ErrorKind::Refused, format!("reading {}", path.display()), e)
}
