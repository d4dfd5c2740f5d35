//! Where `save` writes a layout: a tar written in one pass, or a
//! directory filled one synced file at a time.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use crate::atomic;
use crate::error::{Error, IoContext, Result};

/// Largest size a ustar header holds (11 octal digits); a larger file
/// gets a PAX `size` record.
const USTAR_MAX_SIZE: u64 = 0o77_777_777_777;

/// Writes an entry's content: exactly the size it was declared with.
pub(super) type Fill<'f> = dyn FnMut(&mut dyn Write) -> Result<()> + 'f;

/// Where the layout goes.
pub(super) trait Sink {
    /// Makes the directory `path`.
    fn dir(&mut self, path: &str) -> Result<()>;
    /// Writes the file `path` of `size` bytes, which `fill` writes.
    fn file(&mut self, path: &str, size: u64, fill: &mut Fill<'_>) -> Result<()>;
}

/// A tar in one pass: ustar headers (PAX for a size ustar cannot hold),
/// owned by 0:0, mtime 0, modes 0644 and 0755.
pub(super) struct TarSink<W: Write>(pub tar::Builder<W>);

fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

impl<W: Write> Sink for TarSink<W> {
    fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = tar_header(tar::EntryType::Directory, 0o755, 0);
        self.0
            .append_data(&mut h, format!("{path}/"), io::empty())
            .ctx(|| format!("writing {path}/"))
    }

    fn file(&mut self, path: &str, size: u64, fill: &mut Fill<'_>) -> Result<()> {
        let ctx = || format!("writing {path}");
        if size > USTAR_MAX_SIZE {
            let name = path.rsplit('/').next().unwrap_or(path);
            let pax = pax_record("size", &size.to_string());
            let mut h = tar_header(tar::EntryType::XHeader, 0o644, pax.len() as u64);
            self.0
                .append_data(&mut h, format!("PaxHeaders.0/{name}"), &pax[..])
                .ctx(ctx)?;
        }
        let mut h = tar_header(tar::EntryType::Regular, 0o644, size);
        h.set_path(path).ctx(ctx)?;
        h.set_cksum();
        // Streamed straight into the archive: the header first, as the
        // size is known.
        let out = self.0.get_mut();
        out.write_all(h.as_bytes()).ctx(ctx)?;
        fill(out)?;
        let pad = (512 - size % 512) % 512;
        out.write_all(&[0u8; 512][..pad as usize]).ctx(ctx)
    }
}

/// A PAX extended header record, `"<len> <key>=<value>\n"`, `len`
/// counting the whole record, its own digits included.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let rest = format!(" {key}={value}\n");
    let mut len = rest.len();
    while len != rest.len() + len.to_string().len() {
        len = rest.len() + len.to_string().len();
    }
    format!("{len}{rest}").into_bytes()
}

/// An OCI layout directory: every file written to a temp name, synced,
/// renamed into place.
pub(super) struct DirSink(pub PathBuf);

impl Sink for DirSink {
    fn dir(&mut self, path: &str) -> Result<()> {
        let p = self.0.join(path);
        fs::create_dir(&p).ctx(|| format!("creating {}", p.display()))
    }

    fn file(&mut self, path: &str, _size: u64, fill: &mut Fill<'_>) -> Result<()> {
        let dest = self.0.join(path);
        let dir = dest.parent().expect("a path inside the layout");
        let name = dest.file_name().expect("a path inside the layout");
        let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
        let ctx = || format!("writing {}", dest.display());
        let result = (|| {
            let file = File::create(&tmp).ctx(ctx)?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            fill(&mut out)?;
            let file = out
                .into_inner()
                .map_err(|e| Error::io(ctx(), e.into_error()))?;
            file.sync_all().ctx(ctx)?;
            fs::rename(&tmp, &dest).ctx(ctx)?;
            atomic::sync_dir(dir).ctx(ctx)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        for (key, value) in [("size", "8589934592"), ("path", &"x".repeat(200)[..])] {
            let r = pax_record(key, value);
            let s = String::from_utf8(r.clone()).unwrap();
            let (len, rest) = s.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), r.len(), "{s:?}");
            assert_eq!(rest, format!("{key}={value}\n"));
        }
    }

    /// A layer over ustar's limit gets a PAX size the tar crate reads
    /// back (the content itself is not written: only the headers are
    /// checked).
    #[test]
    fn huge_sizes_get_a_pax_record() {
        let size = USTAR_MAX_SIZE + 1;
        let mut sink = TarSink(tar::Builder::new(Vec::new()));
        let mut fill = |_: &mut dyn Write| Ok(());
        sink.file("blobs/sha256/x", size, &mut fill).unwrap();
        let bytes = sink.0.into_inner().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("blobs/sha256/x"));
        assert_eq!(e.size(), size);
    }
}
