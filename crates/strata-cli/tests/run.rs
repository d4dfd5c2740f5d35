//! `strata run` and `strata start` through the built binary, with the
//! real OCI runtimes (crun and runc) on overlay2: exit statuses as Docker
//! gives them, --rm and signals, volumes and binds inside the container,
//! the namespaces and the files each container gets, users, environment,
//! stdin, the errors, and that nothing stays mounted or running after.
//!
//! Images (`common/containers.rs`): busybox imported from a rootfs
//! tarball (no Cmd, no Env), the same tree with an Entrypoint, Cmd, Env,
//! WorkingDir or User made with umoci and loaded, and a Debian minbase
//! image whose tarball `scripts/test.sh` builds once with debootstrap and
//! passes in `STRATA_TEST_DEBIAN_TAR`.
//!
//! Where Docker and the runtimes differ (exit statuses 126 and 127,
//! capabilities, pipes rather than the caller's terminal), the tests hold
//! strata to what a Docker user expects.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{assert_success, sh};
use containers::{
    debian_tar, finish, guard_host_file, host_mounts, host_ns, mounts_under, on_terminal,
    pids_with, setup, setup_with_tools, start_piped, wait_until, Done, MountLine,
};
use fixtures::have_tools;

/// What Docker puts in a container's PATH when the image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn run_rm_prints_debians_os_release_and_leaves_nothing() {
    let test = "run_rm_prints_debians_os_release_and_leaves_nothing";
    let Some(s) = setup(test) else { return };
    let Some(tar) = debian_tar(test) else { return };
    s.debian(&tar);
    let out = s.run_ok(&["debian", "cat", "/etc/os-release"]);
    assert!(out.contains("ID=debian"), "{out}");
    assert!(out.contains("VERSION_CODENAME=bookworm"), "{out}");
    s.assert_clean("run --rm", None);
    assert_eq!(s.names(true), Vec::<String>::new());
}

#[test]
fn exit_status_is_the_commands() {
    let Some(s) = setup("exit_status_is_the_commands") else {
        return;
    };
    s.exec(&["run", "--rm", "busybox:test", "sh", "-c", "exit 42"])
        .expect(42, "exit 42");
    s.exec(&["run", "--rm", "busybox:test", "false"])
        .expect(1, "false");
    s.exec(&["run", "--rm", "busybox:test", "true"])
        .expect(0, "true");
    // crun and runc themselves exit 1 when the command is missing or not
    // executable; Docker reports 127 and 126, and so must strata.
    let d = s.exec(&["run", "--rm", "busybox:test", "no-such-command"]);
    d.expect(127, "a command that does not exist");
    assert!(d.stderr.contains("no-such-command"), "{d:#?}");
    s.exec(&["run", "--rm", "busybox:test", "/etc/passwd"])
        .expect(126, "a file that is not executable");
    // The command is PID 1 of its namespace: the kernel ignores the
    // signals it sends itself that it has no handler for, SIGKILL
    // included, so `kill -9 $$` returns and the shell goes on (Docker
    // without --init does the same).
    let d = s.exec(&[
        "run",
        "--rm",
        "busybox:test",
        "sh",
        "-c",
        "kill -9 $$; echo survived; exit 7",
    ]);
    d.expect(7, "pid 1 killing itself");
    assert_eq!(d.out(), "survived");
    // Killed from outside (the host is an ancestor PID namespace):
    // 128 + 9.
    let marker = format!("STRATA_TEST_KILL={}", std::process::id());
    let v = s.volume("k");
    let mut bg = s.spawn(&[
        "run",
        "--rm",
        "-e",
        &marker,
        "-v",
        "k:/k",
        "busybox:test",
        "sh",
        "-c",
        "touch /k/ready; exec sleep 20",
    ]);
    wait_until(15, "the container to start", || v.join("ready").exists());
    let mut pids = Vec::new();
    wait_until(5, "sleep to be exec'd", || {
        pids = pids_with(&marker)
            .into_iter()
            .filter(|p| {
                fs::read(format!("/proc/{p}/cmdline"))
                    .map(|c| c.starts_with(b"sleep\0"))
                    .unwrap_or(false)
            })
            .collect();
        !pids.is_empty()
    });
    assert_eq!(pids.len(), 1, "{pids:?}");
    sh(&format!("kill -KILL {}", pids[0]));
    bg.wait().expect(137, "killed by SIGKILL");
    s.ok(&["volume", "rm", "k"]);
    s.assert_clean("after the runs", None);
}

/// A command that only a bind or a volume holds is found where the
/// runtime will mount it: run, not 127. What is missing or not
/// executable there is still 127 or 126.
#[test]
fn commands_in_binds_and_volumes_are_found() {
    let Some(s) = setup("commands_in_binds_and_volumes_are_found") else {
        return;
    };
    let tools = s.path("tools");
    fs::create_dir_all(tools.join("sub")).unwrap();
    let script = |p: &Path, says: &str| {
        fs::write(p, format!("#!/bin/sh\necho {says} \"$@\"\n")).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    };
    script(&tools.join("prog"), "from-the-bind");
    fs::write(tools.join("plain"), "not a program\n").unwrap();
    std::os::unix::fs::symlink("../prog", tools.join("sub/link")).unwrap();
    let bind = format!("{}:/opt/tools", tools.display());
    assert_eq!(
        s.run_ok(&["-v", &bind, "busybox:test", "/opt/tools/prog", "a"]),
        "from-the-bind a"
    );
    assert_eq!(
        s.run_ok(&["-v", &bind, "busybox:test", "/opt/tools/sub/link"]),
        "from-the-bind"
    );
    // On PATH, and through -w.
    let path = "PATH=/opt/tools:/bin";
    assert_eq!(
        s.run_ok(&["-v", &bind, "-e", path, "busybox:test", "prog", "b"]),
        "from-the-bind b"
    );
    assert_eq!(
        s.run_ok(&["-v", &bind, "-w", "/opt/tools", "busybox:test", "./prog"]),
        "from-the-bind"
    );
    s.exec(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox:test",
        "/opt/tools/nosuch",
    ])
    .expect(127, "missing in the bind");
    s.exec(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox:test",
        "/opt/tools/plain",
    ])
    .expect(126, "not executable in the bind");
    s.exec(&["run", "--rm", "-v", &bind, "busybox:test", "/opt/tools"])
        .expect(126, "the bind itself");
    // A bound file, and a volume; a copy of busybox runs too.
    let file = format!("{}:/usr/local/bin/prog", tools.join("prog").display());
    assert_eq!(
        s.run_ok(&["-v", &file, "busybox:test", "/usr/local/bin/prog"]),
        "from-the-bind"
    );
    let data = s.volume("vt");
    fs::copy(sh("command -v busybox"), data.join("busybox")).unwrap();
    assert_eq!(
        s.run_ok(&[
            "-v",
            "vt:/opt/vt",
            "busybox:test",
            "/opt/vt/busybox",
            "echo",
            "bb"
        ]),
        "bb"
    );
    // The mount hides what the image has at its path.
    s.exec(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox:test",
        "/opt/tools/../../bin/true",
    ])
    .expect(0, "`..` out of the bind");
    let empty = s.path("empty");
    fs::create_dir(&empty).unwrap();
    let over_bin = format!("{}:/bin", empty.display());
    s.exec(&["run", "--rm", "-v", &over_bin, "busybox:test", "/bin/true"])
        .expect(127, "a command hidden by a mount");
    s.ok(&["volume", "rm", "vt"]);
    s.assert_clean("after the runs", None);
}

#[test]
fn commit_after_run_on_debian() {
    let test = "commit_after_run_on_debian";
    let Some(s) = setup(test) else { return };
    let Some(tar) = debian_tar(test) else { return };
    s.debian(&tar);
    s.exec(&[
        "run",
        "--name",
        "w",
        "debian",
        "sh",
        "-c",
        "echo new > /root/file; sed -i s/bookworm/changed/ /etc/os-release; rm /etc/issue",
    ])
    .expect(0, "the changes");
    assert_eq!(s.inspect("w")["State"]["Status"], "exited");
    let diff = s.ok(&["diff", "w"]);
    for want in ["A /root/file", "C /etc/os-release", "D /etc/issue"] {
        assert!(diff.lines().any(|l| l == want), "{want} not in:\n{diff}");
    }
    // What the runtime mounts is not the container's change.
    for l in diff.lines() {
        let path = &l[2..];
        for not in [
            "/proc",
            "/sys",
            "/dev",
            "/etc/hostname",
            "/etc/hosts",
            "/etc/resolv.conf",
        ] {
            let below = path
                .strip_prefix(not)
                .is_some_and(|r| r.is_empty() || r.starts_with('/'));
            assert!(!below, "{l} in the diff:\n{diff}");
        }
    }
    s.ok(&["commit", "w", "debian:changed"]);
    let probe = "test -e /root/file && cat /root/file; \
                 grep -q changed /etc/os-release && echo changed; \
                 test -e /etc/issue && echo issue; true";
    assert_eq!(
        s.run_ok(&["debian:changed", "sh", "-c", probe]),
        "new\nchanged"
    );
    assert_eq!(s.run_ok(&["debian", "sh", "-c", probe]), "issue");
    // The committed image carries none of the per-container files.
    let hostname = s.run_ok(&[
        "--hostname",
        "other",
        "debian:changed",
        "cat",
        "/etc/hostname",
    ]);
    assert_eq!(hostname, "other");
    s.ok(&["rm", "w"]);
    s.assert_clean("after the runs", None);
}

#[test]
fn named_volume_outlives_run_rm() {
    let Some(s) = setup("named_volume_outlives_run_rm") else {
        return;
    };
    s.run_ok(&[
        "-v",
        "data:/data",
        "busybox:test",
        "sh",
        "-c",
        "echo hi > /data/f",
    ]);
    assert_eq!(s.volume_names(), ["data"]);
    assert_eq!(
        s.run_ok(&["-v", "data:/data", "busybox:test", "cat", "/data/f"]),
        "hi"
    );
    let e = s.exec(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        "busybox:test",
        "touch",
        "/data/g",
    ]);
    assert_ne!(e.code, 0, ":ro volume written: {e:#?}");
    // --rm removes anonymous volumes, not named ones.
    s.run_ok(&["-v", "/anon", "busybox:test", "touch", "/anon/f"]);
    s.exec(&["run", "--rm", "-v", "/anon", "busybox:test", "false"])
        .expect(1, "a failing command");
    assert_eq!(s.volume_names(), ["data"]);
    let v = s.json(&["volume", "inspect", "data"]);
    let dir = PathBuf::from(v[0]["Mountpoint"].as_str().unwrap());
    assert_eq!(fs::read_to_string(dir.join("f")).unwrap(), "hi\n");
    assert!(!dir.join("g").exists());
    s.assert_clean("after the runs", None);
}

#[test]
fn host_bind_is_written_through_and_ro_refuses() {
    let Some(s) = setup("host_bind_is_written_through_and_ro_refuses") else {
        return;
    };
    let host = s.host_dir("host", &[("from-host", "hello from the host")]);
    let rw = format!("{}:/h", host.display());
    let out = s.run_ok(&[
        "-v",
        &rw,
        "busybox:test",
        "sh",
        "-c",
        "cat /h/from-host; echo written > /h/from-container",
    ]);
    assert_eq!(out, "hello from the host");
    assert_eq!(
        fs::read_to_string(host.join("from-container")).unwrap(),
        "written\n"
    );
    let ro = format!("{}:/h:ro", host.display());
    let d = s.exec(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "busybox:test",
        "sh",
        "-c",
        "cat /h/from-host; echo no > /h/refused",
    ]);
    assert_ne!(d.code, 0, "{d:#?}");
    assert_eq!(d.out(), "hello from the host");
    assert!(d.stderr.contains("Read-only file system"), "{d:#?}");
    assert!(!host.join("refused").exists());
    // The bind is gone with the container; the host files stay.
    assert!(host.join("from-host").exists());
    s.assert_clean("after the runs", None);
}

#[test]
fn volumes_from_shares_the_volumes() {
    let Some(s) = setup("volumes_from_shares_the_volumes") else {
        return;
    };
    s.exec(&[
        "run",
        "--name",
        "owner",
        "-v",
        "vol:/shared",
        "busybox:test",
        "sh",
        "-c",
        "echo from-owner > /shared/f",
    ])
    .expect(0, "the owner");
    assert_eq!(
        s.run_ok(&[
            "--volumes-from",
            "owner",
            "busybox:test",
            "cat",
            "/shared/f"
        ]),
        "from-owner"
    );
    let d = s.exec(&[
        "run",
        "--rm",
        "--volumes-from",
        "owner:ro",
        "busybox:test",
        "sh",
        "-c",
        "cat /shared/f; touch /shared/g",
    ]);
    assert_ne!(d.code, 0, "--volumes-from :ro written: {d:#?}");
    assert_eq!(d.out(), "from-owner");
    // A container created (never run) shares its volumes the same way.
    s.ok(&["create", "--name", "made", "-v", "/anon", "busybox:test"]);
    s.run_ok(&[
        "--volumes-from",
        "made",
        "busybox:test",
        "sh",
        "-c",
        "echo x > /anon/f",
    ]);
    assert_eq!(
        s.run_ok(&["--volumes-from", "made", "busybox:test", "cat", "/anon/f"]),
        "x"
    );
    s.ok(&["rm", "-v", "owner", "made"]);
    assert_eq!(s.volume_names(), ["vol"]);
    s.assert_clean("after the runs", None);
}

/// A local volume with `type`/`device` options is mounted on its
/// `_data` while a container runs, and unmounted after it.
#[test]
fn local_volumes_with_options_are_mounted_for_the_run() {
    let Some(s) = setup("local_volumes_with_options_are_mounted_for_the_run") else {
        return;
    };
    let host = s.host_dir("device", &[]);
    s.bind_volume("bv", &host);
    s.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "tv",
    ]);
    let out = s.run_ok(&[
        "-v",
        "bv:/b",
        "-v",
        "tv:/t",
        "busybox:test",
        "sh",
        "-c",
        "echo through > /b/f && grep ' /t ' /proc/mounts | cut -d' ' -f3",
    ]);
    assert_eq!(out, "tmpfs");
    assert_eq!(fs::read_to_string(host.join("f")).unwrap(), "through\n");
    // Unmounted, and no mount counted, after the run.
    for v in ["bv", "tv"] {
        let data = s.root().join("volumes").join(v).join("_data");
        assert!(!data.join("f").exists(), "{v}");
        assert!(!s
            .root()
            .join("volumes")
            .join(v)
            .join("mounts")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()));
    }
    s.ok(&["volume", "rm", "bv", "tv"]);
    assert_eq!(fs::read_to_string(host.join("f")).unwrap(), "through\n");
    s.assert_clean("after the run", None);
}

/// `cp` into a volume's path reaches the running container, which sees
/// the volume there and not its own layer; and `cp` out reads what the
/// container wrote there.
#[test]
fn cp_into_a_volume_reaches_the_running_container() {
    let Some(s) = setup("cp_into_a_volume_reaches_the_running_container") else {
        return;
    };
    let mut bg = s.spawn(&[
        "run",
        "--rm",
        "--name",
        "r",
        "-v",
        "cv:/vol",
        "busybox:test",
        "sh",
        "-c",
        "echo from-inside > /vol/out; while [ ! -f /vol/in ]; do sleep 0.1; done; cat /vol/in",
    ]);
    let out = s.path("out");
    wait_until(15, "the container to write /vol/out", || {
        s.run(&["cp", "r:/vol/out", out.to_str().unwrap()])
            .status
            .success()
    });
    assert_eq!(fs::read_to_string(&out).unwrap(), "from-inside\n");
    let f = s.path("in");
    fs::write(&f, "from-cp\n").unwrap();
    s.ok(&["cp", f.to_str().unwrap(), "r:/vol/in"]);
    assert_eq!(bg.wait().expect(0, "the run").out(), "from-cp");
    s.ok(&["volume", "rm", "cv"]);
    s.assert_clean("after the run", None);
}

/// A read-only mount stays read-only through `--volumes-from C:rw`.
#[test]
fn volumes_from_rw_keeps_a_read_only_mount_read_only() {
    let Some(s) = setup("volumes_from_rw_keeps_a_read_only_mount_read_only") else {
        return;
    };
    s.ok(&[
        "create",
        "--name",
        "owner",
        "-v",
        "x:/d:ro",
        "-v",
        "y:/w",
        "busybox:test",
    ]);
    let d = s.exec(&[
        "run",
        "--rm",
        "--volumes-from",
        "owner:rw",
        "busybox:test",
        "sh",
        "-c",
        "echo ok > /w/f && cat /w/f && echo no > /d/f",
    ]);
    assert_ne!(d.code, 0, "written through --volumes-from owner:rw: {d:#?}");
    assert_eq!(d.out(), "ok");
    assert!(d.stderr.contains("Read-only file system"), "{d:#?}");
    let vol = PathBuf::from(
        s.json(&["volume", "inspect", "x"])[0]["Mountpoint"]
            .as_str()
            .unwrap(),
    );
    assert!(!vol.join("f").exists());
    s.ok(&["rm", "owner"]);
    s.assert_clean("after the run", None);
}

/// The container's mounts are its own: the host sees neither its
/// volumes nor its proc, sys and dev, and after it nothing is left.
#[test]
fn container_mounts_stay_in_its_namespace() {
    let Some(s) = setup("container_mounts_stay_in_its_namespace") else {
        return;
    };
    let data = s.volume("data");
    let mut bg = s.spawn(&[
        "run",
        "--rm",
        "--name",
        "m",
        "-v",
        "data:/data",
        "busybox:test",
        "sh",
        "-c",
        "cat /proc/self/mountinfo > /data/mountinfo; touch /data/ready; \
         i=0; while [ ! -e /data/go ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done",
    ]);
    wait_until(15, "the container to start", || data.join("ready").exists());
    let id = s.inspect("m")["Id"].as_str().unwrap().to_owned();
    assert_eq!(s.inspect("m")["State"]["Status"], "running");
    assert_eq!(s.names(false), ["m"], "ps lists the running container");

    let host = host_mounts();
    let under_store: Vec<&MountLine> = host
        .iter()
        .filter(|m| Path::new(&m.point).starts_with(s.root()))
        .collect();
    for m in &under_store {
        assert!(
            !m.point.ends_with("/data"),
            "the volume's mount on the host: {m:?}"
        );
        assert!(
            !matches!(m.fstype.as_str(), "proc" | "sysfs" | "devpts" | "mqueue"),
            "the container's {} on the host: {m:?}",
            m.fstype
        );
    }
    // The root file system may be mounted on the host for the runtime,
    // but nothing the runtime mounts inside it is.
    for merged in under_store.iter().filter(|m| m.fstype == "overlay") {
        let inside: Vec<&MountLine> = host
            .iter()
            .filter(|m| m.point.starts_with(&format!("{}/", merged.point)))
            .collect();
        assert!(
            inside.is_empty(),
            "mounts under {}: {inside:#?}",
            merged.point
        );
    }

    // Inside: the usual file systems, and the volume.
    let inside = fs::read_to_string(data.join("mountinfo")).unwrap();
    let mut points: Vec<(String, String, String)> = inside
        .lines()
        .filter_map(|l| {
            let p = l.split(' ').nth(4)?.to_owned();
            let opts = l.split(' ').nth(5)?.to_owned();
            let t = l.split(" - ").nth(1)?.split(' ').next()?.to_owned();
            Some((p, t, opts))
        })
        .collect();
    points.sort();
    for (point, fstype) in [
        ("/", "overlay"),
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
    ] {
        assert!(
            points.iter().any(|(p, t, _)| p == point && t == fstype),
            "no {fstype} on {point} in the container: {points:#?}"
        );
    }
    assert!(points.iter().any(|(p, _, _)| p == "/data"), "{points:#?}");
    // Docker's read-only paths: a writable /proc/sys would set the host's
    // kernel (and, with --network host, its network).
    for ro in ["/sys", "/proc/sys"] {
        assert!(
            points
                .iter()
                .any(|(p, _, o)| p == ro && o.split(',').any(|x| x == "ro")),
            "{ro} is not read-only: {points:#?}"
        );
    }

    fs::write(data.join("go"), "").unwrap();
    bg.wait().expect(0, "the container");
    s.assert_clean("after the container", Some(&id));
    assert!(mounts_under(&s.root()).is_empty());
}

#[test]
fn two_containers_of_one_image_at_once() {
    let Some(s) = setup("two_containers_of_one_image_at_once") else {
        return;
    };
    let sync = s.volume("sync");
    let script = |me: &str, other: &str| {
        format!(
            "touch /only-{me}; touch /sync/{me}; \
             i=0; while [ ! -e /sync/{other} ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done; \
             test -e /sync/{other} && echo met; \
             test -e /only-{other} && echo sees-{other}; \
             test -e /only-{me} && echo sees-{me}; true"
        )
    };
    let (sa, sb) = (script("a", "b"), script("b", "a"));
    let mut a = s.spawn(&[
        "run",
        "--rm",
        "--name",
        "a",
        "-v",
        "sync:/sync",
        "busybox:test",
        "sh",
        "-c",
        &sa,
    ]);
    let mut b = s.spawn(&[
        "run",
        "--rm",
        "--name",
        "b",
        "-v",
        "sync:/sync",
        "busybox:test",
        "sh",
        "-c",
        &sb,
    ]);
    wait_until(20, "both containers to start", || {
        sync.join("a").exists() && sync.join("b").exists()
    });
    let (da, db) = (a.wait(), b.wait());
    assert_eq!(da.expect(0, "a").out(), "met\nsees-a");
    assert_eq!(db.expect(0, "b").out(), "met\nsees-b");
    // Nor did they change the image.
    assert_eq!(
        s.run_ok(&["busybox:test", "sh", "-c", "ls / | grep only; true"]),
        ""
    );
    s.assert_clean("after the runs", None);
}

#[test]
fn namespaces_are_new_network_included() {
    let Some(s) = setup("namespaces_are_new_network_included") else {
        return;
    };
    let probe = "echo $$; for n in mnt pid uts ipc net; do readlink /proc/self/ns/$n; done";
    let out = s.run_ok(&["busybox:test", "sh", "-c", probe]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert_eq!(lines[0], "1", "the command is PID 1");
    for (i, ns) in ["mnt", "pid", "uts", "ipc"].iter().enumerate() {
        assert_ne!(lines[i + 1], host_ns(ns), "{ns}: the host's");
    }
    // A network of its own (tests/network.rs: what is in it).
    assert_ne!(lines[5], host_ns("net"), "net: the host's by default");
    let out = s.run_ok(&[
        "--network",
        "host",
        "busybox:test",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(out, host_ns("net"));

    let out = s.run_ok(&[
        "--network",
        "none",
        "busybox:test",
        "sh",
        "-c",
        "readlink /proc/self/ns/net; cat /proc/net/dev",
    ]);
    let mut lines = out.lines();
    assert_ne!(lines.next().unwrap(), host_ns("net"));
    let ifaces: Vec<&str> = lines
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{out}");
    // And it is up, as Docker leaves it.
    let lo = s.run_ok(&[
        "--network",
        "none",
        "busybox:test",
        "ip",
        "link",
        "show",
        "lo",
    ]);
    assert!(lo.contains(",UP"), "{lo}");
    s.assert_clean("after the runs", None);
}

#[test]
fn environment_from_image_and_e() {
    let Some(s) = setup("environment_from_image_and_e") else {
        return;
    };
    if !s.configured_images("environment_from_image_and_e") {
        return;
    }
    // The image's Cmd and Env.
    assert_eq!(s.run_ok(&["busybox:cmd"]), "default from-image");
    let mut cmd = s.cmd(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "-e",
        "GREETING=override",
        "-e",
        "STRATA_PASSED",
        "-e",
        "STRATA_UNSET_XYZ",
        "--hostname",
        "envhost",
        "busybox:cmd",
        "env",
    ]);
    cmd.env("STRATA_PASSED", "through")
        .env_remove("STRATA_UNSET_XYZ");
    let d = s.exec_with(cmd, &["run", "env"]);
    let env: Vec<&str> = d.expect(0, "env").out().lines().collect();
    for want in [
        "FOO=bar",
        "GREETING=override",
        "STRATA_PASSED=through",
        "PATH=/bin:/usr/bin",
        "HOSTNAME=envhost",
    ] {
        assert!(env.contains(&want), "{want} not in {env:?}");
    }
    assert!(
        !env.iter().any(|v| v.starts_with("STRATA_UNSET_XYZ")),
        "{env:?}"
    );
    assert!(!env.contains(&"GREETING=from-image"), "{env:?}");
    // Docker's PATH when the image sets none.
    let env = s.run_ok(&["busybox:test", "env"]);
    assert!(
        env.lines().any(|l| l == format!("PATH={DEFAULT_PATH}")),
        "{env}"
    );
    // A command given replaces the image's Cmd.
    assert_eq!(s.run_ok(&["busybox:cmd", "echo", "given"]), "given");
    s.assert_clean("after the runs", None);
}

#[test]
fn workdir_and_users() {
    let Some(s) = setup("workdir_and_users") else {
        return;
    };
    assert_eq!(s.run_ok(&["busybox:test", "pwd"]), "/");
    assert_eq!(s.run_ok(&["-w", "/tmp", "busybox:test", "pwd"]), "/tmp");
    assert_eq!(
        s.run_ok(&["busybox:test", "sh", "-c", "id -u; id -g"]),
        "0\n0"
    );
    let out = s.run_ok(&[
        "-u",
        "app",
        "busybox:test",
        "sh",
        "-c",
        "id -u; id -g; id -G",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1000", "1000"], "{out}");
    let groups: Vec<&str> = lines[2].split(' ').collect();
    assert!(groups.contains(&"2000"), "the supplementary group: {out}");
    assert_eq!(
        s.run_ok(&[
            "-u",
            "1234:5678",
            "busybox:test",
            "sh",
            "-c",
            "id -u; id -g"
        ]),
        "1234\n5678"
    );
    assert_eq!(
        s.run_ok(&[
            "-u",
            "app:extra",
            "busybox:test",
            "sh",
            "-c",
            "id -u; id -g"
        ]),
        "1000\n2000"
    );
    // The user cannot write where only root may.
    let d = s.exec(&[
        "run",
        "--rm",
        "-u",
        "app",
        "busybox:test",
        "touch",
        "/root/x",
    ]);
    assert_ne!(d.code, 0, "{d:#?}");
    s.assert_clean("after the runs", None);
}

#[test]
fn hostname_and_per_container_files() {
    let Some(s) = setup("hostname_and_per_container_files") else {
        return;
    };
    let host_name = sh("hostname");
    let out = guard_host_file("/etc/hosts", || {
        guard_host_file("/etc/resolv.conf", || {
            s.run_ok(&[
                "--hostname",
                "myhost",
                "busybox:test",
                "sh",
                "-c",
                "hostname; cat /etc/hostname; echo $HOSTNAME; \
                 test -f /etc/resolv.conf && echo resolv; \
                 grep -q localhost /etc/hosts && echo hosts; \
                 echo '# strata-test' >> /etc/hosts; echo '# strata-test' >> /etc/resolv.conf",
            ])
        })
    });
    if sh("hostname") != host_name {
        sh(&format!("hostname '{host_name}'"));
        panic!("the container set the host's name");
    }
    assert_eq!(out, "myhost\nmyhost\nmyhost\nresolv\nhosts");
    // Another container does not see what this one wrote.
    let out = s.run_ok(&[
        "busybox:test",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(!out.contains("strata-test"), "{out}");

    // Without --hostname: the first 12 hex digits of the ID.
    let d = s.exec(&[
        "run",
        "--name",
        "h",
        "busybox:test",
        "sh",
        "-c",
        "hostname; cat /etc/hostname",
    ]);
    let id = s.inspect("h")["Id"].as_str().unwrap().to_owned();
    assert_eq!(
        d.expect(0, "hostname").out(),
        format!("{0}\n{0}", &id[..12])
    );
    s.ok(&["rm", "h"]);
    s.assert_clean("after the runs", Some(&id));
}

#[test]
fn stdin_only_with_i() {
    let Some(s) = setup("stdin_only_with_i") else {
        return;
    };
    let feed = |args: &[&str]| -> Done {
        let mut child = start_piped(s.cmd(args), Stdio::piped());
        let mut stdin = child.stdin.take().unwrap();
        // The write fails with EPIPE when strata does not read stdin.
        let _ = stdin.write_all(b"hello\n");
        drop(stdin);
        finish(child, &format!("strata {args:?}"))
    };
    let d = feed(&["run", "-i", "--rm", "busybox:test", "cat"]);
    assert_eq!(d.expect(0, "-i").out(), "hello");
    let d = feed(&["run", "--rm", "busybox:test", "sh", "-c", "cat; echo end"]);
    assert_eq!(d.expect(0, "without -i").out(), "end");
    s.assert_clean("after the runs", None);
}

#[test]
fn sigterm_and_sigint_reach_the_container() {
    let Some(s) = setup("sigterm_and_sigint_reach_the_container") else {
        return;
    };
    let sig = s.volume("sig");
    for (signal, code) in [("TERM", 3), ("INT", 4)] {
        let marker = format!("STRATA_TEST_SIG={signal}{}", std::process::id());
        let _ = fs::remove_file(sig.join("ready"));
        let script = format!(
            "trap 'exit {code}' {signal}; touch /sig/ready; \
             i=0; while [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; exit 99"
        );
        let mut bg = s.spawn(&[
            "run",
            "--rm",
            "-e",
            &marker,
            "-v",
            "sig:/sig",
            "-v",
            "/anon",
            "busybox:test",
            "sh",
            "-c",
            &script,
        ]);
        wait_until(15, "the container to start", || sig.join("ready").exists());
        assert_eq!(s.ps(false).len(), 1, "ps lists the running container");
        bg.signal(signal);
        bg.wait().expect(code, &format!("SIG{signal}"));
        assert_eq!(
            pids_with(&marker),
            Vec::<u32>::new(),
            "container processes left"
        );
        s.assert_clean(&format!("after SIG{signal}"), None);
        assert_eq!(s.volume_names(), ["sig"], "the anonymous volume stays");
    }
}

#[test]
fn start_a_runs_a_created_container() {
    let Some(s) = setup("start_a_runs_a_created_container") else {
        return;
    };
    s.ok(&[
        "create",
        "--name",
        "c",
        "busybox:test",
        "sh",
        "-c",
        "echo started; exit 5",
    ]);
    let st = &s.inspect("c")["State"];
    assert_eq!(st["Status"], "created", "{st}");
    let d = s.exec(&["start", "-a", "c"]);
    assert_eq!(d.expect(5, "start -a").out(), "started");
    let st = &s.inspect("c")["State"];
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(st["ExitCode"], 5, "{st}");
    assert_eq!(s.names(false), Vec::<String>::new(), "nothing running");
    assert_eq!(s.names(true), ["c"]);

    // create keeps -e -w -u --hostname for start.
    s.ok(&[
        "create",
        "--name",
        "cfg",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "app",
        "--hostname",
        "hh",
        "busybox:test",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u) $(hostname)",
    ]);
    let cfg = &s.inspect("cfg")["Config"];
    assert!(
        cfg["Env"].as_array().unwrap().iter().any(|e| e == "A=1"),
        "{cfg}"
    );
    assert_eq!(cfg["WorkingDir"], "/tmp", "{cfg}");
    assert_eq!(cfg["User"], "app", "{cfg}");
    assert_eq!(cfg["Hostname"], "hh", "{cfg}");
    assert_eq!(
        s.exec(&["start", "-a", "cfg"]).expect(0, "cfg").out(),
        "1 /tmp 1000 hh"
    );

    // A container run without --rm stays, keeps its files, and starts again.
    let count = "echo run >> /log; wc -l < /log";
    assert_eq!(
        s.exec(&["run", "--name", "again", "busybox:test", "sh", "-c", count])
            .expect(0, "first run")
            .out(),
        "1"
    );
    assert_eq!(s.inspect("again")["State"]["ExitCode"], 0);
    assert_eq!(
        s.exec(&["start", "-a", "again"]).expect(0, "again").out(),
        "2"
    );
    s.ok(&["rm", "c", "cfg", "again"]);
    s.assert_clean("after the runs", None);
}

#[test]
fn errors_are_125_and_leave_nothing() {
    let Some(s) = setup("errors_are_125_and_leave_nothing") else {
        return;
    };
    let strata_error = |d: &Done, what: &str, needle: &str| {
        assert_eq!(d.code, 125, "{what}: {d:#?}");
        assert!(d.stderr.contains("strata: error: "), "{what}: {d:#?}");
        assert!(d.stderr.contains(needle), "{what}: no {needle:?} in {d:#?}");
        s.assert_clean(what, None);
    };
    let d = s.exec(&[
        "run",
        "--rm",
        "--runtime",
        "/nonexistent/rt",
        "busybox:test",
        "true",
    ]);
    strata_error(&d, "a runtime that does not exist", "/nonexistent/rt");

    let empty = s.path("empty-path");
    fs::create_dir(&empty).unwrap();
    let args = ["run", "--rm", "busybox:test", "true"];
    let mut cmd = s.cmd(&args);
    cmd.env("PATH", &empty);
    let d = s.exec_with(cmd, &args);
    strata_error(&d, "no runtime on PATH", "crun");
    assert!(d.stderr.contains("runc"), "{d:#?}");

    let d = s.exec(&["run", "--rm", "busybox:test"]);
    strata_error(&d, "an image without a command", "no command");

    let d = s.exec(&["run", "--rm", "-u", "nosuchuser", "busybox:test", "true"]);
    strata_error(&d, "an unknown user", "nosuchuser");
    let d = s.exec(&[
        "run",
        "--rm",
        "-u",
        "app:nosuchgroup",
        "busybox:test",
        "true",
    ]);
    strata_error(&d, "an unknown group", "nosuchgroup");

    let d = s.exec(&[
        "run",
        "--rm",
        "-v",
        "/nonexistent/host:/x",
        "busybox:test",
        "true",
    ]);
    strata_error(&d, "a bind of a missing host path", "/nonexistent/host");

    let d = s.exec(&["run", "--rm", "nosuch:image", "true"]);
    strata_error(&d, "an image that does not exist", "nosuch:image");

    // A mount the runtime cannot make: a file over a directory.
    let file = s.path("a-file");
    fs::write(&file, "x").unwrap();
    let spec = format!("{}:/etc", file.display());
    let d = s.exec(&["run", "--rm", "-v", &spec, "busybox:test", "true"]);
    strata_error(
        &d,
        "a file bound over a directory",
        "before the container's command started",
    );

    // A runtime that fails without running anything: 125, not its 1.
    let rt = s.path("failing-runtime");
    fs::write(
        &rt,
        "#!/bin/sh
echo 'cannot make containers' >&2
exit 1
",
    )
    .unwrap();
    fs::set_permissions(&rt, fs::Permissions::from_mode(0o755)).unwrap();
    let rt = rt.to_str().unwrap();
    let d = s.exec(&["run", "--rm", "--runtime", rt, "busybox:test", "true"]);
    strata_error(&d, "a failing runtime", "failed (exit status 1)");
    assert!(d.stderr.contains("cannot make containers"), "{d:#?}");
    s.ok(&["create", "--name", "made", "busybox:test", "true"]);
    let d = s.exec(&["start", "-a", "--runtime", rt, "made"]);
    assert_eq!(d.code, 125, "start -a with a failing runtime: {d:#?}");
    s.ok(&["rm", "made"]);
    // The command's own 1 stays 1.
    s.exec(&["run", "--rm", "busybox:test", "false"])
        .expect(1, "false");
    s.assert_clean("a failing runtime", None);
    assert_eq!(s.volume_names(), Vec::<String>::new());
}

/// Whether `rt` can start containers on this host; says so loudly when
/// not (crun on a hybrid cgroup layout: see `crun_unusable`).
fn runtime_usable(rt: &str) -> bool {
    match (rt, strata_run::runtime::crun_unusable()) {
        ("crun", Some(why)) => {
            eprintln!("SKIPPED: crun on this host: {why}");
            false
        }
        _ => true,
    }
}

#[test]
fn both_runtimes() {
    let Some(s) = setup("both_runtimes") else {
        return;
    };
    for rt in ["crun", "runc"] {
        if !have_tools(&format!("both_runtimes ({rt})"), &[rt]) || !runtime_usable(rt) {
            continue;
        }
        let d = s.exec(&[
            "run",
            "--rm",
            "--runtime",
            rt,
            "-v",
            "/anon",
            "busybox:test",
            "sh",
            "-c",
            "echo $$ > /anon/pid; cat /etc/os-release; exit 7",
        ]);
        assert!(
            d.expect(7, rt).out().contains("ID=strata-busybox"),
            "{rt}: {d:#?}"
        );
        s.assert_clean(rt, None);
        assert_eq!(s.volume_names(), Vec::<String>::new(), "{rt}");
    }
}

/// Which runtime strata starts, seen through wrappers on PATH that log
/// their name and exec the real one.
#[test]
fn runtime_is_crun_then_runc_or_the_one_named() {
    let test = "runtime_is_crun_then_runc_or_the_one_named";
    let Some(s) = setup_with_tools(test, &["crun", "runc"]) else {
        return;
    };
    let log = s.path("runtime.log");
    let wrap = |dir: &str, name: &str| -> PathBuf {
        let d = s.path(dir);
        fs::create_dir_all(&d).unwrap();
        let real = sh(&format!("command -v {name}"));
        let w = d.join(name);
        fs::write(
            &w,
            format!(
                "#!/bin/sh\necho {name} >> '{}'\nexec '{real}' \"$@\"\n",
                log.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&w, fs::Permissions::from_mode(0o755)).unwrap();
        w
    };
    let both = s.path("both");
    wrap("both", "crun");
    wrap("both", "runc");
    let runc_only = s.path("runc-only");
    wrap("runc-only", "runc");
    let path = std::env::var("PATH").unwrap_or_default();
    let used = |dir: &Path, extra: &[&str]| -> String {
        let _ = fs::remove_file(&log);
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox:test", "echo", "ran"]);
        let mut cmd = s.cmd(&args);
        // runc-only: no crun anywhere on PATH, but what the rest needs.
        let p = if dir == runc_only {
            dir.display().to_string()
        } else {
            format!("{}:{path}", dir.display())
        };
        cmd.env("PATH", p);
        let d = s.exec_with(cmd, &args);
        assert_eq!(d.expect(0, &format!("{args:?}")).out(), "ran");
        let mut names: Vec<String> = fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        names.dedup();
        names.join(",")
    };
    if strata_run::runtime::crun_unusable().is_some() {
        assert_eq!(used(&both, &[]), "runc", "crun passed over");
    } else {
        assert_eq!(used(&both, &[]), "crun", "crun first");
    }
    assert_eq!(used(&both, &["--runtime", "runc"]), "runc");
    if runtime_usable("crun") {
        assert_eq!(used(&both, &["--runtime", "crun"]), "crun");
    }
    assert_eq!(used(&runc_only, &[]), "runc", "runc when there is no crun");
    let w = s.path("both/runc");
    assert_eq!(
        used(&runc_only, &["--runtime", w.to_str().unwrap()]),
        "runc",
        "a path"
    );
    s.assert_clean("after the runs", None);
}

#[test]
fn entrypoint_workdir_and_user_from_the_image() {
    let test = "entrypoint_workdir_and_user_from_the_image";
    let Some(s) = setup(test).filter(|s| s.configured_images(test)) else {
        return;
    };
    assert_eq!(s.run_ok(&["busybox:ep"]), "ep default");
    // Arguments replace the Cmd and follow the Entrypoint.
    assert_eq!(s.run_ok(&["busybox:ep", "given"]), "ep given");
    // Whatever follows the image is the command's, options too (as
    // `docker run IMAGE --help` passes --help to the command).
    assert_eq!(s.run_ok(&["busybox:ep", "-n", "x"]), "ep -n x");
    assert_eq!(s.run_ok(&["busybox:test", "ls", "-d", "/tmp"]), "/tmp");
    // --entrypoint replaces the image's and drops its Cmd (as Docker).
    assert_eq!(s.run_ok(&["--entrypoint", "echo", "busybox:ep"]), "");
    assert_eq!(
        s.run_ok(&["--entrypoint", "echo", "busybox:ep", "other"]),
        "other"
    );
    assert_eq!(
        s.run_ok(&["--entrypoint", "", "busybox:ep", "echo", "x"]),
        "x"
    );
    assert_eq!(
        s.run_ok(&["--entrypoint", "echo", "busybox:cmd"]),
        "",
        "the image's Cmd is dropped with its Entrypoint"
    );
    s.assert_clean("after the runs", None);
}

#[test]
fn image_workdir_and_user_are_defaults() {
    let test = "image_workdir_and_user_are_defaults";
    let Some(s) = setup(test).filter(|s| s.configured_images(test)) else {
        return;
    };
    assert_eq!(s.run_ok(&["busybox:wd"]), "/srv\n1000");
    assert_eq!(
        s.run_ok(&["-u", "root", "-w", "/tmp", "busybox:wd"]),
        "/tmp\n0"
    );
    s.assert_clean("after the runs", None);
}

/// Docker's default capabilities (moby `oci/caps/defaults.go`): CHOWN,
/// DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
/// NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
const DOCKER_CAPS: &str = "00000000a80425fb";

#[test]
fn capabilities_are_dockers() {
    let Some(s) = setup("capabilities_are_dockers") else {
        return;
    };
    let caps = |extra: &[&str]| -> Vec<String> {
        let mut args = extra.to_vec();
        args.extend_from_slice(&["busybox:test", "grep", "^Cap", "/proc/self/status"]);
        s.run_ok(&args)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let zero = "0000000000000000";
    assert_eq!(
        caps(&[]),
        [
            format!("CapInh: {zero}"),
            format!("CapPrm: {DOCKER_CAPS}"),
            format!("CapEff: {DOCKER_CAPS}"),
            format!("CapBnd: {DOCKER_CAPS}"),
            format!("CapAmb: {zero}"),
        ],
        "root"
    );
    // Another user keeps the bounding set and nothing else: no ambient
    // capabilities carry KILL or NET_BIND_SERVICE to it.
    assert_eq!(
        caps(&["-u", "app"]),
        [
            format!("CapInh: {zero}"),
            format!("CapPrm: {zero}"),
            format!("CapEff: {zero}"),
            format!("CapBnd: {DOCKER_CAPS}"),
            format!("CapAmb: {zero}"),
        ],
        "-u app"
    );
}

/// As `docker run` does, strata answers 125 for its own errors, usage
/// included, so that a script can tell them from the command's status
/// (clap's usual 2 is a common exit status of commands).
#[test]
fn usage_errors_are_125() {
    let Some(s) = setup("usage_errors_are_125") else {
        return;
    };
    let d = s.exec(&["run", "--no-such-flag", "busybox:test", "true"]);
    assert_eq!(d.code, 125, "{d:#?}");
    let d = s.exec(&[
        "run",
        "--network",
        "bridge-or-something",
        "busybox:test",
        "true",
    ]);
    assert_eq!(d.code, 125, "{d:#?}");
    let d = s.exec(&["start", "-a", "no-such-container"]);
    assert_eq!(d.code, 125, "{d:#?}");
    assert!(d.stderr.contains("no-such-container"), "{d:#?}");
    s.assert_clean("after the errors", None);
}

#[test]
fn output_passes_through_unchanged() {
    let Some(s) = setup("output_passes_through_unchanged") else {
        return;
    };
    let out = s
        .cmd(&["run", "--rm", "busybox:test", "cat", "/bin/busybox"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&out);
    let want = fs::read(sh("command -v busybox")).unwrap();
    assert!(
        out.stdout == want,
        "the binary came out changed ({} bytes)",
        out.stdout.len()
    );
    let d = s.exec(&[
        "run",
        "--rm",
        "busybox:test",
        "sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; exit 3",
    ]);
    d.expect(3, "stdout and stderr");
    assert_eq!(d.stdout, "to-stdout\n");
    assert!(d.stderr.ends_with("to-stderr\n"), "{d:#?}");
    assert!(!d.stderr.contains("to-stdout"), "{d:#?}");
    s.assert_clean("after the runs", None);
}

#[test]
fn a_terminal_only_with_t() {
    let test = "a_terminal_only_with_t";
    let Some(s) = setup_with_tools(test, &["script"]) else {
        return;
    };
    let probe = "test -t 0 && echo in; test -t 1 && echo out; test -t 2 && echo err; echo done";
    let out = on_terminal(
        &s,
        &["run", "--rm", "-t", "busybox:test", "sh", "-c", probe],
    );
    assert_eq!(out.trim(), "in\nout\nerr\ndone", "-t");
    // Without -t the command gets pipes, as under Docker, and never the
    // terminal strata runs on (it could read it, or push input into it
    // with TIOCSTI: runc's docs/terminals.md).
    let out = on_terminal(&s, &["run", "--rm", "busybox:test", "sh", "-c", probe]);
    assert_eq!(out.trim(), "done", "without -t");
    let out = on_terminal(
        &s,
        &["run", "--rm", "-i", "busybox:test", "sh", "-c", probe],
    );
    assert_eq!(out.trim(), "done", "-i without -t");
    s.assert_clean("after the runs", None);
}

#[test]
fn start_without_a_runs_in_the_background() {
    let Some(s) = setup("start_without_a_runs_in_the_background") else {
        return;
    };
    s.ok(&[
        "create",
        "--name",
        "bg",
        "-v",
        "flag:/flag",
        "busybox:test",
        "sh",
        "-c",
        "echo up; while [ ! -e /flag/stop ]; do sleep 0.05; done; echo down; exit 4",
    ]);
    // Prints the name once the container runs, and returns.
    assert_eq!(s.ok(&["start", "bg"]), "bg");
    assert_eq!(s.names(false), ["bg"], "running");
    assert_eq!(s.inspect("bg")["State"]["Status"], "running");
    // Running: neither started again nor removed.
    assert!(s.err(&["start", "bg"]).contains("already running"));
    assert!(s.err(&["rm", "bg"]).contains("running"));
    let flag = PathBuf::from(
        s.json(&["volume", "inspect", "flag"])[0]["Mountpoint"]
            .as_str()
            .unwrap(),
    );
    fs::write(flag.join("stop"), "").unwrap();
    wait_until(20, "the background container to exit", || {
        s.inspect("bg")["State"]["Status"] == "exited"
    });
    let st = &s.inspect("bg")["State"];
    assert_eq!(st["ExitCode"], 4, "{st}");
    let id = s.inspect("bg")["Id"].as_str().unwrap().to_owned();
    assert_eq!(s.ok(&["logs", "bg"]), "up\ndown");
    // A command that is not there: the error, with Docker's status.
    s.ok(&["create", "--name", "bad", "busybox:test", "nosuch"]);
    let d = s.exec(&["start", "bad"]);
    d.expect(127, "start of a missing command");
    assert!(d.stderr.contains("executable file not found"), "{d:#?}");
    s.ok(&["rm", "bg", "bad"]);
    s.assert_clean("after the background runs", Some(&id));
}
