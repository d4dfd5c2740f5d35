//! Image commands: import, images, image inspect|history, tag, rmi, layers.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use strata_store::Store;

use super::{human, short, Format};

#[derive(Args)]
pub struct Import {
    /// A root file-system tarball (tar, tar.gz, tar.zst), or - for stdin.
    pub file: PathBuf,
    /// name[:tag] for the new image.
    pub reference: Option<String>,
    /// Comment recorded in the image's history.
    #[arg(short, long, default_value = "")]
    pub message: String,
}

pub fn import(a: Import, store: &Store) -> Result<()> {
    let (pb, mut input) = if a.file.as_os_str() == "-" {
        let pb = crate::progress::bar("importing", None);
        let r = crate::progress::reader(&pb, io::stdin());
        (pb, r)
    } else {
        let f = File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
        let pb = crate::progress::bar("importing", f.metadata().ok().map(|m| m.len()));
        let r = crate::progress::reader(&pb, f);
        (pb, r)
    };
    let id = store.import(&mut input, a.reference.as_deref(), &a.message);
    pb.finish_and_clear();
    outln!("{}", id?);
    Ok(())
}

#[derive(Args)]
pub struct Images {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn images(a: Images, store: &Store) -> Result<()> {
    let (images, bad) = store.readable_images()?;
    super::warn_unreadable(&bad, "not listed");
    if a.format == Format::Json {
        let v: Vec<_> = images
            .iter()
            .map(|i| {
                json!({
                    "ID": i.id.as_str(),
                    "RepoTags": i.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                    "Created": i.created,
                    "Size": i.size,
                    "Layers": i.diff_ids.len(),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!(
        "{:<30} {:<12} {:<14} {:<32} SIZE",
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED"
    );
    for i in &images {
        let created = i.created.get(..19).unwrap_or(&i.created).replace('T', " ");
        if i.tags.is_empty() {
            outln!(
                "{:<30} {:<12} {:<14} {:<32} {}",
                "<none>",
                "<none>",
                short(i.id.as_str()),
                created,
                human(i.size)
            );
        }
        for t in &i.tags {
            outln!(
                "{:<30} {:<12} {:<14} {:<32} {}",
                t.name,
                t.tag,
                short(i.id.as_str()),
                created,
                human(i.size)
            );
        }
    }
    Ok(())
}

pub fn inspect_image(name: &str, store: &Store) -> Result<serde_json::Value> {
    let id = store.resolve_image(name)?;
    let image = store.image(&id)?;
    let config: serde_json::Value = serde_json::from_slice(&store.image_config(&id)?)?;
    Ok(json!({
        "Id": id.as_str(),
        "RepoTags": image.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "Parent": image.parent.as_ref().map(|p| p.as_str()),
        "Created": image.created,
        "Size": image.size,
        "Driver": store.driver().name(),
        "RootFS": { "Type": "layers", "Layers": image.diff_ids.iter().map(|d| d.as_str()).collect::<Vec<_>>() },
        "Config": config.get("config"),
        "Architecture": config.get("architecture"),
        "Os": config.get("os"),
    }))
}

pub fn history(name: &str, store: &Store) -> Result<()> {
    let id = store.resolve_image(name)?;
    let config: serde_json::Value = serde_json::from_slice(&store.image_config(&id)?)?;
    outln!("{:<32} {:<40} COMMENT", "CREATED", "CREATED BY");
    let history = config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    for h in history.iter().rev() {
        let s = |k: &str| h.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        outln!(
            "{:<32} {:<40} {}",
            s("created"),
            s("created_by"),
            s("comment")
        );
    }
    Ok(())
}

pub fn tag(src: &str, dst: &str, store: &Store) -> Result<()> {
    let id = store.resolve_image(src)?;
    store.tag(&id, dst)?;
    Ok(())
}

pub fn rmi(names: &[String], force: bool, store: &Store) -> Result<()> {
    for n in names {
        for line in store.remove_image(n, force)? {
            outln!("{line}");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct Layers {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn layers(a: Layers, store: &Store) -> Result<()> {
    let layers = store.layers()?;
    let (refs, bad) = store.layer_refs(&layers)?;
    super::warn_unreadable(&bad, "its layers' REFS leave it out");
    let refs_of = |l: &strata_store::Layer| refs.get(&l.chain_id).copied().unwrap_or(0);
    if a.format == Format::Json {
        let v: Vec<_> = layers
            .iter()
            .map(|l| {
                json!({
                    "ChainID": l.chain_id.as_str(),
                    "DiffID": l.diff_id.as_str(),
                    "CacheID": l.cache_id,
                    "Size": l.size,
                    "Parent": l.parent.as_ref().map(|p| p.as_str()),
                    "Refs": refs_of(l),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!(
        "{:<14} {:<14} {:<14} {:>10} {:<14} REFS",
        "CHAIN ID",
        "DIFF ID",
        "CACHE ID",
        "SIZE",
        "PARENT"
    );
    for l in &layers {
        outln!(
            "{:<14} {:<14} {:<14} {:>10} {:<14} {}",
            short(l.chain_id.as_str()),
            short(l.diff_id.as_str()),
            short(&l.cache_id),
            human(l.size),
            l.parent
                .as_ref()
                .map(|p| short(p.as_str()).to_owned())
                .unwrap_or_default(),
            refs_of(l)
        );
    }
    Ok(())
}
