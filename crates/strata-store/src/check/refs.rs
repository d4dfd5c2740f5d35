//! The reference index (`refs`) against a walk of the store.
use std::path::PathBuf;

use super::{Checker, FindingKind};
use crate::error::Result;
use crate::refs;

/// How many entries a finding names before it says "and N more".
const SHOWN: usize = 3;

impl Checker<'_> {
    /// Entries too many (a crash between two steps of a change) are
    /// stale; entries missing or malformed are damage. Repair rebuilds
    /// the index from the walk. A store without an index (made before it)
    /// is indexed on first need: nothing to report. When the walk itself
    /// fails (an image or a layer does not read back, reported above),
    /// the index is not judged.
    pub(super) fn refs(&mut self) -> Result<()> {
        let (store, lock) = (self.store, self.lock);
        if !refs::indexed(self.layout()) {
            return Ok(());
        }
        let Ok(want) = store.expected_refs() else {
            return Ok(());
        };
        let have = refs::on_disk(self.layout())?;
        let root = self.layout().refs();
        let show = |paths: Vec<PathBuf>| {
            let n = paths.len();
            let mut s: Vec<String> = paths
                .iter()
                .take(SHOWN)
                .map(|p| root.join(p).display().to_string())
                .collect();
            if n > SHOWN {
                s.push(format!("and {} more", n - SHOWN));
            }
            s.join(", ")
        };
        let rebuild = || store.rebuild_refs(lock);
        let missing: Vec<PathBuf> = want.difference(&have.entries).cloned().collect();
        if !missing.is_empty() || !have.malformed.is_empty() {
            let mut what = Vec::new();
            if !missing.is_empty() {
                what.push(format!(
                    "{} entries missing ({})",
                    missing.len(),
                    show(missing)
                ));
            }
            if !have.malformed.is_empty() {
                let n = have.malformed.len();
                let mut m: Vec<String> = have.malformed.iter().take(SHOWN).cloned().collect();
                if n > SHOWN {
                    m.push(format!("and {} more", n - SHOWN));
                }
                what.push(format!("{n} entries malformed ({})", m.join("; ")));
            }
            self.found(
                FindingKind::BadIndex,
                root.display().to_string(),
                what.join("; "),
                Some(&rebuild),
            );
        }
        let mut extra: Vec<PathBuf> = have.entries.difference(&want).cloned().collect();
        extra.extend(
            have.temp
                .iter()
                .filter_map(|p| p.strip_prefix(&root).ok().map(Into::into)),
        );
        if !extra.is_empty() {
            self.found(
                FindingKind::StaleIndex,
                root.display().to_string(),
                format!(
                    "{} entries name what no longer holds ({})",
                    extra.len(),
                    show(extra)
                ),
                Some(&rebuild),
            );
        }
        Ok(())
    }
}
