//! Containers: a read-write layer on an init layer on the image's top
//! layer. The init layer (`<mount-id>-init`, see `init_layer`) holds
//! what every container gets whatever its image has there. `commit` and
//! `diff` look at the read-write layer over the init layer, so they never
//! include it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strata_archive::{Change, Digest};
use strata_driver::{Driver, LayerKind};

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::ids::{ContainerId, ContainerName, MountId};
use crate::layer::chain_ids;
use crate::layout::{self, record, Layout};
use crate::mount::Mount;
use crate::run_config::{command, storage_size, ContainerSpec, RunConfig};
use crate::staging;
use crate::{atomic, random_hex, time, unflushed, Store};
use strata_image::diff_ids;

/// A container, as `containers/<id>/config.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    #[serde(rename = "ID")]
    pub id: ContainerId,
    pub name: ContainerName,
    #[serde(with = "digest_json")]
    pub image: Digest,
    /// The image as `create` was given it (a reference or an ID), as
    /// `ps` shows it while it still names the same image. Records made
    /// before it was kept have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
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

/// The containers of a store: their records (`containers/<id>/`, the
/// names index `names/`, the mounts records `layerdb/mounts/<id>/`) and
/// their driver layers (read-write and init).
#[derive(Clone)]
pub struct ContainerStore {
    pub(crate) layout: Layout,
    driver: Arc<dyn Driver>,
}

impl ContainerStore {
    pub(crate) fn new(layout: Layout, driver: Arc<dyn Driver>) -> ContainerStore {
        ContainerStore { layout, driver }
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
        let dir = self.layout.containers();
        let (mut out, mut bad) = (Vec::new(), Vec::new());
        for e in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
            let e = e.ctx(|| format!("listing {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if layout::is_removing(&name) || is_dockers(&e.path()) {
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
    pub fn container(&self, id: &str) -> Result<Container> {
        let corrupt = |why: String| {
            Error::new(
                ErrorKind::Corrupt,
                format!("container {id} is corrupt: {why} (see `strata check`)"),
            )
        };
        let cid = ContainerId::parse(id).map_err(|e| corrupt(e.to_string()))?;
        let p = self.layout.container_config(&cid);
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
            let want = Layout::volume_data_rel(name);
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
            if fs::symlink_metadata(self.layout.container(&id)).is_ok() {
                return self.container(&id);
            }
        }
        // By name: the names index, not a scan of every config.
        if let Ok(name) = ContainerName::parse(s) {
            if let Some(id) = self.name_target(&name)? {
                if fs::symlink_metadata(self.layout.container(&id)).is_ok() {
                    return self.container(&id);
                }
            }
        }
        let dir = self.layout.containers();
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

    /// The container ID `names/<name>` holds (`None` when there is no
    /// such name); a file that holds anything but an ID is corrupt.
    pub(crate) fn name_target(&self, name: &ContainerName) -> Result<Option<ContainerId>> {
        let p = self.layout.name(name);
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
        self.name_target(name)
            .is_ok_and(|id| id.is_some_and(|id| self.layout.container_config(&id).is_file()))
    }

    /// A container's init layer on the image's top layer (`parent_cache`):
    /// what `create` puts under the read-write layer, and what `check
    /// --repair` makes again when it is lost.
    pub(crate) fn make_init_layer(&self, c: &Container, parent_cache: Option<&str>) -> Result<()> {
        self.driver
            .create(&c.init_id(), parent_cache, LayerKind::Init)
            .map_err(|e| Error::driver("creating the init layer", e))?;
        crate::init_layer::write(self.driver.as_ref(), &c.init_id(), parent_cache)
    }

    /// `strata diff`: the read-write layer's changes over the init layer.
    pub fn changes(&self, c: &Container) -> Result<Vec<Change>> {
        self.driver
            .changes(&c.mount_id, Some(&c.init_id()))
            .map_err(|e| Error::driver(format!("changes of container {}", c.name), e))
    }
}

/// The facade's container methods: [`ContainerStore`]'s, and what spans
/// stores.
impl Store {
    /// [`ContainerStore::containers`].
    pub fn containers(&self) -> Result<Vec<Container>> {
        self.containers.containers()
    }

    /// [`ContainerStore::readable_containers`].
    pub fn readable_containers(&self) -> Result<(Vec<Container>, Vec<Error>)> {
        self.containers.readable_containers()
    }

    /// [`ContainerStore::resolve_container`].
    pub fn resolve_container(&self, s: &str) -> Result<Container> {
        self.containers.resolve_container(s)
    }

    /// `strata create`: the init and read-write layers on the image's top
    /// layer, and the container's records. Returns the container.
    pub fn create_container(&self, image: &str, spec: &ContainerSpec) -> Result<Container> {
        let lock = self.lock()?;
        let image_id = self.resolve_image(image)?;
        let config = self.images.image_json(&image_id)?;
        let ids = diff_ids(&config)
            .map_err(|why| Error::new(ErrorKind::Corrupt, format!("image {image}: {why}")))?;
        let parent = chain_ids(&ids).pop().map(|c| self.layer(&c)).transpose()?;
        let id = ContainerId::parse(&random_hex(32)?).expect("random_hex(32) is an ID");
        let name = match &spec.name {
            Some(n) => {
                let n = parse_name(n)?;
                if self.containers.name_taken(&n) {
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
        let mut plan = self.plan_mounts(&spec.volumes_from, &spec.volumes)?;
        self.plan_image_volumes(&config, &spec.config.host_config.tmpfs, &mut plan)?;
        let cmd = command(&config, &spec.cmd, spec.entrypoint.as_deref());
        let mut run_config = spec
            .config
            .merged(&config, &|k| std::env::var(k).ok(), &id)?;
        run_config.host_config.binds = spec
            .volumes
            .iter()
            .filter(|v| {
                strata_volume::spec::parse(v)
                    .is_ok_and(|s| !matches!(s.source, strata_volume::spec::Source::Anonymous))
            })
            .cloned()
            .collect();
        let mut c = Container {
            id: id.clone(),
            name,
            image: image_id,
            image_name: Some(image.to_owned()),
            created: time::now_rfc3339(),
            cmd,
            driver: self.driver.name().to_owned(),
            mount_id: MountId::parse(&random_hex(32)?).expect("random_hex(32) is an ID"),
            parent_layer: parent.as_ref().map(|l| l.chain_id.clone()),
            mounts: Vec::new(),
            config: run_config,
        };
        let staging = staging::new_staging(&self.layout)?;
        atomic::write_staged(&staging.join(record::CONTAINER_ID), c.id.as_bytes())?;
        atomic::write_staged(&staging.join(record::NAME), c.id.as_bytes())?;
        atomic::write_staged(&staging.join(record::MOUNT_ID), c.mount_id.as_bytes())?;
        atomic::write_staged(&staging.join(record::INIT_ID), c.init_id().as_bytes())?;
        let parent_cache = parent.as_ref().map(|l| l.cache_id.as_str());
        let made = (|| {
            self.containers.make_init_layer(&c, parent_cache)?;
            self.driver
                .create(&c.mount_id, Some(&c.init_id()), LayerKind::ReadWrite)
                .map_err(|e| Error::driver("creating the container layer", e))?;
            if let (Some(q), Some(bytes)) = (quota, size) {
                q.set_size_limit(&c.mount_id, bytes)
                    .map_err(|e| Error::driver("limiting the container's size", e))?;
            }
            self.make_mounts(&lock, &c.mount_id, plan)
        })();
        match made {
            Ok(mounts) => c.mounts = mounts,
            Err(e) => {
                let _ = self.driver.remove(&c.mount_id);
                let _ = self.driver.remove(&c.init_id());
                let _ = fs::remove_dir_all(&staging);
                if e.kind() == ErrorKind::Unsupported {
                    let why = format!(
                        "image {image} has {} layers, and a container stacks its init and read-write layers on them",
                        ids.len()
                    );
                    return Err(Error::within(why, e));
                }
                return Err(e);
            }
        }
        if let Some(p) = &c.parent_layer {
            atomic::write_staged(&staging.join(record::PARENT), p.as_str().as_bytes())?;
        }
        let cdir_staging = staging.join(record::CONTAINER);
        fs::create_dir(&cdir_staging).ctx(|| "staging the container".into())?;
        let cfg = serde_json::to_vec_pretty(&c).expect("serialising a container");
        atomic::write_staged(&cdir_staging.join(record::CONFIG), &cfg)?;
        // Not flushed: a container holds no user data yet, and a flush
        // costs more than the rest of `create` (see `unflushed`). The
        // marker, made before anything is published, has the first open
        // after a crash make the container whole or remove it. Without a
        // boot ID, or with a driver whose layers copy content (vfs), the
        // container is flushed before it is published, as layers are.
        match unflushed::boot_id().filter(|_| !copies_on_create(self.driver.as_ref())) {
            Some(boot) => unflushed::mark(&self.layout, &boot, &c)?,
            None => self.sync_driver()?,
        }
        // Publish: config first, the mounts record last. A crash between
        // the two renames leaves staging that names the published
        // container: the next open finishes the job (`clean_staging`).
        fs::rename(&cdir_staging, self.layout.container(&id))
            .ctx(|| "publishing the container".into())?;
        fs::rename(staging.join(record::NAME), self.layout.name(&c.name))
            .ctx(|| "publishing the container's name".into())?;
        fs::rename(&staging, self.layout.mount_record(&id))
            .ctx(|| "publishing the container".into())?;
        Ok(c)
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
        self.containers.changes(c)
    }

    /// `strata rm`: unmounts (only with `force` when mounted), removes the
    /// layers and records, and the image layers nothing else uses.
    pub fn remove_container(&self, c: &Container, force: bool) -> Result<()> {
        self.remove_container_with(c, force, false)
    }

    /// `strata rm [-v]`: [`Store::remove_container`], and with `volumes`
    /// the container's anonymous volumes no other container uses.
    pub fn remove_container_with(&self, c: &Container, force: bool, volumes: bool) -> Result<()> {
        let lock = self.lock()?;
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
            .containers
            .name_target(&c.name)
            .is_ok_and(|id| id.as_ref() == Some(&c.id))
        {
            fs::remove_file(self.layout.name(&c.name))
                .ctx(|| format!("removing the name {}", c.name))?;
        }
        // Records first, to `-removing` names that still say which driver
        // layers to remove: a crash or a failure from here on is finished
        // by the next open, never left as a listed container without its
        // layers.
        let removals = crate::staging::Removals::begin(&self.layout, &lock)?;
        let mut doomed = Vec::new();
        for dir in [
            self.layout.mount_record(&c.id),
            self.layout.container(&c.id),
        ] {
            let d = layout::removing(&dir);
            if dir.exists() {
                fs::rename(&dir, &d).ctx(|| format!("removing container {}", c.name))?;
                doomed.push(d);
            }
        }
        // Forced, or unmounted: any reference left is stale (a killed
        // process's), so release it.
        self.layers.remove_stale(&c.mount_id)?;
        self.layers.remove_stale(&c.init_id())?;
        for d in doomed {
            fs::remove_dir_all(&d).ctx(|| format!("removing container {}", c.name))?;
        }
        removals.done();
        unflushed::unmark(&self.layout, c);
        // The container held its own layers (gone above) and its image's
        // top layer; while the image is there its chain stays, so nothing
        // else can have become unreachable and the walk over every image
        // and layer is skipped. Without the image (removed while this
        // container used it), the layers it left are collected, down from
        // its image's top layer.
        if !self.images.image_exists(&c.image) {
            self.collect_from(&lock, c.parent_layer.iter().cloned().collect())?;
        }
        if volumes {
            self.remove_anonymous_volumes(&lock, c)?;
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

/// Whether `driver` copies its parent's content into a new layer (the
/// table's `copies_on_create`): then a container's layers hold data at
/// `create`, and are flushed.
fn copies_on_create(driver: &dyn Driver) -> bool {
    strata_driver::backend(driver.name()).map_or(true, |b| b.capabilities.copies_on_create)
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

impl Store {
    /// The image layers Docker's containers are made on (the store is a
    /// copy of Docker's data root), from their mount records'
    /// `parent`: what garbage collection keeps for them, since strata
    /// does not read their records.
    pub(crate) fn docker_container_parents(&self) -> Result<Vec<Digest>> {
        let dir = self.layout.containers();
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            r => r.ctx(|| format!("listing {}", dir.display()))?,
        };
        for e in entries {
            let e = e.ctx(|| format!("listing {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if ContainerId::parse(&name).is_err() || !is_dockers(&e.path()) {
                continue;
            }
            let parent = self.layout.mount_record(&name).join(record::PARENT);
            if let Some(d) = atomic::read(&parent).ok().and_then(|p| Digest::parse(&p)) {
                out.push(d);
            }
        }
        Ok(out)
    }
}

/// Whether the container directory `dir` is one of Docker's (the store
/// is a copy of Docker's data root): Docker's record, `config.v2.json`,
/// and none of strata's. strata neither lists nor runs such a container;
/// `check` notes it and keeps its layers.
pub(crate) fn is_dockers(dir: &Path) -> bool {
    let has = |f: &str| fs::symlink_metadata(dir.join(f)).is_ok();
    has(record::DOCKER_CONFIG) && !has(record::CONFIG)
}
