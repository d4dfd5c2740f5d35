//! Container commands: create, run, start, mount, umount, ps, diff,
//! commit, export, rm.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use strata_store::{ContainerSpec, RunConfig, Status, Store};

use super::{short, Format};

#[derive(Args)]
pub struct Create {
    #[arg(long)]
    pub name: Option<String>,
    /// A volume: /CTR (anonymous), NAME:/CTR or /HOST:/CTR, with
    /// :ro, :rw, :nocopy (comma-separated) after.
    #[arg(short, long = "volume", value_name = "SPEC")]
    pub volume: Vec<String>,
    /// The volumes of another container, as they are or :ro / :rw.
    #[arg(long, value_name = "CONTAINER[:ro|:rw]")]
    pub volumes_from: Vec<String>,
    #[command(flatten)]
    pub run: RunFlags,
    pub image: String,
    /// The command (default: the image's Entrypoint and Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// How the command runs (`create` and `run`).
#[derive(Args)]
pub struct RunFlags {
    /// An environment variable, K=V, or K to take this shell's value.
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// The working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// USER[:GROUP], names (from the container's /etc/passwd and
    /// /etc/group) or numbers.
    #[arg(short, long)]
    pub user: Option<String>,
    /// The container's host name (default: the first 12 digits of its ID).
    #[arg(long)]
    pub hostname: Option<String>,
    /// private (the default: a network of its own through pasta, else
    /// slirp4netns, else loopback only), pasta or slirp4netns (that
    /// helper), none (loopback only) or host (the host's network).
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Publish a container port on the host: [IP:]HOST:CONTAINER[/tcp|/udp]
    /// (IPv6 in brackets); private networks only.
    #[arg(short, long, value_name = "[IP:]HOST:CONTAINER[/PROTO]")]
    pub publish: Vec<strata_store::PortMapping>,
    /// Keep stdin open (otherwise the command reads /dev/null).
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a terminal.
    #[arg(short, long)]
    pub tty: bool,
}

impl Create {
    pub fn spec(self) -> (String, ContainerSpec) {
        let r = self.run;
        let spec = ContainerSpec {
            name: self.name,
            cmd: self.cmd,
            volumes: self.volume,
            volumes_from: self.volumes_from,
            config: RunConfig {
                env: r.env,
                working_dir: r.workdir.unwrap_or_default(),
                user: r.user.unwrap_or_default(),
                hostname: r.hostname.unwrap_or_default(),
                tty: r.tty,
                open_stdin: r.interactive,
                network_mode: r.network.unwrap_or_default(),
                publish: r.publish,
            },
        };
        (self.image, spec)
    }
}

pub fn create(a: Create, store: &Store) -> Result<()> {
    let (image, spec) = a.spec();
    let c = store.create_container(&image, &spec)?;
    outln!("{}", c.id);
    Ok(())
}

#[derive(Args)]
pub struct Run {
    /// Remove the container and its anonymous volumes when it exits.
    #[arg(long)]
    pub rm: bool,
    /// The OCI runtime: a name on PATH or a path (default: crun, then runc).
    #[arg(long)]
    pub runtime: Option<String>,
    #[command(flatten)]
    pub create: Create,
}

/// `strata run`: the command's exit status, or why there is none.
pub fn run(a: Run, store: &Store) -> Result<i32, strata_run::Failure> {
    let opts = strata_run::Options {
        runtime: a.runtime,
        remove: a.rm,
    };
    let (image, spec) = a.create.spec();
    strata_run::run(store, &image, &spec, &opts)
}

#[derive(Args)]
pub struct Start {
    /// Attach: run in the foreground, with the command's exit status.
    /// Without it, a strata process of its own runs the container in the
    /// background (output in containers/<id>/output.log) and the
    /// container's name is printed once it runs.
    #[arg(short, long)]
    pub attach: bool,
    /// The OCI runtime: a name on PATH or a path (default: crun, then runc).
    #[arg(long)]
    pub runtime: Option<String>,
    pub container: String,
}

pub fn start(a: Start, store: &Store) -> Result<i32, strata_run::Failure> {
    let opts = strata_run::Options {
        runtime: a.runtime,
        remove: false,
    };
    if a.attach || std::env::var_os(strata_run::DETACHED_ENV).is_some() {
        return strata_run::start(store, &a.container, &opts);
    }
    // This same command again, in the background: it runs attached there.
    let exe = std::env::current_exe().map_err(|e| {
        strata_run::Failure::from(strata_store::Error::io("finding the strata binary", e))
    })?;
    let mut again = std::process::Command::new(exe);
    again.args(std::env::args_os().skip(1));
    let c = strata_run::start_detached(store, &a.container, again)?;
    outln!("{}", c.name);
    Ok(0)
}

pub fn mount(name: &str, store: &Store) -> Result<()> {
    let c = store.resolve_container(name)?;
    outln!("{}", store.mount(&c)?.display());
    Ok(())
}

pub fn umount(name: &str, store: &Store) -> Result<()> {
    let c = store.resolve_container(name)?;
    store.unmount(&c)?;
    Ok(())
}

#[derive(Args)]
pub struct Ps {
    /// All containers (without -a: the running ones).
    #[arg(short, long)]
    pub all: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn ps(a: Ps, store: &Store) -> Result<()> {
    let mut shown = Vec::new();
    let (containers, bad) = store.readable_containers()?;
    super::warn_unreadable(&bad, "not listed");
    for c in containers {
        let state = store.container_state(&c)?;
        if a.all || state.status == Status::Running {
            shown.push((c, state));
        }
    }
    if a.format == Format::Json {
        let v: Vec<_> = shown
            .iter()
            .map(|(c, _)| container_json(c, store))
            .collect::<Result<_>>()?;
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!(
        "{:<14} {:<14} {:<32} {:<20} {:<12} NAMES",
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS"
    );
    for (c, state) in &shown {
        let image = store
            .image(&c.image)
            .ok()
            .and_then(|i| i.tags.first().map(|t| t.to_string()))
            .unwrap_or_else(|| short(c.image.as_str()).to_owned());
        let created = c.created.get(..19).unwrap_or(&c.created).replace('T', " ");
        let status = match state.status {
            Status::Exited => format!("exited ({})", state.exit_code),
            s => s.as_str().to_owned(),
        };
        outln!(
            "{:<14} {:<14} {:<32} {:<20} {:<12} {}",
            short(&c.id),
            image,
            format!("{:?}", c.cmd.join(" ")),
            created,
            status,
            c.name
        );
    }
    Ok(())
}

pub fn container_json(c: &strata_store::Container, store: &Store) -> Result<serde_json::Value> {
    Ok(json!({
        "Id": c.id,
        "Name": c.name,
        "Image": c.image.as_str(),
        "Created": c.created,
        "Cmd": c.cmd,
        "Driver": c.driver,
        "GraphDriver": {
            "Name": store.driver().name(),
            "Data": { "MountID": c.mount_id, "InitID": c.init_id() },
        },
        "Mounts": c.mounts,
        "Config": c.config,
        "State": store.container_state(c)?,
    }))
}

pub fn diff(name: &str, store: &Store) -> Result<()> {
    let c = store.resolve_container(name)?;
    let mut out = BufWriter::new(io::stdout().lock());
    for ch in store.container_changes(&c)? {
        writeln!(out, "{ch}")?;
    }
    out.flush()?;
    Ok(())
}

#[derive(Args)]
pub struct Commit {
    pub container: String,
    pub reference: Option<String>,
    #[arg(short, long, default_value = "")]
    pub message: String,
}

pub fn commit(a: Commit, store: &Store) -> Result<()> {
    let c = store.resolve_container(&a.container)?;
    let pb = crate::progress::bar(&format!("committing {}", c.name), None);
    let id = store.commit(&c, a.reference.as_deref(), &a.message);
    pb.finish_and_clear();
    outln!("{}", id?);
    Ok(())
}

#[derive(Args)]
pub struct Export {
    #[arg(short, long)]
    pub output: PathBuf,
    pub container: String,
}

pub fn export(a: Export, store: &Store) -> Result<()> {
    let c = store.resolve_container(&a.container)?;
    let file =
        File::create(&a.output).with_context(|| format!("creating {}", a.output.display()))?;
    let pb = crate::progress::bar(&format!("exporting {}", c.name), None);
    let mut out = BufWriter::with_capacity(1 << 20, crate::progress::writer(&pb, file));
    let result = store
        .export(&c, &mut out)
        .map_err(anyhow::Error::from)
        .and_then(|_| out.flush().map_err(anyhow::Error::from));
    pb.finish_and_clear();
    result
}

pub fn rm(names: &[String], force: bool, volumes: bool, store: &Store) -> Result<()> {
    for n in names {
        let c = store.resolve_container(n)?;
        if force {
            strata_run::kill(store, &c, std::time::Duration::from_secs(10))?;
        }
        store.remove_container_with(&c, force, volumes)?;
        outln!("{n}");
    }
    Ok(())
}
