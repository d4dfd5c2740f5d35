//! Writing layer tars: one header per file-system object, deterministic.
//!
//! Headers are ustar, with a PAX record only when a value does not fit
//! (long names and link names, large ids) and for xattrs
//! (`SCHILY.xattr.*`, as Docker and GNU tar write them). Names are written
//! as raw bytes, so names that are not UTF-8 survive. Times are whole
//! seconds; user and group names are left empty; whiteouts carry mode 0,
//! owner 0 and mtime 0, so the same tree always gives the same bytes.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use strata_sys::fs;
use strata_sys::Stat;
use strata_sys::{xattr, FileType};
use tar::{EntryType, Header};

use crate::digest::{Digest, DigestWriter};
use crate::error::{Error, Result};
use crate::whiteout;

/// What a diff wrote.
#[derive(Debug, Clone)]
pub struct DiffReport {
    /// sha256 of the tar written: the new layer's diffID.
    pub diff_id: Digest,
    /// Bytes written.
    pub tar_size: u64,
    /// Entries written, whiteouts included.
    pub entries: u64,
}

pub(crate) struct LayerWriter<W: Write> {
    builder: tar::Builder<DigestWriter<W>>,
    /// First name written for each multiply-linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
}

/// Largest value of a 7-digit octal ustar id field.
const MAX_USTAR_ID: u64 = 0o7777777;

impl<W: Write> LayerWriter<W> {
    pub fn new(out: W) -> Self {
        LayerWriter {
            builder: tar::Builder::new(DigestWriter::new(out)),
            links: HashMap::new(),
            entries: 0,
        }
    }

    /// Writes the object `dir/name` as `path` (relative, no leading `/`).
    /// Sockets are skipped (they cannot be recreated from a tar), and so
    /// is a name that is gone since `st` was read (a running container
    /// removed or renamed it), as the walks skip a name gone before.
    pub fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        st: &Stat,
    ) -> Result<()> {
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Socket {
            return Ok(());
        }
        let io_err = |op: &'static str| move |e: io::Error| Error::entry_io(path, op, e);
        // A regular file is opened before anything is written. In a
        // running container's tree the name `lstat` saw may name
        // something else by now: only a regular file is ever opened
        // (never a device, whose bytes are the host's disk, nor a fifo,
        // which blocks for ever), and when another regular file took the
        // name, that one is archived, with its own attributes and
        // xattrs, read from the open file.
        let mut data: Option<(std::fs::File, Stat)> = None;
        if kind == FileType::RegularFile && self.first_name(st).is_none() {
            match fs::open_regular_at(dir, fs::os(name), None) {
                Err(e) if vanished(&e) => return Ok(()),
                r => data = Some(r.map_err(io_err("opening the file"))?),
            }
        }
        let st: Stat = data.as_ref().map_or(*st, |(_, fresh)| *fresh);
        let st = &st;
        if self.first_name(st).is_some() {
            // Another name of an inode already written.
            data = None;
        }
        let mut h = Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        h.set_mode(st.st_mode & 0o7777);
        set_id(&mut h, &mut pax, "uid", st.st_uid.into());
        set_id(&mut h, &mut pax, "gid", st.st_gid.into());
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        let mut name_bytes = path.to_vec();
        match kind {
            FileType::Directory => {
                h.set_entry_type(EntryType::Directory);
                name_bytes.push(b'/');
            }
            FileType::RegularFile => match self.first_name(st) {
                Some(first) => {
                    h.set_entry_type(EntryType::Link);
                    set_link(&mut h, &mut pax, first);
                }
                None => {
                    h.set_entry_type(EntryType::Regular);
                    h.set_size(st.st_size as u64);
                }
            },
            FileType::Symlink => {
                h.set_entry_type(EntryType::Symlink);
                let target = match fs::readlink_at(dir, fs::os(name)) {
                    Err(e) if vanished(&e) => return Ok(()),
                    r => r.map_err(io_err("reading the symlink"))?,
                };
                set_link(&mut h, &mut pax, &target);
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                h.set_entry_type(if kind == FileType::CharacterDevice {
                    EntryType::Char
                } else {
                    EntryType::Block
                });
                let (major, minor) = fs::major_minor(st.st_rdev);
                h.set_device_major(major)
                    .map_err(io_err("writing the device number"))?;
                h.set_device_minor(minor)
                    .map_err(io_err("writing the device number"))?;
            }
            FileType::Fifo => h.set_entry_type(EntryType::Fifo),
            _ => return Err(Error::entry(path, "unknown file type")),
        }
        let xattrs = match &data {
            Some((file, _)) => xattr::all(file.as_fd(), false),
            None => xattr::all_at(dir, name),
        };
        let xattrs = match xattrs {
            Err(e) if vanished(&e) => return Ok(()),
            r => r.map_err(io_err("reading xattrs"))?,
        };
        for (k, v) in xattrs {
            if whiteout::is_overlay_private(&k) {
                continue;
            }
            let k =
                String::from_utf8(k).map_err(|_| Error::entry(path, "xattr name is not UTF-8"))?;
            pax.push((format!("SCHILY.xattr.{k}"), v));
        }
        set_name(&mut h, &mut pax, &name_bytes);
        let linked = (data.is_some() && st.st_nlink > 1).then_some((st.st_dev, st.st_ino));
        self.append(path, h, pax, data.map(|(f, _)| f))?;
        // Only once written: a later name links to an entry that is there.
        if let Some(key) = linked {
            self.links.insert(key, path.to_vec());
        }
        Ok(())
    }

    /// The name an inode with several links was first written as.
    fn first_name(&self, st: &Stat) -> Option<&[u8]> {
        if st.st_nlink > 1 {
            self.links.get(&(st.st_dev, st.st_ino)).map(Vec::as_slice)
        } else {
            None
        }
    }

    /// A hard-link entry `path` -> `target`, with the attributes of `st`.
    pub fn link(&mut self, path: &[u8], target: &[u8], st: &Stat) -> Result<()> {
        let mut h = Header::new_ustar();
        let mut pax = Vec::new();
        h.set_entry_type(EntryType::Link);
        h.set_mode(st.st_mode & 0o7777);
        set_id(&mut h, &mut pax, "uid", st.st_uid.into());
        set_id(&mut h, &mut pax, "gid", st.st_gid.into());
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        set_link(&mut h, &mut pax, target);
        set_name(&mut h, &mut pax, path);
        self.append(path, h, pax, None)
    }

    /// A whiteout entry, `.wh.NAME` or `.wh..wh..opq`, at `path`.
    pub fn marker(&mut self, path: &[u8]) -> Result<()> {
        let mut h = Header::new_ustar();
        let mut pax = Vec::new();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        set_name(&mut h, &mut pax, path);
        self.append(path, h, pax, None)
    }

    fn append(
        &mut self,
        path: &[u8],
        mut h: Header,
        pax: Vec<(String, Vec<u8>)>,
        data: Option<std::fs::File>,
    ) -> Result<()> {
        let io_err = |op: &'static str| move |e: io::Error| Error::entry_io(path, op, e);
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(io_err("writing the PAX header"))?;
        }
        h.set_cksum();
        let size = h.size().unwrap_or(0);
        match data {
            Some(file) => {
                let exact = ExactReader {
                    inner: file.take(size),
                    left: size,
                };
                self.builder
                    .append(&h, exact)
                    .map_err(io_err("writing the file's content"))?;
            }
            None => self
                .builder
                .append(&h, io::empty())
                .map_err(io_err("writing the header"))?,
        }
        self.entries += 1;
        Ok(())
    }

    pub fn finish(self) -> Result<(W, DiffReport)> {
        let out = self
            .builder
            .into_inner()
            .map_err(|e| Error::fs("finishing the tar", "", e))?;
        let (w, diff_id, tar_size) = out.finish();
        Ok((
            w,
            DiffReport {
                diff_id,
                tar_size,
                entries: self.entries,
            },
        ))
    }
}

/// Whether `e` says the name is gone.
fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Fails when a file shrinks while it is archived, instead of writing a
/// tar whose header lies about the size.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn set_id(h: &mut Header, pax: &mut Vec<(String, Vec<u8>)>, key: &str, id: u64) {
    let fits = id <= MAX_USTAR_ID;
    let v = if fits { id } else { 0 };
    if key == "uid" {
        h.set_uid(v);
    } else {
        h.set_gid(v);
    }
    if !fits {
        pax.push((key.to_owned(), id.to_string().into_bytes()));
    }
}

/// Puts `path` in the ustar name (and prefix) fields, or in a PAX `path`
/// record when it does not fit.
fn set_name(h: &mut Header, pax: &mut Vec<(String, Vec<u8>)>, path: &[u8]) {
    let ustar = h.as_ustar_mut().expect("a ustar header");
    if path.len() <= ustar.name.len() {
        ustar.name[..path.len()].copy_from_slice(path);
        return;
    }
    // Split at a `/` so the prefix takes <= 155 bytes and the name <= 100
    // (not at a trailing `/`: the name would be empty).
    let split = path
        .iter()
        .enumerate()
        .filter(|(i, b)| **b == b'/' && *i + 1 < path.len())
        .map(|(i, _)| i)
        .find(|&i| i <= ustar.prefix.len() && path.len() - i - 1 <= ustar.name.len());
    if let Some(i) = split {
        ustar.prefix[..i].copy_from_slice(&path[..i]);
        ustar.name[..path.len() - i - 1].copy_from_slice(&path[i + 1..]);
        return;
    }
    let n = ustar.name.len();
    ustar.name.copy_from_slice(&path[..n]);
    pax.push(("path".to_owned(), path.to_vec()));
}

fn set_link(h: &mut Header, pax: &mut Vec<(String, Vec<u8>)>, target: &[u8]) {
    let old = h.as_old_mut();
    if target.len() <= old.linkname.len() {
        old.linkname[..target.len()].copy_from_slice(target);
        return;
    }
    let n = old.linkname.len();
    old.linkname.copy_from_slice(&target[..n]);
    pax.push(("linkpath".to_owned(), target.to_vec()));
}

#[cfg(test)]
mod tests {
    //! A running container's tree changes while it is read: the name
    //! `lstat` saw as a regular file may be something else when it is
    //! opened. The probe behind these swapped a file for a block device
    //! (its bytes, a disk the container may not read, ended up in `cp`,
    //! `commit` and `export`) and for a fifo (`commit` blocked for ever).
    use std::os::fd::{AsFd, OwnedFd};
    use std::path::Path;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    const CONTENT: &[u8] = b"regular-content\n";

    /// Writes the entry `f` of a fresh directory whose `f` was a regular
    /// file when `lstat`ed and is changed by `swap` before it is written.
    /// On a thread: a fifo opened for reading would block for ever.
    fn write_swapped(swap: impl FnOnce(&Path, BorrowedFd<'_>)) -> Result<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), CONTENT).unwrap();
        let d: OwnedFd = fs::open_dir(dir.path()).unwrap();
        let st = fs::lstat_at(d.as_fd(), "f".as_ref()).unwrap().unwrap();
        swap(&dir.path().join("f"), d.as_fd());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut w = LayerWriter::new(Vec::new());
            let r = w
                .entry(d.as_fd(), b"f", b"f", &st)
                .and_then(|()| w.finish().map(|(out, _)| out));
            let _ = tx.send(r);
            drop(dir);
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("writing the entry blocked")
    }

    fn replace(f: &Path, by: impl FnOnce(&Path)) {
        std::fs::remove_file(f).unwrap();
        by(f);
    }

    #[test]
    fn unchanged_file_is_written_with_its_content() {
        let tar = write_swapped(|_, _| {}).unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        let mut got = Vec::new();
        e.read_to_end(&mut got).unwrap();
        assert_eq!(got, CONTENT);
    }

    #[test]
    fn fifo_swapped_in_is_never_opened() {
        let e = write_swapped(|f, d| {
            replace(f, |_| {
                fs::mknod_at(d, "f".as_ref(), FileType::Fifo, 0o644, 0).unwrap()
            })
        })
        .unwrap_err();
        assert!(e.to_string().contains("f"), "{e}");
        assert!(format!("{e:?}").contains("not a regular file"), "{e:?}");
    }

    #[test]
    fn symlink_to_a_device_swapped_in_is_never_followed() {
        let e = write_swapped(|f, _| {
            replace(f, |f| std::os::unix::fs::symlink("/dev/zero", f).unwrap())
        })
        .unwrap_err();
        assert!(format!("{e:?}").contains("not a regular file"), "{e:?}");
    }

    /// A program that writes by rename gives the name another regular
    /// file: that one is archived, with its own size and content.
    #[test]
    fn another_file_swapped_in_is_archived_as_it_is() {
        let tar = write_swapped(|f, _| {
            let other = f.with_file_name("other");
            std::fs::write(&other, b"longer new content\n").unwrap();
            std::fs::rename(&other, f).unwrap();
        })
        .unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        let mut got = Vec::new();
        e.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"longer new content\n");
    }

    #[test]
    fn a_file_gone_since_it_was_looked_at_is_left_out() {
        let tar = write_swapped(|f, _| std::fs::remove_file(f).unwrap()).unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        assert_eq!(a.entries().unwrap().count(), 0);
    }

    /// A device node is never opened for its content, whoever may read
    /// it: only its `O_PATH` handle is looked at.
    #[test]
    fn a_device_is_not_a_regular_file() {
        let dev = fs::open_dir(Path::new("/dev")).unwrap();
        for name in ["null", "zero"] {
            let e = fs::open_regular_at(dev.as_fd(), name.as_ref(), None).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "/dev/{name}: {e}");
        }
    }
}
