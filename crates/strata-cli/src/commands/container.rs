//! Container commands: create, mount, umount, ps, diff, commit, export, rm.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use strata_store::{ContainerSpec, Store};

use super::{short, Format};

#[derive(Args)]
pub struct Create {
    #[arg(long)]
    pub name: Option<String>,
    /// A volume: /CTR (anonymous), NAME:/CTR or /HOST:/CTR, with
    /// :ro, :rw, :nocopy (comma-separated) after.
    #[arg(short, long = "volume", value_name = "SPEC")]
    pub volume: Vec<String>,
    /// The volumes of another container, as they are or :ro / :rw.
    #[arg(long, value_name = "CONTAINER[:ro|:rw]")]
    pub volumes_from: Vec<String>,
    pub image: String,
    /// The command (default: the image's Entrypoint and Cmd).
    #[arg(trailing_var_arg = true)]
    pub cmd: Vec<String>,
}

pub fn create(a: Create, store: &Store) -> Result<()> {
    let spec = ContainerSpec {
        name: a.name,
        cmd: a.cmd,
        volumes: a.volume,
        volumes_from: a.volumes_from,
    };
    let c = store.create_container(&a.image, &spec)?;
    println!("{}", c.id);
    Ok(())
}

pub fn mount(name: &str, store: &Store) -> Result<()> {
    let c = store.resolve_container(name)?;
    println!("{}", store.mount(&c)?.display());
    Ok(())
}

pub fn umount(name: &str, store: &Store) -> Result<()> {
    let c = store.resolve_container(name)?;
    store.unmount(&c)?;
    Ok(())
}

#[derive(Args)]
pub struct Ps {
    /// All containers (strata runs none yet: without -a the list is
    /// empty, as `docker ps` is with nothing running).
    #[arg(short, long)]
    pub all: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn ps(a: Ps, store: &Store) -> Result<()> {
    let all = store.containers()?;
    let shown: Vec<_> = if a.all { all } else { Vec::new() };
    if a.format == Format::Json {
        let v: Vec<_> = shown
            .iter()
            .map(|c| container_json(c, store))
            .collect::<Result<_>>()?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<14} {:<14} {:<32} {:<32} NAMES",
        "CONTAINER ID", "IMAGE", "COMMAND", "CREATED"
    );
    for c in &shown {
        let image = store
            .image(&c.image)
            .ok()
            .and_then(|i| i.tags.first().map(|t| t.to_string()))
            .unwrap_or_else(|| short(c.image.as_str()).to_owned());
        let created = c.created.get(..19).unwrap_or(&c.created).replace('T', " ");
        println!(
            "{:<14} {:<14} {:<32} {:<32} {}",
            short(&c.id),
            image,
            format!("{:?}", c.cmd.join(" ")),
            created,
            c.name
        );
    }
    Ok(())
}

pub fn container_json(c: &strata_store::Container, store: &Store) -> Result<serde_json::Value> {
    Ok(json!({
        "Id": c.id,
        "Name": c.name,
        "Image": c.image.as_str(),
        "Created": c.created,
        "Cmd": c.cmd,
        "Driver": c.driver,
        "GraphDriver": {
            "Name": store.driver().name(),
            "Data": { "MountID": c.mount_id, "InitID": c.init_id() },
        },
        "Mounts": c.mounts,
    }))
}

pub fn diff(name: &str, store: &Store) -> Result<()> {
    let c = store.resolve_container(name)?;
    let mut out = BufWriter::new(io::stdout().lock());
    for ch in store.container_changes(&c)? {
        writeln!(out, "{ch}")?;
    }
    out.flush()?;
    Ok(())
}

#[derive(Args)]
pub struct Commit {
    pub container: String,
    pub reference: Option<String>,
    #[arg(short, long, default_value = "")]
    pub message: String,
}

pub fn commit(a: Commit, store: &Store) -> Result<()> {
    let c = store.resolve_container(&a.container)?;
    let pb = crate::progress::bar(&format!("committing {}", c.name), None);
    let id = store.commit(&c, a.reference.as_deref(), &a.message);
    pb.finish_and_clear();
    println!("{}", id?);
    Ok(())
}

#[derive(Args)]
pub struct Export {
    #[arg(short, long)]
    pub output: PathBuf,
    pub container: String,
}

pub fn export(a: Export, store: &Store) -> Result<()> {
    let c = store.resolve_container(&a.container)?;
    let file =
        File::create(&a.output).with_context(|| format!("creating {}", a.output.display()))?;
    let pb = crate::progress::bar(&format!("exporting {}", c.name), None);
    let mut out = BufWriter::with_capacity(1 << 20, crate::progress::writer(&pb, file));
    let result = store
        .export(&c, &mut out)
        .map_err(anyhow::Error::from)
        .and_then(|_| out.flush().map_err(anyhow::Error::from));
    pb.finish_and_clear();
    result
}

pub fn rm(names: &[String], force: bool, volumes: bool, store: &Store) -> Result<()> {
    for n in names {
        let c = store.resolve_container(n)?;
        store.remove_container_with(&c, force, volumes)?;
        println!("{n}");
    }
    Ok(())
}
