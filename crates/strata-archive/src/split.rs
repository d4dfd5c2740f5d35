//! Tar-split records: what extraction throws away, kept so that a layer
//! applied to a directory can be exported again byte for byte (same
//! diffID), as containers/storage's `tar-split` does
//! (<https://github.com/vbatts/tar-split>).
//!
//! [`apply_recording`] applies a layer like [`crate::apply`] and, in the
//! same pass, writes the record: every byte of the uncompressed tar that
//! the parser reads (header blocks, PAX `x`/`g` and GNU `L`/`K` members,
//! GNU sparse extension headers, PAX 1.0 sparse maps, padding, the end-of-archive blocks and
//! whatever follows them) goes into the record verbatim, in stream order,
//! except the content of the regular files the apply wrote: for those the
//! record holds the path the file can be read back from and its size.
//! Content that is not written to a file (a whiteout with data, the data
//! of a link or of a skipped device) stays in the record verbatim.
//! [`reassemble`] reads the record back, taking file content from the
//! applied directory, and writes the original tar. [`recorded_tar`] reads
//! only the record, for the tar's diffID and length.
//!
//! # Format
//!
//! A gzip stream of:
//!
//! ```text
//! record  = magic segment* end
//! magic   = "strata-tar-split" 0x01                      (17 bytes)
//! segment = 'R' len:uvarint bytes[len]                   raw tar bytes
//!         | 'F' path size:uvarint crc:u32le              a file's content
//!         | 'S' path size:uvarint n:uvarint (offset:uvarint length:uvarint){n} crc:u32le
//!                                                        the stored chunks of a sparse file
//! end     = 'E' tar_size:uvarint dlen:uvarint diff_id[dlen]
//! path    = plen:uvarint bytes[plen]
//! ```
//!
//! `uvarint` is unsigned LEB128. `path` is relative to the layer root,
//! components joined by `/`, with no symlink, `.` or `..` in it: where the
//! content really is, even when the entry's own name went through a
//! symlink inside the root. `size` is the file's length; `crc` is the
//! CRC-32 (as gzip's) of the bytes the segment stands for, so that content
//! changed since the apply is an error, not a silently different tar.
//! `diff_id` (`sha256:<hex>`) and `tar_size` describe the uncompressed tar,
//! whatever compression the layer came in.
//!
//! Memory stays flat: raw bytes are written in segments of at most about a
//! megabyte as the parser passes them; file content never enters the
//! record.
//!
//! # Limits
//!
//! A file whose content a later entry of the same layer replaced (the same
//! name twice) can no longer be read back as the first entry had it:
//! [`reassemble`] then fails naming the file (its CRC differs).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use flate2::Crc;
use strata_sys::fs;

use crate::apply::{apply_at, open_root, ApplyOptions, ApplyReport};
use crate::digest::{Digest, DigestWriter};
use crate::error::{Error, Result};

const MAGIC: &[u8] = b"strata-tar-split\x01";
const RAW: u8 = b'R';
const FILE: u8 = b'F';
const SPARSE: u8 = b'S';
const END: u8 = b'E';
/// Raw bytes held before they are written out as a segment.
const FLUSH_AT: usize = 1 << 20;
/// Longest path a reassembled record may name.
const MAX_PATH: u64 = 1 << 20;

/// Applies the layer read from `input` to `root`, as [`crate::apply`]
/// does, and writes its tar-split record to `record`, in the same pass.
/// Returns the writer (the gzip stream finished) and the report. On error
/// what was written to `record` is no record: throw it away with the
/// half-applied root.
pub fn apply_recording<R: Read + Send, W: Write>(
    input: R,
    root: &Path,
    opts: &ApplyOptions,
    record: W,
) -> Result<(W, ApplyReport)> {
    let fd = open_root(root)?;
    let recorder = Recorder::new(record).map_err(write_err)?;
    let recorder = RefCell::new(recorder);
    let applied = apply_at(input, fd, opts, Some(&recorder));
    let mut recorder = recorder.into_inner();
    // A failed write surfaces as a read error in the parser: name the
    // real cause.
    if let Some(e) = recorder.failed.take() {
        return Err(write_err(e));
    }
    let report = applied?;
    let out = recorder.finish(&report.diff_id, report.tar_size)?;
    Ok((out, report))
}

/// A tar-split record written by a writer that reads the layer through
/// [`Entries`](crate::Entries) and stores file content somewhere other
/// than a directory it applies to (a file-system image), as
/// [`apply_recording`] writes one for a directory.
///
/// The writer reads the uncompressed layer through [`SplitRecorder::tee`],
/// tells the recorder where each file's content can be read back from
/// ([`SplitRecorder::file`], right after the entry's header was read),
/// and ends with [`SplitRecorder::finish`]. [`reassemble`] then needs a
/// directory showing the written tree (the image, mounted).
pub struct SplitRecorder<W: Write> {
    inner: RefCell<Recorder<W>>,
}

impl<W: Write> SplitRecorder<W> {
    pub fn new(out: W) -> Result<Self> {
        Ok(SplitRecorder {
            inner: RefCell::new(Recorder::new(out).map_err(write_err)?),
        })
    }

    /// `input` (the uncompressed layer), every byte read from it passed
    /// to the record.
    pub fn tee<R: Read>(&self, input: R) -> SplitTee<'_, R> {
        SplitTee(Tee::new(input, &self.inner))
    }

    /// The entry whose header was just read is a regular file of `size`
    /// bytes whose content can be read back from `path` (relative to the
    /// written tree's root, no symlink in it); its `stored` bytes start
    /// at `data_pos` in the stream ([`Entries::content_span`](crate::Entries::content_span)),
    /// all of the content or, for a sparse file, its `chunks` (offset,
    /// length) one after the other.
    pub fn file(
        &self,
        path: &[u8],
        (data_pos, stored): (u64, u64),
        size: u64,
        chunks: Option<&[(u64, u64)]>,
    ) {
        self.inner.file_data(&FileData {
            path: path.to_vec(),
            data_pos,
            stored,
            size,
            chunks,
        });
    }

    /// Ends the record with the layer's diffID and uncompressed length
    /// (every byte of which must have passed); the writer, its gzip
    /// stream finished. A write that failed on the way is reported here.
    pub fn finish(self, diff_id: &Digest, tar_size: u64) -> Result<W> {
        let mut r = self.inner.into_inner();
        if let Some(e) = r.failed.take() {
            return Err(write_err(e));
        }
        r.finish(diff_id, tar_size)
    }
}

/// A layer stream read through a [`SplitRecorder`].
pub struct SplitTee<'a, R>(Tee<'a, R>);

impl<R: Read> Read for SplitTee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

fn write_err(source: io::Error) -> Error {
    Error::Write {
        op: "writing the tar-split record",
        source,
    }
}

/// What the applier says about a file entry before reading its content.
pub(crate) struct FileData<'a> {
    /// Where the content is written, inside the root, no symlink in it.
    pub path: Vec<u8>,
    /// Where the content starts in the stream (for a sparse entry, after
    /// its map: GNU extension headers or the PAX 1.0 map blocks, which
    /// stay raw).
    pub data_pos: u64,
    /// Bytes of content in the stream.
    pub stored: u64,
    /// The file's length.
    pub size: u64,
    /// For a sparse entry, the (offset, length) of each stored chunk.
    pub chunks: Option<&'a [(u64, u64)]>,
}

/// The applier's side of a record.
pub(crate) trait Record {
    /// Bytes the tar parser read, in order.
    fn passed(&self, bytes: &[u8]) -> io::Result<()>;
    /// The entry whose header was just read is a file written to
    /// `f.path`: its content can be referenced rather than stored.
    fn file_data(&self, f: &FileData<'_>);
}

/// Reads through to the tar parser, copying every byte to the record.
pub(crate) struct Tee<'a, R> {
    inner: R,
    record: &'a dyn Record,
}

impl<'a, R: Read> Tee<'a, R> {
    pub fn new(inner: R, record: &'a dyn Record) -> Self {
        Tee { inner, record }
    }
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.record.passed(&buf[..n])?;
        Ok(n)
    }
}

/// A file's content passing through the stream, not stored.
struct Span {
    end: u64,
    crc: Crc,
    path: Vec<u8>,
    size: u64,
    /// (offset, length) in the file of each stored chunk, for sparse
    /// entries.
    chunks: Option<Vec<(u64, u64)>>,
}

struct Recorder<W: Write> {
    out: flate2::write::GzEncoder<W>,
    /// Stream offset of the next byte to pass.
    pos: u64,
    /// Raw bytes not yet written.
    pending: Vec<u8>,
    span: Option<Span>,
    /// The first write error; nothing is written after it.
    failed: Option<io::Error>,
}

impl<W: Write> Record for RefCell<Recorder<W>> {
    fn passed(&self, bytes: &[u8]) -> io::Result<()> {
        let mut r = self.borrow_mut();
        if r.failed.is_none() {
            if let Err(e) = r.pass(bytes) {
                r.failed = Some(e);
            }
        }
        match r.failed {
            None => Ok(()),
            Some(_) => Err(io::Error::other(
                "the tar-split record could not be written",
            )),
        }
    }

    fn file_data(&self, f: &FileData<'_>) {
        let mut r = self.borrow_mut();
        if r.failed.is_none() {
            if let Err(e) = r.file_data(f) {
                r.failed = Some(e);
            }
        }
    }
}

impl<W: Write> Recorder<W> {
    fn new(out: W) -> io::Result<Self> {
        // The record is mostly tar headers: the fastest level shrinks it
        // nearly as well as the default at a fraction of the CPU.
        let mut out = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        out.write_all(MAGIC)?;
        Ok(Recorder {
            out,
            pos: 0,
            pending: Vec::new(),
            span: None,
            failed: None,
        })
    }

    fn pass(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let Some(span) = &mut self.span else {
                self.pending.extend_from_slice(buf);
                self.pos += buf.len() as u64;
                if self.pending.len() >= FLUSH_AT {
                    self.flush_raw(0)?;
                }
                return Ok(());
            };
            let n = buf.len().min((span.end - self.pos) as usize);
            span.crc.update(&buf[..n]);
            self.pos += n as u64;
            buf = &buf[n..];
            if self.pos == span.end {
                let span = self.span.take().expect("checked above");
                self.write_file(span)?;
            }
        }
        Ok(())
    }

    /// Starts a span for the file's content, when it is about to pass
    /// and can be described; otherwise the content stays raw.
    fn file_data(&mut self, f: &FileData<'_>) -> io::Result<()> {
        if self.span.is_some() {
            return Ok(());
        }
        let (start, stored) = (f.data_pos, f.stored);
        let chunks = f
            .chunks
            .map(|c| c.iter().copied().filter(|(_, len)| *len > 0).collect());
        // The parser reads nothing ahead: the content has not passed yet.
        // Were it otherwise, the bytes already recorded raw stay so.
        if self.pos != start {
            return Ok(());
        }
        self.flush_raw(0)?;
        let span = Span {
            end: start + stored,
            crc: Crc::new(),
            path: f.path.clone(),
            size: f.size,
            chunks,
        };
        if stored == 0 {
            return self.write_file(span);
        }
        self.span = Some(span);
        Ok(())
    }

    /// Writes all but the last `keep` raw bytes as a segment.
    fn flush_raw(&mut self, keep: usize) -> io::Result<()> {
        if self.pending.len() <= keep {
            return Ok(());
        }
        let n = self.pending.len() - keep;
        let mut head = vec![RAW];
        put_uvarint(&mut head, n as u64);
        self.out.write_all(&head)?;
        self.out.write_all(&self.pending[..n])?;
        self.pending.drain(..n);
        Ok(())
    }

    fn write_file(&mut self, span: Span) -> io::Result<()> {
        let mut seg = vec![if span.chunks.is_some() { SPARSE } else { FILE }];
        put_uvarint(&mut seg, span.path.len() as u64);
        seg.extend_from_slice(&span.path);
        put_uvarint(&mut seg, span.size);
        if let Some(chunks) = &span.chunks {
            put_uvarint(&mut seg, chunks.len() as u64);
            for (offset, len) in chunks {
                put_uvarint(&mut seg, *offset);
                put_uvarint(&mut seg, *len);
            }
        }
        seg.extend_from_slice(&span.crc.sum().to_le_bytes());
        self.out.write_all(&seg)
    }

    fn finish(mut self, diff_id: &Digest, tar_size: u64) -> Result<W> {
        if self.span.is_some() || self.pos != tar_size {
            return Err(Error::record(
                format!("saw {} of the {} bytes of the tar", self.pos, tar_size),
                None,
            ));
        }
        self.flush_raw(0).map_err(write_err)?;
        let digest = diff_id.as_str().as_bytes();
        let mut end = vec![END];
        put_uvarint(&mut end, tar_size);
        put_uvarint(&mut end, digest.len() as u64);
        end.extend_from_slice(digest);
        self.out.write_all(&end).map_err(write_err)?;
        self.out.finish().map_err(write_err)
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes the tar a record describes to `out`, reading file content from
/// `root` (the directory the layer was applied to), and returns its
/// sha256: the layer's diffID.
///
/// Every file is opened inside `root`, one component at a time, never
/// following a symlink; a reference that is not a plain relative path, or
/// names anything but a regular file of the recorded size and content, is
/// an error naming it. The digest and length are checked against the
/// record's end: any error means what was written to `out` is not the
/// layer, and must be thrown away.
///
/// A record Docker wrote (tar-split's JSON, in a copy of Docker's data
/// root) is read as well: see `docker_split`.
pub fn reassemble(record: impl Read, root: &Path, out: impl Write) -> Result<Digest> {
    let mut inner = io::BufReader::new(flate2::read::GzDecoder::new(record));
    if crate::docker_split::is_docker(&mut inner)? {
        return crate::docker_split::reassemble(inner, root, out);
    }
    let root = open_root(root)?;
    let mut rec = RecordReader { inner };
    let mut magic = [0u8; MAGIC.len()];
    rec.exact(&mut magic)?;
    if magic != MAGIC {
        return Err(Error::record("not a strata tar-split record", None));
    }
    let mut out = DigestWriter::new(out);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match rec.byte()? {
            RAW => {
                let n = rec.uvarint()?;
                copy_raw(&mut rec, &mut out, n, &mut buf)?;
            }
            FILE => {
                let (path, file, size) = open_ref(&mut rec, root.as_fd())?;
                copy_chunk(&file, &path, 0, size, &mut out, &mut buf, &mut Crc::new())
                    .and_then(|crc| check_crc(&mut rec, &path, crc))?;
            }
            SPARSE => {
                let (path, file, size) = open_ref(&mut rec, root.as_fd())?;
                let n = rec.uvarint()?;
                let mut crc = Crc::new();
                for _ in 0..n {
                    let (offset, len) = (rec.uvarint()?, rec.uvarint()?);
                    match offset.checked_add(len) {
                        Some(end) if end <= size => {}
                        _ => {
                            return Err(ref_err(
                                &path,
                                "a chunk lies past the end of the file",
                                None,
                            ))
                        }
                    }
                    copy_chunk(&file, &path, offset, len, &mut out, &mut buf, &mut crc)?;
                }
                check_crc(&mut rec, &path, crc.sum())?;
            }
            END => return rec.end(out),
            other => {
                return Err(Error::record(
                    format!("unknown segment type {other:#04x}"),
                    None,
                ))
            }
        }
    }
}

/// The length of the tar a record describes and, for strata's own
/// records, the diffID it claims ([`recorded_tar`]); a record Docker
/// wrote names no digest (`None`): the rebuilt tar is what shows it.
pub fn recorded_tar_size(record: impl Read) -> Result<(Option<Digest>, u64)> {
    let mut inner = io::BufReader::new(flate2::read::GzDecoder::new(record));
    if crate::docker_split::is_docker(&mut inner)? {
        return Ok((None, crate::docker_split::recorded_size(inner)?));
    }
    let (digest, size) = recorded_tar_of(RecordReader { inner })?;
    Ok((Some(digest), size))
}

/// The diffID and length of the tar a record describes, as its end
/// segment says, without reassembling it: raw bytes are skipped and file
/// references only parsed, so no file of the layer is opened. What `save`
/// needs to write a tar header before the layer itself.
///
/// The segments must add up to the length the end states, and nothing
/// may follow the end, or the record is refused as corrupt. The digest is
/// what the record claims: [`reassemble`] is what checks it against the
/// bytes.
pub fn recorded_tar(record: impl Read) -> Result<(Digest, u64)> {
    recorded_tar_of(RecordReader {
        inner: flate2::read::GzDecoder::new(record),
    })
}

fn recorded_tar_of<R: Read>(mut rec: RecordReader<R>) -> Result<(Digest, u64)> {
    // A reference, so that `rec.bytes` is ours and not `Read::bytes`.
    let rec = &mut rec;
    let mut magic = [0u8; MAGIC.len()];
    rec.exact(&mut magic)?;
    if magic != MAGIC {
        return Err(Error::record("not a strata tar-split record", None));
    }
    // Bytes the segments stand for.
    let mut total = 0u64;
    let mut add = |n: u64| -> Result<()> {
        total = total
            .checked_add(n)
            .ok_or_else(|| Error::record("segment lengths overflow 64 bits", None))?;
        Ok(())
    };
    loop {
        match rec.byte()? {
            RAW => {
                let n = rec.uvarint()?;
                rec.skip(n)?;
                add(n)?;
            }
            FILE => {
                rec.bytes(MAX_PATH, "a path")?;
                add(rec.uvarint()?)?;
                rec.u32()?;
            }
            SPARSE => {
                let path = rec.bytes(MAX_PATH, "a path")?;
                let size = rec.uvarint()?;
                for _ in 0..rec.uvarint()? {
                    let (offset, len) = (rec.uvarint()?, rec.uvarint()?);
                    if offset.checked_add(len).is_none_or(|end| end > size) {
                        return Err(ref_err(
                            &path,
                            "a chunk lies past the end of the file",
                            None,
                        ));
                    }
                    add(len)?;
                }
                rec.u32()?;
            }
            END => {
                let (tar_size, diff_id) = rec.end_segment()?;
                let digest = std::str::from_utf8(&diff_id)
                    .ok()
                    .and_then(Digest::parse)
                    .ok_or_else(|| {
                        Error::record(
                            format!(
                                "the end names {:?}, not a sha256 digest",
                                String::from_utf8_lossy(&diff_id)
                            ),
                            None,
                        )
                    })?;
                if total != tar_size {
                    return Err(Error::record(
                        format!("the segments hold {total} bytes, the end says {tar_size}"),
                        None,
                    ));
                }
                return Ok((digest, tar_size));
            }
            other => {
                return Err(Error::record(
                    format!("unknown segment type {other:#04x}"),
                    None,
                ))
            }
        }
    }
}

fn out_err(source: io::Error) -> Error {
    Error::Write {
        op: "writing the reassembled tar",
        source,
    }
}

pub(crate) fn ref_err(path: &[u8], what: &str, source: Option<io::Error>) -> Error {
    Error::record(
        format!("file {:?}: {what}", String::from_utf8_lossy(path)),
        source,
    )
}

struct RecordReader<R> {
    inner: R,
}

impl<R: Read> RecordReader<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::record("truncated", None)
            } else {
                Error::record("reading", Some(e))
            }
        })
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn uvarint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let low = u64::from(b & 0x7f);
            if shift == 63 && low > 1 {
                break;
            }
            v |= low << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::record("a number overflows 64 bits", None))
    }

    fn bytes(&mut self, max: u64, what: &str) -> Result<Vec<u8>> {
        let n = self.uvarint()?;
        if n > max {
            return Err(Error::record(format!("{what} of {n} bytes"), None));
        }
        let mut v = vec![0u8; n as usize];
        self.exact(&mut v)?;
        Ok(v)
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// The end segment: checks what was written against it, and that
    /// nothing follows.
    fn end<W: Write>(&mut self, out: DigestWriter<W>) -> Result<Digest> {
        let (tar_size, diff_id) = self.end_segment()?;
        let (mut out, digest, written) = out.finish();
        out.flush().map_err(out_err)?;
        if written != tar_size || digest.as_str().as_bytes() != diff_id {
            return Err(Error::record(
                format!(
                    "reassembled {written} bytes with digest {digest}, the record says {tar_size} bytes with digest {}",
                    String::from_utf8_lossy(&diff_id)
                ),
                None,
            ));
        }
        Ok(digest)
    }

    /// The end segment's tar size and digest (its `E` already read);
    /// nothing may follow it.
    fn end_segment(&mut self) -> Result<(u64, Vec<u8>)> {
        let tar_size = self.uvarint()?;
        let diff_id = self.bytes(128, "a digest")?;
        let mut rest = [0u8; 1];
        match self.inner.read(&mut rest) {
            Ok(0) => Ok((tar_size, diff_id)),
            Ok(_) => Err(Error::record("data after the end segment", None)),
            Err(e) => Err(Error::record("reading", Some(e))),
        }
    }

    /// Reads past `n` bytes.
    fn skip(&mut self, n: u64) -> Result<()> {
        let skipped = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
            .map_err(|e| Error::record("reading", Some(e)))?;
        if skipped != n {
            return Err(Error::record("truncated", None));
        }
        Ok(())
    }
}

impl<R: Read> Read for RecordReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

fn copy_raw<R: Read>(
    rec: &mut RecordReader<R>,
    out: &mut impl Write,
    mut n: u64,
    buf: &mut [u8],
) -> Result<()> {
    while n > 0 {
        let k = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        rec.exact(&mut buf[..k])?;
        out.write_all(&buf[..k]).map_err(out_err)?;
        n -= k as u64;
    }
    Ok(())
}

/// Reads a reference's path and size, and opens the file it names.
fn open_ref<R: Read>(
    rec: &mut RecordReader<R>,
    root: BorrowedFd<'_>,
) -> Result<(Vec<u8>, std::fs::File, u64)> {
    let path = rec.bytes(MAX_PATH, "a path")?;
    let size = rec.uvarint()?;
    let file = open_in_root(root, &path)?;
    let st = fs::fstat(file.as_fd())
        .map_err(|e| ref_err(&path, "cannot read its attributes", Some(e)))?;
    let actual = st.st_size as u64;
    if actual != size {
        return Err(ref_err(
            &path,
            &format!("the file has {actual} bytes, the record says {size}"),
            None,
        ));
    }
    Ok((path, file, size))
}

/// Opens the regular file `path` inside `root`: every component a plain
/// name, every directory opened `O_NOFOLLOW` from the one before, the
/// file itself checked to be regular through an `O_PATH` handle before it
/// is opened (a fifo would block the open).
pub(crate) fn open_in_root(root: BorrowedFd<'_>, path: &[u8]) -> Result<std::fs::File> {
    let comps: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
    if comps
        .iter()
        .any(|c| matches!(*c, b"" | b"." | b"..") || c.contains(&0))
    {
        return Err(ref_err(path, "not a plain path inside the layer", None));
    }
    let (last, parents) = comps.split_last().expect("split yields one item");
    let open_err = |e: io::Error| ref_err(path, "cannot open it inside the layer", Some(e));
    let mut dir: Option<OwnedFd> = None;
    for c in parents {
        let at = dir.as_ref().map_or(root, |d| d.as_fd());
        dir = Some(fs::open_dir_at(at, fs::os(c)).map_err(open_err)?);
    }
    let at = dir.as_ref().map_or(root, |d| d.as_fd());
    match fs::open_regular_at(at, fs::os(last), None) {
        Ok((file, _)) => Ok(file),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            Err(ref_err(path, "not a regular file", None))
        }
        Err(e) => Err(open_err(e)),
    }
}

/// Copies `len` bytes at `offset` of `file` to `out`, adding them to
/// `crc`; returns the sum so far.
fn copy_chunk(
    file: &std::fs::File,
    path: &[u8],
    mut offset: u64,
    len: u64,
    out: &mut impl Write,
    buf: &mut [u8],
    crc: &mut Crc,
) -> Result<u32> {
    let end = offset + len;
    while offset < end {
        let k = buf
            .len()
            .min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        file.read_exact_at(&mut buf[..k], offset)
            .map_err(|e| ref_err(path, "reading the file", Some(e)))?;
        crc.update(&buf[..k]);
        out.write_all(&buf[..k]).map_err(out_err)?;
        offset += k as u64;
    }
    Ok(crc.sum())
}

fn check_crc<R: Read>(rec: &mut RecordReader<R>, path: &[u8], crc: u32) -> Result<()> {
    let want = rec.u32()?;
    if crc != want {
        return Err(ref_err(
            path,
            "the content differs from what the layer had (CRC mismatch)",
            None,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_test_support::seeded_bytes;

    #[test]
    fn uvarint_round_trips() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            let mut r = RecordReader { inner: &b[..] };
            assert_eq!(r.uvarint().unwrap(), v);
        }
        let mut r = RecordReader {
            inner: &[0xff; 11][..],
        };
        assert!(r.uvarint().is_err());
    }

    /// A layer with referenced files (one big), links, a directory, and
    /// a whiteout whose content stays raw in the record over several
    /// segments.
    fn layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_mtime(1_700_000_000);
            h.set_size(data.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            b.append_data(&mut h, path, data).unwrap();
        };
        add("d/", tar::EntryType::Directory, b"", None);
        add("d/small", tar::EntryType::Regular, b"small\n", None);
        add("d/empty", tar::EntryType::Regular, b"", None);
        add(
            "big",
            tar::EntryType::Regular,
            &seeded_bytes(1, 3 << 20),
            None,
        );
        add("odd", tar::EntryType::Regular, &seeded_bytes(2, 1001), None);
        add("d/sym", tar::EntryType::Symlink, b"", Some("small"));
        add("d/hard", tar::EntryType::Link, b"", Some("d/small"));
        add(
            ".wh.gone",
            tar::EntryType::Regular,
            &seeded_bytes(3, 2_500_000),
            None,
        );
        b.into_inner().unwrap()
    }

    /// A gzip record of the magic and `segments`.
    fn record_of(segments: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(MAGIC).unwrap();
        gz.write_all(segments).unwrap();
        gz.finish().unwrap()
    }

    fn end(tar_size: u64, digest: &str) -> Vec<u8> {
        let mut v = vec![END];
        put_uvarint(&mut v, tar_size);
        put_uvarint(&mut v, digest.len() as u64);
        v.extend_from_slice(digest.as_bytes());
        v
    }

    #[test]
    fn recorded_tar_agrees_with_reassemble() {
        let tar = layer();
        let t = tempfile::tempdir().unwrap();
        let opts = ApplyOptions::default();
        let (record, report) = apply_recording(&tar[..], t.path(), &opts, Vec::new()).unwrap();
        let mut out = Vec::new();
        let digest = reassemble(&record[..], t.path(), &mut out).unwrap();
        assert_eq!(out, tar);
        assert_eq!(
            recorded_tar(&record[..]).unwrap(),
            (digest, tar.len() as u64)
        );
        assert_eq!(report.tar_size, tar.len() as u64);
        // No file is read: the answer stands with the content gone.
        std::fs::remove_file(t.path().join("big")).unwrap();
        assert!(reassemble(&record[..], t.path(), Vec::new()).is_err());
        assert_eq!(recorded_tar(&record[..]).unwrap().1, tar.len() as u64);
    }

    #[test]
    fn recorded_tar_adds_up_every_segment_kind() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let mut segs = vec![RAW, 3];
        segs.extend_from_slice(b"abc");
        segs.extend_from_slice(&[FILE, 1, b'f', 10, 0, 0, 0, 0]);
        // A sparse file of 100 bytes storing 5 + 7 of them.
        segs.extend_from_slice(&[SPARSE, 1, b's', 100, 2, 0, 5, 50, 7, 0, 0, 0, 0]);
        let ok = [segs.clone(), end(25, &digest)].concat();
        let got = recorded_tar(&record_of(&ok)[..]).unwrap();
        assert_eq!(got, (Digest::parse(&digest).unwrap(), 25));

        let bad: [(&str, Vec<u8>); 6] = [
            (
                "short of the end",
                [segs.clone(), end(26, &digest)].concat(),
            ),
            (
                "not a digest",
                [segs.clone(), end(25, "sha256:00")].concat(),
            ),
            (
                "data after the end",
                [segs.clone(), end(25, &digest), vec![RAW]].concat(),
            ),
            ("no end", segs.clone()),
            ("raw past the end", vec![RAW, 9, b'x']),
            (
                "chunk past the file",
                [
                    vec![SPARSE, 1, b's', 10, 1, 8, 5, 0, 0, 0, 0],
                    end(5, &digest),
                ]
                .concat(),
            ),
        ];
        for (what, segments) in bad {
            let e = recorded_tar(&record_of(&segments)[..]).expect_err(what);
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{what}: {e}");
        }
        assert!(recorded_tar(&b"not gzip"[..]).is_err());
    }
}
