//! A tar archive (docker-archive, or an OCI layout as a tar): indexed
//! once (headers only, the content skipped by seeking) and then read at
//! offsets, several layers at a time. A compressed tar or a stream is
//! spooled to a plain file first, since the manifest that says what the
//! layers are usually comes after them.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_archive::{Compression, MAGIC_LEN};

use super::{bad, clean, escapes, missing, Blob, BlobKey, Source};
use crate::error::{Error, ErrorKind, IoContext, Result};

/// Symlinks followed while resolving one name, as the kernel allows.
const MAX_HOPS: usize = 40;

/// A tar archive being loaded.
pub struct TarSource {
    file: Arc<File>,
    entries: HashMap<String, Entry>,
    /// A spooled copy's directory, removed on drop, and the directory
    /// held open and flocked meanwhile: a store opened while this load
    /// runs sees live work there, not debris to clear.
    spool: Option<(PathBuf, File)>,
}

#[derive(Debug, Clone)]
enum Entry {
    File {
        offset: u64,
        size: u64,
    },
    Dir,
    Symlink(String),
    /// A hard link: the archive-relative name of its target.
    Link(String),
    /// Anything else (devices, fifos, sparse files): never content.
    Other,
}

impl TarSource {
    /// Opens the tar file at `path` (plain, or compressed with gzip,
    /// zstd, xz or bzip2). A compressed file is spooled under
    /// `spool_dir`.
    pub fn open(path: &Path, spool_dir: &Path) -> Result<TarSource> {
        let mut file = File::open(path).ctx(|| format!("opening {}", path.display()))?;
        let mut head = Vec::with_capacity(MAGIC_LEN);
        (&mut file)
            .take(MAGIC_LEN as u64)
            .read_to_end(&mut head)
            .ctx(|| format!("reading {}", path.display()))?;
        if head.is_empty() {
            return Err(bad("the file is empty: not an archive"));
        }
        file.rewind()
            .ctx(|| format!("reading {}", path.display()))?;
        if Compression::detect(&head) != Compression::None {
            return TarSource::spooled(&mut file, spool_dir);
        }
        TarSource::index(file, None)
    }

    /// Reads a whole archive from `input` (a pipe) into a file under
    /// `spool_dir`, decompressing it, and opens that.
    pub fn spooled(input: &mut dyn Read, spool_dir: &Path) -> Result<TarSource> {
        let mut rand = [0u8; 16];
        strata_sys::fs::random_bytes(&mut rand).ctx(|| "reading random bytes".into())?;
        let hex: String = rand.iter().map(|b| format!("{b:02x}")).collect();
        let dir = spool_dir.join(format!("load-{hex}"));
        std::fs::create_dir(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let held = File::open(&dir)
            .and_then(|d| strata_sys::fs::lock_exclusive(std::os::fd::AsFd::as_fd(&d)).map(|()| d))
            .ctx(|| format!("locking {}", dir.display()));
        let held = match held {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let path = dir.join("archive.tar");
        let copied = (|| {
            let mut out = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .ctx(|| format!("creating {}", path.display()))?;
            spool(input, &mut out)?;
            Ok(out)
        })();
        let mut file = match copied {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        if let Err(e) = file.rewind() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Error::io("reading the spooled archive", e));
        }
        TarSource::index(file, Some((dir, held)))
    }

    /// Reads every header of the tar in `file`, skipping content; takes
    /// over the spool directory, if any.
    fn index(file: File, spool: Option<(PathBuf, File)>) -> Result<TarSource> {
        match index_tar(&file) {
            Ok(entries) => Ok(TarSource {
                file: Arc::new(file),
                entries,
                spool,
            }),
            Err(e) => {
                if let Some((dir, _held)) = spool {
                    let _ = std::fs::remove_dir_all(dir);
                }
                Err(e)
            }
        }
    }
}

impl Source for TarSource {
    fn open(&self, key: &BlobKey) -> Result<Blob<'_>> {
        let (offset, size) = resolve(&self.entries, &key.archive_path())?;
        Ok(Blob {
            reader: Box::new(Section {
                file: self.file.clone(),
                pos: offset,
                end: offset + size,
            }),
            size,
            verified: false,
        })
    }
}

impl Drop for TarSource {
    fn drop(&mut self) {
        if let Some((dir, _)) = &self.spool {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Copies the archive `input`, decompressed, into `out`. A decoder's
/// complaint is about the archive (its compression, cut short or
/// corrupt), told apart from a failure to read or write at all.
fn spool(input: &mut dyn Read, out: &mut File) -> Result<()> {
    let reading = |e: io::Error| Error::io("reading the archive", e);
    let (kind, mut plain) = strata_archive::decompress(input).map_err(reading)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match plain.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if kind == Compression::None => return Err(reading(e)),
            Err(e) => {
                return Err(Error::with(
                    ErrorKind::InvalidArgument,
                    format!(
                        "the archive is {}-compressed, and its stream is cut short or corrupt after {total} decompressed bytes",
                        kind.as_str()
                    ),
                    e,
                ))
            }
        };
        out.write_all(&buf[..n])
            .ctx(|| "writing a copy of the archive to unpack".into())?;
        total += n as u64;
    }
}

const NOT_AN_ARCHIVE: &str =
    "not a tar archive: expected an image archive (docker save, OCI) or an OCI layout directory";

/// The entries of a tar file by cleaned name.
fn index_tar(file: &File) -> Result<HashMap<String, Entry>> {
    let len = file.metadata().ctx(|| "reading the archive".into())?.len();
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut archive = tar::Archive::new(file);
    // What the parser says of a file that is no tar quotes the file's
    // bytes: the error says what was expected instead. A read that
    // failed keeps its cause.
    let not_tar = |e: io::Error| match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::Other => bad(NOT_AN_ARCHIVE),
        _ => Error::io("reading the archive", e),
    };
    for entry in archive.entries_with_seek().map_err(not_tar)? {
        let entry = entry.map_err(not_tar)?;
        let raw = entry.path_bytes();
        // A name that is not UTF-8 can never be named by the JSON.
        let Ok(name) = std::str::from_utf8(&raw) else {
            continue;
        };
        let Some(name) = clean(name) else {
            continue;
        };
        let link = || {
            entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default()
        };
        let kind = entry.header().entry_type();
        let value = if kind.is_file() || kind.is_contiguous() {
            let (offset, size) = (entry.raw_file_position(), entry.size());
            if offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(bad(format!(
                    "the archive is truncated: {name:?} declares {size} bytes past its end"
                )));
            }
            Entry::File { offset, size }
        } else if kind.is_dir() {
            Entry::Dir
        } else if kind.is_symlink() {
            Entry::Symlink(link())
        } else if kind.is_hard_link() {
            Entry::Link(link())
        } else {
            Entry::Other
        };
        match (entries.get(&name), &value) {
            (Some(Entry::Dir), Entry::Dir) | (None, _) => {}
            (Some(_), _) => {
                return Err(bad(format!("the archive has two entries named {name:?}")));
            }
        }
        entries.insert(name, value);
    }
    if entries.is_empty() {
        return Err(bad(NOT_AN_ARCHIVE));
    }
    Ok(entries)
}

/// Finds the content of `name` in a tar's entries, following symlinks and
/// hard links inside the archive; one that leaves it is an error.
fn resolve(entries: &HashMap<String, Entry>, name: &str) -> Result<(u64, u64)> {
    let mut pending: VecDeque<String> = clean(name)
        .ok_or_else(|| escapes(name))?
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                cur.pop().ok_or_else(|| escapes(name))?;
                continue;
            }
            _ => cur.push(c),
        }
        let key = cur.join("/");
        match entries.get(&key) {
            Some(Entry::Symlink(target)) => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(bad(format!(
                        "{name:?}: more than {MAX_HOPS} symlinks (a loop?) in the archive"
                    )));
                }
                if target.starts_with('/') {
                    return Err(escapes(name));
                }
                cur.pop();
                for t in target.split('/').rev() {
                    pending.push_front(t.to_owned());
                }
            }
            Some(Entry::Link(target)) => {
                hops += 1;
                if hops > MAX_HOPS || !pending.is_empty() {
                    return Err(missing(name));
                }
                let target = clean(target).ok_or_else(|| escapes(name))?;
                cur.clear();
                pending.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned),
                );
            }
            Some(Entry::File { offset, size }) if pending.is_empty() => {
                return Ok((*offset, *size))
            }
            Some(Entry::File { .. } | Entry::Other) => return Err(missing(name)),
            Some(Entry::Dir) | None => {}
        }
    }
    Err(missing(name))
}

/// Part of the archive file, read with `pread` so several layers can be
/// read at once.
struct Section {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for Section {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, Entry)]) -> HashMap<String, Entry> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn links_resolve_inside_the_archive() {
        let e = entries(&[
            (
                "a/layer.tar",
                Entry::File {
                    offset: 512,
                    size: 10,
                },
            ),
            ("b/layer.tar", Entry::Symlink("../a/layer.tar".into())),
            ("c", Entry::Symlink("a".into())),
            ("d", Entry::Link("a/layer.tar".into())),
            ("evil", Entry::Symlink("../../etc".into())),
            ("abs", Entry::Symlink("/etc/passwd".into())),
            ("loop", Entry::Symlink("loop".into())),
        ]);
        assert_eq!(resolve(&e, "b/layer.tar").unwrap(), (512, 10));
        assert_eq!(resolve(&e, "c/layer.tar").unwrap(), (512, 10));
        assert_eq!(resolve(&e, "./d").unwrap(), (512, 10));
        for name in ["evil/passwd", "abs", "../a/layer.tar", "loop"] {
            assert!(resolve(&e, name).is_err(), "{name}");
        }
        assert_eq!(
            resolve(&e, "a/nothing").unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}
