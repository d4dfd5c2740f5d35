//! `strata check [--repair]`: what in the store does not add up.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use strata_store::{CheckOptions, Store};

use super::Format;

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
pub fn run(a: Check, store: &Store) -> Result<()> {
    let report = store.check_with(CheckOptions {
        repair: a.repair,
        verify_digests: a.verify_digests,
    })?;
    if a.format == Format::Json {
        let findings: Vec<_> = report
            .findings
            .iter()
            .map(|f| {
                json!({
                    "Kind": f.kind.as_str(),
                    "Object": f.object,
                    "Message": f.message,
                    "Corruption": f.kind.is_corruption(),
                    "Repaired": f.repaired,
                })
            })
            .collect();
        let v = json!({ "Clean": report.is_clean(), "Findings": findings });
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for f in &report.findings {
            let done = if f.repaired { " (repaired)" } else { "" };
            outln!("{}: {}: {}{done}", f.kind.as_str(), f.object, f.message);
        }
    }
    let left = report.remaining().count();
    if left > 0 {
        bail!("{left} problem(s) remain");
    }
    if a.format != Format::Json {
        outln!("the store is consistent");
    }
    Ok(())
}
