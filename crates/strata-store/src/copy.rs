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
//!
//! A path under one of the container's mounts (the longest destination
//! that is a prefix of it, component by component) is the mount's, as
//! with Docker and Podman: it is read from and written into the volume's
//! `_data` or the bound host path, never the container's read-write layer
//! (where a running container would not see it and `commit` would take
//! it). The rest of the path is resolved inside that directory as if it
//! were `/`: a symlink in a volume never leads out of it. A read-only
//! mount refuses a copy into it. A plugin's volume is reachable only
//! while its plugin says where it is mounted. A symlink in the container's
//! own file system (resolved inside it) that leads into a mount leads
//! into the mount, as it does in the running container.

use std::path::{Path, PathBuf};

use strata_archive::{clean_path, PathInRoot};
use strata_volume::local::{self, Local};
use strata_volume::VolumeDriver;

use crate::container::Container;
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::links::{resolve_links, Step};
use crate::mount::{Mount, MountKind};
use crate::stream::{archive_err, stream, CopyReport};
use crate::Store;

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

/// The mount of `mounts` whose destination is the longest prefix of the
/// container path `path`, component by component, and the rest of the
/// path below it (a trailing `/` kept).
fn mount_for<'m>(mounts: &'m [Mount], path: &[u8]) -> Option<(&'m Mount, Vec<u8>)> {
    let comps = clean_path(path);
    let (m, len) = mounts
        .iter()
        .map(|m| (m, clean_path(m.destination.as_bytes())))
        .filter(|(_, d)| !d.is_empty() && comps.starts_with(d))
        .max_by_key(|(_, d)| d.len())
        .map(|(m, d)| (m, d.len()))?;
    let mut rest = comps[len..].join(&b'/');
    if path.ends_with(b"/") || path.ends_with(b"/.") {
        rest.extend_from_slice(if path.ends_with(b"/") { b"/" } else { b"/." });
    }
    Some((m, rest))
}

/// `path` with the symlinks of the container's own file system on the
/// way resolved inside `merged` (as [`PathInRoot`] resolves them), up to
/// the first mount it enters: the container path it means, for
/// [`mount_for`] (`/link/f` with `/link -> /vol` is `/vol/f`). The last
/// component is followed only with `follow`; a trailing `/` or `/.` is
/// kept.
fn through_links(
    merged: &Path,
    mounts: &[Mount],
    path: &[u8],
    follow: bool,
) -> strata_archive::Result<Vec<u8>> {
    let resolved = resolve_links(clean_path(path), |done, last| {
        let here = done.join(&b'/');
        if mount_for(mounts, &here).is_some() || (last && !follow) {
            return Ok(Step::Stop);
        }
        // Missing, or not a symlink: nothing to substitute here.
        Ok(PathInRoot::resolve(merged, &here, false)?
            .map(|found| found.link_target())
            .transpose()?
            .flatten()
            .map_or(Step::On, Step::Link))
    })?;
    let Some(done) = resolved else {
        // What the kernel says: ELOOP.
        return Ok(path.to_vec());
    };
    let mut out = b"/".to_vec();
    out.extend(done.join(&b'/'));
    if path.ends_with(b"/") {
        out.push(b'/');
    } else if path.ends_with(b"/.") {
        out.extend_from_slice(b"/.");
    }
    Ok(out)
}

/// A local volume mounted on its `_data` (`-o type=... device=...`) for
/// the length of a copy; unmounted when dropped.
struct VolumeMounted {
    local: Local,
    name: String,
    caller: String,
}

impl Drop for VolumeMounted {
    fn drop(&mut self) {
        if let Err(e) = self.local.unmount(&self.name, &self.caller) {
            tracing::warn!("unmounting volume {}: {e}", self.name);
        }
    }
}

/// Keeps what a copy reads or writes available until dropped.
enum Hold<'a> {
    Container { _merged: Mounted<'a> },
    Volume { _mounted: VolumeMounted },
    Nothing,
}

/// Where a container path's content is on the host: a directory taken as
/// `/` and the path inside it.
struct Place<'a> {
    root: PathBuf,
    path: Vec<u8>,
    /// The read-only mount the path is under (`:ro`).
    read_only: Option<String>,
    /// In the container's own root file system, under no mount.
    rootfs: bool,
    _hold: Hold<'a>,
}

impl Store {
    /// Finds where `path` of `c` is: in a mount of `c`'s, or in its
    /// merged view (mounted while the place is held).
    fn place<'a>(&'a self, c: &'a Container, path: &[u8], follow: bool) -> Result<Place<'a>> {
        let merged = Mounted::new(self, c)?;
        let shown = format!("{}:{}", c.name, String::from_utf8_lossy(path));
        // A path that leads into no mount is resolved in the merged view
        // as it is given.
        let meant = if c.mounts.is_empty() {
            path.to_vec()
        } else {
            through_links(&merged.path, &c.mounts, path, follow)
                .map_err(archive_err(format!("resolving {shown}")))?
        };
        // A tmpfs is the running container's alone: nothing on the host
        // shows it (Docker's cp cannot reach one either).
        if let Some(t) = c
            .config
            .host_config
            .tmpfs
            .iter()
            .map(|t| t.split_once(':').map_or(t.as_str(), |(p, _)| p))
            .find(|t| is_under(&meant, t.as_bytes()))
        {
            return Err(invalid(format!(
                "{shown} is on the container's tmpfs at {t}, which cp cannot reach"
            )));
        }
        let Some((m, rest)) = mount_for(&c.mounts, &meant) else {
            return Ok(Place {
                root: merged.path.clone(),
                path: path.to_vec(),
                read_only: None,
                rootfs: true,
                _hold: Hold::Container { _merged: merged },
            });
        };
        drop(merged);
        let read_only = (!m.rw).then(|| m.destination.clone());
        let (dir, hold) = self.mount_dir(c, m)?;
        // A bound file: its directory is the root, and only its name is
        // reachable.
        if m.kind == MountKind::Bind && !dir.is_dir() {
            // The file the bind mounted: a symlink at the host path was
            // followed when it was mounted, so it is followed here too
            // (never replaced by the copy).
            let dir = std::fs::canonicalize(&dir)
                .ctx(|| format!("resolving the bound file {}", dir.display()))?;
            let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
                return Err(invalid(format!(
                    "host path {} names no file",
                    dir.display()
                )));
            };
            if !clean_path(&rest).is_empty() {
                return Err(not_found(format!(
                    "{}:{} ({} is a file)",
                    c.name,
                    String::from_utf8_lossy(path),
                    m.destination
                )));
            }
            return Ok(Place {
                root: parent.to_path_buf(),
                path: name.as_encoded_bytes().to_vec(),
                read_only,
                rootfs: false,
                _hold: hold,
            });
        }
        Ok(Place {
            root: dir,
            path: rest,
            read_only,
            rootfs: false,
            _hold: hold,
        })
    }

    /// The host directory of mount `m`: the bound path, a local volume's
    /// `_data` (mounted for the copy when the volume has a `type`), or
    /// where a plugin says its volume is mounted.
    fn mount_dir(&self, c: &Container, m: &Mount) -> Result<(PathBuf, Hold<'static>)> {
        let name = match (m.kind, m.name.as_deref()) {
            (MountKind::Bind, _) => return Ok((m.source.clone(), Hold::Nothing)),
            (MountKind::Volume, Some(name)) => name,
            // A volume is found by its name, never by a path on record.
            (MountKind::Volume, None) => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "container {}: the volume at {} has no name",
                        c.name, m.destination
                    ),
                ))
            }
        };
        let local = self.volumes.local()?;
        let meta = local.meta(name)?;
        if meta.driver == local::DRIVER {
            if local::mount_options(&meta.options).is_none() {
                return Ok((local.data_path(name), Hold::Nothing));
            }
            let dir = local.mount(name, &c.id)?;
            let held = VolumeMounted {
                local,
                name: name.to_owned(),
                caller: c.id.to_string(),
            };
            return Ok((dir, Hold::Volume { _mounted: held }));
        }
        let plugin = self.volumes.plugin_driver(&meta.driver)?;
        match plugin.path(name)? {
            Some(p) if !p.as_os_str().is_empty() && p.is_dir() => Ok((p, Hold::Nothing)),
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "volume {name} at {} is not mounted by its driver {}: \
                     its files can be copied only while the container runs",
                    m.destination, meta.driver
                ),
            )),
        }
    }

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
        let place = self.place(c, src, how.follow)?;
        let found = PathInRoot::resolve(&place.root, &place.path, how.follow)
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
        let place = self.place(c, dest, true)?;
        if place.rootfs && c.config.host_config.read_only_rootfs {
            // Docker's words.
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("cannot copy to {shown}: container rootfs is marked read-only"),
            ));
        }
        if let Some(at) = &place.read_only {
            // Docker's words.
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("cannot copy to {shown}: mounted volume is marked read-only ({at})"),
            ));
        }
        let dest = place.path.as_slice();
        let resolve = |p: &[u8]| {
            PathInRoot::resolve(&place.root, p, true)
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
        stream(&found, &target, &place.root, &shown)
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

/// Whether the container path `path` is `dir` or below it, component by
/// component.
fn is_under(path: &[u8], dir: &[u8]) -> bool {
    clean_path(path).starts_with(&clean_path(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(destination: &str) -> Mount {
        Mount {
            kind: MountKind::Volume,
            name: Some("v".into()),
            source: PathBuf::new(),
            destination: destination.into(),
            driver: Some("local".into()),
            mode: String::new(),
            rw: true,
        }
    }

    #[test]
    fn the_longest_mount_above_a_path_holds_it() {
        let mounts = [mount("/vol"), mount("/vol/sub"), mount("/a/b")];
        let table: &[(&str, Option<(&str, &str)>)] = &[
            ("/vol", Some(("/vol", ""))),
            ("/vol/", Some(("/vol", "/"))),
            ("/vol/.", Some(("/vol", "/."))),
            ("/vol/f", Some(("/vol", "f"))),
            ("//vol/./x/../f", Some(("/vol", "f"))),
            ("/vol/sub", Some(("/vol/sub", ""))),
            ("/vol/sub/deep/f", Some(("/vol/sub", "deep/f"))),
            ("/vol/subx/f", Some(("/vol", "subx/f"))),
            ("/volx", None),
            ("/vo", None),
            ("/a", None),
            ("/a/b/c/", Some(("/a/b", "c/"))),
            ("/vol/../etc/passwd", None),
            ("/", None),
            ("", None),
        ];
        for (path, want) in table {
            let got = mount_for(&mounts, path.as_bytes())
                .map(|(m, rest)| (m.destination.clone(), String::from_utf8(rest).unwrap()));
            let want = want.map(|(d, r)| (d.to_owned(), r.to_owned()));
            assert_eq!(got, want, "{path:?}");
        }
    }
}
