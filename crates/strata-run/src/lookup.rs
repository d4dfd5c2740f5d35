//! What a path in the container will be once the runtime has made its
//! mounts: the container's root file system with each volume and bind
//! over it, looked at from the host before the container exists (for
//! `docker run`'s 126 and 127, which crun and runc cannot give: both exit
//! 1 whatever went wrong).
//!
//! The walk is the kernel's, done by hand (the symlink walk itself is
//! [`strata_store::links`]'s): component by component, the longest mount
//! destination that is a prefix of the path so far says which directory
//! it is in (the mount's source, or the root file system), each component
//! is looked at without following it, and a symlink's target is walked
//! again from the container's `/` (absolute) or from its directory, `..`
//! stopping at `/`. A directory missing from the root on the way to a
//! mount point is one the runtime will make. Nothing is followed on the
//! host: every open is relative to a directory handle and refuses
//! symlinks, so a hostile image reads nothing outside its root or its
//! mounts.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use strata_store::links::{resolve_links, Step};
use strata_store::Mount;
use strata_sys::fs as sys;
use strata_sys::Errno;

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
    let below_a_mount = |done: &[Vec<u8>]| mounts.iter().any(|m| is_below(done, &m.destination));
    let mut missing = false;
    let components = path.as_os_str().as_encoded_bytes().split(|b| *b == b'/');
    let resolved = resolve_links(components.map(<[u8]>::to_vec).collect(), |done, _| {
        Ok::<_, io::Error>(match node(rootfs, mounts, done)? {
            // The runtime makes the directories a mount point needs.
            Node::Missing if below_a_mount(done) => Step::On,
            Node::Missing => {
                missing = true;
                Step::Stop
            }
            Node::Other(_) => Step::On,
            Node::Link(target) => Step::Link(target),
        })
    })?;
    if missing {
        return Ok(None);
    }
    let Some(done) = resolved else {
        return Err(io::Error::from_raw_os_error(Errno::LOOP.raw_os_error()));
    };
    match node(rootfs, mounts, &done)? {
        Node::Other(m) => Ok(Some(m)),
        Node::Missing if below_a_mount(&done) => Ok(Some(0o040755)),
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::PathBuf;

    use strata_store::MountKind;

    use super::*;

    fn bind(source: &Path, destination: &str) -> Mount {
        Mount {
            kind: MountKind::Bind,
            name: None,
            source: source.to_path_buf(),
            destination: destination.into(),
            driver: None,
            mode: String::new(),
            rw: true,
        }
    }

    /// A root with `/bin/sh`, `/bin/link -> sh`, `/usr/local/bin/tool ->
    /// /opt/tools/tool`, `/up -> ../../..`, `/opt` missing; a host
    /// directory (to bind at `/opt/tools`) with `tool`, `rel -> ../../bin/sh`
    /// and `abs -> /bin/sh`; and, beside them, a host file the walk must
    /// never reach.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let (root, tools) = (t.path().join("root"), t.path().join("tools"));
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        fs::create_dir_all(&tools).unwrap();
        for p in [
            root.join("bin/sh"),
            tools.join("tool"),
            t.path().join("host"),
        ] {
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        symlink("sh", root.join("bin/link")).unwrap();
        symlink("/opt/tools/tool", root.join("usr/local/bin/tool")).unwrap();
        symlink("../../..", root.join("up")).unwrap();
        symlink("../../bin/sh", tools.join("rel")).unwrap();
        symlink("/bin/sh", tools.join("abs")).unwrap();
        symlink(t.path().join("host"), tools.join("host")).unwrap();
        (t, root, tools)
    }

    #[test]
    fn paths_are_walked_through_mounts_as_the_container_sees_them() {
        let (_t, root, tools) = fixture();
        let mounts = [bind(&tools, "/opt/tools")];
        let found = |p: &str| {
            mode_in_container(&root, &mounts, Path::new(p))
                .unwrap()
                .map(|m| m & 0o170000)
        };
        let (file, dir) = (Some(0o100000), Some(0o040000));
        let table = [
            ("/bin/sh", file),
            ("/bin/link", file),
            ("/opt/tools/tool", file),
            // Into the mount through a symlink in the root, and out of
            // it through symlinks in the mount: both inside the container.
            ("/usr/local/bin/tool", file),
            ("/opt/tools/rel", file),
            ("/opt/tools/abs", file),
            ("/opt/tools/../../bin/sh", file),
            ("/up/bin/sh", file),
            // The directories the runtime makes for the mount point.
            ("/opt", dir),
            ("/opt/tools", dir),
            ("/opt/tools/nosuch", None),
            ("/opt/other", None),
            // A symlink to a host path means the container's own path.
            ("/opt/tools/host", None),
            ("/bin/sh/x", None),
        ];
        for (p, want) in table {
            assert_eq!(found(p), want, "{p}");
        }
        // Without the mount, nothing of it is there.
        let none = mode_in_container(&root, &[], Path::new("/opt/tools/tool")).unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn a_symlink_loop_is_an_error() {
        let (_t, root, _) = fixture();
        symlink("loop", root.join("loop")).unwrap();
        assert!(mode_in_container(&root, &[], Path::new("/loop")).is_err());
    }
}
