//! Containers: a read-write layer on an init layer on the image's top
//! layer. The init layer (`<mount-id>-init`) holds what every container
//! gets whatever its image has there: `/etc/hosts`, `/etc/resolv.conf`,
//! `/etc/hostname`, the mount points `/proc`, `/sys`, `/dev`, `/dev/pts`,
//! `/dev/shm`, and `/etc/mtab -> /proc/mounts`. `commit` and `diff` look
//! at the read-write layer over the init layer, so they never include it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_archive::{Change, Digest};
use strata_driver::LayerKind;

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::ids::{ContainerId, ContainerName, MountId};
use crate::layer::{chain_ids, Layer, LiveStaging};
use crate::port::PortMapping;
use crate::security::Security;
use crate::volume::Mount;
use crate::{atomic, random_hex, time, Store};
use strata_image::{diff_ids, ImageRef};

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
    let lower = v.trim().to_ascii_lowercase();
    let end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(end);
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(invalid(format!(
                "invalid size {v:?}: a number with k, m, g or t"
            )))
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| invalid(format!("invalid size {v:?}")))?;
    let bytes = n * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes >= u64::MAX as f64 {
        return Err(invalid(format!("invalid size {v:?}")));
    }
    Ok(Some(bytes as u64))
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
    fn merged(
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
    let ok = h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid hostname {h:?}"),
        ))
    }
}

/// A container, as `containers/<id>/config.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    #[serde(rename = "ID")]
    pub id: ContainerId,
    pub name: ContainerName,
    #[serde(with = "digest_json")]
    pub image: Digest,
    pub created: String,
    pub cmd: Vec<String>,
    pub driver: String,
    #[serde(rename = "MountID")]
    pub mount_id: MountId,
    /// The image's top layer (none for an image without layers).
    #[serde(with = "digest_json::option")]
    pub parent_layer: Option<Digest>,
    /// Volumes and host binds, for the runtime to mount.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// How the command runs (records made before `run` existed have none:
    /// the defaults).
    #[serde(default)]
    pub config: RunConfig,
}

/// Digests as their `sha256:...` strings in JSON.
mod digest_json {
    use serde::{Deserialize, Deserializer, Serializer};
    use strata_archive::Digest;

    pub fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(d.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("bad digest {s:?}")))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Digest>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(d.as_str()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Digest>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(s) => Digest::parse(&s)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom(format!("bad digest {s:?}"))),
            }
        }
    }
}

impl Container {
    pub fn init_id(&self) -> String {
        self.mount_id.init_id()
    }

    /// What a record must hold beyond its types' shapes: the ID of the
    /// directory it was read from, and volume names that are names.
    fn validate(&self, dir_name: &ContainerId) -> std::result::Result<(), String> {
        if &self.id != dir_name {
            return Err(format!(
                "its ID {:?} is not the name of its directory",
                crate::ids::short(&self.id)
            ));
        }
        for m in &self.mounts {
            if let Some(v) = &m.name {
                strata_volume::check_recorded_name(v)
                    .map_err(|e| format!("its mount at {:?}: {e}", m.destination))?;
            }
            // Empty for a plugin's volume whose plugin could not say.
            if !m.source.as_os_str().is_empty() && !m.source.is_absolute() {
                return Err(format!(
                    "its mount at {:?} has a relative source {}",
                    m.destination,
                    m.source.display()
                ));
            }
        }
        Ok(())
    }
}

/// Parses a container's `config.json` as read from `containers/<dir_name>/`:
/// every ID and name in it validated ([`crate::ids`]), its ID the
/// directory's name. The one way a container record is read.
pub(crate) fn parse_config(dir_name: &str, bytes: &[u8]) -> std::result::Result<Container, String> {
    let dir = ContainerId::parse(dir_name).map_err(|e| format!("its directory name: {e}"))?;
    let c: Container =
        serde_json::from_slice(bytes).map_err(|e| format!("bad config.json: {e}"))?;
    c.validate(&dir)?;
    Ok(c)
}

/// The init layer's content, as a tar.
fn init_layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, link: Option<&str>| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        h.set_path(path).expect("fixed short paths");
        if let Some(l) = link {
            h.set_link_name(l).expect("fixed short link");
        }
        h.set_cksum();
        b.append(&h, std::io::empty()).expect("writing to memory");
    };
    use tar::EntryType::{Directory, Regular, Symlink};
    for d in ["dev/", "dev/pts/", "dev/shm/", "etc/", "proc/", "sys/"] {
        add(d, Directory, 0o755, None);
    }
    for f in [
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "dev/console",
    ] {
        add(f, Regular, 0o755, None);
    }
    add("etc/mtab", Symlink, 0o777, Some("/proc/mounts"));
    b.into_inner().expect("writing to memory")
}

impl Store {
    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn mounts_dir(&self, id: &str) -> PathBuf {
        self.image_dir().join("layerdb/mounts").join(id)
    }

    /// Every container, oldest first. Fails if one does not read back:
    /// what decides which layers live must see them all.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let (containers, mut bad) = self.readable_containers()?;
        match bad.pop() {
            Some(e) => Err(e),
            None => Ok(containers),
        }
    }

    /// Every container that reads back, oldest first, and the error of
    /// each that does not (`strata check` says how), for listings that
    /// should still show the rest.
    pub fn readable_containers(&self) -> Result<(Vec<Container>, Vec<Error>)> {
        let dir = self.root.join("containers");
        let (mut out, mut bad) = (Vec::new(), Vec::new());
        for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
            let e = e.ctx(|| format!("listing {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("-removing") {
                continue;
            }
            match self.container(&name) {
                Ok(c) => out.push(c),
                // Removed (renamed away) by another process while listing.
                Err(_) if !e.path().exists() => {}
                Err(err) => bad.push(err),
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok((out, bad))
    }

    /// The container recorded in `containers/<id>/config.json`. `id` is
    /// parsed before it is joined to a path, and the record must say the
    /// same ID: a record that fails is corrupt, never used.
    pub(crate) fn container(&self, id: &str) -> Result<Container> {
        let corrupt = |why: String| {
            Error::new(
                ErrorKind::Corrupt,
                format!("container {id} is corrupt: {why} (see `strata check`)"),
            )
        };
        let cid = ContainerId::parse(id).map_err(|e| corrupt(e.to_string()))?;
        let p = self.container_dir(&cid).join("config.json");
        let bytes = atomic::read_capped(&p, atomic::RECORD_CAP).map_err(|e| match e.kind() {
            ErrorKind::Corrupt => e,
            _ => Error::with(e.kind(), format!("container {id}"), e),
        })?;
        let c = parse_config(&cid, &bytes).map_err(&corrupt)?;
        self.check_volume_sources(&c).map_err(corrupt)?;
        Ok(c)
    }

    /// A local volume's source is its `_data` in this store, and nothing
    /// else: the runtime bind-mounts the recorded source into the
    /// container, so a record edited to say `/etc` would hand the host's
    /// `/etc` to it.
    pub(crate) fn check_volume_sources(&self, c: &Container) -> std::result::Result<(), String> {
        for m in &c.mounts {
            let Some(name) = m.local_volume() else {
                continue;
            };
            // Any store root: a store moved or reached by another path
            // keeps its records (the volume is found by its name).
            let want = Path::new("volumes").join(name).join("_data");
            if !m.source.is_absolute() || !m.source.ends_with(&want) {
                return Err(format!(
                    "its mount at {:?} names local volume {name}, but its source is {}, not <root>/{}",
                    m.destination,
                    m.source.display(),
                    want.display()
                ));
            }
        }
        Ok(())
    }

    /// Finds a container as Docker does: by full ID, then by exact name,
    /// then by unique ID prefix (so a name that looks like an ID never
    /// hides the container that has that ID).
    pub fn resolve_container(&self, s: &str) -> Result<Container> {
        if let Ok(id) = ContainerId::parse(s) {
            if fs::symlink_metadata(self.container_dir(&id)).is_ok() {
                return self.container(&id);
            }
        }
        // By name: the names index, not a scan of every config.
        if let Ok(name) = ContainerName::parse(s) {
            if let Some(id) = self.name_target(&name)? {
                if fs::symlink_metadata(self.container_dir(&id)).is_ok() {
                    return self.container(&id);
                }
            }
        }
        let dir = self.root.join("containers");
        let ids: Vec<ContainerId> = fs::read_dir(&dir)
            .ctx(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| ContainerId::parse(&e.file_name().to_string_lossy()).ok())
            .collect();
        let hits: Vec<&ContainerId> = ids
            .iter()
            .filter(|id| !s.is_empty() && id.starts_with(s))
            .collect();
        match hits.as_slice() {
            [one] => self.container(one),
            [] => Err(Error::new(
                ErrorKind::NotFound,
                format!("no such container: {s}"),
            )),
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("container ID prefix {s:?} is ambiguous"),
            )),
        }
    }

    /// `names/<name>`: the container ID a name stands for.
    pub(crate) fn name_path(&self, name: &ContainerName) -> PathBuf {
        self.root.join("names").join(name)
    }

    /// The container ID `names/<name>` holds (`None` when there is no
    /// such name); a file that holds anything but an ID is corrupt.
    pub(crate) fn name_target(&self, name: &ContainerName) -> Result<Option<ContainerId>> {
        let p = self.name_path(name);
        let s = match atomic::read(&p) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        ContainerId::parse(&s).map(Some).map_err(|e| {
            Error::with(
                ErrorKind::Corrupt,
                format!(
                    "the name {name} is corrupt: {} (see `strata check`)",
                    p.display()
                ),
                e,
            )
        })
    }

    /// Whether a live container has `name`.
    pub(crate) fn name_taken(&self, name: &ContainerName) -> bool {
        self.name_target(name).is_ok_and(|id| {
            id.is_some_and(|id| self.container_dir(&id).join("config.json").is_file())
        })
    }

    /// `strata create`: the init and read-write layers on the image's top
    /// layer, and the container's records. Returns the container.
    pub fn create_container(&self, image: &str, spec: &ContainerSpec) -> Result<Container> {
        let _lock = self.lock()?;
        let image_id = self.resolve_image(image)?;
        let config = self.image_json(&image_id)?;
        let ids = diff_ids(&config)
            .map_err(|why| Error::new(ErrorKind::Corrupt, format!("image {image}: {why}")))?;
        let parent = chain_ids(&ids).pop().map(|c| self.layer(&c)).transpose()?;
        let id = ContainerId::parse(&random_hex(32)?).expect("random_hex(32) is an ID");
        let name = match &spec.name {
            Some(n) => {
                let n = parse_name(n)?;
                if self.name_taken(&n) {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("the container name {n:?} is in use"),
                    ));
                }
                n
            }
            None => ContainerName::parse(&format!("strata-{}", id.short()))
                .expect("strata-<hex> is a name"),
        };
        let size = storage_size(&spec.config.host_config.storage_opt)?;
        // Refused before anything is made by a driver that cannot
        // enforce a limit, never ignored.
        let quota = size
            .map(|_| self.driver.quota())
            .transpose()
            .map_err(|e| Error::driver("--storage-opt size", e))?;
        let plan = self.plan_mounts(&spec.volumes_from, &spec.volumes)?;
        let cmd = command(&config, &spec.cmd, spec.entrypoint.as_deref());
        let run_config = spec
            .config
            .merged(&config, &|k| std::env::var(k).ok(), &id)?;
        let mut c = Container {
            id: id.clone(),
            name,
            image: image_id,
            created: time::now_rfc3339(),
            cmd,
            driver: self.driver.name().to_owned(),
            mount_id: MountId::parse(&random_hex(32)?).expect("random_hex(32) is an ID"),
            parent_layer: parent.as_ref().map(|l| l.chain_id.clone()),
            mounts: Vec::new(),
            config: run_config,
        };
        let staging = self.staging()?;
        atomic::write_staged(&staging.join("container-id"), c.id.as_bytes())?;
        atomic::write_staged(&staging.join("name"), c.id.as_bytes())?;
        atomic::write_staged(&staging.join("mount-id"), c.mount_id.as_bytes())?;
        atomic::write_staged(&staging.join("init-id"), c.init_id().as_bytes())?;
        let parent_cache = parent.as_ref().map(|l| l.cache_id.as_str());
        let made = (|| {
            self.make_init_layer(&c, parent_cache)?;
            self.driver
                .create(&c.mount_id, Some(&c.init_id()), LayerKind::ReadWrite)
                .map_err(|e| Error::driver("creating the container layer", e))?;
            if let (Some(q), Some(bytes)) = (quota, size) {
                q.set_size_limit(&c.mount_id, bytes)
                    .map_err(|e| Error::driver("limiting the container's size", e))?;
            }
            self.make_mounts(&c.mount_id, plan)
        })();
        match made {
            Ok(mounts) => c.mounts = mounts,
            Err(e) => {
                let _ = self.driver.remove(&c.mount_id);
                let _ = self.driver.remove(&c.init_id());
                let _ = fs::remove_dir_all(&staging);
                return Err(e);
            }
        }
        if let Some(p) = &c.parent_layer {
            atomic::write_staged(&staging.join("parent"), p.as_str().as_bytes())?;
        }
        let cdir_staging = staging.join("container");
        fs::create_dir(&cdir_staging).ctx(|| "staging the container".into())?;
        let cfg = serde_json::to_vec_pretty(&c).expect("serialising a container");
        atomic::write_staged(&cdir_staging.join("config.json"), &cfg)?;
        // Durable before published: one syncfs flushes the init layer and
        // the staged records with a single cache flush (fsync-ing each of
        // the dozen files costs a flush apiece: several times slower).
        self.sync_driver()?;
        // Publish: config first, the mounts record last. A crash between
        // the two renames leaves staging that names the published
        // container: the next open finishes the job (`clean_staging`).
        fs::rename(&cdir_staging, self.container_dir(&id))
            .ctx(|| "publishing the container".into())?;
        fs::rename(staging.join("name"), self.name_path(&c.name))
            .ctx(|| "publishing the container's name".into())?;
        fs::rename(&staging, self.mounts_dir(&id)).ctx(|| "publishing the container".into())?;
        // The renames are not flushed here: the container is whole on disk
        // before any of them, so a crash can only lose all of it or leave
        // staging the next open completes, never half a container. The
        // file system's next commit (or any later strata flush) makes the
        // creation durable; a second syncfs would cost as much as the rest
        // of `create` (see README, "Durability").
        Ok(c)
    }

    /// A container's init layer on the image's top layer (`parent_cache`):
    /// what `create` puts under the read-write layer, and what `check
    /// --repair` makes again when it is lost.
    pub(crate) fn make_init_layer(&self, c: &Container, parent_cache: Option<&str>) -> Result<()> {
        self.driver
            .create(&c.init_id(), parent_cache, LayerKind::ReadOnly)
            .map_err(|e| Error::driver("creating the init layer", e))?;
        self.driver
            .apply_diff(
                &c.init_id(),
                parent_cache,
                &mut std::io::Cursor::new(init_layer_tar()),
            )
            .map_err(|e| Error::driver("writing the init layer", e))?;
        Ok(())
    }

    /// `strata mount`: the merged view's path (mounting it). The mount
    /// outlives this call; `strata umount` ([`Store::unmount`]) gives it
    /// back.
    pub fn mount(&self, c: &Container) -> Result<PathBuf> {
        let _lock = self.lock()?;
        self.driver
            .get(&c.mount_id, None)
            .map(strata_driver::Mount::keep)
            .map_err(|e| Error::driver(format!("mounting container {}", c.name), e))
    }

    /// `strata umount`.
    pub fn unmount(&self, c: &Container) -> Result<()> {
        let _lock = self.lock()?;
        self.driver
            .put(&c.mount_id)
            .map_err(|e| Error::driver(format!("unmounting container {}", c.name), e))
    }

    /// `strata diff`: the read-write layer's changes over the init layer.
    pub fn container_changes(&self, c: &Container) -> Result<Vec<Change>> {
        self.driver
            .changes(&c.mount_id, Some(&c.init_id()))
            .map_err(|e| Error::driver(format!("changes of container {}", c.name), e))
    }

    /// `strata commit`: the container's changes become a layer on its
    /// image's, and a new image with that layer, a history entry and the
    /// old image as parent. Returns the new image ID.
    ///
    /// The container's files are read with no store lock held: a running
    /// container decides how long reading it takes, and no other command
    /// may wait on it. What the commit builds on is read and its layer
    /// begun under the lock; the layer's staging directory holds a lock of
    /// its own while it fills (so opening the store meanwhile leaves it
    /// alone); the lock is taken again to publish, after checking that
    /// the container and its image layer are still there.
    pub fn commit(&self, c: &Container, reference: Option<&str>, comment: &str) -> Result<Digest> {
        let r = reference.map(ImageRef::parse).transpose()?;
        let (mut config, parent, staged) = {
            let _lock = self.lock()?;
            let config = self.image_json(&c.image)?;
            let parent = c.parent_layer.as_ref().map(|p| self.layer(p)).transpose()?;
            let staged = self.begin_live_layer(parent.as_ref().map(|p| p.cache_id.as_str()))?;
            (config, parent, staged)
        };
        let parent_cache = parent.as_ref().map(|p| p.cache_id.as_str());
        let filled = self.fill_from_container(c, &staged, parent_cache);
        let _lock = self.lock()?;
        let report = match filled {
            Ok(r) => r,
            Err(e) => {
                self.discard_layer(&staged.path, &staged.cache_id);
                return Err(e);
            }
        };
        if let Err(e) = self.still_there(c, parent.as_ref()) {
            self.discard_layer(&staged.path, &staged.cache_id);
            return Err(e);
        }
        let layer = self.finish_layer(
            &staged.path,
            staged.cache_id.clone(),
            parent.as_ref(),
            &report,
        )?;
        let now = time::now_rfc3339();
        let obj = config
            .as_object_mut()
            .ok_or_else(|| Error::new(ErrorKind::Corrupt, "image config is not an object"))?;
        obj.insert("created".into(), json!(now));
        obj.insert("container".into(), json!(c.id));
        let rootfs = obj
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
            Some(ids) => ids.push(json!(layer.diff_id.as_str())),
            None => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    "image config has no rootfs.diff_ids",
                ))
            }
        }
        let entry = json!({ "created": now, "created_by": format!("strata commit {}", c.name), "comment": comment });
        match obj.get_mut("history").and_then(Value::as_array_mut) {
            Some(h) => h.push(entry),
            None => {
                obj.insert("history".into(), json!([entry]));
            }
        }
        let bytes = serde_json::to_vec(&config).expect("serialising JSON");
        let id = self.put_image(&bytes, Some(&c.image))?;
        if let Some(r) = r {
            self.tag_locked(&id, &r)?;
        }
        Ok(id)
    }

    /// Whether what a commit read is still the container's, and its image
    /// layer still there to publish on: the caller holds the store lock.
    fn still_there(&self, c: &Container, parent: Option<&Layer>) -> Result<()> {
        self.container(&c.id).map_err(|e| {
            let what = match e.kind() {
                ErrorKind::NotFound => "was removed while it was committed",
                _ => "cannot be read back to finish the commit",
            };
            Error::with(e.kind(), format!("container {} {what}", c.name), e)
        })?;
        if let Some(p) = parent {
            self.layer(&p.chain_id).map_err(|e| {
                Error::with(
                    e.kind(),
                    format!(
                        "the image layer of container {} went away during the commit",
                        c.name
                    ),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Streams the container's diff into a begun layer through a pipe:
    /// the change is never held whole, on disk or in memory.
    fn fill_from_container(
        &self,
        c: &Container,
        staged: &LiveStaging,
        parent_cache: Option<&str>,
    ) -> Result<strata_driver::ApplyReport> {
        let (mut reader, writer) = std::io::pipe().ctx(|| "making a pipe".into())?;
        std::thread::scope(|s| {
            let diff = s.spawn(move || {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, writer);
                let r = self.driver.diff(&c.mount_id, Some(&c.init_id()), &mut w);
                let flushed = w.flush();
                r.map_err(|e| Error::driver(format!("diff of container {}", c.name), e))
                    .and_then(|rep| flushed.map(|()| rep).ctx(|| "writing the diff".into()))
            });
            let filled = self.fill_layer(&staged.path, &staged.cache_id, parent_cache, &mut reader);
            drop(reader);
            let diffed = diff.join().expect("the diff thread does not panic");
            // When the layer side fails first, the diff only sees the pipe
            // close: report the cause, not the broken pipe.
            match (diffed, filled) {
                (Ok(_), filled) => filled,
                (Err(d), Err(l)) if is_broken_pipe(&d) => Err(l),
                (Err(d), _) => Err(d),
            }
        })
    }

    /// `strata rm`: unmounts (only with `force` when mounted), removes the
    /// layers and records, and the image layers nothing else uses.
    pub fn remove_container(&self, c: &Container, force: bool) -> Result<()> {
        self.remove_container_with(c, force, false)
    }

    /// `strata rm [-v]`: [`Store::remove_container`], and with `volumes`
    /// the container's anonymous volumes no other container uses.
    pub fn remove_container_with(&self, c: &Container, force: bool, volumes: bool) -> Result<()> {
        let _lock = self.lock()?;
        if self.container_state(c)?.status == crate::Status::Running {
            return Err(Error::new(
                ErrorKind::InUse,
                format!(
                    "container {} is running: stop it first, or use rm -f",
                    c.name
                ),
            ));
        }
        let in_use = self
            .driver
            .in_use(&c.mount_id)
            .map_err(|e| Error::driver(format!("container {}", c.name), e))?;
        if in_use && !force {
            return Err(Error::new(
                ErrorKind::InUse,
                format!("container {} is mounted: umount it, or use -f", c.name),
            ));
        }
        if self
            .name_target(&c.name)
            .is_ok_and(|id| id.as_ref() == Some(&c.id))
        {
            fs::remove_file(self.name_path(&c.name))
                .ctx(|| format!("removing the name {}", c.name))?;
        }
        // Records first, to `-removing` names that still say which driver
        // layers to remove: a crash or a failure from here on is finished
        // by the next open, never left as a listed container without its
        // layers.
        let mut doomed = Vec::new();
        for dir in [self.mounts_dir(&c.id), self.container_dir(&c.id)] {
            let d = dir.with_file_name(format!("{}-removing", c.id));
            if dir.exists() {
                fs::rename(&dir, &d).ctx(|| format!("removing container {}", c.name))?;
                doomed.push(d);
            }
        }
        // Forced, or unmounted: any reference left is stale (a killed
        // process's), so release it.
        self.remove_stale_layer(&c.mount_id)?;
        self.remove_stale_layer(&c.init_id())?;
        for d in doomed {
            fs::remove_dir_all(&d).ctx(|| format!("removing container {}", c.name))?;
        }
        self.collect_layers()?;
        if volumes {
            self.remove_anonymous_volumes(c)?;
        }
        Ok(())
    }

    /// `strata export`: the container's merged view as one tar.
    pub fn export(&self, c: &Container, out: &mut dyn Write) -> Result<strata_archive::DiffReport> {
        let path = self.mount(c)?;
        let result = strata_archive::diff_trees(None, &path, out)
            .map(|(_, r)| r)
            .map_err(|e| Error::with(ErrorKind::Io, format!("exporting container {}", c.name), e));
        self.unmount(c)?;
        result
    }
}

/// Whether an error comes from writing to a pipe whose reader went away.
fn is_broken_pipe(e: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A name given to `create`, by Docker's container-name rule.
fn parse_name(n: &str) -> Result<ContainerName> {
    ContainerName::parse(n).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid container name {n:?}: [a-zA-Z0-9][a-zA-Z0-9_.-]*"),
        )
    })
}

/// The command a container runs, as Docker builds it: the image's
/// Entrypoint, then `args` or, when none are given, the image's Cmd. An
/// `entrypoint` given replaces the image's and drops its Cmd (`""`: no
/// entrypoint at all).
fn command(config: &Value, args: &[String], entrypoint: Option<&str>) -> Vec<String> {
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
