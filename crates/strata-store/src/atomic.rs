//! Store records: written so that a crash cannot tear them (temp file in
//! the same directory, fsync, rename over the name, fsync of the
//! directory: `strata_sys::atomic`), and read back capped and without
//! following symlinks.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, ErrorKind, IoContext, Result};

/// Replaces `path` with `data` atomically and durably
/// ([`strata_sys::atomic::write`]). Writes run under the store lock, so a
/// temp file already there is a dead writer's, and is replaced.
pub fn write(path: &Path, data: &[u8]) -> Result<()> {
    strata_sys::atomic::write(path, data).ctx(|| format!("writing {}", path.display()))
}

/// A file in a staging directory: a plain write. Staged objects are made
/// durable all at once, by one syncfs before the directory is renamed
/// into place (see `Store::publish`), rather than by an fsync per file.
pub fn write_staged(path: &Path, data: &[u8]) -> Result<()> {
    fs::write(path, data).ctx(|| format!("writing {}", path.display()))
}

pub use strata_sys::atomic::{sync_dir, sync_paths};

/// Makes directory `path` and the missing ones above it, private to the
/// store's owner (0700, as every directory of the store).
pub fn make_dirs(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .ctx(|| format!("creating {}", path.display()))
}

/// The most a one-value record (`cache-id`, `parent`, `mount-id`,
/// `names/<name>`, `size`, ...) may hold.
pub const VALUE_CAP: u64 = 4 << 10;

/// The most a JSON record (`repositories.json`, an image config, a
/// container's `config.json`) may hold: what `load` allows a JSON
/// document.
pub const RECORD_CAP: u64 = 16 << 20;

/// Reads a one-value metadata file, trimmed (at most [`VALUE_CAP`]).
pub fn read(path: &Path) -> Result<String> {
    read_text(path, VALUE_CAP)
}

/// Reads a text record of at most `cap` bytes, trimmed.
pub fn read_text(path: &Path, cap: u64) -> Result<String> {
    let bytes = read_capped(path, cap)?;
    let s = String::from_utf8(bytes).map_err(|e| {
        Error::with(
            ErrorKind::Corrupt,
            format!("{} is not UTF-8", path.display()),
            e,
        )
    })?;
    Ok(s.trim().to_owned())
}

/// Reads a store record of at most `cap` bytes. The record must be a
/// regular file, not a symlink (a link or a fifo planted in the store is
/// never followed or waited on), the caller's, and no larger than `cap`: a hostile
/// 40 MB `repositories.json` is refused before it is read, not parsed
/// into ten times its size.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let file = strata_sys::fs::open_nofollow(path).map_err(|e| {
        if e.raw_os_error() == Some(40) {
            // ELOOP: the name is a symlink.
            Error::new(
                ErrorKind::Corrupt,
                format!("{} is a symlink, not a store record", path.display()),
            )
        } else {
            Error::io(format!("reading {}", path.display()), e)
        }
    })?;
    let md = file
        .metadata()
        .ctx(|| format!("reading {}", path.display()))?;
    if !md.is_file() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("{} is not a regular file", path.display()),
        ));
    }
    // A store directory that was open to others (tightened on open, with
    // a warning) may hold what another user put there.
    let me = strata_sys::fs::euid();
    if md.uid() != me {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "{} is owned by uid {}, not by uid {me} who runs strata: not a record of this store",
                path.display(),
                md.uid()
            ),
        ));
    }
    let too_large = |n: u64| {
        Error::new(
            ErrorKind::Corrupt,
            format!(
                "{} is too large: {n} bytes, more than the {cap} a store record may hold",
                path.display()
            ),
        )
    };
    if md.len() > cap {
        return Err(too_large(md.len()));
    }
    let mut buf = Vec::with_capacity(md.len() as usize);
    // Bounded even if the size changes while it is read.
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .ctx(|| format!("reading {}", path.display()))?;
    if buf.len() as u64 > cap {
        return Err(too_large(buf.len() as u64));
    }
    Ok(buf)
}
