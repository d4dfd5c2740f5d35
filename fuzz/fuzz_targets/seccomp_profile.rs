//! Parses arbitrary bytes as a seccomp profile (Docker's format, what
//! `--security-opt seccomp=FILE` reads). Errors are expected; a panic is a
//! finding, and so is a profile that parses but does not read back the
//! same from the container's record, or that the OCI conversion refuses
//! after the parser accepted it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_run::seccomp::{Profile, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Profile::parse(data) else {
        return;
    };
    let kept = serde_json::to_vec(&p).expect("a parsed profile serialises");
    assert_eq!(Profile::parse(&kept).expect("the kept profile reads back"), p);
    let caps = ["CAP_SYS_ADMIN".to_owned()];
    for arch in ["amd64", "arm64", "s390x"] {
        for caps in [&caps[..], &[]] {
            let t = Target {
                arch,
                caps,
                kernel: (6, 1),
            };
            let oci = p.to_oci(&t).expect("a checked profile converts");
            serde_json::to_vec(&oci).expect("the OCI form serialises");
        }
    }
});
