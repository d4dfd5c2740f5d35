//! `strata pull`, `push`, `login` and `logout`.

use std::collections::HashMap;
use std::io::{self, BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use strata_store::registry::{
    self, api_host, AuthFile, Client, Credentials, Endpoint, Options, RegistriesConf,
};
use strata_store::{
    Digest, ImageRef, LayerCompression, LayerStatus, NoProgress, Progress, PullOptions,
    PushOptions, Store,
};

use crate::output::Out;

/// How to reach a registry.
#[derive(Args)]
pub struct Transport {
    /// `false`: treat this registry as insecure, as Podman does: TLS
    /// without verifying its certificate, or plain HTTP when it does not
    /// speak TLS.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// The credential file (default: $REGISTRY_AUTH_FILE, Podman's
    /// auth.json, then Docker's config.json).
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// Podman's registries.conf: insecure and blocked registries, and
    /// mirrors (default: $CONTAINERS_REGISTRIES_CONF, else
    /// /etc/containers/registries.conf when it exists).
    #[arg(long)]
    pub registries_conf: Option<PathBuf>,
}

#[derive(Args)]
pub struct Pull {
    /// `[registry[:port]/]name[:tag][@digest]`; `debian` is
    /// docker.io/library/debian:latest.
    pub reference: String,
    /// The platform to pull from a multi-platform image:
    /// OS/ARCH[/VARIANT] (default: this machine's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image ID.
    #[arg(short, long)]
    pub quiet: bool,
    /// Every tag of the repository (the reference names no tag).
    #[arg(short, long)]
    pub all_tags: bool,
    /// Layers downloaded at once.
    #[arg(long, default_value_t = strata_store::MAX_CONCURRENT_DOWNLOADS as u16,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_downloads: u16,
    #[command(flatten)]
    pub transport: Transport,
}

#[derive(Args)]
pub struct Push {
    /// The image: name[:tag], ID or unique ID prefix.
    pub image: String,
    /// Where to: `[registry[:port]/]name[:tag]` (default: the image's
    /// name).
    pub destination: Option<String>,
    /// How layers are compressed: gzip (every client pulls it) or zstd.
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    pub compression_format: Compression,
    /// The compression level of the layers compressed: gzip 0-9 (default
    /// 3, the size Podman's make; 6 for Docker's), zstd 1-22 (default 3).
    #[arg(long)]
    pub compression_level: Option<i32>,
    /// Layers compressed and uploaded at once.
    #[arg(long, default_value_t = strata_store::MAX_CONCURRENT_UPLOADS as u16,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_uploads: u16,
    #[command(flatten)]
    pub transport: Transport,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl From<Compression> for LayerCompression {
    fn from(c: Compression) -> Self {
        match c {
            Compression::Gzip => LayerCompression::Gzip,
            Compression::Zstd => LayerCompression::Zstd,
        }
    }
}

#[derive(Args)]
pub struct Login {
    /// `host[:port]`.
    pub registry: String,
    #[arg(short, long)]
    pub username: String,
    /// The password (visible to other users of this machine: prefer
    /// --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub transport: Transport,
}

#[derive(Args)]
pub struct Logout {
    /// `host[:port]`.
    pub registry: String,
    /// The credential file (default as for login).
    #[arg(long)]
    pub authfile: Option<PathBuf>,
}

/// A reference read as Docker reads it: the one parser strata has.
fn parse(reference: &str) -> Result<ImageRef> {
    Ok(ImageRef::parse(reference)?)
}

/// A registry given alone (`host[:port]`, `docker.io`), checked with the
/// reference grammar, as the first component of a reference.
fn parse_registry(registry: &str) -> Result<String> {
    ImageRef::parse(&format!("{registry}/x"))
        .with_context(|| format!("invalid registry {registry:?}: give HOST[:PORT]"))?;
    Ok(registry.to_owned())
}

fn conf(t: &Transport) -> Result<RegistriesConf> {
    let path = t
        .registries_conf
        .clone()
        .unwrap_or_else(RegistriesConf::default_path);
    Ok(RegistriesConf::load(&path)?)
}

/// Where to pull `r` from: its mirrors, then itself.
fn endpoints(r: &ImageRef, t: &Transport) -> Result<Vec<Endpoint>> {
    Ok(conf(t)?.endpoints(r.registry(), &r.repository())?)
}

fn client(at: &Endpoint, t: &Transport) -> Result<Client> {
    let opts = Options {
        insecure: !t.tls_verify || at.insecure,
        ..Options::for_registry(&at.registry, t.authfile.as_deref())?
    };
    Ok(Client::new(api_host(&at.registry), opts)?)
}

fn auth_file(given: Option<PathBuf>) -> Result<PathBuf> {
    given
        .or_else(AuthFile::default_path)
        .context("no credential file: give one with --authfile")
}

/// `name:tag` as the store names images (`debian:latest`).
fn local_name(r: &ImageRef, tag: &str) -> Result<ImageRef> {
    Ok(r.with_tag(tag)?)
}

pub fn pull(a: Pull, store: &Store, out: &mut Out) -> Result<()> {
    let r = parse(&a.reference)?;
    let at = endpoints(&r, &a.transport)?;
    if a.all_tags {
        // The parser fills in `latest`: the words decide.
        if a.reference.contains('@')
            || a.reference
                .rsplit('/')
                .next()
                .is_some_and(|l| l.contains(':'))
        {
            bail!("--all-tags takes a repository without a tag or digest");
        }
        let primary = at.last().expect("endpoints end with the registry");
        let tags = client(primary, &a.transport)?.list_tags(&primary.repository)?;
        for tag in tags {
            pull_one(
                &a,
                store,
                &at,
                &r,
                tag.clone(),
                Some(local_name(&r, &tag)?),
                out,
            )?;
        }
        return Ok(());
    }
    // A digest pins the content and names no tag (as `docker pull
    // name@digest` does).
    match (r.digest(), r.tag()) {
        (Some(d), _) => pull_one(&a, store, &at, &r, d.to_string(), None, out),
        (None, t) => {
            let t = t.unwrap_or("latest");
            pull_one(
                &a,
                store,
                &at,
                &r,
                t.to_owned(),
                Some(local_name(&r, t)?),
                out,
            )
        }
    }
}

/// Pulls `reference` (a tag or a digest) of `r` from the first of
/// `endpoints` that has it, naming it `tag`.
fn pull_one(
    a: &Pull,
    store: &Store,
    endpoints: &[Endpoint],
    r: &ImageRef,
    reference: String,
    tag: Option<ImageRef>,
    out: &mut Out,
) -> Result<()> {
    let mut pulled = None;
    for at in endpoints {
        let lines = LayerLines::new();
        let bar: &dyn Progress = if a.quiet { &NoProgress } else { &lines };
        let tried = client(at, &a.transport).and_then(|c| {
            let opts = PullOptions {
                tag: tag.as_ref(),
                platform: a.platform.as_deref(),
                max_concurrent_downloads: a.max_concurrent_downloads.into(),
            };
            Ok(store.pull_with(&c, &at.repository, &reference, &opts, bar)?)
        });
        lines.finish();
        match tried {
            Ok(p) => {
                pulled = Some(p);
                break;
            }
            Err(e) if at.mirror => {
                eprintln!(
                    "strata: warning: mirror {}: {e:#}; trying the next place",
                    at.registry
                );
            }
            Err(e) => return Err(e),
        }
    }
    let pulled = pulled.expect("the last endpoint is not a mirror");
    // Where it came from, as Docker's RepoDigests say it, whichever
    // mirror served it.
    store.add_repo_digest(&pulled.image.id, &r.with_digest(&pulled.digest))?;
    super::warn_depth(store, &pulled.image.id);
    if a.quiet {
        writeln!(out, "{}", pulled.image.id);
        return Ok(());
    }
    writeln!(out, "Digest: {}", pulled.digest);
    let name = match &tag {
        Some(t) => t.to_string(),
        None => r.with_digest(&pulled.digest).to_string(),
    };
    if pulled.image.layers_new == 0 {
        writeln!(out, "Status: Image is up to date for {name}");
    } else {
        writeln!(out, "Status: Downloaded newer image for {name}");
    }
    writeln!(out, "{}", pulled.image.id);
    Ok(())
}

pub fn push(a: Push, store: &Store, out: &mut Out) -> Result<()> {
    let dest = a.destination.as_deref().unwrap_or(&a.image);
    let r = parse(dest)?;
    if r.digest().is_some() {
        bail!("push to a tag, not a digest: {dest:?}");
    }
    let tag = r.tag().unwrap_or("latest");
    // To the registry itself (or where registries.conf moved it), never
    // to a mirror.
    let at = endpoints(&r, &a.transport)?
        .pop()
        .expect("endpoints end with the registry");
    let c = client(&at, &a.transport)?;
    let lines = LayerLines::new();
    let opts = PushOptions {
        compression: a.compression_format.into(),
        max_concurrent_uploads: a.max_concurrent_uploads.into(),
        compression_level: a.compression_level,
    };
    let pushed = store.push_with(&c, &a.image, &at.repository, tag, &opts, &lines);
    lines.finish();
    let pushed = pushed?;
    // Recorded where Docker would have it: on an image tagged in that
    // repository (Docker pushes only a local tag). A digest of a
    // repository it has no tag in would keep the image when its last tag
    // is removed.
    if store
        .image(&pushed.image)?
        .tags
        .iter()
        .any(|t| t.name == r.name)
    {
        store.add_repo_digest(&pushed.image, &r.with_digest(&pushed.digest))?;
    }
    writeln!(
        out,
        "{tag}: digest: {} ({} layers sent, {} mounted, {} already there)",
        pushed.digest, pushed.layers_sent, pushed.layers_mounted, pushed.layers_present
    );
    Ok(())
}

pub fn login(a: Login, out: &mut Out) -> Result<()> {
    let password = match (a.password, a.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut line = String::new();
            io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) => bail!("give the password with --password-stdin (or -p)"),
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let file = auth_file(a.transport.authfile.clone())?;
    let creds = Credentials {
        username: a.username,
        password,
    };
    let registry = parse_registry(&a.registry)?;
    let marked = conf(&a.transport)?
        .find(&registry, "")
        .is_some_and(|r| r.insecure);
    let opts = Options {
        insecure: !a.transport.tls_verify || marked,
        ..Options::for_registry(&registry, Some(&file))?
    };
    registry::login(&registry, &creds, opts, &file)?;
    writeln!(out, "Login Succeeded");
    Ok(())
}

pub fn logout(a: Logout, out: &mut Out) -> Result<()> {
    let file = auth_file(a.authfile)?;
    registry::logout(&a.registry, &file)?;
    writeln!(out, "Removed login credentials for {}", a.registry);
    Ok(())
}

/// `docker pull`'s and `docker push`'s progress: on a terminal, a line
/// per layer redrawn as it moves (waiting, downloading n/m, verifying,
/// applying, done, already exists; pushing n, pushed, mounted, layer
/// already exists); off one, a line per layer as it completes.
struct LayerLines {
    tty: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl LayerLines {
    fn new() -> LayerLines {
        LayerLines {
            tty: io::stderr().is_terminal(),
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Leaves the finished lines on the terminal.
    fn finish(&self) {
        for pb in self.bars.lock().expect("no panic holds it").values() {
            pb.abandon();
        }
    }
}

/// Docker's words.
fn status_word(s: LayerStatus) -> &'static str {
    match s {
        LayerStatus::Waiting => "Waiting",
        LayerStatus::Downloading { .. } => "Downloading",
        LayerStatus::Verifying => "Verifying Checksum",
        LayerStatus::Applying => "Applying",
        LayerStatus::Done => "Pull complete",
        LayerStatus::AlreadyExists => "Already exists",
        LayerStatus::Pushing { .. } => "Pushing",
        LayerStatus::Pushed => "Pushed",
        LayerStatus::Mounted => "Mounted",
        LayerStatus::LayerExists => "Layer already exists",
    }
}

/// Whether a layer is at its end (what is said of it off a terminal).
fn finished(s: LayerStatus) -> bool {
    matches!(
        s,
        LayerStatus::Done
            | LayerStatus::AlreadyExists
            | LayerStatus::Pushed
            | LayerStatus::Mounted
            | LayerStatus::LayerExists
    )
}

impl Progress for LayerLines {
    fn layer(&self, id: &Digest, status: LayerStatus) {
        let short = &id.hex()[..12];
        if !self.tty {
            if finished(status) {
                eprintln!("{short}: {}", status_word(status));
            }
            return;
        }
        let mut bars = self.bars.lock().expect("no panic holds it");
        let pb = bars.entry(id.clone()).or_insert_with(|| {
            let pb = self.multi.add(ProgressBar::new(0));
            pb.set_style(
                ProgressStyle::with_template("{prefix}: {msg}").expect("a valid template"),
            );
            pb.set_prefix(short.to_owned());
            pb
        });
        match status {
            LayerStatus::Downloading { done, total } => {
                if pb.message() != "Downloading" {
                    pb.set_style(
                        ProgressStyle::with_template(
                            "{prefix}: {msg} [{bar:30}] {bytes}/{total_bytes}",
                        )
                        .expect("a valid template")
                        .progress_chars("=> "),
                    );
                    pb.set_message("Downloading");
                }
                if let Some(t) = total {
                    pb.set_length(t);
                }
                pb.set_position(done);
            }
            LayerStatus::Pushing { done } => {
                // Compressed as it goes: no total to show.
                if pb.message() != "Pushing" {
                    pb.set_style(
                        ProgressStyle::with_template("{prefix}: {msg} {bytes}")
                            .expect("a valid template"),
                    );
                    pb.set_message("Pushing");
                }
                pb.set_position(done);
            }
            other => {
                pb.set_style(
                    ProgressStyle::with_template("{prefix}: {msg}").expect("a valid template"),
                );
                pb.set_message(status_word(other));
            }
        }
    }
}
