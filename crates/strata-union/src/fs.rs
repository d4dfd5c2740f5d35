//! The union as a FUSE file system: the node helpers every request
//! shares (resolution, copy-up, placing new entries) and the
//! [`fuser::Filesystem`] implementation in `ops`.

// `Stat`'s field types differ between architectures: the conversions
// that are no-ops here are not everywhere.
#![allow(clippy::useless_conversion)]

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, INodeNo};
use strata_sys::{fs, FileType, Stat};

use crate::copyup::{copy_meta, copy_node, Work};
use crate::error::{Error, Result};
use crate::layers::{is_dir, Found, Layer, Markers, WH_ORPH};
use crate::options::{Options, WhiteoutFormat};
use crate::table::{Node, Table, ROOT};

/// How long the kernel may keep entries and attributes. Every change to
/// the union goes through this process and the kernel drops what each
/// request changes, so a cache only goes stale if someone writes to the
/// branches behind the union's back (unsupported, as with overlayfs).
pub(crate) const TTL: Duration = Duration::from_secs(1);

/// The longest name Linux allows in a directory.
const NAME_MAX: usize = 255;

/// The only writable branch, when there is one.
pub(crate) const UPPER: usize = 0;

pub(crate) type R<T> = std::result::Result<T, Errno>;

/// One entry of a directory handle's merged listing.
pub(crate) struct DirEnt {
    pub name: Vec<u8>,
    pub kind: FileType,
    pub ino: u64,
}

pub(crate) enum Handle {
    File {
        file: Arc<File>,
        passthrough: bool,
    },
    /// A directory's merged listing, built on `opendir`; `fresh` until it
    /// is first read, so that a later read from offset 0 (`rewinddir`)
    /// builds it again.
    Dir {
        entries: Arc<Vec<DirEnt>>,
        fresh: bool,
    },
}

pub(crate) struct Union {
    pub markers: Markers,
    /// The branch roots, topmost first.
    pub roots: Vec<Layer>,
    pub writable: bool,
    pub work: Option<Work>,
    pub table: RwLock<Table>,
    /// Namespace lock: lookups and listings share it, every change to
    /// the tree (create, remove, rename, copy-up) holds it alone, so a
    /// lookup never sees a copy-up half done nor records a stale layer.
    pub ns: RwLock<()>,
    pub handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    /// The kernel took FUSE passthrough at `init`.
    pub passthrough: bool,
    /// Held while choosing and registering a node's backing file, so that
    /// two opens of one inode never register two.
    pub backing_lock: Mutex<()>,
}

pub(crate) fn errno_of(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

pub(crate) fn io_err(e: io::Error) -> Errno {
    errno_of(&e)
}

/// A name from a request: `ENAMETOOLONG` past `NAME_MAX`.
pub(crate) fn name_bytes(name: &std::ffi::OsStr) -> R<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    let b = name.as_bytes();
    if b.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(b)
}

pub(crate) fn key_of(st: &Stat) -> (u64, u64) {
    (u64::from(st.st_dev), u64::from(st.st_ino))
}

fn system_time(sec: i64, nsec: u64) -> SystemTime {
    let nsec = u32::try_from(nsec).unwrap_or(0);
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec.unsigned_abs(), nsec)
    } else {
        UNIX_EPOCH - Duration::new(sec.unsigned_abs(), 0) + Duration::new(0, nsec)
    }
}

pub(crate) fn fuse_kind(kind: FileType) -> fuser::FileType {
    match kind {
        FileType::Directory => fuser::FileType::Directory,
        FileType::Symlink => fuser::FileType::Symlink,
        FileType::Fifo => fuser::FileType::NamedPipe,
        FileType::Socket => fuser::FileType::Socket,
        FileType::CharacterDevice => fuser::FileType::CharDevice,
        FileType::BlockDevice => fuser::FileType::BlockDevice,
        _ => fuser::FileType::RegularFile,
    }
}

/// The attributes the union reports: the backing entry's, with the
/// union's inode number; `nlink` 0 once no name refers to the file; 1 for
/// a directory merged from several branches (as overlayfs does: its real
/// link count is unknown).
pub(crate) fn attr_of(ino: u64, st: &Stat, node: Option<&Node>) -> FileAttr {
    let kind = FileType::from_raw_mode(st.st_mode);
    let mut nlink = u32::try_from(st.st_nlink).unwrap_or(u32::MAX);
    if let Some(n) = node {
        if n.unlinked {
            nlink = 0;
        } else if kind == FileType::Directory && n.layers.len() > 1 {
            nlink = 1;
        }
    }
    FileAttr {
        ino: INodeNo(ino),
        size: u64::try_from(st.st_size).unwrap_or(0),
        blocks: u64::try_from(st.st_blocks).unwrap_or(0),
        atime: system_time(i64::from(st.st_atime), u64::from(st.st_atime_nsec)),
        mtime: system_time(i64::from(st.st_mtime), u64::from(st.st_mtime_nsec)),
        ctime: system_time(i64::from(st.st_ctime), u64::from(st.st_ctime_nsec)),
        crtime: UNIX_EPOCH,
        kind: fuse_kind(kind),
        perm: (st.st_mode & 0o7777) as u16,
        nlink,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: u32::try_from(st.st_rdev).unwrap_or(0),
        blksize: u32::try_from(st.st_blksize).unwrap_or(4096),
        flags: 0,
    }
}

impl Union {
    /// Opens the branches and the work dir.
    pub fn new(opts: &Options) -> Result<Union> {
        opts.validate()?;
        let markers = Markers::new(opts.whiteout, opts.userxattr || !may_use_trusted_xattrs());
        let mut roots = Vec::with_capacity(opts.branches.len());
        for (i, b) in opts.branches.iter().enumerate() {
            let dir =
                fs::open_dir(&b.path).map_err(|e| Error::io(format!("branch {:?}", b.path), e))?;
            let st =
                fs::fstat(dir.as_fd()).map_err(|e| Error::io(format!("branch {:?}", b.path), e))?;
            if !is_dir(&st) {
                return Err(Error::invalid(format!(
                    "branch {:?} is not a directory",
                    b.path
                )));
            }
            roots.push(Layer {
                branch: i,
                fd: Arc::new(dir),
            });
        }
        let writable = opts.upper().is_some();
        let work = if writable {
            Some(open_work(opts, &roots[UPPER])?)
        } else {
            None
        };
        // The root merges every branch down to the first opaque one.
        let mut root_layers = Vec::new();
        for r in &roots {
            root_layers.push(r.clone());
            if markers.is_opaque(r.fd()).unwrap_or(false) {
                break;
            }
        }
        let root = Node::new(ROOT, Vec::new(), FileType::Directory, root_layers);
        Ok(Union {
            markers,
            roots,
            writable,
            work,
            table: RwLock::new(Table::new(root)),
            ns: RwLock::new(()),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            // What the options ask for; `init` keeps it if the kernel has it.
            passthrough: opts.passthrough,
            backing_lock: Mutex::new(()),
        })
    }

    pub fn table(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn read_ns(&self) -> RwLockReadGuard<'_, ()> {
        self.ns.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The namespace lock for a change; `EROFS` on a read-only union.
    pub fn write_ns(&self) -> R<RwLockWriteGuard<'_, ()>> {
        if !self.writable {
            return Err(Errno::EROFS);
        }
        Ok(self.ns.write().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn handles(&self) -> MutexGuard<'_, HashMap<u64, Handle>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, h);
        fh
    }

    pub fn work(&self) -> R<&Work> {
        self.work.as_ref().ok_or(Errno::EROFS)
    }

    /// A snapshot of node `ino`, its layers resolved again first if an
    /// ancestor was moved.
    pub fn node(&self, ino: u64) -> R<Node> {
        let node = self
            .table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .nodes
            .get(&ino)
            .cloned()
            .ok_or(Errno::ENOENT)?;
        if !node.stale {
            return Ok(node);
        }
        let parent = self.node(node.parent)?;
        let found = self
            .markers
            .resolve(&parent.layers, &node.name)
            .map_err(io_err)?;
        let mut t = self.table();
        let n = t.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        n.stale = false;
        match found {
            Some(f) => n.layers = f.layers,
            None => n.unlinked = true,
        }
        let n = n.clone();
        if let Some(l) = n.layers.first() {
            if let Ok(st) = fs::fstat(l.fd()) {
                t.bind(key_of(&st), ino);
            }
        }
        Ok(n)
    }

    /// A directory node's snapshot; `ENOTDIR` for anything else.
    pub fn dir_node(&self, ino: u64) -> R<Node> {
        let n = self.node(ino)?;
        if n.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if n.unlinked {
            return Err(Errno::ENOENT);
        }
        Ok(n)
    }

    /// Resolves `name` in directory `parent`.
    pub fn resolve(&self, parent: &Node, name: &[u8]) -> R<Option<Found>> {
        if self.markers.is_reserved(name) {
            return Ok(None);
        }
        self.markers.resolve(&parent.layers, name).map_err(io_err)
    }

    /// Records `found` as `parent/name` and counts a kernel reference;
    /// returns its number. A node already copied up keeps its upper
    /// entry when another name (a lower hard link) finds the lower one.
    pub fn register(&self, parent: u64, name: &[u8], found: Found) -> u64 {
        let key = key_of(&found.stat);
        let mut t = self.table();
        let ino = t.ino_for(key);
        match t.nodes.get_mut(&ino) {
            Some(n) => {
                let keep_upper = self.writable
                    && !is_dir(&found.stat)
                    && n.layers.first().is_some_and(|l| l.branch == UPPER)
                    && found.layers[0].branch != UPPER;
                n.kind = found.kind();
                if !keep_upper {
                    n.layers = found.layers;
                }
                n.parent = parent;
                n.name = name.to_vec();
                n.nlookup += 1;
                n.unlinked = false;
                n.stale = false;
            }
            None => {
                let node = Node::new(parent, name.to_vec(), found.kind(), found.layers);
                t.nodes.insert(ino, node);
            }
        }
        ino
    }

    /// The attributes of a node.
    pub fn attr(&self, ino: u64) -> R<FileAttr> {
        let node = self.node(ino)?;
        let st = fs::fstat(node.layers[0].fd()).map_err(io_err)?;
        Ok(attr_of(ino, &st, Some(&node)))
    }

    /// Whether a branch below the writable one shows `name` in `parent`:
    /// removing or moving the upper entry must then leave a whiteout.
    pub fn lower_has(&self, parent: &Node, name: &[u8]) -> R<bool> {
        let lower: Vec<Layer> = parent
            .layers
            .iter()
            .filter(|l| !(self.writable && l.branch == UPPER))
            .cloned()
            .collect();
        Ok(self
            .markers
            .resolve(&lower, name)
            .map_err(io_err)?
            .is_some())
    }

    /// Copies directory `ino` (and its ancestors, parents first) up to the
    /// writable branch; returns its upper handle. Caller holds `ns`.
    pub fn upper_dir(&self, ino: u64) -> R<Arc<OwnedFd>> {
        let node = self.dir_node(ino)?;
        if node.layers[0].branch == UPPER && self.writable {
            return Ok(node.layers[0].fd.clone());
        }
        if ino == ROOT {
            return Err(Errno::EROFS);
        }
        let layer = self.publish_up(
            ino,
            &node,
            |work, tmp, st| {
                fs::mkdir_at(work.fd(), fs::os(tmp), 0o700)?;
                copy_meta(&self.markers, node.layers[0].fd(), st, work.fd(), tmp)
            },
            |work, tmp| {
                let _ = crate::copyup::remove_tree(work.fd(), tmp);
            },
            // The lower directories still show through the upper one.
            |n, layer| n.layers.insert(0, layer),
        )?;
        Ok(layer.fd)
    }

    /// Copies node `ino` up (data, metadata, xattrs; parents first) unless
    /// it is there already; returns its upper layer. Caller holds `ns`.
    pub fn copy_up(&self, ino: u64) -> R<Layer> {
        let node = self.node(ino)?;
        if node.kind == FileType::Directory {
            let fd = self.upper_dir(ino)?;
            return Ok(Layer { branch: UPPER, fd });
        }
        if node.layers[0].branch == UPPER && self.writable {
            return Ok(node.layers[0].clone());
        }
        if node.unlinked {
            return Err(Errno::ENOENT);
        }
        self.publish_up(
            ino,
            &node,
            |work, tmp, st| copy_node(&self.markers, &node.layers[0], st, work.fd(), tmp),
            |work, tmp| {
                let _ = fs::unlink_at(work.fd(), fs::os(tmp));
            },
            |n, layer| n.layers = vec![layer],
        )
    }

    /// The end of a copy-up of node `ino`: `stage` makes the copy under a
    /// temporary name in the work dir (given the dir, the name and the
    /// node's `fstat`), which then moves to the node's name in its
    /// parent's upper directory (`discard` removes it when either step
    /// fails); the upper inode is bound to `ino` and `add` puts its layer
    /// into the node. Caller holds `ns`.
    fn publish_up(
        &self,
        ino: u64,
        node: &Node,
        stage: impl FnOnce(&Work, &[u8], &Stat) -> io::Result<()>,
        discard: impl FnOnce(&Work, &[u8]),
        add: impl FnOnce(&mut Node, Layer),
    ) -> R<Layer> {
        let parent_fd = self.upper_dir(node.parent)?;
        let work = self.work()?;
        let tmp = work.temp_name();
        let st = fs::fstat(node.layers[0].fd()).map_err(io_err)?;
        let staged = stage(work, &tmp, &st).and_then(|()| {
            fs::rename_at(
                work.fd(),
                fs::os(&tmp),
                parent_fd.as_fd(),
                fs::os(&node.name),
                libc::RENAME_NOREPLACE,
            )
        });
        if let Err(e) = staged {
            discard(work, &tmp);
            return Err(io_err(e));
        }
        let fd = Arc::new(fs::open_path_at(parent_fd.as_fd(), fs::os(&node.name)).map_err(io_err)?);
        let ust = fs::fstat(fd.as_fd()).map_err(io_err)?;
        let layer = Layer { branch: UPPER, fd };
        let mut t = self.table();
        t.bind(key_of(&ust), ino);
        if let Some(n) = t.nodes.get_mut(&ino) {
            add(n, layer.clone());
        }
        Ok(layer)
    }

    /// Moves the staged `tmp` (in the work dir) to `dir/name` in the
    /// writable branch, over a whiteout or an empty (merged-empty)
    /// directory if one is there, and drops an aufs whiteout of `name`.
    pub fn install(&self, tmp: &[u8], dir: BorrowedFd<'_>, name: &[u8], new_is_dir: bool) -> R<()> {
        let work = self.work()?;
        let existing = fs::lstat_at(dir, fs::os(name)).map_err(io_err)?;
        let r = match existing {
            None => fs::rename_at(
                work.fd(),
                fs::os(tmp),
                dir,
                fs::os(name),
                libc::RENAME_NOREPLACE,
            ),
            Some(st) if is_dir(&st) => self
                .remove_upper(dir, name)
                .map_err(|e| io::Error::from_raw_os_error(i32::from(e)))
                .and_then(|()| {
                    fs::rename_at(
                        work.fd(),
                        fs::os(tmp),
                        dir,
                        fs::os(name),
                        libc::RENAME_NOREPLACE,
                    )
                }),
            Some(_) if new_is_dir => fs::rename_at(
                work.fd(),
                fs::os(tmp),
                dir,
                fs::os(name),
                libc::RENAME_EXCHANGE,
            )
            .and_then(|()| fs::unlink_at(work.fd(), fs::os(tmp))),
            Some(_) => fs::rename_at(work.fd(), fs::os(tmp), dir, fs::os(name), 0),
        };
        if let Err(e) = r {
            let _ = crate::copyup::remove_tree(work.fd(), tmp);
            return Err(io_err(e));
        }
        self.markers.remove_aufs_whiteout(dir, name).map_err(io_err)
    }

    /// Chooses whether an open of node `ino` on `layer` (opened as `file`)
    /// is passed through to the kernel, and with which backing id; counts
    /// the open either way. The kernel wants every open of an inode to
    /// pass through the same backing file, or none to: so only files that
    /// will never be copied up from under an open pass through (those on
    /// the writable branch, and every file of a read-only union), never
    /// while the inode has opens served here, and always with the backing
    /// file its other passthrough opens use.
    pub fn backing_for(
        &self,
        ino: u64,
        layer: &Layer,
        file: &File,
        register: impl FnOnce(&File) -> io::Result<fuser::BackingId>,
    ) -> Option<Arc<fuser::BackingId>> {
        let _guard = self.backing_lock.lock().unwrap_or_else(|p| p.into_inner());
        let eligible = self.passthrough && (!self.writable || layer.branch == UPPER);
        let key = fs::fstat(file.as_fd()).ok().map(|st| key_of(&st));
        let chosen = {
            let t = self.table();
            let node = t.nodes.get(&ino)?;
            match (&node.backing, key) {
                _ if !eligible || node.open > node.passthrough_opens => None,
                (Some(b), Some(k)) if b.key == k => Some(Some(b.id.clone())),
                (Some(_), _) | (None, None) => None,
                (None, Some(_)) => Some(None),
            }
        };
        let id = match chosen {
            None => None,
            Some(Some(id)) => Some(id),
            Some(None) => register(file).ok().map(Arc::new),
        };
        let mut t = self.table();
        let node = t.nodes.get_mut(&ino)?;
        node.open += 1;
        if let (Some(id), Some(key)) = (&id, key) {
            node.passthrough_opens += 1;
            node.backing = Some(crate::table::Backing {
                id: id.clone(),
                key,
            });
        }
        id
    }

    /// Removes `dir/name` (recursively) from the writable branch and
    /// forgets the identities of the inodes that frees.
    pub fn remove_upper(&self, dir: BorrowedFd<'_>, name: &[u8]) -> R<()> {
        let mut freed = Vec::new();
        let r = crate::copyup::remove_tree_keys(dir, name, &mut freed);
        let mut t = self.table();
        for k in freed {
            t.unbind(k);
        }
        r.map_err(io_err)
    }

    /// Gives `parent/name` (which resolves to `found`) its own entry in
    /// the writable branch: copied up, or, for a lower hard link of a file
    /// already copied up through another name, linked to that copy.
    /// Returns its number. Caller holds `ns`.
    pub fn copy_up_name(&self, parent: u64, name: &[u8], found: Found) -> R<u64> {
        let in_upper = self.writable && found.layers[0].branch == UPPER;
        let ino = self.register(parent, name, found);
        let r = (|| {
            if in_upper {
                return Ok(());
            }
            let node = self.node(ino)?;
            if self.writable && node.layers[0].branch == UPPER {
                let pfd = self.upper_dir(parent)?;
                let work = self.work()?;
                let tmp = work.temp_name();
                fs::link_node(node.layers[0].fd(), work.fd(), fs::os(&tmp)).map_err(io_err)?;
                self.install(&tmp, pfd.as_fd(), name, false)
            } else {
                self.copy_up(ino).map(|_| ())
            }
        })();
        let mut t = self.table();
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.nlookup = n.nlookup.saturating_sub(1);
        }
        t.maybe_drop(ino);
        r.map(|()| ino)
    }

    /// Leaves a whiteout for `name` in the upper directory `dir`, where the
    /// name's upper entry (if any) is already gone.
    pub fn whiteout(&self, dir: BorrowedFd<'_>, name: &[u8]) -> R<()> {
        self.check_whiteout_name(name)?;
        self.markers.write_whiteout(dir, name).map_err(io_err)
    }

    /// `ENAMETOOLONG` when `name` cannot have a whiteout: an aufs
    /// whiteout adds 4 bytes (`.wh.`), so a lower name of more than 251
    /// bytes cannot be deleted in aufs format. Checked before anything is
    /// changed.
    pub fn check_whiteout_name(&self, name: &[u8]) -> R<()> {
        if self.markers.format == WhiteoutFormat::Aufs && name.len() + 4 > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(())
    }
}

/// Whether this process may write (and read) `trusted.*` xattrs, which
/// take `CAP_SYS_ADMIN` in the initial user namespace: root outside a user
/// namespace. Without it the overlay format's markers are `user.overlay.*`
/// (kernel overlayfs's `userxattr`), whether or not the options asked:
/// `trusted.overlay.opaque` could be neither written (a directory made
/// over a deleted one would fail with `EPERM`) nor read.
fn may_use_trusted_xattrs() -> bool {
    fs::euid() == 0 && !strata_sys::mount::in_user_namespace()
}

fn open_work(opts: &Options, upper: &Layer) -> Result<Work> {
    match &opts.workdir {
        Some(w) => {
            let dir = fs::open_dir(w).map_err(|e| Error::io(format!("workdir {w:?}"), e))?;
            let wst = fs::fstat(dir.as_fd()).map_err(|e| Error::io(format!("workdir {w:?}"), e))?;
            let ust = fs::fstat(upper.fd()).map_err(|e| Error::io("writable branch", e))?;
            if wst.st_dev != ust.st_dev {
                return Err(Error::invalid(format!(
                    "workdir {w:?} is not on the writable branch's file system"
                )));
            }
            if w.starts_with(&opts.branches[UPPER].path) || opts.branches[UPPER].path.starts_with(w)
            {
                return Err(Error::invalid(format!(
                    "workdir {w:?} and the writable branch must not contain each other"
                )));
            }
            Work::open(dir.as_fd(), b"work", false)
                .map_err(|e| Error::io(format!("workdir {w:?}/work"), e))
        }
        None => Work::open(upper.fd(), WH_ORPH, true)
            .map_err(|e| Error::io("staging dir .wh..wh.orph in the writable branch", e)),
    }
}
