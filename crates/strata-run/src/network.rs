//! A container's network, the way Podman's rootless networking does it.
//!
//! | `--network`        | namespace        | connectivity                       |
//! |--------------------|------------------|------------------------------------|
//! | `private` (default)| its own          | pasta, else slirp4netns, else none |
//! | `pasta`            | its own          | pasta (an error if missing)        |
//! | `slirp4netns`      | its own          | slirp4netns (an error if missing)  |
//! | `none`             | its own          | loopback only                      |
//! | `host`             | the host's       | the host's (opt-in)                |
//!
//! `private` takes slirp4netns when pasta is missing, or when it cannot
//! start (it needs a host interface with a route; slirp4netns does not),
//! with a warning. With neither helper installed, `private` falls back to
//! `none` with one warning; never to the host's network. `-p` then is an
//! error.
//!
//! **The namespace is made before the runtime starts**, as Podman makes
//! it: strata unshares a network namespace on a thread of its own and
//! holds it by a descriptor ([`strata_sys::netns`]), starts the helper
//! attached to it, waits until the helper says it is ready (pasta writes
//! its pid file once the interface is configured; slirp4netns writes to
//! its ready fd), and the bundle names the namespace by path
//! (`/proc/<strata>/fd/<n>`), which crun and runc both join (pasta, which
//! drops the capabilities that path needs, gets the descriptor as its
//! stdin and opens `/proc/self/fd/0`). The
//! alternatives (a `createRuntime` hook, or `create` and `start` instead
//! of a foreground `run`) would need strata re-run as a hook program, or
//! its own reaping and terminal handling; this way the command never
//! starts before its network is up, whatever the runtime.
//!
//! **The helper is strata's child**: spawned in the foreground, stopped
//! (SIGKILL, by its pid through the child handle, so never a reused pid)
//! and reaped when the container ends, and killed by the kernel should
//! strata itself die (`PR_SET_PDEATHSIG`, [`strata_sys::process::kill_with_parent`]).
//!
//! **No way back to the host's loopback.** pasta runs with `-T none -U
//! none` (no ports of the host's loopback mirrored into the container),
//! `--no-map-gw` (the gateway address is not the host) and `-t`/`-u` only
//! for `-p` (never `auto`); slirp4netns with `--disable-host-loopback`.
//! What the container reaches is what the host reaches through its
//! routes, as with Docker's bridge.
//!
//! **DNS.** pasta forwards queries sent to [`PASTA_DNS`] to the host's
//! first resolver (`--dns-forward`, Podman 5's address), so a resolver on
//! the host's loopback (systemd-resolved) works too; slirp4netns answers
//! on [`SLIRP_DNS`]. The container's `/etc/resolv.conf` names that
//! address and keeps the host's `search` and `options` lines.
//!
//! **pasta runs as root** (`--runas 0`): Debian 12's pasta, dropped to
//! `nobody`, may not enter a namespace of the host's user namespace. It
//! still keeps only CAP_SYS_ADMIN and CAP_NET_BIND_SERVICE, under its own
//! seccomp filter, with `no_new_privs`, in mount, IPC and UTS namespaces
//! of its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strata_store::{Container, Error, ErrorKind, PortMapping, Protocol, Result};
use strata_sys::process::on_path;

/// The address pasta answers DNS on inside the container.
pub const PASTA_DNS: &str = "169.254.1.1";
/// slirp4netns's built-in DNS forwarder.
pub const SLIRP_DNS: &str = "10.0.2.3";

/// How long a helper may take to set the network up.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A helper that connects a private network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Helper {
    Pasta(PathBuf),
    Slirp4netns(PathBuf),
}

impl Helper {
    fn name(&self) -> &'static str {
        match self {
            Helper::Pasta(_) => "pasta",
            Helper::Slirp4netns(_) => "slirp4netns",
        }
    }

    /// The resolver the container's `/etc/resolv.conf` names.
    pub fn nameserver(&self) -> &'static str {
        match self {
            Helper::Pasta(_) => PASTA_DNS,
            Helper::Slirp4netns(_) => SLIRP_DNS,
        }
    }
}

/// What a container's network will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The host's network namespace.
    Host,
    /// A namespace of its own with only loopback (the runtime makes it).
    Loopback,
    /// A namespace of strata's making, connected by the first of these
    /// helpers that can (pasta needs a host interface with a route;
    /// slirp4netns does not).
    Private(Vec<Helper>),
}

impl Plan {
    /// The plan for `c`'s recorded network mode, with the helpers on
    /// `PATH`.
    pub fn for_container(c: &Container) -> Result<Plan> {
        Plan::choose(c, &|name| on_path(name))
    }

    /// The plan, finding helpers with `find` (a name to a path).
    pub fn choose(c: &Container, find: &dyn Fn(&str) -> Option<PathBuf>) -> Result<Plan> {
        let pasta = || find("pasta").map(Helper::Pasta);
        let slirp = || find("slirp4netns").map(Helper::Slirp4netns);
        let missing = |what: &str, package: &str| {
            Error::new(
                ErrorKind::NotFound,
                format!("--network {what}: {what} is not on PATH (Debian package: {package})"),
            )
        };
        Ok(match c.config.network_mode.as_str() {
            "host" => Plan::Host,
            "none" => Plan::Loopback,
            "pasta" => Plan::Private(vec![pasta().ok_or_else(|| missing("pasta", "passt"))?]),
            "slirp4netns" => Plan::Private(vec![
                slirp().ok_or_else(|| missing("slirp4netns", "slirp4netns"))?
            ]),
            // "private", and records made before it was the default name.
            _ => match [pasta(), slirp()].into_iter().flatten().collect::<Vec<_>>() {
                helpers if !helpers.is_empty() => Plan::Private(helpers),
                _ if !c.config.publish.is_empty() => {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "container {}: -p needs pasta or slirp4netns, and neither is on PATH \
                             (Debian packages: passt, slirp4netns)",
                            c.name
                        ),
                    ))
                }
                _ => {
                    tracing::warn!(
                        "container {}: neither pasta nor slirp4netns is on PATH (Debian packages: \
                         passt, slirp4netns): its network is loopback only, as --network none",
                        c.name
                    );
                    Plan::Loopback
                }
            },
        })
    }
}

/// A private network namespace and the helper connecting it; the helper
/// is stopped and reaped on drop.
pub struct Network {
    netns: OwnedFd,
    helper: Helper,
    child: Child,
    /// slirp4netns's `--exit-fd`: it exits when this closes.
    _exit: Option<ChildStdin>,
    /// The container's directory, where the pid file and API socket are.
    dir: PathBuf,
}

impl Network {
    /// [`Network::start`] with the first of `helpers` that sets the
    /// network up; a failure before the last is a warning.
    pub fn start_first(helpers: &[Helper], ports: &[PortMapping], dir: &Path) -> Result<Network> {
        let (last, first) = helpers.split_last().expect("a private plan has a helper");
        for h in first {
            match Network::start(h, ports, dir) {
                Ok(net) => return Ok(net),
                Err(e) => tracing::warn!("{e}; trying {}", last.name()),
            }
        }
        Network::start(last, ports, dir)
    }

    /// Makes the namespace and starts `helper` on it with `ports`
    /// published; returns once the helper has configured it. `dir` (the
    /// container's directory) gets the helper's pid file, API socket and
    /// log (`network.log`). The helper dies with the calling thread
    /// (`PR_SET_PDEATHSIG` is a thread's), so call it from one that
    /// outlives the container, as `run` and `start` do from strata's main
    /// thread.
    pub fn start(helper: &Helper, ports: &[PortMapping], dir: &Path) -> Result<Network> {
        let netns = strata_sys::netns::new_net_namespace()
            .map_err(|e| Error::io("making a network namespace", e))?;
        let path = fd_path(&netns);
        let log = dir.join("network.log");
        let log_file = std::fs::File::create(&log)
            .map_err(|e| Error::io(format!("creating {}", log.display()), e))?;
        // What a strata killed mid-run left: a stale pid file would read
        // as ready at once.
        for f in [PASTA_PID_FILE, SLIRP_SOCKET] {
            match std::fs::remove_file(dir.join(f)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(format!("removing {}", dir.join(f).display()), e))
                }
                _ => {}
            }
        }
        let mut cmd = match helper {
            Helper::Pasta(bin) => {
                // pasta drops the capabilities that would let it open
                // another process's descriptor: it gets the namespace as
                // its stdin.
                let ns = netns
                    .try_clone()
                    .map_err(|e| Error::io("duplicating a descriptor", e))?;
                let mut cmd = pasta_command(
                    bin,
                    Path::new("/proc/self/fd/0"),
                    ports,
                    &dir.join(PASTA_PID_FILE),
                );
                cmd.stdin(ns);
                cmd
            }
            Helper::Slirp4netns(bin) => slirp_command(bin, &path, dir),
        };
        cmd.stderr(log_file);
        strata_sys::process::kill_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            Error::io(
                format!("starting {} ({})", helper.name(), cmd_path(&cmd)),
                e,
            )
        })?;
        let exit = child.stdin.take();
        let mut net = Network {
            netns,
            helper: helper.clone(),
            child,
            _exit: exit,
            dir: dir.to_owned(),
        };
        let ready = match helper {
            Helper::Pasta(_) => net.wait_for_pid_file(&dir.join(PASTA_PID_FILE)),
            Helper::Slirp4netns(_) => net
                .wait_for_ready_fd()
                .and_then(|()| add_hostfwds(dir, ports)),
        };
        ready.map_err(|why| {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            // Its last words (pasta's include syslog complaints; slirp4netns
            // logs every request).
            let said: Vec<&str> = said
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with("Failed to send"))
                .collect();
            let said = &said[said.len().saturating_sub(2)..];
            Error::new(
                ErrorKind::Io,
                format!(
                    "{} did not set up the network: {why}{}{}",
                    helper.name(),
                    if said.is_empty() { "" } else { ": " },
                    said.join("; ")
                ),
            )
        })?;
        tracing::debug!(
            "{} (pid {}) connects network namespace {}",
            helper.name(),
            net.pid(),
            path.display()
        );
        Ok(net)
    }

    /// The namespace as a path the runtime can open.
    pub fn namespace_path(&self) -> PathBuf {
        fd_path(&self.netns)
    }

    /// The helper's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn helper(&self) -> &Helper {
        &self.helper
    }

    /// Waits (at most [`READY_WITHIN`]) for pasta's pid file, which it
    /// writes once the namespace's interface and routes are configured.
    fn wait_for_pid_file(&mut self, pid_file: &Path) -> std::result::Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if std::fs::read_to_string(pid_file).is_ok_and(|s| !s.trim().is_empty()) {
                return Ok(());
            }
            self.still_running()?;
            if Instant::now() > deadline {
                return Err(format!("not ready within {}s", READY_WITHIN.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most [`READY_WITHIN`]) for slirp4netns to write `1` on
    /// its ready fd (our pipe on its stdout).
    fn wait_for_ready_fd(&mut self) -> std::result::Result<(), String> {
        let mut out = self.child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Ends when slirp4netns writes or exits (it is killed on error).
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            let _ = tx.send(out.read(&mut b).map(|n| n == 1 && b[0] == b'1'));
        });
        match rx.recv_timeout(READY_WITHIN) {
            Ok(Ok(true)) => Ok(()),
            Ok(_) => {
                self.still_running()?;
                Err("it closed its ready fd".to_owned())
            }
            Err(_) => Err(format!("not ready within {}s", READY_WITHIN.as_secs())),
        }
    }

    fn still_running(&mut self) -> std::result::Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => Err(format!("it exited ({st})")),
            Err(e) => Err(format!("waiting for it: {e}")),
        }
    }
}

impl Drop for Network {
    /// Stops the helper (SIGKILL through its child handle: its pid cannot
    /// have been reused before it is reaped) and reaps it.
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            tracing::debug!("stopping {} (pid {}): {e}", self.helper.name(), self.pid());
        }
        let _ = self.child.wait();
        for f in [PASTA_PID_FILE, SLIRP_SOCKET] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
    }
}

/// `/proc/<our pid>/fd/<n>`: a path to the namespace `fd` holds, for
/// processes that cannot inherit it.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        fd.as_raw_fd()
    ))
}

fn cmd_path(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// pasta in the foreground on the namespace at `netns`, with only the
/// `ports` asked for (see the module doc for each option).
pub fn pasta_command(bin: &Path, netns: &Path, ports: &[PortMapping], pid_file: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--config-net", "--foreground", "--quiet", "--runas", "0"])
        .arg("--pid")
        .arg(pid_file)
        .args(["--no-map-gw", "-T", "none", "-U", "none"])
        .args(["--dns-forward", PASTA_DNS]);
    for (flag, proto) in [("-t", Protocol::Tcp), ("-u", Protocol::Udp)] {
        let specs: Vec<String> = ports
            .iter()
            .filter(|p| p.protocol == proto)
            .map(pasta_port)
            .collect();
        if specs.is_empty() {
            cmd.args([flag, "none"]);
        }
        for s in specs {
            cmd.args([flag, &s]);
        }
    }
    cmd.arg("--netns").arg(netns).stdout(Stdio::null());
    cmd
}

/// A `-p` as pasta's `-t`/`-u` take it: `[ADDR/]HOST:CONTAINER`.
fn pasta_port(p: &PortMapping) -> String {
    let addr = p.host_ip.map(|ip| format!("{ip}/")).unwrap_or_default();
    format!("{addr}{}:{}", p.host_port, p.container_port)
}

/// pasta's pid file, in the container's directory.
const PASTA_PID_FILE: &str = "network.pid";

/// slirp4netns's API socket, in the container's directory.
const SLIRP_SOCKET: &str = "network.sock";

/// slirp4netns on the namespace at `netns`: configured (tap0 at
/// 10.0.2.100, loopback up), no way to the host's loopback, its API on
/// `network.sock` in `dir` for `-p` (named from `dir` as its working
/// directory: a socket's path is limited to 107 bytes); ready fd its
/// stdout, exit fd its stdin.
pub fn slirp_command(bin: &Path, netns: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--configure",
        "--mtu=65520",
        "--disable-host-loopback",
        // It parses what the container sends, as root: in a mount
        // namespace of its own with only CAP_NET_BIND_SERVICE (as Podman
        // runs it). Not `--enable-seccomp`: slirp4netns 1.2 then prints a
        // warning on its stdout, which is the ready fd here.
        "--enable-sandbox",
        "--netns-type=path",
        "--ready-fd=1",
        "--exit-fd=0",
    ])
    .arg(format!("--api-socket={SLIRP_SOCKET}"))
    .arg(netns)
    .arg("tap0")
    .current_dir(dir)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    cmd
}

/// Publishes `ports` through slirp4netns's API socket in `dir`
/// (`add_hostfwd`).
fn add_hostfwds(dir: &Path, ports: &[PortMapping]) -> std::result::Result<(), String> {
    if ports.is_empty() {
        return Ok(());
    }
    // Named through a descriptor of `dir`: the path fits a socket address
    // however deep the store is.
    let d = std::fs::File::open(dir).map_err(|e| format!("opening {}: {e}", dir.display()))?;
    let socket = PathBuf::from(format!("/proc/self/fd/{}/{SLIRP_SOCKET}", d.as_raw_fd()));
    for p in ports {
        let request = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": p.protocol.as_str(),
                "host_addr": p.host_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "0.0.0.0".to_owned()),
                "host_port": p.host_port,
                "guest_port": p.container_port,
            }
        });
        let mut s = UnixStream::connect(&socket)
            .map_err(|e| format!("connecting to {}: {e}", dir.join(SLIRP_SOCKET).display()))?;
        let bounded = Some(READY_WITHIN);
        s.set_read_timeout(bounded)
            .and_then(|()| s.set_write_timeout(bounded))
            .and_then(|()| s.write_all(request.to_string().as_bytes()))
            .and_then(|()| s.shutdown(std::net::Shutdown::Write))
            .map_err(|e| format!("-p {p}: {e}"))?;
        let mut reply = String::new();
        BufReader::new(s)
            .read_line(&mut reply)
            .map_err(|e| format!("-p {p}: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_str(&reply).map_err(|e| format!("-p {p}: reply {reply:?}: {e}"))?;
        if let Some(err) = v.get("error") {
            return Err(format!("-p {p}: {err}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_store::RunConfig;

    fn container(mode: &str, publish: &[&str]) -> Container {
        crate::test_container(
            &["true"],
            RunConfig {
                network_mode: mode.into(),
                publish: publish.iter().map(|p| p.parse().unwrap()).collect(),
                ..Default::default()
            },
        )
    }

    fn with(found: &'static [&'static str]) -> impl Fn(&str) -> Option<PathBuf> {
        move |n| found.contains(&n).then(|| PathBuf::from("/bin").join(n))
    }

    #[test]
    fn private_prefers_pasta_then_slirp4netns_then_loopback() {
        let c = container("private", &[]);
        let pasta = Helper::Pasta("/bin/pasta".into());
        let slirp = Helper::Slirp4netns("/bin/slirp4netns".into());
        let both = with(&["pasta", "slirp4netns"]);
        assert_eq!(
            Plan::choose(&c, &both).unwrap(),
            Plan::Private(vec![pasta.clone(), slirp.clone()])
        );
        let only_slirp = with(&["slirp4netns"]);
        assert_eq!(
            Plan::choose(&c, &only_slirp).unwrap(),
            Plan::Private(vec![slirp.clone()])
        );
        let forced = container("pasta", &[]);
        assert_eq!(
            Plan::choose(&forced, &both).unwrap(),
            Plan::Private(vec![pasta])
        );
        assert_eq!(Plan::choose(&c, &with(&[])).unwrap(), Plan::Loopback);
        let forced = container("slirp4netns", &[]);
        assert_eq!(
            Plan::choose(&forced, &both).unwrap(),
            Plan::Private(vec![slirp])
        );
    }

    #[test]
    fn host_and_none_need_no_helper() {
        let none = with(&[]);
        assert_eq!(
            Plan::choose(&container("host", &[]), &none).unwrap(),
            Plan::Host
        );
        assert_eq!(
            Plan::choose(&container("none", &[]), &none).unwrap(),
            Plan::Loopback
        );
    }

    #[test]
    fn a_missing_helper_asked_for_or_needed_for_ports_is_an_error() {
        let none = with(&[]);
        let e = Plan::choose(&container("pasta", &[]), &none).unwrap_err();
        assert!(e.to_string().contains("passt"), "{e}");
        let e = Plan::choose(&container("slirp4netns", &[]), &with(&["pasta"])).unwrap_err();
        assert!(e.to_string().contains("slirp4netns is not on PATH"), "{e}");
        let e = Plan::choose(&container("private", &["8080:80"]), &none).unwrap_err();
        assert!(
            e.to_string().contains("-p needs pasta or slirp4netns"),
            "{e}"
        );
    }

    #[test]
    fn pasta_publishes_only_what_is_asked_and_never_the_hosts_loopback() {
        let ports: Vec<PortMapping> = ["8080:80", "127.0.0.1:5353:53/udp", "[::1]:8443:443"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let cmd = pasta_command(
            Path::new("/bin/pasta"),
            Path::new("/proc/1/fd/3"),
            &ports,
            Path::new("/c/network.pid"),
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        for want in [
            "--no-map-gw",
            "-T none -U none",
            "-t 8080:80 -t ::1/8443:443",
            "-u 127.0.0.1/5353:53",
            "--dns-forward 169.254.1.1",
            "--netns /proc/1/fd/3",
            "--pid /c/network.pid",
        ] {
            assert!(joined.contains(want), "{want:?} not in {joined}");
        }
        assert!(!joined.contains("auto"), "{joined}");
        let none = pasta_command(
            Path::new("/bin/pasta"),
            Path::new("/proc/1/fd/3"),
            &[],
            Path::new("/c/network.pid"),
        );
        let joined: Vec<String> = none
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(joined.join(" ").contains("-t none -u none"), "{joined:?}");
    }

    #[test]
    fn slirp4netns_never_reaches_the_hosts_loopback() {
        let cmd = slirp_command(
            Path::new("/bin/slirp4netns"),
            Path::new("/proc/1/fd/3"),
            Path::new("/nonexistent"),
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"--disable-host-loopback".to_owned()));
        // Root that parses the container's packets keeps no more than it
        // needs.
        assert!(args.contains(&"--enable-sandbox".to_owned()));
        assert_eq!(&args[args.len() - 2..], ["/proc/1/fd/3", "tap0"]);
    }
}
