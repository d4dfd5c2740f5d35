//! `strata check` of the overlay2 layout (the fuse driver's too): the
//! layer directories and their debris, `l/` short links to nothing, each
//! layer's `link` and its `l/` link, and each layer's `lower` against
//! the parents the store knows.
//!
//! Every value read from `link` or `lower` is checked to be a short link
//! name (`l/<short>`) before it is looked up: a `../../etc` written there
//! is never followed, and is as good as missing.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use super::{is_short_name, lower_for, Overlay2};
use crate::check::{self, Finding, FindingKind, LayerDir, Listing, Parents, Repair};
use crate::error::{chain, Result};
use crate::Check;

/// A `link` file holds one short name.
const LINK_CAP: u64 = 4 << 10;
/// 500 layers of `l/<26>:` fit in 16 KiB.
const LOWER_CAP: u64 = 64 << 10;

/// The driver's own entries beside the layers: the names no layer may
/// have ([`crate::RESERVED`]), but vfs's `dir`.
fn own() -> Vec<&'static str> {
    crate::RESERVED
        .iter()
        .copied()
        .filter(|n| *n != "dir")
        .collect()
}

impl Check for Overlay2 {
    fn list(&self) -> Result<Listing> {
        check::list_layers(&self.home, &own())
    }

    /// `l/` links to nothing; objects no image names.
    fn check_shared(&self, found: &mut dyn FnMut(Finding)) -> Result<()> {
        if self.images.is_some() {
            self.check_objects(found)?;
        }
        for (name, path) in check::entries(&self.home.join("l"))? {
            let object = path.display().to_string();
            if fs::metadata(&path).is_err() {
                found(
                    Finding::new(FindingKind::DanglingLink, object, "links to nothing")
                        .with_repair(Repair::Remove(path)),
                );
            } else if check::is_temp(&name) {
                found(Finding::new(FindingKind::Note, object, "not a short link"));
            }
        }
        Ok(())
    }

    /// Each layer's `link` resolvable, then (through the links, as
    /// repaired) its `lower` what its parents give.
    fn check_layers(
        &self,
        parents: &BTreeMap<String, Parents>,
        found: &mut dyn FnMut(Finding),
    ) -> Result<()> {
        // Only published layers: one a killed `create` was making (or an
        // orphan) may hold a `link` or `lower` file not yet written.
        let layers: Vec<LayerDir> = self
            .list()?
            .layers
            .into_iter()
            .filter(|l| parents.contains_key(&l.id))
            .collect();
        for l in &layers {
            if let Some(f) = self.check_link(l) {
                found(f);
            }
        }
        for l in &layers {
            if let Some(f) = self.check_lower(l, parents.get(&l.id)) {
                found(f);
            }
        }
        if self.images.is_some() {
            for l in &layers {
                if let Some(f) = self.check_image(l) {
                    found(f);
                }
            }
        }
        Ok(())
    }
}

impl Overlay2 {
    /// The object store: objects no layer's image names (left by a
    /// removal that could not take them, or by a write cut short), and
    /// files that are no object. Skipped, with a note, while an image is
    /// being written: what it is about to name is not listed yet.
    fn check_objects(&self, found: &mut dyn FnMut(Finding)) -> Result<()> {
        let Some(dir) = self.objects_dir().filter(|d| d.is_dir()) else {
            return Ok(());
        };
        let Some(_lock) = self.objects_busy()? else {
            found(Finding::new(
                FindingKind::Note,
                dir.display().to_string(),
                "not checked: an image is being written",
            ));
            return Ok(());
        };
        let live = self.live_objects()?;
        for (name, path) in check::entries(&dir)? {
            let sub = path.is_dir() && name.len() == 2;
            let entries = if sub {
                check::entries(&path)?
            } else {
                vec![(name.clone(), path.clone())]
            };
            for (rest, p) in entries {
                let object = format!("{name}{rest}");
                let message = if !sub || !super::erofs::is_object_name(&object) {
                    "not an object (a write cut short leaves one)"
                } else if !live.contains(&object) {
                    "an object no image names"
                } else {
                    continue;
                };
                found(
                    Finding::new(FindingKind::Debris, p.display().to_string(), message)
                        .with_repair(Repair::Remove(p)),
                );
            }
        }
        Ok(())
    }

    /// An erofs layer's image: what the kernel would parse in it is what
    /// was written (its recorded metadata digest), and a half-written
    /// one is debris. A damaged image cannot be repaired here: the image
    /// that holds the layer is pulled or loaded again.
    fn check_image(&self, l: &LayerDir) -> Option<Finding> {
        let id = l.id.as_str();
        let partial = l.path.join(format!(".{}.partial", super::erofs::IMAGE));
        if partial.exists() {
            return Some(
                Finding::new(
                    FindingKind::Debris,
                    partial.display().to_string(),
                    "an image left half-written",
                )
                .with_repair(Repair::Remove(partial)),
            );
        }
        let recorded = l.path.join(super::erofs::IMAGE_META).exists();
        if !self.image_path(id).exists() {
            // No image: a layer never applied to, or a read-write one;
            // with the image's record there, one a crash cut short.
            return recorded.then(|| {
                Finding::new(
                    FindingKind::Damaged,
                    id,
                    "its image is missing, though its record is there",
                )
            });
        }
        let e = self.verify_image(id).err()?;
        Some(Finding::new(FindingKind::Damaged, id, chain(&e)))
    }

    /// The layer's `link` names a short link, and `l/<short>` leads to
    /// its `diff`.
    fn check_link(&self, l: &LayerDir) -> Option<Finding> {
        let id = l.id.as_str();
        let short = check::read_record(&l.path.join("link"), LINK_CAP)?;
        if !is_short_name(&short) {
            return Some(Finding::new(
                FindingKind::MissingLink,
                id,
                format!(
                    "its link file holds {:?}, not a short link name",
                    abbreviate(&short)
                ),
            ));
        }
        // A layer whose content is gone is reported as such; a link to
        // it would only dangle again.
        if !l.path.join("diff").is_dir() {
            return None;
        }
        let link = self.home.join("l").join(&short);
        let want = PathBuf::from(format!("../{id}/diff"));
        let got = fs::read_link(&link).ok();
        if got.as_ref() == Some(&want) {
            return None;
        }
        let message = match got {
            Some(g) => format!(
                "l/{short} points to {}, not {}",
                g.display(),
                want.display()
            ),
            None => format!("l/{short} is missing"),
        };
        Some(
            Finding::new(FindingKind::MissingLink, id, message)
                .with_repair(Repair::Relink { link, target: want }),
        )
    }

    /// A layer's `lower` file: every name in it must resolve, and where
    /// the store knows the layer's parents (`parents`), it must be what
    /// `create` writes for them. Rebuilt, atomically, when every parent
    /// and its `l/` link are there ([`lower_for`]); a layer's `lower`
    /// only names other layers, so rewriting it loses nothing.
    fn check_lower(&self, l: &LayerDir, parents: Option<&Parents>) -> Option<Finding> {
        let (home, id, dir) = (self.home.as_path(), l.id.as_str(), l.path.as_path());
        let file = dir.join("lower");
        let got = check::read_record(&file, LOWER_CAP);
        let unresolved = got.as_deref().and_then(|g| {
            g.split(':').find(|l| {
                !l.strip_prefix("l/").is_some_and(is_short_name)
                    || fs::metadata(home.join(l)).is_err()
            })
        });
        let want = parents.map(|p| match p {
            Err(why) => Err(why.clone()),
            Ok(parents) => {
                let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
                lower_for(home, id, &parents).map_err(|e| chain(&e))
            }
        });
        let has_work = || dir.join("work").is_dir();
        let needs_lower = match &want {
            // Not the store's: `check_layers` passes published layers
            // only, so this is never asked of one.
            None => false,
            Some(Ok(w)) => w.is_some(),
            // A layer made on a parent has a work directory.
            Some(Err(_)) => has_work(),
        };
        let message = if let Some(bad) = unresolved {
            format!("its lower {bad} is not there: it cannot be mounted")
        } else {
            match (&got, &want) {
                (None, _) if needs_lower => "its lower file is missing".to_owned(),
                (Some(g), Some(Ok(Some(w)))) if g != w => {
                    format!("its lower is {g}; its parents' links give {w}")
                }
                (Some(_), Some(Ok(None))) => "it has a lower file, but no parent".to_owned(),
                _ => return None,
            }
        };
        let finding = Finding::new(FindingKind::BrokenLower, id, message);
        let blocked = match &want {
            None => Some("the store does not say what lies below it".to_owned()),
            Some(Err(why)) => Some(why.clone()),
            Some(Ok(Some(_))) if !has_work() => Some("its work directory is gone".to_owned()),
            Some(Ok(_)) => None,
        };
        Some(match (blocked, want) {
            (Some(why), _) => finding.blocked(format!("not rebuilt: {why}")),
            (None, Some(Ok(Some(w)))) => finding.with_repair(Repair::Write { file, content: w }),
            (None, _) => finding.with_repair(Repair::Remove(file)),
        })
    }
}

/// The first 12 characters of what a damaged file holds (less a
/// `sha256:`), for a message.
fn abbreviate(s: &str) -> &str {
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    let mut end = s.len().min(12);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviate_keeps_twelve_characters() {
        assert_eq!(abbreviate("0123456789abcdef"), "0123456789ab");
        assert_eq!(abbreviate("short"), "short");
        assert_eq!(abbreviate("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(abbreviate("ééééééééé"), "éééééé");
    }

    /// Everything `check_shared` and `check_layers` find, repairing each
    /// as it is found (as the store does).
    fn check_and_repair(d: &Overlay2, parents: &BTreeMap<String, Parents>) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut found = |f: Finding| {
            d.repair(&f).unwrap();
            out.push(f);
        };
        d.check_shared(&mut found).unwrap();
        d.check_layers(parents, &mut found).unwrap();
        out
    }

    /// A driver holding layer `a` and, over it, `b` of `kind`.
    fn a_and_b(kind: crate::LayerKind) -> Option<(tempfile::TempDir, Overlay2)> {
        use crate::LayerKind;
        crate::overlay2::with_layers(&[("a", None, LayerKind::ReadOnly), ("b", Some("a"), kind)])
    }

    /// A lost `l/` link and a `lower` that names a path are found and
    /// repaired, the `lower` through the link repaired before it; a link
    /// to nothing is removed; after that the check is clean.
    #[test]
    fn lost_links_and_a_damaged_lower_are_repaired() {
        use crate::{Driver, LayerKind};
        let Some((_tmp, d)) = a_and_b(LayerKind::ReadWrite) else {
            return;
        };
        let home = d.home().to_owned();
        let lower = fs::read_to_string(home.join("b/lower")).unwrap();
        fs::remove_file(home.join(&lower)).unwrap();
        fs::write(home.join("b/lower"), "../../etc").unwrap();
        std::os::unix::fs::symlink("../gone/diff", home.join("l/GONE")).unwrap();
        let parents: BTreeMap<String, Parents> = [
            ("a".to_owned(), Ok(vec![])),
            ("b".to_owned(), Ok(vec!["a".to_owned()])),
        ]
        .into();
        let found = check_and_repair(&d, &parents);
        let kinds: Vec<(FindingKind, &str)> =
            found.iter().map(|f| (f.kind, f.object.as_str())).collect();
        let gone = home.join("l/GONE").display().to_string();
        assert_eq!(
            kinds,
            [
                (FindingKind::DanglingLink, gone.as_str()),
                (FindingKind::MissingLink, "a"),
                (FindingKind::BrokenLower, "b"),
            ],
            "{found:?}"
        );
        assert_eq!(fs::read_to_string(home.join("b/lower")).unwrap(), lower);
        assert!(check_and_repair(&d, &parents).is_empty());
        let m = d.get("b", None).unwrap();
        m.release().unwrap();
        d.cleanup().unwrap();
    }

    /// Without the parents from the store a `lower` is not rewritten.
    #[test]
    fn a_lower_is_not_rebuilt_without_the_parents() {
        use crate::{Driver, LayerKind};
        let Some((_tmp, d)) = a_and_b(LayerKind::ReadOnly) else {
            return;
        };
        fs::remove_file(d.home().join("b/lower")).unwrap();
        let why = Err("the records of layer x do not add up".to_owned());
        let parents: BTreeMap<String, Parents> = [("b".to_owned(), why)].into();
        let found = check_and_repair(&d, &parents);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].message, "its lower file is missing");
        assert_eq!(
            found[0].blocked.as_deref(),
            Some("not rebuilt: the records of layer x do not add up")
        );
        assert!(found[0].repair.is_none());
        assert!(!d.home().join("b/lower").exists());
    }

    #[test]
    fn check_id_reserves_the_entries_the_check_skips() {
        for own in own() {
            assert!(crate::check_id(own).is_err(), "{own} is a valid layer id");
        }
    }
}
