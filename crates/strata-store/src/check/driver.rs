//! The driver side of `strata check`: the driver's layer directories
//! against what the store names, driver debris, and overlay2's `l/`
//! short links.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::{entries, is_temp, remove_path, Checker, FindingKind};
use crate::atomic;
use crate::container::Container;
use crate::error::{IoContext, Result};

#[derive(Default)]
struct DriverDirs {
    layers: Vec<(String, PathBuf)>,
    debris: Vec<PathBuf>,
}

impl Checker<'_> {
    /// Every driver id the store names: layers, containers, mount
    /// records and staged work.
    fn named_driver_ids(&self) -> Result<BTreeSet<String>> {
        let store = self.store;
        let image_dir = self.image_dir();
        let mut named = BTreeSet::new();
        let mut read = |dir: &Path, files: &[&str]| {
            for f in files {
                if let Ok(id) = atomic::read(&dir.join(f)) {
                    named.insert(id);
                }
            }
        };
        for sub in ["layerdb/sha256", "layerdb/tmp"] {
            for (_, p) in entries(&image_dir.join(sub))? {
                read(&p, &["cache-id", "mount-id", "init-id"]);
            }
        }
        for (_, p) in entries(&image_dir.join("layerdb/mounts"))? {
            read(&p, &["mount-id", "init-id"]);
        }
        for (_, p) in entries(&store.root.join("tmp"))? {
            read(&p, &["cache-id", "mount-id", "init-id"]);
        }
        for (_, dir) in entries(&store.root.join("containers"))? {
            if let Ok(c) = fs::read(dir.join("config.json"))
                .map_err(|_| ())
                .and_then(|b| serde_json::from_slice::<Container>(&b).map_err(|_| ()))
            {
                named.insert(c.init_id());
                named.insert(c.mount_id);
            }
        }
        Ok(named)
    }

    /// The driver's layer directories and its debris (`-removing`,
    /// `-creating`), each as id and path; `None` for a driver whose
    /// layout this does not know.
    fn driver_dirs(&self) -> Result<Option<DriverDirs>> {
        let home = self.store.driver.home();
        let (dir, own): (PathBuf, &[&str]) = match self.store.driver.name() {
            // The fuse driver keeps overlay2's layout.
            "overlay2" | "fuse" => (home.to_owned(), &["l", "refs", "lock"]),
            "vfs" => (home.join("dir"), &[]),
            _ => return Ok(None),
        };
        let mut out = DriverDirs::default();
        for (name, path) in entries(&dir)? {
            if own.contains(&name.as_str()) || name.starts_with("probe") {
                continue;
            }
            if name.ends_with("-removing") || name.ends_with("-creating") {
                out.debris.push(path);
            } else {
                out.layers.push((name, path));
            }
        }
        Ok(Some(out))
    }

    /// Driver layers nothing names, and driver debris.
    pub(super) fn driver_layers(&mut self) -> Result<()> {
        let Some(found) = self.driver_dirs()? else {
            self.note(
                self.store.driver.home().display().to_string(),
                format!(
                    "orphan layers of the {} driver are not checked",
                    self.store.driver.name()
                ),
            );
            return Ok(());
        };
        for path in found.debris {
            self.found(
                FindingKind::Debris,
                path.display().to_string(),
                "a driver layer left half-made or half-removed",
                Some(&|| remove_path(&path)),
            );
        }
        let named = self.named_driver_ids()?;
        for (id, path) in found.layers {
            if named.contains(&id) {
                continue;
            }
            let fix = || self.store.remove_stale_layer(&id);
            self.found(
                FindingKind::OrphanDriverLayer,
                path.display().to_string(),
                "no layer, container or staged work names it",
                Some(&fix),
            );
        }
        Ok(())
    }

    /// overlay2's `l/` short links: each to a layer's `diff`, and each
    /// layer's `link` and `lower` resolvable.
    pub(super) fn overlay_links(&mut self) -> Result<()> {
        let home = self.store.driver.home().to_owned();
        let links = home.join("l");
        for (name, path) in entries(&links)? {
            if fs::metadata(&path).is_err() {
                self.found(
                    FindingKind::DanglingLink,
                    path.display().to_string(),
                    "links to nothing",
                    Some(&|| remove_path(&path)),
                );
            } else if is_temp(&name) {
                self.note(path.display().to_string(), "not a short link");
            }
        }
        let layers = self.driver_dirs()?.map(|d| d.layers).unwrap_or_default();
        for (id, dir) in &layers {
            let Ok(short) = atomic::read(&dir.join("link")) else {
                continue;
            };
            let link = links.join(&short);
            let want = PathBuf::from(format!("../{id}/diff"));
            let got = fs::read_link(&link).ok();
            if got.as_ref() != Some(&want) {
                let message = match got {
                    Some(g) => format!(
                        "l/{short} points to {}, not {}",
                        g.display(),
                        want.display()
                    ),
                    None => format!("l/{short} is missing"),
                };
                let fix = || {
                    remove_path(&link)?;
                    std::os::unix::fs::symlink(&want, &link).ctx(|| format!("linking l/{short}"))
                };
                self.found(FindingKind::MissingLink, id.as_str(), message, Some(&fix));
            }
        }
        for (id, dir) in &layers {
            let Ok(lower) = atomic::read(&dir.join("lower")) else {
                continue;
            };
            if let Some(bad) = lower
                .split(':')
                .find(|l| fs::metadata(home.join(l)).is_err())
            {
                self.found(
                    FindingKind::BrokenLower,
                    id.as_str(),
                    format!("its lower {bad} is not there: it cannot be mounted"),
                    None,
                );
            }
        }
        Ok(())
    }
}
