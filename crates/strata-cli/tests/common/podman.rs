//! A podman of a test's own: its store, run root and temporary files in
//! a temp dir, so it never touches the machine's own store. Used through
//! `#[path = "common/podman.rs"] mod podman;` beside `dockerd` and
//! `fixtures`.
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::Value;

use crate::common::succeeded;
use crate::dockerd::unmount_under;
use crate::fixtures::{strings, Declared};

/// A podman whose store, run root and temporary files are in a temp dir:
/// it never touches the machine's own store.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        // The run root holds sockets and locks: keep its path short.
        let dir = tempfile::Builder::new()
            .prefix("pm")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        Podman { dir }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.env("TMPDIR", d.join("tmp"));
        for (flag, sub) in [
            ("--root", "root"),
            ("--runroot", "run"),
            ("--tmpdir", "libpod"),
        ] {
            cmd.arg(flag).arg(d.join(sub));
        }
        cmd.args(["--storage-driver", "vfs", "--events-backend", "file"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(&format!("podman {args:?}"), self.run(args))
    }

    /// `podman image inspect`: the image ID and its diffIDs.
    pub fn declared(&self, image: &str) -> Declared {
        let v: Value = serde_json::from_str(&self.ok(&["image", "inspect", image])).unwrap();
        let id = v[0]["Id"].as_str().unwrap();
        Declared {
            id: format!("sha256:{}", id.trim_start_matches("sha256:")),
            diff_ids: strings(&v[0]["RootFS"]["Layers"]),
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        unmount_under(self.dir.path());
    }
}
