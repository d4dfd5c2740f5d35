//! `strata archive apply|diff|changes`: the changeset core on the command
//! line, for scripts and for looking at layers by hand.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use strata_store::archive::{ApplyOptions, Devices, OverlayXattrs, Target};

use crate::output::Out;

#[derive(Subcommand)]
pub enum Args {
    /// Apply a layer (tar, tar.gz or tar.zst; told apart by content) to DIR
    /// and print its diffID.
    Apply {
        /// Directory to apply to; it must exist.
        dir: PathBuf,
        /// Layer file; standard input when absent or `-`.
        layer: Option<PathBuf>,
        /// What DIR is: a plain tree (whiteouts delete) or an overlay upper
        /// directory (whiteouts become overlay markers).
        #[arg(long, value_enum, default_value_t = Kind::Plain)]
        target: Kind,
        /// Overlay markers in `user.overlay.*` (rootless overlay mounts).
        #[arg(long)]
        userxattr: bool,
        /// Refuse layers with device nodes instead of creating them.
        #[arg(long)]
        no_devices: bool,
    },
    /// Write the layer tar of DIR: of an overlay upper directory (native),
    /// or of the difference between --from OLD and DIR (naive).
    Diff {
        dir: PathBuf,
        /// The tree DIR is compared with (naive diff).
        #[arg(long, conflicts_with = "upper")]
        from: Option<PathBuf>,
        /// DIR is an overlay upper directory.
        #[arg(long)]
        upper: bool,
        /// Overlay markers in `user.overlay.*`.
        #[arg(long)]
        userxattr: bool,
        /// Output file; standard output when absent.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List changes like `docker diff`: `A`, `C` or `D` and the path.
    Changes {
        dir: PathBuf,
        /// The tree DIR is compared with.
        #[arg(long, conflicts_with = "upper")]
        from: Option<PathBuf>,
        /// DIR is an overlay upper directory over these lower directories,
        /// topmost first.
        #[arg(long, num_args = 0.., value_name = "LOWER")]
        upper: Option<Vec<PathBuf>>,
        #[arg(long)]
        userxattr: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Plain,
    Overlay,
}

fn xattrs(user: bool) -> OverlayXattrs {
    if user {
        OverlayXattrs::User
    } else {
        OverlayXattrs::Trusted
    }
}

pub fn run(args: Args, out: &mut Out) -> Result<()> {
    match args {
        Args::Apply {
            dir,
            layer,
            target,
            userxattr,
            no_devices,
        } => {
            let input: Box<dyn Read + Send> = match layer.as_deref() {
                None => Box::new(io::stdin()),
                Some(p) if p.as_os_str() == "-" => Box::new(io::stdin()),
                Some(p) => {
                    Box::new(File::open(p).with_context(|| format!("opening {}", p.display()))?)
                }
            };
            let mut opts = ApplyOptions::default();
            if let Kind::Overlay = target {
                opts.target = Target::Overlay(xattrs(userxattr));
            }
            if no_devices {
                opts.devices = Devices::Refuse;
            }
            let report = strata_store::archive::apply(input, &dir, &opts)
                .with_context(|| format!("applying the layer to {}", dir.display()))?;
            writeln!(out, "{}", report.diff_id);
            Ok(())
        }
        Args::Diff {
            dir,
            from,
            upper,
            userxattr,
            output,
        } => {
            let tar: Box<dyn Write + '_> = match &output {
                Some(p) => {
                    Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?)
                }
                None => Box::new(out.raw()),
            };
            let tar = BufWriter::with_capacity(1 << 20, tar);
            let (tar, report) = if upper {
                strata_store::archive::diff_upper(&dir, tar, xattrs(userxattr))?
            } else {
                strata_store::archive::diff_trees(from.as_deref(), &dir, tar)?
            };
            tar.into_inner().map_err(|e| e.into_error())?.flush()?;
            if output.is_some() {
                writeln!(out, "{}", report.diff_id);
            }
            Ok(())
        }
        Args::Changes {
            dir,
            from,
            upper,
            userxattr,
        } => {
            let changes = match upper {
                Some(lowers) => {
                    let lowers: Vec<&std::path::Path> =
                        lowers.iter().map(PathBuf::as_path).collect();
                    strata_store::archive::changes_upper(&dir, &lowers, xattrs(userxattr))?
                }
                None => strata_store::archive::changes_trees(from.as_deref(), &dir)?,
            };
            let mut w = BufWriter::new(out.raw());
            for c in changes {
                writeln!(w, "{c}")?;
            }
            w.flush()?;
            Ok(())
        }
    }
}
