//! Image commands: import, images, image inspect|history, tag, rmi, layers.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use strata_store::{view, ErrorKind, ImageRef, Store};

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
    let bad_reference = (a.reference.as_deref()).is_some_and(|r| ImageRef::parse(r).is_err());
    let id = id.map_err(|e| match e.kind() {
        // What the file holds was refused: say which file.
        ErrorKind::InvalidArgument if !bad_reference => {
            anyhow::Error::from(e).context(input_name(&a.file))
        }
        _ => e.into(),
    })?;
    writeln!(out, "{id}");
    Ok(())
}

/// The input as the user named it: a path, or standard input for `-`.
pub(crate) fn input_name(p: &std::path::Path) -> String {
    match p.as_os_str() == "-" {
        true => "standard input".to_owned(),
        false => p.display().to_string(),
    }
}

#[derive(Args)]
pub struct Images {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Show each repository's digest (a DIGEST column).
    #[arg(long)]
    pub digests: bool,
}

pub fn images(a: Images, store: &Store, out: &mut Out) -> Result<()> {
    let (images, bad) = store.readable_images()?;
    super::warn_unreadable(&bad, "not listed");
    if a.format == Format::Json {
        let v: Vec<_> = images.iter().map(view::ImageSummary::from).collect();
        return Ok(out.json(&v)?);
    }
    let digests = a.digests;
    let row = |out: &mut Out, [repo, tag, digest, id, created, size]: [&str; 6]| {
        if digests {
            writeln!(
                out,
                "{repo:<30} {tag:<12} {digest:<71} {id:<14} {created:<32} {size}"
            );
        } else {
            writeln!(out, "{repo:<30} {tag:<12} {id:<14} {created:<32} {size}");
        }
    };
    row(
        out,
        ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"],
    );
    for i in &images {
        let created = i.created.get(..19).unwrap_or(&i.created).replace('T', " ");
        let (id, size) = (short(i.id.as_str()), human(i.size));
        // A repository's digest on each of its tags' rows, as Docker
        // shows it; a digest whose repository has no tag on a row of its own.
        let digest_of = |name: &str| {
            i.repo_digests
                .iter()
                .find(|d| d.name == name)
                .and_then(|d| d.digest.as_ref())
                .map_or("<none>", |d| d.as_str())
        };
        if i.tags.is_empty() && (!digests || i.repo_digests.is_empty()) {
            row(out, ["<none>", "<none>", "<none>", id, &created, &size]);
        }
        for t in &i.tags {
            row(
                out,
                [&t.name, &t.tag, digest_of(&t.name), id, &created, &size],
            );
        }
        if digests {
            for d in &i.repo_digests {
                if !i.tags.iter().any(|t| t.name == d.name) {
                    let digest = d.digest.as_ref().map_or("<none>", |d| d.as_str());
                    row(out, [&d.name, "<none>", digest, id, &created, &size]);
                }
            }
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
    Ok(store.image_view(&id)?)
}

/// The image config of `id`, parsed.
fn config(id: &strata_store::Digest, store: &Store) -> Result<serde_json::Value> {
    Ok(serde_json::from_slice(&store.image_config(id)?)?)
}

pub fn history(name: &str, store: &Store, out: &mut Out) -> Result<()> {
    let id = store.resolve_image(name)?;
    let config = config(&id, store)?;
    let row = |out: &mut Out, [created, created_by, comment]: [&str; 3]| {
        writeln!(out, "{created:<32} {created_by:<40} {comment}");
    };
    row(out, ["CREATED", "CREATED BY", "COMMENT"]);
    let history = config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    for h in history.iter().rev() {
        let s = |k: &str| h.get(k).and_then(|v| v.as_str()).unwrap_or("");
        row(out, [s("created"), s("created_by"), s("comment")]);
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
        return Ok(out.json(&v)?);
    }
    let row = |out: &mut Out, [chain, diff, cache, size, parent, refs]: [&str; 6]| {
        writeln!(
            out,
            "{chain:<14} {diff:<14} {cache:<14} {size:>10} {parent:<14} {refs}"
        );
    };
    row(
        out,
        ["CHAIN ID", "DIFF ID", "CACHE ID", "SIZE", "PARENT", "REFS"],
    );
    for l in &layers {
        let parent = l.parent.as_ref().map_or("", |p| short(p.as_str()));
        row(
            out,
            [
                short(l.chain_id.as_str()),
                short(l.diff_id.as_str()),
                short(&l.cache_id),
                &human(l.size),
                parent,
                &refs_of(l).to_string(),
            ],
        );
    }
    Ok(())
}

/// `strata flatten IMAGE [NEWNAME]`: a one-layer copy of an image.
#[derive(Args)]
pub struct Flatten {
    pub image: String,
    /// The copy's name (default: untagged, by ID).
    pub reference: Option<String>,
}

pub fn flatten(a: Flatten, store: &Store, out: &mut Out) -> Result<()> {
    let pb = crate::progress::bar(&format!("flattening {}", a.image), None);
    let id = store.flatten(&a.image, a.reference.as_deref());
    pb.finish_and_clear();
    writeln!(out, "{}", id?);
    Ok(())
}
