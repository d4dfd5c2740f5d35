//! The volume side of `strata check`: `volumes/` debris, volume
//! directories against their records, and containers' mounts against the
//! volumes there are.

use std::fs;

use strata_types::error::chain;
use strata_volume::local::DRIVER;

use super::{entries, Checker, FindingKind};
use crate::error::Result;
use crate::mount::MountKind;

impl Checker<'_> {
    pub(super) fn volumes(&mut self) -> Result<()> {
        let store = self.store;
        let dir = store.layout.volumes();
        if dir.is_dir() {
            let local = store.volumes.local()?;
            self.volume_debris(&local)?;
            self.volume_records(&local)?;
        }
        self.volume_mounts()
    }

    /// Staging and temp files an interrupted create, remove or count
    /// left (open removes them, so these are the ones made since).
    fn volume_debris(&mut self, local: &strata_volume::local::Local) -> Result<()> {
        let debris = local.debris()?;
        self.debris_cleaned_at_once(
            &debris,
            "left by an interrupted volume create, remove or mount count",
            "volumes",
            || Ok(local.clean_staging().map(drop)?),
        );
        Ok(())
    }

    /// Every volume directory has a readable record, and a local volume
    /// its `_data`.
    fn volume_records(&mut self, local: &strata_volume::local::Local) -> Result<()> {
        let dir = self.store.layout.volumes();
        for (name, path) in entries(&dir)? {
            if name.starts_with('.') {
                continue;
            }
            let object = format!("volume {name}");
            if strata_volume::check_name(&name).is_err()
                || !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
            {
                self.note(path.display().to_string(), "not a volume: ignored");
                continue;
            }
            let data = local.data_path(&name);
            let meta = self.store.layout.volume_meta(&name);
            if local.is_dockers(&name) {
                let message = match local.meta(&name) {
                    Ok(_) => "a volume of Docker's: used as a local volume; its labels \
                              (in Docker's volumes/metadata.db) are not read"
                        .to_owned(),
                    Err(e) => format!("a volume of Docker's that strata cannot use: {e}"),
                };
                self.note(object, message);
                continue;
            }
            if fs::symlink_metadata(&meta).is_err() {
                let has_data = data.is_dir();
                let message = if has_data {
                    "it has no meta.json"
                } else {
                    "it has neither meta.json nor _data"
                };
                let fix = || Ok(local.recover_meta(&name)?);
                let fix: Option<&dyn Fn() -> Result<()>> = if has_data { Some(&fix) } else { None };
                self.found(FindingKind::BadVolume, object, message, fix);
                continue;
            }
            match local.meta(&name) {
                Err(e) => {
                    let e = crate::Error::from(e);
                    self.found(FindingKind::BadVolume, object, chain(&e), None);
                }
                Ok(m) if m.driver == DRIVER && !data.is_dir() => self.found(
                    FindingKind::BadVolume,
                    object,
                    "a local volume without its _data",
                    None,
                ),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// Containers whose mounts name a volume that is not there.
    fn volume_mounts(&mut self) -> Result<()> {
        let store = self.store;
        // Looking must not make `volumes/`.
        let local = if store.layout.volumes().is_dir() {
            Some(store.volumes.local()?)
        } else {
            None
        };
        for (name, dir) in entries(&store.layout.containers())? {
            if crate::layout::is_removing(&name) {
                continue;
            }
            // A broken record is reported by the containers' check.
            let Ok(c) = super::read_config(&name, &dir) else {
                continue;
            };
            for m in c.mounts.iter().filter(|m| m.kind == MountKind::Volume) {
                let Some(v) = m.name.as_deref() else {
                    continue;
                };
                if !local.as_ref().is_some_and(|l| l.exists(v)) {
                    self.found(
                        FindingKind::MissingVolume,
                        format!("{} ({})", c.name, c.id),
                        format!(
                            "its mount at {} names volume {v}, which is gone",
                            m.destination
                        ),
                        None,
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::{FindingKind, Store};

    #[test]
    fn staging_made_after_open_is_debris_that_repair_removes() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path(), Some("vfs")).unwrap();
        store
            .create_volume(Some("v"), "local", &BTreeMap::new(), &BTreeMap::new())
            .unwrap();
        let vols = store.root().join("volumes");
        std::fs::write(vols.join("v/_data/f"), "data").unwrap();
        std::fs::create_dir_all(vols.join(".w.creating/_data")).unwrap();
        let report = store.check(false).unwrap();
        let debris: Vec<_> = report
            .remaining()
            .map(|f| (f.kind, f.object.clone()))
            .collect();
        let staged = vols.join(".w.creating").display().to_string();
        assert_eq!(debris, [(FindingKind::Debris, staged.clone())]);
        let report = store.check(true).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert!(!vols.join(".w.creating").exists());
        assert_eq!(std::fs::read(vols.join("v/_data/f")).unwrap(), b"data");
        // The next open removes it without a check.
        std::fs::create_dir_all(vols.join(".w.creating")).unwrap();
        drop(store);
        let store = Store::open(t.path(), None).unwrap();
        assert!(!vols.join(".w.creating").exists());
        assert!(store.check(false).unwrap().is_clean());
    }
}
