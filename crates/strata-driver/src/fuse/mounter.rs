//! The mounting half of the `fuse` driver: unions served by
//! `strata-union`, in this process's threads or a process per mount.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Server;
use crate::error::{chain, Error, ErrorKind, Result};

/// The mounting half of the driver.
pub(crate) struct Mounter {
    server: Server,
    userxattr: bool,
    /// The mounts served by this process's threads, by mount point.
    served: Mutex<HashMap<PathBuf, strata_union::Mounted>>,
}

impl Mounter {
    pub fn new(server: Server) -> Result<Mounter> {
        usable()?;
        Ok(Mounter {
            server,
            userxattr: strata_sys::fs::euid() != 0 || strata_sys::mount::in_user_namespace(),
            served: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the markers are `user.overlay.*`.
    pub fn userxattr(&self) -> bool {
        self.userxattr
    }

    pub fn describe(&self) -> String {
        match &self.server {
            Server::Threads => "FUSE (strata-union), served in this process".into(),
            Server::Command(c) => format!(
                "FUSE (strata-union), served by {}",
                c.first().map(|p| p.to_string_lossy()).unwrap_or_default()
            ),
        }
    }

    /// Mounts the union of `upper` (with `work`) over `lower` (topmost
    /// first) on `target`.
    pub fn mount(&self, lower: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
        let opts = overlay_options(lower, upper, work, self.userxattr)?;
        let union_err = |e: strata_union::Error| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "mounting a FUSE union on {}: {}",
                    target.display(),
                    chain(&e)
                ),
            )
        };
        match &self.server {
            Server::Threads => {
                let o = strata_union::Options::from_overlay_options(&opts).map_err(union_err)?;
                let m = strata_union::mount(o, target).map_err(union_err)?;
                self.served
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(target.to_owned(), m);
            }
            Server::Command(argv) => {
                let Some((program, args)) = argv.split_first() else {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        "the fuse driver's server command is empty",
                    ));
                };
                let mut cmd = std::process::Command::new(program);
                cmd.args(args).arg("-o").arg(&opts).arg(target);
                strata_union::spawn(cmd, target).map_err(union_err)?;
            }
        }
        Ok(())
    }

    /// Unmounts `target`, whoever serves it.
    pub fn unmount(&self, target: &Path) -> Result<()> {
        let mine = self
            .served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(target);
        let result = match mine {
            Some(m) => m.unmount(),
            None => strata_union::unmount(target),
        };
        result.map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("unmounting {}: {}", target.display(), chain(&e)),
            )
        })
    }

    /// Whether a union is mounted on `target` and answering. A union whose
    /// server is gone (`ENOTCONN`) is unmounted first and reads as not
    /// mounted, so the next `get` mounts it afresh.
    pub fn mounted(&self, target: &Path) -> bool {
        // Attributes may be cached: opening the root asks the server.
        match strata_sys::mount::is_mountpoint(target).and_then(|m| {
            if m {
                std::fs::read_dir(target).map(|_| true)
            } else {
                Ok(false)
            }
        }) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                tracing::warn!(
                    "the union on {} lost its server: unmounting it",
                    target.display()
                );
                let _ = self.unmount(target);
                false
            }
            Err(_) => false,
        }
    }
}

/// Why FUSE unions cannot be mounted here, if they cannot.
pub(crate) fn usable() -> Result<()> {
    if !Path::new("/dev/fuse").exists() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "the fuse driver needs /dev/fuse (the kernel's fuse module)",
        ));
    }
    if strata_sys::fs::euid() != 0 && strata_sys::process::on_path("fusermount3").is_none() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "the fuse driver needs fusermount3 to mount without root (Debian package fuse3)",
        ));
    }
    Ok(())
}

/// overlayfs-style options with `\`, `,` and `:` escaped in the paths
/// (which must be UTF-8: the option string is text).
fn overlay_options(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    userxattr: bool,
) -> Result<String> {
    let esc = |p: &Path| -> Result<String> {
        let s = p.to_str().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("the fuse driver needs UTF-8 paths, not {}", p.display()),
            )
        })?;
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if matches!(c, '\\' | ',' | ':') {
                out.push('\\');
            }
            out.push(c);
        }
        Ok(out)
    };
    let lower = lower.iter().map(|l| esc(l)).collect::<Result<Vec<_>>>()?;
    let mut o = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        esc(upper)?,
        esc(work)?
    );
    if userxattr {
        o.push_str(",userxattr");
    }
    Ok(o)
}

impl Drop for Mounter {
    fn drop(&mut self) {
        let served = std::mem::take(&mut *self.served.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, m) in served {
            let _ = m.unmount();
        }
    }
}
