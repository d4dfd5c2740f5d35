//! What the kernel and the backing file system can do, found out once
//! when the driver opens (as Docker's overlay2 does).

use std::fs;
use std::os::fd::AsFd;
use std::path::Path;

use strata_archive::OverlayXattrs;
use strata_sys::mount::{self, Overlay};
use strata_sys::{xattr, FileType};

use crate::error::{Error, ErrorKind, IoContext, Result};

/// overlayfs needs d_type to tell whiteouts from files quickly; Docker
/// refuses a backing file system without it (xfs with ftype=0).
pub fn require_d_type(home: &Path) -> Result<()> {
    let t = tempfile_in(home, "probe-dtype")?;
    fs::write(t.join("f"), b"").ctx(|| "probing d_type".into())?;
    let fd = strata_sys::fs::open_dir(&t).ctx(|| "probing d_type".into())?;
    let entries = strata_sys::fs::read_dir(fd.as_fd()).ctx(|| "probing d_type".into())?;
    let _ = fs::remove_dir_all(&t);
    if entries.iter().any(|e| e.kind == FileType::Unknown) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{}: the file system does not report d_type; overlay2 needs it",
                home.display()
            ),
        ));
    }
    Ok(())
}

/// [`require_d_type`] and [`probe`], remembered in `<home>/probe` for as long as the kernel
/// release and the mount options stay the same: every `strata` command
/// opens the driver, and a probe is a mount and an unmount.
pub fn cached(home: &Path, options: &[String], x: OverlayXattrs) -> Result<Probed> {
    if let Some(found) = recorded(home, options) {
        return Ok(found);
    }
    let key = probe_key(options);
    let path = home.join("probe");
    require_d_type(home)?;
    let found = probe(home, options, x)?;
    let text = format!(
        "{key}\nnew_mount_api={}\nnative_diff={}\n",
        found.new_mount_api, found.native_diff
    );
    let tmp = home.join(".probe.tmp");
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, &path))
        .ctx(|| format!("recording the probe in {}", path.display()))?;
    Ok(found)
}

/// What `<home>/probe` records for this kernel and `options`, if it
/// records anything for them.
pub fn recorded(home: &Path, options: &[String]) -> Option<Probed> {
    let text = fs::read_to_string(home.join("probe")).ok()?;
    if text.lines().next() != Some(probe_key(options).as_str()) {
        return None;
    }
    let flag = |name: &str| text.lines().any(|l| l == format!("{name}=true"));
    Some(Probed {
        new_mount_api: flag("new_mount_api"),
        native_diff: flag("native_diff"),
    })
}

/// The first line of `<home>/probe`: what the answer depends on.
fn probe_key(options: &[String]) -> String {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("kernel={} options={}", kernel.trim(), options.join(","))
}

pub struct Probed {
    pub new_mount_api: bool,
    pub native_diff: bool,
}

/// Mounts a small overlay with `options`: it must mount at all; `lowerdir+`
/// tells whether the new mount API can stack layers one by one; copying an
/// opaque directory up must not copy its opaque flag, and renaming a lower
/// directory must not leave a redirect, or the upper directory is not the
/// whole change and native diff is off.
pub fn probe(home: &Path, options: &[String], x: OverlayXattrs) -> Result<Probed> {
    let t = tempfile_in(home, "probe")?;
    let result = probe_in(&t, options, x);
    let merged = t.join("merged");
    if mount::is_mountpoint(&merged).unwrap_or(false) {
        let _ = mount::unmount(&merged, true);
    }
    let _ = fs::remove_dir_all(&t);
    result
}

fn probe_in(t: &Path, options: &[String], x: OverlayXattrs) -> Result<Probed> {
    for d in ["l1/d", "l1/d1", "l2/d", "upper", "work", "merged"] {
        fs::create_dir_all(t.join(d)).ctx(|| "preparing the overlay probe".into())?;
    }
    let l2d =
        strata_sys::fs::open_dir(&t.join("l2/d")).ctx(|| "preparing the overlay probe".into())?;
    xattr::set(l2d.as_fd(), false, x.opaque(), b"y")
        .ctx(|| "marking a probe directory opaque".into())?;
    let ov = Overlay {
        lower: vec![t.join("l2"), t.join("l1")],
        data: Vec::new(),
        upper: Some(t.join("upper")),
        work: Some(t.join("work")),
        options: options.to_vec(),
    };
    let merged = t.join("merged");
    let new_mount_api = match mount::mount_overlay_fsconfig(&ov, &merged) {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(
                "overlay: the new mount API with lowerdir+ failed ({e}); using mount(2)"
            );
            mount::mount_overlay_legacy(&ov.data(), t, &merged).map_err(|e| {
                Error::io(
                    format!("overlayfs cannot be mounted here (options {})", ov.data()),
                    e,
                )
            })?;
            false
        }
    };
    fs::write(merged.join("d/f"), b"").ctx(|| "writing through the probe mount".into())?;
    let renamed = fs::rename(merged.join("d1"), merged.join("d2")).is_ok();
    mount::unmount(&merged, true).ctx(|| "unmounting the overlay probe".into())?;

    let upd =
        strata_sys::fs::open_dir(&t.join("upper/d")).ctx(|| "reading the overlay probe".into())?;
    let opaque_copied = xattr::get(upd.as_fd(), false, x.opaque())
        .ctx(|| "reading the overlay probe".into())?
        .is_some();
    let redirected = renamed && {
        let d2 = strata_sys::fs::open_dir(&t.join("upper/d2"))
            .ctx(|| "reading the overlay probe".into())?;
        xattr::get(d2.as_fd(), false, x.redirect())
            .ctx(|| "reading the overlay probe".into())?
            .is_some()
    };
    if opaque_copied {
        tracing::warn!("overlay: this kernel copies opaque flags up; native diff off");
    }
    if redirected {
        tracing::warn!("overlay: directory renames leave redirects; native diff off");
    }
    Ok(Probed {
        new_mount_api,
        native_diff: !opaque_copied && !redirected,
    })
}

/// A fresh scratch directory under `home`.
fn tempfile_in(home: &Path, prefix: &str) -> Result<std::path::PathBuf> {
    let mut buf = [0u8; 8];
    strata_sys::fs::random_bytes(&mut buf).ctx(|| "reading random bytes".into())?;
    let name: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    let p = home.join(format!("{prefix}-{name}"));
    fs::create_dir(&p).ctx(|| format!("creating {}", p.display()))?;
    Ok(p)
}
