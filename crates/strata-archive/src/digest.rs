//! Hashing as content passes: the [`Digest`] type itself is
//! `strata-types`'.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};
pub use strata_types::Digest;

/// sha256 of bytes in memory.
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::from_sha256(Sha256::new_with_prefix(bytes))
}

/// sha256 of everything a reader yields, and how many bytes it was.
pub fn sha256_reader(mut r: impl Read) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let got = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..got]);
        n += got as u64;
    }
    Ok((Digest::from_sha256(hasher), n))
}

/// A writer that hashes and counts what passes through it.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_sha256(self.hasher), self.written)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        let (d, n) = sha256_reader(&b""[..]).unwrap();
        assert_eq!(n, 0);
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
