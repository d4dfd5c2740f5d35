//! A container's confinement: its capabilities, its seccomp filter,
//! `no_new_privileges`, and what `--privileged` lifts.
//!
//! [`from_flags`] checks the flags of `create` and `run` and gives what
//! the container's record keeps ([`strata_store::Security`]); [`apply`]
//! makes the runtime spec say it. As Docker:
//! - capabilities: the 14 defaults ([`DEFAULT_CAPS`]); `--cap-drop` then
//!   `--cap-add`; `--cap-add ALL` is every capability but those dropped,
//!   `--cap-drop ALL` leaves only those added; names with or without
//!   `CAP_`, any case; an unknown one is an error;
//! - seccomp: the default profile ([`crate::seccomp::default_profile`]),
//!   `seccomp=unconfined`, or `seccomp=FILE`, a profile in Docker's JSON
//!   read at `create`; rules that depend on a capability follow the
//!   bounding set, so `--cap-add SYS_ADMIN` allows `mount` again;
//! - `--privileged`: every capability strata holds, no seccomp filter
//!   (whatever `--security-opt seccomp=` says), every host device (the
//!   device nodes of the host's `/dev`, made by the runtime, and a device
//!   cgroup that allows all), no masked or read-only `/proc` paths,
//!   `/sys` and `/sys/fs/cgroup` writable. The container is then the
//!   host's root in all but its namespaces.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilitiesBuilder, LinuxDevice, LinuxDeviceBuilder,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxSeccomp, Spec,
};
use strata_store::{Error, ErrorKind, Result, Seccomp, Security};

use crate::seccomp::{default_profile, Profile, Target};

/// Every capability, at the index the kernel gives it
/// (`include/uapi/linux/capability.h`).
const ALL_CAPS: &[(&str, Capability)] = &[
    ("CHOWN", Capability::Chown),
    ("DAC_OVERRIDE", Capability::DacOverride),
    ("DAC_READ_SEARCH", Capability::DacReadSearch),
    ("FOWNER", Capability::Fowner),
    ("FSETID", Capability::Fsetid),
    ("KILL", Capability::Kill),
    ("SETGID", Capability::Setgid),
    ("SETUID", Capability::Setuid),
    ("SETPCAP", Capability::Setpcap),
    ("LINUX_IMMUTABLE", Capability::LinuxImmutable),
    ("NET_BIND_SERVICE", Capability::NetBindService),
    ("NET_BROADCAST", Capability::NetBroadcast),
    ("NET_ADMIN", Capability::NetAdmin),
    ("NET_RAW", Capability::NetRaw),
    ("IPC_LOCK", Capability::IpcLock),
    ("IPC_OWNER", Capability::IpcOwner),
    ("SYS_MODULE", Capability::SysModule),
    ("SYS_RAWIO", Capability::SysRawio),
    ("SYS_CHROOT", Capability::SysChroot),
    ("SYS_PTRACE", Capability::SysPtrace),
    ("SYS_PACCT", Capability::SysPacct),
    ("SYS_ADMIN", Capability::SysAdmin),
    ("SYS_BOOT", Capability::SysBoot),
    ("SYS_NICE", Capability::SysNice),
    ("SYS_RESOURCE", Capability::SysResource),
    ("SYS_TIME", Capability::SysTime),
    ("SYS_TTY_CONFIG", Capability::SysTtyConfig),
    ("MKNOD", Capability::Mknod),
    ("LEASE", Capability::Lease),
    ("AUDIT_WRITE", Capability::AuditWrite),
    ("AUDIT_CONTROL", Capability::AuditControl),
    ("SETFCAP", Capability::Setfcap),
    ("MAC_OVERRIDE", Capability::MacOverride),
    ("MAC_ADMIN", Capability::MacAdmin),
    ("SYSLOG", Capability::Syslog),
    ("WAKE_ALARM", Capability::WakeAlarm),
    ("BLOCK_SUSPEND", Capability::BlockSuspend),
    ("AUDIT_READ", Capability::AuditRead),
    ("PERFMON", Capability::Perfmon),
    ("BPF", Capability::Bpf),
    ("CHECKPOINT_RESTORE", Capability::CheckpointRestore),
];

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// `--cap-add` / `--cap-drop` for "every capability".
const ALL: &str = "ALL";

/// The security flags of `create` and `run`, as given.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt`: `seccomp=unconfined`, `seccomp=FILE`,
    /// `no-new-privileges[=true|false]`.
    pub security_opt: Vec<String>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

/// Checks the flags and reads a profile file: what the record keeps.
pub fn from_flags(f: &Flags) -> Result<Security> {
    let mut s = Security {
        privileged: f.privileged,
        cap_add: normalise_caps(&f.cap_add)?,
        cap_drop: normalise_caps(&f.cap_drop)?,
        ..Security::default()
    };
    for opt in &f.security_opt {
        // Docker also reads the older `KEY:VALUE`.
        let (key, value) = match opt.split_once('=').or_else(|| opt.split_once(':')) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => s.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => s.no_new_privileges = false,
            ("seccomp", Some("unconfined")) => s.seccomp = Seccomp::Unconfined,
            ("seccomp", Some(path)) if !path.is_empty() => {
                s.seccomp = Seccomp::Profile(load_profile(Path::new(path))?);
            }
            _ => {
                return Err(bad(format!(
                    "security option {opt:?}: strata knows seccomp=unconfined, seccomp=FILE \
                     and no-new-privileges[=true|false]"
                )))
            }
        }
    }
    Ok(s)
}

/// Reads the profile at `path` (Docker's format) into what the record
/// keeps.
fn load_profile(path: &Path) -> Result<serde_json::Value> {
    let p = Profile::load(path).map_err(|e| {
        Error::with(
            ErrorKind::InvalidArgument,
            format!("seccomp profile {}: {e}", path.display()),
            e,
        )
    })?;
    Ok(serde_json::to_value(p).expect("serialising a seccomp profile"))
}

/// `sys_admin`, `CAP_SYS_ADMIN`, `Cap_Sys_Admin` → `CAP_SYS_ADMIN`; `all`
/// → `ALL`.
fn normalise_caps(names: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let upper = n.to_ascii_uppercase();
        let name = if upper == ALL {
            ALL.to_owned()
        } else {
            let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
            if !ALL_CAPS.iter().any(|(c, _)| *c == bare) {
                return Err(bad(format!("unknown capability {n:?}")));
            }
            format!("CAP_{bare}")
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// The capabilities strata itself may hand on: its own bounding set
/// (`CapBnd` in `/proc/self/status`, a bit per capability), which is at
/// most every capability the kernel has. A runtime cannot give more, so
/// "every capability" means these. Every one strata knows when the set
/// cannot be read.
fn own_bounding() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .unwrap_or((1 << ALL_CAPS.len()) - 1)
}

/// The container's capability set (`CAP_*` names, in the kernel's
/// order): Docker's arithmetic, "every capability" being those strata
/// holds. A capability asked for by name that strata does not hold is an
/// error (the runtime would fail less clearly).
pub fn capabilities(s: &Security) -> Result<Vec<String>> {
    capabilities_within(s, own_bounding())
}

fn capabilities_within(s: &Security, held: u64) -> Result<Vec<String>> {
    let has = |list: &[String], c: &str| list.iter().any(|x| x == c);
    // moby's `TweakCapabilities`, case by case.
    let (add, drop) = (&s.cap_add, &s.cap_drop);
    let chosen = |c: &str| -> bool {
        if s.privileged {
            true
        } else if has(add, ALL) {
            !has(drop, c)
        } else if has(drop, ALL) {
            has(add, c)
        } else {
            (DEFAULT_CAPS.contains(&c) && !has(drop, c)) || has(add, c)
        }
    };
    let mut out = Vec::new();
    for (bit, (c, _)) in ALL_CAPS.iter().enumerate() {
        let name = format!("CAP_{c}");
        let holds = held & (1 << bit) != 0;
        if !holds && has(&s.cap_add, &name) && !s.privileged {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("--cap-add {name}: strata does not hold it (its bounding set lacks it)"),
            ));
        }
        if holds && chosen(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

fn oci_caps(names: &[String]) -> Capabilities {
    names
        .iter()
        .filter_map(|n| {
            let bare = n.strip_prefix("CAP_")?;
            ALL_CAPS
                .iter()
                .find(|(c, _)| *c == bare)
                .map(|(_, cap)| *cap)
        })
        .collect()
}

fn oci_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::with(ErrorKind::Io, "building the runtime spec", e)
}

/// The seccomp filter, or none (unconfined, privileged).
pub fn seccomp(s: &Security, bounding: &[String]) -> Result<Option<LinuxSeccomp>> {
    if s.privileged {
        return Ok(None);
    }
    let profile = match &s.seccomp {
        Seccomp::Unconfined => return Ok(None),
        Seccomp::Default => default_profile(),
        Seccomp::Profile(v) => serde_json::from_value(v.clone()).map_err(|e| {
            Error::with(
                ErrorKind::Corrupt,
                "the container's seccomp profile does not read back",
                e,
            )
        })?,
    };
    let filter = profile.to_oci(&Target::host(bounding)).map_err(|e| {
        Error::with(
            ErrorKind::InvalidArgument,
            format!("the container's seccomp profile: {e}"),
            e,
        )
    })?;
    Ok(Some(filter))
}

/// Makes `spec` (as [`crate::spec::build`] made it) confine the process
/// as `s` says.
pub fn apply(spec: &mut Spec, s: &Security) -> Result<()> {
    let names = capabilities(s)?;
    let caps = oci_caps(&names);
    // Inheritable and ambient empty, as Docker since CVE-2022-24769: a
    // non-root user gets no effective capabilities.
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()
        .map_err(oci_error)?;
    if let Some(p) = spec.process_mut() {
        p.set_capabilities(Some(capabilities));
        p.set_no_new_privileges(Some(s.no_new_privileges));
    }
    let filter = seccomp(s, &names)?;
    if let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(filter);
        if s.privileged {
            linux.set_masked_paths(Some(Vec::new()));
            linux.set_readonly_paths(Some(Vec::new()));
            linux.set_devices(Some(host_devices(Path::new("/dev"))?));
            let allow_all = LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .access("rwm")
                .build()
                .map_err(oci_error)?;
            let mut resources = linux.resources().clone().unwrap_or_default();
            resources.set_devices(Some(vec![allow_all]));
            linux.set_resources(Some(resources));
        }
    }
    if s.privileged {
        writable_sys(spec);
    }
    Ok(())
}

/// `/sys` and `/sys/fs/cgroup` mounted read-write.
fn writable_sys(spec: &mut Spec) {
    for m in spec.mounts_mut().iter_mut().flatten() {
        let dst = m.destination().clone();
        if dst != Path::new("/sys") && dst != Path::new("/sys/fs/cgroup") {
            continue;
        }
        if let Some(opts) = m.options().clone() {
            let opts = opts
                .into_iter()
                .map(|o| if o == "ro" { "rw".to_owned() } else { o })
                .collect();
            m.set_options(Some(opts));
        }
    }
}

/// The device nodes under `dir` (the host's `/dev`), for a privileged
/// container, as runc's `HostDevices` finds them: not under `pts`, `shm`,
/// `fd`, `mqueue` (the container gets its own), not `console` (the
/// runtime makes the container's), no symbolic links.
pub fn host_devices(dir: &Path) -> Result<Vec<LinuxDevice>> {
    let mut out = Vec::new();
    walk_devices(dir, &mut out)?;
    out.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(out)
}

fn walk_devices(dir: &Path, out: &mut Vec<LinuxDevice>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let path: PathBuf = entry.path();
        let name = entry.file_name();
        // Gone since it was listed, or unreadable: not a device to give.
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = md.file_type();
        if ft.is_dir() {
            let skip = [".lxc", ".lxd-mounts", ".udev", "fd", "mqueue", "pts", "shm"];
            if !skip.iter().any(|s| name == *s) {
                walk_devices(&path, out)?;
            }
            continue;
        }
        let typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        if name == "console" {
            continue;
        }
        let (major, minor) = strata_sys::fs::major_minor(md.rdev());
        let dev = LinuxDeviceBuilder::default()
            .path(&path)
            .typ(typ)
            .major(i64::from(major))
            .minor(i64::from(minor))
            .file_mode(md.mode() & 0o7777)
            .uid(md.uid())
            .gid(md.gid())
            .build()
            .map_err(oci_error)?;
        out.push(dev);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
