//! Seccomp profiles in Docker's format, and their OCI form.
//!
//! A profile (`--security-opt seccomp=FILE`, or [`default_profile`]) is
//! Docker's JSON: a default action, the architectures (`architectures`,
//! or `archMap` keyed by the native one), and rules whose `includes` and
//! `excludes` say on which architectures, with which capabilities and
//! from which kernel they apply. [`Profile::to_oci`] picks the rules that
//! apply to a container the way moby's `profiles/seccomp` does (a
//! capability counts when it is in the bounding set) and gives the
//! runtime spec's `linux.seccomp`, where only names, actions, errnos and
//! argument conditions remain.
//!
//! Syscall names the runtime's libseccomp does not know (newer than it,
//! or of another architecture) are skipped by both crun and runc, so one
//! table serves every host.
//!
//! A profile file is input from outside: its size is capped
//! ([`MAX_PROFILE_BYTES`]), unknown fields and actions are errors naming
//! the file, and what the kernel or the runtimes would reject later
//! (argument index past 5, errno past 4095, `SCMP_ACT_NOTIFY`, which needs
//! an agent strata does not run) is refused up front.

mod default;

use std::io::Read;
use std::path::Path;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use serde::{Deserialize, Deserializer, Serialize};

pub use default::{default_profile, DENIED};

/// The largest profile file read (Docker's own default is about 20 KiB).
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// The largest errno a filter can return (the kernel's `MAX_ERRNO`).
const MAX_ERRNO: u32 = 4095;

/// Why a profile was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("reading it: {0}")]
    Read(#[source] std::io::Error),
    #[error("it is larger than {MAX_PROFILE_BYTES} bytes")]
    TooLarge,
    #[error("it is not a seccomp profile: {0}")]
    Json(#[source] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(why: impl Into<String>) -> ProfileError {
    ProfileError::Invalid(why.into())
}

/// A seccomp profile, Docker's format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub default_action: LinuxSeccompAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub architectures: Vec<Arch>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arch_map: Vec<ArchMap>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub listener_path: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub listener_metadata: String,
    #[serde(default, deserialize_with = "nullable")]
    pub syscalls: Vec<Rule>,
}

/// `archMap`: a native architecture and those it also runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchMap {
    pub architecture: Arch,
    #[serde(default, deserialize_with = "nullable")]
    pub sub_architectures: Vec<Arch>,
}

/// One rule: an action for some syscalls, maybe under argument
/// conditions, where `includes` and `excludes` say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// One name (Docker's older form; refused together with `names`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub names: Vec<String>,
    pub action: LinuxSeccompAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<Arg>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub comment: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Filter::is_empty"
    )]
    pub includes: Filter,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Filter::is_empty"
    )]
    pub excludes: Filter,
}

/// A condition on argument `index`: `value` compared by `op`
/// (`SCMP_CMP_MASKED_EQ`: the argument masked with `value` equals
/// `valueTwo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub value_two: u64,
    pub op: LinuxSeccompOperator,
}

/// Where a rule applies: Go architecture names (`amd64`, `arm64`, ...),
/// capabilities (`CAP_*`), a kernel version (`4.8`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filter {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arches: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.arches.is_empty() && self.caps.is_empty() && self.min_kernel.is_none()
    }
}

/// `null` reads as the default, as Go's JSON decoder reads it.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// What the rules of a profile are chosen for.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The Go name of the native architecture (`amd64`, `arm64`).
    pub arch: &'a str,
    /// The container's bounding set, `CAP_*` names.
    pub caps: &'a [String],
    /// The running kernel's (major, minor).
    pub kernel: (u32, u32),
}

impl Target<'_> {
    /// This host, for a container with bounding set `caps`.
    pub fn host(caps: &[String]) -> Target<'_> {
        Target {
            arch: go_arch(),
            caps,
            kernel: kernel_version(),
        }
    }

    fn has_cap(&self, c: &str) -> bool {
        self.caps.iter().any(|have| have == c)
    }
}

/// The Go name of the architecture strata was built for, as profiles say
/// it (`includes.arches`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The seccomp architecture of a Go architecture name.
fn native_arch(go: &str) -> Option<Arch> {
    Some(match go {
        "amd64" => Arch::ScmpArchX86_64,
        "386" => Arch::ScmpArchX86,
        "arm64" => Arch::ScmpArchAarch64,
        "arm" => Arch::ScmpArchArm,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "ppc64" => Arch::ScmpArchPpc64,
        "s390x" => Arch::ScmpArchS390x,
        "riscv64" => Arch::ScmpArchRiscv64,
        "loong64" => Arch::ScmpArchLoongarch64,
        _ => return None,
    })
}

/// The running kernel's (major, minor); (0, 0) when unreadable, so that
/// rules for newer kernels are left out.
pub fn kernel_version() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| parse_kernel(r.trim()))
        .unwrap_or((0, 0))
}

/// `6.1.0-18-amd64` → (6, 1).
fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

impl Profile {
    /// Reads and checks the profile at `path` (at most
    /// [`MAX_PROFILE_BYTES`]).
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let file = std::fs::File::open(path).map_err(ProfileError::Read)?;
        let mut bytes = Vec::new();
        file.take(MAX_PROFILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(ProfileError::Read)?;
        if bytes.len() as u64 > MAX_PROFILE_BYTES {
            return Err(ProfileError::TooLarge);
        }
        Profile::parse(&bytes)
    }

    /// Parses and checks a profile.
    pub fn parse(bytes: &[u8]) -> Result<Profile, ProfileError> {
        let p: Profile = serde_json::from_slice(bytes).map_err(ProfileError::Json)?;
        p.check()?;
        Ok(p)
    }

    /// Refuses what Docker refuses, and what a runtime or the kernel would
    /// only refuse once the container starts.
    pub fn check(&self) -> Result<(), ProfileError> {
        if !self.architectures.is_empty() && !self.arch_map.is_empty() {
            return Err(invalid(
                "both 'architectures' and 'archMap' are given: use one",
            ));
        }
        if !self.listener_path.is_empty() || !self.listener_metadata.is_empty() {
            return Err(invalid(
                "'listenerPath' needs a seccomp agent, which strata does not run",
            ));
        }
        check_action(self.default_action, self.default_errno_ret, "defaultAction")?;
        for (i, r) in self.syscalls.iter().enumerate() {
            let at = format!("syscalls[{i}]");
            if !r.name.is_empty() && !r.names.is_empty() {
                return Err(invalid(format!("{at}: both 'name' and 'names' are given")));
            }
            if r.name.is_empty() && r.names.is_empty() {
                return Err(invalid(format!("{at}: no syscall names")));
            }
            for n in r
                .names
                .iter()
                .chain(Some(&r.name).filter(|n| !n.is_empty()))
            {
                let ok = n.len() <= 64
                    && n.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !ok {
                    return Err(invalid(format!("{at}: {n:?} is not a syscall name")));
                }
            }
            check_action(r.action, r.errno_ret, &at)?;
            if r.args.len() > 6 {
                return Err(invalid(format!("{at}: more than 6 argument conditions")));
            }
            if let Some(a) = r.args.iter().find(|a| a.index > 5) {
                return Err(invalid(format!(
                    "{at}: argument index {} (a syscall has 6 arguments, 0 to 5)",
                    a.index
                )));
            }
            for k in [&r.includes.min_kernel, &r.excludes.min_kernel]
                .into_iter()
                .flatten()
            {
                if parse_kernel(k).is_none() {
                    return Err(invalid(format!("{at}: minKernel {k:?} is not a version")));
                }
            }
        }
        Ok(())
    }

    /// The runtime spec's `linux.seccomp` for `target`: the rules that
    /// apply there, and the architectures of the native one.
    pub fn to_oci(&self, target: &Target<'_>) -> Result<LinuxSeccomp, ProfileError> {
        self.check()?;
        let mut architectures = self.architectures.clone();
        if let Some(native) = native_arch(target.arch) {
            for m in self.arch_map.iter().filter(|m| m.architecture == native) {
                architectures.push(m.architecture);
                architectures.extend_from_slice(&m.sub_architectures);
            }
        }
        let mut syscalls = Vec::new();
        for r in self.syscalls.iter().filter(|r| applies(r, target)) {
            syscalls.push(oci_rule(r)?);
        }
        let mut b = LinuxSeccompBuilder::default()
            .default_action(self.default_action)
            .syscalls(syscalls);
        if let Some(e) = self.default_errno_ret {
            b = b.default_errno_ret(e);
        }
        if !architectures.is_empty() {
            b = b.architectures(architectures);
        }
        if !self.flags.is_empty() {
            b = b.flags(self.flags.clone());
        }
        b.build().map_err(|e| invalid(e.to_string()))
    }
}

fn check_action(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    at: &str,
) -> Result<(), ProfileError> {
    if action == LinuxSeccompAction::ScmpActNotify {
        return Err(invalid(format!(
            "{at}: SCMP_ACT_NOTIFY needs a seccomp agent, which strata does not run"
        )));
    }
    match errno {
        Some(e) if e > MAX_ERRNO => Err(invalid(format!(
            "{at}: errno {e} is past the largest, {MAX_ERRNO}"
        ))),
        _ => Ok(()),
    }
}

/// moby's rule selection: every `excludes` condition must fail and every
/// `includes` condition hold.
fn applies(r: &Rule, t: &Target<'_>) -> bool {
    let newer = |k: &Option<String>| {
        k.as_deref()
            .and_then(parse_kernel)
            .is_some_and(|k| t.kernel >= k)
    };
    let ex = &r.excludes;
    let inc = &r.includes;
    !(ex.arches.iter().any(|a| a == t.arch)
        || ex.caps.iter().any(|c| t.has_cap(c))
        || newer(&ex.min_kernel)
        || (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == t.arch))
        || !inc.caps.iter().all(|c| t.has_cap(c))
        || (inc.min_kernel.is_some() && !newer(&inc.min_kernel)))
}

fn oci_rule(r: &Rule) -> Result<LinuxSyscall, ProfileError> {
    let names = if r.names.is_empty() {
        vec![r.name.clone()]
    } else {
        r.names.clone()
    };
    let mut b = LinuxSyscallBuilder::default().names(names).action(r.action);
    if let Some(e) = r.errno_ret {
        b = b.errno_ret(e);
    }
    if !r.args.is_empty() {
        let mut args = Vec::new();
        for a in &r.args {
            let mut ab = LinuxSeccompArgBuilder::default()
                .index(a.index as usize)
                .value(a.value)
                .op(a.op);
            if a.value_two != 0 || a.op == LinuxSeccompOperator::ScmpCmpMaskedEq {
                ab = ab.value_two(a.value_two);
            }
            args.push(ab.build().map_err(|e| invalid(e.to_string()))?);
        }
        b = b.args(args);
    }
    b.build().map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests;
