//! The flags, Docker's capability arithmetic, and what the runtime spec
//! says for each choice.

use super::*;
use crate::spec::tests::build_as_root;
use crate::spec::NetNs;
use strata_store::{Container, RunConfig};

/// Every capability up to CHECKPOINT_RESTORE (40).
const EVERY: u64 = (1 << 41) - 1;

fn flags(privileged: bool, add: &[&str], drop: &[&str], opts: &[&str]) -> Flags {
    let v = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
    Flags {
        privileged,
        cap_add: v(add),
        cap_drop: v(drop),
        security_opt: v(opts),
    }
}

fn caps_of(add: &[&str], drop: &[&str]) -> Vec<String> {
    let s = from_flags(&flags(false, add, drop, &[])).unwrap();
    capabilities_within(&s, EVERY).unwrap()
}

fn defaults() -> Vec<String> {
    let mut d: Vec<String> = DEFAULT_CAPS.iter().map(|s| (*s).to_owned()).collect();
    d.sort();
    d
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn default_capabilities_are_dockers_14() {
    assert_eq!(sorted(caps_of(&[], &[])), defaults());
    assert_eq!(DEFAULT_CAPS.len(), 14);
}

#[test]
fn cap_names_take_any_case_with_or_without_the_prefix() {
    let s = from_flags(&flags(
        false,
        &["sys_admin", "CAP_NET_ADMIN", "Cap_Sys_Time", "SYS_ADMIN"],
        &["all"],
        &[],
    ))
    .unwrap();
    assert_eq!(
        s.cap_add,
        ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_TIME"]
    );
    assert_eq!(s.cap_drop, ["ALL"]);
    for bad in ["FOO", "CAP_", "", "CAP_CAP_SYS_ADMIN", "SYS ADMIN"] {
        let e = from_flags(&flags(false, &[bad], &[], &[])).unwrap_err();
        assert!(e.to_string().contains("unknown capability"), "{bad}: {e}");
        assert!(
            from_flags(&flags(false, &[], &[bad], &[])).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn drops_apply_before_adds() {
    let mut want = defaults();
    want.retain(|c| c != "CAP_CHOWN" && c != "CAP_KILL");
    want.push("CAP_SYS_ADMIN".into());
    assert_eq!(
        sorted(caps_of(&["SYS_ADMIN"], &["CHOWN", "KILL"])),
        sorted(want)
    );
    // Named in both: added (Docker drops first, then adds).
    assert_eq!(sorted(caps_of(&["CHOWN"], &["CHOWN"])), defaults());
}

#[test]
fn drop_all_leaves_only_what_is_added() {
    assert_eq!(caps_of(&[], &["ALL"]), Vec::<String>::new());
    assert_eq!(caps_of(&["SYS_ADMIN"], &["ALL"]), ["CAP_SYS_ADMIN"]);
}

#[test]
fn add_all_is_every_capability_but_those_dropped() {
    let all = caps_of(&["ALL"], &[]);
    assert_eq!(all.len(), 41);
    let some = caps_of(&["ALL"], &["SYS_ADMIN"]);
    assert_eq!(some.len(), 40);
    assert!(!some.contains(&"CAP_SYS_ADMIN".to_owned()));
    // Adding ALL wins over dropping ALL, as in Docker.
    assert_eq!(caps_of(&["ALL"], &["ALL"]).len(), 41);
}

#[test]
fn every_capability_means_those_strata_holds() {
    let held = EVERY & !(1 << 24); // no CAP_SYS_RESOURCE
    let s = from_flags(&flags(true, &[], &["CHOWN"], &[])).unwrap();
    let all = capabilities_within(&s, held).unwrap();
    assert_eq!(all.len(), 40, "privileged ignores --cap-drop, as Docker");
    assert!(!all.contains(&"CAP_SYS_RESOURCE".to_owned()));
    let s = from_flags(&flags(false, &["SYS_RESOURCE"], &[], &[])).unwrap();
    let e = capabilities_within(&s, held).unwrap_err();
    assert!(e.to_string().contains("CAP_SYS_RESOURCE"), "{e}");
}

#[test]
fn security_options_are_parsed() {
    let s = from_flags(&flags(false, &[], &[], &[])).unwrap();
    assert_eq!(s, Security::default());
    for (opt, nnp) in [
        ("no-new-privileges", true),
        ("no-new-privileges=true", true),
        ("no-new-privileges:true", true),
        ("no-new-privileges=false", false),
    ] {
        let s = from_flags(&flags(false, &[], &[], &[opt])).unwrap();
        assert_eq!(s.no_new_privileges, nnp, "{opt}");
    }
    let s = from_flags(&flags(false, &[], &[], &["seccomp=unconfined"])).unwrap();
    assert_eq!(s.seccomp, Seccomp::Unconfined);
    for bad in [
        "apparmor=unconfined",
        "no-new-privileges=yes",
        "seccomp",
        "seccomp=",
        "label=disable",
    ] {
        let e = from_flags(&flags(false, &[], &[], &[bad])).unwrap_err();
        assert!(e.to_string().contains("security option"), "{bad}: {e}");
    }
}

#[test]
fn a_profile_file_is_read_at_create_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", good.display());
    let s = from_flags(&flags(false, &[], &[], &[&opt])).unwrap();
    let Seccomp::Profile(v) = &s.seccomp else {
        panic!("{s:?}")
    };
    assert_eq!(v["syscalls"][0]["names"][1], "mkdirat");
    // Changing the file later changes nothing.
    std::fs::write(&good, "garbage").unwrap();
    let f = seccomp(&s, &[]).unwrap().unwrap();
    assert_eq!(
        f.default_action(),
        oci_spec::runtime::LinuxSeccompAction::ScmpActAllow
    );
    for (content, why) in [
        ("{not json", "it is not a seccomp profile"),
        (r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#, "SCMP_ACT_MAYBE"),
    ] {
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, content).unwrap();
        let opt = format!("seccomp={}", bad.display());
        let e = from_flags(&flags(false, &[], &[], &[&opt])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&bad.display().to_string()), "{msg}");
        assert!(msg.contains(why), "{msg}");
    }
    let missing = dir.path().join("missing.json");
    let opt = format!("seccomp={}", missing.display());
    let e = from_flags(&flags(false, &[], &[], &[&opt])).unwrap_err();
    assert!(e.to_string().contains("missing.json"), "{e}");
}

#[test]
fn a_tampered_record_is_refused_at_start() {
    let s = Security {
        seccomp: Seccomp::Profile(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"})),
        ..Security::default()
    };
    assert!(seccomp(&s, &[]).is_err());
    let s = Security {
        seccomp: Seccomp::Profile(serde_json::json!(["x"])),
        ..Security::default()
    };
    assert!(seccomp(&s, &[]).is_err());
}

fn container(security: Security) -> Container {
    crate::test_container(
        &["true"],
        RunConfig {
            security,
            ..RunConfig::default()
        },
    )
}

fn spec_for(security: Security) -> serde_json::Value {
    let c = container(security);
    let s = build_as_root(&c, &[], NetNs::New).unwrap();
    serde_json::to_value(s).unwrap()
}

fn mount_options(v: &serde_json::Value, dst: &str) -> Vec<String> {
    let m = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == dst)
        .unwrap();
    serde_json::from_value(m["options"].clone()).unwrap()
}

#[test]
fn a_default_container_gets_the_profile_and_the_14_capabilities() {
    let v = spec_for(Security::default());
    assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(v["process"]["noNewPrivileges"], false);
    let mut effective: Vec<String> =
        serde_json::from_value(v["process"]["capabilities"]["effective"].clone()).unwrap();
    effective.sort();
    let mut want = defaults();
    let held = own_bounding();
    want.retain(|c| {
        let bit = ALL_CAPS
            .iter()
            .position(|(n, _)| format!("CAP_{n}") == *c)
            .unwrap();
        held & (1 << bit) != 0
    });
    assert_eq!(effective, want);
    assert_eq!(
        v["process"]["capabilities"]["inheritable"],
        serde_json::json!([])
    );
    assert!(!v["linux"]["maskedPaths"].as_array().unwrap().is_empty());
    assert!(!v["linux"]["readonlyPaths"].as_array().unwrap().is_empty());
    assert!(mount_options(&v, "/sys").contains(&"ro".to_owned()));
    assert!(v["linux"]["devices"].is_null());
}

#[test]
fn unconfined_drops_the_filter_and_nothing_else() {
    let v = spec_for(Security {
        seccomp: Seccomp::Unconfined,
        no_new_privileges: true,
        ..Security::default()
    });
    assert!(v["linux"]["seccomp"].is_null(), "{}", v["linux"]["seccomp"]);
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert!(!v["linux"]["maskedPaths"].as_array().unwrap().is_empty());
}

#[test]
fn privileged_lifts_seccomp_masks_and_read_only_sys_and_gives_devices() {
    let v = spec_for(Security {
        privileged: true,
        seccomp: Seccomp::Profile(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"})),
        ..Security::default()
    });
    assert!(v["linux"]["seccomp"].is_null());
    assert_eq!(v["linux"]["maskedPaths"], serde_json::json!([]));
    assert_eq!(v["linux"]["readonlyPaths"], serde_json::json!([]));
    assert!(mount_options(&v, "/sys").contains(&"rw".to_owned()));
    assert!(!mount_options(&v, "/sys").contains(&"ro".to_owned()));
    assert_eq!(
        v["linux"]["resources"]["devices"],
        serde_json::json!([{"allow": true, "access": "rwm"}])
    );
    let devices = v["linux"]["devices"].as_array().unwrap();
    let null = devices.iter().find(|d| d["path"] == "/dev/null").unwrap();
    assert_eq!(
        (null["type"].as_str(), null["major"].as_i64()),
        (Some("c"), Some(1))
    );
    assert_eq!(null["minor"], 3);
    assert!(!devices.iter().any(
        |d| d["path"].as_str().unwrap().starts_with("/dev/pts/") || d["path"] == "/dev/console"
    ));
    let effective = v["process"]["capabilities"]["effective"]
        .as_array()
        .unwrap();
    assert_eq!(
        effective.len() as u32,
        own_bounding().count_ones(),
        "{effective:?}"
    );
}

#[test]
fn host_devices_are_found_below_subdirectories_but_not_in_pts() {
    let devices = host_devices(Path::new("/dev")).unwrap();
    assert!(devices.iter().any(|d| d.path() == Path::new("/dev/zero")));
    assert!(devices
        .iter()
        .all(|d| !d.path().starts_with("/dev/pts") && !d.path().starts_with("/dev/shm")));
}
