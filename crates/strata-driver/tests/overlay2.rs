//! overlay2-only behaviour: what it refuses to run on.

use std::fs;
use std::process::Command;

use strata_driver::conformance::require_root;
use strata_driver::overlay2::Overlay2;
use strata_driver::{Driver, ErrorKind, LayerKind};

/// overlayfs cannot use an overlay mount as its upper layer's file
/// system: the driver says so up front (Docker: "backing file system is
/// unsupported for this graph driver").
#[test]
fn overlay2_refuses_an_overlay_backing_filesystem() {
    if !require_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir(t.path().join(d)).unwrap();
    }
    let p = |d: &str| t.path().join(d).display().to_string();
    let ok = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            p("lower"),
            p("upper"),
            p("work")
        ))
        .arg(p("merged"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "mounting the test overlay");
    let result = Overlay2::new(&t.path().join("merged/home"));
    let _ = Command::new("umount").arg(p("merged")).status();
    let err = match result {
        Ok(_) => panic!("overlay2 opened on overlayfs"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("overlayfs"), "{err}");
}

/// As root, a driver in a temp home holding a read-only layer `base` and
/// a container layer `c` on it; `None` (SKIPPED) otherwise.
fn base_and_container() -> Option<(tempfile::TempDir, Overlay2)> {
    if !require_root() {
        return None;
    }
    let t = tempfile::tempdir().unwrap();
    let d = Overlay2::new(t.path()).unwrap();
    d.create("base", None, LayerKind::ReadOnly).unwrap();
    d.create("c", Some("base"), LayerKind::ReadWrite).unwrap();
    Some((t, d))
}

/// A mount count left on disk by a mount that is gone (a reboot, a killed
/// process) must not keep the next mount alive: after get, put unmounts.
#[test]
fn a_stale_mount_count_does_not_keep_the_layer_mounted() {
    let Some((_t, d)) = base_and_container() else {
        return;
    };
    // Counts are kept on disk: the references outlive the guards, as
    // those of a killed process would.
    let merged = d.get("c", None).unwrap().keep();
    // The mount goes away behind the driver's back; the count stays 1.
    assert!(Command::new("umount")
        .arg(&merged)
        .status()
        .unwrap()
        .success());
    let mounted = || strata_sys::mount::is_mountpoint(&merged).unwrap();
    assert!(!mounted());
    d.get("c", None).unwrap().keep();
    assert!(mounted());
    d.put("c").unwrap();
    assert!(!mounted(), "one get, one put: the layer must be unmounted");
    d.remove("c").unwrap();
}

/// A layer whose `link` record was lost (emptied by a power cut before it
/// was flushed) still takes its `l/` entry with it when removed, so no
/// link is left dangling.
#[test]
fn removing_a_layer_whose_link_record_is_lost_leaves_no_dangling_link() {
    let Some((t, d)) = base_and_container() else {
        return;
    };
    let links = || fs::read_dir(t.path().join("l")).unwrap().count();
    assert_eq!(links(), 2);
    fs::write(t.path().join("c/link"), "").unwrap();
    d.remove("c").unwrap();
    assert_eq!(links(), 1, "the entry for c is gone, base's stays");
    assert!(fs::read_dir(t.path().join("l"))
        .unwrap()
        .flatten()
        .all(|e| e.path().join(".").exists()));
}
