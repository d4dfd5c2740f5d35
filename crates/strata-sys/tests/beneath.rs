//! Confined opens (`openat2` with `RESOLVE_BENEATH` or `RESOLVE_IN_ROOT`)
//! of paths through `..` while renames happen elsewhere on the system:
//! the kernel then answers `EAGAIN` ("retry"), which the wrappers do, so
//! a busy machine never makes such an open fail.

use std::fs;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn opens_through_dotdot_survive_renames_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc/sub")).unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let busy = tmp.path().join("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("a"), "").unwrap();
    let dir = fs::File::open(&root).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                fs::rename(busy.join("a"), busy.join("b")).unwrap();
                fs::rename(busy.join("b"), busy.join("a")).unwrap();
            }
        });
        let path = Path::new("etc/sub/../passwd");
        let tried = (|| -> std::io::Result<()> {
            for _ in 0..20_000 {
                strata_sys::fs::open_beneath(dir.as_fd(), path)?;
                strata_sys::fs::open_regular_beneath(dir.as_fd(), path)?;
                strata_sys::fs::stat_in_root(dir.as_fd(), path)?;
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        tried.unwrap();
    });
}
