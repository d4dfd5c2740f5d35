//! What Docker keeps in a container's HostConfig: `--read-only`,
//! `--tmpfs`, `--memory`, `--cpus`, `--pids-limit` and `--init`, seen
//! from inside a container run by a real runtime. The limits are read
//! back from the container's own cgroup files (v1 or v2 layout) and
//! `--pids-limit` is also shown to stop a fork.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use containers::{setup, setup_with_tools};

/// `cat` of the first of `files` (cgroup v1 path, then v2) that exists.
fn first_of(files: &[&str]) -> String {
    let tries: Vec<String> = files
        .iter()
        .map(|f| format!("cat {f} 2>/dev/null"))
        .collect();
    tries.join(" || ")
}

#[test]
fn read_only_root_and_tmpfs() {
    let Some(s) = setup("read_only_root_and_tmpfs") else {
        return;
    };
    let d = s.exec(&["run", "--rm", "--read-only", "busybox:test", "touch", "/x"]);
    d.expect(1, "writing to a read-only root");
    assert!(d.stderr.contains("Read-only file system"), "{d:#?}");
    let out = s.run_ok(&[
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        "busybox:test",
        "sh",
        "-c",
        "touch /scratch/y && echo written; grep ' /scratch ' /proc/mounts",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("written"));
    let mount = lines.next().unwrap_or_default();
    assert!(mount.starts_with("tmpfs /scratch tmpfs "), "{mount}");
    for o in ["nosuid", "nodev", "noexec", "size=1024k"] {
        assert!(mount.contains(o), "{o} missing: {mount}");
    }
    // cp keeps to the same rules: no writing into a read-only root, and
    // a tmpfs is out of its reach (the running container's alone).
    s.ok(&[
        "create",
        "--name",
        "ro",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "busybox:test",
        "true",
    ]);
    let file = s.path("f");
    std::fs::write(&file, "x").unwrap();
    let f = file.to_str().unwrap();
    assert!(s
        .err(&["cp", f, "ro:/f"])
        .contains("rootfs is marked read-only"));
    assert!(s.err(&["cp", f, "ro:/scratch/f"]).contains("tmpfs"));
    s.ok(&["rm", "ro"]);
    for bad in ["scratch", "/", "/a/../b"] {
        let d = s.exec(&["run", "--rm", "--tmpfs", bad, "busybox:test", "true"]);
        d.expect(125, "a bad --tmpfs");
        assert!(d.stderr.contains("--tmpfs"), "{d:#?}");
    }
    s.assert_clean("after the runs", None);
}

#[test]
fn memory_cpu_and_pids_limits_reach_the_cgroup() {
    let Some(s) = setup("memory_cpu_and_pids_limits_reach_the_cgroup") else {
        return;
    };
    let script = [
        first_of(&[
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory.max",
        ]),
        first_of(&[
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            "/sys/fs/cgroup/cpu.max",
        ]),
        first_of(&["/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"]),
    ]
    .map(|c| format!("({c})"))
    .join("; ");
    let out = s.run_ok(&[
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "10",
        "busybox:test",
        "sh",
        "-c",
        &script,
    ]);
    let info = s.ok(&["info"]);
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("Cgroup Version: "))
        .unwrap_or_else(|| panic!("no cgroup version in info: {info}"));
    if version != "2" {
        eprintln!("NOTE: this host's cgroups are v{version}: the limits are checked there");
    }
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "67108864");
    assert!(
        lines[1] == "50000" || lines[1] == "50000 100000",
        "cpu quota: {}",
        lines[1]
    );
    assert_eq!(lines[2], "10");
    // The pids limit stops forks past it.
    let d = s.exec(&[
        "run",
        "--rm",
        "--pids-limit",
        "10",
        "busybox:test",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do sleep 1 & done; wait",
    ]);
    assert!(d.stderr.contains("can't fork"), "{d:#?}");
    for (flag, bad) in [
        ("--memory", "1x"),
        ("--memory", "1m"),
        ("--cpus", "0"),
        ("--pids-limit", "many"),
    ] {
        let d = s.exec(&["run", "--rm", flag, bad, "busybox:test", "true"]);
        d.expect(125, "a bad limit");
        assert!(d.stderr.contains(bad), "{d:#?}");
    }
    s.assert_clean("after the runs", None);
}

#[test]
fn init_runs_the_command_as_its_child() {
    let test = "init_runs_the_command_as_its_child";
    let Some(s) = setup_with_tools(test, &["tini-static"]) else {
        return;
    };
    let out = s.run_ok(&["--init", "busybox:test", "cat", "/proc/1/cmdline"]);
    let args: Vec<&str> = out.split('\0').filter(|a| !a.is_empty()).collect();
    assert_eq!(args, ["/sbin/docker-init", "--", "cat", "/proc/1/cmdline"]);
    // Without it, the command is pid 1.
    let out = s.run_ok(&["busybox:test", "cat", "/proc/1/cmdline"]);
    assert!(out.starts_with("cat\0"), "{out:?}");
    s.assert_clean("after the runs", None);
}
