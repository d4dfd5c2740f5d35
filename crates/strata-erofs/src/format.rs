//! The on-disk structures this writer uses, encoded by hand (all
//! little-endian), as the kernel's `fs/erofs/erofs_fs.h` and
//! `Documentation/filesystems/erofs.rst` define them.

/// Block size: 4 KiB, the only one this writer produces.
pub const BLOCK: u64 = 4096;
pub const BLKSZ_BITS: u8 = 12;
/// The superblock's offset in the image.
pub const SUPER_OFFSET: u64 = 1024;
const MAGIC: u32 = 0xE0F5_E1E2;
/// Inodes sit on 32-byte slots of the metadata area; a node id counts
/// them.
pub const SLOT: u64 = 32;
/// `struct erofs_inode_extended`.
pub const INODE_SIZE: u64 = 64;
/// `struct erofs_xattr_ibody_header`.
pub const XATTR_HEADER: usize = 12;
/// `struct erofs_dirent`.
pub const DIRENT: usize = 12;

/// `EROFS_INODE_FLAT_PLAIN`: the data in contiguous blocks.
pub const FLAT_PLAIN: u16 = 0;
/// `EROFS_INODE_FLAT_INLINE`: full blocks, then the tail right after the
/// inode and its xattrs, in the same block.
pub const FLAT_INLINE: u16 = 2;

/// `EROFS_INODE_CHUNK_BASED`: the data in chunks, found through a table
/// after the inode and its xattrs (here one null chunk: the file's
/// content is elsewhere, an overlay data-only layer's object).
pub const CHUNK_BASED: u16 = 4;
/// `i_u` of such a file: one chunk of 2^(12+31) bytes (8 TiB), the
/// table's entries 4-byte block addresses (`EROFS_CHUNK_FORMAT_INDEXES`
/// clear).
pub const CHUNK_FORMAT_ONE: u32 = 31;
/// Longest file one chunk covers.
pub const CHUNK_MAX: u64 = 1 << (12 + CHUNK_FORMAT_ONE);
/// The table of one null chunk (`EROFS_NULL_ADDR`): a hole.
pub const NULL_CHUNK: [u8; 4] = [0xff; 4];
/// `EROFS_FEATURE_INCOMPAT_CHUNKED_FILE`.
pub const INCOMPAT_CHUNKED_FILE: u32 = 0x4;

/// `EROFS_FT_*`, a directory entry's file type.
pub const FT_REG: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_CHR: u8 = 3;
pub const FT_BLK: u8 = 4;
pub const FT_FIFO: u8 = 5;
pub const FT_SYMLINK: u8 = 7;

pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFIFO: u32 = 0o010000;

/// The superblock's fields this writer sets.
pub struct Super {
    pub root_nid: u16,
    pub inos: u64,
    pub blocks: u32,
    pub meta_blkaddr: u32,
    /// `feature_incompat`: [`INCOMPAT_CHUNKED_FILE`] when a file is
    /// chunk-based, else nothing.
    pub incompat: u32,
}

impl Super {
    /// `struct erofs_super_block`, 128 bytes. No compat feature (no
    /// checksum, no compact inodes needing a shared mtime, no xattr
    /// filter), no incompat feature: any kernel with EROFS reads it.
    pub fn encode(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[12] = BLKSZ_BITS;
        b[14..16].copy_from_slice(&self.root_nid.to_le_bytes());
        b[16..24].copy_from_slice(&self.inos.to_le_bytes());
        b[36..40].copy_from_slice(&self.blocks.to_le_bytes());
        b[40..44].copy_from_slice(&self.meta_blkaddr.to_le_bytes());
        b[80..84].copy_from_slice(&self.incompat.to_le_bytes());
        b
    }
}

/// `struct erofs_inode_extended`, 64 bytes.
pub struct Inode {
    pub layout: u16,
    pub xattr_icount: u16,
    /// File type and permission bits.
    pub mode: u32,
    pub size: u64,
    /// Start block (flat layouts) or the encoded device number.
    pub u: u32,
    pub ino: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub nlink: u32,
}

impl Inode {
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Bit 0 set: the extended inode; bits 1-3: the data layout.
        let format: u16 = 1 | (self.layout << 1);
        out.extend_from_slice(&format.to_le_bytes());
        out.extend_from_slice(&self.xattr_icount.to_le_bytes());
        // i_mode is 16 bits: the type bits and 0o7777 fit.
        out.extend_from_slice(&(self.mode as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.u.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.gid.to_le_bytes());
        out.extend_from_slice(&(self.mtime_sec as u64).to_le_bytes());
        out.extend_from_slice(&self.mtime_nsec.to_le_bytes());
        out.extend_from_slice(&self.nlink.to_le_bytes());
        out.extend_from_slice(&[0u8; 16]);
    }
}

/// A device number as the kernel's `new_encode_dev` packs it, the form
/// EROFS stores in `i_u.rdev`.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// The xattr name prefixes EROFS indexes (`EROFS_XATTR_INDEX_*`): the
/// index and the rest of the name, or `None` for a name it cannot store.
pub fn xattr_index(name: &[u8]) -> Option<(u8, &[u8])> {
    match name {
        b"system.posix_acl_access" => return Some((2, b"")),
        b"system.posix_acl_default" => return Some((3, b"")),
        _ => {}
    }
    let prefixes: [(&[u8], u8); 3] = [(b"user.", 1), (b"trusted.", 4), (b"security.", 6)];
    prefixes.iter().find_map(|(p, i)| {
        name.strip_prefix(*p)
            .filter(|rest| !rest.is_empty())
            .map(|rest| (*i, rest))
    })
}

/// The inline xattr area of an inode (`erofs_xattr_ibody_header`, then
/// each `erofs_xattr_entry` with its name and value, each padded to 4
/// bytes), empty when there are none. Names and values must have been
/// checked with [`xattr_index`] and [`MAX_XATTR_VALUE`].
pub fn xattr_body(xattrs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    if xattrs.is_empty() {
        return Vec::new();
    }
    let mut b = vec![0u8; XATTR_HEADER];
    for (name, value) in xattrs {
        let (index, rest) = xattr_index(name).expect("checked by the caller");
        b.push(rest.len() as u8);
        b.push(index);
        b.extend_from_slice(&(value.len() as u16).to_le_bytes());
        b.extend_from_slice(rest);
        b.extend_from_slice(value);
        b.resize(b.len().next_multiple_of(4), 0);
    }
    b
}

/// Largest xattr value an entry can hold (`e_value_size` is 16 bits).
pub const MAX_XATTR_VALUE: usize = u16::MAX as usize;

/// `i_xattr_icount` for an xattr area of `len` bytes.
pub fn xattr_icount(len: usize) -> Option<u16> {
    if len == 0 {
        return Some(0);
    }
    u16::try_from((len - XATTR_HEADER) / 4 + 1).ok()
}

/// Directory blocks: `entries` (name, node id, file type) sorted by name
/// with `.` and `..` among them, packed greedily, each block its dirents
/// then its names; an entry never spans blocks. Returns the blocks'
/// bytes, the last one not padded (its length is the directory's size
/// modulo the block size).
pub fn dir_blocks(entries: &[(&[u8], u64, u8)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let mut used = 0usize;
        let mut j = i;
        while j < entries.len() && used + DIRENT + entries[j].0.len() <= BLOCK as usize {
            used += DIRENT + entries[j].0.len();
            j += 1;
        }
        let block = &entries[i..j];
        let start = out.len();
        let mut nameoff = DIRENT * block.len();
        for (name, nid, ft) in block {
            out.extend_from_slice(&nid.to_le_bytes());
            out.extend_from_slice(&(nameoff as u16).to_le_bytes());
            out.push(*ft);
            out.push(0);
            nameoff += name.len();
        }
        for (name, _, _) in block {
            out.extend_from_slice(name);
        }
        i = j;
        if i < entries.len() {
            out.resize(start + BLOCK as usize, 0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_is_64_bytes_and_superblock_has_the_magic() {
        let mut v = Vec::new();
        Inode {
            layout: FLAT_INLINE,
            xattr_icount: 0,
            mode: S_IFREG | 0o644,
            size: 5,
            u: 0,
            ino: 1,
            uid: 0,
            gid: 0,
            mtime_sec: 1,
            mtime_nsec: 2,
            nlink: 1,
        }
        .encode(&mut v);
        assert_eq!(v.len(), INODE_SIZE as usize);
        assert_eq!(u16::from_le_bytes([v[0], v[1]]), 1 | (2 << 1));
        let sb = Super {
            root_nid: 0,
            inos: 1,
            blocks: 2,
            meta_blkaddr: 1,
            incompat: INCOMPAT_CHUNKED_FILE,
        }
        .encode();
        assert_eq!(&sb[..4], &[0xe2, 0xe1, 0xf5, 0xe0]);
        // feature_incompat, after the uuid and the volume name.
        assert_eq!(&sb[80..84], &[4, 0, 0, 0]);
    }

    #[test]
    fn xattr_names_map_to_their_prefix_index() {
        assert_eq!(xattr_index(b"user.a"), Some((1, &b"a"[..])));
        assert_eq!(
            xattr_index(b"security.capability"),
            Some((6, &b"capability"[..]))
        );
        assert_eq!(
            xattr_index(b"system.posix_acl_default"),
            Some((3, &b""[..]))
        );
        assert_eq!(xattr_index(b"user."), None);
        assert_eq!(xattr_index(b"other.x"), None);
        let body = xattr_body(&[(b"user.ab".to_vec(), b"xyz".to_vec())]);
        // Header, 4-byte entry head, "ab" + "xyz" padded to 8.
        assert_eq!(body.len(), 12 + 4 + 8);
        assert_eq!(xattr_icount(body.len()), Some(4));
    }

    #[test]
    fn directory_entries_never_span_blocks() {
        let names: Vec<Vec<u8>> = (0..400).map(|i| format!("{i:0>20}").into_bytes()).collect();
        let entries: Vec<(&[u8], u64, u8)> =
            names.iter().map(|n| (n.as_slice(), 7, FT_REG)).collect();
        let b = dir_blocks(&entries);
        // 32 bytes an entry: 128 a block, 400 entries in 4 blocks.
        assert_eq!(b.len(), 3 * 4096 + 16 * 32);
        assert_eq!(u16::from_le_bytes([b[8], b[9]]), 128 * 12);
    }
}
