//! The driver side of `strata check`: the driver's layer directories
//! against what the store names, driver debris, and overlay2's `l/`
//! short links and `lower` files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use strata_archive::Digest;
use strata_driver::overlay2;

use super::{chain_text, entries, is_temp, remove_path, Checker, FindingKind};
use crate::atomic;
use crate::error::{IoContext, Result};
use crate::ids::DriverLayer;
use crate::layer::{chain_id, Layer};
use crate::layout::record;

#[derive(Default)]
struct DriverDirs {
    layers: Vec<(String, PathBuf)>,
    debris: Vec<PathBuf>,
}

impl Checker<'_> {
    /// Every driver id the store names: layers, containers, mount
    /// records and staged work.
    fn named_driver_ids(&self) -> Result<BTreeSet<String>> {
        let layout = self.layout();
        let mut named = BTreeSet::new();
        // A value that is not an ID names no driver layer (the record
        // it is in is reported where it is read).
        let mut read = |dir: &Path, files: &[&str]| {
            for f in files {
                if let Some(id) = atomic::read(&dir.join(f))
                    .ok()
                    .and_then(|id| DriverLayer::parse(f, &id).ok())
                {
                    named.insert(id.driver_id());
                }
            }
        };
        for dir in [layout.layers(), layout.layer_staging()] {
            for (_, p) in entries(&dir)? {
                read(&p, &record::DRIVER_LAYERS);
            }
        }
        for (_, p) in entries(&layout.mounts())? {
            read(&p, &[record::MOUNT_ID, record::INIT_ID]);
        }
        for (_, p) in entries(&layout.tmp())? {
            read(&p, &record::DRIVER_LAYERS);
        }
        for c in self.container_configs()? {
            named.insert(c.init_id());
            named.insert(c.mount_id.to_string());
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

    /// Driver layers nothing names, and driver debris. An unnamed layer
    /// is removed only when the store is otherwise sound: a layer whose
    /// `cache-id` is lost still holds an image's content.
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
        let sound = !self.corrupt();
        for (id, path) in found.layers {
            if named.contains(&id) {
                continue;
            }
            let mut message = "no layer, container or staged work names it".to_owned();
            if self.opts.repair && !sound {
                message.push_str("; left in place while the store has corruption");
            }
            let fix = || self.store.layers.remove_stale(&id);
            let fix: Option<&dyn Fn() -> Result<()>> = if sound { Some(&fix) } else { None };
            self.found(
                FindingKind::OrphanDriverLayer,
                path.display().to_string(),
                message,
                fix,
            );
        }
        Ok(())
    }

    /// overlay2's `l/` short links to nothing. Looked at before the
    /// containers: a link left by a lost init layer would otherwise link
    /// to the one repair makes in its place, as a second name for it.
    pub(super) fn dangling_links(&mut self) -> Result<()> {
        let links = self.store.driver.home().join("l");
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
        Ok(())
    }

    /// Each overlay2 layer's `link` resolvable and its `lower` what its
    /// parents give.
    pub(super) fn overlay_links(&mut self, store_layers: &BTreeMap<Digest, Layer>) -> Result<()> {
        let home = self.store.driver.home().to_owned();
        let links = home.join("l");
        let layers = self.driver_dirs()?.map(|d| d.layers).unwrap_or_default();
        for (id, dir) in &layers {
            let Ok(short) = atomic::read(&dir.join("link")) else {
                continue;
            };
            // The name of a link in `l/`: never a path, whatever the
            // file holds.
            if !is_short_link(&short) {
                self.found(
                    FindingKind::MissingLink,
                    id.as_str(),
                    format!(
                        "its link file holds {:?}, not a short link name",
                        crate::ids::short(&short)
                    ),
                    None,
                );
                continue;
            }
            // A layer whose content is gone is reported as such; a link
            // to it would only dangle again.
            if !dir.join("diff").is_dir() {
                continue;
            }
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
        let below = self.layers_below(store_layers)?;
        for (id, dir) in &layers {
            self.lower(&home, id, dir, below.get(id));
        }
        Ok(())
    }

    /// A layer's `lower` file: every name in it must resolve, and where
    /// the store knows the layer's parents (`below`), it must be what
    /// `create` writes for them. Rebuilt, atomically, when every parent
    /// and its `l/` link are there ([`overlay2::lower_for`]); a layer's
    /// `lower` only names other layers, so rewriting it loses nothing.
    fn lower(&mut self, home: &Path, id: &str, dir: &Path, below: Option<&Below>) {
        let file = dir.join("lower");
        // 500 layers of `l/<26>:` fit in 16 KiB.
        let got = atomic::read_text(&file, 64 << 10).ok();
        // Each name is `l/<short>`: anything else (`../../etc`) is never
        // looked up, and is as good as missing.
        let unresolved = got.as_deref().and_then(|g| {
            g.split(':').find(|l| {
                !l.strip_prefix("l/").is_some_and(is_short_link)
                    || fs::metadata(home.join(l)).is_err()
            })
        });
        let want = below.map(|b| match b {
            Err(why) => Err(why.clone()),
            Ok(parents) => {
                let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
                overlay2::lower_for(home, id, &parents).map_err(|e| chain_text(&e))
            }
        });
        let needs_lower = match &want {
            // Not the store's (staged work, an orphan): only its names
            // are checked.
            None => false,
            Some(Ok(w)) => w.is_some(),
            // A layer made on a parent has a work directory.
            Some(Err(_)) => dir.join("work").is_dir(),
        };
        let mut message = if let Some(bad) = unresolved {
            format!("its lower {bad} is not there: it cannot be mounted")
        } else {
            match (&got, &want) {
                (None, _) if needs_lower => "its lower file is missing".to_owned(),
                (Some(g), Some(Ok(Some(w)))) if g != w => {
                    format!("its lower is {g}; its parents' links give {w}")
                }
                (Some(_), Some(Ok(None))) => "it has a lower file, but no parent".to_owned(),
                _ => return,
            }
        };
        let blocked = match &want {
            None => Some("the store does not say what lies below it".to_owned()),
            Some(Err(why)) => Some(why.clone()),
            Some(Ok(Some(_))) if !dir.join("work").is_dir() => {
                Some("its work directory is gone".to_owned())
            }
            Some(Ok(_)) => None,
        };
        let rebuild = || match want.as_ref().and_then(|w| w.as_ref().ok()) {
            Some(Some(w)) => atomic::write(&file, w.as_bytes()),
            _ => remove_path(&file),
        };
        if let (true, Some(why)) = (self.opts.repair, &blocked) {
            message.push_str(&format!("; not rebuilt: {why}"));
        }
        let fix: Option<&dyn Fn() -> Result<()>> = match blocked {
            None => Some(&rebuild),
            Some(_) => None,
        };
        self.found(FindingKind::BrokenLower, id, message, fix);
    }

    /// The parents of every driver layer the store names (driver ids, the
    /// parent first, down to the base layer), from the layers' records
    /// and the containers' configs, or why they cannot be told. A
    /// layer's `parent` is trusted only when it gives the layer's
    /// chainID, so a damaged record never decides a `lower`.
    fn layers_below(&self, layers: &BTreeMap<Digest, Layer>) -> Result<BTreeMap<String, Below>> {
        let stack = |top: Option<&Digest>| -> Below {
            let mut out = Vec::new();
            let mut cur = top;
            while let Some(c) = cur {
                let Some(l) = layers.get(c) else {
                    return Err(format!("layer {c} is not in the store"));
                };
                if chain_id(l.parent.as_ref(), &l.diff_id) != l.chain_id || out.len() > layers.len()
                {
                    return Err(format!("the records of layer {c} do not add up"));
                }
                out.push(l.cache_id.to_string());
                cur = l.parent.as_ref();
            }
            Ok(out)
        };
        let mut below = BTreeMap::new();
        for l in layers.values() {
            // The layer's own stack, less the layer: its own record is
            // checked with its parents'.
            let parents = stack(Some(&l.chain_id)).map(|s| s[1..].to_vec());
            below.insert(l.cache_id.to_string(), parents);
        }
        for c in self.container_configs()? {
            let image = stack(c.parent_layer.as_ref());
            let rw = image.clone().map(|s| {
                let mut v = vec![c.init_id()];
                v.extend(s);
                v
            });
            below.insert(c.init_id(), image);
            below.insert(c.mount_id.to_string(), rw);
        }
        Ok(below)
    }
}

/// Whether `s` is an overlay2 short link name, by the rule the driver
/// reads them with (it makes 26 of `[A-Z0-9]`): letters and digits.
fn is_short_link(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A driver layer's parents (driver ids, the parent first), or why the
/// store cannot tell them.
type Below = std::result::Result<Vec<String>, String>;
