//! A container's network through the built binary, with the real runtime
//! and the real helpers (pasta from Debian's `passt`, `slirp4netns`): by
//! default a namespace of its own that cannot reach the host's loopback,
//! `-p` reachable from the host, `--network host` and `none` as before,
//! loopback only (and one warning) when no helper is installed, and no
//! helper process left once the container ends.
//!
//! Nothing here leaves this machine: the servers the containers try to
//! reach listen on the host's 127.0.0.1, and the only other address a
//! container is pointed at is slirp4netns's alias for the host
//! (10.0.2.2). Tests needing a helper say SKIPPED when it is missing (a
//! failure under CI, where `scripts/test.sh` installs both).

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{skip, Strata};
use containers::{free_port, read_from, setup, wait_until, Done};
use fixtures::on_path;

/// The helpers, as `--network` names them, and the commands they run as.
const HELPERS: &[&str] = &["pasta", "slirp4netns"];

/// A store with busybox, and `helper` installed (SKIPPED otherwise).
fn setup_with(test: &str, helper: &str) -> Option<Strata> {
    let s = setup(test)?;
    if !on_path(helper) {
        skip(
            test,
            &format!("{helper} is not installed (Debian package: passt or slirp4netns)"),
        );
        return None;
    }
    Some(s)
}

/// Runs `body` once for each helper that is installed (SKIPPED for one
/// that is not), on a store of its own; `test` names the test and the
/// helper.
fn on_each_helper(name: &str, body: impl Fn(Strata, String, &str)) {
    for helper in HELPERS {
        let test = format!("{name} ({helper})");
        if let Some(s) = setup_with(&test, helper) {
            body(s, test, helper);
        }
    }
}

/// The interfaces `/proc/net/dev` lists in `out` (its two header lines
/// first).
fn interfaces(out: &str) -> Vec<String> {
    out.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|i| i.trim().to_owned())
        .collect()
}

/// A server on the host's 127.0.0.1 at a free port that closes every
/// connection at once (so that a client gets its end of file), counting
/// them.
struct HostServer {
    port: u16,
    reached: Arc<AtomicUsize>,
}

impl HostServer {
    fn start() -> HostServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let reached = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&reached);
        // Never joined: it ends with the test process.
        std::thread::spawn(move || {
            for c in l.incoming() {
                r.fetch_add(1, Ordering::SeqCst);
                drop(c);
            }
        });
        HostServer { port, reached }
    }

    fn was_reached(&self) -> bool {
        self.reached.load(Ordering::SeqCst) > 0
    }
}

/// The shell line that says whether `addr port` takes a connection.
fn try_connect(addr: &str, port: u16) -> String {
    format!(
        "if busybox nc -w 3 {addr} {port} </dev/null >/dev/null; then echo connected; else echo refused; fi"
    )
}

fn run(s: &Strata, args: &[&str]) -> Done {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    s.exec(&all)
}

#[test]
fn by_default_a_container_has_its_own_network_and_not_the_hosts_loopback() {
    on_each_helper(
        "by_default_a_container_has_its_own_network",
        |s, test, helper| {
            let server = HostServer::start();
            let port = server.port;
            let mode: &[&str] = match helper {
                // pasta is what the default picks when it is installed.
                "pasta" => &[],
                _ => &["--network", "slirp4netns"],
            };
            let probe = format!(
                "readlink /proc/self/ns/net; echo --; cat /proc/net/dev; echo --; \
             cat /etc/resolv.conf; echo --; {}",
                try_connect("127.0.0.1", port)
            );
            let mut args = mode.to_vec();
            args.extend(["busybox:test", "sh", "-c", &probe]);
            let d = run(&s, &args);
            let out = d.expect(0, &test).out();
            let parts: Vec<&str> = out.split("--\n").collect();
            assert_eq!(parts.len(), 4, "{test}: {out}");
            assert_ne!(
                parts[0].trim(),
                containers::host_ns("net"),
                "{test}: the host's network namespace"
            );
            let ifaces = interfaces(parts[1]);
            // pasta names its interface after the host's default one.
            let tap = match helper {
                "pasta" => ifaces.iter().find(|i| *i != "lo").cloned(),
                _ => Some("tap0".to_owned()),
            };
            assert_eq!(
                ifaces,
                ["lo".to_owned(), tap.unwrap_or_default()],
                "{test}: {out}"
            );
            let ns = match helper {
                "pasta" => "nameserver 169.254.1.1",
                _ => "nameserver 10.0.2.3",
            };
            let resolvers: Vec<&str> = parts[2]
                .lines()
                .filter(|l| l.starts_with("nameserver"))
                .collect();
            assert_eq!(resolvers, [ns], "{test}: resolv.conf: {out}");
            assert_eq!(parts[3].trim(), "refused", "{test}: {out}");
            assert!(
                !server.was_reached(),
                "{test}: the host's loopback was reached"
            );
            if helper == "slirp4netns" {
                // slirp's alias for the host is no way to its loopback.
                let probe = try_connect("10.0.2.2", port);
                let out = run(
                    &s,
                    &[
                        "--network",
                        "slirp4netns",
                        "busybox:test",
                        "sh",
                        "-c",
                        &probe,
                    ],
                );
                assert_eq!(out.expect(0, &test).out(), "refused");
                assert!(!server.was_reached(), "{test}: 10.0.2.2 reached the host");
            }
            s.assert_clean(&test, None);
        },
    );
}

#[test]
fn a_published_port_is_reachable_from_the_host() {
    on_each_helper(
        "a_published_port_is_reachable_from_the_host",
        |s, test, helper| {
            let port = free_port();
            let publish = format!("127.0.0.1:{port}:8080");
            let mut bg = s.spawn(&serving(&["run", "--rm", "--network", helper], &publish));
            let got = read_from(&test, port);
            assert_eq!(got, "hello\n", "{test}");
            bg.signal("TERM");
            bg.wait().expect(0, &test);
            // A host port that is taken: the run fails and says why.
            let taken = TcpListener::bind("127.0.0.1:0").unwrap();
            let publish = format!("127.0.0.1:{}:80", taken.local_addr().unwrap().port());
            let d = run(
                &s,
                &["--network", helper, "-p", &publish, "busybox:test", "true"],
            );
            d.expect(125, &test);
            assert!(
                d.stderr
                    .contains(&format!("{helper} did not set up the network")),
                "{test}: {d:#?}"
            );
            s.assert_clean(&test, None);
        },
    );
}

/// A server on the container's port 8080 that says `hello` to every
/// connection, until SIGTERM ends the container with status 0.
const SERVER: &str = "trap 'exit 0' TERM; busybox nc -ll -p 8080 -e echo hello & wait";

/// `head` (the command and its options), then `-p publish` and the test
/// image running [`SERVER`].
fn serving<'a>(head: &[&'a str], publish: &'a str) -> Vec<&'a str> {
    let mut args = head.to_vec();
    args.extend(["-p", publish, "busybox:test", "sh", "-c", SERVER]);
    args
}

#[test]
fn create_records_the_ports_and_start_publishes_them() {
    let test = "create_records_the_ports_and_start_publishes_them";
    let Some(s) = setup_with(test, "pasta") else {
        return;
    };
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    s.ok(&serving(&["create", "--name", "w"], &publish));
    let config = &s.inspect("w")["Config"];
    assert_eq!(config["NetworkMode"], "private");
    assert_eq!(
        config["Publish"],
        serde_json::json!([{
            "HostIp": "127.0.0.1", "HostPort": port, "ContainerPort": 8080, "Protocol": "tcp"
        }])
    );
    // In the background, run by a strata process of its own.
    s.ok(&["start", "w"]);
    assert_eq!(read_from(test, port), "hello\n");
    assert_eq!(s.inspect("w")["State"]["Status"], "running");
    s.ok(&["rm", "-f", "w"]);
    s.assert_clean(test, None);
}

#[test]
fn host_network_still_reaches_the_hosts_loopback() {
    let test = "host_network_still_reaches_the_hosts_loopback";
    let Some(s) = setup(test) else { return };
    let server = HostServer::start();
    let port = server.port;
    let probe = format!(
        "readlink /proc/self/ns/net; {}",
        try_connect("127.0.0.1", port)
    );
    let d = run(
        &s,
        &["--network", "host", "busybox:test", "sh", "-c", &probe],
    );
    let out = d.expect(0, test).out().to_owned();
    assert_eq!(
        out,
        format!("{}\nconnected", containers::host_ns("net")),
        "{test}"
    );
    assert!(server.was_reached(), "{test}: no connection came");
    // Publishing needs a network of the container's own.
    no_ports_to_publish(&s, test, "host");
    s.assert_clean(test, None);
}

#[test]
fn network_none_has_only_loopback() {
    let test = "network_none_has_only_loopback";
    let Some(s) = setup(test) else { return };
    let d = run(
        &s,
        &["--network", "none", "busybox:test", "cat", "/proc/net/dev"],
    );
    assert_eq!(interfaces(d.expect(0, test).out()), ["lo"]);
    no_ports_to_publish(&s, test, "none");
    s.assert_clean(test, None);
}

/// `-p` with `--network NETWORK`, which has no network of the
/// container's own to publish on: refused before anything is made.
fn no_ports_to_publish(s: &Strata, test: &str, network: &str) {
    let d = run(
        s,
        &[
            "--network",
            network,
            "-p",
            "8080:80",
            "busybox:test",
            "true",
        ],
    );
    d.expect(125, test);
    let want = format!("--network {network} has no ports to publish");
    assert!(d.stderr.contains(&want), "{d:#?}");
}

#[test]
fn bad_port_mappings_are_refused_before_anything_is_made() {
    let test = "bad_port_mappings_are_refused_before_anything_is_made";
    let Some(s) = setup(test) else { return };
    for (spec, why) in [
        ("0:80", "host port 0"),
        ("70000:80", "host port 70000"),
        ("80:80/sctp", "protocol \"sctp\""),
        ("http:80", "\"http\" is not a number"),
        ("80", "HOST:CONTAINER is needed"),
    ] {
        let d = run(&s, &["-p", spec, "busybox:test", "true"]);
        d.expect(125, spec);
        assert!(d.stderr.contains(why), "{spec}: {d:#?}");
        let d = s.exec(&["create", "-p", spec, "busybox:test", "true"]);
        d.expect(125, spec);
    }
    let d = run(
        &s,
        &["-p", "8080:80", "-p", "8080:81", "busybox:test", "true"],
    );
    d.expect(125, "one host port twice");
    assert!(d.stderr.contains("already published"), "{d:#?}");
    s.assert_clean(test, None);
}

#[test]
fn without_a_helper_the_network_is_loopback_only_with_one_warning() {
    let test = "without_a_helper_the_network_is_loopback_only_with_one_warning";
    let Some(s) = setup(test) else { return };
    // A PATH with the runtimes and nothing else.
    let bin = s.host_dir("runtimes-only", &[]);
    for rt in ["crun", "runc"].into_iter().filter(|rt| on_path(rt)) {
        let p = common::sh(&format!("command -v {rt}"));
        std::os::unix::fs::symlink(p, bin.join(rt)).unwrap();
    }
    let mut cmd = s.cmd(&["run", "--rm", "busybox:test", "cat", "/proc/net/dev"]);
    cmd.env("PATH", &bin);
    let d = s.exec_with(cmd, &["run", "without helpers"]);
    assert_eq!(interfaces(d.expect(0, test).out()), ["lo"], "{d:#?}");
    let warnings: Vec<&str> = d.stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{test}: {d:#?}");
    assert!(
        warnings[0].contains("neither pasta nor slirp4netns"),
        "{test}: {d:#?}"
    );
    // -p cannot be kept without one.
    let mut cmd = s.cmd(&["run", "--rm", "-p", "8080:80", "busybox:test", "true"]);
    cmd.env("PATH", &bin);
    let d = s.exec_with(cmd, &["run -p", "without helpers"]);
    d.expect(125, test);
    assert!(d.stderr.contains("-p needs pasta or slirp4netns"), "{d:#?}");
    s.assert_clean(test, None);
}

#[test]
fn when_pasta_cannot_start_slirp4netns_takes_over() {
    let test = "when_pasta_cannot_start_slirp4netns_takes_over";
    let Some(s) = setup_with(test, "slirp4netns") else {
        return;
    };
    // A PATH with the runtimes, slirp4netns, and a pasta that fails as
    // pasta does on a host with no routable interface.
    let bin = s.path("failing-pasta");
    fs::create_dir(&bin).unwrap();
    for tool in ["crun", "runc", "slirp4netns"]
        .into_iter()
        .filter(|t| on_path(t))
    {
        let p = common::sh(&format!("command -v {tool}"));
        std::os::unix::fs::symlink(p, bin.join(tool)).unwrap();
    }
    fs::write(
        bin.join("pasta"),
        "#!/bin/sh\necho 'External interface not usable' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(bin.join("pasta"), fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = s.cmd(&["run", "--rm", "busybox:test", "cat", "/proc/net/dev"]);
    cmd.env("PATH", &bin);
    let d = s.exec_with(cmd, &["run", "with a failing pasta"]);
    assert_eq!(
        interfaces(d.expect(0, test).out()),
        ["lo", "tap0"],
        "{d:#?}"
    );
    assert!(
        d.stderr.contains("pasta did not set up the network")
            && d.stderr.contains("External interface not usable")
            && d.stderr.contains("trying slirp4netns"),
        "{d:#?}"
    );
    // Asked for by name, pasta's failure is the run's.
    let mut cmd = s.cmd(&["run", "--rm", "--network", "pasta", "busybox:test", "true"]);
    cmd.env("PATH", &bin);
    let d = s.exec_with(cmd, &["run --network pasta", "with a failing pasta"]);
    d.expect(125, test);
    assert!(
        d.stderr.contains("pasta did not set up the network"),
        "{d:#?}"
    );
    s.assert_clean(test, None);
}

/// The children of `pid` started as `name` (its argv[0]; pasta execs
/// `passt.avx2` where it can, so its command name differs), with their
/// start times.
fn children_named(pid: u32, name: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        let named = Path::new(std::str::from_utf8(argv0).unwrap_or_default()).file_name()
            == Some(std::ffi::OsStr::new(name));
        match stat(child) {
            Some((ppid, start)) if ppid == pid && named => found.push((child, start)),
            _ => {}
        }
    }
    found
}

/// Processes whose command line or working directory names `id` (pasta's
/// pid file and slirp4netns's directory are the container's).
fn processes_naming(id: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cwd = fs::read_link(e.path().join("cwd")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(id) || cwd.to_string_lossy().contains(id) {
            found.push(pid);
        }
    }
    found
}

/// `/proc/<pid>/stat`'s parent pid and start time.
fn stat(pid: u32) -> Option<(u32, String)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.to_string()))
}

/// Whether the process `pid` that started at `start` still exists.
fn still_there(pid: u32, start: &str) -> bool {
    stat(pid).is_some_and(|(_, s)| s == start)
}

/// `run ARGS --network HELPER` of a container that waits (up to 30 s)
/// for `/v/go` in the volume `v` (at `v` on the host); returns once it
/// is up, with its one helper process (pid and start time).
fn run_until_go(
    s: &Strata,
    test: &str,
    helper: &str,
    args: &[&str],
    v: &Path,
) -> (containers::Bg, (u32, String)) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--network",
        helper,
        "-v",
        "v:/v",
        "busybox:test",
        "sh",
        "-c",
        "touch /v/up; i=0; while [ ! -e /v/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
    ]);
    let bg = s.spawn(&all);
    wait_until(30, &format!("{test}: the container"), || {
        v.join("up").exists()
    });
    let helpers = children_named(bg.pid(), helper);
    assert_eq!(helpers.len(), 1, "{test}: {helpers:?}");
    let found = helpers[0].clone();
    (bg, found)
}

#[test]
fn no_helper_is_left_after_the_container_ends() {
    on_each_helper(
        "no_helper_is_left_after_the_container_ends",
        |s, test, helper| {
            let v = s.volume("v");
            let (mut bg, (pid, start)) = run_until_go(&s, &test, helper, &["--rm"], &v);
            fs::write(v.join("go"), "").unwrap();
            bg.wait().expect(0, &test);
            assert!(
                !still_there(pid, &start),
                "{test}: {helper} {pid} still runs"
            );

            // And when strata itself is killed, the kernel ends the helper.
            fs::remove_file(v.join("up")).unwrap();
            fs::remove_file(v.join("go")).unwrap();
            let (mut bg, (pid, start)) = run_until_go(&s, &test, helper, &["--name", "k"], &v);
            bg.signal("KILL");
            wait_until(10, &format!("{test}: {helper} to end with strata"), || {
                !still_there(pid, &start)
            });
            // The container outlives its strata; it holds strata's output
            // pipes until it ends.
            fs::write(v.join("go"), "").unwrap();
            bg.wait();
            // It starts again, with a helper of its own (not fooled by what
            // the killed strata left), which ends with it.
            s.exec(&["start", "-a", "k"]).expect(0, &test);
            let id = s.inspect("k")["Id"].as_str().unwrap().to_owned();
            assert_eq!(processes_naming(&id), Vec::<u32>::new(), "{test}");
            s.ok(&["rm", "-f", "k"]);
            s.ok(&["volume", "rm", "v"]);
            s.assert_clean(&test, None);
        },
    );
}
