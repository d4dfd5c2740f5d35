//! What `create` is asked for and how a container's command runs: the
//! run configuration a container record keeps, merged at `create` with
//! the image's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::ids::ContainerId;
use crate::port::PortMapping;
use crate::security::Security;

/// What `create` is asked for.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: Option<String>,
    pub cmd: Vec<String>,
    /// `--entrypoint`: the program instead of the image's Entrypoint
    /// (`""` for none); the image's Cmd is then not used either.
    pub entrypoint: Option<String>,
    /// `-v` specs, as given (see `strata_volume::spec`).
    pub volumes: Vec<String>,
    /// `--volumes-from C[:ro|:rw]`, as given.
    pub volumes_from: Vec<String>,
    /// How the command runs: `-e` (as given: `K=V`, or `K` to take the
    /// caller's value), `-w`, `-u`, `--hostname`, `-i`, `-t`, `--network`,
    /// `-p`.
    /// Empty fields take the image's values.
    pub config: RunConfig,
}

/// How a container's command runs (Docker's container `Config`, the part
/// strata uses). At `create` the image's values fill what was not given,
/// so a record says exactly what `start` will do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RunConfig {
    /// `K=V` pairs: the image's, then `-e` (a later key wins).
    pub env: Vec<String>,
    /// Absolute; empty means `/`.
    pub working_dir: String,
    /// `USER[:GROUP]`, names or numbers; empty means root.
    pub user: String,
    /// Empty means the first 12 hex digits of the container's ID.
    pub hostname: String,
    /// `-t`: a terminal for the process.
    pub tty: bool,
    /// `-i`: stdin passed through.
    pub open_stdin: bool,
    /// One of [`NETWORK_MODES`]: `private` (the default: a network
    /// namespace of its own, connected by pasta or slirp4netns, whichever
    /// is installed), `pasta` or `slirp4netns` (that one), `none` (only
    /// loopback) or `host` (the host's).
    pub network_mode: String,
    /// Read-only root, tmpfs mounts, limits, init.
    pub host_config: HostConfig,
    /// Capabilities, seccomp, `--privileged` (checked by `strata-run`).
    pub security: Security,
    /// `-p`: host ports forwarded to the container's (private networks
    /// only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<PortMapping>,
    /// `--label`: the image's labels, then those given (a later key wins),
    /// as Docker merges them at `create`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The string labels of the image config `image` (`config.Labels`).
pub(crate) fn image_labels(image: &Value) -> BTreeMap<String, String> {
    image
        .pointer("/config/Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// `--label KEY=VALUE` (or `KEY`, an empty value) as Docker reads it; an
/// empty key is refused.
pub fn parse_label(s: &str) -> Result<(String, String)> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.trim().is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid label {s:?}: KEY=VALUE with a key"),
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// What Docker keeps in a container's `HostConfig` besides its mounts
/// and network: the root read-only, tmpfs mounts, resource limits and an
/// init process (parsed and applied by `strata-run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `--read-only`.
    pub read_only_rootfs: bool,
    /// `--tmpfs /path[:options]`, as given.
    pub tmpfs: Vec<String>,
    /// `--memory`, in bytes.
    pub memory: Option<u64>,
    /// `--cpus`, in billionths of a CPU.
    pub nano_cpus: Option<u64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--init`: a small init (tini) runs the command as its child.
    pub init: bool,
    /// `--storage-opt KEY=VALUE`, as given: `size` (Docker's one) limits
    /// the container's layer, on a driver that can ([`storage_size`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
    /// The `-v` specs with a source (`NAME:PATH`, `/host:PATH`), as
    /// given: Docker's `Binds`. Filled by `create`; anonymous volumes are
    /// not among them (Docker keeps those in `Config.Volumes`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<String>,
}

/// The size limit `--storage-opt` asks for, in bytes: `size=N` with an
/// optional unit (`k`, `m`, `g`, `t`, powers of 1024, an `i` and `b`
/// allowed after it: `10G`, `512MiB`), as Docker takes it. Other keys are
/// refused.
pub fn storage_size(opts: &BTreeMap<String, String>) -> Result<Option<u64>> {
    let invalid = |why: String| Error::new(ErrorKind::InvalidArgument, why);
    if let Some(k) = opts.keys().find(|k| k.as_str() != "size") {
        return Err(invalid(format!(
            "unknown storage option {k:?}: the one strata knows is size"
        )));
    }
    let Some(v) = opts.get("size") else {
        return Ok(None);
    };
    match strata_types::parse_size(v.trim())? {
        0 => Err(invalid(format!("invalid size {v:?}: at least one byte"))),
        n => Ok(Some(n)),
    }
}

/// Applies `-e` settings to `env` (`K=V` pairs): `K=V` replaces `K`;
/// `K` alone takes `host_env(K)`, and is dropped when that is `None` (as
/// `docker run -e K` does).
pub fn override_env(
    env: &mut Vec<String>,
    settings: &[String],
    host_env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    for e in settings {
        let kv = match e.split_once('=') {
            Some(_) => e.clone(),
            None => match host_env(e) {
                Some(v) => format!("{e}={v}"),
                None => continue,
            },
        };
        let key = kv.split('=').next().unwrap_or_default();
        if key.is_empty() || key.contains('\0') {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid environment variable {e:?}"),
            ));
        }
        env.retain(|old| old.split('=').next() != Some(key));
        env.push(kv);
    }
    Ok(())
}

/// The network modes `run` knows; the first is the default.
pub const NETWORK_MODES: &[&str] = &["private", "pasta", "slirp4netns", "none", "host"];

impl RunConfig {
    /// The image's `config` section under these settings: `-e` overrides
    /// the image's variables of the same name, `-w` and `-u` its
    /// `WorkingDir` and `User`. `K` alone takes `host_env(K)`, and is
    /// dropped when that is `None` (as `docker run -e K` does).
    pub(crate) fn merged(
        &self,
        image: &Value,
        host_env: &dyn Fn(&str) -> Option<String>,
        id: &ContainerId,
    ) -> Result<RunConfig> {
        let mut env: Vec<String> = image
            .pointer("/config/Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        override_env(&mut env, &self.env, host_env)?;
        let image_str = |k: &str| {
            image
                .pointer(&format!("/config/{k}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let working_dir = match self.working_dir.as_str() {
            "" => image_str("WorkingDir"),
            w => w.to_owned(),
        };
        if !working_dir.is_empty() && !working_dir.starts_with('/') {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("the working directory {working_dir:?} is not absolute"),
            ));
        }
        let network_mode = self.network()?;
        let hostname = match self.hostname.as_str() {
            "" => id.short().to_owned(),
            h => {
                check_hostname(h)?;
                h.to_owned()
            }
        };
        Ok(RunConfig {
            env,
            working_dir,
            user: match self.user.as_str() {
                "" => image_str("User"),
                u => u.to_owned(),
            },
            hostname,
            tty: self.tty,
            open_stdin: self.open_stdin,
            network_mode,
            host_config: self.host_config.clone(),
            security: self.security.clone(),
            publish: self.publish.clone(),
            labels: image_labels(image)
                .into_iter()
                .chain(self.labels.clone())
                .collect(),
        })
    }

    /// The network mode (empty: the default), checked with the published
    /// ports: only a private network has ports of its own to publish, and
    /// one host port takes one mapping.
    fn network(&self) -> Result<String> {
        let mode = match self.network_mode.as_str() {
            "" => NETWORK_MODES[0],
            m if NETWORK_MODES.contains(&m) => m,
            m => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "network mode {m:?}: strata knows {}",
                        NETWORK_MODES.join(", ")
                    ),
                ))
            }
        };
        if let (Some(p), "host" | "none") = (self.publish.first(), mode) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("-p {p}: --network {mode} has no ports to publish"),
            ));
        }
        for (i, p) in self.publish.iter().enumerate() {
            let clash = self.publish[..i].iter().find(|q| {
                q.host_port == p.host_port
                    && q.protocol == p.protocol
                    && (q.host_ip.is_none() || p.host_ip.is_none() || q.host_ip == p.host_ip)
            });
            if let Some(q) = clash {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("-p {p}: host port already published by -p {q}"),
                ));
            }
        }
        Ok(mode.to_owned())
    }
}

/// RFC 1123 host names, as Docker checks `--hostname`.
fn check_hostname(h: &str) -> Result<()> {
    // 1 to 63 letters, digits and hyphens, not starting or ending with one.
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if h.len() > 253 || !h.split('.').all(label) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid hostname {h:?}"),
        ));
    }
    Ok(())
}

/// The command a container runs, as Docker builds it: the image's
/// Entrypoint, then `args` or, when none are given, the image's Cmd. An
/// `entrypoint` given replaces the image's and drops its Cmd (`""`: no
/// entrypoint at all).
pub(crate) fn command(config: &Value, args: &[String], entrypoint: Option<&str>) -> Vec<String> {
    let list = |k: &str| -> Vec<String> {
        config
            .pointer(&format!("/config/{k}"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut v = match entrypoint {
        None => list("Entrypoint"),
        Some("") => Vec::new(),
        Some(e) => vec![e.to_owned()],
    };
    if args.is_empty() && entrypoint.is_none() {
        v.extend(list("Cmd"));
    } else {
        v.extend(args.iter().cloned());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_images_then_the_given_ones() {
        for (given, want) in [
            ("a=1", ("a", "1")),
            ("a", ("a", "")),
            ("a=", ("a", "")),
            ("a=b=c", ("a", "b=c")),
        ] {
            let (k, v) = parse_label(given).unwrap();
            assert_eq!((k.as_str(), v.as_str()), want, "{given}");
        }
        for bad in ["", "=1", " =1"] {
            assert_eq!(
                parse_label(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument
            );
        }
        let image = serde_json::json!({"config": {"Labels": {"tier": "web", "team": "a", "n": 1}}});
        let asked = RunConfig {
            labels: [("tier".to_owned(), "app".to_owned())].into(),
            ..RunConfig::default()
        };
        let id = ContainerId::parse(&"a".repeat(64)).unwrap();
        let merged = asked.merged(&image, &|_| None, &id).unwrap();
        assert_eq!(
            merged.labels,
            [("team", "a"), ("tier", "app")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into()
        );
    }

    #[test]
    fn storage_size_takes_dockers_units_and_only_size() {
        let size = |v: &str| storage_size(&[("size".to_owned(), v.to_owned())].into());
        for (v, want) in [
            ("1024", 1024),
            ("10G", 10 << 30),
            ("512m", 512 << 20),
            ("512MiB", 512 << 20),
            ("1.5k", 1536),
            ("2 GB", 2 << 30),
        ] {
            assert_eq!(size(v).unwrap(), Some(want), "{v}");
        }
        for bad in ["", "x", "10q", "-1", "0", "1..2g"] {
            assert!(size(bad).is_err(), "{bad:?} taken");
        }
        assert_eq!(storage_size(&BTreeMap::new()).unwrap(), None);
        let other = [("dm.basesize".to_owned(), "1g".to_owned())].into();
        let err = storage_size(&other).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }

    #[test]
    fn hostnames_are_rfc_1123() {
        let long_label = "a".repeat(63);
        let long_name = ["abc"; 63].join(".");
        for ok in [
            "web",
            "web-1.example.com",
            "1x",
            long_label.as_str(),
            &long_name,
        ] {
            check_hostname(ok).unwrap();
        }
        let too_long = format!("{long_name}.xyz");
        let label_too_long = "a".repeat(64);
        for bad in [
            "",
            "-web",
            "web-",
            "a..b",
            "a_b",
            "a b",
            "ä",
            too_long.as_str(),
            &label_too_long,
        ] {
            let e = check_hostname(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
    }

    fn network(mode: &str, publish: &[&str]) -> Result<String> {
        RunConfig {
            network_mode: mode.into(),
            publish: publish.iter().map(|p| p.parse().unwrap()).collect(),
            ..Default::default()
        }
        .network()
    }

    #[test]
    fn the_default_network_is_private_and_unknown_modes_are_refused() {
        assert_eq!(network("", &[]).unwrap(), "private");
        for m in NETWORK_MODES {
            assert_eq!(network(m, &[]).unwrap(), *m);
        }
        let e = network("bridge", &[]).unwrap_err();
        assert!(e.to_string().contains("strata knows private"), "{e}");
    }

    #[test]
    fn ports_are_published_only_on_a_private_network_and_once() {
        assert!(network("", &["8080:80", "8080:80/udp", "8081:80"]).is_ok());
        assert!(network("pasta", &["127.0.0.1:8080:80", "127.0.0.2:8080:80"]).is_ok());
        for mode in ["host", "none"] {
            let e = network(mode, &["8080:80"]).unwrap_err();
            assert!(e.to_string().contains("has no ports to publish"), "{e}");
        }
        for clash in [
            &["8080:80", "8080:81"][..],
            &["127.0.0.1:8080:80", "8080:81"],
            &["8080:80", "127.0.0.1:8080:81"],
        ] {
            let e = network("", clash).unwrap_err();
            assert!(
                e.to_string().contains("already published"),
                "{clash:?}: {e}"
            );
        }
    }
}
