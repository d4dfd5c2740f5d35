//! Requests that change the tree: create, mkdir, mknod, symlink, link,
//! unlink, rmdir, rename (with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`).
//! Each holds the namespace lock alone, works in the writable branch with
//! `*at` calls on directory handles, and updates the inode table last.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use fuser::{Errno, FileAttr, RenameFlags, Request};
use strata_sys::{fs, FileType};

use crate::copyup::{copy_tree, remove_tree};
use crate::fs::{attr_of, io_err, key_of, name_bytes, Union, R, UPPER};
use crate::layers::{is_dir, Found};
use crate::node_ops::backing_flags;
use crate::options::WhiteoutFormat;

/// Who a new entry belongs to: the caller, with the group of a set-group-id
/// parent (whose new subdirectories inherit the bit).
struct Owner {
    uid: u32,
    gid: u32,
    setgid_dir: bool,
}

fn owner(req: &Request, parent_attr: &FileAttr) -> Owner {
    let setgid = parent_attr.perm & 0o2000 != 0;
    Owner {
        uid: req.uid(),
        gid: if setgid { parent_attr.gid } else { req.gid() },
        setgid_dir: setgid,
    }
}

/// What a new entry is.
pub(crate) enum Make<'a> {
    File {
        mode: u32,
        flags: i32,
    },
    Dir {
        mode: u32,
    },
    Node {
        kind: FileType,
        mode: u32,
        rdev: u64,
    },
    Symlink {
        target: &'a Path,
    },
}

impl Union {
    /// Creates `parent/name`: staged in the work dir with its owner and
    /// mode, then renamed into place (over a whiteout, which it replaces;
    /// a directory made over one is opaque).
    pub(crate) fn make(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        what: Make<'_>,
    ) -> R<(FileAttr, Option<File>)> {
        let name = name_bytes(name)?;
        let _ns = self.write_ns()?;
        if self.markers.is_reserved(name) {
            return Err(Errno::EPERM);
        }
        self.name_free(parent, name)?;
        let pfd = self.upper_dir(parent)?;
        let p = self.dir_node(parent)?;
        let opaque = self.lower_has(&p, name)?;
        let parent_attr = self.attr(parent)?;
        let who = owner(req, &parent_attr);
        let work = self.work()?;
        let tmp = work.temp_name();
        let w = work.fd();
        let t = fs::os(&tmp);
        let staged = (|| -> std::io::Result<Option<File>> {
            let mut file = None;
            let is_dir = matches!(what, Make::Dir { .. });
            let mode = match &what {
                Make::File { mode, flags } => {
                    let f = fs::create_open_at(w, t, backing_flags(*flags), 0o600)?;
                    file = Some(f);
                    Some(*mode)
                }
                Make::Dir { mode } => {
                    fs::mkdir_at(w, t, 0o700)?;
                    Some(*mode | if who.setgid_dir { 0o2000 } else { 0 })
                }
                Make::Node { kind, mode, rdev } => {
                    fs::mknod_at(w, t, *kind, 0o600, *rdev)?;
                    Some(*mode)
                }
                Make::Symlink { target } => {
                    fs::symlink_at(target.as_os_str(), w, t)?;
                    None
                }
            };
            match fs::lchown_at(w, t, who.uid, who.gid) {
                Err(_) if fs::euid() != 0 => {}
                r => r?,
            }
            let node = fs::open_path_at(w, t)?;
            if let Some(mode) = mode {
                fs::chmod_node(node.as_fd(), mode & 0o7777)?;
            }
            if is_dir && opaque {
                self.markers.mark_opaque(node.as_fd())?;
            }
            Ok(file)
        })();
        let file = match staged {
            Ok(f) => f,
            Err(e) => {
                let _ = remove_tree(w, &tmp);
                return Err(io_err(e));
            }
        };
        self.install(&tmp, pfd.as_fd(), name, matches!(what, Make::Dir { .. }))?;
        let p = self.dir_node(parent)?;
        let found = self.resolve(&p, name)?.ok_or(Errno::EIO)?;
        let st = found.stat;
        {
            // A new file gets a new number, even if the file system reuses
            // the inode of one removed earlier.
            let mut t = self.table();
            let ino = t.alloc();
            t.bind(key_of(&st), ino);
        }
        let ino = self.register(parent, name, found);
        let node = self.node(ino)?;
        Ok((attr_of(ino, &st, Some(&node)), file))
    }

    pub(crate) fn do_unlink(&self, parent: u64, name: &OsStr, dir: bool) -> R<()> {
        let name = name_bytes(name)?;
        let _ns = self.write_ns()?;
        let p = self.dir_node(parent)?;
        let found = self.resolve(&p, name)?.ok_or(Errno::ENOENT)?;
        self.may_replace(dir, &found)?;
        let pfd = self.upper_dir(parent)?;
        let p = self.dir_node(parent)?;
        let whiteout = self.lower_has(&p, name)?;
        if whiteout {
            self.check_whiteout_name(name)?;
        }
        let in_upper = found.layers[0].branch == UPPER;
        if in_upper {
            if dir {
                self.remove_upper(pfd.as_fd(), name)?;
            } else {
                fs::unlink_at(pfd.as_fd(), fs::os(name)).map_err(io_err)?;
            }
        }
        if whiteout {
            self.whiteout(pfd.as_fd(), name)?;
        }
        self.name_removed(&found, in_upper);
        Ok(())
    }

    /// Records that a name resolving to `found` was removed (unlinked,
    /// or replaced by a rename): once no name is left, the node reports
    /// `nlink` 0, and the identity of a freed upper inode is forgotten.
    /// `EEXIST` when directory `parent` shows `name`.
    fn name_free(&self, parent: u64, name: &[u8]) -> R<()> {
        let p = self.dir_node(parent)?;
        match self.resolve(&p, name)? {
            Some(_) => Err(Errno::EEXIST),
            None => Ok(()),
        }
    }

    /// Whether a directory (`dir`) or a non-directory may take the place
    /// of `found`, removing it or being renamed over it: the kinds must
    /// match (`EISDIR`, `ENOTDIR`) and a directory must be empty in the
    /// union (`ENOTEMPTY`).
    fn may_replace(&self, dir: bool, found: &Found) -> R<()> {
        match (dir, is_dir(&found.stat)) {
            (false, true) => Err(Errno::EISDIR),
            (true, false) => Err(Errno::ENOTDIR),
            (true, true) if !self.markers.list(&found.layers).map_err(io_err)?.is_empty() => {
                Err(Errno::ENOTEMPTY)
            }
            _ => Ok(()),
        }
    }

    fn name_removed(&self, found: &Found, in_upper: bool) {
        let key = key_of(&found.stat);
        let gone = if is_dir(&found.stat) {
            true
        } else if in_upper {
            // `found` holds the inode: its link count is the real one.
            fs::fstat(found.layers[0].fd()).map_or(true, |st| st.st_nlink == 0)
        } else {
            found.stat.st_nlink <= 1
        };
        if !gone {
            return;
        }
        let mut t = self.table();
        let ino = t.ino_for(key);
        if in_upper {
            t.unbind(key);
        }
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.unlinked = true;
        }
    }

    pub(crate) fn do_rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> R<()> {
        let name = name_bytes(name)?;
        let newname = name_bytes(newname)?;
        if flags.contains(RenameFlags::RENAME_WHITEOUT)
            || (flags.contains(RenameFlags::RENAME_EXCHANGE)
                && flags.contains(RenameFlags::RENAME_NOREPLACE))
        {
            return Err(Errno::EINVAL);
        }
        let _ns = self.write_ns()?;
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return self.do_exchange(parent, name, newparent, newname);
        }
        if self.markers.is_reserved(newname) {
            return Err(Errno::EPERM);
        }
        let p = self.dir_node(parent)?;
        let np = self.dir_node(newparent)?;
        let src = self.resolve(&p, name)?.ok_or(Errno::ENOENT)?;
        let dst = self.resolve(&np, newname)?;
        let src_dir = is_dir(&src.stat);
        if let Some(d) = &dst {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if key_of(&d.stat) == key_of(&src.stat) {
                return Ok(());
            }
            self.may_replace(src_dir, d)?;
        }
        let src_ino = self.table().ino_for(key_of(&src.stat));
        let old_whiteout = self.lower_has(&p, name)?;
        if old_whiteout {
            self.check_whiteout_name(name)?;
        }
        let spfd = self.upper_dir(parent)?;
        let dpfd = self.upper_dir(newparent)?;
        let np = self.dir_node(newparent)?;
        let dst_lower = self.lower_has(&np, newname)?;
        let pure_upper = src.layers.len() == 1 && src.layers[0].branch == UPPER;
        if !src_dir || pure_upper {
            if !src_dir {
                self.copy_up_name(parent, name, src)?;
            } else if dst_lower {
                self.markers
                    .mark_opaque(src.layers[0].fd())
                    .map_err(io_err)?;
            }
            // Replace the target: a file, a whiteout, or (dir over dir) an
            // empty upper directory that may hold whiteouts.
            if let Some(st) = fs::lstat_at(dpfd.as_fd(), fs::os(newname)).map_err(io_err)? {
                if src_dir || is_dir(&st) {
                    self.remove_upper(dpfd.as_fd(), newname)?;
                }
            }
            let rflags = if old_whiteout && self.markers.format == WhiteoutFormat::Overlay {
                libc::RENAME_WHITEOUT
            } else {
                0
            };
            let mut r = fs::rename_at(
                spfd.as_fd(),
                fs::os(name),
                dpfd.as_fd(),
                fs::os(newname),
                rflags,
            );
            let mut whiteout_done = rflags != 0;
            if r.is_err() && rflags != 0 {
                r = fs::rename_at(spfd.as_fd(), fs::os(name), dpfd.as_fd(), fs::os(newname), 0);
                whiteout_done = false;
            }
            r.map_err(io_err)?;
            self.markers
                .remove_aufs_whiteout(dpfd.as_fd(), newname)
                .map_err(io_err)?;
            if old_whiteout && !whiteout_done {
                self.whiteout(spfd.as_fd(), name)?;
            }
        } else {
            // A merged (or lower) directory: copy the whole merged subtree
            // to the new name, opaque, then remove the old one.
            self.copy_dir_opaque(&src, dpfd.as_fd(), newname)?;
            if src.layers[0].branch == UPPER {
                self.remove_upper(spfd.as_fd(), name)?;
            }
            if old_whiteout {
                self.whiteout(spfd.as_fd(), name)?;
            }
        }
        // The table: the source now lives at the new name; what was there
        // is gone; below a copied directory everything must be resolved
        // again.
        if let Some(d) = &dst {
            self.name_removed(d, d.layers[0].branch == UPPER);
        }
        let mut t = self.table();
        if let Some(n) = t.nodes.get_mut(&src_ino) {
            n.parent = newparent;
            n.name = newname.to_vec();
            n.unlinked = false;
        }
        drop(t);
        if src_dir && !pure_upper {
            self.rebind_below(src_ino, true);
        }
        Ok(())
    }

    /// Brings `parent/name` wholly into the writable branch: a
    /// non-directory is copied up; a merged or lower directory is copied
    /// whole (opaque) over its own upper part. Returns its number and
    /// whether it is a directory. Caller holds `ns`.
    fn materialize(&self, parent: u64, name: &[u8]) -> R<(u64, bool)> {
        let p = self.dir_node(parent)?;
        let found = self.resolve(&p, name)?.ok_or(Errno::ENOENT)?;
        let dir = is_dir(&found.stat);
        let pure_upper = found.layers.len() == 1 && found.layers[0].branch == UPPER;
        let ino = self.table().ino_for(key_of(&found.stat));
        if !dir {
            return Ok((self.copy_up_name(parent, name, found)?, false));
        }
        if pure_upper {
            return Ok((ino, true));
        }
        let pfd = self.upper_dir(parent)?;
        self.copy_dir_opaque(&found, pfd.as_fd(), name)?;
        self.rebind_below(ino, true);
        Ok((ino, true))
    }

    /// Copies the merged directory `found` whole to `dir/name`, opaque,
    /// through a temporary name in the work directory (what renaming or
    /// materializing a merged directory does); a failed copy leaves
    /// nothing in the work directory.
    fn copy_dir_opaque(&self, found: &Found, dir: BorrowedFd<'_>, name: &[u8]) -> R<()> {
        let work = self.work()?;
        let tmp = work.temp_name();
        let staged = copy_tree(&self.markers, &found.layers, &found.stat, work.fd(), &tmp)
            .and_then(|()| {
                let node = fs::open_path_at(work.fd(), fs::os(&tmp))?;
                self.markers.mark_opaque(node.as_fd())
            });
        if let Err(e) = staged {
            let _ = remove_tree(work.fd(), &tmp);
            return Err(io_err(e));
        }
        self.install(&tmp, dir, name, true)
    }

    /// Resolves again the nodes below `ino` (and `ino` itself when
    /// `this`), parents first, and binds each number to its new backing
    /// entry. A directory renamed (or exchanged) by copying it whole has
    /// new backing entries everywhere below it, while the kernel keeps
    /// the inodes it knows there: its entries moved with the rename. A
    /// later request must find the same numbers, whether it names the
    /// inode or looks a name up (which goes by the backing identity);
    /// resolving lazily, on the next request naming the inode, would let
    /// a lookup or a rename by name meanwhile allocate a new number for
    /// the copy, and the inode the kernel holds would stay bound to the
    /// old path (`ENOENT`) until its entry expired. Caller holds `ns`.
    pub(crate) fn rebind_below(&self, ino: u64, this: bool) {
        let below: Vec<u64> = {
            let mut t = self.table();
            let below: Vec<u64> = t
                .nodes
                .keys()
                .copied()
                .filter(|&i| (this || i != ino) && t.is_below(i, ino))
                .collect();
            for i in &below {
                if let Some(n) = t.nodes.get_mut(i) {
                    n.stale = true;
                }
            }
            below
        };
        for i in below {
            // A node that no longer resolves is marked unlinked; one whose
            // parent cannot be read stays stale and is tried again later.
            let _ = self.node(i);
        }
    }

    /// `RENAME_EXCHANGE`: both entries are brought wholly into the
    /// writable branch, then swapped there; a directory landing where a
    /// lower branch has the name is made opaque.
    fn do_exchange(&self, parent: u64, name: &[u8], newparent: u64, newname: &[u8]) -> R<()> {
        let (a, a_dir) = self.materialize(parent, name)?;
        let (b, b_dir) = self.materialize(newparent, newname)?;
        let spfd = self.upper_dir(parent)?;
        let dpfd = self.upper_dir(newparent)?;
        if a_dir && self.lower_has(&self.dir_node(newparent)?, newname)? {
            let n = fs::open_path_at(spfd.as_fd(), fs::os(name)).map_err(io_err)?;
            self.markers.mark_opaque(n.as_fd()).map_err(io_err)?;
        }
        if b_dir && self.lower_has(&self.dir_node(parent)?, name)? {
            let n = fs::open_path_at(dpfd.as_fd(), fs::os(newname)).map_err(io_err)?;
            self.markers.mark_opaque(n.as_fd()).map_err(io_err)?;
        }
        fs::rename_at(
            spfd.as_fd(),
            fs::os(name),
            dpfd.as_fd(),
            fs::os(newname),
            libc::RENAME_EXCHANGE,
        )
        .map_err(io_err)?;
        let mut t = self.table();
        for (ino, p, n, dir) in [(a, newparent, newname, a_dir), (b, parent, name, b_dir)] {
            if let Some(node) = t.nodes.get_mut(&ino) {
                node.parent = p;
                node.name = n.to_vec();
                node.stale |= dir;
            }
        }
        Ok(())
    }

    pub(crate) fn do_link(&self, ino: u64, newparent: u64, newname: &OsStr) -> R<FileAttr> {
        let newname = name_bytes(newname)?;
        let _ns = self.write_ns()?;
        if self.markers.is_reserved(newname) {
            return Err(Errno::EPERM);
        }
        let node = self.node(ino)?;
        if node.kind == FileType::Directory {
            return Err(Errno::EPERM);
        }
        self.name_free(newparent, newname)?;
        let layer = self.copy_up(ino)?;
        let dpfd = self.upper_dir(newparent)?;
        let work = self.work()?;
        let tmp = work.temp_name();
        fs::link_node(layer.fd(), work.fd(), fs::os(&tmp)).map_err(io_err)?;
        self.install(&tmp, dpfd.as_fd(), newname, false)?;
        let np = self.dir_node(newparent)?;
        let found = self.resolve(&np, newname)?.ok_or(Errno::EIO)?;
        let st = found.stat;
        let ino = self.register(newparent, newname, found);
        let node = self.node(ino)?;
        Ok(attr_of(ino, &st, Some(&node)))
    }
}
