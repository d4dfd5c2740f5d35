//! A container's confinement through the built binary and the real
//! runtimes (crun and runc, each that is installed and can run here):
//! the default seccomp profile stops the attack it is for (a user
//! namespace, then `mount`), `--security-opt seccomp=unconfined` and
//! `--privileged` lift it, capabilities follow `--cap-add`/`--cap-drop`
//! as in Docker, `no-new-privileges` reaches the process, a profile file
//! is applied, and `start` confines as `create` was told.
//!
//! The wider sweep of denied calls (keyring, bpf, modules, kexec, ...)
//! runs perl's `syscall` in the Debian image, since busybox has no applet
//! for most of them; it needs `STRATA_TEST_DEBIAN_TAR`.

mod common;
#[path = "common/containers.rs"]
mod containers;
#[path = "common/fixtures.rs"]
mod fixtures;

use std::fs;

use common::Strata;
use containers::{debian_tar, setup, Done};
use fixtures::have_tools;

/// Docker's 14 default capabilities as `/proc/self/status` shows them.
const DOCKER_CAPS: &str = "00000000a80425fb";
const NO_CAPS: &str = "0000000000000000";
const EPERM: &str = "Operation not permitted";

/// The attack: a user namespace in which root has every capability,
/// then a mount made with them.
const ATTACK: &str = "busybox unshare -U -r -m sh -c 'mount -t tmpfs x /tmp && echo mounted'";

/// The runtimes installed that can start containers here (crun is
/// passed over on a hybrid cgroup layout, as `strata` itself does).
fn runtimes(test: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for rt in ["crun", "runc"] {
        if !have_tools(&format!("{test} ({rt})"), &[rt]) {
            continue;
        }
        if let (true, Some(why)) = (rt == "crun", strata_run::runtime::crun_unusable()) {
            eprintln!("SKIPPED: {test} with crun on this host: {why}");
            continue;
        }
        out.push(rt);
    }
    out
}

/// `run --rm --runtime RT FLAGS... busybox:test sh -c SCRIPT`.
fn run(s: &Strata, rt: &str, flags: &[&str], script: &str) -> Done {
    let mut args = vec!["run", "--rm", "--runtime", rt];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox:test", "sh", "-c", script]);
    s.exec(&args)
}

/// The value of `field` in the container's `/proc/self/status`.
fn status(s: &Strata, rt: &str, flags: &[&str], field: &str) -> String {
    let d = run(s, rt, flags, &format!("grep '^{field}:' /proc/self/status"));
    d.expect(0, &format!("{rt} {flags:?}"));
    d.out()
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// strata's own bounding set: what `--privileged` hands on.
fn own_bounding() -> String {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn seccomp_default_profile_refuses_a_user_namespace_and_mount() {
    let test = "seccomp_default_profile_refuses_a_user_namespace_and_mount";
    let Some(s) = setup(test) else { return };
    for rt in runtimes(test) {
        assert_eq!(status(&s, rt, &[], "Seccomp"), "2", "{rt}: a filter");
        let d = run(&s, rt, &[], ATTACK);
        assert_ne!(d.code, 0, "{rt}: {d:#?}");
        assert!(
            d.stderr.contains("unshare") && d.stderr.contains(EPERM),
            "{rt}: {d:#?}"
        );
        assert!(!d.stdout.contains("mounted"), "{rt}: {d:#?}");
        // Without -m, as the attack is often written: refused the same.
        let d = run(
            &s,
            rt,
            &[],
            "busybox unshare -U -r sh -c 'mount -t tmpfs x /tmp'",
        );
        assert!(d.code != 0 && d.stderr.contains(EPERM), "{rt}: {d:#?}");
        // Root without the capability cannot mount either, namespace or
        // not (the filter refuses `mount` itself).
        let d = run(&s, rt, &[], "mount -t tmpfs x /tmp");
        assert_ne!(d.code, 0, "{rt}: {d:#?}");
        // nsenter's setns is refused too.
        let d = run(&s, rt, &[], "busybox nsenter -t 1 -m true");
        assert!(d.code != 0 && d.stderr.contains(EPERM), "{rt}: {d:#?}");
        // Ordinary work goes on.
        let d = run(
            &s,
            rt,
            &[],
            "mkdir /tmp/d && echo ok > /tmp/d/f && cat /tmp/d/f",
        );
        assert_eq!(d.expect(0, rt).out(), "ok");
    }
}

#[test]
fn seccomp_unconfined_lets_the_user_namespace_mount_through() {
    let test = "seccomp_unconfined_lets_the_user_namespace_mount_through";
    let Some(s) = setup(test) else { return };
    for rt in runtimes(test) {
        let flags = ["--security-opt", "seccomp=unconfined"];
        assert_eq!(status(&s, rt, &flags, "Seccomp"), "0", "{rt}: no filter");
        let d = run(&s, rt, &flags, ATTACK);
        assert_eq!(d.expect(0, rt).out(), "mounted");
        // Capabilities stay Docker's.
        assert_eq!(status(&s, rt, &flags, "CapEff"), DOCKER_CAPS, "{rt}");
    }
}

#[test]
fn seccomp_lifted_and_every_capability_and_device_with_privileged() {
    let test = "seccomp_lifted_and_every_capability_and_device_with_privileged";
    let Some(s) = setup(test) else { return };
    // A host device no default container has: the first character
    // device at the top of the host's /dev beyond the standard ones.
    let standard = [
        "null", "zero", "full", "random", "urandom", "tty", "console", "ptmx",
    ];
    let extra = fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .filter(|e| {
            use std::os::unix::fs::FileTypeExt;
            e.file_type().map(|t| t.is_char_device()).unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| !standard.contains(&n.as_str()));
    let p = ["--privileged"];
    for rt in runtimes(test) {
        assert_eq!(status(&s, rt, &p, "CapEff"), own_bounding(), "{rt}");
        assert_eq!(status(&s, rt, &p, "CapBnd"), own_bounding(), "{rt}");
        assert_eq!(status(&s, rt, &p, "Seccomp"), "0", "{rt}");
        let d = run(&s, rt, &p, "mount -t tmpfs x /tmp && echo mounted");
        assert_eq!(d.expect(0, rt).out(), "mounted");
        // No masked /proc paths, /sys writable.
        // (/proc/keys: masked by default and present on every kernel
        // with keys, unlike /proc/kcore.)
        let d = run(&s, rt, &p, "grep -c ' /proc/keys ' /proc/mounts || true");
        assert_eq!(d.expect(0, rt).out(), "0", "{rt}: /proc/keys unmasked");
        let d = run(&s, rt, &[], "grep -c ' /proc/keys ' /proc/mounts");
        assert_eq!(d.expect(0, rt).out(), "1", "{rt}: masked by default");
        let d = run(
            &s,
            rt,
            &p,
            "grep -c ' /proc/sys proc ro,' /proc/mounts || true",
        );
        assert_eq!(d.expect(0, rt).out(), "0", "{rt}: /proc/sys writable");
        let d = run(&s, rt, &p, "grep ' /sys sysfs ' /proc/mounts");
        assert!(d.expect(0, rt).out().contains(" rw,"), "{rt}: {d:#?}");
        if let Some(dev) = &extra {
            let check = format!("test -c /dev/{dev} && echo there || echo missing");
            assert_eq!(
                run(&s, rt, &p, &check).expect(0, rt).out(),
                "there",
                "{rt} {dev}"
            );
            assert_eq!(
                run(&s, rt, &[], &check).expect(0, rt).out(),
                "missing",
                "{rt} {dev}"
            );
        }
    }
}

#[test]
fn cap_drop_all_leaves_no_capability_and_cap_add_gives_one_back() {
    let test = "cap_drop_all_leaves_no_capability_and_cap_add_gives_one_back";
    let Some(s) = setup(test) else { return };
    for rt in runtimes(test) {
        assert_eq!(status(&s, rt, &[], "CapEff"), DOCKER_CAPS, "{rt}");
        assert_eq!(
            status(&s, rt, &["--cap-drop", "ALL"], "CapEff"),
            NO_CAPS,
            "{rt}"
        );
        // CAP_KILL (5) alone.
        assert_eq!(
            status(
                &s,
                rt,
                &["--cap-drop", "all", "--cap-add", "cap_kill"],
                "CapEff"
            ),
            "0000000000000020",
            "{rt}"
        );
        // Docker's set without CHOWN (0).
        assert_eq!(
            status(&s, rt, &["--cap-drop", "CHOWN"], "CapEff"),
            "00000000a80425fa",
            "{rt}"
        );
        // Root without CAP_CHOWN cannot give a file away.
        let d = run(
            &s,
            rt,
            &["--cap-drop", "chown"],
            "touch /tmp/f; chown 1 /tmp/f",
        );
        assert!(d.code != 0 && d.stderr.contains(EPERM), "{rt}: {d:#?}");
    }
}

#[test]
fn seccomp_follows_cap_add_sys_admin_so_mount_works() {
    let test = "seccomp_follows_cap_add_sys_admin_so_mount_works";
    let Some(s) = setup(test) else { return };
    for rt in runtimes(test) {
        let flags = ["--cap-add", "SYS_ADMIN"];
        // Docker's 14 and CAP_SYS_ADMIN (21); the filter stays.
        assert_eq!(status(&s, rt, &flags, "CapEff"), "00000000a82425fb", "{rt}");
        assert_eq!(status(&s, rt, &flags, "Seccomp"), "2", "{rt}");
        let d = run(&s, rt, &flags, "mount -t tmpfs x /tmp && echo mounted");
        assert_eq!(d.expect(0, rt).out(), "mounted");
    }
}

#[test]
fn no_new_privileges_reaches_the_process() {
    let test = "no_new_privileges_reaches_the_process";
    let Some(s) = setup(test) else { return };
    for rt in runtimes(test) {
        assert_eq!(
            status(&s, rt, &[], "NoNewPrivs"),
            "0",
            "{rt}: Docker's default"
        );
        for opt in ["no-new-privileges", "no-new-privileges=true"] {
            let flags = ["--security-opt", opt];
            assert_eq!(status(&s, rt, &flags, "NoNewPrivs"), "1", "{rt} {opt}");
        }
        let flags = ["--security-opt", "no-new-privileges=false"];
        assert_eq!(status(&s, rt, &flags, "NoNewPrivs"), "0", "{rt}");
    }
}

#[test]
fn seccomp_profile_file_is_applied_and_unknown_names_are_skipped() {
    let test = "seccomp_profile_file_is_applied_and_unknown_names_are_skipped";
    let Some(s) = setup(test) else { return };
    let profile = s.path("no-mkdir.json");
    // Allow everything but mkdir; one name no libseccomp knows, which
    // both runtimes skip rather than fail on.
    fs::write(
        &profile,
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
            ],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "comment": "no new directories"},
                {"names": ["strata_no_such_syscall"], "action": "SCMP_ACT_ERRNO"}
            ]
        }"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    for rt in runtimes(test) {
        let flags = ["--security-opt", opt.as_str()];
        let d = run(&s, rt, &flags, "mkdir /tmp/d");
        assert!(d.code != 0 && d.stderr.contains(EPERM), "{rt}: {d:#?}");
        // Everything else is allowed by this profile, mount included.
        let d = run(&s, rt, &flags, "touch /tmp/f && echo ok");
        assert_eq!(d.expect(0, rt).out(), "ok");
    }
}

#[test]
fn start_confines_as_create_was_told() {
    let test = "start_confines_as_create_was_told";
    let Some(s) = setup(test) else { return };
    let profile = s.path("p.json");
    fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    let opt = format!("seccomp={}", profile.display());
    for rt in runtimes(test) {
        let name = format!("c-{rt}");
        s.ok(&[
            "create",
            "--name",
            &name,
            "--cap-drop",
            "ALL",
            "--cap-add",
            "chown",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            &opt,
            "busybox:test",
            "grep",
            "-E",
            "^(CapEff|NoNewPrivs|Seccomp):",
            "/proc/self/status",
        ]);
        // The file may change or go: the record holds the profile.
        fs::write(&profile, "not json").unwrap();
        let d = s.exec(&["start", "-a", "--runtime", rt, &name]);
        let lines: Vec<String> = d
            .expect(0, rt)
            .out()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            lines,
            ["CapEff: 0000000000000001", "NoNewPrivs: 1", "Seccomp: 2"],
            "{rt}"
        );
        let config = &s.inspect(&name)["Config"]["Security"];
        assert_eq!(config["CapDrop"], serde_json::json!(["ALL"]), "{config}");
        assert_eq!(
            config["CapAdd"],
            serde_json::json!(["CAP_CHOWN"]),
            "{config}"
        );
        assert_eq!(config["NoNewPrivileges"], true, "{config}");
        assert_eq!(
            config["Seccomp"]["profile"]["defaultAction"], "SCMP_ACT_ALLOW",
            "{config}"
        );
        s.ok(&["rm", &name]);
        fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    }
}

#[test]
fn bad_security_flags_are_refused_before_anything_is_made() {
    let test = "bad_security_flags_are_refused_before_anything_is_made";
    let Some(s) = setup(test) else { return };
    let bad = s.path("bad.json");
    fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#).unwrap();
    let bad_opt = format!("seccomp={}", bad.display());
    for (flags, why) in [
        (
            vec!["--cap-add", "NOT_A_CAP"],
            "unknown capability \"NOT_A_CAP\"",
        ),
        (vec!["--cap-drop", "sys-admin"], "unknown capability"),
        (
            vec!["--security-opt", "apparmor=unconfined"],
            "security option",
        ),
        (
            vec!["--security-opt", bad_opt.as_str()],
            bad.to_str().unwrap(),
        ),
        (
            vec!["--security-opt", bad_opt.as_str()],
            "SCMP_ACT_SOMETIMES",
        ),
        (
            vec!["--security-opt", "seccomp=/nonexistent/profile.json"],
            "/nonexistent/profile.json",
        ),
    ] {
        for cmd in ["run", "create"] {
            let mut args = vec![cmd];
            args.extend_from_slice(&flags);
            args.extend_from_slice(&["busybox:test", "true"]);
            let d = s.exec(&args);
            // (`run` answers 125 for strata's own errors, as docker run.)
            let code = if cmd == "run" { 125 } else { 1 };
            d.expect(code, &format!("{args:?}"));
            assert!(d.stderr.contains(why), "{args:?}: {d:#?}");
        }
    }
    assert_eq!(s.names(true), Vec::<String>::new());
}

/// x86_64 and aarch64 numbers of the calls the sweep makes.
fn syscall_numbers() -> Option<&'static [(&'static str, u32)]> {
    if cfg!(target_arch = "x86_64") {
        Some(&[
            ("keyctl", 250),
            ("add_key", 248),
            ("request_key", 249),
            ("bpf", 321),
            ("perf_event_open", 298),
            ("userfaultfd", 323),
            ("kexec_load", 246),
            ("init_module", 175),
            ("finit_module", 313),
            ("delete_module", 176),
            ("reboot", 169),
            ("swapon", 167),
            ("clock_settime", 227),
            ("acct", 163),
            ("unshare", 272),
            ("setns", 308),
            ("mount", 165),
            ("umount2", 166),
            ("pivot_root", 155),
            ("open_by_handle_at", 304),
            ("io_uring_setup", 425),
            ("clone3", 435),
            ("personality", 135),
            ("ptrace", 101),
        ])
    } else if cfg!(target_arch = "aarch64") {
        Some(&[
            ("keyctl", 219),
            ("add_key", 217),
            ("request_key", 218),
            ("bpf", 280),
            ("perf_event_open", 241),
            ("userfaultfd", 282),
            ("kexec_load", 104),
            ("init_module", 105),
            ("finit_module", 273),
            ("delete_module", 106),
            ("reboot", 142),
            ("swapon", 224),
            ("clock_settime", 112),
            ("acct", 89),
            ("unshare", 97),
            ("setns", 268),
            ("mount", 40),
            ("umount2", 39),
            ("pivot_root", 41),
            ("open_by_handle_at", 265),
            ("io_uring_setup", 425),
            ("clone3", 435),
            ("personality", 92),
            ("ptrace", 117),
        ])
    } else {
        None
    }
}

/// Arguments that make each call harmless should the filter let it
/// through: null pointers, a bad reboot magic, no unshare flags, a
/// personality outside the allowed domains (PER_BSD), a ptrace of a pid
/// that does not exist.
fn sweep_args(name: &str) -> &'static str {
    match name {
        "keyctl" => "0, -3, 0",
        "add_key" => "$type, $desc, $value, 1, -3",
        "personality" => "6",
        "ptrace" => "16, 999999, 0, 0",
        "setns" => "-1, 0",
        _ => "0, 0, 0, 0, 0",
    }
}

/// Runs every call of the sweep in the Debian image with perl's
/// `syscall`; returns `name errno` lines (0: the call succeeded).
fn sweep(s: &Strata, rt: &str, flags: &[&str]) -> Vec<(String, i32)> {
    let calls = syscall_numbers().unwrap();
    // (perl passes strings as pointers, and only from variables.)
    let mut script =
        String::from("$| = 1; ($type, $desc, $value) = ('user', 'strata-test', 'v');\n");
    for (name, nr) in calls {
        script.push_str(&format!(
            "$! = 0; $r = syscall({nr}, {}); print \"{name} \", ($r == -1 ? $! + 0 : 0), \"\\n\";\n",
            sweep_args(name)
        ));
    }
    let mut args = vec!["run", "--rm", "--runtime", rt];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["debian", "perl", "-e", &script]);
    let d = s.exec(&args);
    d.expect(0, &format!("{rt} {flags:?}"))
        .out()
        .lines()
        .map(|l| {
            let (n, e) = l.split_once(' ').unwrap();
            (n.to_owned(), e.parse().unwrap())
        })
        .collect()
}

#[test]
fn seccomp_default_profile_refuses_the_dangerous_calls() {
    let test = "seccomp_default_profile_refuses_the_dangerous_calls";
    let Some(s) = setup(test) else { return };
    let Some(tar) = debian_tar(test) else { return };
    if syscall_numbers().is_none() {
        common::skip(test, "syscall numbers known for x86_64 and aarch64 only");
        return;
    }
    s.debian(&tar);
    for rt in runtimes(test) {
        let by_default = sweep(&s, rt, &[]);
        for (name, errno) in &by_default {
            let want = match name.as_str() {
                // ENOSYS, so that glibc falls back to clone.
                "clone3" => 38,
                // Allowed (kernel >= 4.8): no such process.
                "ptrace" => 3,
                _ => 1,
            };
            assert_eq!(*errno, want, "{rt}: {name}: {by_default:?}");
        }
        // Unconfined, the calls no capability guards go through to the
        // kernel, which answers otherwise than EPERM.
        let unconfined = sweep(&s, rt, &["--security-opt", "seccomp=unconfined"]);
        for name in [
            "keyctl",
            "add_key",
            "unshare",
            "personality",
            "setns",
            "clone3",
        ] {
            let (_, errno) = unconfined.iter().find(|(n, _)| n == name).unwrap();
            assert!(![1, 38].contains(errno), "{rt}: {name}: {unconfined:?}");
        }
    }
}
