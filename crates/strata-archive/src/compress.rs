//! Compression detection (from magic bytes, never from a file name) and
//! the decompress-and-hash stage that runs on its own thread (but for a
//! small uncompressed stream, read whole first on the caller's). gzip and
//! zstd are read and written; xz and bzip2 are read only, as
//! `docker load` reads them.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// How a stream (a layer, or a whole image archive) is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    /// Read, as `docker load` reads it; never written.
    Xz,
    /// Read, as `docker load` reads it; never written.
    Bzip2,
}

/// Bytes [`Compression::detect`] needs to tell every format apart.
pub const MAGIC_LEN: usize = 10;

impl Compression {
    /// Tells the compression from the first bytes of a stream (at least
    /// [`MAGIC_LEN`] of them when the stream is that long).
    pub fn detect(head: &[u8]) -> Self {
        const GZIP: &[u8] = &[0x1f, 0x8b];
        const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
        const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
        if head.starts_with(GZIP) {
            Compression::Gzip
        } else if head.starts_with(ZSTD) {
            Compression::Zstd
        } else if head.starts_with(XZ) {
            Compression::Xz
        } else if is_bzip2(head) {
            Compression::Bzip2
        } else {
            Compression::None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Bzip2 => "bzip2",
        }
    }
}

/// `BZh`, a block size digit, then the magic of a first block (the
/// digits of pi) or of the end of an empty stream (of sqrt(pi)): Docker
/// looks at `BZh` alone, which a tar whose first name begins so would
/// match too.
fn is_bzip2(head: &[u8]) -> bool {
    const BLOCK: &[u8] = &[0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
    const END: &[u8] = &[0x17, 0x72, 0x45, 0x38, 0x50, 0x90];
    match head {
        [b'B', b'Z', b'h', level, magic @ ..] if (b'1'..=b'9').contains(level) => {
            magic.starts_with(BLOCK) || magic.starts_with(END)
        }
        _ => false,
    }
}

/// Wraps a stream in the decoder its magic bytes call for. Errors are
/// the stream's own: the caller says which stream it was.
pub fn decompress<'a, R: Read + 'a>(input: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut input = HeadReader::new(input);
    let kind = Compression::detect(&input.peek(MAGIC_LEN)?);
    Ok((kind, decoder(kind, input)?))
}

fn decoder<'a, R: Read + 'a>(kind: Compression, input: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match kind {
        Compression::None => Box::new(input),
        // Multi-member gzip is valid gzip (pigz and `cat a.gz b.gz` make it).
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        // The zstd decoder reads concatenated frames too.
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
        // So do these two, as `xz -d` and `bzip2 -d` do.
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(input)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
    })
}

/// What the decompression thread hands to the tar parser.
type Chunk = io::Result<Vec<u8>>;

/// The end of the decompression thread: diffID of the uncompressed stream,
/// its length and the compression seen.
pub(crate) struct StreamSummary {
    pub diff_id: Digest,
    pub uncompressed: u64,
    pub compression: Compression,
}

const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the threads: bounds memory at 4 MiB.
const DEPTH: usize = 16;

/// Reads, decompresses and hashes `input` on the calling thread, sending
/// the uncompressed bytes to `tx` in chunks. Returns when the stream ends,
/// fails, or the receiver hangs up.
pub(crate) fn produce<R: Read>(input: R, tx: SyncSender<Chunk>) -> Result<StreamSummary> {
    let mut input = HeadReader::new(input);
    let head = input
        .peek(MAGIC_LEN)
        .map_err(|e| Error::stream("reading the first bytes", Some(e)))?;
    if head.is_empty() {
        let err = Error::stream("the stream is empty: not a tar archive", None);
        let _ = tx.send(Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "empty stream",
        )));
        return Err(err);
    }
    let compression = Compression::detect(&head);
    let mut reader = match decoder(compression, input) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
            let what = format!("starting the {} decoder", compression.as_str());
            return Err(Error::stream(what, Some(e)));
        }
    };
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = match read_full(&mut reader, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                let what = format!("{} stream after {total} bytes", compression.as_str());
                let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                return Err(Error::stream(what, Some(e)));
            }
        };
        if n == 0 {
            break;
        }
        buf.truncate(n);
        if total == 0 && !starts_like_tar(&buf) {
            let _ = tx.send(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a tar archive",
            )));
            return Err(Error::NotTar);
        }
        hasher.update(&buf);
        total += n as u64;
        if tx.send(Ok(buf)).is_err() {
            // The parser stopped (it failed, or the archive ended and the
            // rest is being drained elsewhere): nothing more to do.
            break;
        }
    }
    Ok(StreamSummary {
        diff_id: Digest::from_sha256(hasher),
        uncompressed: total,
        compression,
    })
}

/// What [`read_threaded`] found of the stream it read.
#[derive(Debug, Clone)]
pub struct Stream {
    /// sha256 of the uncompressed stream: a layer's diffID.
    pub diff_id: Digest,
    /// Length of the uncompressed stream.
    pub tar_size: u64,
    pub compression: Compression,
}

/// The uncompressed stream, as [`read_threaded`] hands it over.
pub struct ThreadedReader(ChunkReader);

impl Read for ThreadedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.0.read(out)
    }
}

/// Runs `consume` on the layer read from `input` (plain, gzip, zstd, xz
/// or bzip2, told apart by their magic bytes), uncompressed, while
/// another thread reads, decompresses and hashes it (what [`crate::apply`]
/// runs on): the hash and the decompression cost no time of the consumer's
/// (a small uncompressed layer, one chunk, is read whole first and needs
/// no other thread). `consume` reads what it needs; the rest of the
/// stream is read (and hashed) after it returns. Returns `consume`'s
/// value and the stream's [`Stream`]; when both failed, the stream's
/// error explains the other.
pub fn read_threaded<R, T, E>(
    input: R,
    consume: impl FnOnce(&mut ThreadedReader) -> std::result::Result<T, E>,
) -> (std::result::Result<T, E>, Result<Stream>)
where
    R: Read + Send,
{
    let (tx, rx) = channel();
    let finish = |mut reader: ThreadedReader, consumed: &std::result::Result<T, E>| {
        let drained = match consumed {
            Ok(_) => reader.0.drain(),
            Err(_) => Ok(()),
        };
        // Hang up, so a producer blocked on a full channel returns.
        drop(reader);
        drained
    };
    let (consumed, drained, summary) = match take_small(input) {
        Input::Small(bytes) => {
            // One chunk: produced whole into the channel, then read.
            let summary = produce(&bytes[..], tx);
            let mut reader = ThreadedReader(ChunkReader::new(rx));
            let consumed = consume(&mut reader);
            let drained = finish(reader, &consumed);
            (consumed, drained, summary)
        }
        Input::Stream(input) => std::thread::scope(|s| {
            let producer = s.spawn(move || produce(input, tx));
            let mut reader = ThreadedReader(ChunkReader::new(rx));
            let consumed = consume(&mut reader);
            let drained = finish(reader, &consumed);
            let summary = producer
                .join()
                .expect("the decompression thread does not panic");
            (consumed, drained, summary)
        }),
    };
    let stream = summary.and_then(|s| {
        drained.map_err(|e| Error::stream("reading past the end of the archive", Some(e)))?;
        Ok(Stream {
            diff_id: s.diff_id,
            tar_size: s.uncompressed,
            compression: s.compression,
        })
    });
    (consumed, stream)
}

/// Whether the first bytes of an uncompressed stream can begin a tar: a
/// header block whose checksum holds, or the zero block that ends an
/// empty archive. Checked once, so that a file that is
/// not a tar at all is refused as that, not with the parser's complaint
/// about a field, which quotes the file's bytes.
fn starts_like_tar(head: &[u8]) -> bool {
    // A stream that ends within its first block holds no tar header.
    let Some(block) = head.get(..512) else {
        return false;
    };
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    // POSIX ustar: the sum of the header's bytes, the checksum field
    // (bytes 148..156) counted as spaces, in octal in that field. Old
    // tars summed signed bytes: either sum is accepted, as GNU tar does.
    let field = &block[148..156];
    let digits = std::str::from_utf8(field)
        .ok()
        .map(|s| s.trim_matches(|c: char| c == ' ' || c == '\0'));
    let Some(want) = digits.and_then(|d| u32::from_str_radix(d, 8).ok()) else {
        return false;
    };
    let spaces = 8 * u32::from(b' ');
    let (a, b) = (&block[..148], &block[156..]);
    let unsigned: u32 = a.iter().chain(b).map(|&x| u32::from(x)).sum::<u32>() + spaces;
    let signed: i64 = a.iter().chain(b).map(|&x| i64::from(x as i8)).sum::<i64>() + 256;
    want == unsigned || i64::from(want) == signed
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An input [`take_small`] looked at: read whole, or a stream to read
/// on its own thread (what was read of it first, then the rest).
enum Input<R> {
    /// Uncompressed and at most one chunk: all of it.
    Small(Vec<u8>),
    Stream(io::Chain<io::Cursor<Vec<u8>>, Rest<R>>),
}

/// Reads up to one chunk of `input`: a small uncompressed stream (an
/// init layer, a commit of a few files) is then whole, and parsed with
/// no second thread to start; anything else is read on as it was, an
/// error met in that first read coming where it was met.
fn take_small<R: Read>(mut input: R) -> Input<R> {
    let mut head = Vec::new();
    match (&mut input).take(CHUNK as u64 + 1).read_to_end(&mut head) {
        Ok(n) if n <= CHUNK && Compression::detect(&head) == Compression::None => {
            Input::Small(head)
        }
        r => Input::Stream(io::Cursor::new(head).chain(Rest {
            err: r.err(),
            input,
        })),
    }
}

/// The rest of an input after [`take_small`]'s first read: the error that
/// read met, if any, then the input.
struct Rest<R> {
    err: Option<io::Error>,
    input: R,
}

impl<R: Read> Read for Rest<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.err.take() {
            Some(e) => Err(e),
            None => self.input.read(buf),
        }
    }
}

pub(crate) fn channel() -> (SyncSender<Chunk>, Receiver<Chunk>) {
    sync_channel(DEPTH)
}

/// The tar parser's side of the channel.
pub(crate) struct ChunkReader {
    rx: Receiver<Chunk>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ChunkReader {
    pub fn new(rx: Receiver<Chunk>) -> Self {
        ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// Reads to the end so that the producer hashes every byte (the
    /// padding after the end-of-archive blocks is part of the diffID).
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A reader that can look at its first bytes and then yield them again,
/// whatever sizes the underlying `read` calls return.
struct HeadReader<R> {
    inner: R,
    head: Vec<u8>,
    pos: usize,
}

impl<R: Read> HeadReader<R> {
    fn new(inner: R) -> Self {
        HeadReader {
            inner,
            head: Vec::new(),
            pos: 0,
        }
    }

    fn peek(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = [0u8; 64];
        while self.head.len() < n {
            let k = match self.inner.read(&mut buf[..n - self.head.len()]) {
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if k == 0 {
                break;
            }
            self.head.extend_from_slice(&buf[..k]);
        }
        Ok(self.head.clone())
    }
}

impl<R: Read> Read for HeadReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.head.len() {
            let n = out.len().min(self.head.len() - self.pos);
            out[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn detects_by_magic_not_by_name() {
        for (head, want) in [
            (&[0x1f, 0x8b, 8][..], Compression::Gzip),
            (&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0], Compression::Xz),
            (b"BZh91AY&SY", Compression::Bzip2),
            (b"BZh1\x17\x72\x45\x38\x50\x90", Compression::Bzip2),
            (b"etc/\0\0", Compression::None),
            // A tar whose first name begins as bzip2's magic does.
            (b"BZh9-notes", Compression::None),
            (b"BZh", Compression::None),
        ] {
            assert_eq!(Compression::detect(head), want, "{head:?}");
        }
    }

    /// Every format read decodes what its reference encoder wrote, and a
    /// stream cut short is an error, never a short, silent end.
    #[test]
    fn reads_every_format_and_refuses_truncation() {
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        type Encode = fn(&[u8]) -> Vec<u8>;
        let encoders: [(Compression, Encode); 4] = [
            (Compression::Gzip, |d| {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                e.write_all(d).unwrap();
                e.finish().unwrap()
            }),
            (Compression::Zstd, |d| zstd::encode_all(d, 3).unwrap()),
            (Compression::Xz, |d| {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
                e.write_all(d).unwrap();
                e.finish().unwrap()
            }),
            (Compression::Bzip2, |d| {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), Default::default());
                e.write_all(d).unwrap();
                e.finish().unwrap()
            }),
        ];
        for (kind, encode) in encoders {
            let packed = encode(&plain);
            let (got, mut r) = decompress(&packed[..]).unwrap();
            assert_eq!(got, kind);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert!(out == plain, "{kind:?} round trip");
            let cut = &packed[..packed.len() / 2];
            let (_, mut r) = decompress(cut).unwrap();
            assert!(
                r.read_to_end(&mut Vec::new()).is_err(),
                "{kind:?} cut in half read without an error"
            );
        }
    }
}
