//! gzip deflated on several threads, as pigz and Go's pgzip do, through
//! the `gzp` crate: the input is cut into blocks, each deflated on a
//! worker with the 32 KiB before it as its dictionary, and the blocks are
//! written in order as one gzip member. Every gzip reader takes it; the
//! same input, level and block size give the same bytes whatever the
//! thread count; sizes are within a fraction of a percent of a one-thread
//! deflate.

use std::io::{self, Write};

use flate2::{Compress, FlushCompress};
use gzp::deflate::Gzip;
use gzp::par::compress::{Compression, ParCompressBuilder};
use gzp::{FormatSpec, GzpError, ZWriter};

/// Input per block: pgzip's (what containers/image compresses layers
/// with), large enough that the block markers and the cold start of each
/// block cost nothing, small enough that a block is a fraction of a
/// second of CPU.
const BLOCK: usize = 1 << 20;

/// gzp's gzip with each block primed with the 32 KiB before it, as pigz
/// does. gzp primes blocks only when built over C zlib; zlib-rs takes a
/// dictionary as well, and without one every block starts from an empty
/// window (some 0.1% larger output on a root file system's tar).
#[derive(Debug, Clone, Copy)]
struct Primed;

impl FormatSpec for Primed {
    type C = <Gzip as FormatSpec>::C;
    type Compressor = Compress;

    fn new() -> Self {
        Primed
    }

    fn needs_dict(&self) -> bool {
        true
    }

    fn create_compressor(&self, level: Compression) -> Result<Compress, GzpError> {
        // Raw deflate: the gzip header and trailer are gzp's.
        Ok(Compress::new(level, false))
    }

    fn encode(
        &self,
        input: &[u8],
        encoder: &mut Compress,
        _level: Compression,
        dict: Option<&bytes::Bytes>,
        is_last: bool,
    ) -> Result<Vec<u8>, GzpError> {
        if let Some(dict) = dict {
            encoder.set_dictionary(dict)?;
        }
        // A sync flush ends every block but the last on a byte boundary,
        // so that the next block's bytes follow on.
        let flush = if is_last {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        // Room for stored blocks (incompressible input) and the markers;
        // grown if ever short.
        let mut out = Vec::with_capacity(input.len() + input.len() / 64 + 1024);
        let mut read = 0;
        loop {
            let before = encoder.total_in();
            let status = encoder.compress_vec(&input[read..], &mut out, flush)?;
            read += usize::try_from(encoder.total_in() - before).expect("at most the input");
            // zlib's rule: a flush is complete when it left output room.
            let flushed = match flush {
                FlushCompress::Finish => status == flate2::Status::StreamEnd,
                _ => out.len() < out.capacity(),
            };
            if read == input.len() && flushed {
                break;
            }
            out.reserve(64 << 10);
        }
        encoder.reset();
        Ok(out)
    }

    fn header(&self, level: Compression) -> Vec<u8> {
        Gzip::new().header(level)
    }

    fn footer(&self, check: &Self::C) -> Vec<u8> {
        Gzip::new().footer(check)
    }
}

/// Writes to `out` a gzip stream of what `fill` writes, deflated at
/// `level` (0-9) on `threads` threads (at least one). The stream is
/// ended whatever `fill` returns; what it returns is returned once the
/// stream is written, or the error that stopped the writing.
pub fn parallel_gzip<T>(
    out: &mut (dyn Write + Send),
    level: u32,
    threads: usize,
    fill: impl FnOnce(&mut dyn Write) -> T,
) -> io::Result<T> {
    let builder = ParCompressBuilder::<Primed>::new()
        .num_threads(threads.max(1))
        .and_then(|b| b.buffer_size(BLOCK))
        .map_err(io::Error::other)?
        .compression_level(Compression::new(level.min(9)));
    std::thread::scope(|scope| {
        let mut gz = Watched {
            inner: builder.from_borrowed_writer(out, scope),
            failed: None,
        };
        let filled = fill(&mut gz);
        // A failed write has torn gzp's pipeline down (its writer thread
        // joined, its channels dropped): finishing it then would panic,
        // and dropping it does nothing more.
        if let Some((kind, why)) = gz.failed {
            return Err(io::Error::new(kind, why));
        }
        // Otherwise always finished here: gzp's drop would panic on a
        // failure.
        gz.inner.finish().map_err(|e| match e {
            gzp::GzpError::Io(e) => e,
            other => io::Error::other(other),
        })?;
        Ok(filled)
    })
}

/// A writer that remembers the first error it passed on.
struct Watched<W> {
    inner: W,
    failed: Option<(io::ErrorKind, String)>,
}

impl<W: Write> Watched<W> {
    fn watch<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if let (Err(e), None) = (&r, &self.failed) {
            self.failed = Some((e.kind(), e.to_string()));
        }
        r
    }
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        self.watch(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        self.watch(r)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Deflate's window, the dictionary each block takes.
    const WINDOW: usize = 32 * 1024;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut d = flate2::read::GzDecoder::new(gz);
        let mut v = Vec::new();
        d.read_to_end(&mut v).unwrap();
        // One member: nothing after it.
        assert!(d.into_inner().is_empty());
        v
    }

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivially: words from a small LCG.
        let words = [
            &b"usr/lib/"[..],
            b"x86_64",
            b"-linux-gnu/",
            b"libc.so.6\n",
            b"\0\0\0",
        ];
        let mut s = 12345u32;
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v.extend_from_slice(words[(s >> 16) as usize % words.len()]);
            v.push((s >> 24) as u8);
        }
        v.truncate(len);
        v
    }

    fn encode(data: &[u8], threads: usize, piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        parallel_gzip(&mut out, 6, threads, |g| {
            for c in data.chunks(piece.max(1)) {
                g.write_all(c).unwrap();
            }
        })
        .unwrap();
        out
    }

    #[test]
    fn round_trips_at_every_boundary() {
        for len in [
            0,
            1,
            WINDOW - 1,
            WINDOW + 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK,
            3 * BLOCK + 17,
        ] {
            let data = sample(len);
            let gz = encode(&data, 3, 70_000);
            assert_eq!(gunzip(&gz), data, "length {len}");
        }
    }

    /// Bytes no deflate shrinks.
    fn noise(len: usize) -> Vec<u8> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_blocks_round_trip() {
        // Every block is stored, larger than its input.
        let data = noise(3 * BLOCK + 5);
        for level in [0, 3, 9] {
            let mut out = Vec::new();
            parallel_gzip(&mut out, level, 2, |g| g.write_all(&data).unwrap()).unwrap();
            assert_eq!(gunzip(&out), data, "level {level}");
        }
    }

    #[test]
    fn each_block_is_primed_with_the_window_before_it() {
        // 16 KiB of noise over and over, two blocks' worth. Unprimed, the
        // second block would cost what the first does (it has to code
        // the noise anew); primed, it starts with matches.
        let unit = noise(WINDOW / 2);
        let data: Vec<u8> = unit.iter().copied().cycle().take(2 * BLOCK).collect();
        let one = encode(&data[..BLOCK], 2, 1 << 16).len();
        let both = encode(&data, 2, 1 << 16);
        assert_eq!(gunzip(&both), data);
        assert!(
            both.len() < one + one * 3 / 4,
            "{} bytes for two blocks, {one} for one",
            both.len()
        );
    }

    #[test]
    fn the_bytes_depend_on_the_input_only() {
        let data = sample(5 * BLOCK / 2);
        let one = encode(&data, 1, 4096);
        assert_eq!(one, encode(&data, 4, 1 << 20));
        assert_eq!(one, encode(&data, 2, 1));
    }

    #[test]
    fn size_is_close_to_one_thread_deflate() {
        let data = sample(6 * BLOCK);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&data).unwrap();
        let serial = e.finish().unwrap().len();
        let parallel = encode(&data, 2, 1 << 16).len();
        assert!(
            parallel < serial + serial / 50,
            "{parallel} bytes in parallel, {serial} serially"
        );
    }

    #[test]
    fn a_failing_writer_fails_the_stream() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = sample(4 * BLOCK);
        let wrote = parallel_gzip(&mut Full, 6, 2, |g| g.write_all(&data));
        assert!(!matches!(wrote, Ok(Ok(()))), "{wrote:?}");
    }
}
