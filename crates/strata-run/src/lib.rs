//! Running commands in containers, as Podman and containerd do it: strata
//! prepares the root file system (the container's union view, mounted by
//! the store) and an OCI runtime bundle, and a standard OCI runtime (`crun`
//! or `runc`) makes the namespaces and starts the process.
//!
//! A run, step by step ([`start`]):
//! 1. signals that would stop strata are caught from the start and passed
//!    on to the runtime (see [`runtime::Forwarder`]): strata always gets to
//!    clean up;
//! 2. the store mounts the root file system and any plugin volumes
//!    (`VolumeDriver.Mount`) and records the container as running;
//! 3. the network is chosen ([`network::Plan`]: a private namespace
//!    connected by pasta or slirp4netns by default), the user is looked
//!    up in the container's own `/etc/passwd` ([`user`]), the command is
//!    looked up inside the root (so a missing one is exit status 127 and
//!    one that cannot run 126, as with Docker);
//! 4. for a private network, strata makes the network namespace, starts
//!    its helper and waits until it has configured it
//!    ([`network::Network`]); `hosts`, `hostname` and `resolv.conf` (the
//!    helper's resolver) are written beside the container's record
//!    ([`files`]) and the bundle's `config.json` is built ([`spec`]),
//!    joining that namespace;
//! 5. the runtime runs in the foreground: stdout and stderr are ours,
//!    stdin only with `-i`; its exit status is the command's;
//! 6. whatever happened, the network helper is stopped, the mounts are
//!    released (`Unmount` for plugin volumes) and the exit recorded;
//!    `--rm` then removes the container and its anonymous volumes.
//!
//! Exit statuses as `docker run`'s: the command's own, or 125 when strata
//! (or the runtime) fails, 126 when the command cannot be run, 127 when
//! it is not found.
#![forbid(unsafe_code)]

pub mod files;
pub mod network;
pub mod runtime;
pub mod spec;
pub mod user;

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_store::{Container, ContainerSpec, Error, ErrorKind, Status, Store};

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
    fn new(code: i32, error: Error) -> Self {
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
    let result = run_container(store, &c, &runtime, &forward);
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
    let result = run_container(store, &c, &runtime, &forward);
    if opts.remove {
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
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = store.container_state(&c)?;
        // Running: the runtime has made the container (its state
        // directory is there while the container lives).
        let made = store
            .container_path(&c)
            .join("runtime")
            .join(&c.id)
            .exists();
        if state.status == Status::Running && state.pid == child.id() && made {
            return Ok(c);
        }
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("waiting for strata in the background", e))?
        {
            // Done already: a command that ran (whatever its status), or
            // strata's own error, which it wrote last to the log.
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let last = tail.lines().rev().find(|l| !l.is_empty()).unwrap_or("");
            match last.strip_prefix("strata: error: ") {
                None if state.status == Status::Exited => return Ok(c),
                why => {
                    return Err(Failure::new(
                        status.code().unwrap_or(EXIT_FAILED),
                        Error::new(
                            ErrorKind::Io,
                            format!(
                                "container {} did not start: {}",
                                c.name,
                                why.unwrap_or(last)
                            ),
                        ),
                    ))
                }
            }
        }
        if Instant::now() > deadline {
            return Err(Failure::from(Error::new(
                ErrorKind::Io,
                format!("container {} did not start within a minute", c.name),
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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
    let runtime = Runtime {
        path: PathBuf::from(&state.runtime),
    };
    let state_root = store.container_path(c).join("runtime");
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

/// When the strata running `c` was killed (SIGKILL), its container may
/// still run under the runtime: `delete --force` kills and forgets it, so
/// that the store may release its mounts.
fn forget_lost(store: &Store, c: &Container) -> Result<(), Error> {
    let state = store.container_state(c)?;
    if state.lost {
        let runtime = Runtime {
            path: PathBuf::from(&state.runtime),
        };
        runtime.delete(&store.container_path(c).join("runtime"), &c.id);
    }
    Ok(())
}

/// `-t` needs a terminal on stdin: the runtime makes the container's
/// terminal on ours (Docker's daemon can make one without; strata has no
/// daemon).
fn check_terminal(tty: bool) -> Result<(), Failure> {
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
) -> Result<i32, Failure> {
    if let Some(sig) = forward.pending() {
        return Ok(128 + sig);
    }
    forget_lost(store, c)?;
    let started = store.start_container(c, &runtime.path.to_string_lossy())?;
    let result = run_started(c, &started, runtime, forward);
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
    check_command(&started.rootfs, c, &env)?;
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
    };
    let code = runtime.run(&state_root, &bundle, &c.id, io, forward)?;
    runtime.delete(&state_root, &c.id);
    drop(net);
    Ok(code)
}

/// Finds the command inside the container's root as its `execve` would,
/// for Docker's exit statuses: 127 when it is not there, 126 when it is
/// not an executable file.
fn check_command(rootfs: &Path, c: &Container, env: &[String]) -> Result<(), Failure> {
    let Some(arg0) = c.cmd.first() else {
        // No command: `spec::build` says so.
        return Ok(());
    };
    let root = strata_sys::fs::open_dir(rootfs)
        .map_err(|e| Error::io(format!("opening {}", rootfs.display()), e))?;
    let stat = |p: &Path| strata_sys::fs::stat_in_root(std::os::fd::AsFd::as_fd(&root), p);
    let executable =
        |st: &strata_sys::Stat| st.st_mode & 0o170000 == 0o100000 && st.st_mode & 0o111 != 0;
    if arg0.contains('/') {
        let cwd = match c.config.working_dir.as_str() {
            "" => "/",
            w => w,
        };
        let p = Path::new(cwd).join(arg0);
        return match stat(&p) {
            Ok(st) if executable(&st) => Ok(()),
            Ok(_) => Err(Failure::new(
                EXIT_CANNOT_RUN,
                Error::new(
                    ErrorKind::PermissionDenied,
                    format!("exec {arg0}: not an executable file"),
                ),
            )),
            Err(_) => Err(Failure::new(
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
        .any(|d| stat(&Path::new(d).join(arg0)).is_ok_and(|st| executable(&st)));
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
