//! `strata load` and `strata save`.

use std::io::{self, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use strata_store::{Progress, SaveFormat, SaveOptions, SaveTo, Store};

use super::registry::Compression;

use crate::output::Out;

#[derive(Args)]
pub struct Load {
    /// A docker-archive or OCI archive (tar, plain or compressed with
    /// gzip, zstd, xz or bzip2), or a directory: an OCI layout, or the
    /// `dir:` layout skopeo and `podman save --format docker-dir` write;
    /// standard input when absent or `-`.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Print only the loaded image IDs.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct Save {
    /// Where to write: a file, or a directory for oci-dir; standard
    /// output when absent (not a terminal).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Kind::DockerArchive)]
    pub format: Kind,
    /// Compress each layer (gzip: every tool reads it; zstd: Docker 23
    /// and later). Layers are written as their tars when absent, as
    /// `docker save` writes them.
    #[arg(long, value_enum)]
    pub compress: Option<Compression>,
    /// Images: name[:tag], ID or unique ID prefix.
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Clone, Copy, Default, ValueEnum)]
pub enum Kind {
    #[default]
    DockerArchive,
    OciArchive,
    OciDir,
}

/// Bytes and layers on a terminal's progress bar.
pub(crate) struct Bar {
    pub(crate) pb: ProgressBar,
    what: &'static str,
    layers: std::sync::atomic::AtomicUsize,
    total: std::sync::atomic::AtomicUsize,
}

impl Bar {
    pub(crate) fn new(what: &'static str) -> Bar {
        Bar {
            pb: crate::progress::bar(what, None),
            what,
            layers: 0.into(),
            total: 0.into(),
        }
    }

    fn message(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.pb.set_message(format!(
            "{} ({}/{} layers done)",
            self.what,
            self.layers.load(Relaxed),
            self.total.load(Relaxed)
        ));
    }
}

impl Progress for Bar {
    fn start(&self, bytes: u64, layers: usize) {
        if self.pb.is_hidden() {
            return;
        }
        self.total
            .store(layers, std::sync::atomic::Ordering::Relaxed);
        self.layers.store(0, std::sync::atomic::Ordering::Relaxed);
        self.pb.set_position(0);
        self.pb.set_length(bytes);
        self.pb.set_style(crate::progress::bytes_style());
        self.message();
    }

    fn advance(&self, n: u64) {
        self.pb.inc(n);
    }

    fn layer_done(&self) {
        self.layers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.message();
    }
}

pub fn load(a: Load, store: &Store, out: &mut Out) -> Result<()> {
    let bar = Bar::new("loading");
    let loaded = match &a.input {
        Some(p) if p.as_os_str() != "-" => store.load(p, &bar),
        _ => {
            if io::stdin().is_terminal() {
                bail!("give an archive with -i, or pipe one to standard input");
            }
            store.load_reader(&mut io::stdin().lock(), &bar)
        }
    };
    bar.pb.finish_and_clear();
    for img in loaded? {
        super::warn_depth(store, &img.id);
        if a.quiet {
            writeln!(out, "{}", img.id);
        } else if img.tags.is_empty() {
            writeln!(out, "Loaded image ID: {}", img.id);
        } else {
            for t in &img.tags {
                writeln!(out, "Loaded image: {t}");
            }
        }
    }
    Ok(())
}

pub fn save(a: Save, store: &Store) -> Result<()> {
    let format = match a.format {
        Kind::DockerArchive => SaveFormat::DockerArchive,
        Kind::OciArchive => SaveFormat::OciArchive,
        Kind::OciDir => SaveFormat::OciDir,
    };
    let opts = SaveOptions {
        format,
        compression: a.compress.map(Into::into),
    };
    let mut stdout;
    let to = match &a.output {
        Some(p) if p.as_os_str() != "-" => SaveTo::Path(p),
        _ if format == SaveFormat::OciDir => bail!("--format oci-dir needs -o DIRECTORY"),
        _ => {
            stdout = archive_stdout()?;
            SaveTo::Stream(&mut stdout)
        }
    };
    let bar = Bar::new("saving");
    let done = store.save_to(&a.images, opts, to, &bar);
    bar.pb.finish_and_clear();
    Ok(done?)
}

/// Standard output, for an archive written without `-o`: refused on a
/// terminal with Docker's words.
pub(crate) fn archive_stdout() -> Result<io::StdoutLock<'static>> {
    let out = io::stdout();
    if out.is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    Ok(out.lock())
}
