//! Streaming a layer into a directory.
//!
//! One pass over the stream: a second thread reads, decompresses and
//! hashes (the diffID is the sha256 of the uncompressed tar) while this one
//! parses tar headers and writes files. Every path is resolved by
//! [`Root`], inside the target, with `O_NOFOLLOW` opens: nothing the layer
//! says can create, change or read anything outside it.
//!
//! Over existing content the OCI rules hold: a directory entry over a
//! directory merges attributes; anything else replaces what was there
//! (removing it first, never writing through it: a file over a symlink
//! replaces the symlink, a directory over a symlink replaces the symlink
//! rather than chmod-ing its target, RUSTSEC-2026-0067).
//!
//! On error the target holds whatever was written so far: callers apply
//! into staging and remove it (the store never shows a half-applied layer).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use strata_sys::fs::{self, Time};
use strata_sys::{xattr, Errno, FileType};
use tar::EntryType;

use crate::compress::{self, Compression};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::lower::Lowers;
use crate::path::{self, Components};
use crate::read::{Entry, ReadError, Reader};
use crate::root::{DirHandle, Root};
use crate::split::{FileData, Record, Tee};
use crate::whiteout::{self, Name, OverlayXattrs, Target};

/// Whose ownership files get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The uid and gid the layer records (needs privilege).
    Preserve,
    /// Whoever runs the apply (unprivileged extraction).
    Ignore,
}

/// What to do with character and block devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Devices {
    /// Create them; when the kernel says `EPERM` (no CAP_MKNOD, or inside
    /// a user namespace) skip them and say so in the report, as rootless
    /// Docker and Podman do.
    Create,
    /// Refuse the layer.
    Refuse,
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub target: Target,
    pub ownership: Ownership,
    pub devices: Devices,
    /// With an overlay target, the layers below it, topmost first (an
    /// overlay mount's `lowerdir` order). A hard link whose target only
    /// exists in them copies the target up into the layer first, as
    /// applying the layer on the merged view would; without them such a
    /// link is refused.
    pub lowers: Vec<PathBuf>,
}

impl Default for ApplyOptions {
    /// A plain target; ownership preserved when running as root.
    fn default() -> Self {
        ApplyOptions {
            target: Target::Plain,
            ownership: if fs::euid() == 0 {
                Ownership::Preserve
            } else {
                Ownership::Ignore
            },
            devices: Devices::Create,
            lowers: Vec::new(),
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// sha256 of the uncompressed stream: the layer's diffID.
    pub diff_id: Digest,
    pub compression: Compression,
    /// Length of the uncompressed stream.
    pub tar_size: u64,
    /// Bytes of file content written (what Docker's ApplyDiff returns).
    pub size: u64,
    /// Entries in the stream, whiteouts included.
    pub entries: u64,
    /// Entries or attributes left out, and why (devices without
    /// privilege, xattrs the file system refused).
    pub skipped: Vec<String>,
    /// Whether the layer looked in the layers below
    /// ([`ApplyOptions::lowers`]) for a parent it leaves out or a hard
    /// link's target: its result then depends on what they held at that
    /// moment (a load that unpacks layers at once applies such a layer
    /// again once those below are complete).
    pub consulted_lowers: bool,
}

/// Applies the layer read from `input` to the directory `root`.
pub fn apply<R: Read + Send>(input: R, root: &Path, opts: &ApplyOptions) -> Result<ApplyReport> {
    let fd = open_root(root)?;
    apply_at(input, fd, opts, None)
}

pub(crate) fn open_root(root: &Path) -> Result<OwnedFd> {
    fs::open_dir(root).map_err(|e| Error::fs("opening", root.as_os_str().as_encoded_bytes(), e))
}

/// Applies the layer; with `record`, every byte the tar parser reads
/// passes through it (see [`crate::split`]).
pub(crate) fn apply_at<R: Read + Send>(
    input: R,
    root: OwnedFd,
    opts: &ApplyOptions,
    record: Option<&dyn Record>,
) -> Result<ApplyReport> {
    let lowers = match opts.target {
        Target::Overlay(x) if !opts.lowers.is_empty() => {
            // The layer itself first: its whiteouts and opaque
            // directories hide what is below.
            let own = root
                .try_clone()
                .map_err(|e| Error::fs("opening", b"the layer root", e))?;
            Some(Lowers::open(vec![own], &opts.lowers, x))
        }
        _ => None,
    };
    let mut applier = Applier::new(root, opts, record, lowers);
    let (parsed, stream) = compress::read_threaded(input, |reader| match record {
        None => applier.run(reader),
        Some(record) => {
            let mut tee = Tee::new(reader, record);
            applier.run(&mut tee)?;
            // Through the tee: trailing bytes belong in the record.
            io::copy(&mut tee, &mut io::sink())
                .map(|_| ())
                .map_err(|e| Error::stream("reading past the end of the archive", Some(e)))
        }
    });
    // A broken stream explains the parse error it caused: report it
    // first.
    let stream = stream?;
    parsed?;
    Ok(ApplyReport {
        diff_id: stream.diff_id,
        compression: stream.compression,
        tar_size: stream.tar_size,
        size: applier.size,
        entries: applier.entries,
        skipped: applier.skipped,
        consulted_lowers: applier.consulted_lowers,
    })
}

/// Attributes every entry carries.
#[derive(Clone)]
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Time,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A directory whose mode and mtime are set after its children.
struct DirFixup {
    comps: Components,
    mode: u32,
    mtime: Time,
}

struct Applier<'o> {
    root: Root,
    opts: &'o ApplyOptions,
    /// Told where the content of each file written starts, when a
    /// tar-split record is made.
    record: Option<&'o dyn Record>,
    /// Paths this layer wrote: whiteouts and opaque markers only hide what
    /// lies below, never the layer's own entries (OCI layer.md).
    written: HashSet<Vec<u8>>,
    fixups: Vec<DirFixup>,
    /// The layer and the layers below it, when hard links may name files
    /// of the layers below.
    lowers: Option<Lowers<'static>>,
    /// Whether `lowers` were looked in.
    consulted_lowers: bool,
    /// Unprivileged, a 0555 directory would stop us writing its children:
    /// its final mode waits for the end.
    defer_dir_modes: bool,
    buf: Vec<u8>,
    euid: u32,
    egid: u32,
    last_dir: Option<(DirHandle, bool)>,
    size: u64,
    entries: u64,
    skipped: Vec<String>,
    unmapped_owners: u64,
}

const MAX_SKIPPED_NOTES: usize = 100;

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

fn file_type(mode: u32) -> FileType {
    FileType::from_raw_mode(mode)
}

impl<'o> Applier<'o> {
    fn new(
        root: OwnedFd,
        opts: &'o ApplyOptions,
        record: Option<&'o dyn Record>,
        lowers: Option<Lowers<'static>>,
    ) -> Self {
        Applier {
            root: Root::new(root),
            opts,
            record,
            written: HashSet::new(),
            fixups: Vec::new(),
            lowers,
            consulted_lowers: false,
            defer_dir_modes: fs::euid() != 0,
            buf: vec![0u8; 256 * 1024],
            euid: fs::euid(),
            egid: fs::egid(),
            last_dir: None,
            size: 0,
            entries: 0,
            skipped: Vec::new(),
            unmapped_owners: 0,
        }
    }

    /// Sets an entry's owner through `chown(uid, gid)` when ownership is
    /// preserved, and returns the attributes to give it next. `EINVAL`
    /// means the owner is not mapped in this user namespace (a rootless
    /// store mapping only the caller): the entry keeps the caller as its
    /// owner, counted and reported once at the end (never silently), and
    /// loses its set-user-ID and set-group-ID bits and
    /// `security.capability`, which would be the caller's privileges.
    fn own<'m>(
        &mut self,
        raw: &[u8],
        meta: &'m Meta,
        chown: impl FnOnce(u32, u32) -> io::Result<()>,
    ) -> Result<Cow<'m, Meta>> {
        if self.opts.ownership != Ownership::Preserve {
            return Ok(Cow::Borrowed(meta));
        }
        match chown(meta.uid, meta.gid) {
            Ok(()) => Ok(Cow::Borrowed(meta)),
            Err(e) if errno(&e) == Some(Errno::INVAL) => {
                self.unmapped_owners += 1;
                Ok(Cow::Owned(Meta {
                    mode: meta.mode & !0o6000,
                    xattrs: meta
                        .xattrs
                        .iter()
                        .filter(|(k, _)| k.as_slice() != b"security.capability")
                        .cloned()
                        .collect(),
                    ..meta.clone()
                }))
            }
            Err(e) => Err(Error::entry_io(raw, "setting the owner", e)),
        }
    }

    fn skip(&mut self, note: String) {
        tracing::warn!("{note}");
        if self.skipped.len() < MAX_SKIPPED_NOTES {
            self.skipped.push(note);
        }
    }

    fn run(&mut self, reader: impl Read) -> Result<()> {
        let mut tar = Reader::new(reader);
        loop {
            let entry = match tar.next_entry() {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(ReadError::Stream(e)) => {
                    return Err(Error::stream("reading a tar header", Some(e)))
                }
                Err(ReadError::Entry { path, reason }) => return Err(Error::entry(&path, reason)),
            };
            self.entry(&entry, &mut tar)?;
        }
        if self.unmapped_owners > 0 {
            self.skip(format!(
                "{} entries keep the caller as their owner, without set-user-ID, \
                 set-group-ID bits or file capabilities: the uid or gid the layer gives \
                 them is not mapped in this user namespace (subordinate ids in \
                 /etc/subuid and /etc/subgid map more)",
                self.unmapped_owners
            ));
        }
        self.fix_directories()
    }

    fn entry<R: Read>(&mut self, e: &Entry, tar: &mut Reader<R>) -> Result<()> {
        let raw = e.path_bytes().to_vec();
        let Some(ty) = entry_type(e, &raw)? else {
            return Ok(());
        };
        let comps = path::normalize(&raw).map_err(|r| Error::entry(&raw, r))?;
        self.entries += 1;
        let Some((last, parent)) = comps.split_last() else {
            return self.root_entry(&raw, ty, e);
        };
        if parent.iter().any(|c| c.starts_with(whiteout::PREFIX)) {
            return Err(Error::entry(
                &raw,
                "a directory name starts with the reserved whiteout prefix `.wh.`",
            ));
        }
        match whiteout::classify(last).map_err(|r| Error::entry(&raw, r))? {
            Name::Opaque => return self.opaque(&raw, parent),
            Name::Whiteout(target) => return self.whiteout(&raw, parent, target),
            Name::Plain => {}
        }
        let meta = read_meta(e, &raw)?;
        self.copy_up_dirs(&raw, parent)?;
        let dir = self
            .root
            .dir(parent, true)
            .map_err(|err| Error::entry_io(&raw, "resolving the parent directory", err))?
            .expect("created when missing");
        match ty {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                if let Some(record) = self.record {
                    // Content written to a file is referenced by the path
                    // it can be read back from, with no symlink in it.
                    if let Some(parent) = self.root.resolved(parent) {
                        record.file_data(&FileData {
                            path: path::child(&parent, last),
                            data_pos: e.data_pos(),
                            stored: e.stored(),
                            size: e.size(),
                            chunks: e.sparse().map(|s| &s.chunks[..]),
                        });
                    }
                }
                self.file(&raw, &dir, last, &meta, e, tar)?
            }
            EntryType::Directory => self.directory(&raw, &comps, &dir, last, &meta)?,
            EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| Error::entry(&raw, "symlink without a target"))?
                    .to_vec();
                self.symlink(&raw, &dir, last, &target, &meta)?
            }
            EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| Error::entry(&raw, "hard link without a target"))?
                    .to_vec();
                if !self.hardlink(&raw, &comps, &dir, last, &target)? {
                    return Ok(());
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let dev = device(e, &raw, ty)?;
                if !self.node(&raw, &dir, last, ty, dev, &meta)? {
                    return Ok(());
                }
            }
            other => {
                return Err(Error::entry(
                    &raw,
                    format!("unsupported tar entry type {:?}", other.as_byte() as char),
                ))
            }
        }
        self.written.insert(path::join(&comps));
        Ok(())
    }

    /// `./` or `/`: the layer root's own attributes. Anything but a
    /// directory there would replace the root: refused (a symlink named
    /// `.` is CVE-2021-29136).
    fn root_entry(&mut self, raw: &[u8], ty: EntryType, e: &Entry) -> Result<()> {
        if ty != EntryType::Directory {
            return Err(Error::entry(raw, "the entry would replace the layer root"));
        }
        let meta = read_meta(e, raw)?;
        let root = self.root.handle();
        self.set_dir_attrs(raw, root.as_fd(), &meta)?;
        self.fixups.push(DirFixup {
            comps: Vec::new(),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    /// Makes room for a new entry at `dir/name`. Keeps an existing
    /// directory when `merge_dir` (returning true), removes anything else.
    fn clear(
        &mut self,
        raw: &[u8],
        dir: BorrowedFd<'_>,
        name: &[u8],
        merge_dir: bool,
    ) -> Result<Option<FileType>> {
        let st = fs::lstat_at(dir, fs::os(name))
            .map_err(|e| Error::entry_io(raw, "looking up the entry", e))?;
        let Some(st) = st else { return Ok(None) };
        let kind = file_type(st.st_mode);
        if kind == FileType::Directory && merge_dir {
            return Ok(Some(kind));
        }
        remove_all(dir, name)
            .map_err(|e| Error::entry_io(raw, "removing what the entry replaces", e))?;
        self.root.invalidate();
        Ok(Some(kind))
    }

    /// Creates a new node with `create`; when the name is taken, removes
    /// what is there (never following it) and creates again. Trying first
    /// saves a lookup per entry on the common path, a fresh name.
    fn create_or_replace<T>(
        &mut self,
        raw: &[u8],
        dir: BorrowedFd<'_>,
        name: &[u8],
        create: impl Fn() -> io::Result<T>,
    ) -> io::Result<T> {
        match create() {
            Err(e) if errno(&e) == Some(Errno::EXIST) => {
                self.clear(raw, dir, name, false)
                    .map_err(io::Error::other)?;
                create()
            }
            r => r,
        }
    }

    fn file<R: Read>(
        &mut self,
        raw: &[u8],
        dir: &DirHandle,
        name: &[u8],
        meta: &Meta,
        e: &Entry,
        tar: &mut Reader<R>,
    ) -> Result<()> {
        let size = e.size();
        // Created with its final permission bits: when the umask keeps
        // them, no fchmod is needed (see `set_file_attrs`).
        let create = || fs::create_file_at(dir.as_fd(), fs::os(name), meta.mode & 0o777);
        let mut file = self
            .create_or_replace(raw, dir.as_fd(), name, create)
            .map_err(|e| Error::entry_io(raw, "creating the file", e))?;
        let truncated = |written: u64, of: u64| {
            Error::entry(
                raw,
                format!("truncated: the stream ended after {written} of {of} bytes"),
            )
        };
        let write_err = |e| Error::entry_io(raw, "writing the file's content", e);
        match e.sparse() {
            None => {
                let written = copy_data(&mut tar.data(), &mut file, &mut self.buf, size)
                    .map_err(write_err)?;
                if written != size {
                    return Err(truncated(written, size));
                }
            }
            // Only the stored chunks are written, each at its offset: the
            // holes stay holes, and their size costs nothing.
            Some(sparse) => {
                let mut written = 0u64;
                for &(offset, len) in &sparse.chunks {
                    file.seek(SeekFrom::Start(offset)).map_err(write_err)?;
                    let n = copy_data(&mut tar.data(), &mut file, &mut self.buf, len)
                        .map_err(write_err)?;
                    written += n;
                    if n != len {
                        return Err(truncated(written, e.stored()));
                    }
                }
                fs::ftruncate(file.as_fd(), size)
                    .map_err(|e| Error::entry_io(raw, "sizing the sparse file", e))?;
            }
        }
        self.size += size;
        self.set_file_attrs(raw, file.as_fd(), dir, meta)?;
        fs::futimes(file.as_fd(), meta.mtime, meta.mtime)
            .map_err(|e| Error::entry_io(raw, "setting times", e))
    }

    fn directory(
        &mut self,
        raw: &[u8],
        comps: &[Vec<u8>],
        dir: &DirHandle,
        name: &[u8],
        meta: &Meta,
    ) -> Result<()> {
        let mkdir = || fs::mkdir_at(dir.as_fd(), fs::os(name), 0o700);
        let before = match mkdir() {
            Ok(()) => None,
            Err(e) if errno(&e) == Some(Errno::EXIST) => {
                let before = self.clear(raw, dir.as_fd(), name, true)?;
                if before != Some(FileType::Directory) {
                    mkdir().map_err(|e| Error::entry_io(raw, "creating the directory", e))?;
                }
                before
            }
            Err(e) => return Err(Error::entry_io(raw, "creating the directory", e)),
        };
        let fd = fs::open_dir_at(dir.as_fd(), fs::os(name))
            .map_err(|e| Error::entry_io(raw, "opening the directory", e))?;
        if before == Some(FileType::Directory) {
            // Merging takes the entry's attributes, all of them: xattrs
            // the entry does not carry go (a directory replaced in a
            // container must not keep the old one's).
            drop_other_xattrs(fd.as_fd(), &meta.xattrs)
                .map_err(|e| Error::entry_io(raw, "removing old xattrs", e))?;
        }
        self.set_dir_attrs(raw, fd.as_fd(), meta)?;
        if let (Target::Overlay(x), Some(FileType::CharacterDevice)) = (self.opts.target, before) {
            // A directory replacing this layer's whiteout of the same name
            // replaces the lower directory: it must not show its content.
            set_opaque(fd.as_fd(), x)
                .map_err(|e| Error::entry_io(raw, "marking the directory opaque", e))?;
        }
        self.fixups.push(DirFixup {
            comps: comps.to_vec(),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn set_dir_attrs(&mut self, raw: &[u8], fd: BorrowedFd<'_>, meta: &Meta) -> Result<()> {
        if self.defer_dir_modes {
            let m = Meta {
                mode: meta.mode | 0o700,
                xattrs: Vec::new(),
                ..*meta
            };
            self.set_attrs(raw, fd, false, &m)?;
            return self.set_xattrs(raw, fd, false, &meta.xattrs);
        }
        self.set_attrs(raw, fd, false, meta)
    }

    fn symlink(
        &mut self,
        raw: &[u8],
        dir: &DirHandle,
        name: &[u8],
        target: &[u8],
        meta: &Meta,
    ) -> Result<()> {
        if target.is_empty() || target.contains(&0) {
            return Err(Error::entry(raw, "symlink target is empty or contains NUL"));
        }
        let create = || fs::symlink_at(fs::os(target), dir.as_fd(), fs::os(name));
        self.create_or_replace(raw, dir.as_fd(), name, create)
            .map_err(|e| Error::entry_io(raw, "creating the symlink", e))?;
        // A symlink's mode is not its own, nor are its set-ID bits.
        self.own(raw, meta, |u, g| {
            fs::lchown_at(dir.as_fd(), fs::os(name), u, g)
        })?;
        if !meta.xattrs.is_empty() {
            let node = fs::open_path_at(dir.as_fd(), fs::os(name))
                .map_err(|e| Error::entry_io(raw, "opening the symlink", e))?;
            self.set_xattrs(raw, node.as_fd(), true, &meta.xattrs)?;
        }
        fs::lutimes_at(dir.as_fd(), fs::os(name), meta.mtime, meta.mtime)
            .map_err(|e| Error::entry_io(raw, "setting times", e))
    }

    /// A hard link to a name earlier in the layer (or, on a plain target,
    /// below it; on an overlay target given its lower layers, in them:
    /// the target is copied up first), resolved inside the root; the link
    /// itself is never followed (a hard link to a symlink links the
    /// symlink). Returns false when the entry links a name to itself.
    fn hardlink(
        &mut self,
        raw: &[u8],
        comps: &[Vec<u8>],
        dir: &DirHandle,
        name: &[u8],
        target: &[u8],
    ) -> Result<bool> {
        let tcomps = path::normalize(target)
            .map_err(|r| Error::entry(raw, format!("hard link target: {r}")))?;
        if tcomps == comps {
            return Ok(false);
        }
        let Some((tname, tparent)) = tcomps.split_last() else {
            return Err(Error::entry(raw, "hard link to the layer root"));
        };
        let missing = || Error::MissingLinkTarget {
            entry: String::from_utf8_lossy(raw).into_owned(),
            target: String::from_utf8_lossy(target).into_owned(),
        };
        let resolve = |root: &mut Root| -> Result<Option<(DirHandle, Option<strata_sys::Stat>)>> {
            let Some(tdir) = root
                .dir(tparent, false)
                .map_err(|e| Error::entry_io(raw, "resolving the hard link target", e))?
            else {
                return Ok(None);
            };
            let st = fs::lstat_at(tdir.as_fd(), fs::os(tname))
                .map_err(|e| Error::entry_io(raw, "looking up the hard link target", e))?;
            Ok(Some((tdir, st)))
        };
        let mut found = resolve(&mut self.root)?;
        let absent = match &found {
            None | Some((_, None)) => true,
            // Over lower layers, the layer's own whiteout: the name is
            // gone from the merged view.
            Some((_, Some(st))) => self.lowers.is_some() && crate::lower::is_whiteout(st),
        };
        if absent {
            if !self.copy_up(raw, &tcomps)? {
                return Err(missing());
            }
            found = resolve(&mut self.root)?;
        }
        let tdir = match found {
            None | Some((_, None)) => return Err(missing()),
            Some((_, Some(st))) if file_type(st.st_mode) == FileType::Directory => {
                return Err(Error::entry(raw, "hard link to a directory"))
            }
            Some((tdir, Some(_))) => tdir,
        };
        let create = || fs::link_at(tdir.as_fd(), fs::os(tname), dir.as_fd(), fs::os(name));
        self.create_or_replace(raw, dir.as_fd(), name, create)
            .map_err(|e| Error::entry_io(raw, "creating the hard link", e))?;
        Ok(true)
    }

    /// Copies `comps`, which the layer does not have, up from the layers
    /// below into the layer (its missing parent directories with their
    /// owner, mode and times), as overlayfs does before a link. Returns
    /// false when no layer below shows it.
    fn copy_up(&mut self, raw: &[u8], comps: &[Vec<u8>]) -> Result<bool> {
        let Some(lowers) = self.lowers.take() else {
            return Ok(false);
        };
        let done = self.copy_up_from(&lowers, raw, comps);
        self.lowers = Some(lowers);
        done
    }

    fn copy_up_from(&mut self, lowers: &Lowers, raw: &[u8], comps: &[Vec<u8>]) -> Result<bool> {
        let io_err = |e| Error::entry_io(raw, "copying the hard link target up", e);
        self.consulted_lowers = true;
        let Some((layer, ldir, st)) = lowers.find(comps).map_err(io_err)? else {
            return Ok(false);
        };
        if layer == 0 {
            // In the layer itself (but not where the walk in the root led).
            return Ok(false);
        }
        if file_type(st.st_mode) == FileType::Directory {
            return Err(Error::entry(raw, "hard link to a directory"));
        }
        let (name, parent) = comps.split_last().expect("not the root");
        self.copy_up_dirs_from(lowers, raw, parent)?;
        let tdir = self
            .root
            .dir(parent, false)
            .map_err(io_err)?
            .ok_or_else(|| Error::entry(raw, "a copied-up directory vanished"))?;
        let tdir = tdir.as_fd();
        let n = fs::os(name);
        // Whatever the layer has there (its whiteout) goes.
        self.clear(raw, tdir, name, false)?;
        let (atime, mtime) = times(&st);
        let kind = file_type(st.st_mode);
        match kind {
            FileType::RegularFile => {
                let (mut src, _) =
                    fs::open_regular_at(ldir.as_fd(), n, Some(&st)).map_err(io_err)?;
                let mut dst = fs::create_file_at(tdir, n, 0o600).map_err(io_err)?;
                // Content the layer now holds, as a diff size counts it.
                self.size += io::copy(&mut src, &mut dst).map_err(io_err)?;
                if self.opts.ownership == Ownership::Preserve {
                    fs::fchown(dst.as_fd(), st.st_uid, st.st_gid).map_err(io_err)?;
                }
                fs::fchmod(dst.as_fd(), st.st_mode & 0o7777).map_err(io_err)?;
                let xattrs = xattr::all(src.as_fd(), false).map_err(io_err)?;
                self.set_xattrs(raw, dst.as_fd(), false, &without_overlay(xattrs))?;
                fs::futimes(dst.as_fd(), atime, mtime).map_err(io_err)?;
            }
            FileType::Symlink => {
                let target = fs::readlink_at(ldir.as_fd(), n).map_err(io_err)?;
                fs::symlink_at(fs::os(&target), tdir, n).map_err(io_err)?;
                if self.opts.ownership == Ownership::Preserve {
                    fs::lchown_at(tdir, n, st.st_uid, st.st_gid).map_err(io_err)?;
                }
                fs::lutimes_at(tdir, n, atime, mtime).map_err(io_err)?;
            }
            _ => {
                fs::mknod_at(tdir, n, kind, 0o600, st.st_rdev).map_err(io_err)?;
                if self.opts.ownership == Ownership::Preserve {
                    fs::lchown_at(tdir, n, st.st_uid, st.st_gid).map_err(io_err)?;
                }
                let node = fs::open_path_at(tdir, n).map_err(io_err)?;
                fs::chmod_node(node.as_fd(), st.st_mode & 0o7777).map_err(io_err)?;
                fs::lutimes_at(tdir, n, atime, mtime).map_err(io_err)?;
            }
        }
        Ok(true)
    }

    /// Creates the directories of `comps` the layer does not have but the
    /// layers below show, with their owner, mode and times, as overlayfs
    /// copies them up before writing in them: an entry whose parents the
    /// layer leaves out does not change how they look in the merged view.
    fn copy_up_dirs(&mut self, raw: &[u8], comps: &[Vec<u8>]) -> Result<()> {
        let Some(lowers) = self.lowers.take() else {
            return Ok(());
        };
        let done = self.copy_up_dirs_from(&lowers, raw, comps);
        self.lowers = Some(lowers);
        done
    }

    fn copy_up_dirs_from(&mut self, lowers: &Lowers, raw: &[u8], comps: &[Vec<u8>]) -> Result<()> {
        let io_err = |e| Error::entry_io(raw, "copying a directory up", e);
        let mut created = Vec::new();
        for i in 1..=comps.len() {
            let prefix = &comps[..i];
            match self.root.dir(prefix, false) {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                // Not a directory in the layer: the usual walk says so.
                Err(_) => break,
            }
            self.consulted_lowers = true;
            let Some((layer, ldir, st)) = lowers.find(prefix).map_err(io_err)? else {
                break;
            };
            if layer == 0 || file_type(st.st_mode) != FileType::Directory {
                break;
            }
            let (name, up) = prefix.split_last().expect("one component at least");
            let Some(updir) = self.root.dir(up, false).map_err(io_err)? else {
                break;
            };
            fs::mkdir_at(updir.as_fd(), fs::os(name), 0o700).map_err(io_err)?;
            let fd = fs::open_dir_at(updir.as_fd(), fs::os(name)).map_err(io_err)?;
            if self.opts.ownership == Ownership::Preserve {
                fs::fchown(fd.as_fd(), st.st_uid, st.st_gid).map_err(io_err)?;
            }
            fs::fchmod(fd.as_fd(), st.st_mode & 0o7777).map_err(io_err)?;
            let lower = fs::open_dir_at(ldir.as_fd(), fs::os(name)).map_err(io_err)?;
            let xattrs = xattr::all(lower.as_fd(), false).map_err(io_err)?;
            self.set_xattrs(raw, fd.as_fd(), false, &without_overlay(xattrs))?;
            created.push((fd, st));
        }
        // Children first: making each directory changed its parent's time.
        for (fd, st) in created.iter().rev() {
            let (atime, mtime) = times(st);
            fs::futimes(fd.as_fd(), atime, mtime).map_err(io_err)?;
        }
        Ok(())
    }

    /// Fifos and devices. Returns false when a device was skipped.
    fn node(
        &mut self,
        raw: &[u8],
        dir: &DirHandle,
        name: &[u8],
        ty: EntryType,
        dev: u64,
        meta: &Meta,
    ) -> Result<bool> {
        let kind = match ty {
            EntryType::Char => FileType::CharacterDevice,
            EntryType::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        if kind != FileType::Fifo && self.opts.devices == Devices::Refuse {
            return Err(Error::entry(raw, "device nodes are not allowed here"));
        }
        self.clear(raw, dir.as_fd(), name, false)?;
        match fs::mknod_at(dir.as_fd(), fs::os(name), kind, 0o600, dev) {
            Ok(()) => {}
            Err(e) if kind != FileType::Fifo && errno(&e) == Some(Errno::PERM) => {
                self.skip(format!(
                    "{}: device node skipped: no privilege to create it",
                    String::from_utf8_lossy(raw)
                ));
                return Ok(false);
            }
            Err(e) => return Err(Error::entry_io(raw, "creating the node", e)),
        }
        let node = fs::open_path_at(dir.as_fd(), fs::os(name))
            .map_err(|e| Error::entry_io(raw, "opening the node", e))?;
        let meta = self.own(raw, meta, |u, g| {
            fs::lchown_at(dir.as_fd(), fs::os(name), u, g)
        })?;
        fs::chmod_node(node.as_fd(), meta.mode)
            .map_err(|e| Error::entry_io(raw, "setting the mode", e))?;
        self.set_xattrs(raw, node.as_fd(), true, &meta.xattrs)?;
        fs::lutimes_at(dir.as_fd(), fs::os(name), meta.mtime, meta.mtime)
            .map_err(|e| Error::entry_io(raw, "setting times", e))?;
        Ok(true)
    }

    /// `set_attrs` for a regular file just created with `meta.mode & 0o777`,
    /// skipping the calls that would change nothing: fchown when the file
    /// already has the owner (ours, and the group is not inherited from a
    /// set-group-id directory), fchmod when the umask kept every bit and
    /// there are no set-id or sticky bits. Most files of most layers are
    /// root's with ordinary modes: this saves two syscalls each.
    fn set_file_attrs(
        &mut self,
        raw: &[u8],
        fd: BorrowedFd<'_>,
        dir: &DirHandle,
        meta: &Meta,
    ) -> Result<()> {
        let owned = meta.uid == self.euid && meta.gid == self.egid && !self.setgid_dir(dir);
        let meta = if owned {
            Cow::Borrowed(meta)
        } else {
            self.own(raw, meta, |u, g| fs::fchown(fd, u, g))?
        };
        let kept = meta.mode & 0o7000 == 0 && fs::umask_keeps(meta.mode);
        if !kept {
            fs::fchmod(fd, meta.mode).map_err(|e| Error::entry_io(raw, "setting the mode", e))?;
        }
        self.set_xattrs(raw, fd, false, &meta.xattrs)
    }

    /// Whether new files in `dir` take its group (set-group-id bit),
    /// remembered for the last directory asked about.
    fn setgid_dir(&mut self, dir: &DirHandle) -> bool {
        if let Some((d, setgid)) = &self.last_dir {
            if std::rc::Rc::ptr_eq(d, dir) {
                return *setgid;
            }
        }
        // Unknown counts as set-group-id: then fchown always runs.
        let setgid = fs::fstat(dir.as_fd()).map_or(true, |st| st.st_mode & 0o2000 != 0);
        self.last_dir = Some((dir.clone(), setgid));
        setgid
    }

    /// Owner, then mode (chown clears set-id bits), then xattrs.
    fn set_attrs(
        &mut self,
        raw: &[u8],
        fd: BorrowedFd<'_>,
        o_path: bool,
        meta: &Meta,
    ) -> Result<()> {
        let meta = self.own(raw, meta, |u, g| fs::fchown(fd, u, g))?;
        fs::fchmod(fd, meta.mode).map_err(|e| Error::entry_io(raw, "setting the mode", e))?;
        self.set_xattrs(raw, fd, o_path, &meta.xattrs)
    }

    fn set_xattrs(
        &mut self,
        raw: &[u8],
        fd: BorrowedFd<'_>,
        o_path: bool,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        for (k, v) in xattrs {
            if whiteout::is_overlay_private(k) {
                self.skip(format!(
                    "{}: overlay-private xattr {} dropped",
                    String::from_utf8_lossy(raw),
                    String::from_utf8_lossy(k)
                ));
                continue;
            }
            match xattr::set(fd, o_path, k, v) {
                Ok(()) => {}
                Err(e) if matches!(errno(&e), Some(Errno::PERM) | Some(Errno::OPNOTSUPP)) => self
                    .skip(format!(
                        "{}: xattr {} not set: {e}",
                        String::from_utf8_lossy(raw),
                        String::from_utf8_lossy(k)
                    )),
                Err(e) => return Err(Error::entry_io(raw, "setting an xattr", e)),
            }
        }
        Ok(())
    }

    /// `.wh.NAME`: NAME is deleted from the layers below.
    fn whiteout(&mut self, raw: &[u8], parent: &[Vec<u8>], target: &[u8]) -> Result<()> {
        let target_path = path::child(&path::join(parent), target);
        if self.written.contains(&target_path) {
            // The layer's own entries are not hidden by its whiteouts.
            return Ok(());
        }
        match self.opts.target {
            Target::Plain => {
                let dir = self
                    .root
                    .dir(parent, false)
                    .map_err(|e| Error::entry_io(raw, "resolving the whiteout's directory", e))?;
                if let Some(dir) = dir {
                    self.clear(raw, dir.as_fd(), target, false)?;
                }
            }
            Target::Overlay(_) => {
                self.copy_up_dirs(raw, parent)?;
                let dir = self
                    .root
                    .dir(parent, true)
                    .map_err(|e| Error::entry_io(raw, "resolving the whiteout's directory", e))?
                    .expect("created when missing");
                self.clear(raw, dir.as_fd(), target, false)?;
                fs::mknod_at(dir.as_fd(), fs::os(target), FileType::CharacterDevice, 0, 0)
                    .map_err(|e| Error::entry_io(raw, "creating the overlay whiteout", e))?;
            }
        }
        Ok(())
    }

    /// `.wh..wh..opq`: nothing below shows through the directory. Applied
    /// as if it came before its siblings, wherever it is in the stream.
    fn opaque(&mut self, raw: &[u8], dir_comps: &[Vec<u8>]) -> Result<()> {
        match self.opts.target {
            Target::Plain => {
                let dir = self
                    .root
                    .dir(dir_comps, false)
                    .map_err(|e| Error::entry_io(raw, "resolving the opaque directory", e))?;
                if let Some(dir) = dir {
                    self.remove_lower_children(raw, dir.as_fd(), &path::join(dir_comps))?;
                    self.root.invalidate();
                }
            }
            Target::Overlay(x) => {
                self.copy_up_dirs(raw, dir_comps)?;
                let dir = self
                    .root
                    .dir(dir_comps, true)
                    .map_err(|e| Error::entry_io(raw, "resolving the opaque directory", e))?
                    .expect("created when missing");
                set_opaque(dir.as_fd(), x)
                    .map_err(|e| Error::entry_io(raw, "marking the directory opaque", e))?;
            }
        }
        Ok(())
    }

    /// Removes everything under `dir` that this layer did not write.
    fn remove_lower_children(
        &mut self,
        raw: &[u8],
        dir: BorrowedFd<'_>,
        dir_path: &[u8],
    ) -> Result<()> {
        let children = fs::read_dir(dir)
            .map_err(|e| Error::entry_io(raw, "listing the opaque directory", e))?;
        for c in children {
            let p = path::child(dir_path, &c.name);
            if !self.written.contains(&p) {
                remove_all(dir, &c.name)
                    .map_err(|e| Error::entry_io(raw, "removing a hidden entry", e))?;
                continue;
            }
            let st = fs::lstat_at(dir, fs::os(&c.name))
                .map_err(|e| Error::entry_io(raw, "looking up an entry", e))?;
            if st.is_some_and(|st| file_type(st.st_mode) == FileType::Directory) {
                let sub = fs::open_dir_at(dir, fs::os(&c.name))
                    .map_err(|e| Error::entry_io(raw, "opening a directory", e))?;
                self.remove_lower_children(raw, sub.as_fd(), &p)?;
            }
        }
        Ok(())
    }

    /// Directory modes (when deferred) and mtimes, children first, after
    /// everything else was written.
    fn fix_directories(&mut self) -> Result<()> {
        let fixups = std::mem::take(&mut self.fixups);
        for f in fixups.iter().rev() {
            let raw = path::join(&f.comps);
            let fd = match f.comps.split_last() {
                None => Some(self.root.handle()),
                Some((name, parent)) => {
                    let dir = self.root.dir(parent, false).ok().flatten();
                    // A later entry may have replaced the directory: then
                    // its fixup no longer applies.
                    dir.and_then(|d| {
                        fs::open_dir_at(d.as_fd(), fs::os(name))
                            .ok()
                            .map(std::rc::Rc::new)
                    })
                }
            };
            let Some(fd) = fd else { continue };
            if self.defer_dir_modes {
                fs::fchmod(fd.as_fd(), f.mode)
                    .map_err(|e| Error::entry_io(&raw, "setting the mode", e))?;
            }
            fs::futimes(fd.as_fd(), f.mtime, f.mtime)
                .map_err(|e| Error::entry_io(&raw, "setting times", e))?;
        }
        Ok(())
    }
}

/// The type an entry is applied as, `None` for a member that carries no
/// file (a PAX global header); refuses a member whose sizes disagree.
pub(crate) fn entry_type(e: &Entry, raw: &[u8]) -> Result<Option<EntryType>> {
    let mut ty = e.header().entry_type();
    match ty {
        EntryType::XGlobalHeader => return Ok(None),
        // A V7 "regular file" whose name ends in `/` is a directory.
        EntryType::Regular if raw.ends_with(b"/") => ty = EntryType::Directory,
        _ => {}
    }
    if !ty.is_gnu_sparse() {
        // RUSTSEC-2026-0068 ("TARmageddon"): a PAX `size` that
        // disagrees with the header makes readers see different
        // files. Refuse the ambiguity instead of picking a side.
        let header_size = e
            .header()
            .entry_size()
            .map_err(|err| Error::entry(raw, format!("bad size field: {err}")))?;
        if header_size != 0 && header_size != e.declared_size() {
            return Err(Error::entry(
                raw,
                format!(
                    "PAX size {} disagrees with the header size {header_size}",
                    e.declared_size()
                ),
            ));
        }
    }
    Ok(Some(ty))
}

/// A node's access and modification times.
fn times(st: &strata_sys::Stat) -> (Time, Time) {
    let t = |sec: i64, nsec: u64| Time {
        sec,
        nsec: nsec.min(999_999_999) as u32,
    };
    (
        t(st.st_atime, st.st_atime_nsec),
        t(st.st_mtime, st.st_mtime_nsec),
    )
}

/// `xattrs` less the overlay-private ones (a lower layer's whiteout and
/// opaque markers, or what overlayfs keeps on its own copies).
fn without_overlay(xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    xattrs
        .into_iter()
        .filter(|(k, _)| !whiteout::is_overlay_private(k))
        .collect()
}

/// Removes the xattrs of `fd` that `keep` does not list, leaving
/// overlay-private ones (the opaque marker of an overlay target) and
/// `security.*` ones (set by the system, not by layers).
fn drop_other_xattrs(fd: BorrowedFd<'_>, keep: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
    for name in xattr::list(fd, false)? {
        let kept = keep.iter().any(|(k, _)| *k == name);
        if !kept && !whiteout::is_overlay_private(&name) && !name.starts_with(b"security.") {
            xattr::remove(fd, false, &name)?;
        }
    }
    Ok(())
}

fn set_opaque(dir: BorrowedFd<'_>, x: OverlayXattrs) -> io::Result<()> {
    xattr::set(dir, false, x.opaque(), b"y")
}

/// Removes `dir/name`, recursively when it is a directory, never
/// following a symlink.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let name_os = fs::os(name);
    match fs::unlink_at(dir, name_os) {
        Ok(()) => return Ok(()),
        Err(e) if matches!(errno(&e), Some(Errno::ISDIR) | Some(Errno::PERM)) => {}
        Err(e) if errno(&e) == Some(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    }
    let sub = fs::open_dir_at(dir, name_os)?;
    for c in fs::read_dir(sub.as_fd())? {
        remove_all(sub.as_fd(), &c.name)?;
    }
    drop(sub);
    fs::rmdir_at(dir, name_os)
}

/// Copies up to `len` bytes of an entry's content at the file's offset;
/// returns how many there were.
fn copy_data(src: &mut impl Read, dst: &mut File, buf: &mut [u8], len: u64) -> io::Result<u64> {
    let mut total = 0u64;
    while total < len {
        let k = buf
            .len()
            .min(usize::try_from(len - total).unwrap_or(usize::MAX));
        let n = match src.read(&mut buf[..k]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok(total)
}

pub(crate) fn device(e: &Entry, raw: &[u8], ty: EntryType) -> Result<u64> {
    if ty == EntryType::Fifo {
        return Ok(0);
    }
    let h = e.header();
    let bad = |what: String| Error::entry(raw, what);
    let major = h
        .device_major()
        .map_err(|err| bad(format!("bad device major: {err}")))?
        .unwrap_or(0);
    let minor = h
        .device_minor()
        .map_err(|err| bad(format!("bad device minor: {err}")))?
        .unwrap_or(0);
    if ty == EntryType::Char && major == 0 && minor == 0 {
        return Err(bad(
            "character device 0/0 is an overlay whiteout, not a layer entry; layers use `.wh.` files".into(),
        ));
    }
    fs::makedev(major, minor)
        .ok_or_else(|| bad(format!("device number {major}:{minor} out of range")))
}

pub(crate) fn read_meta(e: &Entry, raw: &[u8]) -> Result<Meta> {
    let h = e.header();
    let bad = |what: &str, err: io::Error| Error::entry(raw, format!("bad {what} field: {err}"));
    let old = h.as_old();
    let mode = numeric(&old.mode, h.mode().map(u64::from)).map_err(|err| bad("mode", err))? as u32
        & 0o7777;
    let mut uid = numeric(&old.uid, h.uid()).map_err(|err| bad("uid", err))?;
    let mut gid = numeric(&old.gid, h.gid()).map_err(|err| bad("gid", err))?;
    let mut mtime = Time {
        sec: numeric(&old.mtime, h.mtime())
            .map_err(|err| bad("mtime", err))?
            .min(i64::MAX as u64) as i64,
        nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(pax) = e.pax_extensions() {
        for rec in pax {
            let rec = rec.map_err(|err| Error::entry(raw, format!("bad PAX record: {err}")))?;
            let key = rec.key_bytes();
            let value = rec.value_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                if name.is_empty() || name.contains(&0) {
                    return Err(Error::entry(raw, "xattr with an empty or NUL name"));
                }
                xattrs.push((name.to_vec(), value.to_vec()));
                continue;
            }
            let number = || -> Result<u64> {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::entry(raw, "bad number in a PAX record"))
            };
            match key {
                b"uid" => uid = number()?,
                b"gid" => gid = number()?,
                b"mtime" => {
                    mtime = pax_time(value).ok_or_else(|| Error::entry(raw, "bad PAX mtime"))?
                }
                _ => {}
            }
        }
    }
    let id = |v: u64, what: &str| -> Result<u32> {
        u32::try_from(v).map_err(|_| Error::entry(raw, format!("{what} {v} out of range")))
    };
    Ok(Meta {
        mode,
        uid: id(uid, "uid")?,
        gid: id(gid, "gid")?,
        mtime,
        xattrs,
    })
}

/// A numeric header field; an empty one (all NUL or spaces, as some
/// writers leave fields they do not use) reads as 0, as Go's archive/tar
/// and GNU tar read it.
fn numeric(field: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if field.iter().all(|b| *b == 0 || *b == b' ') {
        return Ok(0);
    }
    parsed
}

/// A PAX time: decimal seconds, optionally with a fraction.
fn pax_time(v: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let sec: i64 = sec.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: u32 = digits.parse().ok()?;
    // Negative times count the fraction away from zero.
    let (sec, nsec) = if sec < 0 && nsec > 0 && s.starts_with('-') {
        (sec - 1, 1_000_000_000 - nsec)
    } else {
        (sec, nsec)
    };
    Some(Time { sec, nsec })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_time_keeps_nanoseconds() {
        assert_eq!(
            pax_time(b"1700000000.5"),
            Some(Time {
                sec: 1_700_000_000,
                nsec: 500_000_000
            })
        );
        assert_eq!(pax_time(b"12"), Some(Time { sec: 12, nsec: 0 }));
        assert_eq!(
            pax_time(b"1.1234567891"),
            Some(Time {
                sec: 1,
                nsec: 123_456_789
            })
        );
        assert_eq!(pax_time(b"x"), None);
    }
}
