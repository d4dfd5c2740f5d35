//! The per-container `/etc/hosts`, `/etc/hostname` and
//! `/etc/resolv.conf`, written beside the container's record and
//! bind-mounted over the init layer's placeholders: a run never writes
//! them into a layer, so `commit` leaves them out, as Docker does.
//!
//! `hosts` names localhost and the container's host name; `resolv.conf`
//! is the host's, but on a private network its `nameserver` lines are the
//! helper's resolver (see [`crate::network`]): the host's may be on the
//! host's loopback, out of the container's reach.

use std::fs;
use std::path::Path;

use strata_store::{Container, Error, Result};

/// The host's resolver configuration.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Writes the three files into `dir` (replacing what a previous run
/// left); `nameserver` replaces the host's resolvers.
pub fn write(dir: &Path, c: &Container, nameserver: Option<&str>) -> Result<()> {
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
    let resolv = match nameserver {
        Some(ns) => with_nameserver(&resolv, ns),
        None => resolv,
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

/// `resolv` with its `nameserver` lines replaced by one naming `ns`.
fn with_nameserver(resolv: &[u8], ns: &str) -> Vec<u8> {
    let mut out = format!("nameserver {ns}\n").into_bytes();
    for line in resolv.split(|b| *b == b'\n') {
        let first = line.split(u8::is_ascii_whitespace).next().unwrap_or(b"");
        if !line.is_empty() && first != b"nameserver" {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_network_keeps_search_and_options_but_not_the_hosts_resolvers() {
        let host = b"# generated\nnameserver 127.0.0.53\nsearch example.org\nnameserver ::1\noptions edns0\n";
        assert_eq!(
            String::from_utf8(with_nameserver(host, "10.0.2.3")).unwrap(),
            "nameserver 10.0.2.3\n# generated\nsearch example.org\noptions edns0\n"
        );
        assert_eq!(
            with_nameserver(b"", "169.254.1.1"),
            b"nameserver 169.254.1.1\n"
        );
    }
}
