#!/usr/bin/env bash
# Rootless benchmarks, each a ratio against references measured in the
# same run on the same data (the Debian bookworm minbase rootfs split into
# five layers, as a docker-archive), everything on one ext4 made for the
# run:
#
#   a. strata load as an ordinary user (strata-rootless, with a subordinate
#      range: the store's user namespace, kernel overlay with userxattr) vs
#      strata load as root (target <= 1.2x), and vs `podman load` as the
#      same user (rootless podman, overlay driver: target strata >= 2x
#      faster)
#   b. strata create + strata mount per container, over N containers of
#      that image, as the user vs as root (target <= 1.2x); each side is
#      one shell loop run as its user, every command a process of its own
#
# podman's pause process is started before timing; strata's namespace
# belongs to the store, so each rootless load into a fresh store starts
# its keeper inside the timed command (the create+mount loop reuses one
# store, its keeper started by the first command).
#
# Usage (as root): bash bench/rootless.sh
# Env: STRATA_BENCH_WORK (default bench/work; archives are cached there),
#      STRATA_BENCH_RUNS (runs per measurement, best kept; default 3),
#      STRATA_BENCH_N (containers in b, default 100)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
. bench/lib.sh
bench_init
RUNS=${STRATA_BENCH_RUNS:-3}
NC=${STRATA_BENCH_N:-100}
GEN=v1
TAG=bench/debian:load


need_cmds mkfs.ext4:e2fsprogs losetup:mount python3:python3 skopeo:skopeo setpriv:util-linux \
    newuidmap:uidmap
need_cmds podman:podman || true
rootless_user
U_ID=$(id -u strata-rootless)
U_GID=$(id -g strata-rootless)

build_and_lock

# The user's namespaces go first, with what they hold mounted: every
# store's keeper (userns.pid) and podman's pause processes.
before_cleanup() {
    local p
    for p in $(find "$RUN" \( -name userns.pid -o -name pause.pid \) 2>/dev/null); do
        kill -9 "$(cut -d' ' -f1 "$p")"
    done
}
run_fs rootless
chmod 755 "$RUN"

# The user's HOME and runtime directory, on the run's file system.
UHOME=$RUN/home
mkdir -p -m 700 "$UHOME" "$UHOME/run"
chown -R "$U_ID:$U_GID" "$UHOME"
as_user() {
    setpriv --reuid="$U_ID" --regid="$U_GID" --clear-groups --inh-caps=-all -- \
        env -i PATH="$PATH" HOME="$UHOME" XDG_RUNTIME_DIR="$UHOME/run" "$@"
}
# A directory of the user's, fresh (numbered like newdir).
userdir() { newdir "$1"; chown "$U_ID:$U_GID" "$DIR"; }

debian_five_layers "$TAG" "$GEN"
# A copy the user can read, and the binary where the user can run it.
cp "$DARCH" "$RUN/image.tar"
chmod 644 "$RUN/image.tar"
install -m 755 "$STRATA" "$RUN/strata"
S=$RUN/strata
ARCH=$RUN/image.tar
echo "docker-archive: $(mib "$(stat -c %s "$ARCH")") MiB, ${#LAYERS[@]} layers, image $IMAGE_ID"

# What a rootless store is here.
as_user "$S" --root "$UHOME/warm" info | grep -E '^(Storage Driver|Rootless|ID Mappings):' | sed 's/^/  /'

# ----------------------------------------------------------------- a. load

log "a. load as the user vs as root, and vs rootless podman load (best of $RUNS)"
cat "$ARCH" >/dev/null
rl=(); rt=()
for ((i = 1; i <= RUNS; i++)); do
    userdir rootless; RL_DIR=$DIR; sync
    rl+=("$(elapsed_us as_user "$S" --root "$DIR/store" load -q -i "$ARCH")")
    newdir root; RT_DIR=$DIR; sync
    rt+=("$(elapsed_us "$S" --root "$DIR/store" --driver overlay2 load -q -i "$ARCH")")
    echo "  run $i: as the user $(ms "${rl[-1]}") ms, as root $(ms "${rt[-1]}") ms"
done
RL=$(best "${rl[@]}"); RT=$(best "${rt[@]}")
for d in "$RL_DIR" "$RT_DIR"; do
    id=$(as_user "$S" --root "$d/store" images -q --no-trunc 2>/dev/null || "$S" --root "$d/store" images -q --no-trunc)
    [[ $id == "$IMAGE_ID" ]] || die "the store in $d holds $id, not $IMAGE_ID"
done
echo "  both stores hold $IMAGE_ID"
row "rootless load (vs root strata load)" "$(ms "$RL") ms" "$(ms "$RT") ms" "$(ratio "$RL" "$RT")x" "<= 1.2x" "$(verdict "$(ratio "$RL" "$RT")" 1.2)"

if ! command -v podman >/dev/null; then
    skipped "rootless podman load (podman not installed, and apt-get could not install it)"
else
    podman_user() { # dir podman-args...
        local d=$1; shift
        as_user env TMPDIR="$d/tmp" podman --root "$d/root" --runroot "$SHORT/${d##*/}" \
            --tmpdir "$d/libpod" --storage-driver overlay --events-backend file \
            --cgroup-manager cgroupfs "$@"
    }
    chmod 755 "$SHORT"
    userdir podman-warm; mkdir -p "$SHORT/${DIR##*/}"; chown "$U_ID:$U_GID" "$SHORT/${DIR##*/}"
    as_user mkdir -p "$DIR/tmp"
    podman_user "$DIR" info >/dev/null 2>&1 || true
    pl=()
    for ((i = 1; i <= RUNS; i++)); do
        userdir podman; mkdir -p "$SHORT/${DIR##*/}"; chown "$U_ID:$U_GID" "$SHORT/${DIR##*/}"
        as_user mkdir -p "$DIR/tmp"; sync
        if ! t=$(elapsed_us podman_user "$DIR" load -q -i "$ARCH"); then pl=(); break; fi
        pl+=("$t")
    done
    if ((${#pl[@]})); then
        pid=$(podman_user "$DIR" image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)
        echo "  rootless podman load: $(msl "${pl[@]}") ms (image sha256:${pid#sha256:})"
        PL=$(best "${pl[@]}")
        vs_row "rootless podman load (podman/strata)" "$PL" "$RL"
    else
        skipped "rootless podman load (it failed: see above)"
    fi
fi

# --------------------------------------------------------- b. create+mount

log "b. create + mount of $NC containers, as the user vs as root (best of $RUNS)"
loop='for i in $(seq "$N"); do "$S" --root "$R" create --name "c$i" "$T" >/dev/null; "$S" --root "$R" mount "c$i" >/dev/null 2>&1; done'
cl=(); ct=()
for ((i = 1; i <= RUNS; i++)); do
    sync
    cl+=("$(elapsed_us as_user env S="$S" R="$RL_DIR/store" T="$TAG" N="$NC" bash -c "$loop")")
    as_user "$S" --root "$RL_DIR/store" rm -f $(as_user "$S" --root "$RL_DIR/store" ps -aq) >/dev/null
    sync
    ct+=("$(elapsed_us env S="$S" R="$RT_DIR/store" T="$TAG" N="$NC" bash -c "$loop")")
    "$S" --root "$RT_DIR/store" rm -f $("$S" --root "$RT_DIR/store" ps -aq) >/dev/null
    echo "  run $i: as the user $(ms $((cl[-1] / NC))) ms, as root $(ms $((ct[-1] / NC))) ms per container"
done
CL=$(best "${cl[@]}"); CT=$(best "${ct[@]}")
row "rootless create+mount (vs root), per container" "$(ms $((CL / NC))) ms" "$(ms $((CT / NC))) ms" "$(ratio "$CL" "$CT")x" "<= 1.2x" "$(verdict "$(ratio "$CL" "$CT")" 1.2)"

# ---------------------------------------------------------------- summary

log "summary ($(nproc) cores, kernel $(uname -r), strata $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "best of $RUNS; \"x faster\" rows: podman's time / strata's"
printf '%-46s %12s %12s %8s  %-10s %s\n' "benchmark" "strata" "reference" "ratio" "target" ""
for r in "${SUMMARY[@]}"; do echo "$r"; done
for s in "${SKIPS[@]}"; do echo "$s"; done
