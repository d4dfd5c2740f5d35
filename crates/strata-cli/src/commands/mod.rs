pub mod archive;
pub mod check;
pub mod container;
pub mod cp;
pub mod image;
pub mod lifecycle;
pub mod registry;
pub mod system;
pub mod transfer;
pub mod union;
pub mod volume;

use std::path::PathBuf;

use anyhow::{Context, Result};
use strata_run::userns::Namespace;
use strata_store::Store;

use crate::output::Out;
use crate::template::{ListFormat, Template};

/// Where the store lives and which driver a new one gets.
#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    /// The store's root directory (default /var/lib/strata as root,
    /// $XDG_DATA_HOME/strata otherwise).
    #[arg(long, global = true, env = "STRATA_ROOT")]
    pub root: Option<PathBuf>,
    /// Storage driver for a new store: btrfs, erofs, overlay2, fuse or vfs
    /// (default: the first that works here, in that order; btrfs only
    /// when the root is on btrfs, erofs where the kernel mounts EROFS
    /// images from files). Before the command only: after it,
    /// `volume create --driver` names a volume driver.
    #[arg(long)]
    pub driver: Option<String>,
    /// A storage driver's option, KEY=VALUE (dockerd's --storage-opt):
    /// `erofs.verity=on|off` and `erofs.objects=on|off` for the erofs
    /// driver. Before the command
    /// only (after `create`/`run` it sets a container's size); the store
    /// keeps it for later commands (a command that only reads the store
    /// opens it to write, to record the option).
    #[arg(long = "storage-opt", value_name = "KEY=VALUE")]
    pub storage_opts: Vec<String>,
    /// Directories to look for volume plugins in (NAME.sock, NAME.spec,
    /// NAME.json), instead of /run/strata/plugins, /etc/strata/plugins and
    /// Docker's plugin directories.
    #[arg(
        long = "plugin-dir",
        global = true,
        env = "STRATA_PLUGIN_DIRS",
        value_delimiter = ':'
    )]
    pub plugin_dirs: Vec<PathBuf>,
}

impl StoreArgs {
    pub fn open(&self) -> Result<Store> {
        self.open_as(false)
    }

    /// The store for a command that only reads it: nothing on disk
    /// changes (see `Store::open_read_only`).
    pub fn open_read_only(&self) -> Result<Store> {
        self.open_as(true)
    }

    /// The store's root: `--root`, `STRATA_ROOT` or the default.
    pub fn root(&self) -> PathBuf {
        match &self.root {
            Some(r) => r.clone(),
            None => default_root(),
        }
    }

    /// Without root, moves this process into the store's user namespace
    /// (see `strata_run::userns`); as root, nothing.
    pub fn enter_namespace(&self) -> Result<Namespace> {
        let exe = std::env::current_exe().context("finding the strata executable")?;
        Ok(strata_run::userns::enter(&exe, &self.root())?)
    }

    fn open_as(&self, read_only: bool) -> Result<Store> {
        // The root is chosen before entering: inside, the caller is root.
        let root = self.root();
        self.enter_namespace()?;
        // fuse unions are served by `strata union-mount` processes, which
        // outlive this command as a kernel mount would.
        let server = strata_store::driver::fuse::Server::Command(vec![
            std::env::current_exe()
                .context("finding the strata executable")?
                .into(),
            "union-mount".into(),
        ]);
        let driver = self.driver.as_deref();
        let opts = strata_store::driver::Options {
            fuse_server: server,
            storage_opts: self
                .storage_opts
                .iter()
                .map(|o| match o.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                    _ => anyhow::bail!("--storage-opt {o:?}: want KEY=VALUE"),
                })
                .collect::<Result<_>>()?,
            ..Default::default()
        };
        // Options given are recorded by the driver: even a command that
        // only reads then opens the store to write that.
        let mut store = if read_only && opts.storage_opts.is_empty() {
            Store::open_read_only(&root, driver, opts)?
        } else {
            Store::open_with(&root, driver, opts)?
        };
        if !self.plugin_dirs.is_empty() {
            store.set_plugin_dirs(self.plugin_dirs.clone());
        }
        Ok(store)
    }
}

fn default_root() -> PathBuf {
    // Root of a user namespace (inside `strata unshare`) is the user whose
    // namespace it is: its store is the user's.
    if strata_run::userns::machine_root() {
        return PathBuf::from("/var/lib/strata");
    }
    match std::env::var_os("XDG_DATA_HOME") {
        Some(d) => PathBuf::from(d).join("strata"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
            .join(".local/share/strata"),
    }
}

/// Text or JSON output.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// `-q`, `--format` and `--no-trunc`, as every listing takes them.
#[derive(clap::Args)]
pub struct ListFlags {
    /// Only IDs (volume names for `volume ls`), one a line.
    #[arg(short, long)]
    pub quiet: bool,
    /// table (the default), json, or a Go template as Docker takes it:
    /// '{{.ID}}\t{{.Size}}', 'table {{.ID}}\t{{.Size}}', '{{json .}}'
    /// (the subset strata supports: docs/FORMAT.md).
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    pub format: ListFormat,
    /// Whole IDs, and commands and history lines not cut short.
    #[arg(long)]
    pub no_trunc: bool,
}

impl ListFlags {
    /// Whether the listing's JSON array was asked for (not with -q).
    pub fn json(&self) -> bool {
        self.format == ListFormat::Json && !self.quiet
    }

    /// The template to print with: the user's, `{{.<quiet>}}` with -q,
    /// else the listing's `default` table.
    pub fn template(&self, default: &str, quiet: &str) -> Result<Template> {
        let source = match &self.format {
            _ if self.quiet => {
                if self.format.is_custom() {
                    eprintln!("strata: warning: --format is ignored with --quiet");
                }
                format!("{{{{.{quiet}}}}}")
            }
            ListFormat::Template(t) => return Ok(t.clone()),
            _ => default.to_owned(),
        };
        Template::parse(&source).map_err(anyhow::Error::msg)
    }

    pub fn trunc(&self) -> bool {
        !self.no_trunc
    }
}

/// Does `act` to each container named, in order, printing each name as it
/// is done (as Docker does); stops at the first that fails.
pub fn each_container(
    names: &[String],
    store: &Store,
    out: &mut Out,
    mut act: impl FnMut(&strata_store::Container) -> Result<()>,
) -> Result<()> {
    for n in names {
        act(&store.resolve_container(n)?)?;
        writeln!(out, "{n}");
    }
    Ok(())
}

/// A warning on standard error, as every command prints one.
pub fn warn(msg: &str) {
    eprintln!("strata: warning: {msg}");
}

/// Warns when image `id` is deeper than Docker and Podman run.
pub fn warn_depth(store: &Store, id: &strata_store::Digest) {
    if let Ok(Some(w)) = store.depth_warning(id) {
        warn(&w);
    }
}

/// Warns, as `docker run` does, when `image`'s platform is not the
/// host's.
pub fn warn_platform(store: &Store, image: &str) {
    if let Ok(Some(w)) = store.platform_warning(image) {
        warn(&w);
    }
}

/// Warns about each record a listing could not read: `what` says what
/// the listing does without it.
pub fn warn_unreadable(bad: &[strata_store::Error], what: &str) {
    for e in bad {
        eprintln!("strata: warning: {e:#} ({what}; see `strata check`)");
    }
}

/// Bytes as Docker's totals show them (kB = 1000, four digits).
pub fn human(n: u64) -> String {
    strata_store::listing::total_size(n)
}
