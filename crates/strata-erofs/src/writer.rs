//! The single pass: entries in, data blocks out, then directories,
//! inodes and the superblock.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use strata_archive::{
    Attrs, Compression, Digest, Entries, EntryKind, LayerEntry, LowerKind, Lowers, OverlayXattrs,
    SplitRecorder,
};

use crate::error::{self, Error, ErrorKind, Result};
use crate::format::{self, Inode, Super, BLOCK, INODE_SIZE, SLOT};
use crate::tree::{FileData, Kind, Node, Tree};

/// Longest name of one path component (Linux's `NAME_MAX`, EROFS's
/// `EROFS_NAME_LEN`).
const NAME_MAX: usize = 255;
/// Longest symlink target (Linux's `PATH_MAX` less the NUL).
const SYMLINK_MAX: usize = 4095;
/// Notes kept in the report at most.
const MAX_SKIPPED_NOTES: usize = 100;

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::io(op, source)
}

fn stream_err(what: &str, e: io::Error) -> Error {
    Error::with(
        ErrorKind::InvalidLayer,
        format!("reading the layer stream: {what}"),
        e,
    )
}

/// How the image is written.
#[derive(Debug, Clone)]
pub struct Options {
    /// The xattr that marks an opaque directory: `trusted.overlay.opaque`
    /// for overlay mounts by root, `user.overlay.opaque` for mounts with
    /// `userxattr` (in a user namespace).
    pub opaque_xattr: OverlayXattrs,
    /// The layers below, as directories showing each one's own tree
    /// (whiteouts and opaque markers as [`Options::opaque_xattr`] says),
    /// topmost first: what applying over an overlay's lowers consults. A
    /// directory the layer's entries imply but leave out takes the
    /// attributes it has below (overlayfs copies it up so), and a hard
    /// link to a file only below copies that file into the image, then
    /// links it. Empty: implied directories get 0755, root's, time 0, and
    /// such a link is refused.
    pub lowers: Vec<PathBuf>,
    /// `fsync` the image once written (the default). A caller that makes
    /// the file durable itself (a store that flushes its file system
    /// before it publishes a layer) turns it off.
    pub sync: bool,
    /// Object mode (composefs's layout): the content of each regular
    /// file over [`INLINE_MAX`] bytes goes to this directory, named by
    /// its sha256 (`ab/cdef…`), where a file of the same content already
    /// stored by any layer is shared, not written again; the image holds
    /// the file's metadata alone (a chunk-based inode with no data, and
    /// the overlay `metacopy` and `redirect` xattrs naming the object),
    /// to be mounted under an overlay with this directory as a data-only
    /// layer (`datadir+`, Linux ≥ 6.16 with `metacopy=off`).
    pub objects: Option<PathBuf>,
}

/// Files up to this size stay in the image in object mode (as
/// composefs keeps them): an object would cost more than the bytes.
pub const INLINE_MAX: u64 = 64;

impl Default for Options {
    fn default() -> Self {
        Options {
            opaque_xattr: OverlayXattrs::Trusted,
            lowers: Vec::new(),
            sync: true,
            objects: None,
        }
    }
}

/// What writing an image did.
#[derive(Debug, Clone)]
pub struct Report {
    /// sha256 of the uncompressed stream: the layer's diffID.
    pub diff_id: Digest,
    pub compression: Compression,
    /// Length of the uncompressed stream.
    pub tar_size: u64,
    /// Entries in the stream, whiteouts included.
    pub entries: u64,
    /// Bytes of file content written.
    pub size: u64,
    /// Inodes in the image.
    pub inodes: u64,
    /// Length of the image file.
    pub image_size: u64,
    /// Attributes left out, and why.
    pub skipped: Vec<String>,
    /// Where the file data ends in the image (a multiple of the block
    /// size): the superblock's block and everything from here on is what
    /// the kernel parses (directories, inodes, xattrs, inline tails);
    /// the blocks in between are file content, never parsed.
    pub data_end: u64,
    /// Whether the layers below were looked in (a parent the layer
    /// leaves out, a hard link's target).
    pub consulted_lowers: bool,
    /// In object mode, the objects the image names (sha256 hex), each
    /// once, sorted.
    pub objects: Vec<String>,
}

/// The sha256 of what the kernel parses in an image whose file data ends
/// at `data_end` ([`Report::data_end`]): its first block and everything
/// from `data_end` on. Recorded when the image is written and compared
/// before it is mounted, it keeps an image changed on disk since from
/// reaching the kernel's parser, at the cost of reading the metadata
/// alone.
pub fn metadata_digest(image: &File, data_end: u64) -> Result<Digest> {
    let len = image
        .metadata()
        .map_err(io_err("reading the image's length"))?
        .len();
    if data_end < BLOCK || data_end > len || !data_end.is_multiple_of(BLOCK) {
        return Err(Error::new(
            ErrorKind::InvalidLayer,
            format!("the image's data cannot end at byte {data_end} of {len}"),
        ));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    for (mut at, end) in [(0, BLOCK), (data_end, len)] {
        while at < end {
            let k = buf.len().min((end - at) as usize);
            image
                .read_exact_at(&mut buf[..k], at)
                .map_err(io_err("reading the image"))?;
            h.update(&buf[..k]);
            at += k as u64;
        }
    }
    Ok(Digest::from_sha256(h))
}

/// Writes the layer read from `input` as an EROFS image into `out`
/// (truncated first), then `fsync`s it.
///
/// On error the content of `out` is unspecified: the caller owns the file
/// and removes it (or use [`write_image`], which does).
pub fn write_layer(input: impl Read + Send, out: &mut File, opts: &Options) -> Result<Report> {
    write_layer_recording(input, out, opts, None)
}

/// [`write_layer`], also writing to `record` the layer's tar-split record
/// ([`strata_archive::reassemble`] rebuilds the tar from it and the
/// mounted image, byte for byte).
pub fn write_layer_recording(
    input: impl Read + Send,
    out: &mut File,
    opts: &Options,
    record: Option<&mut dyn Write>,
) -> Result<Report> {
    let (lowers, x) = (opts.lowers.clone(), opts.opaque_xattr);
    let mut below = move || Ok(Lowers::open(Vec::new(), &lowers, x));
    write_layer_over(input, out, opts, record, &mut below)
}

/// [`write_layer_recording`], with the layers below given by `below`
/// (instead of [`Options::lowers`]) when the layer first needs them: a
/// layer that copies nothing up from below (most do not) never calls it,
/// and a [`Lowers::lazy`] opens each layer only when a lookup reaches
/// it, so the caller prepares (mounts) only the layers that are used.
///
/// The stream is read, decompressed and hashed on a thread of its own
/// ([`strata_archive::read_threaded`]) while this one writes the image.
pub fn write_layer_over<'b>(
    input: impl Read + Send,
    out: &mut File,
    opts: &Options,
    record: Option<&mut dyn Write>,
    below: &mut Below<'b>,
) -> Result<Report> {
    let recorder = record.map(SplitRecorder::new).transpose()?;
    let (written, stream) = strata_archive::read_threaded(input, |reader| match &recorder {
        Some(r) => write_pass(r.tee(reader), out, opts, Some(r), below),
        None => write_pass(reader, out, opts, None, below),
    });
    // A broken stream explains the parse error it caused: reported first.
    let stream = stream?;
    let w = written?;
    if let Some(r) = recorder {
        r.finish(&stream.diff_id, stream.tar_size)?;
    }
    Ok(Report {
        diff_id: stream.diff_id,
        compression: stream.compression,
        tar_size: stream.tar_size,
        entries: w.entries,
        size: w.size,
        inodes: w.inodes,
        image_size: w.image_size,
        skipped: w.skipped,
        data_end: w.data_end,
        consulted_lowers: w.consulted_lowers,
        objects: w.objects,
    })
}

/// What gives the layers below, when a layer first needs them.
pub type Below<'b> = dyn FnMut() -> io::Result<Lowers<'b>> + 'b;

/// What the pass wrote; the stream's side comes from its thread.
struct Written {
    entries: u64,
    size: u64,
    inodes: u64,
    image_size: u64,
    skipped: Vec<String>,
    data_end: u64,
    consulted_lowers: bool,
    objects: Vec<String>,
}

/// The pass itself, over the uncompressed stream.
fn write_pass<'b>(
    input: impl Read,
    out: &mut File,
    opts: &Options,
    recorder: Option<&SplitRecorder<&mut dyn Write>>,
    below: &mut Below<'b>,
) -> Result<Written> {
    out.set_len(0).map_err(io_err("truncating the image"))?;
    out.seek(SeekFrom::Start(0))
        .map_err(io_err("truncating the image"))?;
    let mut w = Writer {
        out: BufWriter::with_capacity(1 << 20, &mut *out),
        next_block: 0,
        tree: Tree::new(),
        buf: vec![0u8; 256 * 1024],
        opts,
        lowers: None,
        below: Some(below),
        record: recorder,
        objects: Default::default(),
        entries: 0,
        size: 0,
        skipped: Vec::new(),
    };
    // Block 0: the superblock's, written at the end.
    w.write(&[0u8; BLOCK as usize], "writing the image")?;
    w.next_block = 1;
    let mut entries = Entries::new(input);
    while let Some(e) = entries.next_entry()? {
        w.entry(e, &mut entries)?;
    }
    // Whatever follows the end-of-archive blocks is part of the diffID
    // (and of the record).
    let mut rest = entries.into_inner();
    io::copy(&mut rest, &mut io::sink())
        .map_err(|e| stream_err("past the end of the archive", e))?;
    let data_end = w.next_block * BLOCK;
    let (inodes, total_blocks) = w.finish()?;
    let consulted_lowers = w.below.is_none();
    let Writer {
        out: bw,
        entries,
        size,
        skipped,
        objects,
        ..
    } = w;
    let file = bw
        .into_inner()
        .map_err(|e| Error::io("writing the image", e.into_error()))?;
    let image_size = total_blocks * BLOCK;
    file.set_len(image_size)
        .map_err(io_err("sizing the image"))?;
    if opts.sync {
        file.sync_all().map_err(io_err("syncing the image"))?;
    }
    Ok(Written {
        entries,
        size,
        inodes,
        image_size,
        skipped,
        data_end,
        consulted_lowers,
        objects: objects.into_iter().collect(),
    })
}

/// Writes the layer as a new EROFS image at `path`: into a temporary
/// file beside it, renamed into place once complete and synced (the
/// directory synced too). On error nothing is left at `path` or beside
/// it.
pub fn write_image(input: impl Read + Send, path: &Path, opts: &Options) -> Result<Report> {
    let name = path.file_name().ok_or_else(|| {
        Error::new(
            ErrorKind::Io,
            format!("the image path {path:?} names no file"),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".partial");
    let tmp = path.with_file_name(tmp_name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("creating the image"))?;
    let done = write_layer(input, &mut file, opts).and_then(|r| {
        std::fs::rename(&tmp, path).map_err(io_err("putting the image in place"))?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        File::open(dir.unwrap_or(Path::new(".")))
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing the image's directory"))?;
        Ok(r)
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// One read of an entry's content into `buf`, at most `left` bytes of
/// it: how many were read (at least one). The stream ending first is the
/// entry truncated after `done` of its `size` bytes.
fn read_content(
    data: &mut dyn Read,
    buf: &mut [u8],
    left: u64,
    raw: &[u8],
    done: u64,
    size: u64,
) -> Result<usize> {
    let k = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
    loop {
        match data.read(&mut buf[..k]) {
            Ok(0) => {
                return Err(error::entry(
                    raw,
                    format!("truncated: the stream ended after {done} of {size} bytes"),
                ))
            }
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(stream_err("a file's content", e)),
        }
    }
}

struct Writer<'o, 'r, 'b> {
    out: BufWriter<&'o mut File>,
    /// The block the next data written lands in.
    next_block: u64,
    tree: Tree,
    buf: Vec<u8>,
    opts: &'o Options,
    /// The layers below, once asked for.
    lowers: Option<Lowers<'b>>,
    /// Where they come from, until they are asked for (taken then).
    below: Option<&'o mut Below<'b>>,
    record: Option<&'o SplitRecorder<&'r mut dyn Write>>,
    /// The objects the image names (object mode).
    objects: std::collections::BTreeSet<String>,
    entries: u64,
    size: u64,
    skipped: Vec<String>,
}

/// One inode's place in the metadata area.
struct Placed {
    node: usize,
    /// Offset in the metadata area.
    pos: u64,
    xattrs: Vec<u8>,
    /// Bytes stored right after the xattrs.
    inline_len: u64,
}

impl<'b> Writer<'_, '_, 'b> {
    fn write(&mut self, bytes: &[u8], op: &'static str) -> Result<()> {
        self.out.write_all(bytes).map_err(io_err(op))
    }

    fn skip(&mut self, note: String) {
        if self.skipped.len() < MAX_SKIPPED_NOTES {
            self.skipped.push(note);
        }
    }

    fn entry<R: Read>(&mut self, e: LayerEntry, entries: &mut Entries<R>) -> Result<()> {
        self.entries += 1;
        let raw = e.raw.clone();
        let walk = |tree: &mut Tree, comps: &[Vec<u8>]| -> Result<(usize, Vec<Vec<u8>>)> {
            tree.dir_path(comps, true)
                .map_err(|w| error::entry(&raw, w.reason()))
                .map(|d| d.expect("created when missing"))
        };
        if let Some(c) = e.path.iter().find(|c| c.len() > NAME_MAX) {
            return Err(error::entry(
                &raw,
                format!("a name of {} bytes, longer than {NAME_MAX}", c.len()),
            ));
        }
        match e.kind {
            EntryKind::Opaque => {
                self.copy_up_dirs(&raw, &e.path)?;
                let (d, _) = walk(&mut self.tree, &e.path)?;
                set_opaque(&mut self.tree.nodes[d]);
                return Ok(());
            }
            EntryKind::Whiteout(name) => {
                if name.len() > NAME_MAX {
                    return Err(error::entry(&raw, "a whiteout of a name longer than 255"));
                }
                if self.tree.was_written(&e.path, &name) {
                    // The layer's own entries are not hidden by its
                    // whiteouts.
                    return Ok(());
                }
                self.copy_up_dirs(&raw, &e.path)?;
                let (d, _) = walk(&mut self.tree, &e.path)?;
                let id = self.tree.add(Node {
                    // Mode 0, root's, time 0, as overlayfs makes them.
                    kind: Kind::Char(0, 0),
                    attrs: Attrs::default(),
                });
                self.tree.put(d, &name, id);
                return Ok(());
            }
            _ => {}
        }
        let mut attrs = e.attrs;
        attrs.xattrs = self.xattrs(&raw, std::mem::take(&mut attrs.xattrs))?;
        let Some((last, parent)) = e.path.split_last() else {
            merge_dir(&mut self.tree.nodes[0], attrs);
            return Ok(());
        };
        self.copy_up_dirs(&raw, parent)?;
        let (d, dpath) = walk(&mut self.tree, parent)?;
        let existing = self.tree.get(d, last);
        let kind = match e.kind {
            EntryKind::Dir => {
                if let Some(id) = existing {
                    if matches!(self.tree.nodes[id].kind, Kind::Dir { .. }) {
                        merge_dir(&mut self.tree.nodes[id], attrs);
                        self.tree.mark_written(&e.path);
                        return Ok(());
                    }
                }
                // A directory replacing a whiteout replaces the lower
                // directory: it must not show its content.
                let opaque = existing.is_some_and(|id| self.tree.is_whiteout_or_char(id));
                Kind::Dir {
                    children: Default::default(),
                    opaque,
                }
            }
            EntryKind::File { size, chunks } => {
                if let Some(r) = self.record {
                    // Read back from where the name leads, no symlink
                    // on the way.
                    let mut path = dpath.join(&b'/');
                    if !path.is_empty() {
                        path.push(b'/');
                    }
                    path.extend_from_slice(last);
                    r.file(&path, entries.content_span(), size, chunks.as_deref());
                }
                let data = match &self.opts.objects {
                    // A sparse file stays in the image, its holes as
                    // holes in the image file.
                    _ if chunks.is_some() => {
                        let chunks = chunks.as_deref().unwrap_or_default();
                        self.sparse_file(&raw, size, chunks, &mut entries.data())?
                    }
                    Some(dir) if size > INLINE_MAX && size < format::CHUNK_MAX => {
                        let dir = dir.clone();
                        // The overlay xattrs naming the object must fit
                        // beside the file's own.
                        let mut all = attrs.xattrs.clone();
                        all.extend(self.object_xattrs(&"0".repeat(64)));
                        if format::xattr_icount(format::xattr_body(&all).len()).is_none() {
                            return Err(error::entry(&raw, "more xattrs than an inode holds"));
                        }
                        self.object(&raw, &dir, size, &mut entries.data())?
                    }
                    _ => self.file(&raw, size, &attrs, &mut entries.data())?,
                };
                self.size += size;
                Kind::File { size, data }
            }
            EntryKind::Symlink(target) => {
                if target.len() > SYMLINK_MAX {
                    return Err(error::entry(
                        &raw,
                        format!("a symlink target longer than {SYMLINK_MAX} bytes"),
                    ));
                }
                attrs.mode = 0o777;
                Kind::Symlink(target)
            }
            EntryKind::Link(target) => {
                if target == e.path {
                    return Ok(());
                }
                let missing = || {
                    Error::from(strata_archive::Error::MissingLinkTarget {
                        entry: String::from_utf8_lossy(&raw).into_owned(),
                        target: String::from_utf8_lossy(&target.join(&b'/')).into_owned(),
                    })
                };
                let (tname, tparent) = target.split_last().expect("never the root");
                let tdir = self
                    .tree
                    .dir(tparent, false)
                    .map_err(|w| error::entry(&raw, format!("hard link target: {}", w.reason())))?;
                let found = tdir.and_then(|t| self.tree.get(t, tname));
                let id = match found {
                    Some(id) => id,
                    None => self.copy_up(&raw, &target)?.ok_or_else(missing)?,
                };
                if matches!(self.tree.nodes[id].kind, Kind::Dir { .. }) {
                    return Err(error::entry(&raw, "hard link to a directory"));
                }
                self.tree.put(d, last, id);
                self.tree.mark_written(&e.path);
                return Ok(());
            }
            EntryKind::Special(s) => Kind::special(s),
            EntryKind::Opaque | EntryKind::Whiteout(_) => unreachable!("handled above"),
        };
        let id = self.tree.add(Node { kind, attrs });
        self.tree.put(d, last, id);
        self.tree.mark_written(&e.path);
        Ok(())
    }

    /// Makes the directories of `comps` the layer leaves out but the
    /// layers below show, with their attributes, as overlayfs copies them
    /// up before writing in them (what applying to an overlay upper
    /// directory does): an entry whose parents the layer leaves out does
    /// not change how they look in the merged view.
    fn copy_up_dirs(&mut self, raw: &[u8], comps: &[Vec<u8>]) -> Result<()> {
        // Nothing to look up while the layer has every parent.
        if matches!(self.tree.dir(comps, false), Ok(Some(_)) | Err(_)) {
            return Ok(());
        }
        let Some(lowers) = self.take_lowers(raw)? else {
            return Ok(());
        };
        let done = self.copy_up_dirs_from(&lowers, raw, comps);
        self.lowers = Some(lowers);
        done
    }

    /// The layers below, opened on first use (none when there are none);
    /// put back with `self.lowers = Some(..)` after use.
    fn take_lowers(&mut self, raw: &[u8]) -> Result<Option<Lowers<'b>>> {
        if let Some(below) = self.below.take() {
            let l = below().map_err(|e| error::entry_io(raw, "preparing the layers below", e))?;
            if !l.is_empty() {
                self.lowers = Some(l);
            }
        }
        Ok(self.lowers.take())
    }

    fn copy_up_dirs_from(&mut self, lowers: &Lowers, raw: &[u8], comps: &[Vec<u8>]) -> Result<()> {
        for i in 1..=comps.len() {
            match self.tree.dir(&comps[..i], false) {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                // Not a directory in the layer: the usual walk says so.
                Err(_) => return Ok(()),
            }
            let (name, up) = comps[..i].split_last().expect("one component at least");
            let Ok(Some((updir, mut path))) = self.tree.dir_path(up, false) else {
                return Ok(());
            };
            path.push(name.clone());
            if self.tree.hides_below(&path) {
                return Ok(());
            }
            let found = lowers
                .lookup(&path)
                .map_err(|e| error::entry_io(raw, "copying a directory up", e))?;
            let Some(found) = found.filter(|f| matches!(f.kind, LowerKind::Dir)) else {
                return Ok(());
            };
            let attrs = Attrs {
                xattrs: self.xattrs(raw, found.attrs.xattrs.clone())?,
                ..found.attrs
            };
            let id = self.tree.add(Node {
                kind: Kind::Dir {
                    children: Default::default(),
                    opaque: false,
                },
                attrs,
            });
            self.tree.put(updir, name, id);
        }
        Ok(())
    }

    /// The node for `target` copied up from the layers below, for a hard
    /// link to it: put at `target` in the layer (replacing a whiteout
    /// there), its parents copied up first. None when no layer below
    /// shows it.
    fn copy_up(&mut self, raw: &[u8], target: &[Vec<u8>]) -> Result<Option<usize>> {
        let Some(lowers) = self.take_lowers(raw)? else {
            return Ok(None);
        };
        let done = self.copy_up_from(&lowers, raw, target);
        self.lowers = Some(lowers);
        done
    }

    fn copy_up_from(
        &mut self,
        lowers: &Lowers,
        raw: &[u8],
        target: &[Vec<u8>],
    ) -> Result<Option<usize>> {
        let io_err = |e| error::entry_io(raw, "copying the hard link target up", e);
        let (name, parent) = target.split_last().expect("never the root");
        self.copy_up_dirs_from(lowers, raw, parent)?;
        let Ok(Some((dir, mut path))) = self.tree.dir_path(parent, false) else {
            return Ok(None);
        };
        path.push(name.clone());
        if self.tree.hides_below(&path[..path.len() - 1]) {
            return Ok(None);
        }
        let Some(found) = lowers.lookup(&path).map_err(io_err)? else {
            return Ok(None);
        };
        let mut attrs = found.attrs;
        attrs.xattrs = self.xattrs(raw, std::mem::take(&mut attrs.xattrs))?;
        let kind = match found.kind {
            LowerKind::Dir => return Err(error::entry(raw, "hard link to a directory")),
            LowerKind::File {
                file,
                size,
                object: Some(object),
            } if self.opts.objects.is_some() => {
                // The same object: nothing to copy.
                drop(file);
                self.size += size;
                self.objects.insert(object.clone());
                Kind::File {
                    size,
                    data: FileData {
                        object: Some(object),
                        ..FileData::default()
                    },
                }
            }
            LowerKind::File {
                object: Some(_), ..
            } => {
                return Err(error::entry(
                    raw,
                    "hard link to a file below whose content is an object, outside object mode",
                ))
            }
            LowerKind::File { file, size, .. } => {
                let mut content = file.take(size);
                let data = self.file(raw, size, &attrs, &mut content)?;
                self.size += size;
                Kind::File { size, data }
            }
            LowerKind::Symlink(t) => Kind::Symlink(t),
            LowerKind::Special(s) => Kind::special(s),
        };
        let id = self.tree.add(Node { kind, attrs });
        self.tree.put(dir, name, id);
        Ok(Some(id))
    }

    /// The xattrs an inode gets: overlay-private names and names EROFS
    /// has no prefix for left out (and reported), the last of duplicate
    /// names kept.
    fn xattrs(
        &mut self,
        raw: &[u8],
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (k, v) in xattrs {
            if k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay.") {
                self.skip(format!(
                    "{}: overlay-private xattr {} dropped",
                    String::from_utf8_lossy(raw),
                    String::from_utf8_lossy(&k)
                ));
                continue;
            }
            match format::xattr_index(&k) {
                None => {
                    self.skip(format!(
                        "{}: xattr {} not stored: EROFS has no prefix for it",
                        String::from_utf8_lossy(raw),
                        String::from_utf8_lossy(&k)
                    ));
                    continue;
                }
                Some((_, rest)) if rest.len() > NAME_MAX => {
                    return Err(error::entry(raw, "an xattr name longer than 255 bytes"));
                }
                Some(_) => {}
            }
            if v.len() > format::MAX_XATTR_VALUE {
                return Err(error::entry(raw, "an xattr value over 65535 bytes"));
            }
            out.retain(|(n, _)| *n != k);
            out.push((k, v));
        }
        if format::xattr_icount(format::xattr_body(&out).len()).is_none() {
            return Err(error::entry(raw, "more xattrs than an inode holds"));
        }
        Ok(out)
    }

    /// Object mode: streams a file's content into the objects directory
    /// `dir`, named by its sha256 (kept as it is when an object of that
    /// name is there: the same content), and returns the image's side of
    /// the file: no data, the object's name.
    fn object(
        &mut self,
        raw: &[u8],
        dir: &Path,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<FileData> {
        let io_err = |op: &'static str| {
            let raw = raw.to_vec();
            move |e| error::entry_io(&raw, op, e)
        };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".incoming-{}-{n}", std::process::id()));
        let create = || OpenOptions::new().write(true).create_new(true).open(&tmp);
        let mut f = match create() {
            // A process of the same id left it (ids are reused after a
            // reboot): no live process writes it.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                create()
            }
            other => other,
        }
        .map_err(io_err("creating an object"))?;
        let written = (|| {
            let mut h = Sha256::new();
            let mut left = size;
            while left > 0 {
                let n = read_content(data, &mut self.buf, left, raw, size - left, size)?;
                h.update(&self.buf[..n]);
                f.write_all(&self.buf[..n])
                    .map_err(io_err("writing an object"))?;
                left -= n as u64;
            }
            if self.opts.sync {
                f.sync_all().map_err(io_err("syncing an object"))?;
            }
            let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            let sub = dir.join(&hex[..2]);
            match std::fs::create_dir(&sub) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(error::entry_io(raw, "making an objects directory", e))
                }
                _ => {}
            }
            let path = sub.join(&hex[2..]);
            // Stored already, by this layer or another; one of another
            // length (a crash cut it short before it was flushed) is
            // replaced.
            if std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == size) {
                let _ = std::fs::remove_file(&tmp);
            } else {
                std::fs::rename(&tmp, &path).map_err(io_err("putting an object in place"))?;
            }
            Ok(hex)
        })();
        let hex = match written {
            Ok(h) => h,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        self.objects.insert(hex.clone());
        Ok(FileData {
            object: Some(hex),
            ..FileData::default()
        })
    }

    /// Streams a file's full blocks into the image; keeps its tail for
    /// the inode when it fits there, else writes it as a last block.
    fn file(
        &mut self,
        raw: &[u8],
        size: u64,
        attrs: &Attrs,
        data: &mut dyn Read,
    ) -> Result<FileData> {
        let full = size / BLOCK;
        let tail = (size % BLOCK) as usize;
        let xlen = format::xattr_body(&attrs.xattrs).len() as u64;
        let inline = tail > 0 && INODE_SIZE + xlen + tail as u64 <= BLOCK;
        let start = self.next_block;
        let mut left = full * BLOCK;
        while left > 0 {
            let n = read_content(data, &mut self.buf, left, raw, full * BLOCK - left, size)?;
            self.write_at_cursor(n)?;
            left -= n as u64;
        }
        let mut last = vec![0u8; tail];
        let mut got = 0;
        while got < tail {
            let done = full * BLOCK + got as u64;
            got += read_content(data, &mut last[got..], (tail - got) as u64, raw, done, size)?;
        }
        let mut blocks = full;
        if tail > 0 && !inline {
            last.resize(BLOCK as usize, 0);
            self.write(&last, "writing the image")?;
            last = Vec::new();
            blocks += 1;
        }
        self.next_block += blocks;
        if self.next_block > u64::from(u32::MAX) {
            return Err(error::entry(raw, "the image would exceed 16 TiB"));
        }
        Ok(FileData {
            start: if blocks > 0 { start as u32 } else { 0 },
            inline_tail: last,
            object: None,
        })
    }

    /// Writes a sparse file's stored chunks, each at its offset in the
    /// file's blocks, and seeks over the holes: they stay holes in the
    /// image file, so they cost no disk (the file system gives zeros for
    /// them, as the kernel's EROFS reads them). No tail kept inline.
    fn sparse_file(
        &mut self,
        raw: &[u8],
        size: u64,
        chunks: &[(u64, u64)],
        data: &mut dyn Read,
    ) -> Result<FileData> {
        let blocks = size.div_ceil(BLOCK);
        let start = self.next_block;
        if start + blocks > u64::from(u32::MAX) {
            return Err(error::entry(raw, "the image would exceed 16 TiB"));
        }
        let stored: u64 = chunks.iter().map(|c| c.1).sum();
        let mut done = 0u64;
        for &(offset, len) in chunks {
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(error::entry(raw, "a sparse chunk past the end of the file"));
            }
            self.out
                .seek(SeekFrom::Start(start * BLOCK + offset))
                .map_err(io_err("writing the image"))?;
            let mut left = len;
            while left > 0 {
                let n = read_content(data, &mut self.buf, left, raw, done, stored)?;
                self.write_at_cursor(n)?;
                left -= n as u64;
                done += n as u64;
            }
        }
        self.next_block += blocks;
        self.out
            .seek(SeekFrom::Start(self.next_block * BLOCK))
            .map_err(io_err("writing the image"))?;
        Ok(FileData {
            start: if blocks > 0 { start as u32 } else { 0 },
            inline_tail: Vec::new(),
            object: None,
        })
    }

    /// Writes the first `n` bytes of the read buffer.
    fn write_at_cursor(&mut self, n: usize) -> Result<()> {
        self.out
            .write_all(&self.buf[..n])
            .map_err(io_err("writing the image"))
    }

    /// Lays out and writes directories, inodes and the superblock's
    /// content; returns the inode count and the image's length in blocks.
    fn finish(&mut self) -> Result<(u64, u64)> {
        let (order, parent) = self.reachable();
        let n = self.tree.nodes.len();
        // nlink: the names each inode has; directories two plus their
        // subdirectories.
        let mut nlink = vec![0u32; n];
        for &id in &order {
            if let Kind::Dir { children, .. } = &self.tree.nodes[id].kind {
                let mut subdirs = 0;
                for &c in children.values() {
                    nlink[c] += 1;
                    if matches!(self.tree.nodes[c].kind, Kind::Dir { .. }) {
                        subdirs += 1;
                    }
                }
                nlink[id] = 2 + subdirs;
            }
        }
        // Node ids: the metadata area's layout.
        let mut nid = vec![0u64; n];
        let mut placed = Vec::with_capacity(order.len());
        let mut pos = 0u64;
        for &id in &order {
            let node = &self.tree.nodes[id];
            let xattrs = format::xattr_body(&self.node_xattrs(id));
            let inline_len = match &node.kind {
                Kind::File { data, .. } if data.object.is_some() => format::NULL_CHUNK.len() as u64,
                Kind::File { data, .. } => data.inline_tail.len() as u64,
                Kind::Symlink(t) if INODE_SIZE + xattrs.len() as u64 + t.len() as u64 <= BLOCK => {
                    t.len() as u64
                }
                _ => 0,
            };
            pos = pos.next_multiple_of(SLOT);
            let whole = INODE_SIZE + xattrs.len() as u64 + inline_len;
            let keep_in_block = if inline_len > 0 { whole } else { INODE_SIZE };
            if pos % BLOCK + keep_in_block > BLOCK {
                pos = pos.next_multiple_of(BLOCK);
            }
            nid[id] = pos / SLOT;
            placed.push(Placed {
                node: id,
                pos,
                xattrs,
                inline_len,
            });
            pos += whole;
        }
        let meta_len = pos;
        // Directory blocks and long symlink targets, after the file data.
        let mut start = vec![0u32; n];
        let mut dir_size = vec![0u64; n];
        for p in &placed {
            let id = p.node;
            let bytes = match &self.tree.nodes[id].kind {
                Kind::Dir { children, .. } => {
                    let mut ents: Vec<(&[u8], u64, u8)> = vec![
                        (b".", nid[id], format::FT_DIR),
                        (b"..", nid[parent[id]], format::FT_DIR),
                    ];
                    for (name, &c) in children {
                        ents.push((name, nid[c], file_type(&self.tree.nodes[c].kind)));
                    }
                    ents.sort_by(|a, b| a.0.cmp(b.0));
                    format::dir_blocks(&ents)
                }
                Kind::Symlink(t) if p.inline_len == 0 => t.clone(),
                _ => continue,
            };
            dir_size[id] = bytes.len() as u64;
            start[id] = self.block_addr()?;
            let blocks = (bytes.len() as u64).div_ceil(BLOCK);
            let mut padded = bytes;
            padded.resize((blocks * BLOCK) as usize, 0);
            self.write(&padded, "writing the image")?;
            self.next_block += blocks;
        }
        let meta_blkaddr = self.block_addr()?;
        // The metadata area.
        let mut chunked = false;
        let mut at = 0u64;
        let mut buf = Vec::with_capacity(2 * BLOCK as usize);
        for (ino, p) in placed.iter().enumerate() {
            buf.clear();
            buf.resize((p.pos - at) as usize, 0);
            let node = &mut self.tree.nodes[p.node];
            let plain = format::FLAT_PLAIN;
            let (ftype, layout, size, u, inline) = match &mut node.kind {
                Kind::Dir { .. } => (
                    format::S_IFDIR,
                    plain,
                    dir_size[p.node],
                    start[p.node],
                    Vec::new(),
                ),
                Kind::File { size, data } if data.object.is_some() => {
                    chunked = true;
                    (
                        format::S_IFREG,
                        format::CHUNK_BASED,
                        *size,
                        format::CHUNK_FORMAT_ONE,
                        format::NULL_CHUNK.to_vec(),
                    )
                }
                Kind::File { size, data } => {
                    let tail = std::mem::take(&mut data.inline_tail);
                    let layout = if tail.is_empty() {
                        plain
                    } else {
                        format::FLAT_INLINE
                    };
                    (format::S_IFREG, layout, *size, data.start, tail)
                }
                Kind::Symlink(t) if p.inline_len > 0 => (
                    format::S_IFLNK,
                    format::FLAT_INLINE,
                    t.len() as u64,
                    0,
                    t.clone(),
                ),
                Kind::Symlink(t) => (
                    format::S_IFLNK,
                    plain,
                    t.len() as u64,
                    start[p.node],
                    Vec::new(),
                ),
                Kind::Char(ma, mi) => {
                    let dev = format::encode_dev(*ma, *mi);
                    (format::S_IFCHR, plain, 0, dev, Vec::new())
                }
                Kind::Block(ma, mi) => {
                    let dev = format::encode_dev(*ma, *mi);
                    (format::S_IFBLK, plain, 0, dev, Vec::new())
                }
                Kind::Fifo => (format::S_IFIFO, plain, 0, 0, Vec::new()),
            };
            Inode {
                layout,
                xattr_icount: format::xattr_icount(p.xattrs.len()).expect("checked per entry"),
                mode: ftype | (node.attrs.mode & 0o7777),
                size,
                u,
                ino: u32::try_from(ino + 1).unwrap_or(u32::MAX),
                uid: node.attrs.uid,
                gid: node.attrs.gid,
                mtime_sec: node.attrs.mtime_sec,
                mtime_nsec: node.attrs.mtime_nsec,
                nlink: nlink[p.node],
            }
            .encode(&mut buf);
            buf.extend_from_slice(&p.xattrs);
            buf.extend_from_slice(&inline);
            at = p.pos + INODE_SIZE + p.xattrs.len() as u64 + inline.len() as u64;
            self.out
                .write_all(&buf)
                .map_err(io_err("writing the image"))?;
        }
        debug_assert_eq!(at, meta_len);
        // Room for an xattr header after the last inode even when it has
        // none: fsck.erofs 1.5 reads one for every inode, and fails on an
        // inode that ends the image.
        let meta_blocks = (meta_len + format::XATTR_HEADER as u64).div_ceil(BLOCK);
        let total = u64::from(meta_blkaddr) + meta_blocks;
        let blocks = u32::try_from(total).map_err(|_| too_large())?;
        let sb = Super {
            root_nid: 0,
            inos: order.len() as u64,
            blocks,
            meta_blkaddr,
            incompat: if chunked {
                format::INCOMPAT_CHUNKED_FILE
            } else {
                0
            },
        }
        .encode();
        self.out.flush().map_err(io_err("writing the image"))?;
        self.out
            .get_ref()
            .write_all_at(&sb, format::SUPER_OFFSET)
            .map_err(io_err("writing the superblock"))?;
        Ok((order.len() as u64, total))
    }

    /// The next block's address, as the 32 bits the format holds.
    fn block_addr(&self) -> Result<u32> {
        u32::try_from(self.next_block).map_err(|_| too_large())
    }

    /// The inodes reachable from the root, each once, depth first with a
    /// directory's entries in name order (the root first); and each
    /// directory's parent.
    fn reachable(&self) -> (Vec<usize>, Vec<usize>) {
        let n = self.tree.nodes.len();
        let mut seen = vec![false; n];
        let mut parent = vec![0usize; n];
        let mut order = Vec::new();
        let mut stack = vec![0usize];
        seen[0] = true;
        while let Some(id) = stack.pop() {
            order.push(id);
            if let Kind::Dir { children, .. } = &self.tree.nodes[id].kind {
                for &c in children.values().rev() {
                    if !seen[c] {
                        seen[c] = true;
                        parent[c] = id;
                        stack.push(c);
                    }
                }
            }
        }
        (order, parent)
    }

    /// The overlay xattrs of a file whose content is object `o`: an empty
    /// `metacopy` and the `redirect` into the data-only layer.
    fn object_xattrs(&self, o: &str) -> [(Vec<u8>, Vec<u8>); 2] {
        let x = self.opts.opaque_xattr;
        [
            (x.metacopy().to_vec(), Vec::new()),
            (
                x.redirect().to_vec(),
                format!("/{}/{}", &o[..2], &o[2..]).into_bytes(),
            ),
        ]
    }

    /// An inode's xattrs, the opaque marker included.
    fn node_xattrs(&self, id: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let node = &self.tree.nodes[id];
        let mut x = node.attrs.xattrs.clone();
        match &node.kind {
            Kind::Dir { opaque: true, .. } => {
                x.push((self.opts.opaque_xattr.opaque().to_vec(), b"y".to_vec()));
            }
            Kind::File { data, .. } => {
                if let Some(o) = &data.object {
                    x.extend(self.object_xattrs(o));
                }
            }
            _ => {}
        }
        x
    }
}

fn too_large() -> Error {
    Error::new(ErrorKind::Io, "the image would exceed 16 TiB")
}

fn file_type(kind: &Kind) -> u8 {
    match kind {
        Kind::Dir { .. } => format::FT_DIR,
        Kind::File { .. } => format::FT_REG,
        Kind::Symlink(_) => format::FT_SYMLINK,
        Kind::Char(..) => format::FT_CHR,
        Kind::Block(..) => format::FT_BLK,
        Kind::Fifo => format::FT_FIFO,
    }
}

fn set_opaque(node: &mut Node) {
    if let Kind::Dir { opaque, .. } = &mut node.kind {
        *opaque = true;
    }
}

/// A directory entry over a directory: the entry's attributes, all of
/// them; of the old xattrs only `security.*` ones the entry does not name
/// stay (set by the system, not by layers), as applying keeps them.
fn merge_dir(node: &mut Node, mut attrs: Attrs) {
    for (k, v) in &node.attrs.xattrs {
        if k.starts_with(b"security.") && !attrs.xattrs.iter().any(|(n, _)| n == k) {
            attrs.xattrs.push((k.clone(), v.clone()));
        }
    }
    node.attrs = attrs;
}
