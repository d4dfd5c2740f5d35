//! Metadata writes that a crash cannot tear: write a temp file in the same
//! directory, fsync it, rename it over the name, fsync the directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::error::{IoContext, Result};

/// Replaces `path` with `data` atomically and durably.
pub fn write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().expect("metadata paths have a parent");
    let name = path.file_name().expect("metadata paths have a name");
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })()
    .ctx(|| format!("writing {}", path.display()))
}

/// A file in a staging directory: a plain write. Staged objects are made
/// durable all at once, by one syncfs before the directory is renamed
/// into place (see `Store::publish`), rather than by an fsync per file.
pub fn write_staged(path: &Path, data: &[u8]) -> Result<()> {
    fs::write(path, data).ctx(|| format!("writing {}", path.display()))
}

/// fsync of a directory: makes renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads a small metadata file, trimmed.
pub fn read(path: &Path) -> Result<String> {
    Ok(fs::read_to_string(path)
        .ctx(|| format!("reading {}", path.display()))?
        .trim()
        .to_owned())
}
