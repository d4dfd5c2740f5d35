//! What a path in the container will be once the runtime has made its
//! mounts: the container's root file system with each volume and bind
//! over it, looked at from the host before the container exists (for
//! `docker run`'s 126 and 127, which crun and runc cannot give: both exit
//! 1 whatever went wrong).
//!
//! The walk is the kernel's, done by hand: component by component, the
//! longest mount destination that is a prefix of the path so far says
//! which directory it is in (the mount's source, or the root file
//! system), each component is looked at without following it, and a
//! symlink's target is walked again from the container's `/` (absolute)
//! or from its directory, `..` stopping at `/`. A directory missing from
//! the root on the way to a mount point is one the runtime will make. Nothing is followed on
//! the host: every open is relative to a directory handle and refuses
//! symlinks, so a hostile image reads nothing outside its root or its
//! mounts.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use strata_store::Mount;
use strata_sys::fs as sys;
use strata_sys::Errno;

/// Linux's own limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

/// A node found at the end of a walk: its mode.
pub(crate) type Mode = u32;

/// What one component is, not followed.
enum Node {
    Missing,
    Link(Vec<u8>),
    Other(Mode),
}

/// The mode of what `path` (absolute in the container) names, symlinks
/// followed, or `None` when nothing is there.
pub(crate) fn mode_in_container(
    rootfs: &Path,
    mounts: &[Mount],
    path: &Path,
) -> io::Result<Option<Mode>> {
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut todo = components(path.as_os_str().as_encoded_bytes());
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(c);
        match node(rootfs, mounts, &done)? {
            // The runtime makes the directories a mount point needs.
            Node::Missing if mounts.iter().any(|m| is_below(&done, &m.destination)) => {}
            Node::Missing => return Ok(None),
            Node::Other(_) => {}
            Node::Link(target) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(Errno::LOOP.raw_os_error()));
                }
                done.pop();
                if target.first() == Some(&b'/') {
                    done.clear();
                }
                todo.extend(components(&target));
            }
        }
    }
    match node(rootfs, mounts, &done)? {
        Node::Other(m) => Ok(Some(m)),
        Node::Missing if mounts.iter().any(|m| is_below(&done, &m.destination)) => {
            Ok(Some(0o040755))
        }
        _ => Ok(None),
    }
}

/// Whether `dir` is a directory above `destination`.
fn is_below(dir: &[Vec<u8>], destination: &str) -> bool {
    let d = destination_components(destination);
    d.len() > dir.len() && d.starts_with(dir)
}

fn destination_components(destination: &str) -> Vec<Vec<u8>> {
    destination
        .split('/')
        .filter(|c| !c.is_empty())
        .map(|c| c.as_bytes().to_vec())
        .collect()
}

/// `p`'s components, last first (to be popped in order).
fn components(p: &[u8]) -> Vec<Vec<u8>> {
    p.split(|b| *b == b'/').rev().map(<[u8]>::to_vec).collect()
}

fn sys_mode(p: &Path) -> io::Result<Option<Mode>> {
    match std::fs::metadata(p) {
        Ok(md) => Ok(Some(md.mode())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `done` (a container path with no symlink in it) is: in the
/// mount with the longest destination above it, or in the root.
fn node(rootfs: &Path, mounts: &[Mount], done: &[Vec<u8>]) -> io::Result<Node> {
    let (root, rest) = match mounts
        .iter()
        .map(|m| (m, destination_components(&m.destination)))
        .filter(|(_, d)| !d.is_empty() && done.starts_with(d))
        .max_by_key(|(_, d)| d.len())
    {
        Some((m, d)) => (m.source.as_path(), &done[d.len()..]),
        None => (rootfs, done),
    };
    let Some((last, parents)) = rest.split_last() else {
        // A mount's source, as the runtime bound it.
        return Ok(match sys_mode(root)? {
            Some(m) => Node::Other(m),
            None => Node::Missing,
        });
    };
    let mut dir = sys::open_dir(root)?;
    for p in parents {
        // Every component here was walked already: none is a symlink,
        // but one may have become one since, or a file.
        dir = match sys::open_dir_at(dir.as_fd(), sys::os(p)) {
            Ok(d) => d,
            Err(e)
                if [Errno::NOENT, Errno::NOTDIR, Errno::LOOP]
                    .iter()
                    .any(|n| e.raw_os_error() == Some(n.raw_os_error())) =>
            {
                return Ok(Node::Missing)
            }
            Err(e) => return Err(e),
        };
    }
    let name = sys::os(last);
    match sys::lstat_at(dir.as_fd(), name)? {
        None => Ok(Node::Missing),
        Some(st) if st.st_mode & 0o170000 == 0o120000 => {
            Ok(Node::Link(sys::readlink_at(dir.as_fd(), name)?))
        }
        Some(st) => Ok(Node::Other(st.st_mode)),
    }
}
