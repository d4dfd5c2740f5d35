//! fs-verity: a file made read-only for good, every read of it checked
//! against a Merkle tree the file system keeps, and its root digest
//! measured in O(1) (`linux/fsverity.h`; the kernel's documentation:
//! <https://docs.kernel.org/filesystems/fsverity.html>). ext4 with the
//! `verity` feature, btrfs and f2fs have it.
//!
//! # Safety
//!
//! Both ioctls are `unsafe` in rustix because the kernel reads or writes
//! the argument as the C structure the opcode names. Each structure below
//! is `#[repr(C)]` with the layout of its `linux/fsverity.h` counterpart
//! (sizes checked by the tests), and every argument is owned by the call
//! for its whole duration. The measure call's buffer is larger than the
//! header the opcode is built from, as the kernel expects: it reads
//! `digest_size` to learn how much room follows.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::BorrowedFd;

use rustix::io::Errno;
use rustix::ioctl::{ioctl, opcode, Opcode, Setter, Updater};

/// `FS_VERITY_HASH_ALG_SHA256`.
const HASH_SHA256: u32 = 1;
/// Merkle tree block size: the page size the kernels here use.
const BLOCK_SIZE: u32 = 4096;
/// Room for a digest (SHA-512's is the longest).
const MAX_DIGEST: usize = 64;

/// `struct fsverity_enable_arg`.
#[repr(C)]
struct EnableArg {
    version: u32,
    hash_algorithm: u32,
    block_size: u32,
    salt_size: u32,
    salt_ptr: u64,
    sig_size: u32,
    reserved1: u32,
    sig_ptr: u64,
    reserved2: [u64; 11],
}

/// `struct fsverity_digest`: its header, and room after it.
#[repr(C)]
struct Measure {
    digest_algorithm: u16,
    digest_size: u16,
    digest: [u8; MAX_DIGEST],
}

/// `FS_IOC_ENABLE_VERITY`: `_IOW('f', 133, struct fsverity_enable_arg)`.
const ENABLE: Opcode = opcode::write::<EnableArg>(b'f', 133);
/// `FS_IOC_MEASURE_VERITY`: `_IOWR('f', 134, struct fsverity_digest)`,
/// sized by the four-byte header.
const MEASURE: Opcode = opcode::read_write::<[u16; 2]>(b'f', 134);

/// Turns fs-verity on for the file `fd` (opened read-only, with no
/// writer anywhere), SHA-256 over 4 KiB blocks, no salt: the file system
/// reads the whole file once to build its Merkle tree, and the file can
/// never be written again. `EOPNOTSUPP` or `ENOTTY` where the file
/// system (or its features) lack fs-verity; `EEXIST` when it is on.
pub fn enable(fd: BorrowedFd<'_>) -> io::Result<()> {
    let arg = EnableArg {
        version: 1,
        hash_algorithm: HASH_SHA256,
        block_size: BLOCK_SIZE,
        salt_size: 0,
        salt_ptr: 0,
        sig_size: 0,
        reserved1: 0,
        sig_ptr: 0,
        reserved2: [0; 11],
    };
    // SAFETY: `EnableArg` is `struct fsverity_enable_arg`; the kernel
    // only reads it, and no salt or signature pointer is passed.
    unsafe { ioctl(fd, Setter::<ENABLE, EnableArg>::new(arg))? };
    Ok(())
}

/// The fs-verity digest of the file `fd` (SHA-256 of its descriptor, as
/// `fsverity digest` prints it), or None when the file has no fs-verity
/// (`ENODATA`), or its file system none at all (`ENOTTY`, `EOPNOTSUPP`).
pub fn measure(fd: BorrowedFd<'_>) -> io::Result<Option<Vec<u8>>> {
    let mut m = Measure {
        digest_algorithm: 0,
        digest_size: MAX_DIGEST as u16,
        digest: [0; MAX_DIGEST],
    };
    // SAFETY: `Measure` is the `struct fsverity_digest` header followed
    // by `digest_size` bytes of room, which the kernel fills.
    match unsafe { ioctl(fd, Updater::<MEASURE, Measure>::new(&mut m)) } {
        Ok(()) => {}
        Err(Errno::NODATA | Errno::NOTTY | Errno::OPNOTSUPP) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let n = usize::from(m.digest_size).min(MAX_DIGEST);
    Ok(Some(m.digest[..n].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn structures_have_the_kernels_sizes() {
        assert_eq!(size_of::<EnableArg>(), 128);
        assert_eq!(size_of::<[u16; 2]>(), 4);
        assert_eq!(ENABLE, 0x4080_6685);
        assert_eq!(MEASURE, 0xc004_6686);
    }

    /// A file on a file system without fs-verity (procfs) measures as None.
    #[test]
    fn a_plain_file_has_no_digest() {
        use std::os::fd::AsFd;
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(measure(f.as_fd()).unwrap(), None);
    }
}
