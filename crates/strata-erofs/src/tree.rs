//! The layer's tree as the entries build it, before it is laid out:
//! the same replace, merge, whiteout and hard-link rules as applying the
//! layer to an overlay upper directory.

use std::collections::{BTreeMap, HashSet};

use strata_archive::{Attrs, Special, Walk};

/// Where a regular file's content is.
#[derive(Debug, Clone, Default)]
pub struct FileData {
    /// First block of the blocks written while streaming (0 when none).
    pub start: u32,
    /// The last `size % 4096` bytes, kept to be stored inline after the
    /// inode; empty when the tail went into the last block.
    pub inline_tail: Vec<u8>,
    /// In object mode, the object (sha256 hex) holding the content: the
    /// image stores none of it.
    pub object: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Dir {
        children: BTreeMap<Vec<u8>, usize>,
        opaque: bool,
    },
    File {
        size: u64,
        data: FileData,
    },
    Symlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

impl Kind {
    pub fn special(s: Special) -> Kind {
        match s {
            Special::Char { major, minor } => Kind::Char(major, minor),
            Special::Block { major, minor } => Kind::Block(major, minor),
            Special::Fifo => Kind::Fifo,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub attrs: Attrs,
}

/// Why a path does not resolve to a directory.
pub enum WalkError {
    NotDir,
    Loop,
}

impl WalkError {
    pub fn reason(&self) -> &'static str {
        match self {
            WalkError::NotDir => "a parent of the entry is not a directory",
            WalkError::Loop => "too many symlinks in the entry's parents",
        }
    }
}

/// A directory's node and the plain path (no symlink on it) it has.
pub type Resolved = (usize, Vec<Vec<u8>>);

pub struct Tree {
    /// Every node made; unreachable ones (replaced) are left out of the
    /// image. Index 0 is the root.
    pub nodes: Vec<Node>,
    /// Paths the layer wrote: its own whiteouts never hide them.
    written: HashSet<Vec<u8>>,
}

/// An implied directory (a parent the tar leaves out): 0755, root's,
/// time 0, so that the same tar always gives the same image.
pub fn implied_dir_attrs() -> Attrs {
    Attrs {
        mode: 0o755,
        ..Attrs::default()
    }
}

impl Tree {
    pub fn new() -> Self {
        Tree {
            nodes: vec![Node {
                kind: Kind::Dir {
                    children: BTreeMap::new(),
                    opaque: false,
                },
                attrs: implied_dir_attrs(),
            }],
            written: HashSet::new(),
        }
    }

    fn children(&self, dir: usize) -> &BTreeMap<Vec<u8>, usize> {
        match &self.nodes[dir].kind {
            Kind::Dir { children, .. } => children,
            _ => unreachable!("only directories are walked"),
        }
    }

    fn children_mut(&mut self, dir: usize) -> &mut BTreeMap<Vec<u8>, usize> {
        match &mut self.nodes[dir].kind {
            Kind::Dir { children, .. } => children,
            _ => unreachable!("only directories are walked"),
        }
    }

    /// The directory `comps` names, symlinks followed inside the tree (an
    /// absolute target starts again at the root, `..` stops at it), as a
    /// chroot would; missing directories made when `create`.
    pub fn dir(&mut self, comps: &[Vec<u8>], create: bool) -> Result<Option<usize>, WalkError> {
        Ok(self.dir_path(comps, create)?.map(|(id, _)| id))
    }

    /// [`Tree::dir`], with the path it resolved to: the names from the
    /// root with no symlink among them.
    pub fn dir_path(
        &mut self,
        comps: &[Vec<u8>],
        create: bool,
    ) -> Result<Option<Resolved>, WalkError> {
        let mut walk = Walk::new(0usize, comps);
        while let Some(c) = walk.next_name() {
            let cur = *walk.dir();
            let Some(&child) = self.children(cur).get(&c) else {
                if !create {
                    return Ok(None);
                }
                let id = self.add(Node {
                    kind: Kind::Dir {
                        children: BTreeMap::new(),
                        opaque: false,
                    },
                    attrs: implied_dir_attrs(),
                });
                self.children_mut(cur).insert(c.clone(), id);
                walk.enter(id, c);
                continue;
            };
            match &self.nodes[child].kind {
                Kind::Dir { .. } => walk.enter(child, c),
                Kind::Symlink(target) => walk.follow(target).map_err(|_| WalkError::Loop)?,
                _ => return Err(WalkError::NotDir),
            }
        }
        Ok(Some(walk.finish()))
    }

    /// Whether a directory on the plain path `comps` (no symlink in it)
    /// is opaque, or a name on it is whited out: what lies below in the
    /// lower layers is hidden there.
    pub fn hides_below(&self, comps: &[Vec<u8>]) -> bool {
        let mut cur = 0usize;
        for c in comps {
            if let Kind::Dir { opaque: true, .. } = self.nodes[cur].kind {
                return true;
            }
            match self.children(cur).get(c) {
                Some(&id) if matches!(self.nodes[id].kind, Kind::Dir { .. }) => cur = id,
                Some(_) => return true,
                None => return false,
            }
        }
        matches!(self.nodes[cur].kind, Kind::Dir { opaque: true, .. })
    }

    pub fn add(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// The node named `name` in `dir`, not followed.
    pub fn get(&self, dir: usize, name: &[u8]) -> Option<usize> {
        self.children(dir).get(name).copied()
    }

    /// Puts `node` at `dir/name`, replacing what was there.
    pub fn put(&mut self, dir: usize, name: &[u8], node: usize) {
        self.children_mut(dir).insert(name.to_vec(), node);
    }

    pub fn mark_written(&mut self, comps: &[Vec<u8>]) {
        self.written.insert(comps.join(&b'/'));
    }

    pub fn was_written(&self, parent: &[Vec<u8>], name: &[u8]) -> bool {
        let mut p = parent.join(&b'/');
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        self.written.contains(&p)
    }

    pub fn is_whiteout_or_char(&self, id: usize) -> bool {
        matches!(self.nodes[id].kind, Kind::Char(..))
    }
}
