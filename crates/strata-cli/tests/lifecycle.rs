//! Containers in the background, as a Docker user drives them: `run -d`,
//! `logs` (Docker's json-file records), `kill`, `stop`, `wait`,
//! `restart`, `run -d --rm`, and a state that survives neither a reboot
//! nor a reused PID. Real runtimes (crun or runc) on overlay2.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use common::Strata;
use containers::{setup, wait_until};

fn status(s: &Strata, name: &str) -> String {
    s.inspect(name)["State"]["Status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn log_file(s: &Strata, name: &str) -> PathBuf {
    let id = s.inspect(name)["Id"].as_str().unwrap().to_owned();
    s.root()
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"))
}

#[test]
fn run_d_logs_kill_and_wait() {
    let Some(s) = setup("run_d_logs_kill_and_wait") else {
        return;
    };
    let id = s.ok(&[
        "run",
        "-d",
        "--name",
        "bg",
        "busybox:test",
        "sh",
        "-c",
        "trap 'echo got TERM; exit 3' TERM; echo out; echo err >&2; \
         while :; do sleep 0.1; done",
    ]);
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(status(&s, "bg"), "running");
    assert_eq!(s.names(false), ["bg"]);
    wait_until(20, "the output to be logged", || {
        s.ok(&["logs", "bg"]).contains("out")
    });
    // stdout's records to stdout, stderr's to stderr, as docker logs.
    let d = s.exec(&["logs", "bg"]);
    d.expect(0, "logs");
    assert_eq!(d.stdout, "out\n");
    wait_until(20, "stderr to be logged", || {
        s.exec(&["logs", "bg"]).stderr == "err\n"
    });
    // The records are Docker's json-file lines.
    let text = fs::read_to_string(log_file(&s, "bg")).unwrap();
    let recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2, "{text}");
    let out = recs.iter().find(|r| r["stream"] == "stdout").unwrap();
    assert_eq!(out["log"], "out\n");
    let time = out["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() >= 20, "{time}");
    // -t puts the record's time first.
    let stamped = s.ok(&["logs", "-t", "bg"]);
    assert_eq!(stamped, format!("{time} out"));

    assert!(s
        .err(&["kill", "-s", "NOSUCH", "bg"])
        .contains("invalid signal"));
    assert_eq!(s.ok(&["kill", "-s", "SIGTERM", "bg"]), "bg");
    assert_eq!(s.ok(&["wait", "bg"]), "3");
    assert_eq!(status(&s, "bg"), "exited");
    assert_eq!(s.inspect("bg")["State"]["ExitCode"], 3);
    assert!(s.ok(&["logs", "bg"]).ends_with("got TERM"));
    assert!(s.err(&["kill", "bg"]).contains("is not running"));
    // Waiting for a stopped container returns its code at once.
    assert_eq!(s.ok(&["wait", "bg"]), "3");
    s.ok(&["rm", "bg"]);
    s.assert_clean("after kill", Some(&id));
}

#[test]
fn stop_kills_what_ignores_sigterm_and_restart_runs_again() {
    let Some(s) = setup("stop_kills_what_ignores_sigterm_and_restart_runs_again") else {
        return;
    };
    s.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox:test",
        "sh",
        "-c",
        "trap '' TERM; echo run; while :; do sleep 0.1; done",
    ]);
    wait_until(20, "the first run", || s.ok(&["logs", "stubborn"]) == "run");
    let first = s.inspect("stubborn")["State"]["StartedAt"].clone();
    assert_eq!(s.ok(&["stop", "-t", "1", "stubborn"]), "stubborn");
    assert_eq!(status(&s, "stubborn"), "exited");
    assert_eq!(s.ok(&["wait", "stubborn"]), "137", "SIGKILL after 1 s");
    // Stopping a stopped container is no error.
    assert_eq!(s.ok(&["stop", "stubborn"]), "stubborn");

    assert_eq!(s.ok(&["restart", "-t", "1", "stubborn"]), "stubborn");
    assert_eq!(status(&s, "stubborn"), "running");
    assert_ne!(s.inspect("stubborn")["State"]["StartedAt"], first);
    wait_until(20, "the second run's output", || {
        s.ok(&["logs", "stubborn"]) == "run\nrun"
    });
    assert_eq!(s.ok(&["logs", "--tail", "1", "stubborn"]), "run");
    // Restarting a running container stops it first.
    assert_eq!(s.ok(&["restart", "-t", "1", "stubborn"]), "stubborn");
    wait_until(20, "the third run's output", || {
        s.ok(&["logs", "stubborn"]) == "run\nrun\nrun"
    });
    s.ok(&["rm", "-f", "stubborn"]);
    s.assert_clean("after restart", None);
}

#[test]
fn logs_f_follows_until_the_container_exits() {
    let Some(s) = setup("logs_f_follows_until_the_container_exits") else {
        return;
    };
    s.ok(&[
        "run",
        "-d",
        "--name",
        "counter",
        "busybox:test",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo $i; sleep 0.2; done",
    ]);
    // Returns by itself when the container ends, with every line.
    let d = s.exec(&["logs", "-f", "counter"]);
    d.expect(0, "logs -f");
    assert_eq!(d.stdout, "1\n2\n3\n4\n5\n");
    assert_eq!(s.ok(&["wait", "counter"]), "0");
    s.ok(&["rm", "counter"]);
}

#[test]
fn run_d_rm_removes_the_container_when_it_exits() {
    let Some(s) = setup("run_d_rm_removes_the_container_when_it_exits") else {
        return;
    };
    let id = s.ok(&[
        "run",
        "-d",
        "--rm",
        "-v",
        "/anon",
        "busybox:test",
        "sleep",
        "30",
    ]);
    assert_eq!(s.ps(false).len(), 1);
    let runtime = s.inspect(&id)["State"]["Runtime"].clone();
    // A restart is not the exit that removes it; the runtime stays.
    s.ok(&["restart", "-t", "1", &id]);
    assert_eq!(s.ps(false).len(), 1, "removed by its restart");
    assert_eq!(s.inspect(&id)["State"]["Runtime"], runtime);
    s.ok(&["stop", "-t", "1", &id]);
    wait_until(20, "the container to be removed", || s.ps(true).is_empty());
    assert!(s.volume_names().is_empty(), "anonymous volume left");
    s.assert_clean("after run -d --rm", Some(&id));
}

/// `rmi NAME:TAG` of the image a running container uses, by its only
/// tag, is refused, as Docker refuses it, whether or not a child image
/// was committed from it; another tag of it is simply untagged; `rmi -f`
/// only untags it, and the container runs on.
#[test]
fn rmi_by_tag_refuses_the_image_of_a_running_container() {
    let Some(s) = setup("rmi_by_tag_refuses_the_image_of_a_running_container") else {
        return;
    };
    let id = s.ok(&["run", "-d", "--name", "up", "busybox:test", "sleep", "30"]);
    assert_eq!(status(&s, "up"), "running");
    let err = s.err(&["rmi", "busybox:test"]);
    assert!(err.contains("used by container up"), "{err}");
    s.ok(&["commit", "up", "child:1"]);
    let err = s.err(&["rmi", "busybox:test"]);
    assert!(err.contains("used by container up"), "{err}");
    // Another of the image's tags goes as Docker lets it: the image keeps
    // its name.
    s.ok(&["tag", "busybox:test", "bb:1"]);
    assert_eq!(s.ok(&["rmi", "bb:1"]), "Untagged: bb:1");
    assert_eq!(
        s.ok(&["rmi", "-f", "busybox:test"]),
        "Untagged: busybox:test"
    );
    assert_eq!(status(&s, "up"), "running");
    s.ok(&["stop", "-t", "1", "up"]);
    s.ok(&["rm", "up"]);
    s.assert_clean("after rmi of a running container's image", Some(&id));
}

/// A container recorded as running reads as exited once the strata
/// process keeping it is gone — also after a reboot (another boot ID),
/// and when its PID now names another process (another start time).
#[test]
fn a_running_state_from_another_boot_or_process_reads_as_exited() {
    let Some(s) = setup("a_running_state_from_another_boot_or_process_reads_as_exited") else {
        return;
    };
    let id = s.ok(&["create", "--name", "c", "busybox:test", "true"]);
    let state = s.root().join("containers").join(&id).join("state.json");
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_owned();
    // This test process stands in for the strata keeping it.
    let me = std::process::id();
    let stat = fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
    let start: u64 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let write = |boot_id: &str, pid_start: u64| {
        let v = serde_json::json!({
            "Status": "running", "Pid": me, "ExitCode": 0,
            "StartedAt": "2026-01-01T00:00:00Z", "FinishedAt": "",
            "Runtime": "/usr/bin/true", "BootId": boot_id, "PidStart": pid_start,
        });
        fs::write(&state, v.to_string()).unwrap();
    };
    write(&boot, start);
    assert_eq!(status(&s, "c"), "running", "the same process of this boot");
    write("00000000-0000-0000-0000-000000000000", start);
    assert_eq!(status(&s, "c"), "exited", "another boot");
    assert_eq!(s.inspect("c")["State"]["ExitCode"], 255);
    write(&boot, start + 1);
    assert_eq!(status(&s, "c"), "exited", "a reused PID");
    let listed = s.ps(true);
    assert_eq!(listed.len(), 1);
    assert!(s.ps(false).is_empty(), "ps lists it as running");
    fs::remove_file(&state).unwrap();
    s.ok(&["rm", "c"]);
}

#[test]
fn exec_runs_in_the_running_container() {
    let Some(s) = setup("exec_runs_in_the_running_container") else {
        return;
    };
    let id = s.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "FOO=bar",
        "busybox:test",
        "sh",
        "-c",
        "echo exec-target-marker >/dev/null; while :; do sleep 0.1; done",
    ]);
    assert_eq!(s.ok(&["exec", "box", "echo", "hi"]), "hi");
    s.exec(&["exec", "box", "sh", "-c", "exit 7"])
        .expect(7, "the command's status");
    let d = s.exec(&["exec", "box", "nosuch"]);
    d.expect(127, "a missing command");
    assert!(d.stderr.contains("executable file not found"), "{d:#?}");
    // User, working directory and environment: the container's unless
    // asked otherwise.
    assert_eq!(s.ok(&["exec", "box", "id", "-u"]), "0");
    assert_eq!(s.ok(&["exec", "-u", "app", "box", "id", "-u"]), "1000");
    assert_eq!(s.ok(&["exec", "box", "pwd"]), "/");
    assert_eq!(s.ok(&["exec", "-w", "/tmp", "box", "pwd"]), "/tmp");
    assert_eq!(
        s.ok(&["exec", "-e", "X=1", "box", "sh", "-c", "echo $X $FOO"]),
        "1 bar"
    );
    // In the container's namespaces: its pid 1 is the container's command.
    let init = s.ok(&["exec", "box", "cat", "/proc/1/cmdline"]);
    assert!(init.contains("exec-target-marker"), "{init}");
    // With the container's capabilities (Docker's 14).
    let caps = s.ok(&["exec", "box", "grep", "CapEff", "/proc/self/status"]);
    assert!(caps.ends_with("00000000a80425fb"), "{caps}");
    // -i passes stdin on; without it the process reads nothing.
    let input = s.path("input");
    fs::write(&input, "data\n").unwrap();
    assert_eq!(
        s.ok_with_input(&["exec", "-i", "box", "cat"], &input),
        "data"
    );
    assert_eq!(s.ok_with_input(&["exec", "box", "cat"], &input), "");
    let left: Vec<_> = fs::read_dir(s.root().join("containers").join(&id))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("exec-"))
        .collect();
    assert!(left.is_empty(), "exec specs left: {left:?}");

    s.ok(&["stop", "-t", "1", "box"]);
    let d = s.exec(&["exec", "box", "true"]);
    d.expect(125, "exec in a stopped container");
    assert!(d.stderr.contains("is not running"), "{d:#?}");
    s.ok(&["rm", "box"]);
    s.assert_clean("after exec", Some(&id));
}
