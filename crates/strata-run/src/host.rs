//! What Docker keeps in a container's `HostConfig` beyond volumes and
//! the network: a read-only root (`--read-only`), tmpfs mounts
//! (`--tmpfs`), resource limits (`--memory`, `--cpus`, `--pids-limit`)
//! and an init process (`--init`). The values are parsed here (the CLI
//! passes strings), kept in the container's record
//! ([`strata_store::HostConfig`]) and applied to the runtime spec by
//! [`apply`].
//!
//! Limits go through the spec's `linux.resources`, which the runtime
//! writes to the container's cgroup, v1 or v2: a limit whose cgroup
//! controller the host lacks is refused before anything runs, naming
//! the controller.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, MountBuilder, Spec,
};
use strata_store::{Error, ErrorKind, HostConfig, Result};

/// Where `--init`'s program is mounted in the container (Docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";

/// The init programs `--init` looks for on the host, statically linked
/// first (they run in any image): Debian's `tini` package.
const INIT_PROGRAMS: &[&str] = &["tini-static", "tini"];

/// CFS period for `--cpus` (Docker's, 100 ms).
const CPU_PERIOD_US: u64 = 100_000;

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

/// `--memory 512m`: bytes, a size as Docker writes one
/// ([`strata_store::parse_size`]); at least 6 MiB, as Docker requires.
pub fn parse_memory(s: &str) -> Result<u64> {
    let bytes =
        strata_store::parse_size(s.trim()).map_err(|e| invalid(format!("memory limit: {e}")))?;
    if bytes < 6 << 20 {
        return Err(invalid(format!("memory limit {s:?}: the minimum is 6 MiB")));
    }
    Ok(bytes)
}

/// `--cpus 1.5`: billionths of a CPU (Docker's `NanoCpus`), from 0.01 to
/// the host's CPUs.
pub fn parse_cpus(s: &str) -> Result<u64> {
    let n: f64 = s
        .trim()
        .parse()
        .map_err(|_| invalid(format!("invalid --cpus {s:?}: a number such as 1.5")))?;
    let host = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // At least 0.01 (Docker's floor: a quota under 1 ms of the 100 ms
    // period is refused by the kernel).
    if !(0.01..=host).contains(&n) {
        return Err(invalid(format!(
            "--cpus {s}: must be at least 0.01 and at most the {host} CPUs here"
        )));
    }
    Ok((n * 1e9).round() as u64)
}

/// `--pids-limit N`: a positive number; 0 or -1 mean no limit (Docker).
pub fn parse_pids_limit(s: &str) -> Result<Option<i64>> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| invalid(format!("invalid --pids-limit {s:?}")))?;
    match n {
        -1 | 0 => Ok(None),
        n if n > 0 => Ok(Some(n)),
        _ => Err(invalid(format!("invalid --pids-limit {s:?}"))),
    }
}

/// `--tmpfs /path[:options]`: the path absolute and not `/`, the options
/// mount options (no `,` pieces that are empty); checked here, given
/// to the runtime as they are.
pub fn check_tmpfs(s: &str) -> Result<()> {
    let (path, opts) = s.split_once(':').unwrap_or((s, ""));
    let clean = Path::new(path)
        .components()
        .all(|c| !matches!(c, std::path::Component::ParentDir));
    if !path.starts_with('/') || path == "/" || !clean || path.contains('\0') {
        return Err(invalid(format!(
            "invalid --tmpfs {s:?}: an absolute container path other than /, without .."
        )));
    }
    if !opts.is_empty() && opts.split(',').any(|o| o.is_empty() || o.contains('\0')) {
        return Err(invalid(format!("invalid --tmpfs options in {s:?}")));
    }
    Ok(())
}

/// The init program on this host, for `--init`.
pub fn init_program() -> Result<PathBuf> {
    INIT_PROGRAMS
        .iter()
        .find_map(|p| strata_sys::process::on_path(p))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "--init needs tini on the host (apt-get install tini)",
            )
        })
}

/// The host's cgroup layout, as `docker info` says it: `2` (unified),
/// `1 (hybrid)` (v1 controllers beside a cgroup2 tree) or `1`.
pub fn cgroup_version() -> &'static str {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        "2"
    } else if root.join("unified").is_dir() {
        "1 (hybrid)"
    } else {
        "1"
    }
}

/// Whether the cgroup controller `name` is there to take a limit: on v2
/// (the unified hierarchy at `/sys/fs/cgroup`) listed in
/// `cgroup.controllers`, on v1 or a hybrid layout mounted as its own
/// hierarchy.
fn controller(name: &str) -> bool {
    let root = Path::new("/sys/fs/cgroup");
    match std::fs::read_to_string(root.join("cgroup.controllers")) {
        Ok(list) => list.split_whitespace().any(|c| c == name),
        Err(_) => root.join(name).is_dir(),
    }
}

/// Where a rootless container's limits would go: this process's own
/// cgroup v2 (`0::PATH` in `/proc/self/cgroup`), when the caller owns it
/// (a subtree the system delegated to the user, as systemd does for a
/// login session) and it offers controller `name`.
fn delegated(name: &str) -> std::result::Result<(), String> {
    if cgroup_version() != "2" {
        return Err(format!(
            "they need cgroup v2 with a subtree delegated to the user; this host has cgroup v{}",
            cgroup_version()
        ));
    }
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        })
        .ok_or("this process is in no cgroup v2")?;
    let dir = Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?,
    );
    if owner != strata_sys::fs::euid() {
        return Err(format!("{} is not delegated to the user", dir.display()));
    }
    let list = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    if !list.split_whitespace().any(|c| c == name) {
        return Err(format!(
            "the delegated {} has no {name} controller",
            dir.display()
        ));
    }
    Ok(())
}

fn need(name: &str, flag: &str) -> Result<()> {
    if crate::userns::rootless() {
        return delegated(name).map_err(|why| {
            Error::new(
                ErrorKind::Unsupported,
                format!("{flag}: a container run without root takes resource limits only through the user's own cgroup, and {why}"),
            )
        });
    }
    if controller(name) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("{flag} needs the {name} cgroup controller, which this host does not offer"),
        ))
    }
}

fn oci(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::with(ErrorKind::Io, "building the runtime spec", e)
}

/// Applies `h` to `spec`: the root read-only, tmpfs mounts, the limits,
/// and the init program before the command.
pub fn apply(spec: &mut Spec, h: &HostConfig) -> Result<()> {
    if h.read_only_rootfs {
        if let Some(root) = spec.root_mut() {
            root.set_readonly(Some(true));
        }
    }
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for t in &h.tmpfs {
        check_tmpfs(t)?;
        let (path, opts) = t.split_once(':').unwrap_or((t, ""));
        // Docker's defaults, then what was asked.
        let mut options: Vec<String> = ["nosuid", "nodev", "noexec"].map(String::from).to_vec();
        options.extend(opts.split(',').filter(|o| !o.is_empty()).map(String::from));
        mounts.push(
            MountBuilder::default()
                .destination(path)
                .typ("tmpfs")
                .source("tmpfs")
                .options(options)
                .build()
                .map_err(oci)?,
        );
    }
    if h.init {
        let program = init_program()?;
        mounts.push(
            MountBuilder::default()
                .destination(INIT_PATH)
                .typ("bind")
                .source(program)
                .options(["bind", "ro", "nosuid", "nodev"].map(String::from).to_vec())
                .build()
                .map_err(oci)?,
        );
        if let Some(p) = spec.process_mut() {
            let mut args = vec![INIT_PATH.to_owned(), "--".to_owned()];
            args.extend(p.args().clone().unwrap_or_default());
            p.set_args(Some(args));
        }
    }
    spec.set_mounts(Some(mounts));
    resources(spec, h)
}

fn resources(spec: &mut Spec, h: &HostConfig) -> Result<()> {
    if h.memory.is_none() && h.nano_cpus.is_none() && h.pids_limit.is_none() {
        return Ok(());
    }
    let Some(linux) = spec.linux_mut() else {
        return Ok(());
    };
    let mut r: LinuxResources = linux.resources().clone().unwrap_or_default();
    if let Some(m) = h.memory {
        need("memory", "--memory")?;
        r.set_memory(Some(
            LinuxMemoryBuilder::default()
                .limit(m as i64)
                .build()
                .map_err(oci)?,
        ));
    }
    if let Some(n) = h.nano_cpus {
        need("cpu", "--cpus")?;
        let quota = (n as u128 * CPU_PERIOD_US as u128 / 1_000_000_000) as i64;
        r.set_cpu(Some(
            LinuxCpuBuilder::default()
                .quota(quota)
                .period(CPU_PERIOD_US)
                .build()
                .map_err(oci)?,
        ));
    }
    if let Some(p) = h.pids_limit {
        need("pids", "--pids-limit")?;
        r.set_pids(Some(
            LinuxPidsBuilder::default().limit(p).build().map_err(oci)?,
        ));
    }
    linux.set_resources(Some(r));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes are `strata_types::parse_size`'s (tested there); memory
    /// adds Docker's floor of 6 MiB.
    #[test]
    fn memory_is_a_size_of_at_least_6_mib() {
        assert_eq!(parse_memory("7340032").unwrap(), 7 << 20);
        assert_eq!(parse_memory(" 1.5g ").unwrap(), 3 << 29);
        for bad in ["1m", "5m", "64x", "-1m", ""] {
            let e = parse_memory(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}: {e}");
        }
    }

    #[test]
    fn cpus_and_pids() {
        assert_eq!(parse_cpus("0.5").unwrap(), 500_000_000);
        assert_eq!(parse_cpus("1").unwrap(), 1_000_000_000);
        for bad in ["0", "0.001", "-1", "x", "", "NaN", "1e9"] {
            assert!(parse_cpus(bad).is_err(), "{bad:?} taken");
        }
        assert_eq!(parse_pids_limit("100").unwrap(), Some(100));
        assert_eq!(parse_pids_limit("-1").unwrap(), None);
        assert_eq!(parse_pids_limit("0").unwrap(), None);
        assert!(parse_pids_limit("-2").is_err());
        assert!(parse_pids_limit("many").is_err());
    }

    #[test]
    fn tmpfs_specs() {
        for ok in ["/run", "/tmp:size=64m", "/a/b:size=1m,mode=1777"] {
            check_tmpfs(ok).unwrap();
        }
        for bad in ["run", "/", "/a/../b", "/x:a,,b", ""] {
            assert!(check_tmpfs(bad).is_err(), "{bad:?} taken");
        }
    }

    #[test]
    fn limits_and_the_root_go_into_the_spec() {
        let mut spec = Spec::default();
        let h = HostConfig {
            read_only_rootfs: true,
            tmpfs: vec!["/scratch:size=1m".into()],
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(50),
            init: false,
            ..HostConfig::default()
        };
        let controllers = controller("memory") && controller("cpu") && controller("pids");
        if !strata_test_support::require("memory, cpu and pids cgroup controllers", controllers) {
            return;
        }
        apply(&mut spec, &h).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["root"]["readonly"], true);
        let r = &v["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["pids"]["limit"], 50);
        let m = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/scratch")
            .unwrap();
        assert_eq!(m["type"], "tmpfs");
        assert_eq!(
            m["options"],
            serde_json::json!(["nosuid", "nodev", "noexec", "size=1m"])
        );
    }
}
