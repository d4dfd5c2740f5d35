//! `strata union-mount`: strata's FUSE union of directories, on its own.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args)]
pub struct UnionMount {
    /// A branch, topmost first: DIR=rw (at most one, the top) or DIR=ro.
    /// Deletions are `.wh.` files (aufs and OCI layer style).
    #[arg(long = "branch", value_name = "DIR=rw|ro")]
    pub branches: Vec<String>,
    /// overlayfs-style instead: lowerdir=A:B,upperdir=U,workdir=W
    /// [,userxattr]. Deletions are overlayfs whiteouts, so the kernel can
    /// mount the same directories.
    #[arg(short = 'o', value_name = "OPTIONS", conflicts_with = "branches")]
    pub options: Option<String>,
    /// Serve in the foreground until unmounted (otherwise a background
    /// process serves it, and this command returns once it is mounted).
    #[arg(short, long)]
    pub foreground: bool,
    /// Request-handling threads.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Let other users use the mount (always on as root; for others it
    /// needs user_allow_other in /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
    pub mountpoint: PathBuf,
}

pub fn union_mount(a: UnionMount) -> Result<()> {
    let mut opts = match (&a.options, a.branches.is_empty()) {
        (Some(o), _) => strata_store::union::Options::from_overlay_options(o)?,
        (None, false) => strata_store::union::Options::from_branches(&a.branches)?,
        (None, true) => bail!("give the branches: --branch DIR=rw|ro ... or -o lowerdir=..."),
    };
    if let Some(n) = a.threads {
        opts.threads = n;
    }
    opts.allow_other |= a.allow_other;
    if a.foreground || std::env::var_os(strata_store::union::FOREGROUND_ENV).is_some() {
        return strata_store::union::serve(opts, &a.mountpoint)
            .with_context(|| format!("union on {}", a.mountpoint.display()));
    }
    // The options parsed: the server, this command again, will mount.
    let mut server = std::process::Command::new(
        std::env::current_exe().context("finding the strata executable")?,
    );
    server.args(std::env::args_os().skip(1));
    strata_store::union::spawn(server, &a.mountpoint)
        .with_context(|| format!("mounting a union on {}", a.mountpoint.display()))?;
    Ok(())
}

/// `strata umount PATH` of a union mount.
pub fn unmount(mountpoint: &Path) -> Result<()> {
    strata_store::union::unmount(mountpoint)?;
    Ok(())
}

/// Whether `strata umount ARG` names a union mount rather than a
/// container: a path (container names have no `/`) or a directory
/// holding one.
pub fn is_union_arg(arg: &str) -> bool {
    let p = Path::new(arg);
    (arg.contains('/') || arg == "." || p.is_dir()) && strata_store::union::is_union(p)
}
