//! The profile parser against hostile and malformed input, moby's rule
//! selection, and the default profile's contents.

use super::*;
use oci_spec::runtime::LinuxSeccompAction as Action;

fn target<'a>(arch: &'a str, caps: &'a [String]) -> Target<'a> {
    Target {
        arch,
        caps,
        kernel: (6, 1),
    }
}

fn caps(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// The action the filter takes for `name` called with no argument
/// conditions met or needed: the first unconditional rule naming it, or
/// the default.
fn action_for(f: &LinuxSeccomp, name: &str) -> (Action, Option<u32>) {
    f.syscalls()
        .iter()
        .flatten()
        .find(|s| s.names().iter().any(|n| n == name) && s.args().is_none())
        .map(|s| (s.action(), s.errno_ret()))
        .unwrap_or((f.default_action(), f.default_errno_ret()))
}

fn default_for(arch: &str, with: &[&str]) -> LinuxSeccomp {
    let c = caps(with);
    default_profile().to_oci(&target(arch, &c)).unwrap()
}

fn parse_err(json: &str) -> String {
    Profile::parse(json.as_bytes()).unwrap_err().to_string()
}

const EPERM: (Action, Option<u32>) = (Action::ScmpActErrno, Some(1));
const ALLOW: (Action, Option<u32>) = (Action::ScmpActAllow, None);

#[test]
fn default_profile_denies_with_eperm_and_allows_the_ordinary() {
    let f = default_for("amd64", &[]);
    assert_eq!(f.default_action(), Action::ScmpActErrno);
    assert_eq!(f.default_errno_ret(), Some(1));
    for name in [
        "read", "write", "openat", "execve", "mmap", "futex", "chroot",
    ] {
        let allowed = action_for(&default_for("amd64", &["CAP_SYS_CHROOT"]), name);
        assert_eq!(allowed, ALLOW, "{name}");
    }
}

#[test]
fn default_profile_denies_the_dangerous_calls() {
    let f = default_for("amd64", &[]);
    for name in DENIED.iter().chain(&[
        "unshare",
        "setns",
        "mount",
        "umount2",
        "pivot_root",
        "fsopen",
        "fsmount",
        "move_mount",
        "open_tree",
        "fsconfig",
        "fspick",
        "bpf",
        "perf_event_open",
        "init_module",
        "finit_module",
        "delete_module",
        "reboot",
        "clock_settime",
        "settimeofday",
        "acct",
        "lookup_dcookie",
        "quotactl",
        "open_by_handle_at",
        "name_to_handle_at",
        "syslog",
        "vhangup",
        "umount",
        "iopl",
        "ioperm",
        "get_mempolicy",
        "set_mempolicy",
        "mbind",
    ]) {
        assert_eq!(action_for(&f, name), EPERM, "{name}");
    }
    // No rule at all names the never-allowed ones.
    for name in DENIED {
        assert!(
            !f.syscalls()
                .iter()
                .flatten()
                .any(|s| s.names().iter().any(|n| n == name)),
            "{name}"
        );
    }
}

#[test]
fn clone_is_allowed_only_without_namespace_flags_and_clone3_gets_enosys() {
    let f = default_for("amd64", &[]);
    let clone: Vec<_> = f
        .syscalls()
        .iter()
        .flatten()
        .filter(|s| s.names() == &["clone"])
        .collect();
    assert_eq!(clone.len(), 1);
    let args = clone[0].args().as_ref().unwrap();
    assert_eq!(args[0].index(), 0);
    assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
    assert_eq!(args[0].value(), 0x7E02_0000);
    assert_eq!(args[0].value_two(), Some(0));
    assert_eq!(action_for(&f, "clone3"), (Action::ScmpActErrno, Some(38)));
}

#[test]
fn sys_admin_lifts_the_mount_and_namespace_denials() {
    let f = default_for("amd64", &["CAP_SYS_ADMIN"]);
    for name in [
        "mount", "umount2", "unshare", "setns", "clone", "clone3", "fsopen",
    ] {
        assert_eq!(action_for(&f, name), ALLOW, "{name}");
    }
    // ... and nothing that another capability guards.
    for name in [
        "init_module",
        "reboot",
        "clock_settime",
        "open_by_handle_at",
    ] {
        assert_eq!(action_for(&f, name), EPERM, "{name}");
    }
}

#[test]
fn each_capability_lifts_its_own_calls() {
    for (cap, name) in [
        ("CAP_SYS_MODULE", "finit_module"),
        ("CAP_SYS_BOOT", "reboot"),
        ("CAP_SYS_TIME", "clock_settime"),
        ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
        ("CAP_SYS_NICE", "mbind"),
        ("CAP_SYS_PACCT", "acct"),
        ("CAP_SYS_RAWIO", "iopl"),
        ("CAP_BPF", "bpf"),
        ("CAP_PERFMON", "perf_event_open"),
    ] {
        assert_eq!(
            action_for(&default_for("amd64", &[]), name),
            EPERM,
            "{name}"
        );
        assert_eq!(
            action_for(&default_for("amd64", &[cap]), name),
            ALLOW,
            "{cap}"
        );
    }
}

#[test]
fn personality_is_allowed_for_the_usual_domains_only() {
    let f = default_for("amd64", &[]);
    let mut values: Vec<u64> = f
        .syscalls()
        .iter()
        .flatten()
        .filter(|s| s.names() == &["personality"])
        .map(|s| {
            let a = s.args().as_ref().unwrap();
            assert_eq!(a.len(), 1);
            assert_eq!(a[0].op(), LinuxSeccompOperator::ScmpCmpEq);
            a[0].value()
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, [0, 0x8, 0x20000, 0x20008, 0xffff_ffff]);
    assert_eq!(action_for(&f, "personality"), EPERM);
}

#[test]
fn ptrace_is_allowed_from_kernel_4_8() {
    let none = caps(&[]);
    let p = default_profile();
    let old = p
        .to_oci(&Target {
            kernel: (4, 4),
            ..target("amd64", &none)
        })
        .unwrap();
    assert_eq!(action_for(&old, "ptrace"), EPERM);
    assert_eq!(action_for(&default_for("amd64", &[]), "ptrace"), ALLOW);
}

#[test]
fn architectures_follow_the_native_one() {
    let amd = default_for("amd64", &[]);
    assert_eq!(
        amd.architectures().as_deref(),
        Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
    );
    assert_eq!(action_for(&amd, "arch_prctl"), ALLOW);
    assert_eq!(action_for(&amd, "set_tls"), EPERM);
    let arm = default_for("arm64", &[]);
    assert_eq!(
        arm.architectures().as_deref(),
        Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
    );
    assert_eq!(action_for(&arm, "set_tls"), ALLOW);
    assert_eq!(action_for(&arm, "arch_prctl"), EPERM);
}

#[test]
fn oci_form_uses_the_runtime_spec_names() {
    let v = serde_json::to_value(default_for("amd64", &[])).unwrap();
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(v["defaultErrnoRet"], 1);
    assert_eq!(v["architectures"][0], "SCMP_ARCH_X86_64");
    assert_eq!(v["architectures"][2], "SCMP_ARCH_X32");
    let clone = v["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["names"] == serde_json::json!(["clone"]))
        .unwrap();
    assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(clone["args"][0]["valueTwo"], 0);
}

#[test]
fn a_docker_profile_reads_and_its_rules_are_picked_as_moby_picks_them() {
    let json = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": null}
        ],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": null, "comment": "",
             "includes": {}, "excludes": {}},
            {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
            {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}
        ]
    }"#;
    let p = Profile::parse(json.as_bytes()).unwrap();
    let none = caps(&[]);
    let f = p.to_oci(&target("amd64", &none)).unwrap();
    assert_eq!(action_for(&f, "read"), ALLOW);
    assert_eq!(action_for(&f, "mkdir"), (Action::ScmpActErrno, Some(13)));
    assert_eq!(action_for(&f, "mount"), EPERM);
    assert_eq!(action_for(&f, "arch_prctl"), ALLOW);
    assert_eq!(action_for(&f, "future"), EPERM);
    assert_eq!(f.architectures().as_ref().unwrap().len(), 3);
    let admin = caps(&["CAP_SYS_ADMIN"]);
    let f = p.to_oci(&target("arm64", &admin)).unwrap();
    assert_eq!(action_for(&f, "mount"), ALLOW);
    assert_eq!(action_for(&f, "arch_prctl"), EPERM);
    assert_eq!(
        f.architectures().as_deref(),
        Some(&[Arch::ScmpArchAarch64][..])
    );
    // What the record keeps reads back the same.
    let kept = serde_json::to_value(&p).unwrap();
    assert_eq!(serde_json::from_value::<Profile>(kept).unwrap(), p);
}

#[test]
fn the_default_profile_survives_being_kept_in_a_record() {
    let p = default_profile();
    p.check().unwrap();
    let kept = serde_json::to_vec(&p).unwrap();
    assert_eq!(Profile::parse(&kept).unwrap(), p);
}

#[test]
fn malformed_profiles_are_refused_with_the_reason() {
    for (json, why) in [
        ("", "EOF"),
        ("{", "EOF"),
        ("[]", "invalid length 0"),
        ("null", "invalid type"),
        ("{}", "missing field `defaultAction`"),
        (
            r#"{"defaultAction": "SCMP_ACT_FOO"}"#,
            "unknown variant `SCMP_ACT_FOO`",
        ),
        (r#"{"defaultAction": 1}"#, "line 1 column 19"),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultaction": "x"}"#,
            "unknown field `defaultaction`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}"#,
            "unknown variant `SCMP_ARCH_VAX`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "ALLOW"}]}"#,
            "unknown variant `ALLOW`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"]}]}"#,
            "missing field `action`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "invalid value",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}"#,
            "unknown variant `SCMP_CMP_SOMETIMES`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 4294967296}"#,
            "invalid value",
        ),
    ] {
        let e = parse_err(json);
        assert!(e.contains(why), "{json}: {e}");
    }
}

#[test]
fn profiles_a_runtime_or_the_kernel_would_refuse_are_refused_up_front() {
    for (json, why) in [
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
            "both 'architectures' and 'archMap'",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "both 'name' and 'names'",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}"#,
            "no syscall names",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["../etc"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "is not a syscall name",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read\u0000"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "is not a syscall name",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "argument index 6",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4096}"#,
            "errno 4096",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
            "SCMP_ACT_NOTIFY needs a seccomp agent",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}"#,
            "'listenerPath' needs a seccomp agent",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
               "includes": {"minKernel": "new"}}]}"#,
            "minKernel \"new\" is not a version",
        ),
    ] {
        let e = parse_err(json);
        assert!(e.contains(why), "{json}: {e}");
    }
}

#[test]
fn deeply_nested_or_huge_input_is_refused_without_harm() {
    let deep = format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(parse_err(&deep).contains("invalid type"));
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    let mut content = String::from(r#"{"defaultAction": "SCMP_ACT_ALLOW", "comment": ""#);
    content.push_str(&" ".repeat(MAX_PROFILE_BYTES as usize));
    std::fs::write(&big, content).unwrap();
    assert!(matches!(Profile::load(&big), Err(ProfileError::TooLarge)));
    let missing = dir.path().join("missing.json");
    assert!(matches!(
        Profile::load(&missing),
        Err(ProfileError::Read(_))
    ));
}

#[test]
fn kernel_releases_read_as_major_and_minor() {
    assert_eq!(parse_kernel("6.1.0-18-amd64"), Some((6, 1)));
    assert_eq!(parse_kernel("4.8"), Some((4, 8)));
    assert_eq!(parse_kernel("5"), Some((5, 0)));
    assert_eq!(parse_kernel("6.18.44-fc-v1252"), Some((6, 18)));
    assert_eq!(parse_kernel("new"), None);
    assert_eq!(parse_kernel(""), None);
}
