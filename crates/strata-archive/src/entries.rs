//! The entries of a layer tar, read and checked as [`crate::apply`] reads
//! them, for writers that build something other than a directory tree
//! from a layer (a file-system image).
//!
//! Every entry comes out with its name normalised (no `..` above the
//! root, no NUL), its attributes parsed (PAX owners, times with
//! nanoseconds, `SCHILY.xattr.*` records), its whiteout meaning
//! classified, and its sizes cross-checked; the hostile cases `apply`
//! refuses are refused here with the same errors. Writing the content
//! (and resolving what a name means in the tree being built) is the
//! caller's.

use std::io::Read;

use strata_sys::fs;
use tar::EntryType;

use crate::apply::{device, entry_type, read_meta};
use crate::error::{Error, Result};
use crate::path;
use crate::read::{ReadError, Reader};
use crate::whiteout::{self, Name};

/// Attributes every entry carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Permission bits, set-id and sticky bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    /// Extended attributes, in the order the PAX records list them.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A file that is neither a regular file, a directory nor a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    /// A fifo (or, found in a lower layer, a socket).
    Fifo,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of `size` bytes. Its content follows, read with
    /// [`Entries::data`]: all of it, or for a sparse file the stored
    /// `chunks` (offset, length) one after the other.
    File {
        size: u64,
        chunks: Option<Vec<(u64, u64)>>,
    },
    Dir,
    /// A symlink; the target is not empty and holds no NUL.
    Symlink(Vec<u8>),
    /// A hard link to the (normalised) path, never the layer root.
    Link(Vec<Vec<u8>>),
    /// A device or a fifo.
    Special(Special),
    /// `.wh.NAME`: NAME in the entry's directory is deleted.
    Whiteout(Vec<u8>),
    /// `.wh..wh..opq`: the entry's directory hides what lies below it.
    Opaque,
}

/// One entry of a layer.
#[derive(Debug, Clone)]
pub struct LayerEntry {
    /// The name as the tar gives it, for messages.
    pub raw: Vec<u8>,
    /// The normalised path: its components, none empty, `.` or `..`.
    /// Empty for the layer root (only ever a [`EntryKind::Dir`]). For
    /// whiteouts and opaque markers, the directory they apply to.
    pub path: Vec<Vec<u8>>,
    pub kind: EntryKind,
    /// Unset (all zero) for whiteouts and opaque markers.
    pub attrs: Attrs,
}

/// The entries of a layer tar (uncompressed), one after the other.
pub struct Entries<R> {
    tar: Reader<R>,
    /// Where the last entry's content starts in the stream, and its
    /// stored length.
    span: (u64, u64),
}

impl<R: Read> Entries<R> {
    pub fn new(input: R) -> Self {
        Entries {
            tar: Reader::new(input),
            span: (0, 0),
        }
    }

    /// The next entry, or `None` at the end of the archive. The content
    /// of the one before that was not read is skipped.
    pub fn next_entry(&mut self) -> Result<Option<LayerEntry>> {
        loop {
            let e = match self.tar.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => return Ok(None),
                Err(ReadError::Stream(e)) => {
                    return Err(Error::stream("reading a tar header", Some(e)))
                }
                Err(ReadError::Entry { path, reason }) => return Err(Error::entry(&path, reason)),
            };
            let raw = e.path_bytes().to_vec();
            self.span = (e.data_pos(), e.stored());
            let Some(ty) = entry_type(&e, &raw)? else {
                continue;
            };
            let comps = path::normalize(&raw).map_err(|r| Error::entry(&raw, r))?;
            let Some((last, parent)) = comps.split_last() else {
                if ty != EntryType::Directory {
                    return Err(Error::entry(&raw, "the entry would replace the layer root"));
                }
                let attrs = attrs(&e, &raw)?;
                return Ok(Some(LayerEntry {
                    raw,
                    path: comps,
                    kind: EntryKind::Dir,
                    attrs,
                }));
            };
            if parent.iter().any(|c| c.starts_with(whiteout::PREFIX)) {
                return Err(Error::entry(
                    &raw,
                    "a directory name starts with the reserved whiteout prefix `.wh.`",
                ));
            }
            let special = match whiteout::classify(last).map_err(|r| Error::entry(&raw, r))? {
                Name::Opaque => Some(EntryKind::Opaque),
                Name::Whiteout(target) => Some(EntryKind::Whiteout(target.to_vec())),
                Name::Plain => None,
            };
            if let Some(kind) = special {
                return Ok(Some(LayerEntry {
                    raw,
                    path: parent.to_vec(),
                    kind,
                    attrs: Attrs::default(),
                }));
            }
            let attrs = attrs(&e, &raw)?;
            let kind = match ty {
                EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                    EntryKind::File {
                        size: e.size(),
                        chunks: e.sparse().map(|s| s.chunks.clone()),
                    }
                }
                EntryType::Directory => EntryKind::Dir,
                EntryType::Symlink => {
                    let target = e
                        .link_name_bytes()
                        .ok_or_else(|| Error::entry(&raw, "symlink without a target"))?;
                    if target.is_empty() || target.contains(&0) {
                        return Err(Error::entry(
                            &raw,
                            "symlink target is empty or contains NUL",
                        ));
                    }
                    EntryKind::Symlink(target.to_vec())
                }
                EntryType::Link => {
                    let target = e
                        .link_name_bytes()
                        .ok_or_else(|| Error::entry(&raw, "hard link without a target"))?;
                    let t = path::normalize(target)
                        .map_err(|r| Error::entry(&raw, format!("hard link target: {r}")))?;
                    if t.is_empty() {
                        return Err(Error::entry(&raw, "hard link to the layer root"));
                    }
                    EntryKind::Link(t)
                }
                EntryType::Char | EntryType::Block => {
                    let (major, minor) = fs::major_minor(device(&e, &raw, ty)?);
                    EntryKind::Special(if ty == EntryType::Char {
                        Special::Char { major, minor }
                    } else {
                        Special::Block { major, minor }
                    })
                }
                EntryType::Fifo => EntryKind::Special(Special::Fifo),
                other => {
                    return Err(Error::entry(
                        &raw,
                        format!("unsupported tar entry type {:?}", other.as_byte() as char),
                    ))
                }
            };
            return Ok(Some(LayerEntry {
                raw,
                path: comps,
                kind,
                attrs,
            }));
        }
    }

    /// Where the content of the entry last returned starts in the
    /// (uncompressed) stream, and how many bytes of it are stored: what
    /// a [`SplitRecorder`](crate::SplitRecorder) is told of a file.
    pub fn content_span(&self) -> (u64, u64) {
        self.span
    }

    /// The stored content of the entry last returned.
    pub fn data(&mut self) -> impl Read + '_ {
        self.tar.data()
    }

    /// The reader, positioned after the last member read.
    pub fn into_inner(self) -> R {
        self.tar.into_inner()
    }
}

fn attrs(e: &crate::read::Entry, raw: &[u8]) -> Result<Attrs> {
    let m = read_meta(e, raw)?;
    Ok(Attrs {
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime_sec: m.mtime.sec,
        mtime_nsec: m.mtime.nsec,
        xattrs: m.xattrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_test_support::{layer_tar, Entry};

    #[test]
    fn entries_come_normalised_and_classified() {
        let tar = layer_tar(&[
            ("./etc/", Entry::Dir),
            ("etc//hostname", Entry::File(b"box\n".to_vec())),
            ("etc/./mtab", Entry::Symlink("/proc/mounts".into())),
            ("etc/.wh.passwd", Entry::File(Vec::new())),
            ("etc/.wh..wh..opq", Entry::File(Vec::new())),
        ]);
        let mut entries = Entries::new(tar.as_slice());
        let mut got = Vec::new();
        while let Some(e) = entries.next_entry().unwrap() {
            if let EntryKind::File { .. } = e.kind {
                let mut s = Vec::new();
                entries.data().read_to_end(&mut s).unwrap();
                assert_eq!(s, b"box\n");
            }
            got.push((e.path, e.kind));
        }
        let etc = vec![b"etc".to_vec()];
        assert_eq!(
            got,
            vec![
                (etc.clone(), EntryKind::Dir),
                (
                    vec![b"etc".to_vec(), b"hostname".to_vec()],
                    EntryKind::File {
                        size: 4,
                        chunks: None
                    }
                ),
                (
                    vec![b"etc".to_vec(), b"mtab".to_vec()],
                    EntryKind::Symlink(b"/proc/mounts".to_vec())
                ),
                (etc.clone(), EntryKind::Whiteout(b"passwd".to_vec())),
                (etc, EntryKind::Opaque),
            ]
        );
    }

    #[test]
    fn hostile_entries_are_refused_as_apply_refuses_them() {
        let tar = layer_tar(&[("a/.wh.b/c", Entry::File(Vec::new()))]);
        let err = Entries::new(tar.as_slice()).next_entry().unwrap_err();
        assert!(
            err.to_string().contains("reserved whiteout prefix"),
            "{err}"
        );
        let tar = layer_tar(&[(".", Entry::Symlink("x".into()))]);
        let err = Entries::new(tar.as_slice()).next_entry().unwrap_err();
        assert!(err.to_string().contains("layer root"), "{err}");
    }
}
