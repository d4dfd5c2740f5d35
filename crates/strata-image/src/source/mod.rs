//! Where an image's content comes from. A [`Source`] hands out blobs by
//! digest (and, for the archive formats that name files by path, files by
//! path) as streams with their sizes, and small documents read whole under
//! a size cap. It checks nothing: the reader hashes what it reads and
//! compares with the descriptor that named the blob, so a source is
//! trusted no more than the bytes it returns.
//!
//! Two sources live here: [`TarSource`], a tar file indexed once (headers
//! only, the content skipped by seeking) and read at offsets, several
//! layers at a time; and [`DirSource`], a directory with every open
//! confined beneath it. A registry is one more implementation.

use std::io::Read;
use std::path::Path;

use strata_archive::Digest;

use crate::error::{Error, ErrorKind, IoContext, Result};

mod dir;
mod tar;

pub use self::dir::DirSource;
pub use self::tar::TarSource;

/// What a blob is looked up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BlobKey {
    /// Content-addressed: an OCI layout's `blobs/sha256/<hex>`, a
    /// registry's blob.
    Digest(Digest),
    /// A file of an archive by its path: `manifest.json`, `index.json`,
    /// a legacy docker-archive's `<id>/layer.tar`.
    Path(String),
}

impl BlobKey {
    /// The path an archive keeps this blob at.
    pub fn archive_path(&self) -> String {
        match self {
            BlobKey::Digest(d) => format!("blobs/sha256/{}", d.hex()),
            BlobKey::Path(p) => p.clone(),
        }
    }
}

/// An open blob: its bytes and the length the source says it has. It may
/// borrow from its source.
pub struct Blob<'a> {
    pub reader: Box<dyn Read + Send + 'a>,
    pub size: u64,
    /// The reader checks the bytes against the digest they were asked
    /// for as they pass, and fails with `InvalidData` instead of ending
    /// when they do not match (a registry's blobs). Unless this is set,
    /// the bytes are unchecked and the caller hashes them.
    pub verified: bool,
}

/// A place images are read from. Every method may be called from several
/// threads at once (layers are unpacked in parallel).
pub trait Source: Sync {
    /// The blob `key` names. A key the source cannot hold (a path, for a
    /// registry) is [`ErrorKind::NotFound`].
    fn open(&self, key: &BlobKey) -> Result<Blob<'_>>;

    /// Whether `key` names a blob of this source.
    fn has(&self, key: &BlobKey) -> bool {
        self.open(key).is_ok()
    }

    /// The bytes of a small document (a manifest, a config, `index.json`),
    /// refused when the source says it is longer than `cap`.
    fn read_small(&self, key: &BlobKey, cap: u64) -> Result<Vec<u8>> {
        read_capped(self.open(key)?, &key.archive_path(), cap)
    }

    /// A manifest or an index by digest. Archives keep them as blobs; a
    /// registry serves them apart from blobs.
    fn read_manifest(&self, digest: &Digest, cap: u64) -> Result<Vec<u8>> {
        self.read_small(&BlobKey::Digest(digest.clone()), cap)
    }
}

/// Opens the archive or layout at `path`: a directory, or a tar file
/// (plain, or gzip, zstd, xz or bzip2). A compressed file is spooled under `spool_dir`.
pub fn open_archive(path: &Path, spool_dir: &Path) -> Result<Box<dyn Source>> {
    let md = std::fs::metadata(path).ctx(|| format!("opening {}", path.display()))?;
    if md.is_dir() {
        return Ok(Box::new(DirSource::open(path)?));
    }
    Ok(Box::new(TarSource::open(path, spool_dir)?))
}

/// All of `blob`, which must be at most `cap` bytes; `name` says which
/// it is in errors.
pub(crate) fn read_capped(blob: Blob<'_>, name: &str, cap: u64) -> Result<Vec<u8>> {
    let Blob { reader, size, .. } = blob;
    if size > cap {
        return Err(bad(format!(
            "{name:?} is {size} bytes, more than any image document may be"
        )));
    }
    let mut buf = Vec::with_capacity(size as usize);
    reader
        .take(size)
        .read_to_end(&mut buf)
        .ctx(|| format!("reading {name:?} from the archive"))?;
    if buf.len() as u64 != size {
        return Err(bad(format!("{name:?} is truncated")));
    }
    Ok(buf)
}

pub(crate) fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

pub(crate) fn escapes(name: &str) -> Error {
    bad(format!("{name:?} points outside the archive"))
}

pub(crate) fn missing(name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("{name:?} is not in the archive"),
    )
}

/// `name` with `.` and empty components dropped and `..` applied; `None`
/// when it climbs out of the archive. A leading `/` is refused too.
pub fn clean(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_confines_names() {
        assert_eq!(clean("./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(clean("a/../b").as_deref(), Some("b"));
        assert_eq!(clean("a/../../b"), None);
        assert_eq!(clean("/etc/passwd"), None);
    }
}
