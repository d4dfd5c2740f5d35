//! Containers in the background: stop, kill, wait, restart, logs (and
//! the strata process that keeps one running, shared with `run -d` and
//! `start`).

use std::io;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use strata_store::Store;

use super::StoreArgs;
use crate::output::Out;

/// This strata again, on the same store, running `start -a` for `id`:
/// the process that keeps a background container running (see
/// `strata_run::start_detached`).
pub fn keeper(
    store: &Store,
    args: &StoreArgs,
    id: &str,
    runtime: Option<&str>,
    remove: bool,
) -> Result<Command, strata_run::Failure> {
    let exe = std::env::current_exe().map_err(|e| {
        strata_run::Failure::from(strata_store::Error::io("finding the strata binary", e))
    })?;
    Ok(keeper_of(&exe, store, args, id, runtime, remove))
}

/// [`keeper`], with the strata binary at `exe`.
fn keeper_of(
    exe: &std::path::Path,
    store: &Store,
    args: &StoreArgs,
    id: &str,
    runtime: Option<&str>,
    remove: bool,
) -> Command {
    let mut c = Command::new(exe);
    c.arg("--root").arg(store.root());
    for d in &args.plugin_dirs {
        c.arg("--plugin-dir").arg(d);
    }
    c.args(["start", "--attach"]);
    if let Some(r) = runtime {
        c.args(["--runtime", r]);
    }
    if remove {
        c.arg("--rm");
    }
    c.arg(id);
    c
}

#[derive(Args)]
pub struct Stop {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn stop(a: Stop, store: &Store, out: &mut Out) -> Result<()> {
    super::each_container(&a.containers, store, out, |c| {
        Ok(strata_run::control::stop(
            store,
            c,
            Duration::from_secs(a.time),
        )?)
    })
}

#[derive(Args)]
pub struct Kill {
    /// The signal: a name (TERM, SIGHUP) or a number.
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn kill(a: Kill, store: &Store, out: &mut Out) -> Result<()> {
    super::each_container(&a.containers, store, out, |c| {
        Ok(strata_run::control::signal(store, c, &a.signal)?)
    })
}

pub fn wait(names: &[String], store: &Store, out: &mut Out) -> Result<()> {
    for n in names {
        let c = store.resolve_container(n)?;
        writeln!(out, "{}", strata_run::control::wait(store, &c)?);
    }
    Ok(())
}

#[derive(Args)]
pub struct Restart {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn restart(a: Restart, store: &Store, args: &StoreArgs, out: &mut Out) -> Result<()> {
    super::each_container(&a.containers, store, out, |c| {
        let exe = std::env::current_exe().context("finding the strata binary")?;
        let command = |runtime: Option<&str>, remove: bool| {
            keeper_of(&exe, store, args, &c.id, runtime, remove)
        };
        strata_run::control::restart(store, c, Duration::from_secs(a.time), &command)
            .map_err(|f| f.error)?;
        Ok(())
    })
}

#[derive(Args)]
pub struct Logs {
    /// Follow: print what comes while the container runs.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (or `all`).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Each line's time before it.
    #[arg(short, long)]
    pub timestamps: bool,
    pub container: String,
}

pub fn logs(a: Logs, store: &Store, out: &mut Out) -> Result<()> {
    let c = store.resolve_container(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse()
                .with_context(|| format!("--tail {n:?}: a number, or all"))?,
        ),
    };
    let opts = strata_run::logs::Options {
        follow: a.follow,
        tail,
        timestamps: a.timestamps,
    };
    let shown = strata_run::logs::show(store, &c, opts, out.raw(), &mut io::stderr().lock());
    match shown {
        // A reader that went away (`logs | head`) has what it wanted.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        r => r.map_err(Into::into),
    }
    .and_then(|()| out.raw().flush().or_else(ignore_broken_pipe))
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn ignore_broken_pipe(e: io::Error) -> Result<()> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e.into())
    }
}

#[derive(Args)]
pub struct Exec {
    /// Keep stdin open: pass ours to the process.
    #[arg(short, long)]
    pub interactive: bool,
    /// A terminal for the process (stdin must be one).
    #[arg(short, long)]
    pub tty: bool,
    /// USER[:GROUP], names or numbers (default: the container's).
    #[arg(short, long)]
    pub user: Option<String>,
    /// The working directory (default: the container's).
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// K=V, or K to take the host's value.
    #[arg(short, long)]
    pub env: Vec<String>,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// `strata exec`: the process's exit status, or why there is none.
pub fn exec(a: Exec, store: &Store) -> Result<i32, strata_run::Failure> {
    let opts = strata_run::exec::ExecOptions {
        cmd: a.cmd,
        user: a.user,
        workdir: a.workdir,
        env: a.env,
        interactive: a.interactive,
        tty: a.tty,
    };
    strata_run::exec::exec(store, &a.container, &opts)
}
