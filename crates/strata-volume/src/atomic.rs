//! Metadata writes that a crash cannot tear: a temp file in the same
//! directory, fsync, rename over the name, fsync of the directory (the
//! store's pattern, DESIGN §3).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `data` atomically and durably.
pub(crate) fn write(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("metadata paths have a parent");
    let name = path.file_name().expect("metadata paths have a name");
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Now, as RFC 3339 in UTC (`YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ`).
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}
