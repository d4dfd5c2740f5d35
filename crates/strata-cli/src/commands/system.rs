//! `strata info` and `strata inspect`.

use anyhow::{bail, Result};
use strata_store::Store;

use super::Format;

pub fn info(format: Format, store: &Store) -> Result<()> {
    let info = store.info()?;
    if format == Format::Json {
        let map: serde_json::Map<String, serde_json::Value> = info
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
        return Ok(());
    }
    for (k, v) in info {
        println!("{k}: {v}");
    }
    Ok(())
}

/// Containers first, then images, as `docker inspect` looks them up.
pub fn inspect(names: &[String], store: &Store) -> Result<()> {
    let mut out = Vec::new();
    for n in names {
        if let Ok(c) = store.resolve_container(n) {
            out.push(super::container::container_json(&c, store)?);
        } else if store.resolve_image(n).is_ok() {
            out.push(super::image::inspect_image(n, store)?);
        } else {
            bail!("no such object: {n}");
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
