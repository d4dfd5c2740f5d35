//! `strata system df` and `strata system prune`.
//!
//! Sizes are bytes of file content: a layer's `size` (what its apply
//! wrote) and a container's read-write layer over its init layer (the
//! driver's `diff_size`). A layer several images share counts once.
//!
//! Reclaimable is what `system prune -a` would free: image layers no
//! container stands on, and layers nothing reaches at all. Prune keeps
//! every container, stopped ones too (unlike Docker's: a strata container
//! is often work in progress, mounted and committed rather than run), so
//! their bytes are never reclaimable; a container is active while it
//! runs.
//!
//! A volume's size is the bytes of file content under its `_data` that
//! are on the root's file system (each inode once): a local volume with
//! mount options (`type`/`device`) holds its content on another file
//! system while mounted, which is not counted, and a plugin's volume
//! counts 0. Its bytes are reclaimable when no container names it
//! (`volume prune -a` would free them).

use std::collections::{BTreeMap, BTreeSet};

use strata_archive::Digest;

use std::fs;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::image::Image;
use crate::layer::chain_ids;
use crate::Store;

/// One row of `system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub total: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
}

/// An image's share of the layers.
#[derive(Debug, Clone)]
pub struct ImageUsage {
    pub image: Image,
    /// Bytes in layers other images use too.
    pub shared_size: u64,
    /// Bytes in layers only this image uses.
    pub unique_size: u64,
    pub containers: usize,
}

/// A container's read-write layer.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub id: String,
    pub name: String,
    pub size: u64,
    /// The limit `--storage-opt size=` set, as the driver enforces it.
    pub size_limit: Option<u64>,
}

/// A volume's share (`system df`).
#[derive(Debug, Clone)]
pub struct VolumeUsage {
    pub name: String,
    pub driver: String,
    /// Bytes of file content under `_data` on the root's file system.
    pub size: u64,
    /// How many containers name it.
    pub containers: usize,
}

/// What `system df` shows.
#[derive(Debug, Clone)]
pub struct DiskUsage {
    pub images: Usage,
    pub containers: Usage,
    /// Every layer in the layer store, whoever uses it.
    pub layers: Usage,
    /// Every volume; active when a container names it.
    pub volumes: Usage,
    pub image_details: Vec<ImageUsage>,
    pub container_details: Vec<ContainerUsage>,
    pub volume_details: Vec<VolumeUsage>,
}

/// What `system prune` did.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    /// `Untagged: ...` and `Deleted: ...`, as `rmi` prints them.
    pub lines: Vec<String>,
    /// Volumes removed (`system prune --volumes`).
    pub volumes: Vec<String>,
    /// Bytes of layer content removed, and of the removed volumes'
    /// content.
    pub reclaimed: u64,
}

impl Store {
    /// The chainIDs reached from `tops`, parents included.
    fn reached(&self, tops: impl IntoIterator<Item = Digest>) -> Result<BTreeSet<Digest>> {
        let mut live = BTreeSet::new();
        for top in tops {
            let mut cur = Some(top);
            while let Some(c) = cur {
                if !live.insert(c.clone()) {
                    break;
                }
                cur = self.layer(&c)?.parent;
            }
        }
        Ok(live)
    }

    /// `strata system df`.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let _lock = self.lock()?;
        let sizes: BTreeMap<Digest, u64> = self
            .layers()?
            .into_iter()
            .map(|l| (l.chain_id, l.size))
            .collect();
        let sum = |set: &BTreeSet<Digest>| -> u64 { set.iter().filter_map(|c| sizes.get(c)).sum() };
        let images = self.images()?;
        let containers = self.containers()?;
        let by_container =
            self.reached(containers.iter().filter_map(|c| c.parent_layer.clone()))?;
        let by_image: Vec<BTreeSet<Digest>> = images
            .iter()
            .map(|i| chain_ids(&i.diff_ids).into_iter().collect())
            .collect();
        let mut users: BTreeMap<&Digest, usize> = BTreeMap::new();
        for set in &by_image {
            for c in set {
                *users.entry(c).or_default() += 1;
            }
        }
        let all_image_layers: BTreeSet<Digest> = by_image.iter().flatten().cloned().collect();
        let mut image_details = Vec::new();
        for (image, set) in images.into_iter().zip(&by_image) {
            let (shared, unique): (BTreeSet<Digest>, BTreeSet<Digest>) =
                set.iter().cloned().partition(|c| users[c] > 1);
            let n = containers.iter().filter(|c| c.image == image.id).count();
            image_details.push(ImageUsage {
                shared_size: sum(&shared),
                unique_size: sum(&unique),
                containers: n,
                image,
            });
        }
        let idle: BTreeSet<Digest> = all_image_layers
            .difference(&by_container)
            .cloned()
            .collect();
        let images = Usage {
            total: image_details.len(),
            active: image_details.iter().filter(|i| i.containers > 0).count(),
            size: sum(&all_image_layers),
            reclaimable: sum(&idle),
        };
        let mut container_details = Vec::new();
        for c in &containers {
            let size = self
                .driver
                .diff_size(&c.mount_id, Some(&c.init_id()))
                .map_err(|e| Error::driver(format!("size of container {}", c.name), e))?;
            let size_limit = match self.driver.quota() {
                Ok(q) => q
                    .size_limit(&c.mount_id)
                    .map_err(|e| Error::driver(format!("size limit of container {}", c.name), e))?,
                Err(_) => None,
            };
            container_details.push(ContainerUsage {
                id: c.id.to_string(),
                name: c.name.to_string(),
                size,
                size_limit,
            });
        }
        let local = self.volumes.local()?;
        let root_dev = self.root_dev()?;
        let mut volume_details = Vec::new();
        // From the records: asking a plugin where its volume is could
        // hang, and its data is not under the root anyway.
        for name in local.names()? {
            let n = containers
                .iter()
                .filter(|c| c.mounts.iter().any(|m| m.name.as_deref() == Some(&name)))
                .count();
            let driver = local.meta(&name).map(|m| m.driver).unwrap_or_default();
            let size = content_bytes(&local.data_path(&name), root_dev)?;
            volume_details.push(VolumeUsage {
                name,
                driver,
                size,
                containers: n,
            });
        }
        let volumes = Usage {
            total: volume_details.len(),
            active: volume_details.iter().filter(|v| v.containers > 0).count(),
            size: volume_details.iter().map(|v| v.size).sum(),
            reclaimable: volume_details
                .iter()
                .filter(|v| v.containers == 0)
                .map(|v| v.size)
                .sum(),
        };
        let mut running = 0;
        for c in &containers {
            if self.container_state(c)?.status == crate::Status::Running {
                running += 1;
            }
        }
        let containers = Usage {
            total: container_details.len(),
            active: running,
            size: container_details.iter().map(|c| c.size).sum(),
            reclaimable: 0,
        };
        let live: BTreeSet<Digest> = all_image_layers.union(&by_container).cloned().collect();
        let layers = Usage {
            total: sizes.len(),
            active: live.len(),
            size: sizes.values().sum(),
            reclaimable: sizes
                .iter()
                .filter(|(c, _)| !by_container.contains(*c))
                .map(|(_, s)| s)
                .sum(),
        };
        Ok(DiskUsage {
            images,
            containers,
            layers,
            volumes,
            image_details,
            container_details,
            volume_details,
        })
    }

    /// `container prune`: removes every container that is not running
    /// (and the image layers nothing else uses then); returns their IDs
    /// and the bytes their layers held. A container that starts
    /// meanwhile is left.
    pub fn prune_containers(&self) -> Result<(Vec<String>, u64)> {
        let sizes: BTreeMap<String, u64> = (self.disk_usage()?.container_details.into_iter())
            .map(|c| (c.id, c.size))
            .collect();
        let (mut removed, mut reclaimed) = (Vec::new(), 0);
        for c in self.containers()? {
            if self.container_state(&c)?.status == crate::Status::Running {
                continue;
            }
            match self.remove_container(&c, false) {
                Ok(()) => {
                    reclaimed += sizes.get(c.id.as_str()).copied().unwrap_or(0);
                    removed.push(c.id.to_string());
                }
                Err(e) if e.kind() == crate::ErrorKind::InUse => {}
                Err(e) => return Err(e),
            }
        }
        Ok((removed, reclaimed))
    }

    /// `strata system prune`: removes dangling images (no tag, no
    /// container, no image committed from them), or with `all` every
    /// image no container uses, then any layer nothing reaches.
    pub fn prune(&self, all: bool) -> Result<Pruned> {
        self.prune_with(all, false)
    }

    /// [`Store::prune`], and with `volumes` first the anonymous volumes
    /// no container uses, as `volume prune` does (`system prune
    /// --volumes`; Docker's `system prune` keeps volumes without it).
    pub fn prune_with(&self, all: bool, volumes: bool) -> Result<Pruned> {
        let lock = self.lock()?;
        let mut out = Pruned::default();
        if volumes {
            let local = self.volumes.local()?;
            let root_dev = self.root_dev()?;
            let mut sizes = BTreeMap::new();
            for name in local.names()? {
                let size = content_bytes(&local.data_path(&name), root_dev)?;
                sizes.insert(name, size);
            }
            out.volumes = self.prune_volumes_held(&lock, false)?;
            out.reclaimed += out.volumes.iter().filter_map(|v| sizes.get(v)).sum::<u64>();
        }
        let before: BTreeMap<Digest, u64> = self
            .layers()?
            .into_iter()
            .map(|l| (l.chain_id, l.size))
            .collect();
        // Removing an image can leave its parent dangling: go again until
        // nothing more goes.
        loop {
            let images = self.images()?;
            let used: BTreeSet<Digest> = self.containers()?.into_iter().map(|c| c.image).collect();
            let parents: BTreeSet<&Digest> =
                images.iter().filter_map(|i| i.parent.as_ref()).collect();
            let doomed: Vec<&Image> = images
                .iter()
                .filter(|i| !used.contains(&i.id))
                .filter(|i| all || (i.tags.is_empty() && !parents.contains(&i.id)))
                .collect();
            let mut gone = false;
            for i in doomed {
                // Gone already, with a child as its untagged parent; or
                // a parent when this pass began: it goes in a later pass,
                // after its children.
                if !self.images.image_exists(&i.id) || parents.contains(&i.id) {
                    continue;
                }
                // Forced: tags in several repositories do not keep an
                // unused image from `prune -a` (no container uses these).
                out.lines
                    .extend(self.remove_image_held(&lock, i.id.as_str(), true)?);
                gone = true;
            }
            if !gone {
                break;
            }
        }
        for l in self.collect_layers(&lock)? {
            out.lines.push(format!("Deleted: {l}"));
        }
        // Downloads an interrupted pull left for the next to resume.
        for (digest, size) in crate::transfer::partial::prune(&self.layout.partial_blobs())
            .map_err(|e| Error::io("removing partial downloads", e))?
        {
            out.lines
                .push(format!("Deleted partial download: {digest}"));
            out.reclaimed += size;
        }
        let after: BTreeSet<Digest> = self.layers()?.into_iter().map(|l| l.chain_id).collect();
        out.reclaimed += before
            .iter()
            .filter(|(c, _)| !after.contains(*c))
            .map(|(_, s)| s)
            .sum::<u64>();
        Ok(out)
    }
}

/// Bytes allocated under the store's root, by what they hold: every
/// byte is in exactly one bucket (each inode counted once; mounted union
/// views are not entered).
#[derive(Debug, Clone, Default)]
pub struct OnDisk {
    pub total: u64,
    /// The driver's home: layer content, container layers, init layers.
    pub layer_content: u64,
    /// `image/`: image configs, layer metadata, tar-split records, tags.
    pub metadata: u64,
    /// `containers/` and `names/`.
    pub containers: u64,
    /// `volumes/`: volume records and the content of their `_data` that
    /// is on the root's file system.
    pub volumes: u64,
    /// Everything else: the lock file, staging.
    pub other: u64,
}

/// Bytes of file content under `dir` on the device `dev` (each inode
/// once; other file systems mounted below are not entered); 0 when
/// `dir` does not exist.
fn content_bytes(dir: &Path, dev: u64) -> Result<u64> {
    let mut total = 0;
    walk_device(dir, dev, |_, md| {
        if md.is_file() {
            total += md.len();
        }
    })?;
    Ok(total)
}

/// Visits everything under `dir` (itself included) that is on the device
/// `dev`, each inode once, never entering another file system mounted
/// below (a mounted union view is counted where its layers live, not
/// again through the mount). What is removed while walked is passed over.
fn walk_device(dir: &Path, dev: u64, mut visit: impl FnMut(&Path, &fs::Metadata)) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(p) = stack.pop() {
        let md = match fs::symlink_metadata(&p) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("looking up {}", p.display()), e)),
        };
        if md.dev() != dev || !seen.insert(md.ino()) {
            continue;
        }
        visit(&p, &md);
        if md.is_dir() {
            for e in fs::read_dir(&p).ctx(|| format!("listing {}", p.display()))? {
                stack.push(e.ctx(|| format!("listing {}", p.display()))?.path());
            }
        }
    }
    Ok(())
}

impl Store {
    /// The device the root is on.
    fn root_dev(&self) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let root = self.layout.root();
        Ok(fs::symlink_metadata(root)
            .ctx(|| format!("looking up {}", root.display()))?
            .dev())
    }

    /// Walks the root and sums allocated blocks per bucket.
    pub fn on_disk(&self) -> Result<OnDisk> {
        use std::os::unix::fs::MetadataExt;
        let _lock = self.lock()?;
        let root_dev = self.root_dev()?;
        let driver_home = self.driver.home().to_owned();
        let mut out = OnDisk::default();
        let layout = &self.layout;
        walk_device(layout.root(), root_dev, |p, md| {
            let bytes = md.blocks() * 512;
            let bucket = if p.starts_with(&driver_home) {
                &mut out.layer_content
            } else if p.starts_with(layout.images_root()) {
                &mut out.metadata
            } else if p.starts_with(layout.containers()) || p.starts_with(layout.names()) {
                &mut out.containers
            } else if p.starts_with(layout.volumes()) {
                &mut out.volumes
            } else {
                &mut out.other
            };
            *bucket += bytes;
            out.total += bytes;
        })?;
        Ok(out)
    }
}
