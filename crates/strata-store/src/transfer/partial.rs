//! Blobs a pull fetched part of, kept for the next pull to resume
//! (containerd keeps its `ingest` the same way).
//!
//! A layer blob is unpacked as it streams in; the compressed bytes that
//! come from the registry are also appended to `partial/sha256/<hex>`,
//! which nothing reads while that pull runs. When the blob ends and its
//! digest checks, the file is removed; a blob found corrupt removes it
//! too. A pull that dies or is interrupted leaves it: the next pull of
//! that blob hashes the file, unpacks from it, and asks the registry with
//! a Range request for the rest only. Each file is locked (flock) by the
//! pull using it, so two pulls of one blob never write it together: the
//! second streams the blob without a partial file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use strata_archive::Digest;
use strata_registry::{BlobReader, Client};

/// A blob as it is read: from its partial file, then from the registry,
/// what the registry sends appended to the partial file.
pub(crate) struct Resumable<'c> {
    prefix: Option<File>,
    net: BlobReader<'c>,
    /// The partial file, locked, appended to; `None` when another pull
    /// holds it or writing failed.
    sink: Option<(File, PathBuf)>,
}

/// Opens blob `digest` of `repo` through the partial files in `dir`: the
/// reader, and the blob's size.
pub(crate) fn open<'c>(
    client: &'c Client,
    repo: &str,
    digest: &Digest,
    dir: &Path,
) -> strata_registry::Result<(Resumable<'c>, u64)> {
    let Some((sink, path)) = lock_partial(dir, digest) else {
        let net = client.open_blob_unsized(repo, digest)?;
        let size = net.size();
        return Ok((
            Resumable {
                prefix: None,
                net,
                sink: None,
            },
            size,
        ));
    };
    let have = sink.metadata().map_or(0, |m| m.len());
    if have > 0 {
        if let Some(size) = client.blob_exists(repo, digest)? {
            if let Some((prefix, hasher)) = (have < size).then(|| hash(&path)).flatten() {
                let net = client.resume_blob(repo, digest, size, have, hasher)?;
                let reader = Resumable {
                    prefix: Some(prefix),
                    net,
                    sink: Some((sink, path)),
                };
                return Ok((reader, size));
            }
        }
        // Not resumable (as long as the blob, or unreadable): start over.
        if sink.set_len(0).is_err() {
            let net = client.open_blob_unsized(repo, digest)?;
            let size = net.size();
            return Ok((
                Resumable {
                    prefix: None,
                    net,
                    sink: None,
                },
                size,
            ));
        }
    }
    let net = client.open_blob_unsized(repo, digest)?;
    let size = net.size();
    Ok((
        Resumable {
            prefix: None,
            net,
            sink: Some((sink, path)),
        },
        size,
    ))
}

/// The partial file of `digest`, opened for appending and locked; `None`
/// when another pull holds it or it cannot be made.
fn lock_partial(dir: &Path, digest: &Digest) -> Option<(File, PathBuf)> {
    fs::create_dir_all(dir).ok()?;
    let path = dir.join(digest.hex());
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .ok()?;
    strata_sys::fs::try_lock_exclusive(file.as_fd())
        .ok()?
        .then_some((file, path))
}

/// The partial file at `path` opened for reading, and its bytes hashed.
fn hash(path: &Path) -> Option<(File, Sha256)> {
    let mut hasher = Sha256::new();
    io::copy(&mut File::open(path).ok()?, &mut hasher).ok()?;
    Some((File::open(path).ok()?, hasher))
}

impl Resumable<'_> {
    fn forget(&mut self) {
        if let Some((_, path)) = self.sink.take() {
            let _ = fs::remove_file(path);
        }
    }
}

impl Read for Resumable<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(p) = &mut self.prefix {
            match p.read(buf)? {
                0 => self.prefix = None,
                n => return Ok(n),
            }
        }
        match self.net.read(buf) {
            // The reader checked the digest before saying it ended.
            Ok(0) => {
                self.forget();
                Ok(0)
            }
            Ok(n) => {
                if let Some((f, _)) = &mut self.sink {
                    if f.write_all(&buf[..n]).is_err() {
                        self.forget();
                    }
                }
                // A reader that stops at the blob's size (a config read
                // to its descriptor's length) never asks for the end:
                // check the digest now, so the file goes either way.
                if self.net.position() == self.net.size() {
                    match self.net.read(&mut [0u8; 1]) {
                        Ok(_) => self.forget(),
                        Err(e) => {
                            if e.kind() == io::ErrorKind::InvalidData {
                                self.forget();
                            }
                            return Err(e);
                        }
                    }
                }
                Ok(n)
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    self.forget();
                }
                Err(e)
            }
        }
    }
}
