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

/// `flistxattr` or, for an `O_PATH` handle, `llistxattr` on its magic link.
pub fn list(fd: BorrowedFd<'_>, o_path: bool) -> io::Result<Vec<Vec<u8>>> {
    loop {
        let size = if o_path {
            rustix::fs::listxattr_query(proc_path(fd))
        } else {
            rustix::fs::flistxattr_query(fd)
        };
        let size = match size {
            Ok(n) => n,
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        let got = if o_path {
            rustix::fs::listxattr(proc_path(fd), &mut buf[..])
        } else {
            rustix::fs::flistxattr(fd, &mut buf[..])
        };
        match got {
            Ok(n) => return Ok(split_names(&buf[..n])),
            // The list grew between the two calls: ask again.
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `fgetxattr`, or `getxattr` on the magic link of an `O_PATH` handle.
/// `None` when the attribute is absent.
pub fn get(fd: BorrowedFd<'_>, o_path: bool, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let name = crate::fs::os(name);
    loop {
        let size = if o_path {
            rustix::fs::getxattr_query(proc_path(fd), name)
        } else {
            rustix::fs::fgetxattr_query(fd, name)
        };
        let size = match size {
            Ok(n) => n,
            Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; size];
        let got = if o_path {
            rustix::fs::getxattr(proc_path(fd), name, &mut buf[..])
        } else {
            rustix::fs::fgetxattr(fd, name, &mut buf[..])
        };
        match got {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
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
    loop {
        let size = match rustix::fs::llistxattr_query(&path) {
            Ok(n) => n,
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(&path, &mut buf[..]) {
            Ok(n) => return Ok(split_names(&buf[..n])),
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `lgetxattr` on `dir/name` without opening it; `None` when absent.
pub fn get_at(dir: BorrowedFd<'_>, name: &[u8], key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let path = at_path(dir, name);
    let key = crate::fs::os(key);
    loop {
        let size = match rustix::fs::lgetxattr_query(&path, key) {
            Ok(n) => n,
            Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::lgetxattr(&path, key, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
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
