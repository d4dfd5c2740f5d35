//! A `dockerd` of the test's own, for the interop tests with Docker
//! (`strata load`/`save` and `strata push`/`pull`): its data, exec root
//! and socket in a temp dir, no networking; SKIPPED loudly when it cannot
//! start here. A test file uses it with `mod common;` followed by
//! `#[path = "common/dockerd.rs"] mod dockerd;` (and the fixtures module).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::succeeded;
use crate::fixtures::{on_path, strings, Declared};

/// A `dockerd` of our own: its data, exec root and socket in temp dirs,
/// no networking; stopped (and its mounts undone) on drop.
pub struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Dockerd {
    /// Starts one, or says SKIPPED and why when it cannot run here.
    pub fn start(test: &str) -> Option<Dockerd> {
        Dockerd::start_with(test, &[])
    }

    /// [`Dockerd::start`] with more daemon arguments (such as
    /// `--insecure-registry`).
    pub fn start_with(test: &str, extra: &[&str]) -> Option<Dockerd> {
        if !on_path("dockerd") || !on_path("docker") {
            // Not a failure under CI either: whether dockerd can run
            // depends on the machine, not only on packages.
            eprintln!("SKIPPED: {test}: dockerd or docker not installed (Debian's docker.io)");
            return None;
        }
        // The exec root holds containerd's socket: keep its path short.
        let dir = tempfile::Builder::new()
            .prefix("dk")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        fs::write(d.join("daemon.json"), "{}").unwrap();
        let log = d.join("dockerd.log");
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("x"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--ip-forward=false", "--ip-masq=false", "--log-level=warn"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut dockerd = Dockerd { child, dir, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if dockerd.docker(&["version"]).status.success() {
                return Some(dockerd);
            }
            let exited = dockerd.child.try_wait().unwrap().is_some();
            if exited || Instant::now() > deadline {
                let log = fs::read_to_string(&dockerd.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!(
                    "SKIPPED: {test}: dockerd did not start here ({}):\n{}",
                    if exited { "it exited" } else { "timed out" },
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .arg("-H")
            .arg(format!("unix://{}", self.dir.path().join("sock").display()))
            .args(args)
            .output()
            .unwrap()
    }

    /// The docker command line for this daemon, as shell words, for
    /// pipelines and terminals (`sh -c`, `script -c`).
    pub fn command_line(&self) -> String {
        format!(
            "env DOCKER_CONFIG='{}' docker -H 'unix://{}'",
            self.dir.path().join("client").display(),
            self.dir.path().join("sock").display()
        )
    }

    /// Runs docker; returns trimmed stdout, panics with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(&format!("docker {args:?}"), self.docker(args))
    }

    /// `docker build -t tag dir` with the classic builder (BuildKit needs
    /// the buildx plugin and, for `FROM` an image, a registry); returns
    /// the image ID.
    pub fn build(&self, tag: &str, dir: &Path) -> String {
        let out = Command::new("docker")
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .env("DOCKER_BUILDKIT", "0")
            .arg("-H")
            .arg(format!("unix://{}", self.dir.path().join("sock").display()))
            .args(["build", "-q", "-t", tag])
            .arg(dir)
            .output()
            .unwrap();
        succeeded(&format!("docker build {tag}"), out)
    }

    /// The daemon's `--data-root`: what `/var/lib/docker` is to a
    /// host's dockerd. Copy it only after [`Dockerd::stop`].
    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 30 s) and undoes its
    /// mounts, leaving its data root in place until drop.
    pub fn stop(&mut self) {
        // Not signalled once reaped: its pid may be another process's.
        if self.child.try_wait().ok().flatten().is_none() {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        unmount_under(self.dir.path());
    }

    /// `docker image inspect`: the image ID and its diffIDs.
    pub fn declared(&self, image: &str) -> Declared {
        let v: Value = serde_json::from_str(&self.ok(&["image", "inspect", image])).unwrap();
        Declared {
            id: v[0]["Id"].as_str().unwrap().to_owned(),
            diff_ids: strings(&v[0]["RootFS"]["Layers"]),
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lazily unmounts everything under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mine: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    mine.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mine {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
}
