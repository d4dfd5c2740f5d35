//! gzip deflated on several threads, as pigz does, through the `gzp`
//! crate: the input is cut into blocks, each deflated on a worker with
//! the 32 KiB before it as its dictionary, and the blocks are written in
//! order as one gzip member. Every gzip reader takes it; the same input,
//! level and block size give the same bytes whatever the thread count;
//! sizes are within a fraction of a percent of a one-thread deflate.

use std::io::{self, Write};

use gzp::deflate::Gzip;
use gzp::par::compress::{Compression, ParCompressBuilder};
use gzp::ZWriter;

/// Input per block: large enough that the block markers cost nothing,
/// small enough that a block is a fraction of a second of CPU.
const BLOCK: usize = 512 * 1024;

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
    let builder = ParCompressBuilder::<Gzip>::new()
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
