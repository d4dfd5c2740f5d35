//! Size limits as Docker's btrfs driver sets them: the layer's level-0
//! quota group (`0/<subvolume id>`) gets a limit on the data it refers
//! to (`max_rfer`), with quota turned on in the file system the first
//! time one is asked for. The limit lives in the file system's quota
//! tree, which is also where it is read back from. When the subvolume is
//! deleted, the kernel drops its quota group once the cleaner has freed
//! it (older kernels leave an empty one behind, which limits nothing).

use std::os::fd::AsFd;

use strata_sys::btrfs as sys;

use super::Btrfs;
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::{check_id, Quota};

/// The least limit taken: below it a container could not even be
/// started (Docker refuses limits under its `btrfs.min_space` likewise).
pub const MIN_SIZE: u64 = 1 << 20;

impl Quota for Btrfs {
    fn set_size_limit(&self, id: &str, bytes: u64) -> Result<()> {
        check_id(id)?;
        if bytes < MIN_SIZE {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("a size limit of {bytes} bytes is below the least one, {MIN_SIZE}"),
            ));
        }
        let dir = self.dir(id);
        let fd = strata_sys::fs::open_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::no_layer(id),
            _ => Error::io(format!("opening layer {id}"), e),
        })?;
        let on = sys::quota_enabled(fd.as_fd()).ctx(|| "reading the quota status".into())?;
        if !on {
            let _lock = self.refs.lock()?;
            sys::quota_enable(fd.as_fd())
                .ctx(|| format!("turning quota on in the file system of {}", dir.display()))?;
        }
        sys::qgroup_limit(fd.as_fd(), Some(bytes))
            .ctx(|| format!("limiting layer {id} to {bytes} bytes"))
    }

    fn size_limit(&self, id: &str) -> Result<Option<u64>> {
        check_id(id)?;
        let fd = strata_sys::fs::open_dir(&self.dir(id)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::no_layer(id),
            _ => Error::io(format!("opening layer {id}"), e),
        })?;
        sys::qgroup_limit_of(fd.as_fd()).ctx(|| format!("reading the size limit of layer {id}"))
    }
}
