//! Image commands: import, images, image inspect|history, tag, rmi, layers.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use strata_store::{view, Store};

use super::{human, short, Format};
use crate::output::Out;

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

pub fn import(a: Import, store: &Store, out: &mut Out) -> Result<()> {
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
    writeln!(out, "{}", id?);
    Ok(())
}

#[derive(Args)]
pub struct Images {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn images(a: Images, store: &Store, out: &mut Out) -> Result<()> {
    let (images, bad) = store.readable_images()?;
    super::warn_unreadable(&bad, "not listed");
    if a.format == Format::Json {
        let v: Vec<_> = images.iter().map(view::ImageSummary::from).collect();
        out.json(&v)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<30} {:<12} {:<14} {:<32} SIZE",
        "REPOSITORY", "TAG", "IMAGE ID", "CREATED"
    );
    for i in &images {
        let created = i.created.get(..19).unwrap_or(&i.created).replace('T', " ");
        if i.tags.is_empty() {
            writeln!(
                out,
                "{:<30} {:<12} {:<14} {:<32} {}",
                "<none>",
                "<none>",
                short(i.id.as_str()),
                created,
                human(i.size)
            );
        }
        for t in &i.tags {
            writeln!(
                out,
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

/// `strata image inspect`.
pub fn inspect(name: &str, store: &Store, out: &mut Out) -> Result<()> {
    out.json(&[view(name, store)?])?;
    Ok(())
}

/// The image `name` names, as `inspect` shows it.
pub fn view(name: &str, store: &Store) -> Result<view::Image> {
    let id = store.resolve_image(name)?;
    let image = store.image(&id)?;
    Ok(view::Image::new(
        &image,
        store.driver().name(),
        &config(&id, store)?,
    ))
}

/// The image config of `id`, parsed.
fn config(id: &strata_store::Digest, store: &Store) -> Result<serde_json::Value> {
    Ok(serde_json::from_slice(&store.image_config(id)?)?)
}

pub fn history(name: &str, store: &Store, out: &mut Out) -> Result<()> {
    let id = store.resolve_image(name)?;
    let config = config(&id, store)?;
    writeln!(out, "{:<32} {:<40} COMMENT", "CREATED", "CREATED BY");
    let history = config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    for h in history.iter().rev() {
        let s = |k: &str| h.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        writeln!(
            out,
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

pub fn rmi(names: &[String], force: bool, store: &Store, out: &mut Out) -> Result<()> {
    for n in names {
        for line in store.remove_image(n, force)? {
            writeln!(out, "{line}");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct Layers {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn layers(a: Layers, store: &Store, out: &mut Out) -> Result<()> {
    let layers = store.layers()?;
    let (refs, bad) = store.layer_refs(&layers)?;
    super::warn_unreadable(&bad, "its layers' REFS leave it out");
    let refs_of = |l: &strata_store::Layer| refs.get(&l.chain_id).copied().unwrap_or(0);
    if a.format == Format::Json {
        let v: Vec<_> = layers
            .iter()
            .map(|l| view::Layer::new(l, refs_of(l)))
            .collect();
        out.json(&v)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<14} {:<14} {:<14} {:>10} {:<14} REFS",
        "CHAIN ID", "DIFF ID", "CACHE ID", "SIZE", "PARENT"
    );
    for l in &layers {
        writeln!(
            out,
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
