//! Extended attributes on handles: getxattr(2), setxattr(2), listxattr(2).
//!
//! Nodes that cannot be opened for I/O (symlinks, fifos, devices) are
//! reached through the `/proc/self/fd/N` magic link of an `O_PATH` handle,
//! so no call ever resolves a name that could have been swapped for a
//! symlink.

use std::io;
use std::os::fd::BorrowedFd;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

use crate::fs::proc_path;

/// Whether the error means "this file system or node has no xattrs of
/// that kind", which callers usually treat as an empty list.
pub fn is_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::OPNOTSUPP) | Some(Errno::NODATA)
    )
}

fn split_names(buf: &[u8]) -> Vec<Vec<u8>> {
    buf.split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The size-then-read dance of the xattr calls: `query` sizes the
/// buffer and `read` fills it, asked again while the value grows between
/// the two (`ERANGE`). `None` when `query` fails with one of `absent`, or
/// `read` with an `absent` `ENODATA` (removed in between); empty when
/// there is nothing to read.
fn read_sized(
    absent: &[Errno],
    query: impl Fn() -> rustix::io::Result<usize>,
    read: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match query() {
            Ok(n) => n,
            Err(e) if absent.contains(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut buf = vec![0u8; size];
        match read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) if absent.contains(&Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// `flistxattr` or, for an `O_PATH` handle, `llistxattr` on its magic link.
pub fn list(fd: BorrowedFd<'_>, o_path: bool) -> io::Result<Vec<Vec<u8>>> {
    let buf = read_sized(
        &[Errno::OPNOTSUPP],
        || {
            if o_path {
                rustix::fs::listxattr_query(proc_path(fd))
            } else {
                rustix::fs::flistxattr_query(fd)
            }
        },
        |buf| {
            if o_path {
                rustix::fs::listxattr(proc_path(fd), buf)
            } else {
                rustix::fs::flistxattr(fd, buf)
            }
        },
    )?;
    Ok(split_names(&buf.unwrap_or_default()))
}

/// `fgetxattr`, or `getxattr` on the magic link of an `O_PATH` handle.
/// `None` when the attribute is absent.
pub fn get(fd: BorrowedFd<'_>, o_path: bool, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let name = crate::fs::os(name);
    read_sized(
        &[Errno::NODATA, Errno::OPNOTSUPP],
        || {
            if o_path {
                rustix::fs::getxattr_query(proc_path(fd), name)
            } else {
                rustix::fs::fgetxattr_query(fd, name)
            }
        },
        |buf| {
            if o_path {
                rustix::fs::getxattr(proc_path(fd), name, buf)
            } else {
                rustix::fs::fgetxattr(fd, name, buf)
            }
        },
    )
}

/// `fsetxattr`, or `setxattr` on the magic link of an `O_PATH` handle.
pub fn set(fd: BorrowedFd<'_>, o_path: bool, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = crate::fs::os(name);
    if o_path {
        Ok(rustix::fs::setxattr(
            proc_path(fd),
            name,
            value,
            XattrFlags::empty(),
        )?)
    } else {
        Ok(rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty())?)
    }
}

/// The `/proc/self/fd/DIR/NAME` path of a name in a directory handle: the
/// directory is reached through its magic link, the name is looked up
/// without following a final symlink by the `l*` calls below.
fn at_path(dir: BorrowedFd<'_>, name: &[u8]) -> std::ffi::OsString {
    let mut p = std::ffi::OsString::from(proc_path(dir));
    p.push("/");
    p.push(crate::fs::os(name));
    p
}

/// `llistxattr` on `dir/name` without opening it.
pub fn list_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let path = at_path(dir, name);
    let buf = read_sized(
        &[Errno::OPNOTSUPP],
        || rustix::fs::llistxattr_query(&path),
        |buf| rustix::fs::llistxattr(&path, buf),
    )?;
    Ok(split_names(&buf.unwrap_or_default()))
}

/// `lgetxattr` on `dir/name` without opening it; `None` when absent.
pub fn get_at(dir: BorrowedFd<'_>, name: &[u8], key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let path = at_path(dir, name);
    let key = crate::fs::os(key);
    read_sized(
        &[Errno::NODATA, Errno::OPNOTSUPP],
        || rustix::fs::lgetxattr_query(&path, key),
        |buf| rustix::fs::lgetxattr(&path, key, buf),
    )
}

/// All xattrs of the open file `fd` (an `O_PATH` handle with `o_path`),
/// sorted by name.
pub fn all(fd: BorrowedFd<'_>, o_path: bool) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    values(list(fd, o_path)?, |n| get(fd, o_path, n))
}

/// All xattrs of `dir/name`, sorted by name.
pub fn all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    values(list_at(dir, name)?, |n| get_at(dir, name, n))
}

/// `names` sorted, each with its value (one removed since it was listed
/// is left out).
fn values(
    mut names: Vec<Vec<u8>>,
    get: impl Fn(&[u8]) -> io::Result<Option<Vec<u8>>>,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        if let Some(v) = get(&n)? {
            out.push((n, v));
        }
    }
    Ok(out)
}

/// `fremovexattr`, or `removexattr` on the magic link of an `O_PATH`
/// handle. Removing an absent attribute is not an error.
pub fn remove(fd: BorrowedFd<'_>, o_path: bool, name: &[u8]) -> io::Result<()> {
    let name = crate::fs::os(name);
    let r = if o_path {
        rustix::fs::removexattr(proc_path(fd), name)
    } else {
        rustix::fs::fremovexattr(fd, name)
    };
    match r {
        Ok(()) | Err(Errno::NODATA) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `setxattr` on the magic link of an `O_PATH` handle with the raw
/// `XATTR_CREATE`/`XATTR_REPLACE` flags.
pub fn set_node(fd: BorrowedFd<'_>, name: &[u8], value: &[u8], flags: u32) -> io::Result<()> {
    Ok(rustix::fs::setxattr(
        proc_path(fd),
        crate::fs::os(name),
        value,
        XattrFlags::from_bits_retain(flags),
    )?)
}

/// `removexattr` on the magic link of an `O_PATH` handle; unlike
/// [`remove`], an absent attribute is `ENODATA`.
pub fn remove_node(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::removexattr(proc_path(fd), crate::fs::os(name))?)
}
