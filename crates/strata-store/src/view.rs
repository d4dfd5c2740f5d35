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

/// A container, as `inspect` and `ps --format json` show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    pub cmd: Vec<String>,
    #[serde(serialize_with = "sorted")]
    pub config: crate::RunConfig,
    pub created: String,
    pub driver: String,
    pub graph_driver: GraphDriver,
    pub id: String,
    pub image: String,
    #[serde(serialize_with = "sorted")]
    pub mounts: Vec<crate::Mount>,
    pub name: String,
    #[serde(serialize_with = "sorted")]
    pub state: State,
}

/// The driver a container's layer is in, and the driver's names for it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub data: GraphDriverData,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GraphDriverData {
    #[serde(rename = "InitID")]
    pub init_id: String,
    #[serde(rename = "MountID")]
    pub mount_id: String,
}

impl Container {
    /// `c` in the store whose driver is `driver`, now in `state`.
    pub fn new(c: &crate::Container, driver: &str, state: State) -> Container {
        Container {
            cmd: c.cmd.clone(),
            config: c.config.clone(),
            created: c.created.clone(),
            driver: c.driver.clone(),
            graph_driver: GraphDriver {
                data: GraphDriverData {
                    init_id: c.init_id(),
                    mount_id: c.mount_id.to_string(),
                },
                name: driver.to_owned(),
            },
            id: c.id.to_string(),
            image: c.image.to_string(),
            mounts: c.mounts.clone(),
            name: c.name.to_string(),
            state,
        }
    }
}

/// An image, as `inspect` and `image inspect` show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    pub architecture: Option<serde_json::Value>,
    /// The image config's `config` (the run defaults), as the image has it.
    pub config: Option<serde_json::Value>,
    pub created: String,
    pub driver: String,
    pub id: String,
    pub os: Option<serde_json::Value>,
    pub parent: Option<String>,
    /// `name@sha256:<manifest digest>`, per repository it was pulled
    /// from or pushed to.
    pub repo_digests: Vec<String>,
    pub repo_tags: Vec<String>,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub size: u64,
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
    /// config document.
    pub fn new(image: &crate::Image, driver: &str, config: &serde_json::Value) -> Image {
        Image {
            architecture: config.get("architecture").cloned(),
            config: config.get("config").cloned(),
            created: image.created.clone(),
            driver: driver.to_owned(),
            id: image.id.to_string(),
            os: config.get("os").cloned(),
            parent: image.parent.as_ref().map(ToString::to_string),
            repo_digests: image.repo_digests.iter().map(ToString::to_string).collect(),
            repo_tags: tags(image),
            root_fs: RootFs {
                layers: image.diff_ids.iter().map(ToString::to_string).collect(),
                kind: "layers",
            },
            size: image.size,
        }
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
        assert_eq!(v["GraphDriver"]["Name"], "overlay2");
        assert_eq!(v["GraphDriver"]["Data"]["MountID"], "b".repeat(64));
        assert_eq!(
            v["GraphDriver"]["Data"]["InitID"],
            format!("{}-init", "b".repeat(64))
        );
        assert_eq!(v["State"]["Status"], "created");
        assert_eq!(v["Mounts"][0]["RW"], true);
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
    fn image_view_says_null_for_what_the_config_lacks() {
        let v = Image::new(&image(), "vfs", &json!({"os": "linux"}));
        let expected = format!(
            r#"{{
  "Architecture": null,
  "Config": null,
  "Created": "2024-01-02T03:04:05Z",
  "Driver": "vfs",
  "Id": "{}",
  "Os": "linux",
  "Parent": null,
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
  "Size": 42
}}"#,
            digest("config"),
            digest("layer 1"),
            digest("layer 2")
        );
        assert_eq!(pretty(&v), expected);
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
