//! The union's inode table.
//!
//! Union inode numbers are the union's own. A node is found again by the
//! identity `(st_dev, st_ino)` of its topmost backing entry, recorded the
//! first time the union sees it (lookup or readdir); copy-up records the
//! copy's identity for the same number, so a file keeps its number across
//! copy-up, and hard links (on one branch, or made through the union) share
//! one. Numbers are never reused within a mount.

use std::collections::HashMap;
use std::sync::Arc;

use strata_sys::FileType;

use crate::layers::Layer;

/// The backing file registered with the kernel for a node's passthrough
/// opens, and the identity of the file it stands for.
#[derive(Clone)]
pub(crate) struct Backing {
    pub id: Arc<fuser::BackingId>,
    pub key: (u64, u64),
}

/// The root's number (`FUSE_ROOT_ID`).
pub(crate) const ROOT: u64 = 1;

/// One union inode.
#[derive(Clone)]
pub(crate) struct Node {
    /// Where it was last seen in the union: parent and name (a hard-linked
    /// file may have other names).
    pub parent: u64,
    pub name: Vec<u8>,
    pub kind: FileType,
    /// For a directory, the merged stack (topmost first); otherwise the
    /// one branch entry holding the file.
    pub layers: Vec<Layer>,
    /// References the kernel holds (lookups minus forgets).
    pub nlookup: u64,
    /// Open file handles.
    pub open: u64,
    /// Of those, the ones the kernel serves itself (FUSE passthrough),
    /// all on `backing`: the kernel wants one backing file per inode, and
    /// an inode's opens either all passthrough or none.
    pub passthrough_opens: u64,
    pub backing: Option<Backing>,
    /// No name in the union refers to it any more.
    pub unlinked: bool,
    /// Its layers must be resolved again from `parent`/`name` (an
    /// ancestor was renamed by copying it).
    pub stale: bool,
}

impl Node {
    /// A node just looked up (once), neither open nor unlinked.
    pub fn new(parent: u64, name: Vec<u8>, kind: FileType, layers: Vec<Layer>) -> Node {
        Node {
            parent,
            name,
            kind,
            layers,
            nlookup: 1,
            open: 0,
            passthrough_opens: 0,
            backing: None,
            unlinked: false,
            stale: false,
        }
    }
}

#[derive(Default)]
pub(crate) struct Table {
    pub nodes: HashMap<u64, Node>,
    by_key: HashMap<(u64, u64), u64>,
    next: u64,
}

impl Table {
    pub fn new(root: Node) -> Table {
        let mut t = Table {
            next: ROOT + 1,
            ..Table::default()
        };
        t.nodes.insert(ROOT, root);
        t
    }

    /// The number of the entry with this backing identity, allocating
    /// one the first time.
    pub fn ino_for(&mut self, key: (u64, u64)) -> u64 {
        if let Some(ino) = self.by_key.get(&key) {
            return *ino;
        }
        let ino = self.alloc();
        self.by_key.insert(key, ino);
        ino
    }

    pub fn alloc(&mut self) -> u64 {
        let ino = self.next;
        self.next += 1;
        ino
    }

    /// Records that the backing entry `key` is (now) union inode `ino`.
    pub fn bind(&mut self, key: (u64, u64), ino: u64) {
        self.by_key.insert(key, ino);
    }

    /// Forgets a backing identity whose inode is gone (its number may be
    /// reused by the file system for a new file).
    pub fn unbind(&mut self, key: (u64, u64)) {
        self.by_key.remove(&key);
    }

    /// Drops a node nobody refers to any more.
    pub fn maybe_drop(&mut self, ino: u64) {
        if ino == ROOT {
            return;
        }
        if self
            .nodes
            .get(&ino)
            .is_some_and(|n| n.nlookup == 0 && n.open == 0)
        {
            self.nodes.remove(&ino);
        }
    }

    /// Whether `ino` is `ancestor` or below it.
    pub fn is_below(&self, mut ino: u64, ancestor: u64) -> bool {
        for _ in 0..4096 {
            if ino == ancestor {
                return true;
            }
            match self.nodes.get(&ino) {
                Some(n) if ino != ROOT => ino = n.parent,
                _ => return false,
            }
        }
        false
    }
}
