//! Blobs streamed and checked as they are read
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-blobs>):
//! no temporary file; the sha256 and the size are checked as the bytes
//! pass, and a transfer cut short (a reset, a stall past the read
//! timeout, a close before the end) is resumed with a Range request from
//! the byte it stopped at.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};
use strata_archive::Digest;
use ureq::http::Method;

use crate::client::{Client, Req};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{check_repo, pull_scope};

/// A blob being read: yields its bytes, and an error instead of the end
/// when they are not the `size` bytes whose sha256 is `digest`. The error
/// is an `io::Error` carrying a registry [`Error`] ([`Error::from_io`]).
pub struct BlobReader<'c> {
    client: &'c Client,
    repo: String,
    digest: Digest,
    size: u64,
    /// The size came from the registry's first answer, not a descriptor.
    size_from_registry: bool,
    pos: u64,
    hasher: Sha256,
    body: Option<ureq::BodyReader<'static>>,
    resumes_left: u32,
    done: bool,
}

impl Client {
    /// Opens blob `digest` of `repo`, which its descriptor says is
    /// `size` bytes.
    pub fn open_blob(&self, repo: &str, digest: &Digest, size: u64) -> Result<BlobReader<'_>> {
        self.resume_blob(repo, digest, size, 0, Sha256::new())
    }

    /// Opens blob `digest` of `repo` when no descriptor gives its size:
    /// the registry's `Content-Length` is taken for it (the digest is
    /// still checked at the end).
    pub fn open_blob_unsized(&self, repo: &str, digest: &Digest) -> Result<BlobReader<'_>> {
        let mut r = self.blob_reader(repo, digest, u64::MAX)?;
        r.size_from_registry = true;
        r.connect()?;
        Ok(r)
    }

    /// Opens blob `digest` from byte `offset` on, the bytes before it
    /// already read elsewhere and hashed into `prefix` (a partly fetched
    /// blob from an earlier, interrupted pull).
    pub fn resume_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        offset: u64,
        prefix: Sha256,
    ) -> Result<BlobReader<'_>> {
        let mut r = self.blob_reader(repo, digest, size)?;
        if offset > size {
            return Err(Error::new(
                ErrorKind::Refused,
                format!("blob {digest}: offset {offset} is past its {size} bytes"),
            ));
        }
        r.pos = offset;
        r.hasher = prefix;
        r.connect()?;
        Ok(r)
    }

    /// The reader from the start, not yet connected.
    fn blob_reader(&self, repo: &str, digest: &Digest, size: u64) -> Result<BlobReader<'_>> {
        check_repo(repo)?;
        Ok(BlobReader {
            client: self,
            repo: repo.to_owned(),
            digest: digest.clone(),
            size,
            size_from_registry: false,
            pos: 0,
            hasher: Sha256::new(),
            body: None,
            resumes_left: self.opts.blob_resumes,
            done: false,
        })
    }
}

impl BlobReader<'_> {
    /// The blob's length: its descriptor's, or the registry's.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The bytes read so far, counting any `offset` it was resumed at.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn what(&self) -> String {
        format!(
            "{}: blob {} of {}",
            self.client.registry(),
            self.digest,
            self.repo
        )
    }

    /// A GET from `pos` on; a registry that ignores the Range and sends
    /// the whole blob has its first `pos` bytes skipped.
    fn connect(&mut self) -> Result<()> {
        let mut req = Req::new(
            Method::GET,
            self.client
                .url(&format!("{}/blobs/{}", self.repo, self.digest)),
            vec![pull_scope(&self.repo)],
        );
        if self.pos > 0 {
            req = req.header("range", format!("bytes={}-", self.pos));
        }
        let resp = self.client.send(req)?;
        let status = resp.status().as_u16();
        if status != 200 && !(status == 206 && self.pos > 0) {
            let what = format!("blob {} of {}", self.digest, self.repo);
            return Err(self.client.refusal(resp, &what));
        }
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let skip = match status {
            200 => self.pos,
            206 if self.pos > 0 => {
                let range = header("content-range").unwrap_or_default();
                let start = range
                    .trim()
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok());
                if start != Some(self.pos) {
                    return Err(Error::new(
                        ErrorKind::Server,
                        format!(
                            "{}: asked to resume at byte {}, the registry sent range {range:?}",
                            self.what(),
                            self.pos
                        ),
                    ));
                }
                0
            }
            _ => 0,
        };
        let declared = header("content-length").and_then(|l| l.trim().parse::<u64>().ok());
        if self.size == u64::MAX && self.size_from_registry {
            self.size = declared.ok_or_else(|| {
                Error::new(
                    ErrorKind::Server,
                    format!("{}: the registry gave no Content-Length", self.what()),
                )
            })?;
        }
        let expect = self.size - self.pos + skip;
        if let Some(len) = declared {
            if len != expect {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "{}: the registry sends {len} bytes, its descriptor says {}",
                        self.what(),
                        self.size - self.pos + skip
                    ),
                ));
            }
        }
        let mut body = resp.into_body().into_reader();
        if skip > 0 {
            let copied = io::copy(&mut (&mut body).take(skip), &mut io::sink())
                .map_err(|e| Error::with(ErrorKind::Network, self.what(), e))?;
            if copied != skip {
                return Err(Error::new(
                    ErrorKind::Network,
                    format!("{}: the resumed transfer ended early", self.what()),
                ));
            }
        }
        self.body = Some(body);
        Ok(())
    }

    /// After a cut at `pos`: another Range request, or the error if none
    /// is left.
    fn resume(&mut self, cause: io::Error) -> io::Result<()> {
        self.body = None;
        if self.resumes_left == 0 {
            return Err(Error::with(
                ErrorKind::Network,
                format!(
                    "{}: the transfer broke off at byte {} of {}, and resuming did not help",
                    self.what(),
                    self.pos,
                    self.size
                ),
                cause,
            )
            .into_io());
        }
        let tries = self.client.opts.blob_resumes - self.resumes_left;
        self.resumes_left -= 1;
        tracing::debug!(
            "{}: cut at byte {} ({cause}), resuming",
            self.what(),
            self.pos
        );
        std::thread::sleep(self.client.backoff(tries));
        self.connect().map_err(Error::into_io)
    }

    fn finish(&mut self) -> io::Result<usize> {
        self.done = true;
        self.body = None;
        let got = Digest::from_sha256(std::mem::take(&mut self.hasher));
        if got != self.digest {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("{}: the content's sha256 is {got}", self.what()),
            )
            .into_io());
        }
        Ok(0)
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos == self.size {
                // The registry must not have more to say.
                let mut extra = [0u8; 1];
                let more = match &mut self.body {
                    Some(b) => b.read(&mut extra).unwrap_or(0),
                    None => 0,
                };
                if more > 0 {
                    self.done = true;
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!(
                            "{}: longer than its descriptor's {} bytes",
                            self.what(),
                            self.size
                        ),
                    )
                    .into_io());
                }
                return self.finish();
            }
            let Some(body) = &mut self.body else {
                self.connect().map_err(Error::into_io)?;
                continue;
            };
            let want = buf
                .len()
                .min((self.size - self.pos).min(usize::MAX as u64) as usize);
            match body.read(&mut buf[..want]) {
                Ok(0) => {
                    let cut =
                        io::Error::new(io::ErrorKind::UnexpectedEof, "the connection closed early");
                    self.resume(cut)?;
                }
                Ok(n) => {
                    self.hasher.update(&buf[..n]);
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.resume(e)?,
            }
        }
    }
}
