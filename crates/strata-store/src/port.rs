//! Published ports (`-p/--publish [IP:]HOST:CONTAINER[/tcp|/udp]`): a port
//! of the host forwarded to one of a container's, as `docker run -p`
//! writes them. Unlike Docker, the host port is always given (strata
//! picks none) and ranges are not taken.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// The transport a published port forwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One `-p`: the host's `host_ip:host_port` forwarded to the container's
/// `container_port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortMapping {
    /// The host address to listen on; `None`: all of them.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port,
            self.container_port,
            self.protocol.as_str()
        )
    }
}

impl FromStr for PortMapping {
    type Err = Error;

    /// `[IP:]HOST:CONTAINER[/tcp|/udp]`; an IPv6 address in brackets.
    fn from_str(spec: &str) -> Result<Self, Error> {
        parse(spec).map_err(|why| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid port mapping {spec:?}: {why}"),
            )
        })
    }
}

fn parse(spec: &str) -> Result<PortMapping, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        None => (spec, Protocol::Tcp),
        Some((rest, "tcp")) => (rest, Protocol::Tcp),
        Some((rest, "udp")) => (rest, Protocol::Udp),
        Some((_, p)) => return Err(format!("protocol {p:?}: tcp or udp")),
    };
    let (host_ip, ports) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (ip, ports) = bracketed
            .split_once("]:")
            .ok_or("an IPv6 address in brackets is followed by :HOST:CONTAINER")?;
        let ip = ip
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
        (Some(IpAddr::V6(ip)), ports)
    } else {
        match rest.split(':').count() {
            0..=1 => {
                return Err(
                    "HOST:CONTAINER is needed (strata does not choose a host port)".to_owned(),
                )
            }
            2 => (None, rest),
            3 => {
                let (ip, ports) = rest.split_once(':').expect("three parts");
                let ip = ip
                    .parse::<std::net::Ipv4Addr>()
                    .map_err(|_| format!("{ip:?} is not an IPv4 address (IPv6 in brackets)"))?;
                (Some(IpAddr::V4(ip)), ports)
            }
            _ => return Err("too many ':' (an IPv6 address goes in brackets)".to_owned()),
        }
    };
    let (host, container) = ports
        .split_once(':')
        .ok_or("HOST:CONTAINER is needed (strata does not choose a host port)")?;
    Ok(PortMapping {
        host_ip,
        host_port: port(host, "host")?,
        container_port: port(container, "container")?,
        protocol,
    })
}

fn port(s: &str, which: &str) -> Result<u16, String> {
    if s.is_empty() {
        return Err(format!("no {which} port"));
    }
    if s.contains('-') {
        return Err(format!("{which} port {s:?}: ranges are not supported"));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{which} port {s:?} is not a number"));
    }
    match s.parse::<u32>() {
        Ok(0) => Err(format!("{which} port 0: ports are 1 to 65535")),
        Ok(n) if n <= 65535 => Ok(n as u16),
        _ => Err(format!("{which} port {s}: ports are 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> PortMapping {
        spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    fn err(spec: &str) -> String {
        spec.parse::<PortMapping>().unwrap_err().to_string()
    }

    #[test]
    fn host_and_container_ports_default_to_tcp_on_every_address() {
        assert_eq!(
            ok("8080:80"),
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
            }
        );
    }

    #[test]
    fn address_and_protocol_are_taken() {
        let p = ok("127.0.0.1:5353:53/udp");
        assert_eq!(p.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!((p.host_port, p.container_port), (5353, 53));
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(ok("1:65535/tcp").container_port, 65535);
        let v6 = ok("[::1]:8443:443");
        assert_eq!(v6.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(v6.to_string(), "[::1]:8443:443/tcp");
        assert_eq!(p.to_string(), "127.0.0.1:5353:53/udp");
    }

    #[test]
    fn bad_mappings_say_why() {
        for (spec, why) in [
            ("0:80", "host port 0"),
            ("80:0", "container port 0"),
            ("65536:80", "host port 65536"),
            ("80:99999999999", "container port 99999999999"),
            ("http:80", "\"http\" is not a number"),
            ("80:+80", "\"+80\" is not a number"),
            ("80:80/sctp", "protocol \"sctp\""),
            ("80:80/", "protocol \"\""),
            ("80", "HOST:CONTAINER is needed"),
            ("", "HOST:CONTAINER is needed"),
            (":80", "no host port"),
            ("80:", "no container port"),
            ("8000-8010:80", "ranges are not supported"),
            ("localhost:80:80", "not an IPv4 address"),
            ("::1:80:80", "too many ':'"),
            ("[::1:80:80", "in brackets"),
            ("[nope]:80:80", "not an IPv6 address"),
        ] {
            let e = err(spec);
            assert!(e.contains(why), "{spec:?}: {e}");
            assert!(e.contains("invalid port mapping"), "{spec:?}: {e}");
        }
    }

    #[test]
    fn the_record_keeps_every_field() {
        let p = ok("[::1]:8443:443/udp");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"HostIp": "::1", "HostPort": 8443, "ContainerPort": 443, "Protocol": "udp"})
        );
        assert_eq!(serde_json::from_value::<PortMapping>(json).unwrap(), p);
    }
}
