//! Debris of interrupted work: staging directories, `-removing` renames
//! and temp files of atomic writes.
use std::fs;
use std::path::PathBuf;

use strata_types::error::chain;

use super::{entries, is_temp, remove_path, Checker, FindingKind};
use crate::error::Result;
use crate::layout;
use crate::staging;

impl Checker<'_> {
    /// Reports each of `paths` as debris (`why` says what left it); with
    /// repair, runs `clean` once (its failure a note on `what`) and marks
    /// repaired each path that is gone after it.
    pub(super) fn debris_cleaned_at_once(
        &mut self,
        paths: &[PathBuf],
        why: &str,
        what: &str,
        clean: impl FnOnce() -> Result<()>,
    ) {
        let first = self.report.findings.len();
        for p in paths {
            self.found(FindingKind::Debris, p.display().to_string(), why, None);
        }
        if self.opts.repair && !paths.is_empty() {
            if let Err(e) = clean() {
                self.found(FindingKind::Note, what, chain(&e), None);
            }
            for (f, p) in self.report.findings[first..].iter_mut().zip(paths) {
                f.repaired = fs::symlink_metadata(p).is_err();
            }
        }
    }

    /// Staging, `-removing` renames and temp files.
    pub(super) fn debris(&mut self) -> Result<()> {
        let store = self.store;
        let layout = &store.layout;
        let mut staged = Vec::new();
        for dir in layout.staging_dirs() {
            // (A commit fills its staged layer with no store lock held.)
            staged.extend(
                entries(&dir)?
                    .into_iter()
                    .map(|(_, p)| p)
                    .filter(|p| !staging::is_live(p)),
            );
        }
        for dir in layout.removal_dirs() {
            for (name, p) in entries(&dir)? {
                if layout::is_removing(&name) {
                    staged.push(p);
                }
            }
        }
        // One cleanup, as `open` does it, covers them all.
        let lock = self.lock;
        self.debris_cleaned_at_once(&staged, "left by interrupted work", "staging", || {
            store.clean_staging(lock, true)
        });
        // Temp files of atomic writes, wherever metadata is written.
        let mut dirs = vec![layout.image_dir().to_owned(), layout.image_configs()];
        for parent in [
            layout.image_metadata_dir(),
            layout.layers(),
            layout.mounts(),
            layout.containers(),
        ] {
            dirs.extend(entries(&parent)?.into_iter().map(|(_, p)| p));
        }
        for dir in dirs.iter().filter(|d| d.is_dir()) {
            for (name, p) in entries(dir)? {
                if is_temp(&name) {
                    self.found(
                        FindingKind::Debris,
                        p.display().to_string(),
                        "temp file of an interrupted write",
                        Some(&|| remove_path(&p)),
                    );
                }
            }
        }
        Ok(())
    }
}
