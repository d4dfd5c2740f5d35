//! `strata`: parse, call the library, print. Nothing else lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` for what a command prints. Output that cannot be written
/// never stops the work: a reader that went away (`strata images | head
/// -1`) gets no more and the command finishes with its own status, as
/// if all had been read; any other write error is reported once and
/// makes the status a failure. Neither panics.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if crate::stdout_ok() {
            if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
                crate::stdout_failed(e);
            }
        }
    }};
}

/// What became of standard output: 0 fine, 1 its reader went away, 2 a
/// write failed otherwise.
static STDOUT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

fn stdout_ok() -> bool {
    STDOUT.load(std::sync::atomic::Ordering::Relaxed) == 0
}

fn stdout_failed(e: std::io::Error) {
    let state = if e.kind() == std::io::ErrorKind::BrokenPipe {
        1
    } else {
        eprintln!("strata: error: writing to standard output: {e}");
        2
    };
    STDOUT.store(state, std::sync::atomic::Ordering::Relaxed);
}

mod commands;
mod progress;

use commands::{container, image, system, Format, StoreArgs};

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
    /// Load images from a docker-archive or an OCI layout (dir or tar).
    Load(commands::transfer::Load),
    /// Save images as a docker-archive, an OCI archive or an OCI layout.
    Save(commands::transfer::Save),
    /// Pull an image from a registry.
    Pull(commands::registry::Pull),
    /// Push an image to a registry; prints its manifest digest.
    Push(commands::registry::Push),
    /// Check credentials for a registry and keep them.
    Login(commands::registry::Login),
    /// Forget a registry's credentials.
    Logout(commands::registry::Logout),
    /// Import a root file-system tarball as a one-layer image; prints its ID.
    Import(image::Import),
    /// List images.
    Images(image::Images),
    /// Image subcommands.
    #[command(subcommand)]
    Image(ImageCmd),
    /// An image's history (as `image history`).
    History { image: String },
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove images (untag, then delete what nothing uses).
    Rmi {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List layers.
    Layers(image::Layers),
    /// Create a container; prints its ID.
    Create(container::Create),
    /// Create a container and run its command (through crun or runc).
    Run(container::Run),
    /// Run a created container's command again, in the foreground.
    Start(container::Start),
    /// Stop running containers: SIGTERM, then SIGKILL after -t seconds.
    Stop(commands::lifecycle::Stop),
    /// Send a signal to running containers (default KILL).
    Kill(commands::lifecycle::Kill),
    /// Wait for containers to stop; prints each one's exit code.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop containers, then start them again in the background.
    Restart(commands::lifecycle::Restart),
    /// Run a command in a running container; exits with its status.
    Exec(commands::lifecycle::Exec),
    /// A background container's output (its json-file log).
    Logs(commands::lifecycle::Logs),
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
    /// Write a container's root file system as a tar.
    Export(container::Export),
    /// Copy files between a container and the host.
    Cp(commands::cp::Cp),
    /// Remove containers.
    Rm {
        #[arg(short, long)]
        force: bool,
        /// Also remove the containers' anonymous volumes no other
        /// container uses.
        #[arg(short, long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Volume subcommands.
    #[command(subcommand)]
    Volume(commands::volume::Cmd),
    /// Containers, images or volumes as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// The store, its driver and what it holds.
    Info {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Disk usage (df) and clean-up (prune).
    #[command(subcommand)]
    System(system::Cmd),
    /// Report what in the store does not add up; --repair fixes what it can.
    Check(commands::check::Check),
    /// Layer changesets: apply a layer tar, diff a directory, list changes.
    #[command(subcommand)]
    Archive(commands::archive::Args),
    /// Mount a union of directories (strata's FUSE union file system).
    UnionMount(commands::union::UnionMount),
}

#[derive(Subcommand)]
enum ImageCmd {
    /// An image as JSON.
    Inspect { image: String },
    /// An image's history.
    History { image: String },
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Archive(args) = cli.command {
        return commands::archive::run(args).map(|()| ExitCode::SUCCESS);
    }
    // Unions need no store.
    match cli.command {
        Command::UnionMount(a) => {
            return commands::union::union_mount(a).map(|()| ExitCode::SUCCESS)
        }
        Command::Umount { ref container } if commands::union::is_union_arg(container) => {
            return commands::union::unmount(container.as_ref()).map(|()| ExitCode::SUCCESS);
        }
        _ => {}
    }
    // Credentials need no store either.
    match cli.command {
        Command::Login(a) => return commands::registry::login(a).map(|()| ExitCode::SUCCESS),
        Command::Logout(a) => return commands::registry::logout(a).map(|()| ExitCode::SUCCESS),
        _ => {}
    }
    let store = cli.store.open()?;
    // `run` and `start` exit with the command's status, or 125-127 as
    // `docker run` does.
    let status = |r: Result<i32, strata_run::Failure>| match r {
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(255))),
        Err(f) => {
            eprintln!("strata: error: {:#}", anyhow::Error::from(f.error));
            Ok(ExitCode::from(u8::try_from(f.code).unwrap_or(255)))
        }
    };
    match cli.command {
        Command::Run(a) => return status(container::run(a, &store, &cli.store)),
        Command::Start(a) => return status(container::start(a, &store, &cli.store)),
        Command::Exec(a) => return status(commands::lifecycle::exec(a, &store)),
        _ => {}
    }
    match cli.command {
        Command::Load(a) => commands::transfer::load(a, &store),
        Command::Save(a) => commands::transfer::save(a, &store),
        Command::Pull(a) => commands::registry::pull(a, &store),
        Command::Push(a) => commands::registry::push(a, &store),
        Command::Import(a) => image::import(a, &store),
        Command::Images(a) => image::images(a, &store),
        Command::Image(ImageCmd::Inspect { image }) => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&[image::inspect_image(&image, &store)?])?
            );
            Ok(())
        }
        Command::Image(ImageCmd::History { image }) | Command::History { image } => {
            image::history(&image, &store)
        }
        Command::Tag { source, target } => image::tag(&source, &target, &store),
        Command::Rmi { force, images } => image::rmi(&images, force, &store),
        Command::Layers(a) => image::layers(a, &store),
        Command::Create(a) => container::create(a, &store),
        Command::Stop(a) => commands::lifecycle::stop(a, &store),
        Command::Kill(a) => commands::lifecycle::kill(a, &store),
        Command::Wait { containers } => commands::lifecycle::wait(&containers, &store),
        Command::Restart(a) => commands::lifecycle::restart(a, &store, &cli.store),
        Command::Logs(a) => commands::lifecycle::logs(a, &store),
        Command::Mount { container } => container::mount(&container, &store),
        Command::Umount { container } => container::umount(&container, &store),
        Command::Ps(a) => container::ps(a, &store),
        Command::Diff { container } => container::diff(&container, &store),
        Command::Commit(a) => container::commit(a, &store),
        Command::Export(a) => container::export(a, &store),
        Command::Cp(a) => commands::cp::run(a, &store),
        Command::Rm {
            force,
            volumes,
            containers,
        } => container::rm(&containers, force, volumes, &store),
        Command::Volume(cmd) => commands::volume::run(cmd, &store),
        Command::Inspect { names } => system::inspect(&names, &store),
        Command::Info { format } => system::info(format, &store),
        Command::System(cmd) => system::run(cmd, &store),
        Command::Check(a) => commands::check::run(a, &store),
        Command::Archive(_)
        | Command::Login(_)
        | Command::Logout(_)
        | Command::Run(_)
        | Command::Start(_)
        | Command::Exec(_)
        | Command::UnionMount(_) => {
            unreachable!("handled above")
        }
    }
    .map(|()| ExitCode::SUCCESS)
}

fn main() -> ExitCode {
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
    match run(cli) {
        Ok(_) if STDOUT.load(std::sync::atomic::Ordering::Relaxed) == 2 => ExitCode::FAILURE,
        Ok(code) => code,
        Err(err) => {
            eprintln!("strata: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
