//! Applies arbitrary bytes as a layer and checks confinement: whatever the
//! layer says, nothing outside the target directory is created, changed or
//! linked to. Errors are expected and ignored; a panic or a changed
//! sentinel is a finding.
//!
//! Layout of each run, in a fresh temporary directory:
//!
//! ```text
//! tmp/
//!   sentinel/victim      a file the layer must not write through or link
//!   a/
//!     sentinel/victim
//!     root/              the apply target
//! ```
#![no_main]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_archive::{apply, ApplyOptions, OverlayXattrs, Target};

const VICTIM: &[u8] = b"outside the root\n";

/// Names in `/` before any run: an absolute-path escape would add one.
fn slash() -> &'static Vec<String> {
    static SLASH: OnceLock<Vec<String>> = OnceLock::new();
    SLASH.get_or_init(|| list(Path::new("/")))
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("listing a directory")
        .map(|e| {
            e.expect("reading a directory")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn plant(dir: &Path) {
    fs::create_dir(dir.join("sentinel")).unwrap();
    fs::write(dir.join("sentinel/victim"), VICTIM).unwrap();
}

fn check(dir: &Path, expected: &[&str]) {
    assert_eq!(list(dir), expected, "entries of {}", dir.display());
    assert_eq!(
        list(&dir.join("sentinel")),
        ["victim"],
        "sentinel of {}",
        dir.display()
    );
    let victim = dir.join("sentinel/victim");
    let md = fs::symlink_metadata(&victim).unwrap();
    assert!(md.file_type().is_file(), "victim replaced");
    assert_eq!(md.nlink(), 1, "victim hard-linked from inside the root");
    assert_eq!(md.mode() & 0o7777, 0o644, "victim mode changed");
    assert_eq!(fs::read(&victim).unwrap(), VICTIM, "victim written through");
}

fn run(data: &[u8], target: Target) {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    let base = base.as_path();
    let a = base.join("a");
    let root = a.join("root");
    fs::create_dir(&a).unwrap();
    fs::create_dir(&root).unwrap();
    plant(base);
    plant(&a);
    // Ownership preserved when fuzzing as root (more code paths), device
    // nodes created.
    let opts = ApplyOptions {
        target,
        ..ApplyOptions::default()
    };
    let _ = apply(data, &root, &opts);
    check(base, &["a", "sentinel"]);
    check(&a, &["root", "sentinel"]);
    assert_eq!(&list(Path::new("/")), slash(), "entries of /");
    if tmp.close().is_err() {
        // Unprivileged runs: directories the layer made read-only cannot
        // be emptied until they are writable again.
        unlock(&root);
        let _ = fs::remove_dir_all(base);
    }
}

fn unlock(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                unlock(&e.path());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    slash();
    run(data, Target::Plain);
    run(data, Target::Overlay(OverlayXattrs::Trusted));
});
