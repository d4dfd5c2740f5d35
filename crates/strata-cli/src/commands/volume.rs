//! `strata volume create|ls|inspect|rm|prune`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use clap::Subcommand;
use strata_store::filter::{Filters, Listing};
use strata_store::listing::VolumeRow;
use strata_store::Store;

use super::ListFlags;
use crate::output::Out;

#[derive(Subcommand)]
pub enum Cmd {
    /// Create a volume; prints its name.
    Create {
        /// The volume driver: local, or a plugin's name.
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// A driver option (local: type, device, o).
        #[arg(short, long = "opt", value_name = "K=V")]
        opt: Vec<String>,
        /// A label.
        #[arg(long = "label", value_name = "K=V")]
        label: Vec<String>,
        /// The name (default: 64 random hex digits).
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        list: ListFlags,
        /// Only volumes that match: dangling=true|false (no container
        /// uses it), name=NAME, label=KEY[=VALUE], driver=DRIVER.
        #[arg(short, long = "filter", value_name = "KEY=VALUE")]
        filter: Vec<String>,
    },
    /// Volumes as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes; refuses a volume any container uses.
    Rm {
        /// No error for a missing volume.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (--all: every unused volume).
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Accepted for Docker's sake: strata never asks.
        #[arg(short, long)]
        force: bool,
    },
}

impl Cmd {
    /// Whether the command only reads the store (it opens it so).
    pub fn reads_only(&self) -> bool {
        matches!(self, Cmd::Ls { .. } | Cmd::Inspect { .. })
    }
}

/// `K=V` pairs into a map.
fn pairs(what: &str, kv: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in kv {
        match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_owned(), v.to_owned());
            }
            _ => bail!("invalid {what} {p:?}: expected KEY=VALUE"),
        }
    }
    Ok(out)
}

/// Docker's `volume ls` table.
const VOLUMES: &str = "table {{.Driver}}\\t{{.Name}}";

fn ls(list: &ListFlags, filter: &[String], store: &Store, out: &mut Out) -> Result<()> {
    let filters = Filters::parse(Listing::Volumes, filter)?;
    let template = list.template(VOLUMES, "Name")?;
    let vs = store.filtered_volumes(&filters)?;
    if list.json() {
        return Ok(out.json(&vs)?);
    }
    let rows: Vec<VolumeRow> = vs.iter().map(VolumeRow::from).collect();
    template.print(&rows, VolumeRow::HEADERS, out)
}

pub fn run(cmd: Cmd, store: &Store, out: &mut Out) -> Result<()> {
    match cmd {
        Cmd::Create {
            driver,
            opt,
            label,
            name,
        } => {
            let v = store.create_volume(
                name.as_deref(),
                &driver,
                &pairs("option", &opt)?,
                &pairs("label", &label)?,
            )?;
            writeln!(out, "{}", v.name);
        }
        Cmd::Ls { list, filter } => ls(&list, &filter, store, out)?,
        Cmd::Inspect { names } => {
            let vs = names
                .iter()
                .map(|n| store.volume(n))
                .collect::<Result<Vec<_>, _>>()?;
            out.json(&vs)?;
        }
        Cmd::Rm { force, names } => {
            for n in names {
                store.remove_volume(&n, force)?;
                writeln!(out, "{n}");
            }
        }
        Cmd::Prune { all, force: _ } => {
            let removed = store.prune_volumes(all)?;
            if !removed.is_empty() {
                writeln!(out, "Deleted Volumes:");
                for n in &removed {
                    writeln!(out, "{n}");
                }
            }
            writeln!(out, "Total volumes removed: {}", removed.len());
        }
    }
    Ok(())
}
