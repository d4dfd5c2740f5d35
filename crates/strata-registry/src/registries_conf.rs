//! `registries.conf` as Podman, Buildah and skopeo read it
//! (containers-registries.conf(5), version 2): per registry or
//! repository prefix, whether it is `insecure` (TLS unverified, or plain
//! HTTP), `blocked`, served from another `location`, and which mirrors to
//! try first.
//!
//! ```toml
//! [[registry]]
//! prefix = "docker.io"          # optional; the location by default
//! location = "docker.io"
//! insecure = false
//! blocked = false
//! [[registry.mirror]]
//! location = "mirror.example:5000/hub"
//! insecure = true
//! ```
//!
//! Prefixes are matched against `registry/repository` (the longest wins;
//! `*.example.com` matches any subdomain); the other keys of the format
//! (`unqualified-search-registries`, aliases, `pull-from-mirror`) are not
//! read.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

/// Where the file is read from by default.
pub const DEFAULT_PATH: &str = "/etc/containers/registries.conf";

/// The `[[registry]]` tables of a `registries.conf`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistriesConf {
    #[serde(default, rename = "registry")]
    pub registries: Vec<Registry>,
}

/// One `[[registry]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Registry {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default, rename = "mirror")]
    pub mirrors: Vec<Mirror>,
}

/// One `[[registry.mirror]]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct Mirror {
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
}

/// A place to pull `registry/repository` from: a mirror or the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub registry: String,
    pub repository: String,
    pub insecure: bool,
    pub mirror: bool,
}

impl RegistriesConf {
    /// `$CONTAINERS_REGISTRIES_CONF`, else [`DEFAULT_PATH`].
    pub fn default_path() -> PathBuf {
        std::env::var_os("CONTAINERS_REGISTRIES_CONF")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
    }

    /// Reads `path`; a file that does not exist configures nothing.
    pub fn load(path: &Path) -> Result<RegistriesConf> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistriesConf::default())
            }
            Err(e) => {
                return Err(Error::with(
                    ErrorKind::Refused,
                    format!("reading {}", path.display()),
                    e,
                ))
            }
        };
        let conf: RegistriesConf = toml::from_str(&text).map_err(|e| {
            Error::with(
                ErrorKind::Refused,
                format!("{} is not valid", path.display()),
                e,
            )
        })?;
        for r in &conf.registries {
            if r.prefix.is_none() && r.location.is_none() {
                return Err(Error::new(
                    ErrorKind::Refused,
                    format!(
                        "{}: a [[registry]] has neither prefix nor location",
                        path.display()
                    ),
                ));
            }
        }
        Ok(conf)
    }

    /// The table for `registry/repository`: the longest matching prefix.
    pub fn find(&self, registry: &str, repository: &str) -> Option<&Registry> {
        let name = format!("{registry}/{repository}");
        self.registries
            .iter()
            .filter_map(|r| {
                let prefix = r.prefix.as_deref().or(r.location.as_deref())?;
                matches(prefix, &name).then_some((prefix.len(), r))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, r)| r)
    }

    /// Where to pull `registry/repository` from, in order: its mirrors,
    /// then its location. Refused when its table says `blocked`.
    pub fn endpoints(&self, registry: &str, repository: &str) -> Result<Vec<Endpoint>> {
        let Some(r) = self.find(registry, repository) else {
            return Ok(vec![Endpoint {
                registry: registry.to_owned(),
                repository: repository.to_owned(),
                insecure: false,
                mirror: false,
            }]);
        };
        if r.blocked {
            return Err(Error::new(
                ErrorKind::Refused,
                format!("{registry}/{repository} is blocked by registries.conf"),
            ));
        }
        let name = format!("{registry}/{repository}");
        let prefix = r.prefix.as_deref().or(r.location.as_deref()).unwrap_or("");
        // What follows the prefix: the same for every place it is served.
        let rest = if prefix.starts_with("*.") {
            format!("/{repository}")
        } else {
            name[prefix.len()..].to_owned()
        };
        let at = |location: &str, insecure: bool, mirror: bool| {
            let full = format!("{location}{rest}");
            let (registry, repository) = full.split_once('/').unwrap_or((&full, ""));
            Endpoint {
                registry: registry.to_owned(),
                repository: repository.trim_start_matches('/').to_owned(),
                insecure,
                mirror,
            }
        };
        let mut out: Vec<Endpoint> = r
            .mirrors
            .iter()
            .map(|m| at(&m.location, m.insecure, true))
            .collect();
        let location = if prefix.starts_with("*.") {
            registry
        } else {
            r.location.as_deref().unwrap_or(prefix)
        };
        out.push(at(location, r.insecure, false));
        Ok(out)
    }
}

/// Whether `prefix` names `name` (`host/path`): equal, or followed by a
/// `/`; `*.example.com` matches a host under example.com.
fn matches(prefix: &str, name: &str) -> bool {
    if let Some(domain) = prefix.strip_prefix("*.") {
        let host = name.split('/').next().unwrap_or("");
        let host = host.split(':').next().unwrap_or(host);
        return host.ends_with(&format!(".{domain}"));
    }
    name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> RegistriesConf {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("registries.conf");
        std::fs::write(&p, text).unwrap();
        RegistriesConf::load(&p).unwrap()
    }

    fn ep(registry: &str, repository: &str, insecure: bool, mirror: bool) -> Endpoint {
        Endpoint {
            registry: registry.into(),
            repository: repository.into(),
            insecure,
            mirror,
        }
    }

    #[test]
    fn mirrors_come_first_then_the_location() {
        let c = conf(
            r#"
unqualified-search-registries = ["docker.io"]

[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "mirror.example:5000/hub"
insecure = true
[[registry.mirror]]
location = "other.example"
"#,
        );
        assert_eq!(
            c.endpoints("docker.io", "library/debian").unwrap(),
            [
                ep("mirror.example:5000", "hub/library/debian", true, true),
                ep("other.example", "library/debian", false, true),
                ep("docker.io", "library/debian", false, false),
            ]
        );
        // Not configured: the registry alone.
        assert_eq!(
            c.endpoints("quay.io", "a/b").unwrap(),
            [ep("quay.io", "a/b", false, false)]
        );
    }

    #[test]
    fn the_longest_prefix_wins_and_may_move_the_repository() {
        let c = conf(
            r#"
[[registry]]
location = "reg.example:5000"
insecure = true

[[registry]]
prefix = "reg.example:5000/team"
location = "internal.example/mirror-of-team"
blocked = false
"#,
        );
        assert_eq!(
            c.endpoints("reg.example:5000", "team/app").unwrap(),
            [ep("internal.example", "mirror-of-team/app", false, false)]
        );
        assert_eq!(
            c.endpoints("reg.example:5000", "teamx/app").unwrap(),
            [ep("reg.example:5000", "teamx/app", true, false)]
        );
    }

    #[test]
    fn blocked_and_wildcards() {
        let c = conf(
            r#"
[[registry]]
prefix = "*.blocked.example"
blocked = true
"#,
        );
        let e = c.endpoints("a.blocked.example", "x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(e.to_string().contains("blocked"), "{e}");
        assert!(c.endpoints("blocked.example", "x").is_ok());
    }

    #[test]
    fn a_missing_file_configures_nothing_and_a_broken_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = RegistriesConf::load(&dir.path().join("none")).unwrap();
        assert!(missing.registries.is_empty());
        let p = dir.path().join("bad.conf");
        std::fs::write(&p, "[[registry]\nlocation = 1").unwrap();
        assert_eq!(
            RegistriesConf::load(&p).unwrap_err().kind(),
            ErrorKind::Refused
        );
        std::fs::write(&p, "[[registry]]\ninsecure = true\n").unwrap();
        assert!(RegistriesConf::load(&p).is_err());
    }
}
