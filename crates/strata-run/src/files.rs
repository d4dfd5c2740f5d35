//! The per-container `/etc/hosts`, `/etc/hostname` and
//! `/etc/resolv.conf`, written beside the container's record and
//! bind-mounted over the init layer's placeholders: a run never writes
//! them into a layer, so `commit` leaves them out, as Docker does.
//!
//! `hosts` names localhost and the container's host name; `resolv.conf`
//! is the host's (the container shares the host's network, or has none).

use std::fs;
use std::path::Path;

use strata_store::{Container, Error, Result};

/// The host's resolver configuration.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Writes the three files into `dir` (replacing what a previous run left).
pub fn write(dir: &Path, c: &Container) -> Result<()> {
    let hostname = &c.config.hostname;
    let hosts = format!(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n\
         127.0.1.1\t{hostname}\n"
    );
    let resolv = match fs::read(HOST_RESOLV_CONF) {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!("no {HOST_RESOLV_CONF} on the host ({e}): the container gets none");
            Vec::new()
        }
    };
    for (name, data) in [
        ("hosts", hosts.into_bytes()),
        ("hostname", format!("{hostname}\n").into_bytes()),
        ("resolv.conf", resolv),
    ] {
        let p = dir.join(name);
        fs::write(&p, data).map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
    }
    Ok(())
}
