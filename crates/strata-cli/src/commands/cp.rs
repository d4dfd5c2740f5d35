//! `strata cp SRC DEST`: either side may be `CONTAINER:PATH`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Result};
use clap::Args;
use strata_store::Store;

#[derive(Args)]
pub struct Cp {
    /// Follow a symlink that is the source's last component.
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// A host path or CONTAINER:PATH (`DIR/.` copies the contents).
    pub src: OsString,
    /// A host path or CONTAINER:PATH.
    pub dest: OsString,
}

/// `CONTAINER:PATH` split in two; `None` for a host path. As with
/// Docker, a host path with a `:` in it is written `./a:b` (or with any
/// `/` before the colon).
fn container_side(arg: &OsString) -> Option<(String, &[u8])> {
    let b = arg.as_bytes();
    let colon = b.iter().position(|&c| c == b':')?;
    if b[..colon].contains(&b'/') || colon == 0 {
        return None;
    }
    Some((
        String::from_utf8_lossy(&b[..colon]).into_owned(),
        &b[colon + 1..],
    ))
}

pub fn run(a: Cp, store: &Store) -> Result<()> {
    match (container_side(&a.src), container_side(&a.dest)) {
        (Some((name, src)), None) => {
            let c = store.resolve_container(&name)?;
            store.copy_from_container(&c, src, Path::new(&a.dest), a.follow_link)?;
        }
        (None, Some((name, dest))) => {
            let c = store.resolve_container(&name)?;
            store.copy_to_container(Path::new(&a.src), &c, dest, a.follow_link)?;
        }
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("one of SRC and DEST must be CONTAINER:PATH"),
    }
    Ok(())
}
