//! Running containers from the tests: the images (busybox from
//! busybox-static, imported or made with umoci; Debian minbase from the
//! tarball `scripts/test.sh` builds), `strata` processes with a time
//! limit or in the background, and what the host sees of them: mounts,
//! processes, namespaces.
//!
//! A test file uses it with `mod common;`, `#[path = "common/fixtures.rs"]
//! mod fixtures;` and `#[path = "common/containers.rs"] mod containers;`.
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{require_root, sh, skip, Strata};
use crate::fixtures::{have_tools, on_path};

/// The busybox applets the images link to.
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "ls", "id", "hostname", "sleep", "touch", "rm", "mkdir", "grep", "sed",
    "env", "pwd", "true", "false", "mount", "test", "[", "wc", "kill", "readlink", "head", "ip",
    "tty", "mknod", "mkfifo", "mv", "cp",
];

/// How long any one `strata` command may take before the test gives up.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// True when crun or runc is installed; otherwise SKIPPED (a failure
/// under CI, where `scripts/test.sh` installs both).
pub fn have_runtime(test: &str) -> bool {
    on_path("crun") || on_path("runc") || skip(test, "neither crun nor runc is installed")
}

/// A store with `busybox:test` imported, when root, a runtime and
/// busybox are here.
pub fn setup(test: &str) -> Option<Strata> {
    if !require_root() || !have_runtime(test) || !have_tools(test, &["busybox"]) {
        return None;
    }
    let s = Strata::new("overlay2");
    s.busybox();
    Some(s)
}

/// `cmd` started with `stdin`, its stdout and stderr piped.
pub fn start_piped(mut cmd: Command, stdin: Stdio) -> Child {
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// [`setup`], for a test that also needs `tools` (SKIPPED without them).
pub fn setup_with_tools(test: &str, tools: &[&str]) -> Option<Strata> {
    let s = setup(test)?;
    have_tools(test, tools).then_some(s)
}

/// The Debian minbase tarball `scripts/test.sh` builds, or SKIPPED (a
/// failure under CI) when it did not run.
pub fn debian_tar(test: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_TEST_DEBIAN_TAR") {
        return Some(PathBuf::from(p));
    }
    skip(
        test,
        "STRATA_TEST_DEBIAN_TAR not set (scripts/test.sh builds it)",
    );
    None
}

/// A finished `strata` process.
#[derive(Debug)]
pub struct Done {
    /// The exit status; -N when strata itself was killed by signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Done {
    /// Asserts the exit status, showing the output when it differs.
    pub fn expect(&self, code: i32, what: &str) -> &Self {
        assert_eq!(self.code, code, "{what}: {self:#?}");
        self
    }

    pub fn out(&self) -> &str {
        self.stdout.trim()
    }
}

/// A `strata` process in the background; killed if the test leaves it
/// running (a failed assertion).
pub struct Bg {
    child: Option<Child>,
    what: String,
}

impl Bg {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not yet waited for").id()
    }

    /// Sends `signal` (a name `kill` knows) to the strata process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let ok = Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -s {signal} {pid}");
    }

    /// Waits (at most `PATIENCE`) for the process to end.
    pub fn wait(&mut self) -> Done {
        let child = self.child.take().expect("waited for twice");
        finish(child, &self.what)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-s", "TERM", &c.id().to_string()])
                .status();
            thread::sleep(Duration::from_millis(500));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Collects a spawned child's output; kills it and fails when it takes
/// longer than `PATIENCE`.
pub fn finish(mut child: Child, what: &str) -> Done {
    let reader = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let mut b = Vec::new();
                let _ = r.read_to_end(&mut b);
                s = String::from_utf8_lossy(&b).into_owned();
            }
            s
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {PATIENCE:?}; killed");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Done {
        code: status
            .code()
            .unwrap_or_else(|| -status.signal().unwrap_or(0)),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Polls `cond` every 50 ms for up to `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// One line of `/proc/self/mountinfo`: the mount point and the type.
#[derive(Debug, Clone, PartialEq)]
pub struct MountLine {
    pub point: String,
    pub fstype: String,
}

/// The host's mounts, as this (test) process sees them.
pub fn host_mounts() -> Vec<MountLine> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let point = l.split(' ').nth(4)?.replace("\\040", " ");
            let fstype = l.split(" - ").nth(1)?.split(' ').next()?.to_owned();
            Some(MountLine { point, fstype })
        })
        .collect()
}

/// The host's mounts at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<MountLine> {
    host_mounts()
        .into_iter()
        .filter(|m| Path::new(&m.point).starts_with(dir))
        .collect()
}

/// Processes on the host whose environment holds `marker` (set with
/// `-e` on the container's command).
pub fn pids_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// `/proc/self/ns/<ns>` of this (test) process.
pub fn host_ns(ns: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

impl Strata {
    /// Imports `busybox:test`: busybox-static with applet links, root and
    /// `app` (1000:1000, also in `extra`, 2000), an os-release; no Cmd and
    /// no Env. Leaves the tree at `path("busybox")` for
    /// `configured_images`.
    pub fn busybox(&self) {
        let r = self.path("busybox");
        for d in ["bin", "etc", "root", "tmp", "usr/bin"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        fs::set_permissions(r.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        let bin = sh("command -v busybox");
        fs::copy(&bin, r.join("bin/busybox")).unwrap();
        for a in APPLETS {
            symlink("busybox", r.join("bin").join(a)).unwrap();
        }
        fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            r.join("etc/group"),
            "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
        )
        .unwrap();
        fs::write(
            r.join("etc/os-release"),
            "ID=strata-busybox\nPRETTY_NAME=\"strata's busybox\"\n",
        )
        .unwrap();
        self.import_tree(&r, "busybox:test");
    }

    /// Loads, made with umoci from the same tree (and `/srv`):
    /// `busybox:cmd` with Cmd `sh -c 'echo default $GREETING'` and Env
    /// `GREETING=from-image`, `PATH=/bin:/usr/bin`; `busybox:ep` with
    /// Entrypoint `echo ep` and Cmd `default`; `busybox:wd` with
    /// WorkingDir `/srv`, User `app` and Cmd `sh -c 'pwd; id -u'`.
    pub fn configured_images(&self, test: &str) -> bool {
        self.umoci_images(
            test,
            "L",
            r#"mkdir B/rootfs/srv
umoci repack --image L:base B
umoci config --image L:base --tag busybox:cmd --config.cmd sh --config.cmd -c \
    --config.cmd 'echo default $GREETING' \
    --config.env GREETING=from-image --config.env PATH=/bin:/usr/bin
umoci config --image L:base --tag busybox:ep \
    --config.entrypoint echo --config.entrypoint ep --config.cmd default
umoci config --image L:base --tag busybox:wd --config.workingdir /srv --config.user app \
    --config.cmd sh --config.cmd -c --config.cmd 'pwd; id -u'
"#,
        )
    }

    /// Loads the images `script` tags in the OCI layout `layout`: umoci
    /// runs it with `busybox:test`'s tree unpacked from `{layout}:base`
    /// into `B/rootfs`, to change and repack. False (SKIPPED) without umoci.
    pub fn umoci_images(&self, test: &str, layout: &str, script: &str) -> bool {
        if !have_tools(test, &["umoci"]) {
            return false;
        }
        sh(&format!(
            r#"cd '{}'
umoci init --layout {layout}
umoci new --image {layout}:base
umoci unpack --image {layout}:base B
cp -a busybox/. B/rootfs/
{script}
umoci remove --image {layout}:base
umoci gc --layout {layout}
rm -rf B"#,
            self.dir.path().display()
        ));
        self.ok(&["load", "-i", self.path(layout).to_str().unwrap()]);
        true
    }

    /// Imports the Debian tarball as `debian`.
    pub fn debian(&self, tar: &Path) {
        self.ok(&["import", tar.to_str().unwrap(), "debian"]);
    }

    /// Runs `strata args` with stdin from /dev/null, waiting at most
    /// `PATIENCE`.
    pub fn exec(&self, args: &[&str]) -> Done {
        self.exec_with(self.cmd(args), args)
    }

    /// Runs a prepared command (`cmd`, for changing its environment).
    pub fn exec_with(&self, cmd: Command, args: &[&str]) -> Done {
        finish(start_piped(cmd, Stdio::null()), &format!("strata {args:?}"))
    }

    /// `strata run --rm IMAGE CMD...` that must succeed; its trimmed stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        self.exec(&all).expect(0, "run").out().to_owned()
    }

    /// Starts `strata args` in the background, stdin from /dev/null.
    pub fn spawn(&self, args: &[&str]) -> Bg {
        let child = start_piped(self.cmd(args), Stdio::null());
        Bg {
            child: Some(child),
            what: format!("strata {args:?}"),
        }
    }

    /// `ps --format json`, with -a or without.
    pub fn ps(&self, all: bool) -> Vec<Value> {
        let args: &[&str] = if all {
            &["ps", "-a", "--format", "json"]
        } else {
            &["ps", "--format", "json"]
        };
        self.json(args).as_array().unwrap().clone()
    }

    /// The names `ps` lists (`Name` is Docker's `/NAME`).
    pub fn names(&self, all: bool) -> Vec<String> {
        let mut n: Vec<String> = self
            .ps(all)
            .iter()
            .map(|c| {
                c["Name"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('/')
                    .to_owned()
            })
            .collect();
        n.sort();
        n
    }

    pub fn inspect(&self, name: &str) -> Value {
        self.json(&["inspect", name])[0].clone()
    }

    /// Creates the named volume; returns its directory on the host.
    pub fn volume(&self, name: &str) -> PathBuf {
        self.ok(&["volume", "create", name]);
        let v = self.json(&["volume", "inspect", name]);
        PathBuf::from(v[0]["Mountpoint"].as_str().unwrap())
    }

    /// Asserts no container is left, nothing is mounted under the store
    /// and no mount names `id` (the runtime's bundle or state, wherever
    /// strata keeps them).
    pub fn assert_clean(&self, what: &str, id: Option<&str>) {
        assert_eq!(
            self.ps(true),
            Vec::<Value>::new(),
            "{what}: containers left"
        );
        self.assert_unmounted(what, id);
    }

    /// Asserts nothing is mounted under the store and no mount names `id`.
    pub fn assert_unmounted(&self, what: &str, id: Option<&str>) {
        let left = mounts_under(&self.root());
        assert!(left.is_empty(), "{what}: mounts left: {left:#?}");
        if let Some(id) = id {
            let named: Vec<MountLine> = host_mounts()
                .into_iter()
                .filter(|m| m.point.contains(id))
                .collect();
            assert!(named.is_empty(), "{what}: mounts left: {named:#?}");
        }
    }
}

/// Runs `f` with the host's `path` and restores the file if the test
/// changed it (which the test then reports).
pub fn guard_host_file<T>(path: &str, f: impl FnOnce() -> T) -> T {
    let before = fs::read(path).ok();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let after = fs::read(path).ok();
    if after != before {
        if let Some(b) = &before {
            fs::write(path, b).unwrap();
        }
        panic!("the container changed the host's {path}");
    }
    r.unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Runs `strata` on a new terminal (util-linux `script`); returns what
/// the terminal showed, carriage returns dropped, and the `^@` that crun
/// and runc both put on a terminal they are given (seen with the
/// runtimes alone).
pub fn on_terminal(s: &Strata, args: &[&str]) -> String {
    let line = s.command_line(args);
    let child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let d = finish(child, &line);
    d.stdout.replace('\r', "").replace("^@", "")
}

/// A port free on the host's 127.0.0.1 now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects to the host's 127.0.0.1:`port` until the server behind it
/// answers (until it listens, the helper takes a connection and closes
/// it empty); returns what it said.
pub fn read_from(test: &str, port: u16) -> String {
    let mut got = String::new();
    wait_until(30, &format!("{test}: the server inside"), || {
        got.clear();
        if let Ok(c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(c), &mut got);
        }
        !got.is_empty()
    });
    got
}
