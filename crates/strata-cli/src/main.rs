//! `strata`: parse, call the library, print. Nothing else lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod lazy;
mod output;
mod progress;
mod template;

use commands::{
    archive, check, container, cp, image, lifecycle, registry, system, transfer, union, volume,
};
use commands::{Format, StoreArgs};
use lazy::Lazy;
use output::Out;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "A daemonless container storage engine"
)]
struct Cli {
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load images from a docker-archive, an OCI layout (dir or tar) or a
    /// skopeo dir: layout.
    Load(Lazy<transfer::Load>),
    /// Save images as a docker-archive, an OCI archive or an OCI layout
    /// (to standard output without -o).
    Save(Lazy<transfer::Save>),
    /// Pull an image from a registry.
    Pull(Lazy<registry::Pull>),
    /// Push an image to a registry; prints its manifest digest.
    Push(Lazy<registry::Push>),
    /// Check credentials for a registry and keep them.
    Login(Lazy<registry::Login>),
    /// Forget a registry's credentials.
    Logout(Lazy<registry::Logout>),
    /// Import a root file-system tarball as a one-layer image; prints its ID.
    Import(Lazy<image::Import>),
    /// List images.
    Images(Lazy<image::Images>),
    /// Image subcommands.
    #[command(subcommand)]
    Image(Lazy<ImageCmd>),
    /// An image's history (as `image history`).
    History(Lazy<image::History>),
    /// Container subcommands (`container ls` is `ps`, ...).
    #[command(subcommand)]
    Container(Lazy<ContainerCmd>),
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove images (untag, then delete what nothing uses).
    Rmi(Lazy<image::Rmi>),
    /// List layers.
    Layers(Lazy<image::Layers>),
    /// Copy an image as one layer (its whole root file system, same
    /// config): for images deeper than Docker's and Podman's 125 layers.
    Flatten(Lazy<image::Flatten>),
    /// Create a container; prints its ID.
    Create(Lazy<container::Create>),
    /// Create a container and run its command (through crun or runc).
    Run(Lazy<container::Run>),
    /// Run a created container's command again, in the foreground.
    Start(Lazy<container::Start>),
    /// Stop running containers: SIGTERM, then SIGKILL after -t seconds.
    Stop(Lazy<lifecycle::Stop>),
    /// Send a signal to running containers (default KILL).
    Kill(Lazy<lifecycle::Kill>),
    /// Wait for containers to stop; prints each one's exit code.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop containers, then start them again in the background.
    Restart(Lazy<lifecycle::Restart>),
    /// Run a command in a running container; exits with its status.
    Exec(Lazy<lifecycle::Exec>),
    /// A background container's output (its json-file log).
    Logs(Lazy<lifecycle::Logs>),
    /// Mount a container's root file system; prints the path.
    Mount { container: String },
    /// Unmount a container's root file system (or a union-mount by path).
    Umount { container: String },
    /// List containers.
    Ps(Lazy<container::Ps>),
    /// Changes in a container: A, C or D and the path.
    Diff { container: String },
    /// Make an image of a container's changes; prints its ID.
    Commit(Lazy<container::Commit>),
    /// Write a container's root file system as a tar (to standard output
    /// without -o).
    Export(Lazy<container::Export>),
    /// Copy files between a container and the host.
    Cp(Lazy<cp::Cp>),
    /// Remove containers.
    Rm(Lazy<container::Rm>),
    /// Volume subcommands.
    #[command(subcommand)]
    Volume(Lazy<volume::Cmd>),
    /// Containers, images or volumes as JSON.
    Inspect(Lazy<system::Inspect>),
    /// The store, its driver and what it holds.
    Info {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Disk usage (df) and clean-up (prune).
    #[command(subcommand)]
    System(Lazy<system::Cmd>),
    /// Report what in the store does not add up; --repair fixes what it can.
    Check(Lazy<check::Check>),
    /// Run a command in the store's user namespace (without root: as
    /// root of it, where the store's files have the owners the images
    /// give them and its mounts are seen); `--stop` ends the namespace.
    Unshare(Lazy<system::Unshare>),
    /// Layer changesets: apply a layer tar, diff a directory, list changes.
    #[command(subcommand)]
    Archive(Lazy<archive::Args>),
    /// Mount a union of directories (strata's FUSE union file system).
    UnionMount(Lazy<union::UnionMount>),
}

#[derive(Subcommand)]
enum ImageCmd {
    /// List images (as `images`).
    #[command(alias = "list")]
    Ls(image::Images),
    /// An image as JSON.
    Inspect { image: String },
    /// An image's history.
    History(image::History),
    /// Remove images (as `rmi`).
    #[command(alias = "remove")]
    Rm(image::Rmi),
    /// Remove dangling images (-a: every image no container uses), as
    /// `system prune` without --volumes.
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Accepted for Docker's sake: strata never asks.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ContainerCmd {
    /// List containers (as `ps`).
    #[command(alias = "list", alias = "ps")]
    Ls(container::Ps),
    /// Remove containers (as `rm`).
    #[command(alias = "remove")]
    Rm(container::Rm),
    /// Containers as JSON.
    Inspect(system::Inspect),
    /// Remove every container that is not running.
    Prune {
        /// Accepted for Docker's sake: strata never asks.
        #[arg(short, long)]
        force: bool,
    },
}

/// Runs the command; `run`, `start` and `exec` exit with the status of
/// what they ran.
fn run(cli: Cli, out: &mut Out) -> anyhow::Result<ExitCode> {
    let args = cli.store;
    // Opened by the commands that use a store (`archive`, `union-mount`
    // and the umount of a union need none).
    let store = || args.open();
    // The commands that only read: they open the store without changing
    // anything on disk (a copy of Docker's data root stays as it was).
    let reader = || args.open_read_only();
    match cli.command {
        Command::Load(Lazy(a)) => transfer::load(a, &store()?, out),
        Command::Save(Lazy(a)) => transfer::save(a, &store()?),
        Command::Pull(Lazy(a)) => registry::pull(a, &store()?, out),
        Command::Push(Lazy(a)) => registry::push(a, &store()?, out),
        Command::Login(Lazy(a)) => registry::login(a, out),
        Command::Logout(Lazy(a)) => registry::logout(a, out),
        Command::Import(Lazy(a)) => image::import(a, &store()?, out),
        Command::Images(Lazy(a)) | Command::Image(Lazy(ImageCmd::Ls(a))) => {
            image::images(a, &reader()?, out)
        }
        Command::Image(Lazy(ImageCmd::Inspect { image })) => {
            image::inspect(&image, &reader()?, out)
        }
        Command::Image(Lazy(ImageCmd::History(a))) | Command::History(Lazy(a)) => {
            image::history(a, &reader()?, out)
        }
        Command::Image(Lazy(ImageCmd::Prune { all, force })) => {
            let a = system::Prune {
                all,
                volumes: false,
                force,
            };
            system::prune(a, &store()?, out)
        }
        Command::Tag { source, target } => image::tag(&source, &target, &store()?),
        Command::Rmi(Lazy(a)) | Command::Image(Lazy(ImageCmd::Rm(a))) => {
            image::rmi(a, &store()?, out)
        }
        Command::Layers(Lazy(a)) => image::layers(a, &reader()?, out),
        Command::Flatten(Lazy(a)) => image::flatten(a, &store()?, out),
        Command::Create(Lazy(a)) => container::create(a, &store()?, out),
        Command::Run(Lazy(a)) => return Ok(exit_status(container::run(a, &store()?, &args, out))),
        Command::Start(Lazy(a)) => {
            return Ok(exit_status(container::start(a, &store()?, &args, out)))
        }
        Command::Stop(Lazy(a)) => lifecycle::stop(a, &store()?, out),
        Command::Kill(Lazy(a)) => lifecycle::kill(a, &store()?, out),
        Command::Wait { containers } => lifecycle::wait(&containers, &store()?, out),
        Command::Restart(Lazy(a)) => lifecycle::restart(a, &store()?, &args, out),
        Command::Exec(Lazy(a)) => return Ok(exit_status(lifecycle::exec(a, &store()?))),
        Command::Logs(Lazy(a)) => lifecycle::logs(a, &store()?, out),
        Command::Mount { container } => container::mount(&container, &args, out),
        Command::Umount { container } => container::umount(&container, store),
        Command::Ps(Lazy(a)) | Command::Container(Lazy(ContainerCmd::Ls(a))) => {
            container::ps(a, &reader()?, out)
        }
        Command::Container(Lazy(ContainerCmd::Prune { force: _ })) => {
            container::prune(&store()?, out)
        }
        Command::Diff { container } => container::diff(&container, &store()?, out),
        Command::Commit(Lazy(a)) => container::commit(a, &store()?, out),
        Command::Export(Lazy(a)) => container::export(a, &store()?),
        Command::Cp(Lazy(a)) => cp::run(a, &store()?),
        Command::Rm(Lazy(a)) | Command::Container(Lazy(ContainerCmd::Rm(a))) => {
            container::rm(a, &store()?, out)
        }
        Command::Volume(Lazy(cmd)) if cmd.reads_only() => volume::run(cmd, &reader()?, out),
        Command::Volume(Lazy(cmd)) => volume::run(cmd, &store()?, out),
        Command::Inspect(Lazy(a)) | Command::Container(Lazy(ContainerCmd::Inspect(a))) => {
            system::inspect(&a.names, &reader()?, out)
        }
        Command::Info { format } => system::info(format, &reader()?, out),
        Command::System(Lazy(cmd)) => system::run(cmd, &args, out),
        Command::Check(Lazy(a)) if a.repair => check::run(a, &store()?, out),
        Command::Check(Lazy(a)) => check::run(a, &reader()?, out),
        Command::Unshare(Lazy(a)) => return system::unshare(a, &args, out),
        Command::Archive(Lazy(a)) => archive::run(a, out),
        Command::UnionMount(Lazy(a)) => union::union_mount(a),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// The status of what `run`, `start` or `exec` ran, or 125-127 as
/// `docker run` says why nothing ran.
fn exit_status(r: Result<i32, strata_run::Failure>) -> ExitCode {
    match r {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(f) => {
            eprintln!("strata: error: {:#}", anyhow::Error::from(f.error));
            ExitCode::from(u8::try_from(f.code).unwrap_or(255))
        }
    }
}

fn main() -> ExitCode {
    // The process that holds a rootless store's namespaces.
    if strata_run::userns::is_keeper() {
        strata_run::userns::keep();
    }
    // Usage errors exit 125, as Docker's CLI does (2 is a status commands
    // commonly return, so `run` must not use it for its own).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(125);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time();
    // A plain level needs no filter of directives (whose setup is a
    // good part of a short command's start); anything else is one.
    match cli
        .log_level
        .parse::<tracing_subscriber::filter::LevelFilter>()
    {
        Ok(level) => logs.with_max_level(level).init(),
        Err(_) => logs
            .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log_level))
            .init(),
    }
    let mut out = Out::stdout();
    match run(cli, &mut out) {
        Ok(_) if out.failed() => ExitCode::FAILURE,
        Ok(code) => code,
        Err(err) => {
            eprintln!("strata: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
