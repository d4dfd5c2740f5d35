//! The bundle's `config.json`: an OCI runtime spec built from the
//! container's record, the way Docker and Podman build theirs.
//!
//! What every container gets, as Docker gives it:
//! - root: the mounted union view, writable;
//! - mounts: `/proc`, `/dev` (tmpfs), `/dev/pts`, `/dev/shm` (64 MiB),
//!   `/dev/mqueue`, `/sys` (read-only), `/sys/fs/cgroup` (read-only), then
//!   the per-container `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`
//!   over the init layer's placeholders, then volumes and binds
//!   (read-only where asked), which the runtime resolves inside the root;
//! - namespaces: mount, pid, uts, ipc and cgroup; network: the private
//!   one strata made and connected ([`crate::network`]), joined by path,
//!   or a new one with only loopback (`--network none`, or no helper
//!   installed), or the host's only with `--network host`;
//! - Docker's masked and read-only `/proc` paths, the caller's rlimits:
//!   `RLIMIT_NOFILE` written as the caller has it, soft and hard (Docker
//!   passes on its daemon's limits; Podman raises the soft limit to the
//!   hard one, which strata does not), the others inherited;
//! - Docker's default capability set and a seccomp profile equal in
//!   effect to Docker's default, `noNewPrivileges` off, all changed by
//!   `--cap-add`, `--cap-drop`, `--security-opt` and `--privileged`
//!   ([`crate::security`], [`crate::seccomp`]).
//!
//! Not done: AppArmor and SELinux, resource limits.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Mount as OciMount, MountBuilder,
    PosixRlimit, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    UserBuilder,
};
use strata_store::{Container, Error, ErrorKind, Mount, Result};

use crate::user::User;

/// The default `PATH` when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The per-container files bind-mounted over the init layer's.
pub const ETC_FILES: &[&str] = &["hosts", "hostname", "resolv.conf"];

/// What the spec is made from.
pub struct Inputs<'a> {
    pub container: &'a Container,
    pub rootfs: &'a Path,
    /// The container's mounts, every source a host path.
    pub mounts: &'a [Mount],
    /// Where the per-container `hosts`, `hostname`, `resolv.conf` are.
    pub files: &'a Path,
    pub user: &'a User,
    /// Whether the process gets a terminal.
    pub terminal: bool,
    /// The network namespace.
    pub network: NetNs<'a>,
}

/// The container's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetNs<'a> {
    /// The host's (`--network host`).
    Host,
    /// A new one the runtime makes, with only loopback.
    New,
    /// The one at this path (a private network strata made).
    Join(&'a Path),
}

fn oci_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::with(ErrorKind::Io, "building the runtime spec", e)
}

/// The process's environment: the container's, then `HOSTNAME`, `PATH`,
/// `HOME` and (on a terminal) `TERM` where it has none.
pub fn environment(c: &Container, user: &User, terminal: bool) -> Vec<String> {
    let mut env = c.config.env.clone();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "PATH") {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={}", c.config.hostname));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    if terminal && !has(&env, "TERM") {
        env.push("TERM=xterm".to_owned());
    }
    env
}

/// The bundle's spec.
pub fn build(i: &Inputs<'_>) -> Result<Spec> {
    let c = i.container;
    if c.cmd.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "container {}: no command specified (the image has no Entrypoint or Cmd: give one after the image)",
                c.name
            ),
        ));
    }
    let mut user = UserBuilder::default().uid(i.user.uid).gid(i.user.gid);
    if !i.user.additional_gids.is_empty() {
        user = user.additional_gids(i.user.additional_gids.clone());
    }
    let cwd = match c.config.working_dir.as_str() {
        "" => "/",
        w => w,
    };
    let process = ProcessBuilder::default()
        .terminal(i.terminal)
        .user(user.build().map_err(oci_error)?)
        .args(c.cmd.clone())
        .env(environment(c, i.user, i.terminal))
        .cwd(cwd)
        .rlimits(vec![nofile(strata_sys::process::nofile_limit())?])
        .build()
        .map_err(oci_error)?;
    let root = RootBuilder::default()
        .path(i.rootfs)
        .readonly(false)
        .build()
        .map_err(oci_error)?;
    let mut namespaces = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ] {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(oci_error)?,
        );
    }
    let mut net = LinuxNamespaceBuilder::default();
    net = net.typ(LinuxNamespaceType::Network);
    match i.network {
        NetNs::Host => {}
        NetNs::New => namespaces.push(net.build().map_err(oci_error)?),
        NetNs::Join(path) => namespaces.push(net.path(path).build().map_err(oci_error)?),
    }
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(oci_spec::runtime::get_default_maskedpaths())
        .readonly_paths(oci_spec::runtime::get_default_readonly_paths())
        .build()
        .map_err(oci_error)?;
    let mut mounts = oci_spec::runtime::get_default_mounts();
    if crate::userns::rootless() {
        let gids = strata_sys::userns::own_gid_map()
            .map_err(|e| Error::io("reading this process's gid map", e))?;
        rootless_mounts(&mut mounts, &gids, i.network == NetNs::Host)?;
    }
    for f in ETC_FILES {
        mounts.push(bind(&i.files.join(f), &format!("/etc/{f}"), true)?);
    }
    for m in i.mounts {
        mounts.push(bind(&m.source, &m.destination, m.rw)?);
    }
    let mut spec = Spec::default();
    spec.set_process(Some(process))
        .set_root(Some(root))
        .set_hostname(Some(c.config.hostname.clone()))
        .set_mounts(Some(mounts))
        .set_linux(Some(linux))
        .set_annotations(None);
    crate::host::apply(&mut spec, &c.config.host_config)?;
    // Capabilities, seccomp, no_new_privileges, --privileged.
    crate::security::apply(&mut spec, &c.config.security)?;
    Ok(spec)
}

/// The process's `RLIMIT_NOFILE`: the caller's `(soft, hard)`, `None`
/// for unlimited (`RLIM_INFINITY`). Left out, the spec library would
/// write 1024 for both.
fn nofile((soft, hard): (Option<u64>, Option<u64>)) -> Result<PosixRlimit> {
    PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(soft.unwrap_or(u64::MAX))
        .hard(hard.unwrap_or(u64::MAX))
        .build()
        .map_err(oci_error)
}

/// What a user namespace allows, as Podman's rootless containers have it:
/// `/dev/pts` without `gid=5` when gid 5 (tty) is not mapped (the kernel
/// refuses the option then), and the host's `/sys` bound read-only in
/// place of a new sysfs when the container shares the host's network (a
/// sysfs mount needs a network namespace the user namespace owns).
fn rootless_mounts(
    mounts: &mut [OciMount],
    gids: &[strata_sys::userns::IdRange],
    host_network: bool,
) -> Result<()> {
    let tty_mapped = gids
        .iter()
        .any(|r| r.inside <= 5 && u64::from(r.inside) + u64::from(r.count) > 5);
    for m in mounts.iter_mut() {
        match m.typ().as_deref() {
            Some("devpts") if !tty_mapped => {
                let options = m.options().clone().unwrap_or_default();
                m.set_options(Some(options.into_iter().filter(|o| o != "gid=5").collect()));
            }
            Some("sysfs") if host_network => {
                *m = MountBuilder::default()
                    .destination(m.destination().clone())
                    .typ("bind")
                    .source("/sys")
                    .options(
                        ["rbind", "rprivate", "nosuid", "noexec", "nodev", "ro"]
                            .map(String::from)
                            .to_vec(),
                    )
                    .build()
                    .map_err(oci_error)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A recursive, private bind mount of `source` at `destination`.
fn bind(source: &Path, destination: &str, rw: bool) -> Result<OciMount> {
    let mut options = vec!["rbind".to_owned(), "rprivate".to_owned()];
    options.push(if rw { "rw" } else { "ro" }.to_owned());
    MountBuilder::default()
        .destination(PathBuf::from(destination))
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .map_err(oci_error)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use strata_store::{MountKind, RunConfig};

    fn container(cmd: &[&str], config: RunConfig) -> Container {
        crate::test_container(cmd, config)
    }

    /// In a user namespace: `/dev/pts` loses `gid=5` only when gid 5 is
    /// not mapped; `/sys` is the host's, bound, only on the host's network.
    #[test]
    fn a_user_namespace_changes_devpts_and_sysfs_as_podman_does() {
        use strata_sys::userns::IdRange;
        let only_caller = [IdRange {
            inside: 0,
            outside: 1000,
            count: 1,
        }];
        let with_range = [
            only_caller[0],
            IdRange {
                inside: 1,
                outside: 100_000,
                count: 65536,
            },
        ];
        let of = |mounts: &[OciMount], dest: &str| {
            mounts
                .iter()
                .find(|m| m.destination() == Path::new(dest))
                .cloned()
                .unwrap()
        };
        let gid5 = |m: &OciMount| m.options().as_ref().unwrap().iter().any(|o| o == "gid=5");
        let mut m = oci_spec::runtime::get_default_mounts();
        assert!(gid5(&of(&m, "/dev/pts")));
        rootless_mounts(&mut m, &with_range, false).unwrap();
        assert!(gid5(&of(&m, "/dev/pts")), "gid 5 is mapped");
        assert_eq!(of(&m, "/sys").typ().as_deref(), Some("sysfs"));
        rootless_mounts(&mut m, &only_caller, true).unwrap();
        assert!(!gid5(&of(&m, "/dev/pts")));
        let sys = of(&m, "/sys");
        assert_eq!(sys.typ().as_deref(), Some("bind"));
        assert_eq!(sys.source().as_deref(), Some(Path::new("/sys")));
        assert!(sys.options().as_ref().unwrap().contains(&"ro".to_owned()));
    }

    pub(crate) fn root_user() -> User {
        User {
            uid: 0,
            gid: 0,
            additional_gids: vec![0],
            home: "/root".into(),
        }
    }

    fn spec_of(c: &Container, mounts: &[Mount]) -> serde_json::Value {
        spec_with(c, mounts, NetNs::New)
    }

    fn spec_with(c: &Container, mounts: &[Mount], network: NetNs<'_>) -> serde_json::Value {
        serde_json::to_value(build_as_root(c, mounts, network).unwrap()).unwrap()
    }

    /// [`build`] for `c` run as root, its root file system at `/merged`
    /// and its files in `/ctr`, with no terminal.
    pub(crate) fn build_as_root(
        c: &Container,
        mounts: &[Mount],
        network: NetNs<'_>,
    ) -> Result<Spec> {
        build(&Inputs {
            container: c,
            rootfs: Path::new("/merged"),
            mounts,
            files: Path::new("/ctr"),
            user: &root_user(),
            terminal: false,
            network,
        })
    }

    fn namespaces(v: &serde_json::Value) -> Vec<String> {
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn host_network_shares_the_hosts_network_namespace() {
        let c = container(
            &["true"],
            RunConfig {
                hostname: "h".into(),
                network_mode: "host".into(),
                ..Default::default()
            },
        );
        let v = spec_with(&c, &[], NetNs::Host);
        assert_eq!(namespaces(&v), ["pid", "ipc", "uts", "mount", "cgroup"]);
        assert_eq!(v["hostname"], "h");
        assert_eq!(v["root"]["path"], "/merged");
        assert_eq!(v["process"]["args"], serde_json::json!(["true"]));
        assert_eq!(v["process"]["cwd"], "/");
        assert_eq!(v["process"]["noNewPrivileges"], false);
    }

    #[test]
    fn network_none_gets_a_network_namespace() {
        let c = container(
            &["true"],
            RunConfig {
                network_mode: "none".into(),
                ..Default::default()
            },
        );
        let v = spec_of(&c, &[]);
        assert!(namespaces(&v).contains(&"network".to_owned()));
        let net = v["linux"]["namespaces"].as_array().unwrap().last().unwrap();
        assert_eq!(net, &serde_json::json!({"type": "network"}));
    }

    #[test]
    fn a_private_network_is_joined_by_path() {
        let c = container(&["true"], RunConfig::default());
        let v = spec_with(&c, &[], NetNs::Join(Path::new("/proc/7/fd/9")));
        let net = v["linux"]["namespaces"].as_array().unwrap().last().unwrap();
        assert_eq!(
            net,
            &serde_json::json!({"type": "network", "path": "/proc/7/fd/9"})
        );
    }

    #[test]
    fn etc_files_then_volumes_are_bound_read_only_where_asked() {
        let c = container(&["true"], RunConfig::default());
        let m = |dst: &str, rw: bool| Mount {
            kind: MountKind::Volume,
            name: Some("v".into()),
            source: format!("/vol{dst}").into(),
            destination: dst.into(),
            driver: Some("local".into()),
            mode: String::new(),
            rw,
        };
        let v = spec_of(&c, &[m("/data", true), m("/conf", false)]);
        let binds: Vec<(String, String, bool)> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == "bind")
            .map(|m| {
                let opts = m["options"].as_array().unwrap();
                (
                    m["source"].as_str().unwrap().to_owned(),
                    m["destination"].as_str().unwrap().to_owned(),
                    opts.contains(&serde_json::json!("ro")),
                )
            })
            .collect();
        assert_eq!(
            binds,
            [
                ("/ctr/hosts".into(), "/etc/hosts".into(), false),
                ("/ctr/hostname".into(), "/etc/hostname".into(), false),
                ("/ctr/resolv.conf".into(), "/etc/resolv.conf".into(), false),
                ("/vol/data".into(), "/data".into(), false),
                ("/vol/conf".into(), "/conf".into(), true),
            ]
        );
    }

    #[test]
    fn environment_fills_path_hostname_home_and_keeps_the_containers() {
        let c = container(
            &["true"],
            RunConfig {
                env: vec!["A=1".into(), "HOME=/h".into()],
                hostname: "box".into(),
                ..Default::default()
            },
        );
        assert_eq!(
            environment(&c, &root_user(), true),
            [
                format!("PATH={DEFAULT_PATH}"),
                "A=1".into(),
                "HOME=/h".into(),
                "HOSTNAME=box".into(),
                "TERM=xterm".into(),
            ]
        );
    }

    #[test]
    fn open_files_limit_is_the_callers() {
        let c = container(&["true"], RunConfig::default());
        let v = spec_of(&c, &[]);
        let (soft, hard) = strata_sys::process::nofile_limit();
        assert_eq!(
            v["process"]["rlimits"],
            serde_json::json!([{
                "type": "RLIMIT_NOFILE",
                "soft": soft.unwrap_or(u64::MAX),
                "hard": hard.unwrap_or(u64::MAX),
            }])
        );
        let unlimited = nofile((None, Some(4096))).unwrap();
        assert_eq!((unlimited.soft(), unlimited.hard()), (u64::MAX, 4096));
    }

    #[test]
    fn no_command_is_a_clear_error() {
        let c = container(&[], RunConfig::default());
        let e = build_as_root(&c, &[], NetNs::New).unwrap_err();
        assert!(e.to_string().contains("no command specified"), "{e}");
    }
}
