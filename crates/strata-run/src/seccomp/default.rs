//! strata's default seccomp profile: Docker's in effect, written from the
//! syscall facts.
//!
//! An allow-list. Whatever is not named here fails with EPERM, as it does
//! in Docker (`SCMP_ACT_ERRNO`, errno 1): programs that probe for a
//! feature see "not permitted" and carry on. What a container may not do
//! falls in three kinds:
//! - calls that reach state shared with the host and no namespace
//!   isolates (kernel keyring, modules, clocks, swap, reboot, accounting);
//! - calls that open a large kernel attack surface to gain little for an
//!   ordinary program (new user namespaces, bpf, perf, userfaultfd,
//!   io_uring), the route of most container escapes of recent years;
//! - obsolete calls nothing modern needs.
//!
//! Where the kernel would allow a call anyway to a process holding some
//! capability, the call is allowed when the container's bounding set
//! holds that capability (`--cap-add`, `--privileged`), as in Docker: the
//! filter never forbids what the granted capability is for.

use oci_spec::runtime::{LinuxSeccompAction as Action, LinuxSeccompOperator as Op};

use super::{Arg, Filter, Profile, Rule};
use oci_spec::runtime::Arch;

/// EPERM: what every call not allowed returns.
const EPERM: u32 = 1;
/// ENOSYS: what `clone3` returns without CAP_SYS_ADMIN, so that glibc
/// falls back to `clone`, whose flags the filter can see (`clone3` takes
/// them in memory, out of a filter's reach).
const ENOSYS: u32 = 38;

/// The namespace flags of `clone`: `CLONE_NEWNS | CLONE_NEWCGROUP |
/// CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET`. Making namespaces is `unshare` by another door.
const CLONE_NAMESPACES: u64 = 0x7E02_0000;

/// `AF_VSOCK`: sockets to the hypervisor, which no container needs and
/// whose kernel code has had exploitable bugs.
const AF_VSOCK: u64 = 40;

/// The execution domains `personality` may select: Linux (0), with
/// `UNAME26` (0x0008), with `ADDR_NO_RANDOMIZE` (0x20000, for debuggers)
/// or both, and 0xffffffff, which only asks for the current one. Other
/// domains change how the kernel reads a process's calls (and once
/// made `mmap_min_addr` bypassable).
const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// Calls every program may make: files, memory, processes and threads,
/// signals, time as read, sockets and local IPC. None of them reaches
/// past what the container's namespaces and capabilities already bound.
#[rustfmt::skip]
const ORDINARY: &[&str] = &[
    // Files and directories.
    "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
    "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
    "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown",
    "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock",
    "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync",
    "ftruncate", "ftruncate64", "futimesat", "getcwd", "getdents", "getdents64", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listxattr", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat", "mknod",
    "mknodat", "newfstatat", "open", "openat", "openat2", "pread64", "preadv", "preadv2",
    "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
    "removexattr", "rename", "renameat", "renameat2", "rmdir", "sendfile", "sendfile64",
    "setxattr", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat",
    "sync", "sync_file_range", "syncfs", "tee", "truncate", "truncate64", "umask", "unlink",
    "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vmsplice", "write", "writev",
    "cachestat",
    // Asynchronous I/O (the old interface; io_uring is left out, below).
    "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
    "io_setup", "io_submit", "ioprio_get", "ioprio_set", "ioctl",
    // Waiting on many descriptors.
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "poll", "ppoll", "ppoll_time64",
    "pselect6", "pselect6_time64", "select", "_newselect", "signalfd", "signalfd4",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "pipe", "pipe2",
    // Memory.
    "brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore",
    "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "msync", "munlock",
    "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages",
    // Processes, threads, credentials (within what the capabilities allow).
    "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "vfork", "futex",
    "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "getcpu",
    "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
    "getgroups32", "getitimer", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit",
    "get_robust_list", "getrusage", "getsid", "get_thread_area", "gettid", "getuid", "getuid32",
    "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64", "process_mrelease",
    "restart_syscall", "rseq", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "set_thread_area", "set_tid_address", "setuid", "setuid32", "tgkill", "tkill", "ugetrlimit",
    "uname", "wait4", "waitid", "waitpid", "sysinfo", "times",
    // Signals.
    "alarm", "pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sigaltstack", "sigprocmask", "sigreturn",
    // Time, as read; setting the clocks is CAP_SYS_TIME's (below).
    // `adjtimex` and `clock_adjtime` only read unless given modes, which
    // the kernel refuses without CAP_SYS_TIME.
    "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
    "gettimeofday", "nanosleep", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    // Sockets (`socket` itself is below, without AF_VSOCK).
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen",
    "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg",
    "sendto", "setsockopt", "shutdown", "socketcall", "socketpair",
    // System V and POSIX IPC (the container's own IPC namespace).
    "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt",
    "shmget",
];

/// Calls that read or act on another process: allowed with
/// CAP_SYS_PTRACE, and to everyone from kernel 4.8 (see [`default_profile`]).
const TRACING: &[&str] = &[
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
];

/// Calls allowed when the bounding set holds a capability: the kernel
/// asks for that capability anyway, and without it the call is refused
/// before its code, some of it attack surface, runs.
#[rustfmt::skip]
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    // Mounts, namespaces, host and domain names, the kernel log, quotas,
    // fanotify on whole file systems: administration, and (through
    // unshare(CLONE_NEWUSER), which needs no capability in the kernel) a
    // user namespace in which the process holds every capability and the
    // mount code is reachable. `pivot_root` goes with `mount`.
    ("CAP_SYS_ADMIN", &[
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
        "pivot_root", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
        "syslog", "umount", "umount2", "unshare",
    ]),
    // Opening files by handle walks past the container's root (the
    // "shocker" escape): both halves of the pair go with the capability.
    (
        "CAP_DAC_READ_SEARCH",
        &["name_to_handle_at", "open_by_handle_at"],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    // Kernel modules: code in the host's kernel.
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    // Process accounting is host-wide.
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", TRACING),
    // The clocks are the host's (no time namespace is made).
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    // Raw I/O ports: the host's hardware.
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    // NUMA placement across the host's memory.
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Never allowed, whatever the capabilities (listed for the reader and
/// the tests; an allow-list needs no deny rules):
/// - `keyctl`, `add_key`, `request_key`: the kernel keyring is not
///   namespaced, so keys would be shared with the host;
/// - `userfaultfd`: stalls kernel code at will, a staple of exploits;
/// - `io_uring_setup`, `io_uring_enter`, `io_uring_register`: a second
///   syscall interface the filter cannot see into;
/// - `kexec_load`, `kexec_file_load`: replace the host's kernel;
/// - `swapon`, `swapoff`: the host's swap;
/// - `move_pages`: moves other processes' memory across NUMA nodes;
/// - `_sysctl`, `sysfs`, `ustat`, `uselib`, `nfsservctl`, `create_module`,
///   `get_kernel_syms`, `query_module`, `pciconfig_read`,
///   `pciconfig_write`, `pciconfig_iobase`, `vm86`, `vm86old`,
///   `tuxcall`, `vserver`, `afs_syscall`, `getpmsg`, `putpmsg`,
///   `security`: obsolete or unimplemented, nothing modern calls them;
/// - `unshare`, `setns`, `mount`, `umount2`, `pivot_root` and the new
///   mount API without CAP_SYS_ADMIN (above).
#[rustfmt::skip]
pub const DENIED: &[&str] = &[
    "keyctl", "add_key", "request_key", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "kexec_load", "kexec_file_load", "swapon", "swapoff", "move_pages",
    "_sysctl", "sysfs", "ustat", "uselib", "nfsservctl", "create_module", "get_kernel_syms",
    "query_module", "pciconfig_read", "pciconfig_write", "pciconfig_iobase", "vm86", "vm86old",
    "tuxcall", "vserver", "afs_syscall", "getpmsg", "putpmsg", "security",
];

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn allow(list: &[&str]) -> Rule {
    Rule {
        names: names(list),
        action: Action::ScmpActAllow,
        ..Rule::default()
    }
}

fn on_arches(mut r: Rule, arches: &[&str]) -> Rule {
    r.includes.arches = names(arches);
    r
}

fn arg(index: u32, value: u64, value_two: u64, op: Op) -> Arg {
    Arg {
        index,
        value,
        value_two,
        op,
    }
}

/// The default profile, for every architecture strata runs on; the rules
/// for the container are picked by [`Profile::to_oci`].
pub fn default_profile() -> Profile {
    let mut syscalls = vec![allow(ORDINARY)];
    // Sockets of every family but AF_VSOCK.
    syscalls.push(Rule {
        args: vec![arg(0, AF_VSOCK, 0, Op::ScmpCmpNe)],
        ..allow(&["socket"])
    });
    for p in PERSONALITIES {
        syscalls.push(Rule {
            args: vec![arg(0, *p, 0, Op::ScmpCmpEq)],
            ..allow(&["personality"])
        });
    }
    // What each architecture's C library needs of its own.
    syscalls.push(on_arches(
        allow(&["arch_prctl", "modify_ldt"]),
        &["amd64", "386", "x32"],
    ));
    syscalls.push(on_arches(
        allow(&[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ]),
        &["arm", "arm64"],
    ));
    syscalls.push(on_arches(
        allow(&["sync_file_range2", "swapcontext"]),
        &["ppc64le"],
    ));
    syscalls.push(on_arches(allow(&["riscv_flush_icache"]), &["riscv64"]));
    // Threads and processes without new namespaces. (s390's `clone`
    // takes its flags second.)
    syscalls.push(Rule {
        args: vec![arg(0, CLONE_NAMESPACES, 0, Op::ScmpCmpMaskedEq)],
        excludes: Filter {
            caps: names(&["CAP_SYS_ADMIN"]),
            arches: names(&["s390", "s390x"]),
            ..Filter::default()
        },
        ..allow(&["clone"])
    });
    syscalls.push(Rule {
        args: vec![arg(1, CLONE_NAMESPACES, 0, Op::ScmpCmpMaskedEq)],
        includes: Filter {
            arches: names(&["s390", "s390x"]),
            ..Filter::default()
        },
        excludes: Filter {
            caps: names(&["CAP_SYS_ADMIN"]),
            ..Filter::default()
        },
        ..allow(&["clone"])
    });
    syscalls.push(Rule {
        action: Action::ScmpActErrno,
        errno_ret: Some(ENOSYS),
        excludes: Filter {
            caps: names(&["CAP_SYS_ADMIN"]),
            ..Filter::default()
        },
        ..allow(&["clone3"])
    });
    // Tracing became safe to allow once the kernel stopped letting a
    // traced process bypass seccomp (4.8, commit 93e35efb8de4).
    syscalls.push(Rule {
        includes: Filter {
            min_kernel: Some("4.8".to_owned()),
            ..Filter::default()
        },
        ..allow(TRACING)
    });
    for (cap, list) in BY_CAPABILITY {
        syscalls.push(Rule {
            includes: Filter {
                caps: names(&[cap]),
                ..Filter::default()
            },
            ..allow(list)
        });
    }
    Profile {
        default_action: Action::ScmpActErrno,
        default_errno_ret: Some(EPERM),
        architectures: Vec::new(),
        arch_map: vec![
            super::ArchMap {
                architecture: Arch::ScmpArchX86_64,
                sub_architectures: vec![Arch::ScmpArchX86, Arch::ScmpArchX32],
            },
            super::ArchMap {
                architecture: Arch::ScmpArchAarch64,
                sub_architectures: vec![Arch::ScmpArchArm],
            },
        ],
        flags: Vec::new(),
        listener_path: String::new(),
        listener_metadata: String::new(),
        syscalls,
    }
}
