//! Which entry of a multi-platform index this machine runs, by the rules
//! of containerd's `platforms.Only` for the host's own architecture (its
//! fallbacks to another architecture, arm64 to 32-bit arm and amd64 to
//! 386, are not taken): the same OS and architecture, and a CPU variant
//! no newer than the host's (`7` is read as `v7`, as containerd
//! normalizes it). A variant named by default counts as named (arm64
//! `v8`, amd64 `v1`, arm `v7`), an older variant runs too but ranks below
//! (arm `v6` on a `v7`), and equal matches go to the first listed. See
//! the image-spec's [platform
//! variants](https://github.com/opencontainers/image-spec/blob/main/image-index.md#platform-variants).

use oci_spec::image::Descriptor;

use crate::error::{Error, ErrorKind};

/// A platform as (`os`, `architecture`, `variant`).
pub type Platform<'a> = (&'a str, &'a str, Option<&'a str>);

/// The CPU level `variant` names on `arch`: `v7` is (7, 0), `v8.2` is
/// (8, 2); none is the architecture's base. `None` when it is no level.
fn level(arch: &str, variant: Option<&str>) -> Option<(u32, u32)> {
    let Some(v) = variant else {
        return Some(match arch {
            "arm64" => (8, 0),
            "arm" => (7, 0),
            "amd64" => (1, 0),
            _ => (0, 0),
        });
    };
    let n = v.strip_prefix('v').unwrap_or(v);
    let (major, minor) = n.split_once('.').unwrap_or((n, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// How well `d`'s platform suits `host`, higher is better; `None` when
/// the host cannot run it: another OS or architecture, no platform, or a
/// newer variant than the host's.
pub fn rank(d: &Descriptor, host: Platform<'_>) -> Option<(u32, u32)> {
    let p = d.platform().as_ref()?;
    let (os, arch, variant) = host;
    if p.os().to_string() != os || p.architecture().to_string() != arch {
        return None;
    }
    let have = p.variant().as_deref();
    if have == variant {
        return Some(level(arch, variant).unwrap_or_default());
    }
    let (have, want) = (level(arch, have)?, level(arch, variant)?);
    (have <= want).then_some(have)
}

/// The entry of `entries` that suits `host` best; the first of equals.
pub fn best<'a>(entries: &'a [Descriptor], host: Platform<'_>) -> Option<&'a Descriptor> {
    let mut best: Option<((u32, u32), &Descriptor)> = None;
    for d in entries {
        match (rank(d, host), best) {
            (Some(r), Some((b, _))) if r <= b => {}
            (Some(r), _) => best = Some((r, d)),
            (None, _) => {}
        }
    }
    best.map(|(_, d)| d)
}

/// `os/arch[/variant]` as `--platform` spells it.
pub fn parse(s: &str) -> Result<Platform<'_>, Error> {
    let mut parts = s.split('/');
    let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
    match (os, arch, parts.next()) {
        (Some(os), Some(arch), None) if !os.is_empty() && !arch.is_empty() => {
            Ok((os, arch, variant.filter(|v| !v.is_empty())))
        }
        _ => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("platform {s:?}: expected OS/ARCH[/VARIANT], like linux/arm64/v8"),
        )),
    }
}

/// `os/arch[/variant]`.
pub fn describe((os, arch, variant): Platform<'_>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

/// The error for an index (`what`) with nothing `host` runs, listing
/// what it has.
pub fn none_for(host: Platform<'_>, entries: &[Descriptor], what: &str) -> Error {
    let have: Vec<String> = entries
        .iter()
        .filter_map(|c| c.platform().as_ref())
        .map(|p| {
            let (os, arch) = (p.os().to_string(), p.architecture().to_string());
            describe((&os, &arch, p.variant().as_deref()))
        })
        .collect();
    Error::new(
        ErrorKind::NotFound,
        format!(
            "{what}: no manifest for {} (there are: {})",
            describe(host),
            have.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Index entries, one per `os/arch[/variant]` (`-` for none).
    fn entries(platforms: &[&str]) -> Vec<Descriptor> {
        platforms
            .iter()
            .enumerate()
            .map(|(n, p)| {
                let mut d = json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{n:064x}"),
                    "size": 1,
                });
                if *p != "-" {
                    let mut parts = p.split('/');
                    d["platform"] = json!({
                        "os": parts.next().unwrap(),
                        "architecture": parts.next().unwrap(),
                    });
                    if let Some(v) = parts.next() {
                        d["platform"]["variant"] = json!(v);
                    }
                }
                serde_json::from_value(d).unwrap()
            })
            .collect()
    }

    /// Which of `platforms` `host` picks, by position.
    fn pick(host: Platform<'_>, platforms: &[&str]) -> Option<usize> {
        let list = entries(platforms);
        let chosen = best(&list, host)?;
        list.iter().position(|d| std::ptr::eq(d, chosen))
    }

    const AMD64: Platform<'static> = ("linux", "amd64", None);
    const ARM64: Platform<'static> = ("linux", "arm64", Some("v8"));
    const ARM_V7: Platform<'static> = ("linux", "arm", Some("v7"));

    #[test]
    fn the_hosts_os_and_architecture_are_chosen_among_several() {
        let list = [
            "linux/arm64/v8",
            "windows/amd64",
            "-",
            "linux/amd64",
            "linux/s390x",
        ];
        assert_eq!(pick(AMD64, &list), Some(3));
        assert_eq!(pick(ARM64, &list), Some(0));
        assert_eq!(pick(("linux", "s390x", None), &list), Some(4));
        assert_eq!(pick(("linux", "riscv64", None), &list), None);
        assert_eq!(pick(ARM_V7, &list), None);
    }

    /// arm64's base is `v8`: named or not, the same; a newer level is
    /// not run on a `v8` host.
    #[test]
    fn arm64_v8_is_arm64() {
        assert_eq!(pick(ARM64, &["linux/arm64"]), Some(0));
        assert_eq!(pick(ARM64, &["linux/arm64/v8"]), Some(0));
        assert_eq!(pick(ARM64, &["linux/arm64", "linux/arm64/v8"]), Some(0));
        assert_eq!(pick(ARM64, &["linux/arm64/v8", "linux/arm64"]), Some(0));
        assert_eq!(pick(ARM64, &["linux/arm64/v9", "linux/arm64"]), Some(1));
        assert_eq!(pick(ARM64, &["linux/arm64/v8.2"]), None);
        assert_eq!(pick(("linux", "arm64", None), &["linux/arm64/v8"]), Some(0));
    }

    /// A `v7` runs `v7`, then `v6`, then `v5`; never `v8`.
    #[test]
    fn arm_v7_prefers_v7_then_the_newest_older_variant() {
        let all = [
            "linux/arm/v5",
            "linux/arm/v6",
            "linux/arm/v7",
            "linux/arm/v8",
        ];
        assert_eq!(pick(ARM_V7, &all), Some(2));
        assert_eq!(pick(ARM_V7, &all[..2]), Some(1));
        assert_eq!(pick(ARM_V7, &["linux/arm/v6", "linux/arm/v5"]), Some(0));
        assert_eq!(pick(ARM_V7, &["linux/arm/v8"]), None);
        // arm with no variant is v7.
        assert_eq!(pick(ARM_V7, &["linux/arm/v6", "linux/arm"]), Some(1));
        assert_eq!(pick(("linux", "arm", Some("v6")), &["linux/arm/v7"]), None);
        // A variant without its `v` is the same variant.
        assert_eq!(pick(ARM_V7, &["linux/arm/8", "linux/arm/7"]), Some(1));
        assert_eq!(pick(ARM_V7, &["linux/arm/6"]), Some(0));
    }

    /// The base level wins over `v2`/`v3` (which need SSE4.2, AVX2) the
    /// host is not known to have, wherever it is listed.
    #[test]
    fn amd64_takes_the_base_level_not_a_newer_one() {
        assert_eq!(pick(AMD64, &["linux/amd64", "linux/amd64/v3"]), Some(0));
        assert_eq!(pick(AMD64, &["linux/amd64/v3", "linux/amd64"]), Some(1));
        assert_eq!(pick(AMD64, &["linux/amd64/v2"]), None);
        assert_eq!(pick(AMD64, &["linux/amd64/v1"]), Some(0));
        assert_eq!(
            pick(("linux", "amd64", Some("v3")), &["linux/amd64/v2"]),
            Some(0)
        );
    }

    #[test]
    fn equal_matches_go_to_the_first() {
        assert_eq!(pick(AMD64, &["linux/amd64", "linux/amd64"]), Some(0));
        assert_eq!(pick(AMD64, &["linux/amd64", "linux/amd64/v1"]), Some(0));
    }

    /// Variants that are no level match only themselves.
    #[test]
    fn other_variants_match_only_themselves() {
        let host = ("linux", "riscv64", Some("rva23"));
        assert_eq!(pick(host, &["linux/riscv64/rva23"]), Some(0));
        assert_eq!(pick(host, &["linux/riscv64/rva22"]), None);
        assert_eq!(
            pick(("linux", "riscv64", None), &["linux/riscv64/rva23"]),
            None
        );
    }

    #[test]
    fn platforms_parse_as_os_arch_and_variant() {
        assert_eq!(parse("linux/amd64").unwrap(), ("linux", "amd64", None));
        assert_eq!(parse("linux/arm/v7").unwrap(), ("linux", "arm", Some("v7")));
        for bad in ["", "linux", "linux/", "/amd64", "linux/arm/v7/x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_error_names_the_host_and_what_there_is() {
        let list = entries(&["linux/arm64/v8", "windows/amd64", "-"]);
        let e = none_for(ARM_V7, &list, "image x");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "image x: no manifest for linux/arm/v7 (there are: linux/arm64/v8, windows/amd64)"
        );
    }
}
