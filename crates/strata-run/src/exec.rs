//! `strata exec`: another process in a running container, as `docker
//! exec` starts one. The runtime's `exec` runs it from a process spec
//! made from the container's own (`bundle/config.json`): the same
//! capabilities, rlimits, no-new-privileges and labels, and through the
//! container its namespaces, cgroup and seccomp profile; only the command,
//! the user, the working directory, the environment and the terminal are
//! the exec's. The user is looked up in the container's `/etc/passwd` and
//! the command in its root, as for `run` (127 when missing, 126 when it
//! cannot run).

use oci_spec::runtime::{Spec, UserBuilder};
use strata_store::{Container, Error, ErrorKind, Status, Store};

use crate::runtime::{Forwarder, Io};
use crate::{check_command, check_terminal, spec, user, Failure, EXIT_FAILED};

/// What `strata exec` runs, and how.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub cmd: Vec<String>,
    /// `-u USER[:GROUP]`; the container's user when `None`.
    pub user: Option<String>,
    /// `-w DIR` (absolute); the container's working directory when `None`.
    pub workdir: Option<String>,
    /// `-e K=V|K`, over the container's environment.
    pub env: Vec<String>,
    /// `-i`: our stdin is passed on.
    pub interactive: bool,
    /// `-t`: a terminal for the process.
    pub tty: bool,
}

/// Runs `opts.cmd` in the running container `name`; its exit status.
pub fn exec(store: &Store, name: &str, opts: &ExecOptions) -> Result<i32, Failure> {
    let forward = Forwarder::new()?;
    let c = store.resolve_container(name)?;
    check_terminal(opts.tty)?;
    if opts.cmd.is_empty() {
        return Err(invalid("exec needs a command"));
    }
    if let Some(w) = opts.workdir.as_deref().filter(|w| !w.starts_with('/')) {
        return Err(invalid(format!(
            "the working directory {w:?} is not absolute"
        )));
    }
    let state = store.container_state(&c)?;
    if state.status != Status::Running {
        return Err(invalid(format!("container {} is not running", c.name)));
    }
    let (runtime, state_root) = crate::runtime_of(store, &c, &state);
    let rootfs = store.mount(&c)?;
    let made = process_file(store, &c, &rootfs, opts);
    if let Err(e) = store.unmount(&c) {
        tracing::warn!("unmounting container {}: {e}", c.name);
    }
    let process = made?;
    let io = Io {
        stdin: opts.interactive,
        terminal: opts.tty,
        log: None,
    };
    let code = runtime.exec(&state_root, process.path(), &c.id, io, &forward);
    Ok(code?)
}

/// The exec's process spec, written beside the container's record
/// (removed when the returned file drops).
fn process_file(
    store: &Store,
    c: &Container,
    rootfs: &std::path::Path,
    opts: &ExecOptions,
) -> Result<tempfile::NamedTempFile, Failure> {
    let dir = store.container_path(c);
    let bundle = dir.join("bundle/config.json");
    let spec = Spec::load(&bundle).map_err(|e| {
        Error::with(
            ErrorKind::Corrupt,
            format!("container {}: reading {}", c.name, bundle.display()),
            e,
        )
    })?;
    let mut process = spec.process().clone().ok_or_else(|| {
        Error::new(
            ErrorKind::Corrupt,
            format!("container {}: {} has no process", c.name, bundle.display()),
        )
    })?;
    let wanted = opts.user.as_deref().unwrap_or(&c.config.user);
    let user = user::resolve(rootfs, wanted)
        .map_err(|why| invalid(format!("container {}: {why}", c.name)))?;
    let mut env = spec::environment(c, &user, opts.tty);
    strata_store::override_env(&mut env, &opts.env, &|k| std::env::var(k).ok())?;
    // The command is looked up as the container's own would be, with the
    // exec's working directory.
    let mut probe = c.clone();
    probe.cmd = opts.cmd.clone();
    if let Some(w) = &opts.workdir {
        probe.config.working_dir = w.clone();
    }
    // A plugin's volume is mounted where the plugin says, which the
    // record does not know: with one, the runtime finds the command.
    if !c.mounts.iter().any(strata_store::Mount::is_plugin) {
        check_command(rootfs, &c.mounts, &probe, &env)?;
    }
    let cwd = match probe.config.working_dir.as_str() {
        "" => "/".to_owned(),
        w => w.to_owned(),
    };
    let mut u = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !user.additional_gids.is_empty() {
        u = u.additional_gids(user.additional_gids.clone());
    }
    let u = u
        .build()
        .map_err(|e| Error::with(ErrorKind::Io, "building the exec's user", e))?;
    process
        .set_args(Some(opts.cmd.clone()))
        .set_env(Some(env))
        .set_cwd(cwd.into())
        .set_user(u)
        .set_terminal(Some(opts.tty))
        .set_console_size(None);
    let file = tempfile::Builder::new()
        .prefix("exec-")
        .suffix(".json")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(format!("writing an exec spec in {}", dir.display()), e))?;
    serde_json::to_writer(file.as_file(), &process)
        .map_err(|e| Error::with(ErrorKind::Io, "writing the exec's process spec", e))?;
    Ok(file)
}

fn invalid(msg: impl Into<String>) -> Failure {
    Failure::new(EXIT_FAILED, Error::new(ErrorKind::InvalidArgument, msg))
}
