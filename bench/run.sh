#!/usr/bin/env bash
# `strata run` benchmarks: the wall time per container of `sh -c true` in a
# small busybox image (busybox-static's binary and its applet symlinks),
# each against a reference measured in the same run:
#
#   ref. `crun run` of a prepared bundle: `crun spec` with a plain copy of
#        the rootfs as root, no terminal, the host's network (as strata's
#        default): the floor that any tool running containers through an
#        OCI runtime pays
#   a. `strata run --rm bb sh -c true`: create, mount, bundle, crun,
#      unmount, remove (vs ref)
#   b. `strata start -a` of an existing container: mount, bundle, crun,
#      unmount, the steady-state cost (vs ref)
#   c. a with `--runtime runc`, vs `runc run` of the reference bundle, when
#      runc is installed
#   d. `podman run --rm` of the same image (podman/strata), when podman is
#      installed (or installable) and runs here; SKIPPED, with the reason,
#      otherwise
#
# The variants run interleaved, one container each per round, after two
# rounds of warm-up; the mean of RUN_N rounds is kept (median and best are
# printed beside it). Everything is written under the work dir's own file
# system (no loop-mounted ext4 as the other benches: little is written).
#
# Usage (as root): bash bench/run.sh
# Env: STRATA_BENCH_WORK (default bench/work), RUN_N (rounds, default 50)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
. bench/lib.sh
bench_init
N=${RUN_N:-50}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "RUN_N must be a positive integer" >&2; exit 1; }


need_cmds busybox:busybox-static crun:crun python3:python3
# Optional: measured when present (installed here if missing), skipped otherwise.
need_cmds runc:runc || true
need_cmds podman:podman || true

build_and_lock

# ------------------------------------------------------------ the run's dir

# podman's run root (locks, sockets: short paths) goes to a directory
# under /tmp; everything else under RUN.
RUN=$WORK/run-bench
S=$RUN/store
SHORT=
PODMAN_STORE=
# podman (cgroup manager cgroupfs) makes libpod_parent/conmon in every
# cgroup hierarchy and leaves them: removed at exit (empty directories
# only) unless they were there before.
podman_cgroups() { compgen -G /sys/fs/cgroup/libpod_parent; compgen -G '/sys/fs/cgroup/*/libpod_parent'; }
CGROUPS_BEFORE=unknown
mounts_under() { awk -v d="$1" 'index($5, d) == 1' /proc/self/mountinfo | wc -l; }
cleanup() {
    local -
    set +e
    # Containers podman still holds (a run interrupted mid-way).
    [[ -n $PODMAN_STORE ]] && TMPDIR=$PODMAN_STORE/tmp timeout 60 "${PODMAN[@]}" rm -af -t 0 >/dev/null 2>&1
    unmount_under "$RUN/"
    [[ -n $SHORT ]] && unmount_under "$SHORT/"
    # Never delete through a mount that would not go.
    if (($(mounts_under "$RUN/") > 0)); then
        echo "run.sh: mounts remain under $RUN, not removing it" >&2
    else
        rm -rf "$RUN"
    fi
    [[ -n $SHORT ]] && (($(mounts_under "$SHORT/") == 0)) && rm -rf "$SHORT"
    [[ -z $CGROUPS_BEFORE ]] && podman_cgroups | while read -r d; do rmdir "$d/conmon" "$d" 2>/dev/null; done
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
cleanup
CGROUPS_BEFORE=$(podman_cgroups || true)
mkdir -p "$RUN"
SHORT=$(mktemp -d /tmp/strata-run.XXXXXX)

# ---------------------------------------------------------------- helpers

# Runs "$@" with stdin from /dev/null and stdout discarded; prints the
# elapsed microseconds. Fails (printing the command's stderr) when the
# command does.
elapsed_us() {
    local t0 t1 err=$RUN/elapsed.err
    t0=$(now_us)
    "$@" </dev/null >/dev/null 2>"$err" || { cat "$err" >&2; return 1; }
    t1=$(now_us)
    echo $((t1 - t0))
}
# Mean, median and best of microsecond values, in ms.
stats() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1; s += $1 }
    END { printf "%.1f %.1f %.1f", s / NR / 1000, a[int((NR + 1) / 2)] / 1000, a[1] / 1000 }'; }
mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.3f", s / NR / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# ------------------------------------------------------------- the image

log "the busybox image"
ROOTFS=$RUN/rootfs
mkdir -p "$ROOTFS/bin" "$ROOTFS"/{dev,etc,proc,root,sys,tmp}
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for a in $("$ROOTFS/bin/busybox" --list); do
    [[ $a == busybox ]] || ln -s busybox "$ROOTFS/bin/$a"
done
TARBALL=$RUN/rootfs.tar
tar --numeric-owner --owner=0 --group=0 -C "$ROOTFS" -cf "$TARBALL" .
echo "rootfs: $(busybox | head -1 | cut -d' ' -f1-2), $(find "$ROOTFS" | wc -l) entries," \
    "$(($(stat -c %s "$TARBALL") / 1024)) KiB tar"
"$STRATA" --root "$S" --driver overlay2 import "$TARBALL" bb >/dev/null
# The container `strata start -a` runs again and again.
"$STRATA" --root "$S" create --name steady bb sh -c true >/dev/null

# The reference bundle: `crun spec`, a plain copy of the rootfs as root,
# writable as strata's; no network namespace, as strata's default (and
# podman's --network host).
BUNDLE=$RUN/bundle
mkdir -p "$BUNDLE"
cp -a "$ROOTFS" "$BUNDLE/rootfs"
(cd "$BUNDLE" && crun spec)
python3 - "$BUNDLE/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "true"]
c["root"] = {"path": "rootfs", "readonly": False}
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(path, "w"), indent=2)
EOF

# ------------------------------------------------------------ the variants

ref_crun() { crun --root "$RUN/crun-state" run --bundle "$BUNDLE" bench-ref; }
ref_runc() { runc --root "$RUN/runc-state" run --bundle "$BUNDLE" bench-ref; }
strata_run() { "$STRATA" --root "$S" run --rm bb "$@"; }
strata_run_runc() { "$STRATA" --root "$S" run --rm --runtime runc bb "$@"; }
strata_start() { "$STRATA" --root "$S" start -a steady; }
podman_() { TMPDIR=$PODMAN_STORE/tmp "${PODMAN[@]}" "$@" {BENCH_LOCK}<&-; }
podman_run() { podman_ run --rm --runtime crun "${PODMAN_FLAGS[@]}" bb "$@"; }

VARIANTS=(ref_crun strata_run strata_start)
if command -v runc >/dev/null; then
    VARIANTS+=(ref_runc strata_run_runc)
else
    skipped "strata run --runtime runc (runc not installed, and apt-get could not install it)"
fi

# Each strata variant runs its command in a container of its own: the
# shell there is PID 1.
for v in strata_run strata_run_runc; do
    [[ " ${VARIANTS[*]} " == *" $v "* ]] || continue
    out=$("$v" sh -c 'echo $$' </dev/null) || die "$v failed"
    [[ $out == 1 ]] || die "$v: the command ran as PID $out, not in a PID namespace"
done

log "podman"
PODMAN_FLAGS=()
if ! command -v podman >/dev/null; then
    skipped "podman run (podman not installed, and apt-get could not install it)"
else
    PODMAN_STORE=$RUN/podman
    PODMAN=(podman --root "$PODMAN_STORE/root" --runroot "$SHORT/podman" --tmpdir "$PODMAN_STORE/libpod"
            --storage-driver overlay --events-backend file --cgroup-manager cgroupfs)
    mkdir -p "$PODMAN_STORE/tmp"
    if ! err=$(podman_ import -q "$TARBALL" bb 2>&1 >/dev/null); then
        skipped "podman run (podman import failed: $(tail -1 <<<"$err" | cut -c1-200))"
    else
        # podman asks for RLIMIT_NOFILE 1048576 by default, which needs
        # CAP_SYS_RESOURCE when the hard limit is lower; and it runs with
        # RLIMIT_NPROC 32768 itself, so a container cannot get more. Tried
        # in order; the first that runs is measured.
        nproc=$(ulimit -Hu); [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
        ulim="--ulimit nofile=$(ulimit -Sn):$(ulimit -Hn) --ulimit nproc=$nproc:$nproc"
        tries=("--network host" "--network host $ulim" "--network host $ulim --cgroups=disabled"
               "--network none $ulim" "--network none $ulim --cgroups=disabled")
        for t in "${tries[@]}"; do
            read -ra PODMAN_FLAGS <<<"$t"
            if out=$(podman_run sh -c 'echo $$' </dev/null 2>"$RUN/podman.err") && [[ $out == 1 ]]; then
                echo "podman $(podman --version | awk '{print $3}'), runtime crun: podman run --rm $t"
                break
            fi
            echo "  podman run --rm $t: $(tail -1 "$RUN/podman.err" | cut -c1-200)"
            PODMAN_FLAGS=()
        done
        if ((${#PODMAN_FLAGS[@]})); then
            VARIANTS+=(podman_run)
        else
            skipped "podman run (no set of flags worked: see the errors above)"
        fi
    fi
fi

# ------------------------------------------------------------------ rounds

declare -A T
run_variant() { # variant
    if [[ $1 == podman_run || $1 == strata_run* ]]; then
        elapsed_us "$1" sh -c true
    else
        elapsed_us "$1"
    fi
}
log "$N rounds of: ${VARIANTS[*]} (after 2 rounds of warm-up)"
for ((i = -1; i <= N; i++)); do
    for v in "${VARIANTS[@]}"; do
        t=$(run_variant "$v") || die "$v failed"
        ((i < 1)) || T[$v]+=" $t"
    done
    ((i % 10)) || ((i < 1)) || echo "  $i rounds done"
done

# What strata left: only the `steady` container, nothing mounted.
left=$("$STRATA" --root "$S" ps -a --format json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
((left == 1)) || echo "WARNING: strata's store holds $left containers, 1 expected (steady)"
(($(mounts_under "$S/") == 0)) || echo "WARNING: mounts remain under the store"

# ---------------------------------------------------------------- summary

SUMMARY=()
mean_of() { local -a v; read -ra v <<<"${T[$1]}"; mean "${v[@]}"; }
over() { ratio "$(mean_of "$1")" "$(mean_of "$2")"; } # a b: a's mean / b's
row() { # label variant [ratio]
    local -a v; read -ra v <<<"${T[$2]}"
    read -r a b c <<<"$(stats "${v[@]}")"
    SUMMARY+=("$(printf '%-46s %9s ms %9s ms %9s ms %8s' "$1" "$a" "$b" "$c" "${3:+${3}x}")")
}
row "crun run of a prepared bundle (floor)" ref_crun
row "strata run --rm (vs crun run)" strata_run "$(over strata_run ref_crun)"
row "strata start -a (vs crun run)" strata_start "$(over strata_start ref_crun)"
if [[ -n ${T[ref_runc]:-} ]]; then
    row "runc run of a prepared bundle" ref_runc
    row "strata run --rm --runtime runc (vs runc run)" strata_run_runc "$(over strata_run_runc ref_runc)"
fi
# The other way round: how many times strata's time podman takes.
[[ -z ${T[podman_run]:-} ]] || row "podman run --rm (podman/strata run)" podman_run "$(over podman_run strata_run)"

read -r fstype src <<<"$(findmnt -no FSTYPE,SOURCE -T "$WORK")"
journal=
if [[ $fstype == ext4 ]]; then
    if compgen -G "/proc/fs/jbd2/${src##*/}-*" >/dev/null; then journal=", journaled"; else journal=", no journal"; fi
fi
versions="crun $(crun --version | awk 'NR == 1 { print $3 }')"
command -v runc >/dev/null && versions+=", runc $(runc --version | awk 'NR == 1 { print $3 }')"
[[ -n ${T[podman_run]:-} ]] && versions+=", podman $(podman --version | awk '{ print $3 }')"
log "summary ($(nproc) cores, kernel $(uname -r), $versions, strata $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'))"
echo "work dir on $fstype ($src$journal); $N containers each, sh -c true in a busybox image; ratio of means"
printf '%-46s %12s %12s %12s %8s\n' "benchmark" "mean" "median" "best" "ratio"
for r in "${SUMMARY[@]}"; do echo "$r"; done
for s in "${SKIPS[@]}"; do echo "$s"; done
