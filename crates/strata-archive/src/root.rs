//! Resolving paths inside a layer root without ever leaving it.
//!
//! A walk from a handle on the root, one component at a time, every open
//! `O_NOFOLLOW`. Symlinks met on the way are read and resolved *as if the
//! root were `/`* (the semantics of openat2's `RESOLVE_IN_ROOT`, and of
//! containerd's and Docker's extraction): an absolute target restarts at
//! the root and `..` at the root stays at the root. `..` is never handed to
//! the kernel: the walk keeps its own stack of directory handles. However
//! hostile the symlinks, the result is a handle on a directory inside the
//! root. (Breakouts through symlinks in the parent path are the bugs behind
//! CVE-2018-15664, CVE-2019-14271 and CVE-2021-30465.)
//!
//! The walk can also create missing directories (with mode 0755, as tar's
//! implied parents), which a `RESOLVE_IN_ROOT` open cannot do: an entry
//! `var/run/x` under a dangling `var/run -> /run` must land in `run/x`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use strata_sys::{fs, Errno, FileType};

use crate::path::join;
use crate::walk::Walk;

/// Directory handles kept between entries.
const CACHE_MAX: usize = 64;

pub(crate) struct Root {
    fd: Rc<OwnedFd>,
    /// Resolved directories by lexical path. Valid while nothing is
    /// removed from the tree: every removal clears it.
    cache: HashMap<Vec<u8>, Cached>,
}

struct Cached {
    fd: DirHandle,
    /// Where the walk ended, when it followed a symlink to get there.
    resolved: Option<Vec<u8>>,
}

/// A resolved directory.
pub(crate) type DirHandle = Rc<OwnedFd>;

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

impl Root {
    pub fn new(fd: OwnedFd) -> Self {
        Root {
            fd: Rc::new(fd),
            cache: HashMap::new(),
        }
    }

    pub fn handle(&self) -> DirHandle {
        self.fd.clone()
    }

    /// Forgets cached handles: call after anything is removed or replaced.
    pub fn invalidate(&mut self) {
        self.cache.clear();
    }

    /// Resolves the directory `comps` inside the root. Missing
    /// directories are created when `create` is set; otherwise a missing
    /// component gives `Ok(None)`. A component that exists but is not a
    /// directory (after following symlinks in the root) is `ENOTDIR`.
    pub fn dir(&mut self, comps: &[Vec<u8>], create: bool) -> io::Result<Option<DirHandle>> {
        if comps.is_empty() {
            return Ok(Some(self.fd.clone()));
        }
        let key = join(comps);
        if let Some(c) = self.cache.get(&key) {
            return Ok(Some(c.fd.clone()));
        }
        let Some((fd, resolved)) = self.walk(comps, create)? else {
            return Ok(None);
        };
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        let resolved = (resolved != key).then_some(resolved);
        self.cache.insert(
            key,
            Cached {
                fd: fd.clone(),
                resolved,
            },
        );
        Ok(Some(fd))
    }

    /// The path inside the root, with no symlink in it, of the directory
    /// [`Root::dir`] last resolved for `comps`; `None` when it is no longer
    /// cached.
    pub fn resolved(&self, comps: &[Vec<u8>]) -> Option<Vec<u8>> {
        if comps.is_empty() {
            return Some(Vec::new());
        }
        let key = join(comps);
        let c = self.cache.get(&key)?;
        Some(c.resolved.clone().unwrap_or(key))
    }

    /// The directory and the names leading to it from the root.
    fn walk(&self, comps: &[Vec<u8>], create: bool) -> io::Result<Option<(DirHandle, Vec<u8>)>> {
        let mut walk = Walk::new(self.fd.clone(), comps);
        while let Some(c) = walk.next_name() {
            let cur = walk.dir().clone();
            let name = fs::os(&c);
            match fs::open_dir_at(cur.as_fd(), name) {
                Ok(fd) => {
                    walk.enter(Rc::new(fd), c);
                    continue;
                }
                Err(e) if matches!(errno(&e), Some(Errno::NOENT)) => {
                    if !create {
                        return Ok(None);
                    }
                    match fs::mkdir_at(cur.as_fd(), name, 0o755) {
                        Ok(()) => {
                            let fd = fs::open_dir_at(cur.as_fd(), name)?;
                            // Implied parents are 0755 whatever the umask.
                            fs::fchmod(fd.as_fd(), 0o755)?;
                            walk.enter(Rc::new(fd), c);
                        }
                        // Raced with someone: look again.
                        Err(e) if matches!(errno(&e), Some(Errno::EXIST)) => walk.again(c),
                        Err(e) => return Err(e),
                    }
                    continue;
                }
                Err(e) if matches!(errno(&e), Some(Errno::LOOP) | Some(Errno::NOTDIR)) => {}
                Err(e) => return Err(e),
            }
            // Not a directory: a symlink to follow inside the root, or an
            // error.
            let st = fs::lstat_at(cur.as_fd(), name)?
                .ok_or_else(|| io::Error::from_raw_os_error(Errno::NOENT.raw_os_error()))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                return Err(io::Error::from_raw_os_error(Errno::NOTDIR.raw_os_error()));
            }
            let target = fs::readlink_at(cur.as_fd(), name)?;
            walk.follow(&target)
                .map_err(|_| io::Error::from_raw_os_error(Errno::LOOP.raw_os_error()))?;
        }
        let (fd, names) = walk.finish();
        Ok(Some((fd, join(&names))))
    }
}
