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
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest as _, Sha256};
use strata_archive::Digest;
use strata_registry::{BlobReader, Client};

/// A blob as it is read: from its partial file, then from the registry,
/// what the registry sends appended to the partial file.
pub(crate) struct Resumable<'c> {
    prefix: Option<File>,
    /// The rest from the registry; `None` when the partial file is the
    /// whole blob (fetched ahead, its digest checked).
    net: Option<BlobReader<'c>>,
    /// The partial file, locked, appended to; `None` when another pull
    /// holds it or writing failed.
    sink: Option<(File, PathBuf)>,
    /// Keep the file when the blob is whole (fetched ahead of its turn).
    keep: bool,
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
        return from_start(client, repo, digest, None);
    };
    let have = sink.metadata().map_or(0, |m| m.len());
    if have > 0 {
        if let Some(size) = client.blob_exists(repo, digest)? {
            if let Some((prefix, hasher)) = (have <= size).then(|| hash(&path)).flatten() {
                let net = if have < size {
                    Some(client.resume_blob(repo, digest, size, have, hasher)?)
                } else if &Digest::from_sha256(hasher) == digest {
                    None
                } else {
                    return start_over(client, repo, digest, sink, path);
                };
                let reader = Resumable {
                    prefix: Some(prefix),
                    net,
                    sink: Some((sink, path)),
                    keep: false,
                };
                return Ok((reader, size));
            }
        }
        // Not resumable (longer than the blob, or unreadable).
        return start_over(client, repo, digest, sink, path);
    }
    from_start(client, repo, digest, Some((sink, path)))
}

/// The whole blob from the registry, the partial file emptied to take
/// it (or left out when it cannot be).
fn start_over<'c>(
    client: &'c Client,
    repo: &str,
    digest: &Digest,
    sink: File,
    path: PathBuf,
) -> strata_registry::Result<(Resumable<'c>, u64)> {
    let sink = sink.set_len(0).is_ok().then_some((sink, path));
    from_start(client, repo, digest, sink)
}

/// The whole blob from the registry, appended to `sink` when there is one.
fn from_start<'c>(
    client: &'c Client,
    repo: &str,
    digest: &Digest,
    sink: Option<(File, PathBuf)>,
) -> strata_registry::Result<(Resumable<'c>, u64)> {
    let net = client.open_blob_unsized(repo, digest)?;
    let size = net.size();
    Ok((
        Resumable {
            prefix: None,
            net: Some(net),
            sink,
            keep: false,
        },
        size,
    ))
}

/// Fetches blob `digest` into its partial file ahead of its turn (the
/// file kept once whole, for [`open`] to serve), until `stop` is set.
/// Best effort: what fails is fetched again, or resumed, when the blob's
/// turn comes; but bytes that are not the blob are an answer, returned.
pub(crate) fn fetch(
    client: &Client,
    repo: &str,
    digest: &Digest,
    dir: &Path,
    stop: &AtomicBool,
) -> Option<io::Error> {
    let Ok((mut r, _)) = open(client, repo, digest, dir) else {
        return None;
    };
    // None: another pull is fetching it.
    r.sink.as_ref()?;
    r.keep = true;
    let mut buf = vec![0u8; 64 << 10];
    while !stop.load(Ordering::Relaxed) {
        match r.read(&mut buf) {
            Ok(0) => return None,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Some(e),
            Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
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

/// Removes the partial files no pull is using (`system prune`): their
/// digests and bytes. A file a pull holds is locked and stays.
pub(crate) fn prune(dir: &Path) -> io::Result<Vec<(Digest, u64)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut gone = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(digest) = name
            .to_str()
            .and_then(|hex| Digest::parse(&format!("sha256:{hex}")))
        else {
            // Not a name a pull writes: left for the operator to see.
            continue;
        };
        let path = entry.path();
        let Ok(file) = OpenOptions::new().append(true).open(&path) else {
            continue;
        };
        if !file.metadata()?.is_file() || !strata_sys::fs::try_lock_exclusive(file.as_fd())? {
            continue;
        }
        let size = file.metadata()?.len();
        fs::remove_file(&path)?;
        gone.push((digest, size));
    }
    gone.sort();
    Ok(gone)
}

/// The partial file at `path` opened for reading, and its bytes hashed.
fn hash(path: &Path) -> Option<(File, Sha256)> {
    let mut hasher = Sha256::new();
    io::copy(&mut File::open(path).ok()?, &mut hasher).ok()?;
    Some((File::open(path).ok()?, hasher))
}

/// The bytes are not the blob: the file goes.
fn forget(sink: &mut Option<(File, PathBuf)>) {
    if let Some((_, path)) = sink.take() {
        let _ = fs::remove_file(path);
    }
}

/// The blob is whole and checked: the file goes, unless it was fetched
/// ahead for its turn.
fn whole(sink: &mut Option<(File, PathBuf)>, keep: bool) {
    if !keep {
        forget(sink);
    }
}

impl Read for Resumable<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Resumable {
            prefix,
            net,
            sink,
            keep,
        } = self;
        if let Some(p) = prefix {
            match p.read(buf)? {
                0 => *prefix = None,
                n => return Ok(n),
            }
        }
        let Some(net) = net else {
            // The file was the whole blob, checked when opened.
            whole(sink, *keep);
            return Ok(0);
        };
        let n = match net.read(buf) {
            // The reader checked the digest before saying it ended.
            Ok(0) => {
                whole(sink, *keep);
                return Ok(0);
            }
            Ok(n) => n,
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    forget(sink);
                }
                return Err(e);
            }
        };
        if let Some((f, _)) = sink {
            if f.write_all(&buf[..n]).is_err() {
                forget(sink);
            }
        }
        // A reader that stops at the blob's size (a config read to its
        // descriptor's length) never asks for the end: check the digest
        // now, so the file goes either way.
        if net.position() == net.size() {
            match net.read(&mut [0u8; 1]) {
                Ok(_) => whole(sink, *keep),
                Err(e) => {
                    if e.kind() == io::ErrorKind::InvalidData {
                        forget(sink);
                    }
                    return Err(e);
                }
            }
        }
        Ok(n)
    }
}
