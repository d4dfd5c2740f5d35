//! `strata check [--repair]`: what in the store does not add up.

use anyhow::{bail, Result};
use clap::Args;
use strata_store::{view, CheckOptions, Store};

use super::Format;
use crate::output::Out;

#[derive(Args)]
pub struct Check {
    /// Fix what can be fixed without losing committed data.
    #[arg(long)]
    pub repair: bool,
    /// Also rebuild every layer's tar and compare it with its diffID
    /// (reads all content).
    #[arg(long)]
    pub verify_digests: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Prints the findings; fails when problems remain.
pub fn run(a: Check, store: &Store, out: &mut Out) -> Result<()> {
    let report = store.check_with(CheckOptions {
        repair: a.repair,
        verify_digests: a.verify_digests,
    })?;
    if a.format == Format::Json {
        out.json(&view::Check::from(&report))?;
    } else {
        for f in &report.findings {
            let done = if f.repaired { " (repaired)" } else { "" };
            writeln!(
                out,
                "{}: {}: {}{done}",
                f.kind.as_str(),
                f.object,
                f.message
            );
        }
    }
    let left = report.remaining().count();
    if left > 0 {
        bail!("{left} problem(s) remain");
    }
    if a.format != Format::Json {
        writeln!(out, "the store is consistent");
    }
    Ok(())
}
