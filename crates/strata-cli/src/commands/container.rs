//! Container commands: create, run, start, mount, umount, ps, diff,
//! commit, export, rm.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use strata_store::filter::{Filters, Listing};
use strata_store::listing::ContainerRow;
use strata_store::{view, ContainerSpec, HostConfig, RunConfig, Store};

use super::{ListFlags, StoreArgs};
use crate::output::Out;

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
    /// The program to run instead of the image's Entrypoint ("" for
    /// none); the image's Cmd is then not used either.
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,
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
    /// Mount the container's root file system read-only.
    #[arg(long)]
    pub read_only: bool,
    /// A tmpfs at a container path: /PATH[:OPTIONS] (nosuid,nodev,noexec
    /// first, as Docker).
    #[arg(long, value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Memory limit (b, k, m, g: 512m).
    #[arg(short, long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPUs the container may use (1.5: one and a half).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Most processes at once (-1: no limit).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Run an init (tini) that runs the command and reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// A storage driver option: size=SIZE limits the container's layer
    /// (btrfs; refused by drivers that cannot enforce it).
    #[arg(long, value_name = "KEY=VALUE")]
    pub storage_opt: Vec<String>,
    /// A label on the container, over the image's (`ps --filter label=`).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    #[command(flatten)]
    pub security: SecurityFlags,
}

impl RunFlags {
    /// The `HostConfig` part, parsed.
    fn host_config(&self) -> Result<HostConfig, strata_store::Error> {
        use strata_run::host;
        for t in &self.tmpfs {
            host::check_tmpfs(t)?;
        }
        if self.init {
            host::init_program()?;
        }
        Ok(HostConfig {
            read_only_rootfs: self.read_only,
            tmpfs: self.tmpfs.clone(),
            memory: self.memory.as_deref().map(host::parse_memory).transpose()?,
            nano_cpus: self.cpus.as_deref().map(host::parse_cpus).transpose()?,
            pids_limit: self
                .pids_limit
                .as_deref()
                .map(host::parse_pids_limit)
                .transpose()?
                .flatten(),
            init: self.init,
            storage_opt: storage_opts(&self.storage_opt)?,
            // Filled by `create` from the `-v` specs.
            binds: Vec::new(),
        })
    }
}

/// Capabilities, seccomp and --privileged (`create` and `run`).
#[derive(Args)]
pub struct SecurityFlags {
    /// DANGEROUS: give the container every capability and every host
    /// device, no seccomp filter, no masked /proc paths and a writable
    /// /sys: root in it is root on the host.
    #[arg(long)]
    pub privileged: bool,
    /// Add a capability (SYS_ADMIN, CAP_NET_ADMIN, ..., or ALL).
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (or ALL; drops apply before --cap-add).
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// seccomp=unconfined (no filter), seccomp=FILE (a profile in
    /// Docker's JSON format), or no-new-privileges[=true|false].
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
}

impl SecurityFlags {
    fn flags(self) -> strata_run::security::Flags {
        strata_run::security::Flags {
            privileged: self.privileged,
            cap_add: self.cap_add,
            cap_drop: self.cap_drop,
            security_opt: self.security_opt,
        }
    }
}

/// `--storage-opt KEY=VALUE` flags as a map, each checked by the store.
fn storage_opts(
    flags: &[String],
) -> Result<std::collections::BTreeMap<String, String>, strata_store::Error> {
    let mut out = std::collections::BTreeMap::new();
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            return Err(strata_store::Error::new(
                strata_store::ErrorKind::InvalidArgument,
                format!("invalid storage option {f:?}: KEY=VALUE, as size=10G"),
            ));
        };
        out.insert(k.trim().to_owned(), v.to_owned());
    }
    strata_store::storage_size(&out)?;
    Ok(out)
}

impl Create {
    /// What to create from the flags; reads a seccomp profile file.
    pub fn spec(self) -> Result<(String, ContainerSpec), strata_store::Error> {
        let host_config = self.run.host_config()?;
        let r = self.run;
        let security = strata_run::security::from_flags(&r.security.flags())?;
        let spec = ContainerSpec {
            name: self.name,
            cmd: self.cmd,
            entrypoint: self.entrypoint,
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
                host_config,
                security,
                publish: r.publish,
                labels: r
                    .label
                    .iter()
                    .map(|l| strata_store::parse_label(l))
                    .collect::<Result<_, _>>()?,
            },
        };
        Ok((self.image, spec))
    }
}

pub fn create(a: Create, store: &Store, out: &mut Out) -> Result<()> {
    let (image, spec) = a.spec()?;
    let c = store.create_container(&image, &spec)?;
    // By the ID the name resolved to: the tags are not read again.
    super::warn_platform(store, c.image.as_str());
    writeln!(out, "{}", c.id);
    Ok(())
}

#[derive(Args)]
pub struct Run {
    /// Remove the container and its anonymous volumes when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background (a strata process of its own keeps it,
    /// output in its log: `strata logs`); prints the container's ID.
    #[arg(short, long)]
    pub detach: bool,
    /// The OCI runtime: a name on PATH or a path (default: crun, then runc).
    #[arg(long)]
    pub runtime: Option<String>,
    #[command(flatten)]
    pub create: Create,
}

/// `strata run`: the command's exit status, or why there is none.
pub fn run(
    a: Run,
    store: &Store,
    args: &StoreArgs,
    out: &mut Out,
) -> Result<i32, strata_run::Failure> {
    let (image, spec) = a.create.spec()?;
    super::warn_platform(store, &image);
    if a.detach {
        let c = store.create_container(&image, &spec)?;
        let again = super::lifecycle::keeper(store, args, &c.id, a.runtime.as_deref(), a.rm)?;
        let started = strata_run::start_detached(store, &c.id, again);
        if started.is_err() && a.rm {
            let _ = store.remove_container_with(&c, false, true);
        }
        started?;
        writeln!(out, "{}", c.id);
        return Ok(0);
    }
    let opts = strata_run::Options {
        runtime: a.runtime,
        remove: a.rm,
        log: false,
    };
    strata_run::run(store, &image, &spec, &opts)
}

#[derive(Args)]
pub struct Start {
    /// Attach: run in the foreground, with the command's exit status.
    /// Without it, a strata process of its own runs the container in the
    /// background (output in its log: `strata logs`) and the container's
    /// name is printed once it runs.
    #[arg(short, long)]
    pub attach: bool,
    /// The OCI runtime: a name on PATH or a path (default: crun, then runc).
    #[arg(long)]
    pub runtime: Option<String>,
    /// Remove the container when it exits (what `run -d --rm` leaves to
    /// the process that keeps the container).
    #[arg(long, hide = true)]
    pub rm: bool,
    pub container: String,
}

pub fn start(
    a: Start,
    store: &Store,
    args: &StoreArgs,
    out: &mut Out,
) -> Result<i32, strata_run::Failure> {
    // The strata process that keeps a background container: its output
    // goes to the container's log.
    let keeping = std::env::var_os(strata_run::DETACHED_ENV).is_some();
    let opts = strata_run::Options {
        runtime: a.runtime.clone(),
        remove: a.rm,
        log: keeping,
    };
    if a.attach || keeping {
        return strata_run::start(store, &a.container, &opts);
    }
    let c = store.resolve_container(&a.container)?;
    let again = super::lifecycle::keeper(store, args, &c.id, a.runtime.as_deref(), a.rm)?;
    let c = strata_run::start_detached(store, &c.id, again)?;
    writeln!(out, "{}", c.name);
    Ok(0)
}

/// `strata mount`. Without root the mount is made in the store's
/// namespace, which the caller is outside of unless it runs in `strata
/// unshare` (Podman's rule for `podman mount`): said on stderr.
pub fn mount(name: &str, args: &super::StoreArgs, out: &mut Out) -> Result<()> {
    let ns = args.enter_namespace()?;
    let store = args.open()?;
    let c = store.resolve_container(name)?;
    writeln!(out, "{}", store.mount(&c)?.display());
    if let strata_run::userns::Namespace::Rootless { joined: true, .. } = ns {
        eprintln!(
            "strata: the mount is in the store's user namespace: see it with `strata unshare`"
        );
    }
    Ok(())
}

/// `strata umount`: a container's root file system, or a union mount by
/// its path (which needs no store: `open` is not called then).
pub fn umount(target: &str, open: impl FnOnce() -> Result<Store>) -> Result<()> {
    if super::union::is_union_arg(target) {
        return super::union::unmount(target.as_ref());
    }
    let store = open()?;
    let c = store.resolve_container(target)?;
    store.unmount(&c)?;
    Ok(())
}

#[derive(Args)]
pub struct Ps {
    /// All containers (without -a: the running ones).
    #[arg(short, long)]
    pub all: bool,
    #[command(flatten)]
    pub list: ListFlags,
    /// Only containers that match: status=STATUS (created, running,
    /// exited, ...; lists stopped ones without -a), name=NAME,
    /// ancestor=IMAGE (and images made from it), label=KEY[=VALUE].
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// Docker's `ps` table.
const PS: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

pub fn ps(a: Ps, store: &Store, out: &mut Out) -> Result<()> {
    let filters = Filters::parse(Listing::Containers, &a.filter)?;
    let template = a.list.template(PS, "ID")?;
    let (shown, bad) = store.filtered_containers(a.all, &filters)?;
    super::warn_unreadable(&bad, "not listed");
    if a.list.json() {
        let driver = store.driver().name();
        let v: Vec<_> = shown
            .into_iter()
            .map(|(c, s)| view::Container::new(&c, driver, s))
            .collect();
        return Ok(out.json(&v)?);
    }
    let images = store.container_image_names(
        &shown.iter().map(|(c, _)| c).collect::<Vec<_>>(),
        a.list.trunc(),
    )?;
    let now = std::time::SystemTime::now();
    let rows: Vec<ContainerRow> = (shown.iter().zip(images))
        .map(|((c, s), image)| ContainerRow::new(c, s, image, a.list.trunc(), now))
        .collect();
    template.print(&rows, ContainerRow::HEADERS, out)
}

/// `c` as `inspect` shows it.
pub fn view(c: &strata_store::Container, store: &Store) -> Result<view::Container> {
    Ok(store.container_view(c)?)
}

pub fn diff(name: &str, store: &Store, out: &mut Out) -> Result<()> {
    let c = store.resolve_container(name)?;
    let mut w = BufWriter::new(out.raw());
    for ch in store.container_changes(&c)? {
        writeln!(w, "{ch}")?;
    }
    w.flush()?;
    Ok(())
}

/// `--pause`: freeze a running container while its files are read
/// (Docker's `commit --pause`, on by default; `--pause=false` reads it
/// running).
#[derive(Args)]
pub struct PauseFlag {
    /// Pause a running container while it is read (true or false).
    #[arg(
        short = 'p',
        long = "pause",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub pause: bool,
}

impl PauseFlag {
    fn freeze(&self, store: &Store, c: &strata_store::Container) -> Result<strata_run::Paused> {
        Ok(if self.pause {
            strata_run::pause(store, c)?
        } else {
            strata_run::Paused::none()
        })
    }
}

#[derive(Args)]
pub struct Commit {
    pub container: String,
    pub reference: Option<String>,
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Make an image of one layer: the container's whole root file
    /// system (as Podman's `commit --squash`).
    #[arg(long)]
    pub squash: bool,
    #[command(flatten)]
    pub pause: PauseFlag,
}

pub fn commit(a: Commit, store: &Store, out: &mut Out) -> Result<()> {
    let c = store.resolve_container(&a.container)?;
    let paused = a.pause.freeze(store, &c)?;
    let pb = crate::progress::bar(&format!("committing {}", c.name), None);
    let id = if a.squash {
        store.commit_squashed(&c, a.reference.as_deref(), &a.message)
    } else {
        store.commit(&c, a.reference.as_deref(), &a.message)
    };
    pb.finish_and_clear();
    drop(paused);
    let id = id?;
    super::warn_depth(store, &id);
    writeln!(out, "{id}");
    Ok(())
}

#[derive(Args)]
pub struct Export {
    /// The tar to write; standard output when absent (not a terminal).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    pub container: String,
    #[command(flatten)]
    pub pause: PauseFlag,
}

pub fn export(a: Export, store: &Store) -> Result<()> {
    let c = store.resolve_container(&a.container)?;
    let file: Box<dyn Write> = match &a.output {
        Some(p) if p.as_os_str() != "-" => {
            Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        _ => Box::new(super::transfer::archive_stdout()?),
    };
    let _paused = a.pause.freeze(store, &c)?;
    let pb = crate::progress::bar(&format!("exporting {}", c.name), None);
    let mut out = BufWriter::with_capacity(1 << 20, crate::progress::writer(&pb, file));
    let result = store
        .export(&c, &mut out)
        .map_err(anyhow::Error::from)
        .and_then(|_| out.flush().map_err(anyhow::Error::from));
    pb.finish_and_clear();
    result
}

#[derive(Args)]
pub struct Rm {
    #[arg(short, long)]
    pub force: bool,
    /// Also remove the containers' anonymous volumes no other
    /// container uses.
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn rm(a: Rm, store: &Store, out: &mut Out) -> Result<()> {
    let (force, volumes) = (a.force, a.volumes);
    super::each_container(&a.containers, store, out, |c| {
        if force {
            strata_run::kill(store, c, std::time::Duration::from_secs(10))?;
        }
        Ok(store.remove_container_with(c, force, volumes)?)
    })
}

/// `container prune`: prints what went, as Docker does.
pub fn prune(store: &Store, out: &mut Out) -> Result<()> {
    let (removed, reclaimed) = store.prune_containers()?;
    if !removed.is_empty() {
        writeln!(out, "Deleted Containers:");
        for id in &removed {
            writeln!(out, "{id}");
        }
        writeln!(out);
    }
    writeln!(out, "Total reclaimed space: {}", super::human(reclaimed));
    Ok(())
}
