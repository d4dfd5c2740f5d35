//! `strata info`, `strata inspect`, `strata system df` and `strata
//! system prune`.

use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::json;
use strata_store::{Store, Usage};

use super::{human, Format};

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
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Also remove anonymous volumes no container uses.
        #[arg(long)]
        volumes: bool,
    },
}

pub fn run(cmd: Cmd, store: &Store) -> Result<()> {
    match cmd {
        Cmd::Df { format } => df(format, store),
        Cmd::Prune { all, volumes } => prune(all, volumes, store),
    }
}

pub fn info(format: Format, store: &Store) -> Result<()> {
    let mut info = store.info()?;
    info.push((
        "Cgroup Version".into(),
        strata_run::host::cgroup_version().into(),
    ));
    if format == Format::Json {
        let map: serde_json::Map<String, serde_json::Value> = info
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&map)?);
        return Ok(());
    }
    for (k, v) in info {
        outln!("{k}: {v}");
    }
    Ok(())
}

/// Containers first, then images, then volumes, as `docker inspect`
/// looks them up.
pub fn inspect(names: &[String], store: &Store) -> Result<()> {
    let mut out = Vec::new();
    for n in names {
        if let Ok(c) = store.resolve_container(n) {
            out.push(super::container::container_json(&c, store)?);
        } else if store.resolve_image(n).is_ok() {
            out.push(super::image::inspect_image(n, store)?);
        } else if let Ok(v) = store.volume(n) {
            out.push(serde_json::to_value(v)?);
        } else {
            bail!("no such object: {n}");
        }
    }
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn df(format: Format, store: &Store) -> Result<()> {
    let du = store.disk_usage()?;
    let rows = [
        ("Images", &du.images),
        ("Containers", &du.containers),
        ("Layers", &du.layers),
        ("Local Volumes", &du.volumes),
    ];
    if format == Format::Json {
        let images: Vec<_> = du
            .image_details
            .iter()
            .map(|i| {
                json!({
                    "ID": i.image.id.as_str(),
                    "Tags": i.image.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                    "Size": i.image.size,
                    "SharedSize": i.shared_size,
                    "UniqueSize": i.unique_size,
                    "Containers": i.containers,
                })
            })
            .collect();
        let containers: Vec<_> = du
            .container_details
            .iter()
            .map(|c| json!({ "ID": c.id, "Name": c.name, "Size": c.size }))
            .collect();
        let volumes: Vec<_> = du
            .volume_details
            .iter()
            .map(|v| {
                json!({
                    "Name": v.name,
                    "Driver": v.driver,
                    "Size": v.size,
                    "Links": v.containers,
                })
            })
            .collect();
        let types: Vec<_> = rows
            .iter()
            .map(|(t, u)| {
                json!({
                    "Type": t,
                    "TotalCount": u.total,
                    "Active": u.active,
                    "Size": u.size,
                    "Reclaimable": u.reclaimable,
                })
            })
            .collect();
        let d = store.on_disk()?;
        let on_disk = json!({
            "Total": d.total,
            "LayerContent": d.layer_content,
            "Metadata": d.metadata,
            "Containers": d.containers,
            "Volumes": d.volumes,
            "Other": d.other,
        });
        let v = json!({
            "Types": types,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "OnDisk": on_disk,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!(
        "{:<15} {:<8} {:<8} {:<10} RECLAIMABLE",
        "TYPE",
        "TOTAL",
        "ACTIVE",
        "SIZE"
    );
    for (t, u) in rows {
        outln!(
            "{t:<15} {:<8} {:<8} {:<10} {}",
            u.total,
            u.active,
            human(u.size),
            reclaimable(u)
        );
    }
    // Every allocated byte under the root, in one bucket each.
    let d = store.on_disk()?;
    outln!(
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

fn prune(all: bool, volumes: bool, store: &Store) -> Result<()> {
    let pruned = store.prune_with(all, volumes)?;
    if !pruned.volumes.is_empty() {
        outln!("Deleted Volumes:");
        for v in &pruned.volumes {
            outln!("{v}");
        }
        outln!();
    }
    if !pruned.lines.is_empty() {
        outln!("Deleted Images:");
        for l in &pruned.lines {
            outln!("{l}");
        }
        outln!();
    }
    outln!("Total reclaimed space: {}", human(pruned.reclaimed));
    Ok(())
}
