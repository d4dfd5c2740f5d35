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
use std::os::fd::BorrowedFd;

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
    /// Sockets are skipped (they cannot be recreated from a tar).
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
        let mut h = Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        h.set_mode(st.st_mode & 0o7777);
        set_id(&mut h, &mut pax, "uid", st.st_uid.into());
        set_id(&mut h, &mut pax, "gid", st.st_gid.into());
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        let mut name_bytes = path.to_vec();
        let mut data: Option<std::fs::File> = None;
        match kind {
            FileType::Directory => {
                h.set_entry_type(EntryType::Directory);
                name_bytes.push(b'/');
            }
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                match self.links.get(&key) {
                    Some(first) if st.st_nlink > 1 => {
                        h.set_entry_type(EntryType::Link);
                        set_link(&mut h, &mut pax, &first.clone());
                    }
                    _ => {
                        if st.st_nlink > 1 {
                            self.links.insert(key, path.to_vec());
                        }
                        h.set_entry_type(EntryType::Regular);
                        h.set_size(st.st_size as u64);
                        data = Some(
                            fs::open_file_at(dir, fs::os(name))
                                .map_err(io_err("opening the file"))?,
                        );
                    }
                }
            }
            FileType::Symlink => {
                h.set_entry_type(EntryType::Symlink);
                let target =
                    fs::readlink_at(dir, fs::os(name)).map_err(io_err("reading the symlink"))?;
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
        for (k, v) in xattr::all_at(dir, name).map_err(io_err("reading xattrs"))? {
            if whiteout::is_overlay_private(&k) {
                continue;
            }
            let k =
                String::from_utf8(k).map_err(|_| Error::entry(path, "xattr name is not UTF-8"))?;
            pax.push((format!("SCHILY.xattr.{k}"), v));
        }
        set_name(&mut h, &mut pax, &name_bytes);
        self.append(path, h, pax, data)
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
