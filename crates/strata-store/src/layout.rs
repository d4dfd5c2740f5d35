//! Where everything is: the store's on-disk tree, laid out like Docker's
//! data root so an operator recognises it. Every path the store uses
//! comes from [`Layout`]; the names of the small files inside a record
//! directory (published or staged: the same files) are the constants of
//! [`record`]. The tree is drawn on [`Layout`].

use std::path::{Path, PathBuf};

use strata_archive::Digest;

/// The names of the files in a record directory.
pub(crate) mod record {
    /// A layer's diffID.
    pub const DIFF: &str = "diff";
    /// Bytes of content a layer adds.
    pub const SIZE: &str = "size";
    /// The driver's ID for a layer's content.
    pub const CACHE_ID: &str = "cache-id";
    /// The chainID below a layer or a container.
    pub const PARENT: &str = "parent";
    /// What extracting a layer threw away (the name Docker and
    /// containers/storage use; ours is strata_archive's binary format).
    pub const TAR_SPLIT: &str = "tar-split.json.gz";
    /// A container's read-write driver layer.
    pub const MOUNT_ID: &str = "mount-id";
    /// A container's init driver layer.
    pub const INIT_ID: &str = "init-id";
    /// In a container's staging: the ID of the container it makes.
    pub const CONTAINER_ID: &str = "container-id";
    /// In a container's staging: its `names/<name>` file, to publish.
    pub const NAME: &str = "name";
    /// In a container's staging: its `containers/<id>/`, to publish.
    pub const CONTAINER: &str = "container";
    /// A container's record.
    pub const CONFIG: &str = "config.json";
    /// A container's runs.
    pub const STATE: &str = "state.json";
    /// The record of a container Docker made, in a store that is a copy
    /// of its data root (`containers/<id>/config.v2.json`).
    pub const DOCKER_CONFIG: &str = "config.v2.json";
    /// In an image's metadata: when it was stored.
    pub const LAST_UPDATED: &str = "lastUpdated";
    /// The driver record files of a staging or `-removing` directory,
    /// each naming a driver layer.
    pub const DRIVER_LAYERS: [&str; 3] = [CACHE_ID, MOUNT_ID, INIT_ID];
}

/// The lock file's name, in the root.
pub(crate) const LOCK: &str = "lock";
/// The root's directories.
const IMAGES: &str = "image";
const TMP: &str = "tmp";
const CONTAINERS: &str = "containers";
const NAMES: &str = "names";
const VOLUMES: &str = "volumes";
const PARTIAL: &str = "partial";

/// Every name the store itself makes in its root (besides its driver's
/// home): what `system reset` may remove there.
pub(crate) const ROOT_ENTRIES: [&str; 7] = [LOCK, IMAGES, CONTAINERS, NAMES, TMP, VOLUMES, PARTIAL];

/// A local volume's data directory, in its directory (strata_volume's
/// local driver makes it).
const VOLUME_DATA: &str = "_data";
/// A volume's record, in its directory (strata_volume's local driver
/// writes it).
const VOLUME_META: &str = "meta.json";

/// The paths of one store's tree:
///
/// ```text
/// <root>/                                   0700
///   <driver>/                               the driver's home (overlay2/, vfs/)
///   image/<driver>/
///     imagedb/content/sha256/<hex>          image config, byte-exact; <hex> is its sha256
///     imagedb/metadata/sha256/<hex>/parent  the image this one was committed from
///     imagedb/metadata/sha256/<hex>/lastUpdated
///     layerdb/sha256/<chain-hex>/{diff,size,cache-id,parent,tar-split.json.gz}
///     layerdb/mounts/<container-id>/{mount-id,init-id,parent}
///     layerdb/tmp/                          layers and containers being made
///     layerdb/unflushed/<boot-id>/<container-id>.<mount-id>
///                                           containers created unflushed in that boot
///     layerdb/removing                      there while a removal may leave `-removing` names
///     layerdb/swept                         the boot of the last open that looked for them all
///     repositories.json                     tags and repository digests -> image IDs
///     refs/                                 the reference index (see `refs`):
///       complete                            written last: the index covers the store
///       layers/<chain-hex>/image-<hex>      image <hex>'s top layer is this layer
///       layers/<chain-hex>/layer-<hex>      layer <hex> is made on this layer
///       images/<hex>/<child-hex>            image <child-hex> was committed from image <hex>
///     distribution/v2metadata-by-diffid/sha256/<diff-hex>
///                                           where a layer's blobs were pushed or pulled
///   containers/<id>/config.json
///   containers/<id>/{state.json,bundle/,hosts,hostname,resolv.conf,runtime/}
///                                           a container's runs (see `start`)
///   volumes/<name>/{_data/,meta.json}       volumes (see strata_volume::local); their
///                                           staging (`.<name>.creating`) is removed on open
///   names/<name>                            the container ID a name stands for
///   tmp/                                    staging (and `load`'s spooled archives); emptied on open
///   partial/sha256/<hex>                    blobs a pull fetched part of, for the next to resume
///   lock                                    flock taken by every change
/// ```
///
/// A layer or container being made is staged in `layerdb/tmp/<random>/`
/// (a layer's files, or a container's `container-id`, `name`, mount
/// record files and `container/config.json`) and renamed into place; one
/// being removed is renamed to `<name>-removing` beside itself first.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    /// `image/<driver>/`.
    image: PathBuf,
}

impl Layout {
    /// The tree at `root` of a store made with the driver `driver`.
    pub fn new(root: &Path, driver: &str) -> Layout {
        Layout {
            root: root.to_owned(),
            image: Layout::image_of(root, driver),
        }
    }

    /// `image/`, relative to the root: one directory per driver a store
    /// was made with (it has one).
    pub(crate) fn images_rel() -> &'static Path {
        Path::new(IMAGES)
    }

    /// `image/`: the image and layer metadata of every driver.
    pub fn images_root(&self) -> PathBuf {
        self.root.join(Layout::images_rel())
    }

    /// `image/<driver>/` of the store at `root`.
    pub(crate) fn image_of(root: &Path, driver: &str) -> PathBuf {
        root.join(Layout::images_rel()).join(driver)
    }

    /// The store's directories below the root that the store makes,
    /// relative to it; checked (and made) on every open. Volumes are
    /// apart: made by the first volume.
    pub(crate) fn made_dirs(&self) -> Vec<PathBuf> {
        let image = self
            .image
            .strip_prefix(&self.root)
            .expect("image/ is below the root");
        let mut dirs: Vec<PathBuf> = [TMP, CONTAINERS, NAMES].iter().map(PathBuf::from).collect();
        for d in [
            "imagedb/content/sha256",
            "imagedb/metadata/sha256",
            "layerdb/sha256",
            "layerdb/mounts",
            "layerdb/tmp",
            "layerdb/unflushed",
        ] {
            dirs.push(image.join(d));
        }
        dirs
    }

    /// `volumes/`, relative to the root.
    pub(crate) fn volumes_rel() -> &'static Path {
        Path::new(VOLUMES)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `lock`, taken by every change.
    pub fn lock(&self) -> PathBuf {
        Layout::lock_of(&self.root)
    }

    /// `lock` of the store at `root`.
    pub(crate) fn lock_of(root: &Path) -> PathBuf {
        root.join(LOCK)
    }

    /// `tmp/`: staging and `load`'s spooled archives.
    pub fn tmp(&self) -> PathBuf {
        self.root.join(TMP)
    }

    /// `partial/sha256/`: blobs a pull fetched part of, by digest, for
    /// the next pull to resume (`transfer::partial`). Not under `tmp/`,
    /// which every open empties.
    pub fn partial_blobs(&self) -> PathBuf {
        self.root.join(PARTIAL).join("sha256")
    }

    /// Where layer `diff_id`'s compressed blobs were pushed (digest,
    /// repository, media type), as Docker's
    /// `distribution/v2metadata-by-diffid/sha256/<diffid>` records it.
    pub fn blob_records(&self, diff_id: &Digest) -> PathBuf {
        self.image
            .join("distribution/v2metadata-by-diffid/sha256")
            .join(diff_id.hex())
    }

    /// `image/<driver>/`.
    pub fn image_dir(&self) -> &Path {
        &self.image
    }

    /// `image/<driver>/driver-choice`: the drivers the automatic choice
    /// skipped when it made the store, and why, one `NAME: REASON` a line.
    pub fn driver_choice(&self) -> PathBuf {
        self.image.join("driver-choice")
    }

    /// `imagedb/content/sha256/`: image configs.
    pub fn image_configs(&self) -> PathBuf {
        self.image.join("imagedb/content/sha256")
    }

    /// An image's config.
    pub fn image_config(&self, id: &Digest) -> PathBuf {
        self.image_configs().join(id.hex())
    }

    /// `imagedb/metadata/sha256/`.
    pub fn image_metadata_dir(&self) -> PathBuf {
        self.image.join("imagedb/metadata/sha256")
    }

    /// An image's metadata directory (`parent`, `lastUpdated`).
    pub fn image_metadata(&self, id: &Digest) -> PathBuf {
        self.image_metadata_dir().join(id.hex())
    }

    /// `repositories.json`: tags.
    pub fn repositories(&self) -> PathBuf {
        self.image.join("repositories.json")
    }

    /// `refs/`: the reference index (`refs`).
    pub fn refs(&self) -> PathBuf {
        self.image.join("refs")
    }

    /// `refs/layers/<chain-hex>/`: what holds a layer.
    pub fn layer_refs(&self, chain: &Digest) -> PathBuf {
        self.refs().join("layers").join(chain.hex())
    }

    /// `refs/images/<hex>/`: the images committed from an image.
    pub fn image_children(&self, id: &Digest) -> PathBuf {
        self.refs().join("images").join(id.hex())
    }

    /// `layerdb/sha256/`: layers by chainID.
    pub fn layers(&self) -> PathBuf {
        self.image.join("layerdb/sha256")
    }

    /// A layer's record directory.
    pub fn layer(&self, chain: &Digest) -> PathBuf {
        self.layers().join(chain.hex())
    }

    /// `layerdb/mounts/`: containers' driver layers.
    pub fn mounts(&self) -> PathBuf {
        self.image.join("layerdb/mounts")
    }

    /// A container's mounts record directory.
    pub fn mount_record(&self, id: &str) -> PathBuf {
        self.mounts().join(id)
    }

    /// `layerdb/tmp/`: layers and containers being made.
    pub fn layer_staging(&self) -> PathBuf {
        self.image.join("layerdb/tmp")
    }

    /// `containers/`.
    pub fn containers(&self) -> PathBuf {
        self.root.join(CONTAINERS)
    }

    /// `containers/<id>/`.
    pub fn container(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }

    /// `containers/<id>/config.json`.
    pub fn container_config(&self, id: &str) -> PathBuf {
        self.container(id).join(record::CONFIG)
    }

    /// `containers/<id>/state.json`.
    pub fn container_state(&self, id: &str) -> PathBuf {
        self.container(id).join(record::STATE)
    }

    /// `names/`.
    pub fn names(&self) -> PathBuf {
        self.root.join(NAMES)
    }

    /// `names/<name>`: the container ID a name stands for.
    pub fn name(&self, name: &str) -> PathBuf {
        self.names().join(name)
    }

    /// `volumes/`.
    pub fn volumes(&self) -> PathBuf {
        self.root.join(Layout::volumes_rel())
    }

    /// `volumes/<name>/_data`, relative to the root: a local volume's
    /// data wherever the store is (a record written by the store at
    /// another path still ends so).
    pub fn volume_data_rel(name: &str) -> PathBuf {
        Layout::volumes_rel().join(name).join(VOLUME_DATA)
    }

    /// `volumes/<name>/meta.json`: a volume's record.
    pub fn volume_meta(&self, name: &str) -> PathBuf {
        self.volumes().join(name).join(VOLUME_META)
    }

    /// `volumes/<name>/_data`.
    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.root.join(Layout::volume_data_rel(name))
    }

    /// `layerdb/unflushed/`: markers of containers created without a
    /// flush, one directory per boot (see `unflushed`).
    pub fn unflushed(&self) -> PathBuf {
        self.image.join("layerdb/unflushed")
    }

    /// `layerdb/removing`: there while a removal may have left
    /// `-removing` names (see `staging::Removals`).
    pub(crate) fn removals(&self) -> PathBuf {
        self.image.join("layerdb/removing")
    }

    /// `layerdb/swept`: the boot in which an open last looked for
    /// `-removing` names in every [`Layout::removal_dirs`].
    pub(crate) fn swept(&self) -> PathBuf {
        self.image.join("layerdb/swept")
    }

    /// The staging directories emptied on open: `tmp/` and `layerdb/tmp/`.
    pub(crate) fn staging_dirs(&self) -> [PathBuf; 2] {
        [self.tmp(), self.layer_staging()]
    }

    /// The directories whose `-removing` entries are removals a crash
    /// interrupted.
    pub(crate) fn removal_dirs(&self) -> [PathBuf; 3] {
        [self.layers(), self.mounts(), self.containers()]
    }
}

/// The name `dir` takes while it is removed (`<name>-removing`, beside
/// it): a crash leaves it for the next open to finish.
pub(crate) fn removing(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_owned();
    name.push("-removing");
    dir.with_file_name(name)
}

/// Whether a directory entry is a removal in progress.
pub(crate) fn is_removing(name: &str) -> bool {
    name.ends_with("-removing")
}
