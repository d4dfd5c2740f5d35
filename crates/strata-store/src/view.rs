//! What `strata` prints as JSON (`inspect`, `--format json` listings,
//! `info`, `system df`, `check`), as typed records built from the store's
//! own types.
//!
//! Keys are in byte order at every level (`ID` before `Image`, `MountID`
//! before `Mounts`): the command first printed these through
//! `serde_json::Value`, whose objects sort their keys, and scripts may
//! compare the output byte for byte. So the fields below are declared in
//! that order, and records of the store that sit inside a view (a
//! container's `Config`, `Mounts` and `State`, a volume in `inspect`) are
//! written [`sorted`] too. The tests hold every view to it.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::{DiskUsage as Usages, Finding, OnDisk as Bytes, Report, State, Usage, Volume};

/// A container, as `inspect` and `ps --format json` show it: Docker's
/// keys (`Path`, `Args`, `State`, `Mounts`, `GraphDriver`, `Config`,
/// `HostConfig`) with strata's own beside them (`Cmd`, `Driver`, the
/// record's `Config` fields, `State.Runtime`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    pub args: Vec<String>,
    pub cmd: Vec<String>,
    #[serde(serialize_with = "sorted")]
    pub config: ContainerConfig,
    pub created: String,
    pub driver: String,
    pub graph_driver: GraphDriver,
    #[serde(serialize_with = "sorted")]
    pub host_config: HostConfig,
    pub id: String,
    pub image: String,
    #[serde(serialize_with = "sorted")]
    pub mounts: Vec<Mount>,
    pub name: String,
    pub path: String,
    #[serde(serialize_with = "sorted")]
    pub state: ContainerState,
}

/// A container's `Config`: the record's run configuration, and what
/// Docker shows there besides: the command split into the image's
/// `Entrypoint` and the rest (`Cmd`), the image, its labels, and the
/// container paths that are volumes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    pub cmd: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub image: String,
    pub labels: Option<serde_json::Value>,
    #[serde(flatten)]
    pub run: crate::RunConfig,
    /// Each path to `{}`, as Docker writes it; `null` when none.
    pub volumes: Option<BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
}

/// A container's `HostConfig` under Docker's names and types (strata's
/// own record is `Config.HostConfig`): what is unset is `null`, `0` or
/// left out as Docker writes it, so `jq` recipes read the same.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// The `-v` specs with a source; `null` when none.
    pub binds: Option<Vec<String>>,
    /// `--init`; left out without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// `--memory` in bytes; 0 without a limit.
    pub memory: u64,
    /// `--cpus` in billionths of a CPU; 0 without a limit.
    pub nano_cpus: u64,
    pub network_mode: String,
    /// `--pids-limit`; `null` without one.
    pub pids_limit: Option<i64>,
    pub readonly_rootfs: bool,
    /// `--storage-opt`; left out when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_opt: Option<BTreeMap<String, String>>,
    /// `--tmpfs` as path to options; left out when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<BTreeMap<String, String>>,
}

impl From<&crate::Container> for HostConfig {
    fn from(c: &crate::Container) -> HostConfig {
        let h = &c.config.host_config;
        let some = |b: bool| b.then_some(());
        HostConfig {
            binds: some(!h.binds.is_empty()).map(|()| h.binds.clone()),
            init: some(h.init).map(|()| true),
            memory: h.memory.unwrap_or(0),
            nano_cpus: h.nano_cpus.unwrap_or(0),
            network_mode: c.config.network_mode.clone(),
            pids_limit: h.pids_limit,
            readonly_rootfs: h.read_only_rootfs,
            storage_opt: some(!h.storage_opt.is_empty()).map(|()| h.storage_opt.clone()),
            tmpfs: some(!h.tmpfs.is_empty()).map(|()| {
                h.tmpfs
                    .iter()
                    .map(|t| match t.split_once(':') {
                        Some((path, opts)) => (path.to_owned(), opts.to_owned()),
                        None => (t.clone(), String::new()),
                    })
                    .collect()
            }),
        }
    }
}

/// A container's `State`: the record's, and the flags Docker shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    pub dead: bool,
    pub error: String,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub paused: bool,
    pub restarting: bool,
    pub running: bool,
    #[serde(flatten)]
    pub state: State,
}

impl From<State> for ContainerState {
    fn from(state: State) -> ContainerState {
        ContainerState {
            dead: false,
            error: String::new(),
            oom_killed: false,
            paused: false,
            restarting: false,
            running: state.status == crate::Status::Running,
            state,
        }
    }
}

/// A mount in `Mounts`: the record's, with Docker's `Propagation`
/// (`rprivate` for a bind, as strata makes every bind; empty for a
/// volume).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    #[serde(flatten)]
    pub mount: crate::Mount,
    pub propagation: &'static str,
}

impl From<&crate::Mount> for Mount {
    fn from(m: &crate::Mount) -> Mount {
        Mount {
            mount: m.clone(),
            propagation: match m.kind {
                crate::MountKind::Bind => "rprivate",
                crate::MountKind::Volume => "",
            },
        }
    }
}

/// The driver a layer is in, and the driver's names for its directories
/// (Docker's `GraphDriver`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    #[serde(serialize_with = "sorted")]
    pub data: GraphDriverData,
    pub name: String,
}

/// `GraphDriver.Data`: the driver's directories (overlay2's `LowerDir`,
/// `UpperDir`, `WorkDir`, `MergedDir`), and for a container its layers'
/// IDs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GraphDriverData {
    #[serde(flatten)]
    pub dirs: BTreeMap<String, String>,
    #[serde(rename = "InitID", skip_serializing_if = "Option::is_none")]
    pub init_id: Option<String>,
    #[serde(rename = "MountID", skip_serializing_if = "Option::is_none")]
    pub mount_id: Option<String>,
}

impl Container {
    /// `c` in the store whose driver is `driver`, now in `state`. The
    /// image's `Entrypoint` and `Labels`, the volumes and the driver's
    /// directories come from [`Container::with_image`],
    /// [`Container::with_volumes`] and [`Container::with_dirs`].
    pub fn new(c: &crate::Container, driver: &str, state: State) -> Container {
        Container {
            args: c.cmd.iter().skip(1).cloned().collect(),
            cmd: c.cmd.clone(),
            config: ContainerConfig {
                cmd: c.cmd.clone(),
                entrypoint: None,
                // Docker's: the name the container was created from (its
                // ID at the top level); the ID when it was made by ID or
                // before names were recorded.
                image: c.image_name.clone().unwrap_or_else(|| c.image.to_string()),
                // The record's (the image's and `--label`'s, merged at
                // `create`), or the image's for an older record
                // ([`Container::with_image`]); shown once, as `Labels`.
                labels: (!c.config.labels.is_empty()).then(|| serde_json::json!(c.config.labels)),
                run: crate::RunConfig {
                    labels: BTreeMap::new(),
                    ..c.config.clone()
                },
                volumes: None,
            },
            created: c.created.clone(),
            driver: c.driver.clone(),
            graph_driver: GraphDriver {
                data: GraphDriverData {
                    dirs: BTreeMap::new(),
                    init_id: Some(c.init_id()),
                    mount_id: Some(c.mount_id.to_string()),
                },
                name: driver.to_owned(),
            },
            host_config: HostConfig::from(c),
            id: c.id.to_string(),
            image: c.image.to_string(),
            mounts: c.mounts.iter().map(Mount::from).collect(),
            // Docker's: the name with a leading `/`.
            name: format!("/{}", c.name),
            path: c.cmd.first().cloned().unwrap_or_default(),
            state: state.into(),
        }
    }

    /// `Config.Entrypoint` and `Config.Cmd` as Docker splits the command:
    /// the image's Entrypoint when the command begins with it; and the
    /// image's `Labels`. `image` is the image config document.
    pub fn with_image(mut self, image: &serde_json::Value) -> Container {
        let entrypoint: Vec<String> = image
            .pointer("/config/Entrypoint")
            .and_then(|e| serde_json::from_value(e.clone()).ok())
            .unwrap_or_default();
        if !entrypoint.is_empty() && self.cmd.starts_with(&entrypoint) {
            self.config.cmd = self.cmd[entrypoint.len()..].to_vec();
            self.config.entrypoint = Some(entrypoint);
        }
        if self.config.labels.is_none() {
            self.config.labels = image
                .pointer("/config/Labels")
                .filter(|l| l.is_object())
                .cloned();
        }
        self
    }

    /// `Config.Volumes`: the container paths of its anonymous volumes
    /// (the image's `VOLUME`s and `-v PATH`).
    pub fn with_volumes(mut self, paths: impl IntoIterator<Item = String>) -> Container {
        let v: BTreeMap<_, _> = paths
            .into_iter()
            .map(|p| (p, serde_json::Map::new()))
            .collect();
        self.config.volumes = (!v.is_empty()).then_some(v);
        self
    }

    /// The driver's directories of the container's layer.
    pub fn with_dirs(mut self, dirs: BTreeMap<String, String>) -> Container {
        self.graph_driver.data.dirs = dirs;
        self
    }
}

/// An image, as `inspect` and `image inspect` show it: Docker's keys,
/// and strata's `Driver`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    pub architecture: String,
    /// The image config's `author`.
    pub author: String,
    /// The image config's `comment` (`commit -m`).
    pub comment: String,
    /// The image config's `config` (the run defaults), as the image has it.
    pub config: Option<serde_json::Value>,
    /// The container a commit was made from, as the config says.
    pub container: String,
    pub created: String,
    pub docker_version: String,
    pub driver: String,
    pub graph_driver: GraphDriver,
    pub id: String,
    #[serde(serialize_with = "sorted")]
    pub metadata: Metadata,
    pub os: String,
    /// The image it was committed on; empty when none (Docker's).
    pub parent: String,
    /// `name@sha256:<manifest digest>`, per repository it was pulled
    /// from or pushed to.
    pub repo_digests: Vec<String>,
    pub repo_tags: Vec<String>,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub size: u64,
    /// Docker's older name for `Size`.
    pub virtual_size: u64,
}

/// An image's `Metadata`. strata keeps no time of the last tag: Docker's
/// zero time, as Docker shows for an image never tagged locally.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Metadata {
    pub last_tag_time: &'static str,
}

/// An image's layers, by diffID, bottom first.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    pub layers: Vec<String>,
    #[serde(rename = "Type")]
    pub kind: &'static str,
}

impl Image {
    /// `image` in a store whose driver is `driver`; `config` is its image
    /// config document. The driver's directories of its top layer come
    /// from [`Image::with_dirs`].
    pub fn new(image: &crate::Image, driver: &str, config: &serde_json::Value) -> Image {
        let text = |k: &str| {
            config
                .get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Image {
            architecture: text("architecture"),
            author: text("author"),
            comment: text("comment"),
            config: config.get("config").cloned(),
            container: text("container"),
            created: image.created.clone(),
            docker_version: text("docker_version"),
            driver: driver.to_owned(),
            graph_driver: GraphDriver {
                data: GraphDriverData::default(),
                name: driver.to_owned(),
            },
            id: image.id.to_string(),
            metadata: Metadata {
                last_tag_time: "0001-01-01T00:00:00Z",
            },
            os: text("os"),
            parent: image
                .parent
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            repo_digests: image.repo_digests.iter().map(ToString::to_string).collect(),
            repo_tags: tags(image),
            root_fs: RootFs {
                layers: image.diff_ids.iter().map(ToString::to_string).collect(),
                kind: "layers",
            },
            size: image.size,
            virtual_size: image.size,
        }
    }

    /// The driver's directories of the image's top layer.
    pub fn with_dirs(mut self, dirs: BTreeMap<String, String>) -> Image {
        self.graph_driver.data.dirs = dirs;
        self
    }
}

/// The views `inspect` shows, filled from every store they draw on.
impl crate::Store {
    /// Container `c` as `inspect` shows it: its image's entrypoint and
    /// labels, its anonymous volumes' paths, its layer's directories.
    pub fn container_view(&self, c: &crate::Container) -> crate::Result<Container> {
        let state = self.container_state(c)?;
        let image = self.images.image_json(&c.image).unwrap_or_else(|e| {
            tracing::debug!("container {}: its image config: {e}", c.name);
            serde_json::Value::Null
        });
        let anonymous = c
            .mounts
            .iter()
            .filter(|m| {
                m.local_volume()
                    .is_some_and(|n| self.volume(n).is_ok_and(|v| v.is_anonymous()))
            })
            .map(|m| m.destination.clone());
        Ok(Container::new(c, self.driver.name(), state)
            .with_image(&image)
            .with_volumes(anonymous)
            .with_dirs(self.driver_dirs(&c.mount_id)))
    }

    /// Image `id` as `inspect` shows it, with its top layer's directories.
    pub fn image_view(&self, id: &crate::Digest) -> crate::Result<Image> {
        let image = self.image(id)?;
        let config = self.images.image_json(id)?;
        let top = crate::layer::chain_ids(&image.diff_ids).pop();
        let dirs = match top.map(|chain| self.layer(&chain)).transpose() {
            Ok(Some(l)) => self.driver_dirs(&l.cache_id),
            Ok(None) => BTreeMap::new(),
            Err(e) => {
                tracing::debug!("image {id}: its top layer: {e}");
                BTreeMap::new()
            }
        };
        Ok(Image::new(&image, self.driver.name(), &config).with_dirs(dirs))
    }

    /// The driver's directories of layer `id`; none when it cannot say
    /// (a damaged layer is `check`'s to report, not `inspect`'s).
    fn driver_dirs(&self, id: &str) -> BTreeMap<String, String> {
        self.driver.metadata(id).unwrap_or_else(|e| {
            tracing::debug!("layer {id}: its directories: {e}");
            BTreeMap::new()
        })
    }
}

/// One line of `images --format json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub created: String,
    #[serde(rename = "ID")]
    pub id: String,
    /// How many layers.
    pub layers: usize,
    pub repo_tags: Vec<String>,
    pub size: u64,
}

impl From<&crate::Image> for ImageSummary {
    fn from(i: &crate::Image) -> ImageSummary {
        ImageSummary {
            created: i.created.clone(),
            id: i.id.to_string(),
            layers: i.diff_ids.len(),
            repo_tags: tags(i),
            size: i.size,
        }
    }
}

fn tags(i: &crate::Image) -> Vec<String> {
    i.tags.iter().map(ToString::to_string).collect()
}

/// One line of `layers --format json`.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    #[serde(rename = "CacheID")]
    pub cache_id: String,
    #[serde(rename = "ChainID")]
    pub chain_id: String,
    #[serde(rename = "DiffID")]
    pub diff_id: String,
    #[serde(rename = "Parent")]
    pub parent: Option<String>,
    /// Images and containers whose chains reach it.
    #[serde(rename = "Refs")]
    pub refs: usize,
    #[serde(rename = "Size")]
    pub size: u64,
}

impl Layer {
    pub fn new(l: &crate::Layer, refs: usize) -> Layer {
        Layer {
            cache_id: l.cache_id.to_string(),
            chain_id: l.chain_id.to_string(),
            diff_id: l.diff_id.to_string(),
            parent: l.parent.as_ref().map(ToString::to_string),
            refs,
            size: l.size,
        }
    }
}

/// What `inspect` found for one name.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Inspected {
    Container(Box<Container>),
    Image(Box<Image>),
    #[serde(serialize_with = "sorted")]
    Volume(Volume),
}

/// `info --format json`: each line of `info`, by its name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Info(pub BTreeMap<String, String>);

impl FromIterator<(String, String)> for Info {
    /// A name given twice keeps its last value.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(lines: I) -> Info {
        Info(lines.into_iter().collect())
    }
}

/// `check --format json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Check {
    /// Nothing left to fix.
    pub clean: bool,
    pub findings: Vec<CheckFinding>,
}

/// One finding of `check`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckFinding {
    /// Damage, rather than the debris of interrupted work.
    pub corruption: bool,
    pub kind: &'static str,
    pub message: String,
    pub object: String,
    pub repaired: bool,
}

impl From<&Report> for Check {
    fn from(r: &Report) -> Check {
        Check {
            clean: r.is_clean(),
            findings: r.findings.iter().map(CheckFinding::from).collect(),
        }
    }
}

impl From<&Finding> for CheckFinding {
    fn from(f: &Finding) -> CheckFinding {
        CheckFinding {
            corruption: f.kind.is_corruption(),
            kind: f.kind.as_str(),
            message: f.message.clone(),
            object: f.object.clone(),
            repaired: f.repaired,
        }
    }
}

/// `system df --format json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsage {
    pub containers: Vec<ContainerUsage>,
    pub images: Vec<ImageUsage>,
    pub on_disk: OnDisk,
    /// One row per kind: images, containers, layers, volumes.
    pub types: Vec<TypeUsage>,
    pub volumes: Vec<VolumeUsage>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerUsage {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub size: u64,
    /// `--storage-opt size=`, where the driver enforces one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageUsage {
    /// How many containers use it.
    pub containers: usize,
    #[serde(rename = "ID")]
    pub id: String,
    pub shared_size: u64,
    pub size: u64,
    pub tags: Vec<String>,
    pub unique_size: u64,
}

/// Every allocated byte under the root, in one bucket each.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OnDisk {
    pub containers: u64,
    pub layer_content: u64,
    pub metadata: u64,
    pub other: u64,
    pub total: u64,
    pub volumes: u64,
}

/// One row of `system df`'s table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TypeUsage {
    pub active: usize,
    pub reclaimable: u64,
    pub size: u64,
    pub total_count: usize,
    #[serde(rename = "Type")]
    pub kind: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeUsage {
    pub driver: String,
    /// How many containers name it.
    pub links: usize,
    pub name: String,
    pub size: u64,
}

impl DiskUsage {
    /// The kinds of `system df`'s table, in its order, with their names.
    pub fn rows(du: &Usages) -> [(&'static str, &Usage); 4] {
        [
            ("Images", &du.images),
            ("Containers", &du.containers),
            ("Layers", &du.layers),
            ("Local Volumes", &du.volumes),
        ]
    }

    /// `du`, with `bytes` the allocation under the root.
    pub fn new(du: &Usages, bytes: &Bytes) -> DiskUsage {
        DiskUsage {
            containers: du
                .container_details
                .iter()
                .map(|c| ContainerUsage {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    size: c.size,
                    size_limit: c.size_limit,
                })
                .collect(),
            images: du
                .image_details
                .iter()
                .map(|i| ImageUsage {
                    containers: i.containers,
                    id: i.image.id.to_string(),
                    shared_size: i.shared_size,
                    size: i.image.size,
                    tags: tags(&i.image),
                    unique_size: i.unique_size,
                })
                .collect(),
            on_disk: OnDisk {
                containers: bytes.containers,
                layer_content: bytes.layer_content,
                metadata: bytes.metadata,
                other: bytes.other,
                total: bytes.total,
                volumes: bytes.volumes,
            },
            types: DiskUsage::rows(du)
                .into_iter()
                .map(|(kind, u)| TypeUsage {
                    active: u.active,
                    reclaimable: u.reclaimable,
                    size: u.size,
                    total_count: u.total,
                    kind,
                })
                .collect(),
            volumes: du
                .volume_details
                .iter()
                .map(|v| VolumeUsage {
                    driver: v.driver.clone(),
                    links: v.containers,
                    name: v.name.clone(),
                    size: v.size,
                })
                .collect(),
        }
    }
}

/// Writes `value` with the keys of its objects sorted, at every level
/// (see the module's docs).
fn sorted<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    serde_json::to_value(value)
        .map_err(serde::ser::Error::custom)?
        .serialize(s)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{CacheId, Digest, FindingKind, ImageRef};

    fn digest(what: &str) -> Digest {
        crate::archive::sha256(what.as_bytes())
    }

    fn container() -> crate::Container {
        let hex = |c: &str| c.repeat(64);
        serde_json::from_value(json!({
            "ID": hex("a"),
            "Name": "web",
            "Image": digest("image").to_string(),
            "Created": "2024-01-02T03:04:05Z",
            "Cmd": ["sh", "-c", "true"],
            "Driver": "overlay2",
            "MountID": hex("b"),
            "ParentLayer": null,
            "Mounts": [{
                "Type": "volume", "Name": "data", "Source": "/v/data/_data",
                "Destination": "/data", "Driver": "local", "Mode": "", "RW": true,
            }],
        }))
        .expect("a container record")
    }

    fn image() -> crate::Image {
        crate::Image {
            id: digest("config"),
            tags: vec![ImageRef::parse("base:1").expect("a reference")],
            repo_digests: Vec::new(),
            created: "2024-01-02T03:04:05Z".into(),
            diff_ids: vec![digest("layer 1"), digest("layer 2")],
            parent: None,
            size: 42,
        }
    }

    fn layer() -> crate::Layer {
        crate::Layer {
            chain_id: digest("chain"),
            diff_id: digest("diff"),
            cache_id: CacheId::parse(&"c".repeat(64)).expect("a cache ID"),
            size: 7,
            parent: Some(digest("parent")),
        }
    }

    fn disk_usage() -> Usages {
        let usage = |n| Usage {
            total: n,
            active: 1,
            size: 100 * n as u64,
            reclaimable: 10,
        };
        Usages {
            images: usage(1),
            containers: usage(2),
            layers: usage(3),
            volumes: usage(4),
            image_details: vec![crate::ImageUsage {
                image: image(),
                shared_size: 1,
                unique_size: 41,
                containers: 2,
            }],
            container_details: vec![crate::ContainerUsage {
                id: "a".repeat(64),
                name: "web".into(),
                size: 5,
                size_limit: None,
            }],
            volume_details: vec![crate::VolumeUsage {
                name: "data".into(),
                driver: "local".into(),
                size: 9,
                containers: 1,
            }],
        }
    }

    fn volume() -> Volume {
        Volume {
            name: "data".into(),
            driver: "local".into(),
            mountpoint: "/v/data/_data".into(),
            created_at: "2024-01-02T03:04:05Z".into(),
            labels: BTreeMap::from([("k".into(), "v".into())]),
            options: BTreeMap::new(),
            scope: "local".into(),
        }
    }

    fn report() -> Report {
        Report {
            findings: vec![
                Finding {
                    kind: FindingKind::Debris,
                    object: "tmp/x".into(),
                    message: "left by a crash".into(),
                    repaired: true,
                },
                Finding {
                    kind: FindingKind::DigestMismatch,
                    object: digest("diff").to_string(),
                    message: "content changed".into(),
                    repaired: false,
                },
            ],
        }
    }

    fn pretty<T: Serialize>(v: &T) -> String {
        serde_json::to_string_pretty(v).expect("JSON")
    }

    /// Byte for byte what the same data gives through `serde_json::Value`
    /// (whose objects sort their keys), as the command printed it before
    /// the views were types.
    fn assert_sorted<T: Serialize>(v: &T) {
        let through_value = serde_json::to_value(v).expect("a value");
        assert_eq!(pretty(v), pretty(&through_value));
    }

    #[test]
    fn every_view_writes_keys_in_byte_order() {
        let c = container();
        assert_sorted(&Container::new(&c, "overlay2", State::default()));
        let config = json!({"architecture": "amd64", "os": "linux", "config": {"Env": ["A=1"], "Cmd": ["sh"]}});
        assert_sorted(&Image::new(&image(), "vfs", &config));
        assert_sorted(&ImageSummary::from(&image()));
        assert_sorted(&Layer::new(&layer(), 3));
        assert_sorted(&Check::from(&report()));
        assert_sorted(&DiskUsage::new(&disk_usage(), &Bytes::default()));
        assert_sorted(&Inspected::Volume(volume()));
        assert_sorted(&vec![
            Inspected::Container(Box::new(Container::new(&c, "vfs", State::default()))),
            Inspected::Image(Box::new(Image::new(&image(), "vfs", &json!({})))),
            Inspected::Volume(volume()),
        ]);
        let info: Info = [("Root", "/r"), ("Storage Driver", "vfs"), ("Images", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_sorted(&info);
    }

    #[test]
    fn container_view_nests_graph_driver_and_sorts_its_records() {
        let v = serde_json::to_value(Container::new(&container(), "overlay2", State::default()))
            .expect("a value");
        assert_eq!(v["Id"], "a".repeat(64));
        assert_eq!(v["Image"], digest("image").to_string());
        assert_eq!(v["Config"]["Image"], digest("image").to_string());
        let mut named = container();
        named.image_name = Some("base:1".into());
        let n = serde_json::to_value(Container::new(&named, "overlay2", State::default()))
            .expect("a value");
        assert_eq!(
            (&n["Image"], &n["Config"]["Image"]),
            (&v["Image"], &json!("base:1"))
        );
        assert_eq!(v["GraphDriver"]["Name"], "overlay2");
        assert_eq!(v["GraphDriver"]["Data"]["MountID"], "b".repeat(64));
        assert_eq!(
            v["GraphDriver"]["Data"]["InitID"],
            format!("{}-init", "b".repeat(64))
        );
        assert_eq!(v["State"]["Status"], "created");
        assert_eq!(v["State"]["Running"], false);
        assert_eq!(v["Mounts"][0]["RW"], true);
        assert_eq!(v["Mounts"][0]["Propagation"], "");
        assert_eq!(v["Name"], "/web");
        assert_eq!(
            v["HostConfig"],
            json!({
                "Binds": null, "Memory": 0, "NanoCpus": 0, "NetworkMode": "",
                "PidsLimit": null, "ReadonlyRootfs": false,
            })
        );
        let mut limited = container();
        let h = &mut limited.config.host_config;
        h.binds = vec!["data:/data".into()];
        h.tmpfs = vec!["/run:size=1m,noexec".into(), "/tmp".into()];
        (h.memory, h.nano_cpus, h.pids_limit) = (Some(1 << 20), Some(500_000_000), Some(9));
        (h.init, h.read_only_rootfs) = (true, true);
        h.storage_opt.insert("size".into(), "1G".into());
        let l = serde_json::to_value(Container::new(&limited, "overlay2", State::default()))
            .expect("a value");
        assert_eq!(
            l["HostConfig"],
            json!({
                "Binds": ["data:/data"], "Init": true, "Memory": 1 << 20,
                "NanoCpus": 500_000_000, "NetworkMode": "", "PidsLimit": 9,
                "ReadonlyRootfs": true, "StorageOpt": {"size": "1G"},
                "Tmpfs": {"/run": "size=1m,noexec", "/tmp": ""},
            })
        );
        // The record's own fields that are not part of the view.
        assert!(v.get("ParentLayer").is_none() && v.get("MountID").is_none());
        // `Mounts` keys sorted: Destination before Type.
        let text = pretty(&Container::new(&container(), "overlay2", State::default()));
        assert!(
            text.find("\"Destination\"") < text.find("\"Type\""),
            "{text}"
        );
    }

    #[test]
    fn image_view_has_dockers_keys_and_types_for_what_the_config_lacks() {
        let v = Image::new(&image(), "vfs", &json!({"os": "linux"}));
        let expected = format!(
            r#"{{
  "Architecture": "",
  "Author": "",
  "Comment": "",
  "Config": null,
  "Container": "",
  "Created": "2024-01-02T03:04:05Z",
  "DockerVersion": "",
  "Driver": "vfs",
  "GraphDriver": {{
    "Data": {{}},
    "Name": "vfs"
  }},
  "Id": "{}",
  "Metadata": {{
    "LastTagTime": "0001-01-01T00:00:00Z"
  }},
  "Os": "linux",
  "Parent": "",
  "RepoDigests": [],
  "RepoTags": [
    "base:1"
  ],
  "RootFS": {{
    "Layers": [
      "{}",
      "{}"
    ],
    "Type": "layers"
  }},
  "Size": 42,
  "VirtualSize": 42
}}"#,
            digest("config"),
            digest("layer 1"),
            digest("layer 2")
        );
        assert_eq!(pretty(&v), expected);
        let dirs = BTreeMap::from([("UpperDir".to_owned(), "/o/x/diff".to_owned())]);
        let v = serde_json::to_value(v.with_dirs(dirs)).expect("a value");
        assert_eq!(v["GraphDriver"]["Data"], json!({"UpperDir": "/o/x/diff"}));
    }

    #[test]
    fn container_view_splits_the_command_as_docker_does() {
        let image = json!({"config": {"Entrypoint": ["sh", "-c"], "Labels": {"a": "b"}}});
        let v = Container::new(&container(), "vfs", State::default())
            .with_image(&image)
            .with_volumes(["/data".to_owned()]);
        let v = serde_json::to_value(v).expect("a value");
        assert_eq!(v["Path"], "sh");
        assert_eq!(v["Args"], json!(["-c", "true"]));
        assert_eq!(v["Config"]["Entrypoint"], json!(["sh", "-c"]));
        assert_eq!(v["Config"]["Cmd"], json!(["true"]));
        assert_eq!(v["Config"]["Labels"], json!({"a": "b"}));
        assert_eq!(v["Config"]["Volumes"], json!({"/data": {}}));
        // An entrypoint the command does not begin with (`--entrypoint`).
        let other = json!({"config": {"Entrypoint": ["/init"]}});
        let v = Container::new(&container(), "vfs", State::default()).with_image(&other);
        let v = serde_json::to_value(v).expect("a value");
        assert_eq!(v["Config"]["Entrypoint"], json!(null));
        assert_eq!(v["Config"]["Cmd"], json!(["sh", "-c", "true"]));
        assert_eq!(v["Config"]["Volumes"], json!(null));
    }

    #[test]
    fn image_summary_and_layer_lines() {
        assert_eq!(
            serde_json::to_string(&ImageSummary::from(&image())).expect("JSON"),
            format!(
                r#"{{"Created":"2024-01-02T03:04:05Z","ID":"{}","Layers":2,"RepoTags":["base:1"],"Size":42}}"#,
                digest("config")
            )
        );
        let mut l = layer();
        assert_eq!(
            serde_json::to_string(&Layer::new(&l, 3)).expect("JSON"),
            format!(
                r#"{{"CacheID":"{}","ChainID":"{}","DiffID":"{}","Parent":"{}","Refs":3,"Size":7}}"#,
                "c".repeat(64),
                digest("chain"),
                digest("diff"),
                digest("parent")
            )
        );
        l.parent = None;
        let v = serde_json::to_value(Layer::new(&l, 0)).expect("a value");
        assert!(v["Parent"].is_null() && v.get("Parent").is_some());
    }

    #[test]
    fn check_view_marks_corruption_and_repairs() {
        assert_eq!(
            serde_json::to_string(&Check::from(&report())).expect("JSON"),
            format!(
                concat!(
                    r#"{{"Clean":false,"Findings":["#,
                    r#"{{"Corruption":false,"Kind":"debris","Message":"left by a crash","Object":"tmp/x","Repaired":true}},"#,
                    r#"{{"Corruption":true,"Kind":"digest-mismatch","Message":"content changed","Object":"{}","Repaired":false}}"#,
                    "]}}"
                ),
                digest("diff")
            )
        );
        assert_eq!(
            serde_json::to_string(&Check::from(&Report::default())).expect("JSON"),
            r#"{"Clean":true,"Findings":[]}"#
        );
    }

    #[test]
    fn disk_usage_view_names_each_row() {
        let bytes = Bytes {
            total: 6,
            layer_content: 1,
            metadata: 2,
            containers: 3,
            volumes: 4,
            other: 5,
        };
        let v = serde_json::to_value(DiskUsage::new(&disk_usage(), &bytes)).expect("a value");
        let kinds: Vec<_> = v["Types"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|t| (t["Type"].clone(), t["TotalCount"].clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (json!("Images"), json!(1)),
                (json!("Containers"), json!(2)),
                (json!("Layers"), json!(3)),
                (json!("Local Volumes"), json!(4)),
            ]
        );
        assert_eq!(
            v["OnDisk"],
            json!({"Total": 6, "LayerContent": 1, "Metadata": 2, "Containers": 3, "Volumes": 4, "Other": 5})
        );
        assert_eq!(v["Images"][0]["Tags"], json!(["base:1"]));
        assert_eq!(v["Images"][0]["UniqueSize"], 41);
        assert_eq!(v["Containers"][0]["Name"], "web");
        assert_eq!(v["Volumes"][0]["Links"], 1);
    }

    #[test]
    fn info_keeps_the_last_value_of_a_name() {
        let info: Info = [("A", "1"), ("B", "2"), ("A", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            serde_json::to_string(&info).expect("JSON"),
            r#"{"A":"3","B":"2"}"#
        );
    }

    #[test]
    fn inspected_volume_is_sorted_unlike_volume_ls() {
        // `volume ls --format json` and `volume inspect` write the record
        // in its own order; `inspect` has always sorted it.
        let own = serde_json::to_string(&volume()).expect("JSON");
        assert!(own.starts_with(r#"{"Name":"data""#), "{own}");
        let inspected = serde_json::to_string(&Inspected::Volume(volume())).expect("JSON");
        assert!(inspected.starts_with(r#"{"CreatedAt":"#), "{inspected}");
    }
}
