//! EROFS images written straight from a layer's tar stream.
//!
//! [`write_layer`] turns one layer (a tar, plain or compressed) into one
//! EROFS image in a single pass, with no directory of loose files in
//! between: file content goes into the image as it arrives, and only the
//! metadata (and each file's last partial block) waits in memory until
//! the end. [`write_image`] does the same into a new file at a path, put
//! in place only when it is complete.
//!
//! The entries are read by `strata_archive::Entries`, so names, PAX and
//! GNU extensions, ownership, times, xattrs and the hostile cases are
//! handled as `strata_archive::apply` handles them; the tree they build
//! follows the same rules as applying the layer to an overlay upper
//! directory: a later entry replaces an earlier one of the same path (a
//! directory over a directory merges), parents the tar leaves out are
//! made (0755, root's, time 0), `.wh.NAME` becomes a character device
//! 0/0 named NAME (unless the layer itself wrote NAME), `.wh..wh..opq`
//! and a directory replacing a whiteout become the opaque xattr
//! (`trusted.overlay.opaque=y`, or `user.overlay.opaque` for mounts with
//! `userxattr`).
//!
//! # Layout
//!
//! The kernel's format (`Documentation/filesystems/erofs.rst`,
//! `fs/erofs/erofs_fs.h`), 4 KiB blocks, no compression, no feature
//! flags:
//!
//! ```text
//! block 0          zeros, the superblock at byte 1024 (written last)
//! blocks 1..       file data, in tar order, each file's full blocks
//!                  contiguous (written as the tar streams)
//! then             directory blocks, and symlink targets too long to
//!                  sit beside their inode
//! then             the metadata area (meta_blkaddr): extended 64-byte
//!                  inodes, each followed by its inline xattrs and, for
//!                  files and symlinks, its inline tail
//! ```
//!
//! * Inodes are always the extended form: 32-bit owners, 64-bit sizes and
//!   per-inode nanosecond mtimes, with no shared build time to derive.
//! * Regular files are `FLAT_INLINE` when the last partial block fits in
//!   the block of the inode with its xattrs (the tail is kept in memory
//!   until the metadata is written), else `FLAT_PLAIN` with the tail
//!   padded to a last block written right after the full ones. That is
//!   decided when the entry arrives: its xattrs are known then. Empty
//!   files are `FLAT_PLAIN` with no blocks.
//! * Directories are `FLAT_PLAIN`: blocks of 12-byte dirents then names,
//!   sorted bytewise with `.` and `..` among them, never an entry across
//!   blocks; the size counts the last block only as far as it is used.
//! * The root is the first inode of the metadata area, so its node id (a
//!   16-bit superblock field) is 0; the other inodes follow depth first,
//!   a directory's entries in name order. An inode never straddles a
//!   block, nor does an inline tail.
//! * Xattrs are all inline (no shared xattr area), with the kernel's
//!   prefix indexes (`user.`, `trusted.`, `security.`, POSIX ACLs); a
//!   name outside them is left out and reported, as are overlay-private
//!   names a layer carries (`strata_archive::apply` drops those too).
//! * Hard links share one inode; `nlink` counts the names it has (two
//!   plus the subdirectories for a directory).
//!
//! The same tar gives the same image, byte for byte: nothing depends on
//! the time or the machine. Content replaced by a later entry of the
//! same path stays in the image's data area, unreachable (tars rarely
//! carry duplicates). A sparse file (GNU or PAX sparse member) is
//! `FLAT_PLAIN` with its stored chunks written at their offsets and its
//! holes left as holes of the image file: the kernel reads zeros there,
//! and a small tar cannot claim more disk than it carries (a terabyte of
//! holes is a terabyte of the image's length, not of its blocks). In
//! object mode it stays in the image too.
#![forbid(unsafe_code)]

mod error;
mod format;
mod tree;
mod writer;

pub use error::{Error, ErrorKind, Result};
/// The block size of the images written here, in bytes.
pub const BLOCK_SIZE: u64 = format::BLOCK;
pub use writer::{
    metadata_digest, write_image, write_layer, write_layer_over, write_layer_recording, Below,
    Options, Report,
};
