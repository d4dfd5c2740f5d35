//! Changesets out of directories: native (from an overlay upper dir) and
//! naive (comparing two trees), as a layer tar or as a list of changes.
//!
//! Both walks visit each directory's entries in byte order of their names,
//! depth first, and within a directory put the opaque marker first, then
//! the whiteouts, then everything else: the same tree always gives the
//! same tar.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use strata_sys::fs;
use strata_sys::Stat;
use strata_sys::{xattr, FileType};

use crate::error::{Error, Result};
use crate::lower::{is_opaque, is_whiteout, Lowers};
use crate::path::child;
use crate::whiteout::{OverlayXattrs, OPAQUE, PREFIX};
use crate::writer::{DiffReport, LayerWriter};

/// Kinds of change, as `docker diff` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// `C`
    Modified,
    /// `A`
    Added,
    /// `D`
    Deleted,
}

/// One changed path, absolute within the container (`/etc/passwd`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: Vec<u8>,
    pub kind: ChangeKind,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match self.kind {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'C',
            ChangeKind::Deleted => 'D',
        };
        write!(f, "{k} {}", String::from_utf8_lossy(&self.path))
    }
}

/// An object a walk includes: `name` in `dir`, at `path` in the tree,
/// with whether it existed below.
struct Found<'a> {
    dir: BorrowedFd<'a>,
    name: &'a [u8],
    path: &'a [u8],
    st: &'a Stat,
    existed: bool,
}

/// Where the walks send what they find.
trait Sink {
    /// An object to include.
    fn entry(&mut self, found: Found<'_>) -> Result<()>;
    /// `path` was deleted.
    fn whiteout(&mut self, dir_path: &[u8], name: &[u8]) -> Result<()>;
    /// Nothing from below shows through `dir_path`.
    fn opaque(&mut self, dir_path: &[u8]) -> Result<()>;
    /// A name below that an opaque directory hides.
    fn hidden(&mut self, path: &[u8]);
    /// An unchanged name re-linked to `target`, a changed name of its inode.
    fn relink(&mut self, path: &[u8], target: &[u8], st: &Stat) -> Result<()>;
}

struct TarSink<W: Write>(LayerWriter<W>);

impl<W: Write> Sink for TarSink<W> {
    fn entry(&mut self, f: Found<'_>) -> Result<()> {
        self.0.entry(f.dir, f.name, f.path, f.st)
    }
    fn whiteout(&mut self, dir_path: &[u8], name: &[u8]) -> Result<()> {
        let mut marker = PREFIX.to_vec();
        marker.extend_from_slice(name);
        self.0.marker(&child(dir_path, &marker))
    }
    fn opaque(&mut self, dir_path: &[u8]) -> Result<()> {
        self.0.marker(&child(dir_path, OPAQUE))
    }
    fn hidden(&mut self, _: &[u8]) {}
    fn relink(&mut self, path: &[u8], target: &[u8], st: &Stat) -> Result<()> {
        self.0.link(path, target, st)
    }
}

#[derive(Default)]
struct ChangeSink(Vec<Change>);

fn abs(path: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + 1);
    p.push(b'/');
    p.extend_from_slice(path);
    p
}

impl Sink for ChangeSink {
    fn entry(&mut self, f: Found<'_>) -> Result<()> {
        if FileType::from_raw_mode(f.st.st_mode) == FileType::Socket {
            return Ok(());
        }
        let kind = if f.existed {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.0.push(Change {
            path: abs(f.path),
            kind,
        });
        Ok(())
    }
    fn whiteout(&mut self, dir_path: &[u8], name: &[u8]) -> Result<()> {
        self.0.push(Change {
            path: abs(&child(dir_path, name)),
            kind: ChangeKind::Deleted,
        });
        Ok(())
    }
    fn opaque(&mut self, _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn hidden(&mut self, path: &[u8]) {
        self.0.push(Change {
            path: abs(path),
            kind: ChangeKind::Deleted,
        });
    }
    fn relink(&mut self, _: &[u8], _: &[u8], _: &Stat) -> Result<()> {
        Ok(())
    }
}

fn open_root(p: &Path) -> Result<OwnedFd> {
    fs::open_dir(p).map_err(|e| Error::fs("opening", p.as_os_str().as_encoded_bytes(), e))
}

fn sorted_children(dir: BorrowedFd<'_>, path: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut names: Vec<Vec<u8>> = fs::read_dir(dir)
        .map_err(|e| Error::fs("listing", abs(path), e))?
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    Ok(names)
}

fn lstat(dir: BorrowedFd<'_>, name: &[u8], path: &[u8]) -> Result<Option<Stat>> {
    fs::lstat_at(dir, fs::os(name)).map_err(|e| Error::fs("looking up", abs(path), e))
}

fn open_sub(dir: BorrowedFd<'_>, name: &[u8], path: &[u8]) -> Result<OwnedFd> {
    fs::open_dir_at(dir, fs::os(name)).map_err(|e| Error::fs("opening", abs(path), e))
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

// ---------------------------------------------------------------------
// Native: the upper directory is the changeset.

/// Writes the layer tar of an overlay upper directory: char 0/0 nodes
/// become `.wh.NAME`, opaque directories get `.wh..wh..opq`, and
/// overlay-private xattrs stay out. Refuses upper dirs that use
/// `redirect_dir` or `metacopy`, whose changes are not all in the upper
/// dir (callers fall back to [`diff_trees`] on the merged view).
pub fn diff_upper<W: Write>(upper: &Path, out: W, x: OverlayXattrs) -> Result<(W, DiffReport)> {
    let root = open_root(upper)?;
    let mut sink = TarSink(LayerWriter::new(out));
    walk_upper(root.as_fd(), &[], &mut Vec::new(), &mut sink, None, x)?;
    sink.0.finish()
}

/// Lists the changes an upper directory holds over its lower layers
/// (topmost first), like `docker diff`: `A` for names no lower layer
/// shows, `C` for names they do (directories on the way included), `D`
/// for whiteouts and for the lower names an opaque directory hides.
pub fn changes_upper(upper: &Path, lowers: &[&Path], x: OverlayXattrs) -> Result<Vec<Change>> {
    let root = open_root(upper)?;
    let layers = lowers
        .iter()
        .map(|p| open_root(p))
        .collect::<Result<Vec<_>>>()?;
    let lowers = Lowers::open(layers, &[], x);
    let mut sink = ChangeSink::default();
    walk_upper(
        root.as_fd(),
        &[],
        &mut Vec::new(),
        &mut sink,
        Some(&lowers),
        x,
    )?;
    sink.0.sort();
    sink.0.dedup();
    Ok(sink.0)
}

fn walk_upper(
    dir: BorrowedFd<'_>,
    path: &[u8],
    comps: &mut Vec<Vec<u8>>,
    sink: &mut dyn Sink,
    lowers: Option<&Lowers<'_>>,
    x: OverlayXattrs,
) -> Result<()> {
    let names = sorted_children(dir, path)?;
    let mut stats = Vec::with_capacity(names.len());
    for n in names {
        let p = child(path, &n);
        if let Some(st) = lstat(dir, &n, &p)? {
            stats.push((n, p, st));
        }
    }
    if !path.is_empty()
        && is_opaque(dir, x).map_err(|e| Error::fs("reading xattrs of", abs(path), e))?
    {
        sink.opaque(path)?;
        if let Some(lowers) = lowers {
            let below = lowers
                .children(comps)
                .map_err(|e| Error::fs("reading the lower layers at", abs(path), e))?;
            let here: BTreeSet<&[u8]> = stats.iter().map(|(n, _, _)| n.as_slice()).collect();
            for n in below.iter().filter(|n| !here.contains(n.as_slice())) {
                sink.hidden(&child(path, n));
            }
        }
    }
    for (n, _, _) in stats.iter().filter(|(_, _, st)| is_whiteout(st)) {
        sink.whiteout(path, n)?;
    }
    for (n, p, st) in stats.iter().filter(|(_, _, st)| !is_whiteout(st)) {
        refuse_redirects(dir, n, p, st, x)?;
        comps.push(n.to_vec());
        let existed = match lowers {
            Some(l) => l
                .exists(comps)
                .map_err(|e| Error::fs("reading the lower layers at", abs(p), e))?,
            None => false,
        };
        sink.entry(Found {
            dir,
            name: n,
            path: p,
            st,
            existed,
        })?;
        if kind(st) == FileType::Directory {
            let sub = open_sub(dir, n, p)?;
            walk_upper(sub.as_fd(), p, comps, sink, lowers, x)?;
        }
        comps.pop();
    }
    Ok(())
}

fn refuse_redirects(
    dir: BorrowedFd<'_>,
    name: &[u8],
    path: &[u8],
    st: &Stat,
    x: OverlayXattrs,
) -> Result<()> {
    let key = match kind(st) {
        FileType::Directory => x.redirect(),
        FileType::RegularFile => x.metacopy(),
        _ => return Ok(()),
    };
    let found = match xattr::get_at(dir, name, key) {
        Ok(found) => found,
        // Gone since it was listed (a running container's layer): it
        // carries nothing; reading it says it vanished.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::fs("reading xattrs of", abs(path), e)),
    };
    if found.is_some() {
        return Err(Error::Unsupported(format!(
            "{} carries {}: the upper directory does not hold the whole change; use the naive diff",
            String::from_utf8_lossy(&abs(path)),
            String::from_utf8_lossy(key)
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Naive: compare two trees.

/// Writes the layer tar that turns `old` (or nothing) into `new`: changed
/// and added objects with their parent directories, `.wh.NAME` for
/// deletions (one for a deleted directory, none for its children).
pub fn diff_trees<W: Write>(old: Option<&Path>, new: &Path, out: W) -> Result<(W, DiffReport)> {
    let mut sink = TarSink(LayerWriter::new(out));
    compare_roots(old, new, &mut sink)?;
    sink.0.finish()
}

/// Lists what changed from `old` (or nothing) to `new`, sorted by path.
pub fn changes_trees(old: Option<&Path>, new: &Path) -> Result<Vec<Change>> {
    changes_trees_known(old, new, &|_, _| false)
}

/// What a caller knows of two trees without reading them: given the
/// `(st_dev, st_ino)` of a name in the old tree and in the new one, true
/// when the object (and, for a directory, everything below it) is the
/// same in both. A file system that tracks changes says it (btrfs: an
/// inode a snapshot has not touched since it was made); the compare then
/// skips it. Returning false is always correct.
pub type Unchanged<'a> = &'a dyn Fn((u64, u64), (u64, u64)) -> bool;

/// [`diff_trees`], skipping what `unchanged` vouches for: the same tar
/// when `unchanged` is right.
pub fn diff_trees_known<W: Write>(
    old: Option<&Path>,
    new: &Path,
    out: W,
    unchanged: Unchanged<'_>,
) -> Result<(W, DiffReport)> {
    let mut sink = TarSink(LayerWriter::new(out));
    compare_roots_known(old, new, &mut sink, unchanged)?;
    sink.0.finish()
}

/// [`changes_trees`], skipping what `unchanged` vouches for.
pub fn changes_trees_known(
    old: Option<&Path>,
    new: &Path,
    unchanged: Unchanged<'_>,
) -> Result<Vec<Change>> {
    let mut sink = ChangeSink::default();
    compare_roots_known(old, new, &mut sink, unchanged)?;
    sink.0.sort();
    sink.0.dedup();
    Ok(sink.0)
}

fn compare_roots(old: Option<&Path>, new: &Path, sink: &mut dyn Sink) -> Result<()> {
    compare_roots_known(old, new, sink, &|_, _| false)
}

fn compare_roots_known(
    old: Option<&Path>,
    new: &Path,
    sink: &mut dyn Sink,
    unchanged: Unchanged<'_>,
) -> Result<()> {
    let new = open_root(new)?;
    let old = old.map(open_root).transpose()?;
    let mut w = Compare {
        sink,
        pending: Vec::new(),
        groups: BTreeMap::new(),
        unchanged,
    };
    w.walk(old.as_ref(), &Rc::new(new), &[])?;
    w.relink_groups()
}

/// A directory on the current path not written yet: written as soon as
/// something below it is (parents come before their children).
#[derive(Clone)]
struct Pending {
    parent: Rc<OwnedFd>,
    name: Vec<u8>,
    path: Vec<u8>,
    st: Stat,
    existed: bool,
    written: bool,
}

impl Pending {
    /// `name` in `parent`, not written yet.
    fn new(parent: &Rc<OwnedFd>, name: &[u8], path: &[u8], st: Stat, existed: bool) -> Pending {
        Pending {
            parent: parent.clone(),
            name: name.to_vec(),
            path: path.to_vec(),
            st,
            existed,
            written: false,
        }
    }

    fn found(&self) -> Found<'_> {
        Found {
            dir: self.parent.as_fd(),
            name: &self.name,
            path: &self.path,
            st: &self.st,
            existed: self.existed,
        }
    }
}

struct Compare<'s> {
    sink: &'s mut dyn Sink,
    pending: Vec<Pending>,
    /// Names of multiply-linked files in the new tree, by inode.
    groups: BTreeMap<(u64, u64), LinkGroup>,
    unchanged: Unchanged<'s>,
}

/// The names of one multiply-linked inode: those written (the first
/// carries the data) and those left out because they did not change.
#[derive(Default)]
struct LinkGroup {
    written: Vec<Vec<u8>>,
    unchanged: Vec<(Vec<u8>, Option<Pending>, Stat)>,
}

impl Compare<'_> {
    /// Notes a regular file of the new tree that has other names.
    fn note_link(&mut self, path: &[u8], st: &Stat, written: bool) {
        if kind(st) != FileType::RegularFile || st.st_nlink < 2 {
            return;
        }
        let g = self.groups.entry((st.st_dev, st.st_ino)).or_default();
        if written {
            g.written.push(path.to_vec());
        } else {
            g.unchanged
                .push((path.to_vec(), self.pending.last().cloned(), *st));
        }
    }

    /// A link group with a changed name and unchanged ones: the changed
    /// name got new data, so the unchanged names must be linked to it
    /// again, or applying the diff splits the group (containerd's
    /// HardlinkParentInclusion). They go at the end, each after its
    /// directory, so the directory's attributes are restored after the
    /// link changes it.
    fn relink_groups(&mut self) -> Result<()> {
        for g in std::mem::take(&mut self.groups).into_values() {
            let Some(first) = g.written.first() else {
                continue;
            };
            for (path, parent, st) in &g.unchanged {
                if let Some(p) = parent {
                    self.sink.entry(p.found())?;
                }
                self.sink.relink(path, first, st)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        for p in self.pending.iter_mut().filter(|p| !p.written) {
            self.sink.entry(p.found())?;
            p.written = true;
        }
        Ok(())
    }

    fn walk(&mut self, old: Option<&OwnedFd>, new: &Rc<OwnedFd>, path: &[u8]) -> Result<()> {
        let new_names = sorted_children(new.as_fd(), path)?;
        if let Some(old) = old {
            let old_names = sorted_children(old.as_fd(), path)?;
            let keep: BTreeSet<&Vec<u8>> = new_names.iter().collect();
            for n in old_names.iter().filter(|n| !keep.contains(n)) {
                self.flush()?;
                self.sink.whiteout(path, n)?;
            }
        }
        for n in &new_names {
            let p = child(path, n);
            let Some(nst) = lstat(new.as_fd(), n, &p)? else {
                continue;
            };
            let ost = match old {
                Some(o) => lstat(o.as_fd(), n, &p)?,
                None => None,
            };
            let is_dir = kind(&nst) == FileType::Directory;
            let in_both = |old, o| Both {
                old,
                new: new.as_fd(),
                name: n,
                path: &p,
                o,
                n: &nst,
            };
            let found = |existed| Found {
                dir: new.as_fd(),
                name: n,
                path: &p,
                st: &nst,
                existed,
            };
            if let Some(o) = &ost {
                let known = kind(o) == kind(&nst)
                    && (self.unchanged)((o.st_dev, o.st_ino), (nst.st_dev, nst.st_ino));
                if known {
                    // What the compare below would find: nothing changed
                    // (a multiply-linked file is still one of its group).
                    self.note_link(&p, &nst, false);
                    continue;
                }
            }
            match ost {
                Some(ost) if kind(&ost) == kind(&nst) && is_dir => {
                    let old = old.expect("old exists");
                    let changed = !in_both(old.as_fd(), &ost).same_attrs()?;
                    self.pending.push(Pending::new(new, n, &p, nst, true));
                    if changed {
                        self.flush()?;
                    }
                    let osub = open_sub(old.as_fd(), n, &p)?;
                    let nsub = Rc::new(open_sub(new.as_fd(), n, &p)?);
                    self.walk(Some(&osub), &nsub, &p)?;
                    self.pending.pop();
                }
                Some(ost) if kind(&ost) == kind(&nst) => {
                    let pair = in_both(old.expect("old exists").as_fd(), &ost);
                    let changed = !pair.same_attrs()? || !pair.same_content()?;
                    if changed {
                        self.flush()?;
                        self.sink.entry(found(true))?;
                    }
                    self.note_link(&p, &nst, changed);
                }
                ost => {
                    self.flush()?;
                    self.sink.entry(found(ost.is_some()))?;
                    self.note_link(&p, &nst, true);
                    if is_dir {
                        let nsub = Rc::new(open_sub(new.as_fd(), n, &p)?);
                        // Written just above.
                        let mut dir = Pending::new(new, n, &p, nst, false);
                        dir.written = true;
                        self.pending.push(dir);
                        self.walk(None, &nsub, &p)?;
                        self.pending.pop();
                    }
                }
            }
        }
        Ok(())
    }
}

/// A name in both trees: `name` in `old` and in `new`, at `path`, with
/// its old and new stats.
struct Both<'a> {
    old: BorrowedFd<'a>,
    new: BorrowedFd<'a>,
    name: &'a [u8],
    path: &'a [u8],
    o: &'a Stat,
    n: &'a Stat,
}

impl Both<'_> {
    /// Type, mode, owner, device number, mtime, size (not for directories:
    /// it says nothing about change), xattrs.
    fn same_attrs(&self) -> Result<bool> {
        let (o, n) = (self.o, self.n);
        let dir = kind(n) == FileType::Directory;
        let same = o.st_mode == n.st_mode
            && o.st_uid == n.st_uid
            && o.st_gid == n.st_gid
            && o.st_rdev == n.st_rdev
            && o.st_mtime == n.st_mtime
            && o.st_mtime_nsec == n.st_mtime_nsec
            && (dir || o.st_size == n.st_size);
        if !same {
            return Ok(false);
        }
        match (
            xattr::all_at(self.old, self.name),
            xattr::all_at(self.new, self.name),
        ) {
            (Ok(xo), Ok(xn)) => Ok(xo == xn),
            // Gone since it was listed (a running container's layer): not the
            // same; writing it says it vanished.
            (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            (Err(e), _) | (_, Err(e)) => Err(Error::fs("reading xattrs of", abs(self.path), e)),
        }
    }

    /// Content, when the attributes cannot tell: symlink targets always;
    /// regular files when [`in_doubt`], byte for byte.
    fn same_content(&self) -> Result<bool> {
        let (o, n) = (self.o, self.n);
        match kind(n) {
            FileType::Symlink => {
                let a = fs::readlink_at(self.old, fs::os(self.name))
                    .map_err(|e| Error::fs("reading", abs(self.path), e))?;
                let b = fs::readlink_at(self.new, fs::os(self.name))
                    .map_err(|e| Error::fs("reading", abs(self.path), e))?;
                Ok(a == b)
            }
            FileType::RegularFile if in_doubt(o, n) => {
                // Either tree may be a running container's: read only the
                // inodes compared (never a device or fifo swapped in since).
                let (a, _) = fs::open_regular_at(self.old, fs::os(self.name), Some(o))
                    .map_err(|e| Error::fs("opening", abs(self.path), e))?;
                let (b, _) = fs::open_regular_at(self.new, fs::os(self.name), Some(n))
                    .map_err(|e| Error::fs("opening", abs(self.path), e))?;
                equal_readers(a, b).map_err(|e| Error::fs("reading", abs(self.path), e))
            }
            _ => Ok(true),
        }
    }
}

/// Same size and mtime, but the mtime cannot be trusted to tell: it has
/// whole seconds (a tar extraction's), or the new file's inode changed
/// within a second of its last data write — a rewrite in the same clock
/// tick as the old file's write (timestamps are as coarse as a jiffy)
/// would look unchanged. A copy made by a driver keeps the old mtime and
/// gets a new ctime, so copies of files written long before are not read.
fn in_doubt(o: &Stat, n: &Stat) -> bool {
    let whole_seconds = o.st_mtime_nsec == 0 && n.st_mtime_nsec == 0;
    let written_lately = (n.st_ctime - n.st_mtime).abs() <= 1;
    whole_seconds || written_lately
}

fn equal_readers(mut a: impl Read, mut b: impl Read) -> io::Result<bool> {
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(&mut a, &mut ba)?;
        let m = read_full(&mut b, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
