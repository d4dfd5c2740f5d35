//! `strata cp`: files between a container and the host, with Docker's
//! rules for what lands where.
//!
//! | source            | destination missing      | destination a file | destination a directory  |
//! |-------------------|--------------------------|--------------------|--------------------------|
//! | file              | written as the dest      | replaced           | copied into it           |
//! | directory         | made as the dest         | refused            | copied into it           |
//! | directory `/.`    | made as the dest         | refused            | its contents copied in   |
//!
//! A destination ending in `/` must be a directory; a source ending in
//! `/` must be one. The parent of a missing destination must exist.
//!
//! Every container path, source or destination, is resolved inside the
//! container's merged root as if it were `/` ([`PathInRoot`]), and what is
//! written into a container is applied by [`strata_archive::apply`],
//! confined to that root (CVE-2018-15664, CVE-2019-14271). The host side
//! is the user's: its paths mean what they mean to the user's shell.
//! Ownership, modes, times and xattrs are kept both ways (`docker cp -a`).

use std::io::Write;
use std::path::{Path, PathBuf};

use strata_archive::{apply, clean_path, ApplyOptions, PathInRoot};

use crate::container::Container;
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::Store;

/// What a copy wrote.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Objects written.
    pub entries: u64,
    /// Bytes of file content written.
    pub size: u64,
}

/// How a copy's source path is read: `DIR/.` means the directory's
/// contents, a trailing `/` (or `follow`) follows a last symlink.
struct Source {
    follow: bool,
    contents: bool,
    must_be_dir: bool,
    /// The name the copy takes in a destination directory.
    base: Vec<u8>,
}

impl Source {
    fn parse(path: &[u8], follow: bool) -> Source {
        let contents = path == b"." || path.ends_with(b"/.");
        let must_be_dir = path.ends_with(b"/");
        let base = clean_path(path).pop().unwrap_or_default();
        Source {
            follow: follow || contents || must_be_dir,
            // The root has no name to copy under: its contents go.
            contents: contents || base.is_empty(),
            must_be_dir,
            base,
        }
    }

    fn check(&self, found: &PathInRoot, shown: &str) -> Result<()> {
        if (self.contents || self.must_be_dir) && !found.is_dir() {
            return Err(invalid(format!("{shown} is not a directory")));
        }
        Ok(())
    }
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

fn not_found(what: String) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("{what}: no such file or directory"),
    )
}

fn archive_err(what: String) -> impl FnOnce(strata_archive::Error) -> Error {
    move |e| {
        let kind = match e.kind() {
            strata_archive::ErrorKind::InvalidLayer => ErrorKind::InvalidArgument,
            _ => ErrorKind::Io,
        };
        Error::with(kind, what, e)
    }
}

/// Takes a reference on the container's mount; gives it back when dropped.
struct Mounted<'a> {
    store: &'a Store,
    c: &'a Container,
    path: PathBuf,
}

impl<'a> Mounted<'a> {
    fn new(store: &'a Store, c: &'a Container) -> Result<Self> {
        let path = store.mount(c)?;
        Ok(Mounted { store, c, path })
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.store.unmount(self.c) {
            tracing::warn!("unmounting container {}: {e}", self.c.name);
        }
    }
}

impl Store {
    /// `strata cp CONTAINER:SRC DEST`.
    pub fn copy_from_container(
        &self,
        c: &Container,
        src: &[u8],
        dest: &Path,
        follow: bool,
    ) -> Result<CopyReport> {
        let shown = format!("{}:{}", c.name, String::from_utf8_lossy(src));
        let how = Source::parse(src, follow);
        let merged = Mounted::new(self, c)?;
        let found = PathInRoot::resolve(&merged.path, src, how.follow)
            .map_err(archive_err(format!("resolving {shown}")))?
            .ok_or_else(|| not_found(shown.clone()))?;
        how.check(&found, &shown)?;
        let (dir, name) = host_target(dest, found.is_dir(), &how)?;
        stream(&found, &name, &dir, &shown)
    }

    /// `strata cp SRC CONTAINER:DEST`.
    pub fn copy_to_container(
        &self,
        src: &Path,
        c: &Container,
        dest: &[u8],
        follow: bool,
    ) -> Result<CopyReport> {
        let shown_src = src.display().to_string();
        let shown = format!("{}:{}", c.name, String::from_utf8_lossy(dest));
        let raw = src.as_os_str().as_encoded_bytes();
        let how = Source::parse(raw, follow);
        // The host's own root, walked the same way: what the user's path
        // means, held by a handle while it is read.
        let abs = std::path::absolute(src).ctx(|| format!("resolving {shown_src}"))?;
        let found = PathInRoot::resolve(
            Path::new("/"),
            abs.as_os_str().as_encoded_bytes(),
            how.follow,
        )
        .map_err(archive_err(format!("resolving {shown_src}")))?
        .ok_or_else(|| not_found(shown_src.clone()))?;
        how.check(&found, &shown_src)?;
        let merged = Mounted::new(self, c)?;
        let resolve = |p: &[u8]| {
            PathInRoot::resolve(&merged.path, p, true)
                .map_err(archive_err(format!("resolving {shown}")))
        };
        let target = match resolve(dest)? {
            Some(d) if d.is_dir() => {
                let mut p = d.path().to_vec();
                if !how.contents {
                    p.push(b'/');
                    p.extend_from_slice(&how.base);
                }
                p
            }
            Some(_) if found.is_dir() => {
                return Err(invalid(format!(
                    "cannot copy the directory {shown_src} over the file {shown}"
                )))
            }
            Some(d) => d.path().to_vec(),
            None => {
                if dest.ends_with(b"/") && !found.is_dir() {
                    return Err(not_found(format!("the destination directory {shown}")));
                }
                let mut comps = clean_path(dest);
                let last = comps.pop().expect("a missing path is not the root");
                let parent = resolve(&comps.join(&b'/'))?
                    .filter(PathInRoot::is_dir)
                    .ok_or_else(|| not_found(format!("the parent directory of {shown}")))?;
                let mut p = parent.path().to_vec();
                p.push(b'/');
                p.extend_from_slice(&last);
                p
            }
        };
        stream(&found, &target, &merged.path, &shown)
    }
}

/// Where on the host a copy of a `src_dir` (or file) source goes: the
/// directory to apply into and the name it takes there.
fn host_target(dest: &Path, src_dir: bool, how: &Source) -> Result<(PathBuf, Vec<u8>)> {
    let shown = dest.display().to_string();
    match std::fs::metadata(dest) {
        Ok(md) if md.is_dir() => {
            let name = if how.contents {
                Vec::new()
            } else {
                how.base.clone()
            };
            Ok((dest.to_path_buf(), name))
        }
        Ok(_) if src_dir => Err(invalid(format!(
            "cannot copy a directory over the file {shown}"
        ))),
        Ok(_) => split_dest(dest),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dest.as_os_str().as_encoded_bytes().ends_with(b"/") && !src_dir {
                return Err(not_found(format!("the destination directory {shown}")));
            }
            split_dest(dest)
        }
        Err(e) => Err(Error::io(format!("looking up {shown}"), e)),
    }
}

/// A host destination as its parent directory (which must exist) and
/// its name.
fn split_dest(dest: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let shown = dest.display().to_string();
    let name = dest
        .file_name()
        .ok_or_else(|| invalid(format!("{shown} names no file")))?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(not_found(format!("the parent directory of {shown}")));
    }
    Ok((parent, name.as_encoded_bytes().to_vec()))
}

/// Writes `src` as a tar named `name` and applies it to `dir`, through a
/// pipe: nothing is held whole.
pub(crate) fn stream(src: &PathInRoot, name: &[u8], dir: &Path, shown: &str) -> Result<CopyReport> {
    let (reader, writer) = std::io::pipe().ctx(|| "making a pipe".into())?;
    std::thread::scope(|s| {
        let tar = s.spawn(move || {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, writer);
            let r = src.write_tar(name, &mut w).map(|_| ());
            let flushed = w.flush();
            r.map_err(archive_err(format!("reading {shown}")))
                .and_then(|()| flushed.ctx(|| format!("copying {shown}")))
        });
        let applied = apply(reader, dir, &ApplyOptions::default())
            .map_err(archive_err(format!("writing {shown}")));
        let written = tar.join().expect("the tar thread does not panic");
        // A failed read explains the apply error it caused: report it first.
        written?;
        let report = applied?;
        Ok(CopyReport {
            entries: report.entries,
            size: report.size,
        })
    })
}
