//! Reading a tar stream member by member.
//!
//! tar-rs parses the headers; this reader puts the members together the
//! way GNU tar and Go's archive/tar do: GNU long names and links (`L`,
//! `K`), PAX local records (`x`), and sparse files in every format they
//! write: old GNU (typeflag `S`, the map in the header and in extension
//! headers after it) and PAX 0.0, 0.1 and 1.0 (`GNU.sparse.*` records; 1.0
//! keeps its map in the first blocks of the data).
//!
//! A sparse entry is handed over as its map and its stored data, never
//! as the zeros of its holes (tar-rs expands them): the cost of reading a
//! member is the bytes it has in the stream, whatever size it declares. A
//! map is checked before the entry is returned, so nothing is written for
//! an entry whose map is malformed.
//!
//! The reader reads exactly the bytes it consumes, no further: the
//! tar-split record sees the stream in the order the members use it.

use std::io::{self, Read};

use tar::{GnuExtSparseHeader, GnuSparseHeader, Header};

const BLOCK: u64 = 512;
/// Largest GNU long name, long link or PAX record member read into
/// memory (Go's archive/tar limit).
const MAX_SPECIAL: u64 = 1 << 20;
/// Most chunks a sparse map may list.
const MAX_CHUNKS: usize = 1 << 20;

/// Why a member could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The stream itself: truncated, or a header that is not one.
    Stream(io::Error),
    /// A member that is readable but malformed, named by its path.
    Entry { path: Vec<u8>, reason: String },
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Stream(e)
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// A sparse file: its length and the (offset, length) of each stored
/// chunk, in order, not overlapping, inside the length.
#[derive(Debug, Clone)]
pub(crate) struct Sparse {
    pub size: u64,
    pub chunks: Vec<(u64, u64)>,
}

/// One member, its extension members folded in.
pub(crate) struct Entry {
    header: Header,
    path: Vec<u8>,
    link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
    /// Bytes of content in the stream (for PAX 1.0 sparse, after the map).
    stored: u64,
    /// The PAX `size` or the header's: what the stream says the member
    /// holds (for PAX 1.0 sparse, the map included).
    declared: u64,
    /// Stream offset of the content.
    data_pos: u64,
    sparse: Option<Sparse>,
}

impl Entry {
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The name: GNU long name, PAX `path` (or `GNU.sparse.name`), or the
    /// header's.
    pub fn path_bytes(&self) -> &[u8] {
        &self.path
    }

    pub fn link_name_bytes(&self) -> Option<&[u8]> {
        self.link.as_deref()
    }

    /// The PAX records that describe this member.
    pub fn pax_extensions(&self) -> Option<PaxRecords<'_>> {
        self.pax.as_deref().map(PaxRecords::new)
    }

    /// The file's length (for a sparse file, holes included).
    pub fn size(&self) -> u64 {
        self.sparse.as_ref().map_or(self.stored, |s| s.size)
    }

    /// The member's size as the PAX `size` record, or else the header,
    /// states it.
    pub fn declared_size(&self) -> u64 {
        self.declared
    }

    /// Bytes of content the stream holds for this member.
    pub fn stored(&self) -> u64 {
        self.stored
    }

    /// Where the content starts in the stream.
    pub fn data_pos(&self) -> u64 {
        self.data_pos
    }

    pub fn sparse(&self) -> Option<&Sparse> {
        self.sparse.as_ref()
    }
}

/// The members of a tar stream.
pub(crate) struct Reader<R> {
    inner: R,
    /// Stream offset of the next byte `inner` gives.
    pos: u64,
    /// Where the next header starts.
    next: u64,
    /// Content of the current member not read yet.
    remaining: u64,
    /// Stream offset of the current member's content.
    data_pos: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            pos: 0,
            next: 0,
            remaining: 0,
            data_pos: 0,
            done: false,
        }
    }

    /// The next member; `None` after the first all-zero block, or at the
    /// end of the stream on a block boundary.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Vec<u8>> = None;
        loop {
            let skip = self.next - self.pos;
            self.skip(skip)?;
            self.remaining = 0;
            let mut header = Header::new_old();
            if !self.block(header.as_mut_bytes())? || header.as_bytes().iter().all(|b| *b == 0) {
                self.done = true;
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(bad(
                        "members found describing a future member but no future member found",
                    )
                    .into());
                }
                return Ok(None);
            }
            check_sum(&header)?;
            let ty = header.entry_type();
            let ext = ty.is_gnu_longname()
                || ty.is_gnu_longlink()
                || ty.is_pax_local_extensions()
                || ty.is_pax_global_extensions();
            let mut declared = header.entry_size()?;
            if !ext {
                if let Some(size) = pax.as_deref().and_then(|p| pax_number(p, b"size")) {
                    declared = size;
                }
            }
            self.data_pos = self.pos;
            self.remaining = declared;
            self.next = self
                .pos
                .checked_add(round_up(declared)?)
                .ok_or_else(|| bad("size overflow"))?;
            let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
            if recognized && (ty.is_gnu_longname() || ty.is_gnu_longlink()) {
                let slot = if ty.is_gnu_longname() {
                    &mut long_name
                } else {
                    &mut long_link
                };
                if slot.is_some() {
                    return Err(bad("two long name entries describing the same member").into());
                }
                *slot = Some(self.special()?);
                continue;
            }
            if recognized && ty.is_pax_local_extensions() {
                if pax.is_some() {
                    return Err(bad("two pax extensions entries describing the same member").into());
                }
                pax = Some(self.special()?);
                continue;
            }
            return self.member(header, declared, long_name, long_link, pax);
        }
    }

    fn member(
        &mut self,
        header: Header,
        declared: u64,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        pax: Option<Vec<u8>>,
    ) -> Result<Option<Entry>, ReadError> {
        let pax_value = |key: &[u8]| -> Option<Vec<u8>> {
            let p = pax.as_deref()?;
            PaxRecords::new(p)
                .filter_map(|r| r.ok())
                .find(|r| r.key_bytes() == key)
                .map(|r| r.value_bytes().to_vec())
        };
        let mut path = match long_name {
            Some(n) => strip_nul(n),
            None => pax_value(b"path").unwrap_or_else(|| header.path_bytes().into_owned()),
        };
        let link = match long_link {
            Some(n) => Some(strip_nul(n)),
            None => {
                pax_value(b"linkpath").or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
            }
        };
        let mut entry = Entry {
            header,
            path: Vec::new(),
            link,
            pax: None,
            stored: declared,
            declared,
            data_pos: self.data_pos,
            sparse: None,
        };
        let refuse = |path: &[u8], reason: String| ReadError::Entry {
            path: path.to_vec(),
            reason,
        };
        if entry.header.entry_type().is_gnu_sparse() {
            let sparse = self.old_gnu_sparse(&entry.header).map_err(|e| match e {
                MapError::Io(e) => ReadError::Stream(e),
                MapError::Bad(r) => refuse(&path, format!("sparse map: {r}")),
            })?;
            entry.data_pos = self.pos;
            entry.sparse = Some(sparse);
        } else if let Some(p) = pax.as_deref() {
            match self.pax_sparse(p) {
                Ok(None) => {}
                Ok(Some(PaxSparse { name, sparse })) => {
                    let ty = entry.header.entry_type();
                    if !(ty.is_file() || ty == tar::EntryType::Continuous) {
                        return Err(refuse(
                            &path,
                            "sparse map on a member that is not a file".into(),
                        ));
                    }
                    if let Some(name) = name {
                        path = name;
                    }
                    entry.stored = self.remaining;
                    entry.data_pos = self.pos;
                    entry.sparse = Some(sparse);
                }
                Err(MapError::Io(e)) => return Err(ReadError::Stream(e)),
                Err(MapError::Bad(r)) => {
                    let name = pax_value(b"GNU.sparse.name").unwrap_or(path);
                    return Err(refuse(&name, format!("sparse map: {r}")));
                }
            }
        }
        if let Some(s) = &entry.sparse {
            check_map(s, entry.stored).map_err(|r| refuse(&path, format!("sparse map: {r}")))?;
        }
        entry.path = path;
        entry.pax = pax;
        Ok(Some(entry))
    }

    /// The map of an old GNU sparse member: four slots in the header, then
    /// extension headers of 21 while `isextended` is set.
    fn old_gnu_sparse(&mut self, header: &Header) -> Result<Sparse, MapError> {
        let gnu = header
            .as_gnu()
            .ok_or_else(|| MapError::Bad("sparse entry type without a GNU header".into()))?;
        let mut chunks = Vec::new();
        let mut add = |b: &GnuSparseHeader| -> Result<bool, MapError> {
            if b.is_empty() {
                return Ok(false);
            }
            let offset = b.offset().map_err(|e| MapError::Bad(e.to_string()))?;
            let len = b.length().map_err(|e| MapError::Bad(e.to_string()))?;
            if chunks.len() >= MAX_CHUNKS {
                return Err(MapError::Bad(format!("more than {MAX_CHUNKS} chunks")));
            }
            chunks.push((offset, len));
            Ok(true)
        };
        for b in &gnu.sparse {
            if !add(b)? {
                break;
            }
        }
        let mut extended = gnu.is_extended();
        while extended {
            let mut ext = GnuExtSparseHeader::new();
            if !self.block(ext.as_mut_bytes())? {
                return Err(MapError::Io(bad(
                    "the stream ends in a sparse extension header",
                )));
            }
            // The content starts after the extension headers.
            self.next = self
                .next
                .checked_add(BLOCK)
                .ok_or_else(|| MapError::Io(bad("size overflow")))?;
            for b in ext.sparse() {
                if !add(b)? {
                    break;
                }
            }
            extended = ext.is_extended();
        }
        let size = gnu
            .real_size()
            .map_err(|e| MapError::Bad(format!("bad real size: {e}")))?;
        Ok(Sparse { size, chunks })
    }

    /// The map of a PAX sparse member, with the name it gives, or `None`
    /// when the records describe no sparse file.
    fn pax_sparse(&mut self, pax: &[u8]) -> Result<Option<PaxSparse>, MapError> {
        let mut major = None;
        let mut minor = None;
        let mut name = None;
        let mut size = None;
        let mut realsize = None;
        let mut numblocks = None;
        let mut map: Vec<u64> = Vec::new();
        let mut has_map = false;
        for rec in PaxRecords::new(pax) {
            let Ok(rec) = rec else { continue };
            let value = rec.value_bytes();
            let number = || -> Result<u64, MapError> {
                parse_u64(value).ok_or_else(|| {
                    MapError::Bad(format!(
                        "{} is not a number: {:?}",
                        String::from_utf8_lossy(rec.key_bytes()),
                        String::from_utf8_lossy(value)
                    ))
                })
            };
            match rec.key_bytes() {
                b"GNU.sparse.major" => major = Some(value.to_vec()),
                b"GNU.sparse.minor" => minor = Some(value.to_vec()),
                b"GNU.sparse.name" => name = Some(value.to_vec()),
                b"GNU.sparse.size" => size = Some(number()?),
                b"GNU.sparse.realsize" => realsize = Some(number()?),
                b"GNU.sparse.numblocks" => numblocks = Some(number()?),
                // 0.0: one record per number, in order.
                b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                    has_map = true;
                    push_number(&mut map, number()?)?;
                }
                // 0.1: the numbers in one record.
                b"GNU.sparse.map" => {
                    has_map = true;
                    if !value.is_empty() {
                        for n in value.split(|b| *b == b',') {
                            let n = parse_u64(n).ok_or_else(|| {
                                MapError::Bad(format!(
                                    "GNU.sparse.map holds {:?}, not a number",
                                    String::from_utf8_lossy(n)
                                ))
                            })?;
                            push_number(&mut map, n)?;
                        }
                    }
                }
                _ => {}
            }
        }
        let v1 = match (major.as_deref(), minor.as_deref()) {
            (Some(b"0"), Some(b"0" | b"1")) => false,
            (Some(b"1"), Some(b"0")) => true,
            (Some(_), _) | (_, Some(_)) => {
                return Err(MapError::Bad(format!(
                    "unknown PAX sparse format {}.{}",
                    String::from_utf8_lossy(major.as_deref().unwrap_or(b"")),
                    String::from_utf8_lossy(minor.as_deref().unwrap_or(b""))
                )))
            }
            // 0.0 and 0.1 wrote no version.
            (None, None) if has_map || numblocks.is_some() => false,
            (None, None) => return Ok(None),
        };
        let size = size.or(realsize).ok_or_else(|| {
            MapError::Bad("no GNU.sparse.realsize or GNU.sparse.size record".into())
        })?;
        let pairs = if v1 {
            self.map_in_data()?
        } else {
            let n =
                numblocks.ok_or_else(|| MapError::Bad("no GNU.sparse.numblocks record".into()))?;
            if n.checked_mul(2) != Some(map.len() as u64) {
                return Err(MapError::Bad(format!(
                    "GNU.sparse.numblocks says {n} chunks, the map lists {} numbers",
                    map.len()
                )));
            }
            map
        };
        let chunks = pairs.chunks(2).map(|p| (p[0], p[1])).collect();
        Ok(Some(PaxSparse {
            name,
            sparse: Sparse { size, chunks },
        }))
    }

    /// The map of a PAX 1.0 member, at the start of its data: decimal
    /// numbers one a line (the count, then offset and length of each
    /// chunk), padded to a whole block.
    fn map_in_data(&mut self) -> Result<Vec<u64>, MapError> {
        let mut lines = MapLines {
            buf: Vec::new(),
            at: 0,
        };
        let next = |r: &mut Self, lines: &mut MapLines| -> Result<u64, MapError> {
            loop {
                if let Some(n) = lines.take()? {
                    return Ok(n);
                }
                if r.remaining < BLOCK {
                    return Err(MapError::Bad("the map runs past the member's data".into()));
                }
                let mut block = [0u8; BLOCK as usize];
                if !r.block(&mut block)? {
                    return Err(MapError::Io(bad("the stream ends in a sparse map")));
                }
                r.remaining -= BLOCK;
                lines.buf.drain(..lines.at);
                lines.at = 0;
                lines.buf.extend_from_slice(&block);
            }
        };
        let n = next(self, &mut lines)?;
        if n > MAX_CHUNKS as u64 {
            return Err(MapError::Bad(format!("{n} chunks, more than {MAX_CHUNKS}")));
        }
        let mut map = Vec::with_capacity(2 * n as usize);
        for _ in 0..2 * n {
            map.push(next(self, &mut lines)?);
        }
        Ok(map)
    }

    /// Reads a whole member's content into memory (long names, PAX
    /// records), bounded.
    fn special(&mut self) -> io::Result<Vec<u8>> {
        if self.remaining > MAX_SPECIAL {
            return Err(bad("a long name or PAX record member over 1 MiB"));
        }
        let mut v = vec![0u8; self.remaining as usize];
        self.inner.read_exact(&mut v).map_err(eof)?;
        self.pos += v.len() as u64;
        self.remaining = 0;
        Ok(v)
    }

    /// Fills `buf` (a block): false at the end of the stream before it.
    fn block(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut read = 0;
        while read < buf.len() {
            match self.inner.read(&mut buf[read..]) {
                Ok(0) if read == 0 => return Ok(false),
                Ok(0) => return Err(bad("failed to read entire block")),
                Ok(n) => {
                    read += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            self.inner.read_exact(&mut buf[..k]).map_err(eof)?;
            self.pos += k as u64;
            n -= k as u64;
        }
        Ok(())
    }

    /// Reads the current member's content (stored bytes only).
    pub fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if k == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..k])?;
        self.pos += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }

    /// The underlying reader, positioned after the bytes consumed.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The stored bytes of the current member, as a reader.
    pub fn data(&mut self) -> Data<'_, R> {
        Data { reader: self }
    }
}

pub(crate) struct Data<'a, R> {
    reader: &'a mut Reader<R>,
}

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read_data(buf)
    }
}

/// A PAX sparse map and the name the records give the file.
struct PaxSparse {
    name: Option<Vec<u8>>,
    sparse: Sparse,
}

enum MapError {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for MapError {
    fn from(e: io::Error) -> Self {
        MapError::Io(e)
    }
}

struct MapLines {
    buf: Vec<u8>,
    at: usize,
}

impl MapLines {
    /// The next newline-terminated number, or `None` when the buffer
    /// holds no whole line.
    fn take(&mut self) -> Result<Option<u64>, MapError> {
        let rest = &self.buf[self.at..];
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            if rest.len() > 64 {
                return Err(MapError::Bad("a line of the map is too long".into()));
            }
            return Ok(None);
        };
        let n = parse_u64(&rest[..end]).ok_or_else(|| {
            MapError::Bad(format!(
                "{:?} is not a number",
                String::from_utf8_lossy(&rest[..end])
            ))
        })?;
        self.at += end + 1;
        Ok(Some(n))
    }
}

fn push_number(map: &mut Vec<u64>, n: u64) -> Result<(), MapError> {
    if map.len() >= 2 * MAX_CHUNKS {
        return Err(MapError::Bad(format!("more than {MAX_CHUNKS} chunks")));
    }
    map.push(n);
    Ok(())
}

/// Chunks in order, not overlapping, inside the file, adding up to the
/// stored bytes (as Go's archive/tar `validateSparseEntries` and GNU tar
/// check them).
fn check_map(s: &Sparse, stored: u64) -> Result<(), String> {
    let mut end_prev = 0u64;
    let mut total = 0u64;
    for (i, &(offset, len)) in s.chunks.iter().enumerate() {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| format!("chunk {i} at {offset} of {len} bytes overflows"))?;
        if end > s.size {
            return Err(format!(
                "chunk {i} at {offset} of {len} bytes ends past the file's {} bytes",
                s.size
            ));
        }
        if offset < end_prev {
            return Err(format!(
                "chunk {i} at {offset} overlaps or precedes the one before (ending at {end_prev})"
            ));
        }
        end_prev = end;
        total = total
            .checked_add(len)
            .ok_or_else(|| "chunk lengths overflow".to_string())?;
    }
    if total != stored {
        return Err(format!(
            "the chunks hold {total} bytes, the member stores {stored}"
        ));
    }
    Ok(())
}

fn check_sum(header: &Header) -> io::Result<()> {
    let b = header.as_bytes();
    let sum = b[..148]
        .iter()
        .chain(&b[156..])
        .fold(0u32, |a, b| a + u32::from(*b))
        + 8 * 32;
    if sum != header.cksum()? {
        return Err(bad("archive header checksum mismatch"));
    }
    Ok(())
}

fn round_up(n: u64) -> io::Result<u64> {
    n.checked_add(BLOCK - 1)
        .map(|n| n & !(BLOCK - 1))
        .ok_or_else(|| bad("size overflow"))
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A PAX number record, when it parses (tar-rs ignores one that does not).
fn pax_number(pax: &[u8], key: &[u8]) -> Option<u64> {
    let rec = PaxRecords::new(pax)
        .filter_map(|r| r.ok())
        .find(|r| r.key_bytes() == key)?;
    std::str::from_utf8(rec.value_bytes()).ok()?.parse().ok()
}

/// The records of a PAX extended header (POSIX.1-2001 pax, "extended
/// header"): `LENGTH KEY=VALUE\n`, LENGTH counting the whole record in
/// decimal. A record is cut by its length, so a value may hold any byte,
/// newlines included (binary xattrs such as `security.capability` do):
/// tar-rs's `PaxExtensions` splits at newlines instead, and refuses such
/// a record. A record whose length or layout is wrong is an error, and
/// ends the walk.
pub struct PaxRecords<'a> {
    data: &'a [u8],
}

/// One record of [`PaxRecords`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaxRecord<'a> {
    key: &'a [u8],
    value: &'a [u8],
}

impl<'a> PaxRecord<'a> {
    pub fn key_bytes(&self) -> &'a [u8] {
        self.key
    }

    pub fn value_bytes(&self) -> &'a [u8] {
        self.value
    }
}

impl<'a> PaxRecords<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        PaxRecords { data }
    }
}

impl<'a> Iterator for PaxRecords<'a> {
    type Item = std::io::Result<PaxRecord<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        // Padding after the last record (NULs, as some writers leave).
        if self.data.iter().all(|&b| b == 0) {
            return None;
        }
        let bad = |why: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("malformed PAX record: {why}"),
            )
        };
        let data = std::mem::take(&mut self.data);
        let Some(space) = data.iter().take(20).position(|&b| b == b' ') else {
            return Some(Err(bad("no length")));
        };
        let Some(len) = parse_u64(&data[..space]).and_then(|l| usize::try_from(l).ok()) else {
            return Some(Err(bad("the length is not a number")));
        };
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Some(Err(bad("its length does not end it at a newline")));
        }
        let body = &data[space + 1..len - 1];
        let Some(eq) = body.iter().position(|&b| b == b'=') else {
            return Some(Err(bad("no '='")));
        };
        self.data = &data[len..];
        Some(Ok(PaxRecord {
            key: &body[..eq],
            value: &body[eq + 1..],
        }))
    }
}

fn strip_nul(mut v: Vec<u8>) -> Vec<u8> {
    if v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn eof(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        bad("failed to read entire block")
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records are cut by their length: a value may hold newlines and
    /// '='; a wrong length, a missing '=' or a missing length is refused.
    #[test]
    fn pax_records_are_cut_by_length() {
        use strata_test_support::pax_record as record;
        let data = [
            record(b"SCHILY.xattr.security.capability", b"\x01\n\x02=\n"),
            record(b"path", b"a\nb"),
            vec![0; 7],
        ]
        .concat();
        let recs: Vec<(Vec<u8>, Vec<u8>)> = PaxRecords::new(&data)
            .map(|r| r.unwrap())
            .map(|r| (r.key_bytes().to_vec(), r.value_bytes().to_vec()))
            .collect();
        assert_eq!(
            recs,
            [
                (
                    b"SCHILY.xattr.security.capability".to_vec(),
                    b"\x01\n\x02=\n".to_vec()
                ),
                (b"path".to_vec(), b"a\nb".to_vec())
            ]
        );
        for bad in [
            &b"7 path=x\n"[..],
            b"x path=x\n",
            b"8 pathx\n",
            b"99 path=x\n",
            b"path=x\n",
        ] {
            let r: Vec<_> = PaxRecords::new(bad).collect();
            assert!(
                r.len() == 1 && r[0].is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn map(size: u64, chunks: &[(u64, u64)]) -> Sparse {
        Sparse {
            size,
            chunks: chunks.to_vec(),
        }
    }

    #[test]
    fn maps_are_checked_as_go_and_gnu_tar_check_them() {
        // Good: holes anywhere, empty chunks, nothing stored at all.
        assert!(check_map(&map(100, &[(0, 10), (50, 0), (90, 10)]), 20).is_ok());
        assert!(check_map(&map(1 << 40, &[]), 0).is_ok());
        assert!(check_map(&map(100, &[(0, 10), (10, 10)]), 20).is_ok());
        let bad: [(&str, Sparse, u64, &str); 5] = [
            ("past the end", map(100, &[(95, 10)]), 10, "past the file"),
            ("overlap", map(100, &[(0, 10), (5, 10)]), 20, "overlaps"),
            ("unsorted", map(100, &[(50, 1), (0, 1)]), 2, "precedes"),
            (
                "overflow",
                map(u64::MAX, &[(u64::MAX - 1, 2)]),
                2,
                "overflows",
            ),
            ("short", map(100, &[(0, 10)]), 11, "the chunks hold 10"),
        ];
        for (what, m, stored, reason) in bad {
            let e = check_map(&m, stored).expect_err(what);
            assert!(e.contains(reason), "{what}: {e}");
        }
    }

    #[test]
    fn pax_1_0_map_lines() {
        let mut l = MapLines {
            buf: b"2\n0\n".to_vec(),
            at: 0,
        };
        assert_eq!(l.take().ok().flatten(), Some(2));
        assert_eq!(l.take().ok().flatten(), Some(0));
        assert!(matches!(l.take(), Ok(None)), "no whole line left");
        for bad in [
            &b"x\n"[..],
            b"-1\n",
            b"+1\n",
            b" 1\n",
            b"99999999999999999999\n",
        ] {
            let mut l = MapLines {
                buf: bad.to_vec(),
                at: 0,
            };
            assert!(matches!(l.take(), Err(MapError::Bad(_))), "{bad:?}");
        }
    }
}
