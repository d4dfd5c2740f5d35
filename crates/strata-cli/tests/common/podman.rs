//! A podman of a test's own: its store, run root and temporary files in
//! a temp dir, so it never touches the machine's own store. Used through
//! `#[path = "common/podman.rs"] mod podman;` beside `dockerd` and
//! `fixtures`.
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::Value;

use crate::dockerd::unmount_under;
use crate::fixtures::Declared;

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
        Command::new("podman")
            .env("TMPDIR", d.join("tmp"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("libpod"))
            .args(["--storage-driver", "vfs", "--events-backend", "file"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `podman image inspect`: the image ID and its diffIDs.
    pub fn declared(&self, image: &str) -> Declared {
        let v: Value = serde_json::from_str(&self.ok(&["image", "inspect", image])).unwrap();
        let id = v[0]["Id"].as_str().unwrap();
        Declared {
            id: format!("sha256:{}", id.trim_start_matches("sha256:")),
            diff_ids: v[0]["RootFS"]["Layers"]
                .as_array()
                .unwrap_or_else(|| panic!("no RootFS.Layers: {v}"))
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect(),
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        unmount_under(self.dir.path());
    }
}
