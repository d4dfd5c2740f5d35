//! A real file system made in a file for one test: a sparse image,
//! `mkfs`, `mount -o loop`; unmounted and its loop device detached when
//! dropped, also while a failed test unwinds.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::require;

/// A file system of its own, loop-mounted at [`LoopFs::path`].
pub struct LoopFs {
    mnt: PathBuf,
    /// The loop device the mount took, detached on drop if the kernel's
    /// autoclear has not done it.
    device: Option<String>,
    // Declared last: removed after the unmount.
    tmp: tempfile::TempDir,
}

impl LoopFs {
    /// A fresh 1 GiB btrfs (sparse: it takes what is written). `None`,
    /// saying SKIPPED (or failing under CI), when the kernel has no
    /// btrfs, `mkfs.btrfs` (btrfs-progs) is missing or loop devices
    /// cannot be had.
    pub fn btrfs() -> Option<LoopFs> {
        LoopFs::btrfs_of(1 << 30)
    }

    /// [`LoopFs::btrfs`] of `size` bytes.
    pub fn btrfs_of(size: u64) -> Option<LoopFs> {
        let has_btrfs = std::fs::read_to_string("/proc/filesystems")
            .map(|s| {
                s.lines()
                    .any(|l| l.split_whitespace().last() == Some("btrfs"))
            })
            .unwrap_or(false);
        if !require("btrfs in the kernel (/proc/filesystems)", has_btrfs) {
            return None;
        }
        LoopFs::make("btrfs", &["mkfs.btrfs", "-q", "-f"], size)
    }

    /// A fresh 512 MiB ext4, 4 KiB blocks. `None`, saying SKIPPED (or
    /// failing under CI), when `mkfs.ext4` (e2fsprogs) is missing or loop
    /// devices cannot be had.
    pub fn ext4() -> Option<LoopFs> {
        LoopFs::make("ext4", &["mkfs.ext4", "-q", "-F", "-b", "4096"], 512 << 20)
    }

    /// A fresh 512 MiB ext4 with the `verity` feature (fs-verity), 4 KiB
    /// blocks. `None`, saying SKIPPED (or failing under CI), when
    /// `mkfs.ext4` (e2fsprogs) is missing or loop devices cannot be had.
    pub fn ext4_verity() -> Option<LoopFs> {
        LoopFs::make(
            "ext4",
            &["mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "verity"],
            512 << 20,
        )
    }

    /// The file the file system lives in (changed behind the file
    /// system's back by tests of damaged blocks).
    pub fn image(&self) -> PathBuf {
        let fstype = std::fs::read_dir(self.tmp.path())
            .expect("listing the loop file system's directory")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "img"))
            .expect("the image is there");
        fstype
    }

    /// An image of `size` bytes made by `mkfs` (the command and its
    /// arguments, the image's path appended), loop-mounted as `fstype`.
    fn make(fstype: &str, mkfs: &[&str], size: u64) -> Option<LoopFs> {
        let tmp = tempfile::Builder::new()
            .prefix("strata-loopfs-")
            .tempdir()
            .expect("creating a temporary directory");
        let image = tmp.path().join(format!("{fstype}.img"));
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).expect("creating the mount point");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(size))
            .expect("making the sparse image");
        let made = Command::new(mkfs[0]).args(&mkfs[1..]).arg(&image).output();
        match made {
            Err(e) => {
                require(&format!("{} to run ({e})", mkfs[0]), false);
                return None;
            }
            Ok(out) if !out.status.success() => panic!(
                "{} {}: {}",
                mkfs[0],
                image.display(),
                String::from_utf8_lossy(&out.stderr)
            ),
            Ok(_) => {}
        }
        let out = Command::new("mount")
            .args(["-t", fstype, "-o", "loop"])
            .arg(&image)
            .arg(&mnt)
            .output();
        let ok = match &out {
            Ok(out) if out.status.success() => true,
            Ok(out) => {
                let why = String::from_utf8_lossy(&out.stderr);
                require(&format!("a loop-mounted {fstype} ({})", why.trim()), false)
            }
            Err(e) => require(&format!("mount(8) to run ({e})"), false),
        };
        if !ok {
            return None;
        }
        let device = source_of(&mnt);
        Some(LoopFs { mnt, device, tmp })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mnt
    }
}

impl AsRef<Path> for LoopFs {
    fn as_ref(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Anything a failed test left mounted inside goes first.
        let mut inner = super::mounts_under(&self.mnt);
        inner.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for m in inner {
            if let Err(e) = strata_sys::mount::unmount(&m, true) {
                eprintln!("loopfs: unmounting {}: {e}", m.display());
            }
        }
        let Some(dev) = &self.device else { return };
        // `mount -o loop` sets autoclear: the device is freed with the
        // last unmount. Detach it ourselves if it is still bound to our
        // image (a lazy unmount still in progress keeps it).
        let name = dev.trim_start_matches("/dev/");
        let backing = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"));
        if backing.is_ok_and(|b| Path::new(b.trim()).starts_with(self.tmp.path())) {
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
    }
}

/// The mount source of the mount at `mnt` (the loop device).
fn source_of(mnt: &Path) -> Option<String> {
    let mnt = std::fs::canonicalize(mnt).ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        (Path::new(fields.get(4)?) == mnt).then(|| fields.get(sep + 2).map(|s| s.to_string()))?
    })
}
