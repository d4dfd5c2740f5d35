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
    let args = VolArgs {
        fd: 0,
        name: name_field(name)?,
    };
    // SAFETY: `VolArgs` is `struct btrfs_ioctl_vol_args`, the argument
    // SUBVOL_CREATE reads (see the module's Safety section).
    unsafe { ioctl(dir, Setter::<SUBVOL_CREATE, VolArgs>::new(args))? };
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
    let args = VolArgs {
        fd: 0,
        name: name_field(name)?,
    };
    // SAFETY: `VolArgs` is `struct btrfs_ioctl_vol_args`, the argument
    // SNAP_DESTROY reads.
    unsafe { ioctl(dir, Setter::<SNAP_DESTROY, VolArgs>::new(args))? };
    Ok(())
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

/// One item a tree search found: its key's objectid and offset, and its
/// data.
struct Item {
    objectid: u64,
    offset: u64,
    data: Vec<u8>,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// `BTRFS_IOC_TREE_SEARCH`: every item of type `item_type` in `tree`
/// whose key's objectid is `objectid`, over however many calls the buffer
/// needs. The headers are the kernel's native endianness, the items'
/// data the on-disk (little-endian) format.
fn tree_search(
    fd: BorrowedFd<'_>,
    tree: u64,
    objectid: u64,
    item_type: u32,
) -> io::Result<Vec<Item>> {
    let mut out = Vec::new();
    let mut min_offset = 0u64;
    loop {
        let mut args = SearchArgs {
            key: SearchKey {
                tree_id: tree,
                min_objectid: objectid,
                max_objectid: objectid,
                min_offset,
                max_offset: u64::MAX,
                min_transid: 0,
                max_transid: u64::MAX,
                min_type: item_type,
                max_type: item_type,
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
            return Ok(out);
        }
        let (mut at, mut last) = (0usize, 0u64);
        for _ in 0..n {
            let h = &args.buf[at..at + 32];
            let hobj = u64::from_ne_bytes(h[8..16].try_into().expect("8 bytes"));
            let hoff = u64::from_ne_bytes(h[16..24].try_into().expect("8 bytes"));
            let htype = u32::from_ne_bytes(h[24..28].try_into().expect("4 bytes"));
            let len = u32::from_ne_bytes(h[28..32].try_into().expect("4 bytes")) as usize;
            at += 32;
            if htype == item_type && hobj == objectid {
                out.push(Item {
                    objectid: hobj,
                    offset: hoff,
                    data: args.buf[at..at + len].to_vec(),
                });
            }
            at += len;
            last = hoff;
        }
        if last == u64::MAX {
            return Ok(out);
        }
        min_offset = last + 1;
    }
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
    for item in tree_search(subvol, ROOT_TREE, id, ROOT_REF_KEY)? {
        // struct btrfs_root_ref { __le64 dirid; __le64 sequence;
        // __le16 name_len; } __attribute__((packed)), then the name.
        let d = &item.data;
        if d.len() < 18 {
            continue;
        }
        let dirid = u64_at(d, 0);
        let name_len = u16::from_le_bytes([d[16], d[17]]) as usize;
        let Some(name) = d.get(18..18 + name_len) else {
            continue;
        };
        let (_, mut path) = ino_lookup(subvol, item.objectid, dirid)?;
        path.extend_from_slice(name);
        out.push(ChildSubvol {
            id: item.offset,
            path,
        });
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
    match tree_search(fd, QUOTA_TREE, 0, 240) {
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
    let items = match tree_search(subvol, QUOTA_TREE, 0, QGROUP_LIMIT_KEY) {
        Ok(items) => items,
        Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => return Ok(None),
        Err(e) => return Err(e),
    };
    // struct btrfs_qgroup_limit_item { __le64 flags; __le64 max_rfer; ... }
    // keyed (0, QGROUP_LIMIT_KEY, qgroupid); a level-0 group's id is the
    // subvolume's.
    Ok(items
        .iter()
        .find(|i| i.offset == id && i.data.len() >= 16)
        .filter(|i| u64_at(&i.data, 0) & LIMIT_MAX_RFER != 0)
        .map(|i| u64_at(&i.data, 8))
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
