//! Image commands: import, images, image inspect|history, tag, rmi, layers.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use strata_store::filter::{Filters, Listing};
use strata_store::listing::{HistoryRow, ImageRow, LayerRow};
use strata_store::{view, ErrorKind, ImageRef, Store};

use super::ListFlags;
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
    #[command(flatten)]
    pub list: ListFlags,
    /// Show each repository's digest (a DIGEST column).
    #[arg(long)]
    pub digests: bool,
    /// Only images that match: dangling=true|false, reference=PATTERN,
    /// label=KEY[=VALUE], before=IMAGE, since=IMAGE (repeat a key for
    /// either of its values).
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// Docker's `images` table, and with `--digests`.
const IMAGES: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const IMAGES_DIGESTS: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

pub fn images(a: Images, store: &Store, out: &mut Out) -> Result<()> {
    let filters = Filters::parse(Listing::Images, &a.filter)?;
    let default = if a.digests { IMAGES_DIGESTS } else { IMAGES };
    let template = a.list.template(default, "ID")?;
    let (images, bad) = store.filtered_images(&filters)?;
    super::warn_unreadable(&bad, "not listed");
    if a.list.json() {
        let v: Vec<_> = images.iter().map(view::ImageSummary::from).collect();
        return Ok(out.json(&v)?);
    }
    let digests = a.digests || template.uses("Digest");
    let now = std::time::SystemTime::now();
    let rows: Vec<ImageRow> = (images.iter())
        .flat_map(|i| ImageRow::of(i, digests, a.list.trunc(), now))
        .collect();
    template.print(&rows, ImageRow::HEADERS, out)
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

#[derive(Args)]
pub struct History {
    pub image: String,
    #[command(flatten)]
    pub list: ListFlags,
}

/// Docker's `history` table.
const HISTORY: &str = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

pub fn history(a: History, store: &Store, out: &mut Out) -> Result<()> {
    let template = a.list.template(HISTORY, "ID")?;
    let id = store.resolve_image(&a.image)?;
    let steps = store.history(&id)?;
    let now = std::time::SystemTime::now();
    let rows: Vec<HistoryRow> = (steps.iter())
        .map(|s| HistoryRow::new(s, a.list.trunc(), now))
        .collect();
    if a.list.json() {
        return Ok(out.json(&rows)?);
    }
    template.print(&rows, HistoryRow::HEADERS, out)
}

pub fn tag(src: &str, dst: &str, store: &Store) -> Result<()> {
    let id = store.resolve_image(src)?;
    store.tag(&id, dst)?;
    Ok(())
}

#[derive(Args)]
pub struct Rmi {
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn rmi(a: Rmi, store: &Store, out: &mut Out) -> Result<()> {
    for n in &a.images {
        for line in store.remove_image(n, a.force)? {
            writeln!(out, "{line}");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct Layers {
    #[command(flatten)]
    pub list: ListFlags,
}

const LAYERS: &str =
    "table {{.ChainID}}\t{{.DiffID}}\t{{.CacheID}}\t{{.Size}}\t{{.Parent}}\t{{.Refs}}";

pub fn layers(a: Layers, store: &Store, out: &mut Out) -> Result<()> {
    let template = a.list.template(LAYERS, "ChainID")?;
    let layers = store.layers()?;
    let (refs, bad) = store.layer_refs(&layers)?;
    super::warn_unreadable(&bad, "its layers' REFS leave it out");
    let refs_of = |l: &strata_store::Layer| refs.get(&l.chain_id).copied().unwrap_or(0);
    if a.list.json() {
        let v: Vec<_> = layers
            .iter()
            .map(|l| view::Layer::new(l, refs_of(l)))
            .collect();
        return Ok(out.json(&v)?);
    }
    let rows: Vec<LayerRow> = (layers.iter())
        .map(|l| LayerRow::new(l, refs_of(l), a.list.trunc()))
        .collect();
    template.print(&rows, LayerRow::HEADERS, out)
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
