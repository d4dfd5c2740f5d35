//! `strata info`, `strata inspect`, `strata system df` and `strata
//! system prune`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use strata_run::userns::Namespace;
use strata_store::view::{self, Inspected};
use strata_store::{Store, Usage};

use super::{human, Format, StoreArgs};
use crate::output::Out;

#[derive(Subcommand)]
pub enum Cmd {
    /// Space used by images, containers, layers and volumes, and what
    /// prune -a (and volume prune -a) frees.
    Df {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove dangling images (-a: every image no container uses) and
    /// layers nothing uses.
    Prune(Prune),
    /// Remove everything: containers (stopped first), images, layers,
    /// volumes, and the store's root. Without root this runs in the
    /// store's user namespace, where the files images gave to other users
    /// can be removed.
    Reset {
        /// Required: the store cannot be had back.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(clap::Args)]
pub struct Prune {
    #[arg(short, long)]
    pub all: bool,
    /// Also remove anonymous volumes no container uses.
    #[arg(long)]
    pub volumes: bool,
    /// Accepted for Docker's sake: strata never asks.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(clap::Args)]
pub struct Inspect {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(clap::Args)]
pub struct Unshare {
    /// End the store's user namespace instead (its keeper process, and
    /// every mount made in it).
    #[arg(long, conflicts_with = "command")]
    pub stop: bool,
    /// The command and its arguments (default: $SHELL, else /bin/sh).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<std::ffi::OsString>,
}

/// `strata unshare`: runs the command in the store's user namespace, with
/// `STRATA_ROOT` set to the store's root (as `podman unshare` sets
/// `CONTAINERS_GRAPHROOT`). strata execs it, so its exit status and the
/// signals sent to it are its own (126 and 127 when it cannot run or is
/// not found, as a shell says). Root has no store namespace: refused, as
/// Podman refuses.
pub fn unshare(a: Unshare, args: &StoreArgs, out: &mut Out) -> Result<ExitCode> {
    let root = args.root();
    if a.stop {
        match strata_run::userns::stop(&root)? {
            Some(pid) => writeln!(out, "stopped the user namespace's keeper (PID {pid})"),
            None => writeln!(out, "no user namespace is running for {}", root.display()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.enter_namespace()? {
        Namespace::Host(why) => bail!("no user namespace to enter: {why}"),
        Namespace::Root => bail!(
            "unshare is for a store without root: as root there is no user namespace to enter"
        ),
        Namespace::Rootless { .. } => {}
    }
    let mut words = a.command.into_iter();
    let program = words
        .next()
        .or_else(|| std::env::var_os("SHELL"))
        .unwrap_or_else(|| "/bin/sh".into());
    let (code, err) =
        strata_run::userns::exec(&program, words, &[("STRATA_ROOT", root.as_os_str())]);
    eprintln!(
        "strata: error: running {}: {err}",
        program.to_string_lossy()
    );
    Ok(ExitCode::from(code))
}

pub fn run(cmd: Cmd, args: &StoreArgs, out: &mut Out) -> Result<()> {
    match cmd {
        Cmd::Df { format } => df(format, &args.open()?, out),
        Cmd::Prune(a) => prune(a, &args.open()?, out),
        Cmd::Reset { force: false } => bail!(
            "system reset removes every container, image, layer and volume in {}: \
             give --force to do it",
            args.root().display()
        ),
        Cmd::Reset { force: true } => {
            let root = args.root();
            if !strata_store::Store::is_store(&root) {
                bail!(
                    "there is no strata store at {}: nothing reset",
                    root.display()
                );
            }
            strata_run::control::reset(args.open()?)?;
            // The store's namespace goes last (this process is in it).
            strata_run::userns::stop(&root)?;
            strata_run::control::remove_root(&root)?;
            writeln!(out, "removed {}", root.display());
            Ok(())
        }
    }
}

pub fn info(format: Format, store: &Store, out: &mut Out) -> Result<()> {
    let mut info = store.info()?;
    info.push((
        "Cgroup Version".into(),
        strata_run::host::cgroup_version().into(),
    ));
    let (rootless, mapping) = match strata_run::userns::current() {
        Namespace::Root => ("false".to_owned(), None),
        Namespace::Rootless { mapping, .. } => ("true".to_owned(), Some(mapping)),
        Namespace::Host(why) => (format!("true, without a user namespace ({why})"), None),
    };
    info.push(("Rootless".into(), rootless));
    if let Some(m) = mapping {
        let single = if m.single() {
            " (the caller alone: no subordinate ids)"
        } else {
            ""
        };
        info.push(("ID Mappings".into(), format!("{m}{single}")));
    }
    if format == Format::Json {
        out.json(&info.into_iter().collect::<view::Info>())?;
        return Ok(());
    }
    for (k, v) in info {
        writeln!(out, "{k}: {v}");
    }
    Ok(())
}

/// Containers first, then images, then volumes, as `docker inspect`
/// looks them up.
pub fn inspect(names: &[String], store: &Store, out: &mut Out) -> Result<()> {
    let mut found = Vec::new();
    for n in names {
        if let Ok(c) = store.resolve_container(n) {
            found.push(Inspected::Container(Box::new(super::container::view(
                &c, store,
            )?)));
        } else if store.resolve_image(n).is_ok() {
            found.push(Inspected::Image(Box::new(super::image::view(n, store)?)));
        } else if let Ok(v) = store.volume(n) {
            found.push(Inspected::Volume(v));
        } else {
            bail!("no such object: {n}");
        }
    }
    out.json(&found)?;
    Ok(())
}

fn df(format: Format, store: &Store, out: &mut Out) -> Result<()> {
    let du = store.disk_usage()?;
    if format == Format::Json {
        out.json(&view::DiskUsage::new(&du, &store.on_disk()?))?;
        return Ok(());
    }
    let row = |out: &mut Out, [kind, total, active, size, reclaimable]: [&str; 5]| {
        writeln!(
            out,
            "{kind:<15} {total:<8} {active:<8} {size:<10} {reclaimable}"
        );
    };
    row(out, ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    for (kind, u) in view::DiskUsage::rows(&du) {
        let (total, active) = (u.total.to_string(), u.active.to_string());
        row(
            out,
            [kind, &total, &active, &human(u.size), &reclaimable(u)],
        );
    }
    // Every allocated byte under the root, in one bucket each.
    let d = store.on_disk()?;
    writeln!(
        out,
        "\nOn disk under {}: {} (layer content {}, image and layer metadata {}, containers {}, volumes {}, other {})",
        store.root().display(),
        human(d.total),
        human(d.layer_content),
        human(d.metadata),
        human(d.containers),
        human(d.volumes),
        human(d.other)
    );
    Ok(())
}

/// `1.2MB (40%)`, as Docker shows it.
fn reclaimable(u: &Usage) -> String {
    let pct = (u.reclaimable * 100).checked_div(u.size).unwrap_or(0);
    format!("{} ({pct}%)", human(u.reclaimable))
}

pub fn prune(a: Prune, store: &Store, out: &mut Out) -> Result<()> {
    let pruned = store.prune_with(a.all, a.volumes)?;
    if !pruned.volumes.is_empty() {
        writeln!(out, "Deleted Volumes:");
        for v in &pruned.volumes {
            writeln!(out, "{v}");
        }
        writeln!(out);
    }
    if !pruned.lines.is_empty() {
        writeln!(out, "Deleted Images:");
        for l in &pruned.lines {
            writeln!(out, "{l}");
        }
        writeln!(out);
    }
    writeln!(out, "Total reclaimed space: {}", human(pruned.reclaimed));
    Ok(())
}
