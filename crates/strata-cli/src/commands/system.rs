//! `strata info`, `strata inspect`, `strata system df` and `strata
//! system prune`.

use anyhow::{bail, Result};
use clap::Subcommand;
use strata_store::view::{self, Inspected};
use strata_store::{Store, Usage};

use super::{human, Format};
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

pub fn run(cmd: Cmd, store: &Store, out: &mut Out) -> Result<()> {
    match cmd {
        Cmd::Df { format } => df(format, store, out),
        Cmd::Prune(a) => prune(a, store, out),
    }
}

pub fn info(format: Format, store: &Store, out: &mut Out) -> Result<()> {
    let mut info = store.info()?;
    info.push((
        "Cgroup Version".into(),
        strata_run::host::cgroup_version().into(),
    ));
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
