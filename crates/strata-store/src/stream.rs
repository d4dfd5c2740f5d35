//! A tree copied through a pipe: written as a tar from a root held open
//! ([`PathInRoot`]) and applied, confined, under a directory. What `cp`
//! and the filling of a new volume from the image share.

use std::io::Write;
use std::path::Path;

use strata_archive::{apply, ApplyOptions, PathInRoot};

use crate::error::{Error, ErrorKind, IoContext, Result};

/// What a copy wrote.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Objects written.
    pub entries: u64,
    /// Bytes of file content written.
    pub size: u64,
}

/// An archive error of `what`, as the store reports it.
pub(crate) fn archive_err(what: String) -> impl FnOnce(strata_archive::Error) -> Error {
    move |e| {
        let kind = match e.kind() {
            strata_archive::ErrorKind::InvalidLayer => ErrorKind::InvalidArgument,
            _ => ErrorKind::Io,
        };
        Error::with(kind, what, e)
    }
}

/// Writes `src` as a tar named `name` and applies it to `dir`, through a
/// pipe: nothing is held whole.
pub(crate) fn stream(src: &PathInRoot, name: &[u8], dir: &Path, shown: &str) -> Result<CopyReport> {
    let (reader, writer) = std::io::pipe().ctx(|| "making a pipe".into())?;
    std::thread::scope(|s| {
        let tar = s.spawn(move || {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, writer);
            let r = src.write_tar(name, &mut w).map(|_| ());
            let flushed = w.flush();
            r.map_err(archive_err(format!("reading {shown}")))
                .and_then(|()| flushed.ctx(|| format!("copying {shown}")))
        });
        let applied = apply(reader, dir, &ApplyOptions::default())
            .map_err(archive_err(format!("writing {shown}")));
        let written = tar.join().expect("the tar thread does not panic");
        // A failed read explains the apply error it caused: report it first.
        written?;
        let report = applied?;
        Ok(CopyReport {
            entries: report.entries,
            size: report.size,
        })
    })
}
