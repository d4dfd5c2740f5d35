//! btrfs subvolumes, snapshots and quota groups, through the file system's
//! ioctls (`linux/btrfs.h`; the kernel's documentation:
//! <https://btrfs.readthedocs.io/en/latest/btrfs-ioctl.html>).
//!
//! One small function per ioctl, working on directory handles: `dir` is
//! the directory holding a subvolume, `name` the subvolume's name in it.
//! Deleting a subvolume, searching the root tree and setting quota need
//! `CAP_SYS_ADMIN`.
//!
//! # Safety
//!
//! Every ioctl here is `unsafe` in rustix because the kernel reads or
//! writes the argument as the C structure the opcode names. Each
//! structure below is `#[repr(C)]` with the exact layout of its
//! `linux/btrfs.h` counterpart (sizes checked by the tests), each opcode
//! is built from that structure's size, and every argument is owned by
//! the call for its whole duration.
#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::io::Errno;
use rustix::ioctl::{ioctl, opcode, Getter, NoArg, Opcode, Setter, Updater};

/// `BTRFS_IOCTL_MAGIC`.
const MAGIC: u8 = 0x94;
/// `BTRFS_FIRST_FREE_OBJECTID`: the inode number of a subvolume's root
/// directory.
pub const SUBVOL_ROOT_INO: u64 = 256;
/// `BTRFS_SUPER_MAGIC`, as `statfs(2)` gives it.
pub const SUPER_MAGIC: i64 = 0x9123_683E;
/// `BTRFS_SUBVOL_RDONLY`.
const SUBVOL_RDONLY: u64 = 1 << 1;
/// `BTRFS_ROOT_TREE_OBJECTID`: the tree of trees.
const ROOT_TREE: u64 = 1;
/// `BTRFS_QUOTA_TREE_OBJECTID`.
const QUOTA_TREE: u64 = 8;
/// `BTRFS_ROOT_REF_KEY`: "subvolume `offset` sits in subvolume
/// `objectid`", with the directory and name it sits at.
const ROOT_REF_KEY: u32 = 156;
/// `BTRFS_QGROUP_LIMIT_KEY`.
const QGROUP_LIMIT_KEY: u32 = 244;
/// `BTRFS_QUOTA_CTL_ENABLE`.
const QUOTA_CTL_ENABLE: u64 = 1;
/// `BTRFS_QGROUP_LIMIT_MAX_RFER`.
const LIMIT_MAX_RFER: u64 = 1 << 0;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; 4088],
}

/// `struct btrfs_ioctl_vol_args_v2`, with the `size`/`qgroup_inherit`
/// union as the four words it spans and the name arm of the last union.
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; 4040],
}

/// `struct btrfs_ioctl_ino_lookup_args`.
#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

/// `struct btrfs_ioctl_search_key`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SearchKey {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: [u64; 4],
}

/// `BTRFS_SEARCH_ARGS_BUFSIZE`.
const SEARCH_BUF: usize = 4096 - std::mem::size_of::<SearchKey>();

/// `struct btrfs_ioctl_search_args`.
#[repr(C)]
struct SearchArgs {
    key: SearchKey,
    buf: [u8; SEARCH_BUF],
}

/// `struct btrfs_ioctl_quota_ctl_args`.
#[repr(C)]
struct QuotaCtlArgs {
    cmd: u64,
    status: u64,
}

/// `struct btrfs_ioctl_qgroup_limit_args` (with its `struct
/// btrfs_qgroup_limit` inline).
#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

/// `struct btrfs_ioctl_timespec` (padded to 16 bytes, as in C).
#[repr(C)]
#[derive(Clone, Copy)]
struct Timespec {
    sec: u64,
    nsec: u32,
}

/// `struct btrfs_ioctl_get_subvol_info_args`.
#[repr(C)]
struct SubvolInfoArgs {
    treeid: u64,
    name: [u8; 256],
    parent_id: u64,
    dirid: u64,
    generation: u64,
    flags: u64,
    uuid: [u8; 16],
    parent_uuid: [u8; 16],
    received_uuid: [u8; 16],
    ctransid: u64,
    otransid: u64,
    stransid: u64,
    rtransid: u64,
    times: [Timespec; 4],
    reserved: [u64; 8],
}

const SUBVOL_CREATE: Opcode = opcode::write::<VolArgs>(MAGIC, 14);
const SNAP_DESTROY: Opcode = opcode::write::<VolArgs>(MAGIC, 15);
const TREE_SEARCH: Opcode = opcode::read_write::<SearchArgs>(MAGIC, 17);
const INO_LOOKUP: Opcode = opcode::read_write::<InoLookupArgs>(MAGIC, 18);
const SNAP_CREATE_V2: Opcode = opcode::write::<VolArgsV2>(MAGIC, 23);
const SUBVOL_GETFLAGS: Opcode = opcode::read::<u64>(MAGIC, 25);
const SUBVOL_SETFLAGS: Opcode = opcode::write::<u64>(MAGIC, 26);
const QUOTA_CTL: Opcode = opcode::read_write::<QuotaCtlArgs>(MAGIC, 40);
// `_IOR` in `linux/btrfs.h`, though the kernel only reads the argument.
const QGROUP_LIMIT: Opcode = opcode::read::<QgroupLimitArgs>(MAGIC, 43);
const QUOTA_RESCAN_WAIT: Opcode = opcode::none(MAGIC, 46);
const GET_SUBVOL_INFO: Opcode = opcode::read::<SubvolInfoArgs>(MAGIC, 60);
/// `BTRFS_INODE_REF_KEY` and `BTRFS_INODE_EXTREF_KEY`: an inode's names.
const INODE_REF_KEY: u32 = 12;
const INODE_EXTREF_KEY: u32 = 13;
/// `BTRFS_LAST_FREE_OBJECTID`: the last inode number.
const LAST_FREE_OBJECTID: u64 = -256i64 as u64;

/// A subvolume name as the kernel takes it: one path component, NUL
/// padded into `N` bytes with room for the terminating NUL.
fn name_field<const N: usize>(name: &OsStr) -> io::Result<[u8; N]> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(Errno::INVAL.into());
    }
    if b.len() >= N {
        return Err(Errno::NAMETOOLONG.into());
    }
    let mut out = [0u8; N];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// `BTRFS_IOC_SUBVOL_CREATE`: a new, empty subvolume `name` in `dir`.
pub fn subvol_create(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    vol_args_ioctl::<SUBVOL_CREATE>(dir, name)
}

/// An ioctl on `dir` whose argument is a `struct btrfs_ioctl_vol_args`
/// naming `name`: `OPCODE` is [`SUBVOL_CREATE`] or [`SNAP_DESTROY`], the
/// two that read that struct.
fn vol_args_ioctl<const OPCODE: Opcode>(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let args = VolArgs {
        fd: 0,
        name: name_field(name)?,
    };
    // SAFETY: `VolArgs` is `struct btrfs_ioctl_vol_args`, the argument
    // SUBVOL_CREATE and SNAP_DESTROY read (see the module's Safety
    // section), and they are the only opcodes the callers pass.
    unsafe { ioctl(dir, Setter::<OPCODE, VolArgs>::new(args))? };
    Ok(())
}

/// `BTRFS_IOC_SNAP_CREATE_V2`: subvolume `name` in `dir`, a snapshot of
/// the subvolume whose root `source` is (read-only when asked). O(1): the
/// snapshot shares every extent with its source.
pub fn snapshot(
    source: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    readonly: bool,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let args = VolArgsV2 {
        fd: i64::from(source.as_raw_fd()),
        transid: 0,
        flags: if readonly { SUBVOL_RDONLY } else { 0 },
        unused: [0; 4],
        name: name_field(name)?,
    };
    // SAFETY: `VolArgsV2` is `struct btrfs_ioctl_vol_args_v2` with no
    // qgroup_inherit pointer (the flag saying there is one is not set);
    // `source` stays open for the call.
    unsafe { ioctl(dir, Setter::<SNAP_CREATE_V2, VolArgsV2>::new(args))? };
    Ok(())
}

/// `BTRFS_IOC_SNAP_DESTROY`: deletes the subvolume `name` in `dir`.
/// `ENOTEMPTY` while subvolumes sit inside it (delete those first: see
/// [`child_subvols`]); works on read-only subvolumes.
pub fn subvol_destroy(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    vol_args_ioctl::<SNAP_DESTROY>(dir, name)
}

/// `BTRFS_IOC_SUBVOL_GETFLAGS`: whether the subvolume whose root `subvol`
/// is, is read-only.
pub fn is_readonly(subvol: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: SUBVOL_GETFLAGS writes one `u64`, which the Getter owns.
    let flags = unsafe { ioctl(subvol, Getter::<SUBVOL_GETFLAGS, u64>::new())? };
    Ok(flags & SUBVOL_RDONLY != 0)
}

/// `BTRFS_IOC_SUBVOL_SETFLAGS`: makes the subvolume whose root `subvol`
/// is read-only, or writable again.
pub fn set_readonly(subvol: BorrowedFd<'_>, readonly: bool) -> io::Result<()> {
    let flags: u64 = if readonly { SUBVOL_RDONLY } else { 0 };
    // SAFETY: SUBVOL_SETFLAGS reads one `u64`.
    unsafe { ioctl(subvol, Setter::<SUBVOL_SETFLAGS, u64>::new(flags))? };
    Ok(())
}

/// `BTRFS_IOC_INO_LOOKUP`: the path of directory `dirid` inside the tree
/// `tree` (0: the subvolume `fd` is in), relative to that subvolume's
/// root, with a trailing `/` (empty for the root itself); and the tree's
/// id.
fn ino_lookup(fd: BorrowedFd<'_>, tree: u64, dirid: u64) -> io::Result<(u64, Vec<u8>)> {
    let mut args = InoLookupArgs {
        treeid: tree,
        objectid: dirid,
        name: [0; 4080],
    };
    // SAFETY: `InoLookupArgs` is `struct btrfs_ioctl_ino_lookup_args`,
    // which INO_LOOKUP reads and fills; borrowed for the call only.
    unsafe { ioctl(fd, Updater::<INO_LOOKUP, InoLookupArgs>::new(&mut args))? };
    let len = args.name.iter().position(|&b| b == 0).unwrap_or(0);
    Ok((args.treeid, args.name[..len].to_vec()))
}

/// The id of the subvolume holding `fd` (5 for the top level).
pub fn subvol_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(ino_lookup(fd, 0, SUBVOL_ROOT_INO)?.0)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// A key of a btrfs tree, ordered as the tree orders keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    objectid: u64,
    item_type: u32,
    offset: u64,
}

impl Key {
    /// The least key after this one, or `None` after the last.
    fn next(self) -> Option<Key> {
        if self.offset < u64::MAX {
            Some(Key {
                offset: self.offset + 1,
                ..self
            })
        } else if self.item_type < 255 {
            Some(Key {
                item_type: self.item_type + 1,
                offset: 0,
                ..self
            })
        } else if self.objectid < u64::MAX {
            Some(Key {
                objectid: self.objectid + 1,
                item_type: 0,
                offset: 0,
            })
        } else {
            None
        }
    }
}

/// `BTRFS_IOC_TREE_SEARCH`: every item of `tree` whose key is within
/// `[min, max]` and that sits in a tree block written in transaction
/// `min_transid` or later (a block changed later holds items that did
/// not change too), handed to `found` with its key and data, over however
/// many calls the buffer needs. The headers are the kernel's native
/// endianness, the items' data the on-disk (little-endian) format.
fn tree_search(
    fd: BorrowedFd<'_>,
    tree: u64,
    min: Key,
    max: Key,
    min_transid: u64,
    found: &mut dyn FnMut(Key, &[u8]),
) -> io::Result<()> {
    let mut from = min;
    loop {
        let mut args = SearchArgs {
            key: SearchKey {
                tree_id: tree,
                min_objectid: from.objectid,
                max_objectid: max.objectid,
                min_offset: from.offset,
                max_offset: max.offset,
                min_transid,
                max_transid: u64::MAX,
                min_type: from.item_type,
                max_type: max.item_type,
                nr_items: 4096,
                ..SearchKey::default()
            },
            buf: [0; SEARCH_BUF],
        };
        // SAFETY: `SearchArgs` is `struct btrfs_ioctl_search_args`, which
        // TREE_SEARCH reads and fills (at most SEARCH_BUF bytes of items);
        // borrowed for the call only.
        unsafe { ioctl(fd, Updater::<TREE_SEARCH, SearchArgs>::new(&mut args))? };
        let n = args.key.nr_items;
        if n == 0 {
            return Ok(());
        }
        let (mut at, mut last) = (0usize, from);
        for _ in 0..n {
            let Some(h) = args.buf.get(at..at + 32) else {
                break;
            };
            let word =
                |r: std::ops::Range<usize>| u64::from_ne_bytes(h[r].try_into().expect("8 bytes"));
            let key = Key {
                objectid: word(8..16),
                offset: word(16..24),
                item_type: u32::from_ne_bytes(h[24..28].try_into().expect("4 bytes")),
            };
            let len = u32::from_ne_bytes(h[28..32].try_into().expect("4 bytes")) as usize;
            at += 32;
            let Some(data) = args.buf.get(at..at + len) else {
                break;
            };
            if min <= key && key <= max {
                found(key, data);
            }
            at += len;
            last = key;
        }
        match last.next() {
            Some(next) if next <= max => from = next,
            _ => return Ok(()),
        }
    }
}

/// The items of type `item_type` keyed under `objectid` in `tree`.
fn items_of(
    fd: BorrowedFd<'_>,
    tree: u64,
    objectid: u64,
    item_type: u32,
) -> io::Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    let min = Key {
        objectid,
        item_type,
        offset: 0,
    };
    let max = Key {
        offset: u64::MAX,
        ..min
    };
    tree_search(fd, tree, min, max, 0, &mut |k, d| {
        out.push((k.offset, d.to_vec()))
    })?;
    Ok(out)
}

/// What `BTRFS_IOC_GET_SUBVOL_INFO` says of a subvolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolInfo {
    pub id: u64,
    pub uuid: [u8; 16],
    /// The uuid of the subvolume this one is a snapshot of (zeros: none).
    pub parent_uuid: [u8; 16],
    /// The transaction of the tree's last change (as of the last commit).
    pub generation: u64,
    /// The transaction that made the subvolume.
    pub otransid: u64,
}

/// `BTRFS_IOC_GET_SUBVOL_INFO` of the subvolume whose root `subvol` is.
pub fn subvol_info(subvol: BorrowedFd<'_>) -> io::Result<SubvolInfo> {
    // SAFETY: GET_SUBVOL_INFO fills a `struct
    // btrfs_ioctl_get_subvol_info_args`, which the Getter owns.
    let a = unsafe { ioctl(subvol, Getter::<GET_SUBVOL_INFO, SubvolInfoArgs>::new())? };
    Ok(SubvolInfo {
        id: a.treeid,
        uuid: a.uuid,
        parent_uuid: a.parent_uuid,
        generation: a.generation,
        otransid: a.otransid,
    })
}

/// The inodes of the subvolume whose root `subvol` is that sit in tree
/// blocks written after transaction `since` (btrfs-progs' `find-new`):
/// every inode changed since then (its item, data, names or xattrs),
/// and some that did not change but share a block with one that did.
/// Changes not yet committed are seen once the file system is synced.
pub fn inodes_changed_since(subvol: BorrowedFd<'_>, since: u64) -> io::Result<BTreeSet<u64>> {
    let tree = subvol_id(subvol)?;
    let min = Key {
        objectid: SUBVOL_ROOT_INO,
        item_type: 0,
        offset: 0,
    };
    let max = Key {
        objectid: LAST_FREE_OBJECTID,
        item_type: 255,
        offset: u64::MAX,
    };
    let mut out = BTreeSet::new();
    tree_search(
        subvol,
        tree,
        min,
        max,
        since.saturating_add(1),
        &mut |k, _| {
            out.insert(k.objectid);
        },
    )?;
    Ok(out)
}

/// The directories holding a name of inode `ino` in the subvolume whose
/// root `subvol` is (from its `INODE_REF` and `INODE_EXTREF` items);
/// none for the root.
pub fn inode_parents(subvol: BorrowedFd<'_>, ino: u64) -> io::Result<Vec<u64>> {
    let tree = subvol_id(subvol)?;
    let min = Key {
        objectid: ino,
        item_type: INODE_REF_KEY,
        offset: 0,
    };
    let max = Key {
        objectid: ino,
        item_type: INODE_EXTREF_KEY,
        offset: u64::MAX,
    };
    let mut out = Vec::new();
    tree_search(subvol, tree, min, max, 0, &mut |k, d| {
        match k.item_type {
            // INODE_REF: keyed by the parent directory.
            INODE_REF_KEY if k.offset != ino => out.push(k.offset),
            // struct btrfs_inode_extref { __le64 parent_objectid; ... }
            INODE_EXTREF_KEY if d.len() >= 8 => out.push(u64_at(d, 0)),
            _ => {}
        }
    })?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A subvolume inside another: its id and its path relative to the
/// outer subvolume's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSubvol {
    pub id: u64,
    pub path: Vec<u8>,
}

/// The subvolumes directly inside the subvolume whose root `subvol` is
/// (not their own children), from the root tree's `ROOT_REF` items and
/// `BTRFS_IOC_INO_LOOKUP` for the directory each sits in.
pub fn child_subvols(subvol: BorrowedFd<'_>) -> io::Result<Vec<ChildSubvol>> {
    let id = subvol_id(subvol)?;
    let mut out = Vec::new();
    for (child, d) in &items_of(subvol, ROOT_TREE, id, ROOT_REF_KEY)? {
        // struct btrfs_root_ref { __le64 dirid; __le64 sequence;
        // __le16 name_len; } __attribute__((packed)), then the name.
        if d.len() < 18 {
            continue;
        }
        let dirid = u64_at(d, 0);
        let name_len = u16::from_le_bytes([d[16], d[17]]) as usize;
        let Some(name) = d.get(18..18 + name_len) else {
            continue;
        };
        let (_, mut path) = ino_lookup(subvol, id, dirid)?;
        path.extend_from_slice(name);
        out.push(ChildSubvol { id: *child, path });
    }
    Ok(out)
}

/// `BTRFS_IOC_QUOTA_CTL(ENABLE)`: turns quota groups on for the file
/// system holding `fd` (nothing changes when they are on already), then
/// waits for the rescan that counts what is there (`QUOTA_RESCAN_WAIT`).
pub fn quota_enable(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut args = QuotaCtlArgs {
        cmd: QUOTA_CTL_ENABLE,
        status: 0,
    };
    // SAFETY: `QuotaCtlArgs` is `struct btrfs_ioctl_quota_ctl_args`.
    unsafe { ioctl(fd, Updater::<QUOTA_CTL, QuotaCtlArgs>::new(&mut args))? };
    // SAFETY: QUOTA_RESCAN_WAIT takes no argument.
    match unsafe { ioctl(fd, NoArg::<QUOTA_RESCAN_WAIT>::new()) } {
        Ok(_) => Ok(()),
        // No rescan running.
        Err(e) if e == Errno::INVAL => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether quota groups are on for the file system holding `fd`: the
/// quota tree exists.
pub fn quota_enabled(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // The quota tree's status item (BTRFS_QGROUP_STATUS_KEY 240) is
    // key (0, 240, 0).
    match items_of(fd, QUOTA_TREE, 0, 240) {
        Ok(items) => Ok(!items.is_empty()),
        Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `BTRFS_IOC_QGROUP_LIMIT`: limits the data the subvolume whose root
/// `subvol` is may refer to (its level-0 quota group's `max_rfer`) to
/// `bytes`, or lifts the limit with `None`. Writes past it fail with
/// `EDQUOT`. Quota must be on ([`quota_enable`]).
pub fn qgroup_limit(subvol: BorrowedFd<'_>, bytes: Option<u64>) -> io::Result<()> {
    let args = QgroupLimitArgs {
        // 0: the quota group of the subvolume the ioctl is called on.
        qgroupid: 0,
        flags: LIMIT_MAX_RFER,
        max_rfer: bytes.unwrap_or(u64::MAX),
        max_excl: 0,
        rsv_rfer: 0,
        rsv_excl: 0,
    };
    // SAFETY: `QgroupLimitArgs` is `struct btrfs_ioctl_qgroup_limit_args`,
    // which QGROUP_LIMIT reads.
    unsafe { ioctl(subvol, Setter::<QGROUP_LIMIT, QgroupLimitArgs>::new(args))? };
    Ok(())
}

/// The `max_rfer` limit of the subvolume whose root `subvol` is, from its
/// quota group's limit item in the quota tree; `None` when there is none
/// (no limit, or quota off).
pub fn qgroup_limit_of(subvol: BorrowedFd<'_>) -> io::Result<Option<u64>> {
    let id = subvol_id(subvol)?;
    let items = match items_of(subvol, QUOTA_TREE, 0, QGROUP_LIMIT_KEY) {
        Ok(items) => items,
        Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => return Ok(None),
        Err(e) => return Err(e),
    };
    // struct btrfs_qgroup_limit_item { __le64 flags; __le64 max_rfer; ... }
    // keyed (0, QGROUP_LIMIT_KEY, qgroupid); a level-0 group's id is the
    // subvolume's.
    Ok(items
        .iter()
        .find(|(qgroup, d)| *qgroup == id && d.len() >= 16)
        .filter(|(_, d)| u64_at(d, 0) & LIMIT_MAX_RFER != 0)
        .map(|(_, d)| u64_at(d, 8))
        .filter(|&b| b != u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    /// The sizes `linux/btrfs.h` gives (its static asserts and `_IOC`
    /// sizes): a wrong one would make a different opcode.
    #[test]
    fn structures_have_the_kernels_sizes() {
        assert_eq!(size_of::<VolArgs>(), 4096);
        assert_eq!(size_of::<VolArgsV2>(), 4096);
        assert_eq!(size_of::<InoLookupArgs>(), 4096);
        assert_eq!(size_of::<SearchKey>(), 104);
        assert_eq!(size_of::<SearchArgs>(), 4096);
        assert_eq!(size_of::<QuotaCtlArgs>(), 16);
        assert_eq!(size_of::<QgroupLimitArgs>(), 48);
        assert_eq!(size_of::<SubvolInfoArgs>(), 504);
    }

    /// Opcodes as the C macros compute them (from `btrfs-progs`' ioctl.h).
    #[test]
    fn opcodes_match_the_headers() {
        assert_eq!(SUBVOL_CREATE as u64, 0x5000_940e);
        assert_eq!(SNAP_DESTROY as u64, 0x5000_940f);
        assert_eq!(SNAP_CREATE_V2 as u64, 0x5000_9417);
        assert_eq!(INO_LOOKUP as u64, 0xd000_9412);
        assert_eq!(TREE_SEARCH as u64, 0xd000_9411);
        assert_eq!(QUOTA_CTL as u64, 0xc010_9428);
        assert_eq!(QGROUP_LIMIT as u64, 0x8030_942b);
        assert_eq!(SUBVOL_GETFLAGS as u64, 0x8008_9419);
        assert_eq!(SUBVOL_SETFLAGS as u64, 0x4008_941a);
        assert_eq!(QUOTA_RESCAN_WAIT as u64, 0x942e);
        assert_eq!(GET_SUBVOL_INFO as u64, 0x81f8_943c);
    }

    #[test]
    fn keys_follow_in_tree_order() {
        let k = |objectid, item_type, offset| Key {
            objectid,
            item_type,
            offset,
        };
        assert_eq!(k(1, 2, 3).next(), Some(k(1, 2, 4)));
        assert_eq!(k(1, 2, u64::MAX).next(), Some(k(1, 3, 0)));
        assert_eq!(k(1, 255, u64::MAX).next(), Some(k(2, 0, 0)));
        assert_eq!(k(u64::MAX, 255, u64::MAX).next(), None);
        assert!(k(1, 3, 0) > k(1, 2, u64::MAX));
    }

    #[test]
    fn names_are_one_component() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(name_field::<16>(OsStr::new(bad)).is_err(), "{bad:?}");
        }
        assert!(name_field::<4>(OsStr::new("abcd")).is_err());
        assert_eq!(&name_field::<4>(OsStr::new("abc")).unwrap(), b"abc\0");
    }
}
