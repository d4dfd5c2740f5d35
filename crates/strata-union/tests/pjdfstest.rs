//! An independent POSIX suite against a mounted union: pjdfstest (the
//! Rust rewrite of the FreeBSD file-system test suite: about 400 cases of
//! chmod, chown, link, mkdir, mkfifo, mknod, open, rename, rmdir, symlink,
//! truncate, unlink and utimensat, including the ones that switch to other
//! users), in both whiteout formats. scripts/test.sh installs it with
//! `cargo install` and names the binary in `STRATA_TEST_PJDFSTEST`; it
//! needs the users `nobody` and `tests` (test.sh adds `tests`).
//!
//! Every case passes in aufs format. In overlay format a character device
//! 0/0 is a whiteout, so creating one is `EPERM` (as kernel overlayfs
//! answers); pjdfstest makes its character devices 0/0, so the cases on
//! them fail there, and only those may.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{skip, Fmt, Layout, Union};

/// The suite's settings: the features Linux has, a nap longer than the
/// kernel's timestamp granularity, no remounts, the two users.
const CONFIG: &str = r#"
[features]
posix_fallocate = {}
rename_ctime = {}
utime_now = {}
utimensat = {}

[settings]
naptime = 0.01
allow_remount = false

[dummy_auth]
entries = [["nobody", "nogroup"], ["tests", "tests"]]
"#;

/// The pjdfstest binary, or None (said loudly) when it or its users are
/// missing.
fn suite(test: &str) -> Option<PathBuf> {
    let bin = std::env::var_os("STRATA_TEST_PJDFSTEST")
        .map(PathBuf::from)
        .or_else(|| strata_sys::process::on_path("pjdfstest"));
    let Some(bin) = bin.filter(|b| b.is_file()) else {
        skip(
            test,
            "pjdfstest not found (scripts/test.sh installs it; or set STRATA_TEST_PJDFSTEST)",
        );
        return None;
    };
    for (db, name) in [
        ("passwd", "nobody"),
        ("group", "nogroup"),
        ("passwd", "tests"),
        ("group", "tests"),
    ] {
        let known = Command::new("getent")
            .args([db, name])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !known {
            skip(
                test,
                &format!("no {db} entry {name} (scripts/test.sh adds it)"),
            );
            return None;
        }
    }
    Some(bin)
}

/// One case of the suite: its name, status (ok, FAILED, skipped) and the
/// lines it printed below (a failure's message, without the backtrace).
struct Case {
    name: String,
    status: String,
    detail: String,
}

/// Runs the whole suite in a fresh union of format `fmt` (an empty lower
/// branch under a writable one, allow_other so the suite's other users
/// reach it); returns its failed cases.
fn failures(test: &str, fmt: Fmt) -> Option<Vec<Case>> {
    let bin = suite(test)?;
    let u = Union::build(test, Layout::two(fmt), |_| {})?;
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), CONFIG).unwrap();
    let out = Command::new(&bin)
        .arg("-c")
        .arg(cfg.path())
        .arg("-p")
        .arg(&u.mnt)
        .current_dir(&u.mnt)
        // Plain status words, whatever the terminal settings.
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("running pjdfstest");
    drop(u);
    let output =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // One line per case: its name, spaces, then its status; details
    // follow on lines that start with a tab, the backtrace's numbered.
    let mut cases: Vec<Case> = Vec::new();
    for line in output.lines() {
        if !line.starts_with(char::is_whitespace) {
            let mut words = line.split_whitespace();
            if let (Some(name), Some(status)) = (words.next(), words.last()) {
                cases.push(Case {
                    name: name.to_owned(),
                    status: status.to_owned(),
                    detail: String::new(),
                });
            }
        } else if let Some(c) = cases.last_mut() {
            let l = line.trim();
            if !l.starts_with(|c: char| c.is_ascii_digit()) && !l.starts_with("at ") {
                c.detail = c.detail.clone() + l + "\n";
            }
        }
    }
    let passed = cases.iter().filter(|c| c.status == "ok").count();
    let failed: Vec<Case> = cases.into_iter().filter(|c| c.status == "FAILED").collect();
    eprintln!(
        "pjdfstest on {}: {passed} passed, {} failed",
        match fmt {
            Fmt::Aufs => "aufs branches",
            Fmt::Overlay => "overlay options",
        },
        failed.len()
    );
    let lines: Vec<&str> = output.lines().collect();
    assert!(
        passed >= 300,
        "pjdfstest ran too few cases ({passed} passed):\n{}",
        lines[lines.len().saturating_sub(40)..].join("\n")
    );
    Some(failed)
}

fn show(cases: &[&Case]) -> String {
    cases
        .iter()
        .map(|c| format!("{}\n{}", c.name, c.detail))
        .collect()
}

#[test]
fn pjdfstest_passes_on_aufs_branches() {
    let Some(failed) = failures("pjdfstest_passes_on_aufs_branches", Fmt::Aufs) else {
        return;
    };
    let failed: Vec<&Case> = failed.iter().collect();
    assert!(
        failed.is_empty(),
        "pjdfstest failures on aufs branches:\n{}",
        show(&failed)
    );
}

#[test]
fn pjdfstest_passes_on_overlay_options_but_for_whiteout_devices() {
    let test = "pjdfstest_passes_on_overlay_options_but_for_whiteout_devices";
    let Some(failed) = failures(test, Fmt::Overlay) else {
        return;
    };
    // Only the cases on character devices, and only because making one
    // (0/0, a whiteout in this format) is EPERM: every such case makes its
    // device first, so none of them can run here (the aufs run covers
    // them all).
    let unexpected: Vec<&Case> = failed
        .iter()
        .filter(|c| !c.name.ends_with("::char") || !c.detail.contains("EPERM"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "pjdfstest failures on overlay options other than 0/0 devices:\n{}",
        show(&unexpected)
    );
}
