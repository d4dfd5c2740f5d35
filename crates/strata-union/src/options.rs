//! The two ways to describe a union: aufs-style branch lists and
//! overlayfs-style mount options.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One directory of the union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub path: PathBuf,
    pub writable: bool,
}

/// How deletions and opaque directories are written to the writable branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhiteoutFormat {
    /// aufs and OCI layer format: an empty file `.wh.NAME` hides NAME, a
    /// file `.wh..wh..opq` makes its directory opaque. Every name starting
    /// with `.wh.` is reserved: never shown, never created through the
    /// union.
    Aufs,
    /// Kernel overlayfs format: a character device 0/0 named NAME hides
    /// NAME, the xattr `trusted.overlay.opaque=y` (`user.overlay.opaque`
    /// with `userxattr`) makes a directory opaque.
    Overlay,
}

/// A union to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Topmost first. At most one writable branch, and only the topmost (a
    /// read-only union has none).
    pub branches: Vec<Branch>,
    /// How deletions are written: [`WhiteoutFormat::Aufs`] for `--branch`
    /// lists, [`WhiteoutFormat::Overlay`] for `-o lowerdir=...` mounts so
    /// that the upper dir stays in kernel-overlay on-disk format.
    pub whiteout: WhiteoutFormat,
    /// Where copy-ups and new directories are staged before being renamed
    /// into place; on the same file system as the writable branch.
    /// Overlay format: required with a writable branch (as overlayfs's
    /// `workdir=`); strata stages in its `work/` subdirectory, the one the
    /// kernel empties when it mounts the same dirs. Aufs format: `None`
    /// stages in `<upper>/.wh..wh.orph/` as aufs does (hidden, as every
    /// `.wh.` name is; removed again at unmount).
    pub workdir: Option<PathBuf>,
    /// Use `user.overlay.*` xattrs instead of `trusted.overlay.*`
    /// (Overlay format). A union mounted without root, or inside a user
    /// namespace, uses them whatever this says: it may not use
    /// `trusted.*` xattrs.
    pub userxattr: bool,
    /// Request threads.
    pub threads: usize,
    /// Allow other users to access (FUSE `allow_other`).
    pub allow_other: bool,
    /// Answer the opens that allow it with FUSE passthrough where the
    /// kernel has it (6.9+, root); on by default, off when
    /// `STRATA_UNION_NO_PASSTHROUGH` is set in the environment.
    pub passthrough: bool,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get())
}

/// Relative paths are taken from the current directory, as mount(8) and
/// overlayfs do; the empty path is refused.
fn absolute(raw: &str, what: &str) -> Result<PathBuf> {
    if raw.is_empty() {
        return Err(Error::invalid(format!("{what}: empty path")));
    }
    std::path::absolute(Path::new(raw))
        .map_err(|e| Error::io(format!("{what}: cannot make {raw:?} absolute"), e))
}

/// Splits on unescaped `sep`, removing the `\` escapes (overlayfs's rule
/// for `,` and `:` in paths: `\,`, `\:`, `\\`).
fn split_escaped(s: &str, sep: char) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => return Err(Error::invalid(format!("{s:?}: trailing `\\`"))),
            }
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    Ok(out)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Options {
    fn with_branches(branches: Vec<Branch>, whiteout: WhiteoutFormat) -> Options {
        Options {
            branches,
            whiteout,
            workdir: None,
            userxattr: false,
            threads: default_threads(),
            allow_other: strata_sys::fs::euid() == 0,
            passthrough: std::env::var_os("STRATA_UNION_NO_PASSTHROUGH").is_none(),
        }
    }

    /// aufs-style: `["DIR=rw", "DIR=ro", ...]`, topmost first (what
    /// `--branch` gives). `DIR` alone is read-only; `=rr` (aufs's "real
    /// read-only") is accepted as `ro`.
    pub fn from_branches(specs: &[String]) -> Result<Options> {
        let mut branches = Vec::with_capacity(specs.len());
        for spec in specs {
            let (path, writable) = match spec.rsplit_once('=') {
                Some((p, "rw")) => (p, true),
                Some((p, "ro" | "rr")) => (p, false),
                Some((_, perm)) => {
                    return Err(Error::invalid(format!(
                        "branch {spec:?}: unknown permission {perm:?} (rw, ro or rr)"
                    )))
                }
                None => (spec.as_str(), false),
            };
            branches.push(Branch {
                path: absolute(path, "branch")?,
                writable,
            });
        }
        let opts = Options::with_branches(branches, WhiteoutFormat::Aufs);
        opts.validate()?;
        Ok(opts)
    }

    /// overlay-style `lowerdir=A:B,upperdir=U,workdir=W[,userxattr]`
    /// (lowerdir topmost first as in overlayfs; without upperdir the union
    /// is read-only). `\` escapes `,`, `:` and itself. `lowerdir+=DIR`
    /// appends one lower dir (the new mount API's form). Options that only
    /// tune kernel overlayfs (`redirect_dir`, `index`, `metacopy`, `xino`,
    /// `nfs_export`, `volatile`, `ro`, `rw`) are accepted and ignored;
    /// anything else is refused.
    pub fn from_overlay_options(opts: &str) -> Result<Options> {
        let mut lower: Vec<PathBuf> = Vec::new();
        let mut upper = None;
        let mut work = None;
        let mut userxattr = false;
        for opt in split_escaped(opts, ',')? {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt.as_str(), None),
            };
            match (key, value) {
                ("", None) => {
                    return Err(Error::invalid(format!("{opts:?}: empty option")));
                }
                ("lowerdir", Some(v)) => {
                    if !lower.is_empty() {
                        return Err(Error::invalid("lowerdir given twice"));
                    }
                    for dir in split_escaped(v, ':')? {
                        lower.push(absolute(&unescape(&dir), "lowerdir")?);
                    }
                }
                ("lowerdir+", Some(v)) => lower.push(absolute(&unescape(v), "lowerdir+")?),
                ("upperdir", Some(v)) => upper = Some(absolute(&unescape(v), "upperdir")?),
                ("workdir", Some(v)) => work = Some(absolute(&unescape(v), "workdir")?),
                ("userxattr", None) => userxattr = true,
                ("redirect_dir" | "index" | "metacopy" | "xino" | "nfs_export", Some(_))
                | ("volatile" | "ro" | "rw", None) => {}
                _ => return Err(Error::invalid(format!("unknown overlay option {opt:?}"))),
            }
        }
        if lower.is_empty() {
            return Err(Error::invalid("overlay options: lowerdir is required"));
        }
        if upper.is_some() != work.is_some() {
            return Err(Error::invalid(
                "overlay options: upperdir and workdir go together",
            ));
        }
        let mut branches = Vec::with_capacity(lower.len() + 1);
        if let Some(path) = upper {
            branches.push(Branch {
                path,
                writable: true,
            });
        }
        branches.extend(lower.into_iter().map(|path| Branch {
            path,
            writable: false,
        }));
        let mut o = Options::with_branches(branches, WhiteoutFormat::Overlay);
        o.workdir = work;
        o.userxattr = userxattr;
        o.validate()?;
        Ok(o)
    }

    /// The index of the writable branch (always 0 when there is one).
    pub(crate) fn upper(&self) -> Option<usize> {
        self.branches.first().filter(|b| b.writable).map(|_| 0)
    }

    /// The rules every union obeys, whoever built the options.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.branches.is_empty() {
            return Err(Error::invalid("a union needs at least one branch"));
        }
        for (i, b) in self.branches.iter().enumerate() {
            if b.path.as_os_str().is_empty() || !b.path.is_absolute() {
                return Err(Error::invalid(format!(
                    "branch {:?}: the path must be absolute",
                    b.path
                )));
            }
            if b.writable && i != 0 {
                return Err(Error::invalid(format!(
                    "branch {:?}: only the topmost branch may be writable",
                    b.path
                )));
            }
        }
        if let Some(w) = &self.workdir {
            if !w.is_absolute() {
                return Err(Error::invalid(format!("workdir {w:?} must be absolute")));
            }
            if self.upper().is_none() {
                return Err(Error::invalid("a workdir needs a writable branch"));
            }
        }
        if self.whiteout == WhiteoutFormat::Overlay
            && self.upper().is_some()
            && self.workdir.is_none()
        {
            return Err(Error::invalid(
                "the overlay whiteout format needs a workdir with a writable branch",
            ));
        }
        if self.threads == 0 {
            return Err(Error::invalid("threads must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    /// The branches, topmost first, as (path, writable).
    fn branches(o: &Options) -> Vec<(&str, bool)> {
        o.branches
            .iter()
            .map(|b| (b.path.to_str().unwrap(), b.writable))
            .collect()
    }

    #[test]
    fn branches_topmost_first() {
        let o = Options::from_branches(&specs(&["/u=rw", "/l1=ro", "/l2"])).unwrap();
        assert_eq!(branches(&o), [("/u", true), ("/l1", false), ("/l2", false)]);
        assert_eq!(o.whiteout, WhiteoutFormat::Aufs);
        assert_eq!(o.workdir, None);
        assert!(o.threads >= 1);
    }

    #[test]
    fn branches_read_only_union() {
        let o = Options::from_branches(&specs(&["/a=ro", "/b=rr"])).unwrap();
        assert!(o.branches.iter().all(|b| !b.writable));
    }

    #[test]
    fn branches_path_with_equals_sign() {
        let o = Options::from_branches(&specs(&["/a=b=rw"])).unwrap();
        assert_eq!(o.branches[0].path, Path::new("/a=b"));
        assert!(o.branches[0].writable);
    }

    #[test]
    fn branches_refuse_hostile_lists() {
        for bad in [
            &[][..],
            &["=rw"][..],
            &[""][..],
            &["/a=rw", "/b=rw"][..],
            &["/a=ro", "/b=rw"][..],
            &["/a=wr"][..],
            &["/a=RW"][..],
        ] {
            assert!(
                Options::from_branches(&specs(bad)).is_err(),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn branches_relative_paths_become_absolute() {
        let o = Options::from_branches(&specs(&["rel/dir=rw"])).unwrap();
        assert!(o.branches[0].path.is_absolute());
        assert!(o.branches[0].path.ends_with("rel/dir"));
    }

    #[test]
    fn overlay_full() {
        let o = Options::from_overlay_options("lowerdir=/l1:/l2,upperdir=/u,workdir=/w,userxattr")
            .unwrap();
        assert_eq!(branches(&o), [("/u", true), ("/l1", false), ("/l2", false)]);
        assert_eq!(o.workdir.as_deref(), Some(Path::new("/w")));
        assert!(o.userxattr);
        assert_eq!(o.whiteout, WhiteoutFormat::Overlay);
    }

    #[test]
    fn overlay_read_only() {
        let o = Options::from_overlay_options("lowerdir=/a:/b").unwrap();
        assert_eq!(o.branches.len(), 2);
        assert!(o.branches.iter().all(|b| !b.writable));
        assert!(!o.userxattr);
    }

    #[test]
    fn overlay_escapes() {
        let o =
            Options::from_overlay_options(r"lowerdir=/a\:b:/c\,d:/e\\f,upperdir=/u\,1,workdir=/w")
                .unwrap();
        let paths: Vec<_> = o.branches.iter().map(|b| b.path.clone()).collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("/u,1"),
                PathBuf::from("/a:b"),
                PathBuf::from("/c,d"),
                PathBuf::from(r"/e\f"),
            ]
        );
    }

    #[test]
    fn overlay_lowerdir_plus() {
        let o = Options::from_overlay_options("lowerdir+=/a,lowerdir+=/b").unwrap();
        assert_eq!(o.branches[0].path, Path::new("/a"));
        assert_eq!(o.branches[1].path, Path::new("/b"));
    }

    #[test]
    fn overlay_ignores_kernel_tuning() {
        assert!(Options::from_overlay_options(
            "lowerdir=/a,redirect_dir=on,index=off,metacopy=off,xino=auto,ro"
        )
        .is_ok());
    }

    #[test]
    fn overlay_refuses_hostile_options() {
        for bad in [
            "",
            ",",
            "lowerdir=",
            "lowerdir=/a:",
            "lowerdir=/a::/b",
            "upperdir=/u,workdir=/w",
            "lowerdir=/a,upperdir=/u",
            "lowerdir=/a,workdir=/w",
            "lowerdir=/a,bogus",
            "lowerdir=/a,bogus=1",
            "lowerdir=/a,lowerdir=/b",
            "lowerdir=/a,userxattr=1",
            r"lowerdir=/a\",
        ] {
            assert!(
                Options::from_overlay_options(bad).is_err(),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn overlay_relative_paths_become_absolute() {
        let o = Options::from_overlay_options("lowerdir=l,upperdir=u,workdir=w").unwrap();
        assert!(o.branches.iter().all(|b| b.path.is_absolute()));
        assert!(o.workdir.unwrap().is_absolute());
    }

    #[test]
    fn validate_refuses_built_options() {
        let mut o = Options::from_branches(&specs(&["/u=rw"])).unwrap();
        o.threads = 0;
        assert!(o.validate().is_err());
        let mut o = Options::from_branches(&specs(&["/u=rw"])).unwrap();
        o.whiteout = WhiteoutFormat::Overlay;
        assert!(o.validate().is_err(), "overlay format without a workdir");
        let mut o = Options::from_branches(&specs(&["/l=ro"])).unwrap();
        o.workdir = Some("/w".into());
        assert!(o.validate().is_err(), "workdir without a writable branch");
        let mut o = Options::from_branches(&specs(&["/l=ro"])).unwrap();
        o.branches[0].path = "rel".into();
        assert!(o.validate().is_err());
    }
}
