//! Volumes in the store: `volumes/<name>/{_data,meta.json}` kept by
//! [`strata_volume::local::Local`] (whose docs draw the layout), and the
//! mounts a container's config names.
//!
//! A volume is in use while a container's config names it, stopped or
//! not, as in Docker: `volume rm` refuses it, `-f` included, and prune
//! keeps it. Anonymous volumes carry Docker's label
//! `com.docker.volume.anonymous`; `rm -v` removes a container's anonymous
//! volumes that no other container uses, and `volume prune` removes only
//! anonymous volumes unless `--all` (Docker 23 and later). Named volumes
//! and host paths are never removed by `rm`.
//!
//! A path the image declares a `VOLUME` gets an anonymous volume at
//! `create` unless a `-v`, a `--volumes-from` mount or a `--tmpfs` is
//! already there, filled from the image like any other: what the
//! container writes there is the volume's, never its read-write layer's,
//! so `commit` leaves it out, and `rm -v` or `run --rm` removes it
//! (Docker's rules).
//!
//! Changes take the store lock, like every other change.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use strata_archive::{clean_path, PathInRoot};
use strata_volume::local::{self, Local, Meta};
use strata_volume::VolumeDriver;

use crate::container::Container;
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::layout::Layout;
use crate::lock::Lock;
use crate::mount::{Mount, MountKind};
use crate::{random_hex, time, Store};

/// The label Docker puts on anonymous volumes.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// Linux's own limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

/// A volume, as `volume inspect` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: String,
    /// Where the data is on the host (empty when a plugin cannot say).
    pub mountpoint: PathBuf,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub scope: String,
}

impl Volume {
    /// Whether the volume was made for a `-v /path` with no name.
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

impl From<strata_volume::Error> for Error {
    fn from(e: strata_volume::Error) -> Self {
        use strata_volume::ErrorKind as V;
        let kind = match e.kind() {
            V::InvalidArgument => ErrorKind::InvalidArgument,
            V::NotFound => ErrorKind::NotFound,
            V::AlreadyExists => ErrorKind::AlreadyExists,
            V::InUse => ErrorKind::InUse,
            _ => ErrorKind::Io,
        };
        let (msg, source) = e.into_parts();
        Error::from_parts(kind, msg, source)
    }
}

/// The volumes of a store: `volumes/`, kept by the local driver (which
/// also records the volumes plugins hold), and the plugins.
#[derive(Clone)]
pub struct VolumeStore {
    layout: Layout,
    /// Where volume plugins are looked for.
    plugin_dirs: Vec<PathBuf>,
    /// The store was opened to be read: `volumes/` is not made.
    read_only: bool,
}

impl VolumeStore {
    pub(crate) fn new(layout: Layout, plugin_dirs: Vec<PathBuf>) -> VolumeStore {
        VolumeStore {
            layout,
            plugin_dirs,
            read_only: false,
        }
    }

    /// Never makes `volumes/` (a store opened to be read).
    pub(crate) fn read_only(mut self) -> VolumeStore {
        self.read_only = true;
        self
    }

    pub(crate) fn set_plugin_dirs(&mut self, dirs: Vec<PathBuf>) {
        self.plugin_dirs = dirs;
    }

    /// The local driver over `<root>/volumes`.
    pub(crate) fn local(&self) -> Result<Local> {
        if self.read_only {
            return Ok(Local::existing(&self.layout.volumes()));
        }
        Ok(Local::open(&self.layout.volumes())?)
    }

    /// A volume plugin by name. The one place plugins are looked up.
    pub(crate) fn plugin_driver(&self, name: &str) -> Result<Box<dyn VolumeDriver>> {
        let plugin = strata_volume::plugin::find(
            name,
            &self.plugin_dirs,
            strata_volume::plugin::Timeouts::default(),
        )?;
        Ok(Box::new(plugin))
    }

    /// Where plugin `driver` says volume `name` is (empty when it cannot
    /// say without a mount); unlike [`Store::volume`], a plugin that is
    /// missing or fails is an error.
    pub(crate) fn plugin_mountpoint(&self, driver: &str, name: &str) -> Result<PathBuf> {
        let plugin = self.plugin_driver(driver)?;
        Ok(plugin.path(name)?.unwrap_or_default())
    }

    /// `strata volume create`: a volume named `name` (random when `None`).
    /// An existing volume of that name and driver is returned as it is,
    /// as Docker does, unless other options were asked for.
    pub fn create(
        &self,
        _: &Lock,
        name: Option<&str>,
        driver: &str,
        opts: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Volume> {
        let name = match name {
            Some(n) => n.to_owned(),
            None => random_hex(32)?,
        };
        strata_volume::check_name(&name)?;
        let local = self.local()?;
        if local.exists(&name) {
            let v = self.volume(&name)?;
            if v.driver != driver || (!opts.is_empty() && &v.options != opts) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "volume {name} already exists with driver {} and other options",
                        v.driver
                    ),
                ));
            }
            return Ok(v);
        }
        if driver == local::DRIVER {
            local.create_with(&name, opts, labels)?;
        } else {
            let plugin = self.plugin_driver(driver)?;
            plugin.create(&name, opts)?;
            let meta = Meta {
                driver: driver.to_owned(),
                options: opts.clone(),
                created_at: time::now_rfc3339(),
                labels: labels.clone(),
            };
            if let Err(e) = local.record(&name, &meta) {
                let _ = plugin.remove(&name);
                return Err(e.into());
            }
        }
        self.volume(&name)
    }

    /// A volume by name.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        let local = self.local()?;
        let meta = local.meta(name)?;
        let mountpoint = if meta.driver == local::DRIVER {
            local.data_path(name)
        } else {
            // Listing must not fail for a plugin that is gone: its
            // volumes show without a mountpoint.
            self.plugin_mountpoint(&meta.driver, name)
                .unwrap_or_else(|e| {
                    tracing::debug!("volume {name}: no mountpoint from its driver: {e}");
                    PathBuf::new()
                })
        };
        Ok(Volume {
            name: name.to_owned(),
            driver: meta.driver,
            mountpoint,
            created_at: meta.created_at,
            labels: meta.labels,
            options: meta.options,
            scope: "local".to_owned(),
        })
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> Result<Vec<Volume>> {
        let local = self.local()?;
        local.names()?.iter().map(|n| self.volume(n)).collect()
    }

    /// Removes volume `name` (see [`Store::remove_volume`]), refused
    /// while any of `users()` (the containers that name it) are there.
    pub fn remove(
        &self,
        _: &Lock,
        name: &str,
        force: bool,
        users: impl FnOnce() -> Result<Vec<Container>>,
    ) -> Result<()> {
        let local = self.local()?;
        let meta = match local.meta(name) {
            Err(e) if force && e.kind() == strata_volume::ErrorKind::NotFound => return Ok(()),
            r => r?,
        };
        let users = users()?;
        if !users.is_empty() {
            let names: Vec<&str> = users.iter().map(|c| c.name.as_str()).collect();
            return Err(Error::new(
                ErrorKind::InUse,
                format!("volume {name} is in use by container {}", names.join(", ")),
            ));
        }
        if local.mount_count(name)? > 0 {
            return Err(Error::new(
                ErrorKind::InUse,
                format!("volume {name} is mounted"),
            ));
        }
        if meta.driver != local::DRIVER {
            let removed = self
                .plugin_driver(&meta.driver)
                .and_then(|d| Ok(d.remove(name)?));
            if let Err(e) = removed {
                if !force {
                    return Err(e);
                }
                tracing::warn!("volume {name}: the driver did not remove it: {e}");
            }
        }
        Ok(local.forget(name)?)
    }
}

/// The facade's volume methods: [`VolumeStore`]'s, and what spans stores.
impl Store {
    /// `strata volume create`: a volume named `name` (random when `None`).
    /// An existing volume of that name and driver is returned as it is,
    /// as Docker does, unless other options were asked for.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        driver: &str,
        opts: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Volume> {
        let lock = self.lock()?;
        self.volumes.create(&lock, name, driver, opts, labels)
    }

    /// A volume by name.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        self.volumes.volume(name)
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> Result<Vec<Volume>> {
        self.volumes.volumes()
    }

    /// The containers whose configs name the volume.
    pub fn volume_users(&self, name: &str) -> Result<Vec<Container>> {
        Ok(self
            .containers()?
            .into_iter()
            .filter(|c| c.mounts.iter().any(|m| m.name.as_deref() == Some(name)))
            .collect())
    }

    /// `strata volume rm`: refuses a volume any container uses or that is
    /// mounted, `force` or not (Docker ≥ 1.13). With `force` a missing
    /// volume is no error, and a plugin that fails to remove its volume
    /// does not keep the record.
    ///
    /// Every check comes before the plugin is asked to remove its volume,
    /// so that a refusal never leaves a record whose volume the plugin
    /// has already removed.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let lock = self.lock()?;
        self.remove_volume_held(&lock, name, force)
    }

    /// [`Store::remove_volume`], for a caller holding the lock.
    pub(crate) fn remove_volume_held(&self, lock: &Lock, name: &str, force: bool) -> Result<()> {
        self.volumes
            .remove(lock, name, force, || self.volume_users(name))
    }

    /// `strata volume prune`: removes the anonymous volumes no container
    /// uses (every unused volume with `all`). Returns their names. A
    /// volume that cannot be removed (its plugin refuses, or is gone)
    /// stays, with a warning, and the others are still pruned, as in
    /// Docker.
    pub fn prune_volumes(&self, all: bool) -> Result<Vec<String>> {
        let lock = self.lock()?;
        self.prune_volumes_held(&lock, all)
    }

    /// [`Store::prune_volumes`], for a caller holding the lock.
    pub(crate) fn prune_volumes_held(&self, lock: &Lock, all: bool) -> Result<Vec<String>> {
        let used: std::collections::BTreeSet<String> = self
            .containers()?
            .into_iter()
            .flat_map(|c| c.mounts.into_iter().filter_map(|m| m.name))
            .collect();
        let mut removed = Vec::new();
        for v in self.volumes()? {
            if used.contains(&v.name) || !(all || v.is_anonymous()) {
                continue;
            }
            match self.remove_volume_held(lock, &v.name, false) {
                Ok(()) => removed.push(v.name),
                Err(e) => tracing::warn!("volume {}: not pruned: {e}", v.name),
            }
        }
        Ok(removed)
    }
}

/// Resolves a mount's container path inside the container's `merged`
/// root as the runtime will, symlinks followed inside the root; `None`
/// when the image has nothing there.
///
/// Refused: a symlink whose `..` climbs above the root, and a path that
/// resolves to the root itself (`/data -> /etc/..`): either would put
/// the mount where the user did not ask for it (the class of
/// CVE-2018-15664).
pub(crate) fn resolve_destination(merged: &Path, dest: &str) -> Result<Option<PathInRoot>> {
    let escape = |why: String| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("container path {dest}: {why}"),
        )
    };
    let archive = |e: strata_archive::Error| {
        Error::with(ErrorKind::Io, format!("resolving container path {dest}"), e)
    };
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut todo: Vec<Vec<u8>> = clean_path(dest.as_bytes()).into_iter().rev().collect();
    let mut links = 0;
    let mut missing = false;
    while let Some(c) = todo.pop() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                if done.pop().is_none() {
                    return Err(escape(
                        "a symlink in the image climbs out of the container root".into(),
                    ));
                }
                continue;
            }
            _ => {}
        }
        done.push(c);
        if missing {
            continue;
        }
        let here = done.join(&b'/');
        let Some(found) = PathInRoot::resolve(merged, &here, false).map_err(archive)? else {
            missing = true;
            continue;
        };
        let Some(target) = found.link_target().map_err(archive)? else {
            continue;
        };
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(escape("too many levels of symbolic links".into()));
        }
        done.pop();
        if target.first() == Some(&b'/') {
            done.clear();
        }
        todo.extend(target.split(|b| *b == b'/').rev().map(<[u8]>::to_vec));
    }
    if done.is_empty() {
        return Err(escape(
            "it resolves to the container root through a symlink in the image".into(),
        ));
    }
    if missing {
        return Ok(None);
    }
    PathInRoot::resolve(merged, &done.join(&b'/'), false).map_err(archive)
}

/// Copies the image's content at `found` into the empty volume data
/// directory `data`, keeping owners, modes, times, xattrs and symlinks.
pub(crate) fn populate(found: &PathInRoot, data: &Path, dest: &str, volume: &str) -> Result<()> {
    if !found.is_dir() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("container path {dest} is not a directory in the image: cannot mount volume {volume} there"),
        ));
    }
    let empty = std::fs::read_dir(data)
        .ctx(|| format!("listing {}", data.display()))?
        .next()
        .is_none();
    if !empty {
        return Ok(());
    }
    let shown = format!("{dest} into volume {volume}");
    crate::stream::stream(found, b"", data, &shown)?;
    // The directory itself takes the image's owner and mode, as Docker's
    // copy does (a database's data directory belongs to its user).
    let st = found.stat();
    std::os::unix::fs::chown(data, Some(st.st_uid), Some(st.st_gid))
        .ctx(|| format!("copying the owner of {shown}"))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(st.st_mode & 0o7777))
        .ctx(|| format!("copying the mode of {shown}"))
}

/// The container paths an image config declares volumes at (its
/// `config.Volumes` keys), each checked and cleaned as a `-v /path` is:
/// absolute, without `..`, not `/`; sorted, each once. A config whose `Volumes` is neither
/// an object nor null is refused.
pub fn image_volumes(image: &Value) -> Result<Vec<String>> {
    let declared = match image.pointer("/config/Volumes") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the image config's Volumes is not an object",
            ))
        }
    };
    let mut out: Vec<String> = Vec::new();
    for path in declared.keys() {
        let spec = strata_volume::spec::parse(path)
            .map_err(|e| Error::within(format!("the image's VOLUME {path:?}"), e.into()))?;
        if !matches!(spec.source, strata_volume::spec::Source::Anonymous) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("the image's VOLUME {path:?} is not a container path"),
            ));
        }
        out.push(spec.destination);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A mount as `create` was asked for it, before its volume exists.
pub(crate) struct Planned {
    mount: Mount,
    /// A new anonymous volume is to be made for it.
    anonymous: bool,
    /// Do not fill the volume from the image.
    nocopy: bool,
}

/// `ro`/`rw` and `nocopy`, as a mode string.
fn mode_string(rw: bool, nocopy: bool) -> String {
    let mut parts = vec![if rw { "rw" } else { "ro" }];
    if nocopy {
        parts.push("nocopy");
    }
    parts.join(",")
}

impl Store {
    /// Checks `--volumes-from` and `-v` and says what to mount where;
    /// makes nothing. `--volumes-from C:ro` makes C's mounts read-only;
    /// `:rw` keeps them as C has them. A `-v` replaces a `--volumes-from` mount at the
    /// same container path; two `-v` at one path are an error.
    pub(crate) fn plan_mounts(
        &self,
        volumes_from: &[String],
        volumes: &[String],
    ) -> Result<Vec<Planned>> {
        use strata_volume::spec::{self, Source};
        let mut out: Vec<Planned> = Vec::new();
        for vf in volumes_from {
            let (name, rw) = spec::parse_volumes_from(vf)?;
            let from = self.resolve_container(&name)?;
            for mut m in from.mounts {
                // `:rw` never widens: a mount read-only in `from` stays
                // so, and `:ro` narrows (moby: `RW = m.RW && mode`).
                if let Some(rw) = rw {
                    m.rw &= rw;
                    m.mode = mode_string(m.rw, false);
                }
                out.retain(|p| p.mount.destination != m.destination);
                out.push(Planned {
                    mount: m,
                    anonymous: false,
                    nocopy: true,
                });
            }
        }
        let local = self.volumes.local()?;
        for (i, raw) in volumes.iter().enumerate() {
            let s = spec::parse(raw)?;
            if volumes[..i]
                .iter()
                .filter_map(|o| spec::parse(o).ok())
                .any(|o| o.destination == s.destination)
            {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("duplicate mount point {}", s.destination),
                ));
            }
            let mode = mode_string(s.rw, s.nocopy);
            let mut mount = Mount {
                kind: MountKind::Volume,
                name: None,
                source: PathBuf::new(),
                destination: s.destination.clone(),
                driver: Some(local::DRIVER.to_owned()),
                mode,
                rw: s.rw,
            };
            let anonymous = match s.source {
                Source::Anonymous => true,
                Source::Named(n) => {
                    if local.exists(&n) {
                        // A plugin's volume needs its plugin, now: a
                        // container must not be made on a volume
                        // nothing can mount.
                        let meta = local.meta(&n)?;
                        mount.source = if meta.driver == local::DRIVER {
                            local.data_path(&n)
                        } else {
                            self.volumes.plugin_mountpoint(&meta.driver, &n)?
                        };
                        mount.driver = Some(meta.driver);
                    } else {
                        mount.source = local.data_path(&n);
                    }
                    mount.name = Some(n);
                    false
                }
                Source::Host(p) => {
                    // Never made: a typo must not become a directory
                    // on the host (Docker's `--mount type=bind` rule).
                    if !p.exists() {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            format!(
                                "host path {} does not exist (strata does not create it)",
                                p.display()
                            ),
                        ));
                    }
                    mount.kind = MountKind::Bind;
                    mount.driver = None;
                    mount.source = p;
                    false
                }
            };
            // Only an inherited mount can be there: duplicates are refused.
            out.retain(|p| p.mount.destination != s.destination);
            out.push(Planned {
                mount,
                anonymous,
                nocopy: s.nocopy,
            });
        }
        Ok(out)
    }

    /// Adds to `plan` an anonymous volume for each `VOLUME` of the image
    /// config `image` that no planned mount nor `--tmpfs` (`tmpfs`, as
    /// given) covers, then orders the mounts parents first, so a mount
    /// inside another's path is made on top of it (as Docker sorts them).
    pub(crate) fn plan_image_volumes(
        &self,
        image: &Value,
        tmpfs: &[String],
        plan: &mut Vec<Planned>,
    ) -> Result<()> {
        for dest in image_volumes(image)? {
            let tmpfs_there = tmpfs.iter().any(|t| {
                clean_path(t.split(':').next().unwrap_or_default().as_bytes())
                    == clean_path(dest.as_bytes())
            });
            if tmpfs_there || plan.iter().any(|p| p.mount.destination == dest) {
                continue;
            }
            plan.push(Planned {
                mount: Mount {
                    kind: MountKind::Volume,
                    name: None,
                    source: PathBuf::new(),
                    destination: dest,
                    driver: Some(local::DRIVER.to_owned()),
                    // Docker's for an image's volume: no mode given.
                    mode: String::new(),
                    rw: true,
                },
                anonymous: true,
                nocopy: false,
            });
        }
        plan.sort_by_key(|p| p.mount.destination.matches('/').count());
        Ok(())
    }

    /// Makes the planned volumes and fills new or empty local ones from
    /// the image at their container paths, seen in the container layer
    /// `mount_id`. On error, removes the volumes it made.
    pub(crate) fn make_mounts(
        &self,
        lock: &Lock,
        mount_id: &str,
        plan: Vec<Planned>,
    ) -> Result<Vec<Mount>> {
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        let merged = self
            .driver
            .get(mount_id, None)
            .map_err(|e| Error::driver("mounting the new container", e))?;
        let mut created = Vec::new();
        let made = self.make_mounts_in(lock, &merged, plan, &mut created);
        if let Err(e) = merged.release() {
            tracing::warn!("unmounting the new container: {e}");
        }
        if made.is_err() {
            let local = self.volumes.local()?;
            for name in created {
                let _ = local.forget(&name);
            }
        }
        made
    }

    fn make_mounts_in(
        &self,
        lock: &Lock,
        merged: &Path,
        plan: Vec<Planned>,
        created: &mut Vec<String>,
    ) -> Result<Vec<Mount>> {
        // Every path first: a refused one must leave no volume behind.
        let mut found = Vec::new();
        for p in &plan {
            found.push(resolve_destination(merged, &p.mount.destination)?);
        }
        let local = self.volumes.local()?;
        let mut out = Vec::new();
        for (p, found) in plan.into_iter().zip(found) {
            let mut m = p.mount;
            if m.kind == MountKind::Volume
                && (p.anonymous || m.name.as_deref().is_some_and(|n| !local.exists(n)))
            {
                let mut labels = BTreeMap::new();
                if p.anonymous {
                    labels.insert(ANONYMOUS_LABEL.to_owned(), String::new());
                }
                let v = self.volumes.create(
                    lock,
                    m.name.as_deref(),
                    local::DRIVER,
                    &BTreeMap::new(),
                    &labels,
                )?;
                created.push(v.name.clone());
                m.source = v.mountpoint;
                m.name = Some(v.name);
            }
            if let (false, Some(f), Some(name)) = (p.nocopy, &found, &m.name) {
                if m.driver.as_deref() == Some(local::DRIVER) {
                    populate(f, &local.data_path(name), &m.destination, name)?;
                }
            }
            out.push(m);
        }
        Ok(out)
    }

    /// After `rm -v`: removes the anonymous volumes of `c` that no
    /// container uses any more. Named volumes stay. Called after `c` is
    /// gone.
    pub(crate) fn remove_anonymous_volumes(&self, lock: &Lock, c: &Container) -> Result<()> {
        for name in c.mounts.iter().filter_map(|m| m.name.as_deref()) {
            let Ok(v) = self.volume(name) else { continue };
            if v.is_anonymous() && self.volume_users(name)?.is_empty() {
                self.remove_volume_held(lock, name, false)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn image_volumes_are_checked_and_cleaned_as_a_dash_v_path() {
        for (volumes, want) in [
            (json!(null), vec![]),
            (json!({}), vec![]),
            (json!({"/data": {}}), vec!["/data"]),
            (
                json!({"/data/": {}, "//data": {}, "/a/./b": {}}),
                vec!["/a/b", "/data"],
            ),
        ] {
            let image = json!({"config": {"Volumes": volumes}});
            assert_eq!(image_volumes(&image).unwrap(), want, "{volumes}");
        }
        assert!(image_volumes(&json!({})).unwrap().is_empty());
        for bad in [
            json!({"/": {}}),
            json!({"data": {}}),
            json!({"/a/../etc": {}}),
            json!({"/a\u{0}b": {}}),
            json!({"name:/data": {}}),
            json!({"/etc:/data": {}}),
            json!(["/data"]),
            json!("/data"),
        ] {
            let image = json!({"config": {"Volumes": bad}});
            let e = image_volumes(&image).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
        }
    }
}
