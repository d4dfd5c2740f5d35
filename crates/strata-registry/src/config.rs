//! Where a client's settings come from by default, as Docker and Podman
//! look for them: credentials in the auth file
//! ([`AuthFile::default_path`]), CAs in `/etc/containers/certs.d` or
//! `/etc/docker/certs.d`; and `login`/`logout`, which check credentials
//! against the registry before keeping them.

use std::path::{Path, PathBuf};

use crate::auth_file::{AuthFile, Credentials};
use crate::client::{Client, Options};
use crate::error::{Error, ErrorKind, Result};

/// The `certs.d` directories looked in, Podman's first.
pub const CERTS_D: &[&str] = &["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// The host that serves Docker Hub's API: `docker.io` is a name, not a
/// server.
pub fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

impl Options {
    /// The defaults for `registry`, with its credentials from the auth
    /// file at `auth_file` (the default one when `None`) and its CAs from
    /// the first `certs.d` that has a directory for it.
    pub fn for_registry(registry: &str, auth_file: Option<&Path>) -> Result<Options> {
        let path = auth_file
            .map(Path::to_owned)
            .or_else(AuthFile::default_path);
        let credentials = match path {
            Some(p) => AuthFile::open(&p)?.get(registry)?,
            None => None,
        };
        let certs_d = CERTS_D
            .iter()
            .map(PathBuf::from)
            .find(|d| d.join(registry).is_dir());
        Ok(Options {
            credentials,
            certs_d,
            ..Options::default()
        })
    }
}

/// Checks `creds` against `registry` (`GET /v2/` with the auth it asks
/// for) and, when they work, keeps them in the auth file at `auth_file`.
/// Credentials the registry refuses are not written.
pub fn login(registry: &str, creds: &Credentials, opts: Options, auth_file: &Path) -> Result<()> {
    let client = Client::new(
        api_host(registry),
        Options {
            credentials: Some(creds.clone()),
            ..opts
        },
    )?;
    client.ping()?;
    let mut file = AuthFile::open(auth_file)?;
    file.set(registry, creds);
    file.save()
}

/// Forgets `registry`'s credentials in the auth file at `auth_file`.
pub fn logout(registry: &str, auth_file: &Path) -> Result<()> {
    let mut file = AuthFile::open(auth_file)?;
    if !file.remove(registry) {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("not logged in to {registry} (in {})", auth_file.display()),
        ));
    }
    file.save()
}
