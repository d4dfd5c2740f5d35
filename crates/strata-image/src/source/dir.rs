//! An OCI layout or an unpacked docker-archive as a directory: every
//! open confined beneath it (`openat2` with `RESOLVE_IN_ROOT`), so a
//! symlink in the layout cannot lead a load outside it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::{bad, clean, escapes, missing, Blob, BlobKey, Source};
use crate::error::{Error, IoContext, Result};

/// A layout directory being loaded.
pub struct DirSource {
    root: OwnedFd,
}

impl DirSource {
    pub fn open(path: &Path) -> Result<DirSource> {
        let root = strata_sys::fs::open_dir(path).ctx(|| format!("opening {}", path.display()))?;
        Ok(DirSource { root })
    }
}

impl Source for DirSource {
    fn open(&self, key: &BlobKey) -> Result<Blob<'_>> {
        let name = key.archive_path();
        let path = clean(&name).ok_or_else(|| escapes(&name))?;
        let file =
            strata_sys::fs::open_beneath(self.root.as_fd(), Path::new(&path)).map_err(|e| {
                let errno = e.raw_os_error().map(strata_sys::Errno::from_raw_os_error);
                if errno == Some(strata_sys::Errno::XDEV) {
                    escapes(&name)
                } else if e.kind() == io::ErrorKind::NotFound {
                    missing(&name)
                } else {
                    Error::io(format!("opening {name:?} in the layout"), e)
                }
            })?;
        let md = file
            .metadata()
            .ctx(|| format!("opening {name:?} in the layout"))?;
        if !md.is_file() {
            return Err(bad(format!("{name:?} in the layout is not a file")));
        }
        Ok(Blob {
            reader: Box::new(file),
            size: md.len(),
            verified: false,
        })
    }
}
