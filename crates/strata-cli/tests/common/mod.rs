//! Shared harness for the end-to-end tests through the built `strata`
//! binary: the root requirement, a store in a temp dir that cleans up its
//! mounts, and shell and sha256 helpers.
//!
//! Each test file does `mod common;` and keeps its own helpers in its own
//! `impl Strata` blocks; not every file uses everything here.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The requirement checks every test crate shares: a loud SKIPPED line
/// when one is not met here, a failure under CI.
#[allow(unused_imports)] // Not every test file uses every check.
pub use strata_test_support::{require_kernel_fs, require_root, skip};

/// A store on `driver` when running as root; `None` (SKIPPED, or a
/// failure under CI) otherwise.
pub fn as_root(driver: &'static str) -> Option<Strata> {
    require_root().then(|| Strata::new(driver))
}

/// A store in a temp dir, driven through the binary; cleans up mounts.
pub struct Strata {
    pub dir: tempfile::TempDir,
    pub driver: &'static str,
}

impl Strata {
    pub fn new(driver: &'static str) -> Self {
        Strata {
            dir: tempfile::tempdir().unwrap(),
            driver,
        }
    }

    /// `p` inside the test's temp dir.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The store's root (`--root`).
    pub fn root(&self) -> PathBuf {
        self.path("root")
    }

    /// The binary with `--root`, `--driver` and `args`, not yet run.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root")
            .arg(self.root())
            .args(["--driver", self.driver])
            .args(args);
        c
    }

    /// The binary with `--root`, `--driver` and `args` as one shell line
    /// (each argument single-quoted), for pipelines and terminals.
    pub fn command_line(&self, args: &[&str]) -> String {
        let mut line = format!(
            "'{}' --root '{}' --driver {}",
            env!("CARGO_BIN_EXE_strata"),
            self.root().display(),
            self.driver
        );
        for a in args {
            line.push_str(&format!(" '{a}'"));
        }
        line
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and returns trimmed stdout; panics with stdout and stderr on
    /// failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "strata {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// [`Strata::ok`] with the file at `input` as standard input.
    pub fn ok_with_input(&self, args: &[&str], input: &Path) -> String {
        let out = self
            .cmd(args)
            .stdin(std::fs::File::open(input).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "strata {args:?} < {}: {}",
            input.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Runs, asserts it succeeded, and returns stderr (its warnings).
    pub fn warnings(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "strata {args:?} failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs, asserts it failed, and returns stderr.
    pub fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "strata {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    /// Imports the tree at `dir` (tarred by GNU tar, numeric owners) as
    /// image `reference`; returns the image ID.
    pub fn import_tree(&self, dir: &Path, reference: &str) -> String {
        let tar = dir.with_extension("tar");
        sh(&format!(
            "tar --numeric-owner -C '{}' -cf '{}' .",
            dir.display(),
            tar.display()
        ));
        self.ok(&["import", tar.to_str().unwrap(), reference])
    }

    /// Runs and parses stdout as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// `layers --format json`: one object per layer.
    pub fn layers_json(&self) -> Vec<Value> {
        self.json(&["layers", "--format", "json"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// `images --format json`: one object per image.
    pub fn images(&self) -> Vec<Value> {
        match self.json(&["images", "--format", "json"]) {
            Value::Array(images) => images,
            other => panic!("images printed no list: {other}"),
        }
    }

    /// `volume ls` names.
    pub fn volume_names(&self) -> Vec<String> {
        let v = self.json(&["volume", "ls", "--format", "json"]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|v| v["Name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The findings of `check --format json ARGS` that are not notes, as
    /// (kind, object, repaired).
    pub fn findings(&self, args: &[&str]) -> Vec<(String, String, bool)> {
        let mut a = vec!["check", "--format", "json"];
        a.extend_from_slice(args);
        let out = self.run(&a);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        not_notes(&report)
            .into_iter()
            .map(|f| {
                (
                    f["Kind"].as_str().unwrap().to_owned(),
                    f["Object"].as_str().unwrap().to_owned(),
                    f["Repaired"].as_bool().unwrap(),
                )
            })
            .collect()
    }
}

impl Strata {
    /// A new directory `name` in the temp dir holding `files` (name,
    /// content).
    pub fn host_dir(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name);
        fs::create_dir(&dir).unwrap();
        for (file, content) in files {
            fs::write(dir.join(file), content).unwrap();
        }
        dir
    }

    /// `volume create` of a local volume `name` that binds the host
    /// directory `dir` (`-o type=none -o device=DIR -o o=bind`).
    pub fn bind_volume(&self, name: &str, dir: &Path) {
        let device = format!("device={}", dir.display());
        self.ok(&[
            "volume",
            "create",
            "-o",
            "type=none",
            "-o",
            &device,
            "-o",
            "o=bind",
            name,
        ]);
    }

    /// `check --format json`: its report (a panic naming `when` if it
    /// printed none), and whether check exited 0.
    pub fn check_report(&self, when: &str) -> (Value, bool) {
        let out = self.run(&["check", "--format", "json"]);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{when}: check printed no report ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (report, out.status.success())
    }
}

/// Each of `items`' string field `name` with its number field `number`.
pub fn name_and_number(items: &[Value], name: &str, number: &str) -> Vec<(String, u64)> {
    items
        .iter()
        .map(|v| {
            (
                v[name].as_str().unwrap().to_owned(),
                v[number].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Writes each (path under `base`, content) of `files`.
pub fn write_files(base: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        fs::write(base.join(path), content).unwrap();
    }
}

/// Asserts that a run of the binary exited 0, showing its stderr if not.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A command's trimmed stdout; panics with its stderr, after `what`,
/// when it failed.
pub fn succeeded(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A copy of the strata binary at `to`, for a user the build tree may be
/// closed to. Copied by `cp`, not in this process: a file this
/// multithreaded process held open for writing while another test
/// forked would stay open in the child until it execs, and running the
/// copy meanwhile fails with ETXTBSY ("Text file busy").
pub fn copy_of_strata(to: &Path) -> PathBuf {
    let out = Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_strata"))
        .arg(to)
        .output()
        .unwrap();
    assert_success(&out);
    to.to_path_buf()
}

#[allow(unused_imports)] // Not every test file makes mounts.
pub use strata_test_support::Unmount;

/// `strata --root ROOT info --format json`, letting the store choose its
/// driver.
pub fn info_choosing(root: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(root)
        .args(["info", "--format", "json"])
        .output()
        .unwrap();
    serde_json::from_str(&succeeded("info", out)).unwrap()
}

/// The findings of a `check --format json` report that `keep` keeps.
pub fn findings_where(report: &Value, keep: impl Fn(&Value) -> bool) -> Vec<&Value> {
    report["Findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| keep(f))
        .collect()
}

/// The findings of a `check --format json` report that are not notes.
pub fn not_notes(report: &Value) -> Vec<&Value> {
    findings_where(report, |f| f["Kind"] != "note")
}

impl Drop for Strata {
    /// Stops what a failed test left running (a background container's
    /// keeping process, its runtime and command outlive the test
    /// otherwise), then lazily unmounts everything under the root,
    /// deepest first.
    fn drop(&mut self) {
        if let Ok(dirs) = fs::read_dir(self.root().join("containers")) {
            for d in dirs.flatten() {
                let running = fs::read_to_string(d.path().join("state.json"))
                    .is_ok_and(|s| s.contains("\"running\""));
                if running {
                    let id = d.file_name().to_string_lossy().into_owned();
                    let _ = self.cmd(&["rm", "-f", &id]).output();
                }
            }
        }
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.root();
        let mut mine: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&root))
            .collect();
        mine.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mine {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// Runs `script` with `sh -ec`; returns trimmed stdout, panics with
/// stderr on failure.
pub fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-ec").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `sha256:<hex>` of `bytes`, computed by coreutils' sha256sum (not by
/// the code under test).
pub fn sha256_of(bytes: &[u8]) -> String {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    fs::write(tmp.path(), bytes).unwrap();
    let s = sh(&format!("sha256sum '{}'", tmp.path().display()));
    format!("sha256:{}", &s[..64])
}

/// The changes the diff tests make in a container of their base image
/// (`etc/os-release`, `etc/delete-me`), and the `diff` they give.
impl Strata {
    /// [`change_base`] in `container` (mounted at `root`): `diff` lists
    /// the changes, and `export` is the changed tree.
    pub fn change_and_export(&self, root: &Path, container: &str) {
        change_base(root);
        let diff = self.ok(&["diff", container]);
        assert_eq!(diff.lines().collect::<Vec<_>>(), BASE_CHANGES);
        let exported = self.path(&format!("{container}.tar"));
        self.ok(&["export", "-o", exported.to_str().unwrap(), container]);
        let listed = sh(&format!("tar -tf '{}' | sort", exported.display()));
        for want in ["srv/new", "etc/os-release", "var/data/big"] {
            assert!(listed.lines().any(|l| l == want), "{want} not in {listed}");
        }
        assert!(!listed.contains("delete-me"), "{listed}");
    }

    /// A container `name` of `image` (committed after [`change_base`])
    /// shows the change; left mounted, at the returned root.
    pub fn mount_changed(&self, image: &str, name: &str) -> PathBuf {
        self.ok(&["create", "--name", name, image]);
        let root = PathBuf::from(self.ok(&["mount", name]));
        assert_base_changed(&root);
        root
    }

    /// Saves `image` to `saved`, then removes the containers and images
    /// named: the store holds no layer after.
    pub fn save_then_remove(
        &self,
        image: &str,
        saved: &Path,
        containers: &[&str],
        images: &[&str],
    ) {
        self.ok(&["save", "-o", saved.to_str().unwrap(), image]);
        let mut rm = vec!["rm", "-f"];
        rm.extend(containers);
        self.ok(&rm);
        let mut rmi = vec!["rmi"];
        rmi.extend(images);
        self.ok(&rmi);
        assert_eq!(self.ok(&["layers", "--format", "json"]), "[]");
    }
}

/// A small base tree in the test's directory (`base`): `etc/os-release`,
/// `etc/delete-me`, `bin/tool` and a 4 MiB `var/data/big` of sevens, for
/// [`change_base`] to change.
pub fn base_tree(s: &Strata) -> PathBuf {
    let src = s.path("base");
    for d in ["etc", "bin", "var/data"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(src.join("etc/os-release"), "ID=strata-test\n").unwrap();
    fs::write(src.join("etc/delete-me"), "x").unwrap();
    fs::write(src.join("bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    fs::write(src.join("var/data/big"), vec![7u8; 4 << 20]).unwrap();
    src
}

pub fn change_base(root: &Path) {
    fs::write(root.join("etc/os-release"), "ID=changed\n").unwrap();
    fs::remove_file(root.join("etc/delete-me")).unwrap();
    fs::create_dir(root.join("srv")).unwrap();
    fs::write(root.join("srv/new"), "new").unwrap();
}

/// That `root` (a container of the base committed after
/// [`change_base`]) has the changes.
pub fn assert_base_changed(root: &Path) {
    assert_eq!(
        fs::read_to_string(root.join("etc/os-release")).unwrap(),
        "ID=changed\n"
    );
    assert!(!root.join("etc/delete-me").exists());
    assert_eq!(fs::read_to_string(root.join("srv/new")).unwrap(), "new");
}

/// What `diff` says after [`change_base`].
pub const BASE_CHANGES: [&str; 5] = [
    "C /etc",
    "D /etc/delete-me",
    "C /etc/os-release",
    "A /srv",
    "A /srv/new",
];

/// The names in a directory, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Unpacks a tar with GNU tar into a new directory `<tar>.d`.
pub fn untar(tar: &Path) -> PathBuf {
    let dir = tar.with_extension("d");
    fs::create_dir(&dir).unwrap();
    sh(&format!(
        "tar -C '{}' -xf '{}'",
        dir.display(),
        tar.display()
    ));
    dir
}

/// `image` saved as `format` (with `opts`) to `out`: the layout to read
/// from it, `out` itself for `oci-dir`, else the archive unpacked beside
/// it ([`untar`]).
pub fn save_unpacked(s: &Strata, image: &str, format: &str, opts: &[&str], out: &Path) -> PathBuf {
    let out_arg = out.to_str().unwrap();
    let args = [&["save", "--format", format], opts, &["-o", out_arg, image]].concat();
    s.ok(&args);
    if format == "oci-dir" {
        out.to_path_buf()
    } else {
        untar(out)
    }
}
