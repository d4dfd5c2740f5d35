//! The OCI runtime: found on `PATH` (`crun` first, then `runc`) or named
//! with `--runtime`, and run in the foreground as `RUNTIME --root STATE run
//! --bundle DIR --pid-file DIR/pid ID`. Both runtimes, in the foreground, forward the signals
//! they get to the container's process and exit with its status (128 + N
//! when signal N killed it); strata forwards the signals it gets to the
//! runtime (see [`Forwarder`]).

use std::io::{IsTerminal, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::{Handle, Signals};
use strata_store::{Error, ErrorKind, Result};
use strata_sys::process::{is_executable, on_path};

/// Looked for on `PATH`, in this order.
pub const RUNTIMES: &[&str] = &["crun", "runc"];

/// The signals strata passes on to the container.
const FORWARDED: &[i32] = &[SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2];

/// An OCI runtime binary.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub path: PathBuf,
}

impl Runtime {
    /// `choice` is a name looked up on `PATH` or a path; `None` takes the
    /// first of [`RUNTIMES`] on `PATH`.
    pub fn find(choice: Option<&str>) -> Result<Runtime> {
        match choice {
            Some(c) if c.contains('/') => {
                let p = PathBuf::from(c);
                if is_executable(&p) {
                    Ok(Runtime { path: p })
                } else {
                    Err(Error::new(
                        ErrorKind::NotFound,
                        format!("OCI runtime {c}: no such executable"),
                    ))
                }
            }
            Some(c) => on_path(c).map(|p| Runtime { path: p }).ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("OCI runtime {c:?} is not on PATH (Debian packages: crun, runc)"),
                )
            }),
            None => RUNTIMES
                .iter()
                .filter(|r| match (**r, crun_unusable()) {
                    ("crun", Some(why)) => {
                        tracing::info!("not choosing crun: {why}");
                        false
                    }
                    _ => true,
                })
                .find_map(|r| on_path(r))
                .map(|p| Runtime { path: p })
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        "no OCI runtime found: install crun or runc (apt-get install crun, or runc), \
                         or name one with --runtime",
                    )
                }),
        }
    }

    fn command(&self, state_root: &Path) -> Command {
        let mut c = Command::new(&self.path);
        c.arg("--root").arg(state_root);
        c
    }

    /// Runs container `id` from `bundle` in the foreground and returns its
    /// exit status, with `io` for its standard streams.
    ///
    /// crun and runc exit 1 both when the command does and when they fail
    /// to make the container; the pid file they write once the container's
    /// process exists tells the two apart. A runtime that exits with an
    /// error before writing it failed: that is an error (status 125, as
    /// with `docker run`), not the command's status.
    pub fn run(
        &self,
        state_root: &Path,
        bundle: &Path,
        id: &str,
        io: Io,
        forward: &Forwarder,
    ) -> Result<i32> {
        let pid_file = bundle.join("pid");
        match std::fs::remove_file(&pid_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("removing {}", pid_file.display()), e))
            }
            _ => {}
        }
        let mut cmd = self.command(state_root);
        cmd.arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id);
        self.attached(cmd, io, forward, &pid_file)
    }

    /// Runs `process` (an OCI process spec file) in running container
    /// `id` in the foreground, as [`Runtime::run`] runs a container, and
    /// returns its exit status.
    pub fn exec(
        &self,
        state_root: &Path,
        process: &Path,
        id: &str,
        io: Io,
        forward: &Forwarder,
    ) -> Result<i32> {
        let pid_file = process.with_extension("pid");
        let mut cmd = self.command(state_root);
        cmd.arg("exec")
            .arg("--process")
            .arg(process)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id);
        let code = self.attached(cmd, io, forward, &pid_file);
        let _ = std::fs::remove_file(&pid_file);
        code
    }

    /// Runs the runtime command `cmd` with the container's standard
    /// streams (`io`) and signals forwarded; its exit status. A failure
    /// with no `pid_file` written is the runtime's, before the command
    /// started: an error, not the command's status.
    fn attached(
        &self,
        mut cmd: Command,
        io: Io,
        forward: &Forwarder,
        pid_file: &Path,
    ) -> Result<i32> {
        // Streams that are our terminal go through pipes unless the
        // container has a terminal of its own (`-t`): handed our terminal,
        // a container could push input into it (TIOCSTI) and would see a
        // terminal Docker never gives it. Files and pipes pass straight
        // through, with no copying.
        let relay = |terminal: bool| !io.terminal && terminal;
        let out_relay = relay(std::io::stdout().is_terminal());
        let err_relay = relay(std::io::stderr().is_terminal());
        let in_relay = io.stdin && relay(std::io::stdin().is_terminal());
        cmd.stdin(match (io.stdin || io.terminal, in_relay) {
            (false, _) => Stdio::null(),
            (true, true) => Stdio::piped(),
            (true, false) => Stdio::inherit(),
        });
        if out_relay || io.log.is_some() {
            cmd.stdout(Stdio::piped());
        }
        if err_relay || io.log.is_some() {
            cmd.stderr(Stdio::piped());
        }
        if !io.terminal {
            // Only we read our terminal: a Ctrl-C reaches the container
            // once, through `forward`, not twice.
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|e| {
            Error::io(
                format!("starting the OCI runtime {}", self.path.display()),
                e,
            )
        })?;
        forward.attach(child.id());
        if let Some(mut to) = child.stdin.take() {
            // Not joined: it may wait on our stdin for ever; the process
            // ends it.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to);
            });
        }
        let log = io.log.clone();
        let out = child.stdout.take().map(|mut from| match log.clone() {
            Some(log) => std::thread::spawn(move || crate::logs::pump(from, "stdout", &log)),
            None => std::thread::spawn(move || relay_to(&mut from, &mut std::io::stdout())),
        });
        let err = child.stderr.take().map(|mut from| match log {
            Some(log) => std::thread::spawn(move || crate::logs::pump(from, "stderr", &log)),
            None => std::thread::spawn(move || relay_to(&mut from, &mut std::io::stderr())),
        });
        let status = child.wait();
        forward.detach();
        for t in [out, err].into_iter().flatten() {
            let _ = t.join();
        }
        let status = status.map_err(|e| Error::io("waiting for the OCI runtime", e))?;
        if let Some(code) = status.code().filter(|&c| c != 0) {
            if !pid_file.exists() {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "the OCI runtime {} failed (exit status {code}) before the container's command started",
                        self.path.display()
                    ),
                ));
            }
        }
        Ok(status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(255))
    }

    /// Sends `signal` (a name or number) to container `id`'s process.
    pub fn kill(&self, state_root: &Path, id: &str, signal: &str) -> Result<()> {
        self.control(state_root, &["kill", id, signal])
    }

    /// The status the runtime gives container `id` (`creating`,
    /// `created`, `running`, `paused`, `stopped`), from `state`.
    pub fn status(&self, state_root: &Path, id: &str) -> Result<String> {
        let out = self
            .command(state_root)
            .args(["state", id])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| Error::io(format!("running {}", self.path.display()), e))?;
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            Error::with(
                ErrorKind::Io,
                format!("{} state {id}: no state", self.path.display()),
                e,
            )
        })?;
        Ok(state["status"].as_str().unwrap_or_default().to_owned())
    }

    /// Freezes every process of container `id` (the cgroup freezer).
    pub fn pause(&self, state_root: &Path, id: &str) -> Result<()> {
        self.control(state_root, &["pause", id])
    }

    /// Thaws container `id` after [`Runtime::pause`].
    pub fn resume(&self, state_root: &Path, id: &str) -> Result<()> {
        self.control(state_root, &["resume", id])
    }

    /// Runs `RUNTIME --root STATE ARGS...`; its stderr is the error.
    fn control(&self, state_root: &Path, args: &[&str]) -> Result<()> {
        let out = self
            .command(state_root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io(format!("running {}", self.path.display()), e))?;
        match strata_sys::process::failure(&out) {
            None => Ok(()),
            Some(why) => Err(Error::new(
                ErrorKind::Io,
                format!("{} {}: {why}", self.path.display(), args.join(" ")),
            )),
        }
    }

    /// Forgets container `id` (what a runtime killed mid-run leaves);
    /// nothing to forget is no error. crun and runc keep a container's
    /// state in `<root>/<id>` and remove it when a foreground run ends, so
    /// without that directory there is nothing to do (and no process to
    /// start).
    pub fn delete(&self, state_root: &Path, id: &str) {
        if !state_root.join(id).exists() {
            return;
        }
        let out = self
            .command(state_root)
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .output();
        if let Some(o) = out.ok().filter(|o| !o.status.success()) {
            tracing::debug!(
                "{} delete {id}: {}",
                self.path.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
    }
}

/// The container's standard streams.
#[derive(Clone)]
pub struct Io {
    /// `-i`: our stdin is passed on (otherwise `/dev/null`).
    pub stdin: bool,
    /// `-t`: the process gets a terminal (the runtime's, on ours).
    pub terminal: bool,
    /// stdout and stderr go to this log (a background run) instead of
    /// ours.
    pub log: Option<std::sync::Arc<crate::logs::LogWriter>>,
}

/// Copies `from` to `to` as data comes, flushing each piece (a prompt
/// must show before its newline).
fn relay_to(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Why crun cannot start containers on this host, when it cannot: crun
/// refuses a hybrid cgroup layout (cgroup v1 hierarchies, and cgroup2 at
/// `/sys/fs/cgroup/unified`) whose cgroup2 part holds controllers ("cgroups
/// in hybrid mode not supported"), whatever its cgroup manager. runc runs
/// there, so choosing a runtime passes crun over.
pub fn crun_unusable() -> Option<String> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        // Unified (cgroup v2 only): crun's home ground.
        return None;
    }
    let controllers =
        std::fs::read_to_string(root.join("unified").join("cgroup.controllers")).ok()?;
    let controllers = controllers.trim();
    (!controllers.is_empty()).then(|| {
        format!(
            "the cgroup layout is hybrid and cgroup2 holds controllers ({controllers}), which crun refuses"
        )
    })
}

/// Catches the signals a user sends to stop a container (SIGINT, SIGTERM,
/// SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) from the moment it is made, so that
/// strata is never killed half-way through setting up or cleaning up, and
/// passes each to the runtime while one runs. A signal that arrives when
/// no runtime runs is kept: [`Forwarder::pending`] says to give up, and a
/// runtime attached later gets it at once.
pub struct Forwarder {
    shared: Arc<Shared>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    /// The runtime's pid, 0 when none runs.
    pid: AtomicU32,
    /// The last signal caught while no runtime ran, 0 when none.
    pending: AtomicI32,
}

impl Forwarder {
    pub fn new() -> Result<Forwarder> {
        let mut signals = Signals::new(FORWARDED).map_err(|e| Error::io("catching signals", e))?;
        let handle = signals.handle();
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                let pid = s.pid.load(Ordering::SeqCst);
                if pid == 0 {
                    s.pending.store(sig, Ordering::SeqCst);
                } else if let Err(e) = strata_sys::process::kill(pid, sig) {
                    tracing::debug!("forwarding signal {sig} to {pid}: {e}");
                }
            }
        });
        Ok(Forwarder {
            shared,
            handle,
            thread: Some(thread),
        })
    }

    /// A signal caught while no runtime ran.
    pub fn pending(&self) -> Option<i32> {
        Some(self.shared.pending.load(Ordering::SeqCst)).filter(|&s| s != 0)
    }

    fn attach(&self, pid: u32) {
        self.shared.pid.store(pid, Ordering::SeqCst);
        let sig = self.shared.pending.swap(0, Ordering::SeqCst);
        if sig != 0 {
            let _ = strata_sys::process::kill(pid, sig);
        }
    }

    fn detach(&self) {
        self.shared.pid.store(0, Ordering::SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
