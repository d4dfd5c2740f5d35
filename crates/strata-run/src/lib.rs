//! Running commands in containers, as Podman and containerd do it: strata
//! prepares the root file system (the container's union view, mounted by
//! the store) and an OCI runtime bundle, and a standard OCI runtime (`crun`
//! or `runc`) makes the namespaces and starts the process.
//!
//! A run, step by step ([`start`]):
//! 1. signals that would stop strata are caught from the start and passed
//!    on to the runtime (see [`runtime::Forwarder`]): strata always gets to
//!    clean up;
//! 2. the store mounts the root file system and the volumes a driver
//!    mounts (`VolumeDriver.Mount`: plugin volumes, and local ones with
//!    `type`/`device` options) and records the container as running;
//! 3. the network is chosen ([`network::Plan`]: a private namespace
//!    connected by pasta or slirp4netns by default), the user is looked
//!    up in the container's own `/etc/passwd` ([`user`]), the command is
//!    looked up in the root with the container's volumes and binds over
//!    it (so a missing one is exit status 127 and one that cannot run
//!    126, as with Docker);
//! 4. for a private network, strata makes the network namespace, starts
//!    its helper and waits until it has configured it
//!    ([`network::Network`]); `hosts`, `hostname` and `resolv.conf` (the
//!    helper's resolver) are written beside the container's record
//!    ([`files`]) and the bundle's `config.json` is built ([`spec`]),
//!    joining that namespace, with the capabilities and seccomp filter
//!    the container's record asks for ([`security`], [`seccomp`]);
//! 5. the runtime runs in the foreground: stdout and stderr are ours (or
//!    the container's log, in the background), stdin only with `-i`; its
//!    exit status is the command's, unless it failed before the command
//!    started (then 125);
//! 6. whatever happened, the network helper is stopped, the mounts are
//!    released (`Unmount` for plugin volumes) and the exit recorded;
//!    `--rm` then removes the container and its anonymous volumes.
//!
//! Exit statuses as `docker run`'s: the command's own, or 125 when strata
//! (or the runtime) fails, 126 when the command cannot be run, 127 when
//! it is not found.
#![forbid(unsafe_code)]

pub mod control;
pub mod exec;
pub mod files;
pub mod host;
pub mod logs;
mod lookup;
pub mod network;
pub mod runtime;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod user;
pub mod userns;

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_store::{Container, ContainerSpec, Error, ErrorKind, State, Status, Store};

pub use runtime::{Forwarder, Runtime, RUNTIMES};

/// Exit status when strata itself fails (`docker run`'s 125).
pub const EXIT_FAILED: i32 = 125;
/// Exit status when the command cannot be run.
pub const EXIT_CANNOT_RUN: i32 = 126;
/// Exit status when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// A run that did not get the command's own exit status: why, and the
/// status to exit with.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: Error,
}

impl Failure {
    pub(crate) fn new(code: i32, error: Error) -> Self {
        Failure { code, error }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::new(EXIT_FAILED, error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--runtime`: a name on `PATH` or a path; `None` for the first of
    /// [`RUNTIMES`].
    pub runtime: Option<String>,
    /// `--rm`: remove the container and its anonymous volumes afterwards.
    pub remove: bool,
    /// Keep the container's output in its log ([`logs`]) instead of
    /// passing it through: the run in the background that `start`
    /// (without `-a`) and `run -d` leave.
    pub log: bool,
}

/// `strata run`: creates a container from `image` and runs it; returns
/// the command's exit status.
pub fn run(
    store: &Store,
    image: &str,
    spec: &ContainerSpec,
    opts: &Options,
) -> Result<i32, Failure> {
    let forward = Forwarder::new()?;
    let runtime = Runtime::find(opts.runtime.as_deref())?;
    check_terminal(spec.config.tty)?;
    let c = store.create_container(image, spec)?;
    let result = run_container(store, &c, &runtime, &forward, opts);
    if opts.remove {
        // (`rm -f` of the running container may have removed it already.)
        let removed = store
            .remove_container_with(&c, false, true)
            .or_else(|e| match e.kind() {
                ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            });
        if let Err(e) = removed {
            // The command's status still counts; the leftover is named.
            tracing::error!("removing container {} after the run: {e}", c.name);
            if result.is_ok() {
                return Err(Failure::from(e));
            }
        }
    }
    result
}

/// `strata start -a`: runs a created (or exited) container again.
pub fn start(store: &Store, name: &str, opts: &Options) -> Result<i32, Failure> {
    let forward = Forwarder::new()?;
    let c = store.resolve_container(name)?;
    let runtime = Runtime::find(opts.runtime.as_deref())?;
    check_terminal(c.config.tty)?;
    let result = run_container(store, &c, &runtime, &forward, opts);
    // A container being restarted is not removed by the run it ends.
    if opts.remove && !control::take_restarting(store, &c) {
        store.remove_container_with(&c, false, true)?;
    }
    result
}

/// `strata start` without `-a`: runs the container in the background, in
/// a strata process of its own (`command`: this strata again, made to run
/// it attached, see [`DETACHED_ENV`]) with stdin from `/dev/null` and its
/// output appended to `containers/<id>/output.log`; returns once the
/// container runs, or the reason it did not start.
pub fn start_detached(
    store: &Store,
    name: &str,
    mut command: std::process::Command,
) -> Result<Container, Failure> {
    use std::os::unix::process::CommandExt;
    let c = store.resolve_container(name)?;
    if store.container_state(&c)?.status == Status::Running {
        return Err(Failure::from(Error::new(
            ErrorKind::InUse,
            format!("container {} is already running", c.name),
        )));
    }
    if c.config.tty {
        return Err(Failure::from(Error::new(
            ErrorKind::InvalidArgument,
            format!("container {} has a terminal (-t): start it with -a", c.name),
        )));
    }
    let log = store.container_path(&c).join("output.log");
    // Only what this start writes counts; an old log is not kept whole.
    let from = match std::fs::metadata(&log).map(|m| m.len()) {
        Ok(n) if n > MAX_OUTPUT_LOG => {
            std::fs::remove_file(&log)
                .map_err(|e| Error::io(format!("removing {}", log.display()), e))?;
            0
        }
        Ok(n) => n,
        Err(_) => 0,
    };
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))
    };
    let mut child = command
        .env(DETACHED_ENV, "1")
        .stdin(std::process::Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io("starting strata in the background", e))?;
    let deadline = Instant::now() + START_WITHIN;
    loop {
        let state = store.container_state(&c)?;
        // Running: the runtime has made the container (its state
        // directory is there while the container lives) and started its
        // process, so that `exec` and `kill` find it.
        let (runtime, state_root) = runtime_of(store, &c, &state);
        if state.status == Status::Running
            && state.pid == child.id()
            && state_root.join(&c.id).exists()
            && runtime
                .status(&state_root, &c.id)
                .is_ok_and(|s| s == "running")
        {
            return Ok(c);
        }
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("waiting for strata in the background", e))?
        {
            return ended(store, &c, status, &log, from);
        }
        if Instant::now() > deadline {
            // Not left to come up after the caller was told it did not.
            let _ = strata_sys::process::kill(child.id(), 15);
            let _ = child.wait();
            return Err(Failure::from(Error::new(
                ErrorKind::Io,
                format!(
                    "container {} did not start within {} s; stopped",
                    c.name,
                    START_WITHIN.as_secs()
                ),
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long a background start may take to report the container
/// running (more than a network helper's two chances to get ready).
const START_WITHIN: Duration = Duration::from_secs(120);

/// `output.log` (the keeping process's own messages) past this size is
/// started anew.
const MAX_OUTPUT_LOG: u64 = 1 << 20;

/// The keeping process ended before the container was seen running: a
/// command that ran (whatever its status), or strata's own error, the
/// last line it wrote to the log after `from`.
fn ended(
    store: &Store,
    c: &Container,
    status: std::process::ExitStatus,
    log: &Path,
    from: u64,
) -> Result<Container, Failure> {
    use std::io::{Read, Seek};
    // Read again: it may have ended after the state was last read.
    let state = store.container_state(c)?;
    let mut written = String::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        if f.seek(std::io::SeekFrom::Start(from)).is_ok() {
            let _ = f.take(MAX_OUTPUT_LOG).read_to_string(&mut written);
        }
    }
    let last = written.lines().rev().find(|l| !l.is_empty()).unwrap_or("");
    let why = match last.strip_prefix("strata: error: ") {
        None if state.status == Status::Exited => return Ok(c.clone()),
        Some(why) => why.to_owned(),
        None if last.is_empty() => format!("the strata running it ended ({status})"),
        None => last.to_owned(),
    };
    let code = status.code().filter(|&c| c != 0).unwrap_or(EXIT_FAILED);
    Err(Failure::new(
        code,
        Error::new(
            ErrorKind::Io,
            format!("container {} did not start: {why}", c.name),
        ),
    ))
}

/// The runtime a container's state says it runs under, and the
/// runtime's state directory for it (`containers/<id>/runtime`).
pub(crate) fn runtime_of(store: &Store, c: &Container, state: &State) -> (Runtime, PathBuf) {
    (
        Runtime {
            path: PathBuf::from(&state.runtime),
        },
        store.container_path(c).join("runtime"),
    )
}

/// Set in the environment of the strata that `start` (without `-a`)
/// leaves running the container: it runs it attached.
pub const DETACHED_ENV: &str = "STRATA_START_DETACHED_CHILD";

/// Stops a running container (for `rm -f`): SIGKILL through its runtime,
/// then waits up to `timeout` for the strata process running it to clean
/// up. A container that is not running is left as it is.
pub fn kill(store: &Store, c: &Container, timeout: Duration) -> Result<(), Error> {
    forget_lost(store, c)?;
    let state = store.container_state(c)?;
    if state.status != Status::Running {
        return Ok(());
    }
    let (runtime, state_root) = runtime_of(store, c, &state);
    if let Err(e) = runtime.kill(&state_root, &c.id, "KILL") {
        // Not started yet, or already gone: the strata running it gives up
        // on SIGTERM.
        tracing::debug!("{e}; sending SIGTERM to strata process {}", state.pid);
        let _ = strata_sys::process::kill(state.pid, 15);
    }
    let deadline = Instant::now() + timeout;
    while store.container_state(c)?.status == Status::Running {
        if Instant::now() > deadline {
            return Err(Error::new(
                ErrorKind::InUse,
                format!(
                    "container {} still runs {}s after SIGKILL",
                    c.name,
                    timeout.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A running container frozen while its files are read, as `docker
/// commit` pauses by default: what `commit` and `export` take is then one
/// moment of the container, and nothing in it can swap files under the
/// reader. Thawed when dropped, and also when this process is told to
/// stop (SIGINT, SIGTERM, SIGHUP: thawed, then the process exits 128+N),
/// so an interrupted commit never leaves the container frozen. A
/// container that is not running is not touched.
pub struct Paused {
    frozen: Option<Frozen>,
}

struct Frozen {
    thaw: std::sync::Arc<Thaw>,
    signals: signal_hook::iterator::Handle,
    watcher: Option<std::thread::JoinHandle<()>>,
}

/// Resumes a container once, whoever asks first.
struct Thaw {
    runtime: Runtime,
    state_root: PathBuf,
    id: String,
    done: std::sync::Once,
}

impl Thaw {
    fn now(&self) {
        self.done.call_once(|| {
            if let Err(e) = self.runtime.resume(&self.state_root, &self.id) {
                tracing::error!("resuming container {}: {e}", self.id);
            }
        });
    }
}

/// Pauses `c` through the runtime it runs under, when it runs.
pub fn pause(store: &Store, c: &Container) -> Result<Paused, Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let state = store.container_state(c)?;
    if state.status != Status::Running {
        return Ok(Paused::none());
    }
    let (runtime, state_root) = runtime_of(store, c, &state);
    // Caught from before the freeze: a signal in between thaws it too.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::io("catching signals", e))?;
    if let Err(e) = runtime.pause(&state_root, &c.id) {
        signals.handle().close();
        // Exited meanwhile: nothing runs to pause.
        if store.container_state(c)?.status != Status::Running {
            return Ok(Paused::none());
        }
        return Err(Error::with(
            ErrorKind::Io,
            format!(
                "pausing container {} (--pause=false reads it running)",
                c.name
            ),
            e,
        ));
    }
    let thaw = std::sync::Arc::new(Thaw {
        runtime,
        state_root,
        id: c.id.to_string(),
        done: std::sync::Once::new(),
    });
    let handle = signals.handle();
    let watcher = {
        let thaw = thaw.clone();
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                thaw.now();
                std::process::exit(128 + sig);
            }
        })
    };
    Ok(Paused {
        frozen: Some(Frozen {
            thaw,
            signals: handle,
            watcher: Some(watcher),
        }),
    })
}

impl Paused {
    /// Nothing paused (`--pause=false`).
    pub fn none() -> Paused {
        Paused { frozen: None }
    }

    /// Whether a container was frozen.
    pub fn is_paused(&self) -> bool {
        self.frozen.is_some()
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(f) = &mut self.frozen {
            f.thaw.now();
            f.signals.close();
            if let Some(w) = f.watcher.take() {
                let _ = w.join();
            }
        }
    }
}

/// When the strata running `c` was killed (SIGKILL), its container may
/// still run under the runtime: `delete --force` kills and forgets it, so
/// that the store may release its mounts.
fn forget_lost(store: &Store, c: &Container) -> Result<(), Error> {
    let state = store.container_state(c)?;
    if state.lost {
        let (runtime, state_root) = runtime_of(store, c, &state);
        runtime.delete(&state_root, &c.id);
    }
    Ok(())
}

/// `-t` needs a terminal on stdin: the runtime makes the container's
/// terminal on ours (Docker's daemon can make one without; strata has no
/// daemon).
pub(crate) fn check_terminal(tty: bool) -> Result<(), Failure> {
    if tty && !std::io::stdin().is_terminal() {
        return Err(Failure::from(Error::new(
            ErrorKind::InvalidArgument,
            "the input device is not a TTY (-t needs one; drop -t to pipe input or output)",
        )));
    }
    Ok(())
}

/// Steps 2 to 6 of the module doc.
fn run_container(
    store: &Store,
    c: &Container,
    runtime: &Runtime,
    forward: &Forwarder,
    opts: &Options,
) -> Result<i32, Failure> {
    if let Some(sig) = forward.pending() {
        return Ok(128 + sig);
    }
    forget_lost(store, c)?;
    let log = opts
        .log
        .then(|| logs::LogWriter::open(&logs::path(store, c)))
        .transpose()?;
    let started = store.start_container(c, &runtime.path.to_string_lossy(), opts.remove)?;
    let result = run_started(c, &started, runtime, forward, log);
    let code = match &result {
        Ok(code) => *code,
        Err(f) => f.code,
    };
    store.finish_container(c, code)?;
    result
}

fn run_started(
    c: &Container,
    started: &strata_store::Started,
    runtime: &Runtime,
    forward: &Forwarder,
    log: Option<std::sync::Arc<logs::LogWriter>>,
) -> Result<i32, Failure> {
    let plan = network::Plan::for_container(c)?;
    let user = user::resolve(&started.rootfs, &c.config.user).map_err(|why| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("container {}: {why}", c.name),
        )
    })?;
    let terminal = c.config.tty;
    let env = spec::environment(c, &user, terminal);
    check_command(&started.rootfs, &started.mounts, c, &env)?;
    // Stopped when dropped: when the runtime is done, or on any error.
    let net = match &plan {
        network::Plan::Private(helpers) => Some(network::Network::start_first(
            helpers,
            &c.config.publish,
            &started.dir,
        )?),
        _ => None,
    };
    let nameserver = net.as_ref().map(|n| n.helper().nameserver());
    files::write(&started.dir, c, nameserver)?;
    let netns = net.as_ref().map(network::Network::namespace_path);
    let spec = spec::build(&spec::Inputs {
        container: c,
        rootfs: &started.rootfs,
        mounts: &started.mounts,
        files: &started.dir,
        user: &user,
        terminal,
        network: match (&plan, &netns) {
            (network::Plan::Host, _) => spec::NetNs::Host,
            (_, Some(path)) => spec::NetNs::Join(path),
            (_, None) => spec::NetNs::New,
        },
    })?;
    let bundle = started.dir.join("bundle");
    std::fs::create_dir_all(&bundle)
        .map_err(|e| Error::io(format!("creating {}", bundle.display()), e))?;
    let json = serde_json::to_vec_pretty(&spec).expect("serialising a runtime spec");
    let config = bundle.join("config.json");
    std::fs::write(&config, json)
        .map_err(|e| Error::io(format!("writing {}", config.display()), e))?;
    let state_root = started.dir.join("runtime");
    // What a runtime killed mid-run left under this ID.
    runtime.delete(&state_root, &c.id);
    if let Some(sig) = forward.pending() {
        return Ok(128 + sig);
    }
    let io = runtime::Io {
        stdin: c.config.open_stdin,
        terminal,
        log,
    };
    // Whatever the runtime left under this ID goes, failed or not.
    let code = runtime.run(&state_root, &bundle, &c.id, io, forward);
    runtime.delete(&state_root, &c.id);
    let code = code?;
    drop(net);
    Ok(code)
}

/// Finds the command in the container as its `execve` will, with the
/// container's volumes and binds over its root ([`lookup`]): a command
/// in `-v /host/bin:/opt/bin` is found. For Docker's exit statuses: 127
/// when it is not there, 126 when it is not an executable file.
pub(crate) fn check_command(
    rootfs: &Path,
    mounts: &[strata_store::Mount],
    c: &Container,
    env: &[String],
) -> Result<(), Failure> {
    let Some(arg0) = c.cmd.first() else {
        // No command: `spec::build` says so.
        return Ok(());
    };
    let stat = |p: &Path| lookup::mode_in_container(rootfs, mounts, p);
    let executable = |mode: u32| mode & 0o170000 == 0o100000 && mode & 0o111 != 0;
    if arg0.contains('/') {
        let cwd = match c.config.working_dir.as_str() {
            "" => "/",
            w => w,
        };
        let p = Path::new(cwd).join(arg0);
        return match stat(&p) {
            Ok(Some(mode)) if executable(mode) => Ok(()),
            Ok(Some(_)) => Err(Failure::new(
                EXIT_CANNOT_RUN,
                Error::new(
                    ErrorKind::PermissionDenied,
                    format!("exec {arg0}: not an executable file"),
                ),
            )),
            Ok(None) | Err(_) => Err(Failure::new(
                EXIT_NOT_FOUND,
                Error::new(
                    ErrorKind::NotFound,
                    format!("exec {arg0}: no such file in the container"),
                ),
            )),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(spec::DEFAULT_PATH);
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .any(|d| matches!(stat(&Path::new(d).join(arg0)), Ok(Some(m)) if executable(m)));
    if found {
        Ok(())
    } else {
        Err(Failure::new(
            EXIT_NOT_FOUND,
            Error::new(
                ErrorKind::NotFound,
                format!("exec {arg0:?}: executable file not found in $PATH"),
            ),
        ))
    }
}

/// A container record for unit tests: command `cmd`, settings `config`.
#[cfg(test)]
pub(crate) fn test_container(cmd: &[&str], config: strata_store::RunConfig) -> Container {
    let json = serde_json::json!({
        "ID": "a".repeat(64),
        "Name": "c",
        "Image": format!("sha256:{}", "b".repeat(64)),
        "Created": "2026-01-01T00:00:00Z",
        "Cmd": cmd,
        "Driver": "overlay2",
        "MountID": "c".repeat(64),
        "ParentLayer": null,
    });
    let mut c: Container = serde_json::from_value(json).expect("a valid record");
    c.config = config;
    c
}
