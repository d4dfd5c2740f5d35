//! Tar-split records as Docker and containers/storage write them
//! (`layerdb/sha256/<chain>/tar-split.json.gz`), read so that a store
//! that is a copy of Docker's data root saves its layers byte for byte.
//!
//! The format is vbatts/tar-split's `storage` package: a gzip stream of
//! JSON objects, one per line, in tar order
//! (<https://github.com/vbatts/tar-split/blob/main/tar/storage/entry.go>):
//!
//! ```text
//! {"type":2,"payload":"<base64 raw tar bytes>","position":0}
//! {"type":1,"name":"bin/busybox","size":1982256,"payload":"<base64 crc64>","position":1}
//! ```
//!
//! Type 2 (segment) holds raw bytes of the tar (headers, padding, the
//! end); type 1 (file) stands for a member's content, read back from the
//! layer's directory by its name (`name_raw`, base64, when the name is not
//! UTF-8), checked against the CRC-64 (ISO polynomial, as Go's
//! `hash/crc64`) in `payload`. A file of size 0 has no content to read.
//! The record names no digest and no length: the caller checks the
//! rebuilt tar against the layer's diffID.

use std::io::{self, BufRead, Write};
use std::os::fd::AsFd;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;

use crate::apply::open_root;
use crate::digest::{Digest, DigestWriter};
use crate::error::{Error, Result};

/// Longest line (one entry) a record may hold: a segment holds a header
/// or the tar's end, far below this.
const MAX_LINE: u64 = 64 << 20;

const FILE: u8 = 1;
const SEGMENT: u8 = 2;

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    payload: Option<String>,
}

impl Entry {
    fn payload(&self) -> Result<Vec<u8>> {
        match &self.payload {
            None => Ok(Vec::new()),
            Some(p) => base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| Error::record(format!("a payload is not base64: {e}"), None)),
        }
    }

    /// The member's name, as bytes.
    fn name(&self) -> Result<Vec<u8>> {
        match (&self.name_raw, &self.name) {
            (Some(raw), _) => base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|e| Error::record(format!("a name_raw is not base64: {e}"), None)),
            (None, Some(n)) => Ok(n.as_bytes().to_vec()),
            (None, None) => Err(Error::record("a file entry without a name", None)),
        }
    }
}

/// Whether the (gunzipped) record is Docker's: it starts with a JSON
/// object, where strata's starts with its magic.
pub(crate) fn is_docker(record: &mut impl BufRead) -> Result<bool> {
    let head = record
        .fill_buf()
        .map_err(|e| Error::record("reading", Some(e)))?;
    Ok(head.first() == Some(&b'{'))
}

/// Calls `each` with every entry of the record, in order.
fn entries(mut record: impl BufRead, mut each: impl FnMut(Entry) -> Result<()>) -> Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = io::Read::take(&mut record, MAX_LINE)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::record("reading", Some(e)))?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n as u64 == MAX_LINE {
            return Err(Error::record("an entry longer than 64 MiB", None));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let e: Entry = serde_json::from_slice(&line)
            .map_err(|e| Error::record(format!("an entry is not tar-split JSON: {e}"), None))?;
        each(e)?;
    }
}

/// The length of the tar the record describes (no file opened).
pub(crate) fn recorded_size(record: impl BufRead) -> Result<u64> {
    let mut total = 0u64;
    entries(record, |e| {
        let n = match e.kind {
            SEGMENT => e.payload()?.len() as u64,
            FILE => e.size,
            other => return Err(unknown(other)),
        };
        total = total
            .checked_add(n)
            .ok_or_else(|| Error::record("entry lengths overflow 64 bits", None))?;
        Ok(())
    })?;
    Ok(total)
}

/// Writes the tar the record describes, reading file content from `root`
/// (each file opened inside it without following a symlink, as strata's
/// own records are), and returns its sha256.
pub(crate) fn reassemble(record: impl BufRead, root: &Path, out: impl Write) -> Result<Digest> {
    let root = open_root(root)?;
    let mut out = DigestWriter::new(out);
    let mut buf = vec![0u8; 256 * 1024];
    entries(record, |e| match e.kind {
        SEGMENT => out.write_all(&e.payload()?).map_err(out_err),
        FILE if e.size == 0 => Ok(()),
        FILE => {
            let name = e.name()?;
            let path = plain_path(&name)?;
            let file = crate::split::open_in_root(root.as_fd(), &path)?;
            let mut crc = Crc64::new();
            let mut off = 0u64;
            while off < e.size {
                let k = buf
                    .len()
                    .min(usize::try_from(e.size - off).unwrap_or(usize::MAX));
                std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf[..k], off)
                    .map_err(|err| crate::split::ref_err(&path, "reading the file", Some(err)))?;
                crc.update(&buf[..k]);
                out.write_all(&buf[..k]).map_err(out_err)?;
                off += k as u64;
            }
            if crc.sum().to_be_bytes().as_slice() != e.payload()? {
                return Err(crate::split::ref_err(
                    &path,
                    "the content differs from what the layer had (CRC-64 mismatch)",
                    None,
                ));
            }
            Ok(())
        }
        other => Err(unknown(other)),
    })?;
    let (mut out, digest, _) = out.finish();
    out.flush().map_err(out_err)?;
    Ok(digest)
}

/// A member's name as a path inside the layer, as Go's `filepath.Join`
/// with the root would take it: `.` and empty components dropped; `..`
/// refused rather than resolved.
fn plain_path(name: &[u8]) -> Result<Vec<u8>> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(crate::split::ref_err(
                    name,
                    "not a plain path inside the layer",
                    None,
                ))
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(crate::split::ref_err(
            name,
            "names the layer's root, not a file",
            None,
        ));
    }
    Ok(parts.join(&b'/'))
}

fn unknown(kind: u8) -> Error {
    Error::record(format!("unknown entry type {kind}"), None)
}

fn out_err(source: io::Error) -> Error {
    Error::Write {
        op: "writing the reassembled tar",
        source,
    }
}

/// CRC-64 with the ISO polynomial, reflected, as Go's `hash/crc64`
/// with `crc64.MakeTable(crc64.ISO)` (what tar-split records).
struct Crc64 {
    table: [u64; 256],
    crc: u64,
}

impl Crc64 {
    const ISO: u64 = 0xD800_0000_0000_0000;

    fn new() -> Crc64 {
        let mut table = [0u64; 256];
        for (i, t) in table.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ Self::ISO
                } else {
                    c >> 1
                };
            }
            *t = c;
        }
        Crc64 { table, crc: 0 }
    }

    fn update(&mut self, bytes: &[u8]) {
        let mut c = !self.crc;
        for b in bytes {
            c = self.table[((c as u8) ^ b) as usize] ^ (c >> 8);
        }
        self.crc = !c;
    }

    fn sum(&self) -> u64 {
        self.crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go: `crc64.Checksum([]byte("hello\n"), crc64.MakeTable(crc64.ISO))`.
    #[test]
    fn crc64_is_gos_iso() {
        let mut c = Crc64::new();
        c.update(b"123456789");
        // The CRC-64/GO-ISO check value.
        assert_eq!(c.sum(), 0xB909_56C7_75A4_1001);
    }

    #[test]
    fn names_are_plain_paths() {
        assert_eq!(plain_path(b"./bin/sh").unwrap(), b"bin/sh");
        assert_eq!(plain_path(b"/a//b").unwrap(), b"a/b");
        assert!(plain_path(b"a/../../etc/passwd").is_err());
        assert!(plain_path(b"./").is_err());
    }

    #[test]
    fn hostile_records_are_refused() {
        for bad in [
            &b"{\"type\":9,\"payload\":null}\n"[..],
            b"{\"type\":2,\"payload\":\"not base64!\"}\n",
            b"{\"type\":1,\"size\":3}\n",
            b"{not json}\n",
        ] {
            let t = tempfile::tempdir().unwrap();
            let err = reassemble(bad, t.path(), io::sink()).unwrap_err();
            assert!(matches!(err, Error::Record { .. }), "{err}");
        }
    }

    /// A record naming a file outside the layer through `..` is refused
    /// before anything is opened.
    #[test]
    fn a_name_leaving_the_layer_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let rec = b"{\"type\":1,\"name\":\"../outside\",\"size\":3,\"payload\":\"AAAAAAAAAAA=\"}\n";
        let err = reassemble(&rec[..], t.path(), io::sink()).unwrap_err();
        assert!(err.to_string().contains("not a plain path"), "{err}");
    }

    #[test]
    fn segments_and_files_rebuild_the_tar() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/f"), b"hello\n").unwrap();
        let mut c = Crc64::new();
        c.update(b"hello\n");
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let rec = format!(
            "{{\"type\":2,\"payload\":\"{}\",\"position\":0}}\n\
             {{\"type\":1,\"name\":\"./d/f\",\"size\":6,\"payload\":\"{}\",\"position\":1}}\n\
             {{\"type\":2,\"payload\":\"{}\",\"position\":2}}\n",
            b64(b"HEAD"),
            b64(&c.sum().to_be_bytes()),
            b64(b"TAIL"),
        );
        let mut out = Vec::new();
        let digest = reassemble(rec.as_bytes(), t.path(), &mut out).unwrap();
        assert_eq!(out, b"HEADhello\nTAIL");
        assert_eq!(digest, crate::sha256(b"HEADhello\nTAIL"));
        assert_eq!(recorded_size(rec.as_bytes()).unwrap(), 14);
        std::fs::write(t.path().join("d/f"), b"HELLO\n").unwrap();
        let err = reassemble(rec.as_bytes(), t.path(), io::sink()).unwrap_err();
        assert!(err.to_string().contains("CRC-64"), "{err}");
    }
}
