//! `strata`: parse, call the library, print. Nothing else lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod output;
mod progress;
mod template;

use commands::{
    archive, check, container, cp, image, lifecycle, registry, system, transfer, union, volume,
};
use commands::{Format, StoreArgs};
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
    Load(transfer::Load),
    /// Save images as a docker-archive, an OCI archive or an OCI layout
    /// (to standard output without -o).
    Save(transfer::Save),
    /// Pull an image from a registry.
    Pull(registry::Pull),
    /// Push an image to a registry; prints its manifest digest.
    Push(registry::Push),
    /// Check credentials for a registry and keep them.
    Login(registry::Login),
    /// Forget a registry's credentials.
    Logout(registry::Logout),
    /// Import a root file-system tarball as a one-layer image; prints its ID.
    Import(image::Import),
    /// List images.
    Images(image::Images),
    /// Image subcommands.
    #[command(subcommand)]
    Image(ImageCmd),
    /// An image's history (as `image history`).
    History(image::History),
    /// Container subcommands (`container ls` is `ps`, ...).
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove images (untag, then delete what nothing uses).
    Rmi(image::Rmi),
    /// List layers.
    Layers(image::Layers),
    /// Copy an image as one layer (its whole root file system, same
    /// config): for images deeper than Docker's and Podman's 125 layers.
    Flatten(image::Flatten),
    /// Create a container; prints its ID.
    Create(container::Create),
    /// Create a container and run its command (through crun or runc).
    Run(container::Run),
    /// Run a created container's command again, in the foreground.
    Start(container::Start),
    /// Stop running containers: SIGTERM, then SIGKILL after -t seconds.
    Stop(lifecycle::Stop),
    /// Send a signal to running containers (default KILL).
    Kill(lifecycle::Kill),
    /// Wait for containers to stop; prints each one's exit code.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop containers, then start them again in the background.
    Restart(lifecycle::Restart),
    /// Run a command in a running container; exits with its status.
    Exec(lifecycle::Exec),
    /// A background container's output (its json-file log).
    Logs(lifecycle::Logs),
    /// Mount a container's root file system; prints the path.
    Mount { container: String },
    /// Unmount a container's root file system (or a union-mount by path).
    Umount { container: String },
    /// List containers.
    Ps(container::Ps),
    /// Changes in a container: A, C or D and the path.
    Diff { container: String },
    /// Make an image of a container's changes; prints its ID.
    Commit(container::Commit),
    /// Write a container's root file system as a tar (to standard output
    /// without -o).
    Export(container::Export),
    /// Copy files between a container and the host.
    Cp(cp::Cp),
    /// Remove containers.
    Rm(container::Rm),
    /// Volume subcommands.
    #[command(subcommand)]
    Volume(volume::Cmd),
    /// Containers, images or volumes as JSON.
    Inspect(system::Inspect),
    /// The store, its driver and what it holds.
    Info {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Disk usage (df) and clean-up (prune).
    #[command(subcommand)]
    System(system::Cmd),
    /// Report what in the store does not add up; --repair fixes what it can.
    Check(check::Check),
    /// Run a command in the store's user namespace (without root: as
    /// root of it, where the store's files have the owners the images
    /// give them and its mounts are seen); `--stop` ends the namespace.
    Unshare(system::Unshare),
    /// Layer changesets: apply a layer tar, diff a directory, list changes.
    #[command(subcommand)]
    Archive(archive::Args),
    /// Mount a union of directories (strata's FUSE union file system).
    UnionMount(union::UnionMount),
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
        Command::Load(a) => transfer::load(a, &store()?, out),
        Command::Save(a) => transfer::save(a, &store()?),
        Command::Pull(a) => registry::pull(a, &store()?, out),
        Command::Push(a) => registry::push(a, &store()?, out),
        Command::Login(a) => registry::login(a, out),
        Command::Logout(a) => registry::logout(a, out),
        Command::Import(a) => image::import(a, &store()?, out),
        Command::Images(a) | Command::Image(ImageCmd::Ls(a)) => image::images(a, &reader()?, out),
        Command::Image(ImageCmd::Inspect { image }) => image::inspect(&image, &reader()?, out),
        Command::Image(ImageCmd::History(a)) | Command::History(a) => {
            image::history(a, &reader()?, out)
        }
        Command::Image(ImageCmd::Prune { all, force }) => {
            let a = system::Prune {
                all,
                volumes: false,
                force,
            };
            system::prune(a, &store()?, out)
        }
        Command::Tag { source, target } => image::tag(&source, &target, &store()?),
        Command::Rmi(a) | Command::Image(ImageCmd::Rm(a)) => image::rmi(a, &store()?, out),
        Command::Layers(a) => image::layers(a, &reader()?, out),
        Command::Flatten(a) => image::flatten(a, &store()?, out),
        Command::Create(a) => container::create(a, &store()?, out),
        Command::Run(a) => return Ok(exit_status(container::run(a, &store()?, &args, out))),
        Command::Start(a) => return Ok(exit_status(container::start(a, &store()?, &args, out))),
        Command::Stop(a) => lifecycle::stop(a, &store()?, out),
        Command::Kill(a) => lifecycle::kill(a, &store()?, out),
        Command::Wait { containers } => lifecycle::wait(&containers, &store()?, out),
        Command::Restart(a) => lifecycle::restart(a, &store()?, &args, out),
        Command::Exec(a) => return Ok(exit_status(lifecycle::exec(a, &store()?))),
        Command::Logs(a) => lifecycle::logs(a, &store()?, out),
        Command::Mount { container } => container::mount(&container, &args, out),
        Command::Umount { container } => container::umount(&container, store),
        Command::Ps(a) | Command::Container(ContainerCmd::Ls(a)) => {
            container::ps(a, &reader()?, out)
        }
        Command::Container(ContainerCmd::Prune { force: _ }) => container::prune(&store()?, out),
        Command::Diff { container } => container::diff(&container, &store()?, out),
        Command::Commit(a) => container::commit(a, &store()?, out),
        Command::Export(a) => container::export(a, &store()?),
        Command::Cp(a) => cp::run(a, &store()?),
        Command::Rm(a) | Command::Container(ContainerCmd::Rm(a)) => {
            container::rm(a, &store()?, out)
        }
        Command::Volume(cmd) if cmd.reads_only() => volume::run(cmd, &reader()?, out),
        Command::Volume(cmd) => volume::run(cmd, &store()?, out),
        Command::Inspect(a) | Command::Container(ContainerCmd::Inspect(a)) => {
            system::inspect(&a.names, &reader()?, out)
        }
        Command::Info { format } => system::info(format, &reader()?, out),
        Command::System(cmd) => system::run(cmd, &args, out),
        Command::Check(a) if a.repair => check::run(a, &store()?, out),
        Command::Check(a) => check::run(a, &reader()?, out),
        Command::Unshare(a) => return system::unshare(a, &args, out),
        Command::Archive(a) => archive::run(a, out),
        Command::UnionMount(a) => union::union_mount(a),
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log_level))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
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
