//! The push half of the protocol
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-blobs>):
//! a blob the registry has is found with HEAD, one another repository of
//! the same registry has is mounted, the rest are uploaded whole
//! (POST, then PUT `?digest=`) or in chunks (POST, PATCHes, PUT). For a
//! blob made while it is sent (a layer compressed on the fly),
//! [`Client::upload_stream`] reads it into one streamed PATCH and an
//! [`Upload`] is the chunked form as a `Write`; both hash as they go and
//! name the digest in the closing PUT.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};
use strata_archive::Digest;
use ureq::http::{Method, Response};
use ureq::Body;

use crate::client::{encode, Client, Origin, Payload, Req};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{check_repo, pull_scope, push_scope};

/// What a cross-repository mount came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    /// The blob is now in the repository.
    Mounted,
    /// The registry would not mount it (the source lacks it, or mounting
    /// is off): upload it.
    NotMounted,
}

impl Req<'_> {
    /// A request that needs push access to `repo`.
    fn push(method: Method, url: String, repo: &str) -> Self {
        Req::new(method, url, vec![push_scope(repo)])
    }
}

impl Client {
    /// The size of blob `digest` when `repo` has it.
    pub fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let resp = self.send_push(Method::HEAD, repo, &format!("blobs/{digest}"))?;
        match resp.status().as_u16() {
            200 => Ok(Some(
                header(&resp, "content-length")
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(self.refusal(resp, &format!("checking blob {digest} in {repo}"))),
        }
    }

    /// Asks the registry to link blob `digest` of repository `from` into
    /// `repo` without sending it.
    pub fn mount_blob(&self, repo: &str, digest: &Digest, from: &str) -> Result<Mount> {
        check_repo(repo)?;
        check_repo(from)?;
        let url = self.url(&format!(
            "{repo}/blobs/uploads/?mount={}&from={}",
            encode(&digest.to_string()),
            encode(from)
        ));
        let req = Req::new(Method::POST, url, vec![push_scope(repo), pull_scope(from)]);
        let what = format!("mounting blob {digest} from {from} into {repo}");
        let resp = self.send(req)?;
        match resp.status().as_u16() {
            201 => Ok(Mount::Mounted),
            202 => {
                // An upload was started instead: cancel it, best effort.
                if let Ok(loc) = self.location(&resp, &what) {
                    let _ = self.send(Req::push(Method::DELETE, loc, repo));
                }
                Ok(Mount::NotMounted)
            }
            _ => Err(self.refusal(resp, &what)),
        }
    }

    /// Uploads blob `digest` of `size` bytes from `reader` in one PUT.
    /// The stream is sent once: a failure is not retried here.
    pub fn upload_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<()> {
        let what = format!("uploading blob {digest} to {repo}");
        let loc = self.start_upload(repo, &what)?;
        let mut limited = reader.take(size);
        let req = Req::push(
            Method::PUT,
            with_query(&loc, &format!("digest={}", encode(&digest.to_string()))),
            repo,
        )
        .header("content-type", "application/octet-stream")
        .body(Payload::Stream(&mut limited, size));
        let resp = self.send(req)?;
        match resp.status().as_u16() {
            201 => Ok(()),
            _ => Err(self.refusal(resp, &what)),
        }
    }

    /// Uploads blob `digest` from `reader` in chunks of `chunk` bytes,
    /// each held in memory so that a failed one is sent again.
    pub fn upload_blob_chunked(
        &self,
        repo: &str,
        digest: &Digest,
        reader: &mut dyn Read,
        chunk: usize,
    ) -> Result<()> {
        let what = format!("uploading blob {digest} to {repo}");
        let mut loc = self.start_upload(repo, &what)?;
        let mut buf = vec![0u8; chunk.max(1)];
        let mut offset = 0u64;
        loop {
            let n = read_full(reader, &mut buf)
                .map_err(|e| Error::with(ErrorKind::Refused, format!("{what}: reading it"), e))?;
            if n == 0 {
                break;
            }
            loc = self.send_chunk(repo, &loc, offset, &buf[..n], &what)?;
            offset += n as u64;
        }
        self.end_upload(repo, &loc, digest, &what)
    }

    /// Uploads the blob `reader` yields, of a length not known ahead, in
    /// one streamed PATCH (chunked transfer encoding, as Docker and
    /// containers/image send it), hashing it as it goes, and names its
    /// digest in the closing PUT: the blob's digest and size. A reader
    /// that fails leaves the upload unfinished.
    pub fn upload_stream(&self, repo: &str, reader: &mut dyn Read) -> Result<(Digest, u64)> {
        let what = format!("uploading a blob to {repo}");
        let loc = self.start_upload(repo, &what)?;
        let mut hashing = Hashing {
            inner: reader,
            hasher: Sha256::new(),
            len: 0,
        };
        let req = Req::push(Method::PATCH, loc, repo)
            .header("content-type", "application/octet-stream")
            .body(Payload::Unsized(&mut hashing));
        let resp = self.send(req)?;
        let loc = match resp.status().as_u16() {
            202 => self.location(&resp, &what)?,
            _ => return Err(self.refusal(resp, &what)),
        };
        let digest = Digest::from_sha256(hashing.hasher);
        self.end_upload(repo, &loc, &digest, &what)?;
        Ok((digest, hashing.len))
    }

    /// Starts a chunked upload to `repo` that is written to, `chunk`
    /// bytes held in memory at a time; [`Upload::finish`] ends it.
    pub fn begin_upload(&self, repo: &str, chunk: usize) -> Result<Upload<'_>> {
        let what = format!("uploading a blob to {repo}");
        let location = self.start_upload(repo, &what)?;
        Ok(Upload {
            client: self,
            repo: repo.to_owned(),
            location,
            buf: Vec::with_capacity(chunk.max(1)),
            chunk: chunk.max(1),
            offset: 0,
            hasher: Sha256::new(),
        })
    }

    /// PATCHes `bytes` at `offset` to the upload at `loc`; the next
    /// location.
    fn send_chunk(
        &self,
        repo: &str,
        loc: &str,
        offset: u64,
        bytes: &[u8],
        what: &str,
    ) -> Result<String> {
        let req = Req::push(Method::PATCH, loc.to_owned(), repo)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{}-{}", offset, offset + bytes.len() as u64 - 1),
            )
            .body(Payload::Bytes(bytes));
        let resp = self.send(req)?;
        match resp.status().as_u16() {
            202 => self.location(&resp, what),
            _ => Err(self.refusal(resp, what)),
        }
    }

    /// PUTs the end of the upload at `loc`, naming its digest.
    fn end_upload(&self, repo: &str, loc: &str, digest: &Digest, what: &str) -> Result<()> {
        let req = Req::push(
            Method::PUT,
            with_query(loc, &format!("digest={}", encode(&digest.to_string()))),
            repo,
        );
        let resp = self.send(req)?;
        match resp.status().as_u16() {
            201 => Ok(()),
            _ => Err(self.refusal(resp, what)),
        }
    }

    /// A bodiless request for `<repo>/<path>`, with push access.
    fn send_push(&self, method: Method, repo: &str, path: &str) -> Result<Response<Body>> {
        check_repo(repo)?;
        self.send(Req::push(method, self.url(&format!("{repo}/{path}")), repo))
    }

    /// POST `uploads/`: the URL to send the blob to.
    fn start_upload(&self, repo: &str, what: &str) -> Result<String> {
        let resp = self.send_push(Method::POST, repo, "blobs/uploads/")?;
        match resp.status().as_u16() {
            202 => self.location(&resp, what),
            _ => Err(self.refusal(resp, what)),
        }
    }

    /// The `Location` of an upload answer, made absolute.
    fn location(&self, resp: &Response<Body>, what: &str) -> Result<String> {
        let loc = header(resp, "location").ok_or_else(|| {
            Error::new(
                ErrorKind::Server,
                format!(
                    "{}: {what}: the registry gave no upload location",
                    self.registry()
                ),
            )
        })?;
        let base = Origin::parse(&self.url("")).expect("the registry's own URL parses");
        Ok(base.resolve(&loc))
    }
}

/// A blob being uploaded in chunks as it is written.
pub struct Upload<'c> {
    client: &'c Client,
    repo: String,
    location: String,
    buf: Vec<u8>,
    chunk: usize,
    offset: u64,
    hasher: Sha256,
}

impl Upload<'_> {
    fn what(&self) -> String {
        format!("uploading a blob to {}", self.repo)
    }

    /// Sends what is buffered.
    fn send_buffered(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let what = self.what();
        self.location =
            self.client
                .send_chunk(&self.repo, &self.location, self.offset, &self.buf, &what)?;
        self.offset += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Sends the rest and ends the upload; the blob's digest and size.
    /// With `expected`, a blob whose digest differs is not committed.
    pub fn finish(mut self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.send_buffered()?;
        let digest = Digest::from_sha256(std::mem::take(&mut self.hasher));
        if let Some(want) = expected {
            if want != &digest {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "{}: the bytes written have sha256 {digest}, not {want}",
                        self.what()
                    ),
                ));
            }
        }
        self.client
            .end_upload(&self.repo, &self.location, &digest, &self.what())?;
        Ok((digest, self.offset))
    }
}

impl Write for Upload<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.chunk - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.hasher.update(&data[..n]);
        if self.buf.len() == self.chunk {
            self.send_buffered().map_err(Error::into_io)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn with_query(url: &str, q: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{q}")
}

/// Fills `buf` unless the reader ends first; how much it read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Hashes and counts what is read through it.
struct Hashing<'r> {
    inner: &'r mut dyn Read,
    hasher: Sha256,
    len: u64,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}
