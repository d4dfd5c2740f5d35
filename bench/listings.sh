#!/usr/bin/env bash
# Listings with many images and containers, each a ratio against Docker's
# and Podman's listing of the same count in the same run:
#
#   a. `strata images` (the table, and -q) with N distinct one-layer
#      images vs `docker images` and `podman images` on the same images
#      (one docker-archive of N images, loaded into each)
#   b. `strata ps -a` (the table, and -q) with N created containers vs
#      `docker ps -a` and `podman ps -a` with N containers of one image
#
# A listing reads one record per image or container: no process and no
# mount per row. What is timed is the whole command, as a script runs it
# (exec, the daemon's answer for docker). Lower is better; there is no
# target: the ratio shows the listing grows as the others' do.
# docker and podman are each measured only when installed and working
# (SKIPPED otherwise); dockerd is started by this script on its own data
# root.
#
# Usage (as root): bash bench/listings.sh
# Env: STRATA_BENCH_WORK (default bench/work), STRATA_BENCH_N (images and
#      containers, default 1000), STRATA_BENCH_RUNS (best of, default 5)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
. bench/lib.sh
bench_init
N=${STRATA_BENCH_N:-1000}
RUNS=${STRATA_BENCH_RUNS:-5}


need_cmds mkfs.ext4:e2fsprogs losetup:mount python3:python3
need_cmds dockerd:docker.io docker:docker.io || true
need_cmds podman:podman || true

build_and_lock

run_fs listings

# The best of $RUNS runs of "$@" (stdout discarded), in microseconds;
# of 2 when a run takes over 2 s (podman images with 1,000 images takes
# 12 s or more), to keep the whole run short.
best_of() {
    local t0 t1 ts=() i
    for ((i = 0; i < RUNS; i++)); do
        t0=$(now_us)
        "$@" >/dev/null || die "failed: $*"
        t1=$(now_us)
        ts+=($((t1 - t0)))
        ((i < 1 || t1 - t0 < 2000000)) || break
    done
    best "${ts[@]}"
}
# Asserts that "$@" lists $want lines.
count() { # want command...
    local want=$1 got; shift
    got=$("$@" | wc -l)
    [[ $got == "$want" ]] || die "$* listed $got, not $want"
}
vs() { # label peer-us strata-us
    row "$1" "$(ms "$3") ms" "$(ms "$2") ms" "$(ratio "$3" "$2")x" "-" ""
}
# Times the four listings through "$@" (a function running strata or a
# peer), prints them as $who's line and leaves them in IMAGES, IMAGES_Q,
# PS and PS_Q.
listings() { # who command...
    local who=$1; shift
    IMAGES=$(best_of "$@" images)
    IMAGES_Q=$(best_of "$@" images -q)
    PS=$(best_of "$@" ps -a)
    PS_Q=$(best_of "$@" ps -a -q)
    echo "  $who: images $(ms "$IMAGES") ms, images -q $(ms "$IMAGES_Q") ms, ps -a $(ms "$PS") ms, ps -a -q $(ms "$PS_Q") ms"
}
# The rows setting the peer's listings, just timed, against strata's.
against_strata() { # peer
    vs "images, $N images (strata/$1)" "$IMAGES" "$SI"
    vs "images -q, $N images (strata/$1)" "$IMAGES_Q" "$SIQ"
    vs "ps -a, $N containers (strata/$1)" "$PS" "$SP"
    vs "ps -a -q, $N containers (strata/$1)" "$PS_Q" "$SPQ"
}

# ---------------------------------------------------------------- the data

# One docker-archive of $N images, each one layer of one small file of its
# own (so N distinct image IDs), tagged bench/list:0 .. N-1.
ARCH=$RUN/images.tar
log "making a docker-archive of $N images"
many_images "$ARCH" "$N" bench/list 0

S=$RUN/strata
st() { "$STRATA" --root "$S" --driver overlay2 "$@"; }
log "strata: load $N images, create $N containers"
st load -i "$ARCH" >/dev/null
count "$N" st images -q
seq 0 $((N - 1)) | xargs -P 4 -I{} "$STRATA" --root "$S" create --name c{} bench/list:0 >/dev/null
count "$N" st ps -a -q

log "a. images, b. ps -a (best of $RUNS)"
listings strata st
SI=$IMAGES SIQ=$IMAGES_Q SP=$PS SPQ=$PS_Q

# ------------------------------------------------------------------ docker

log "docker"
if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    skipped "docker images / ps (dockerd or docker not installed, and apt-get could not install docker.io)"
elif ! start_dockerd; then
    skipped "docker images / ps (dockerd did not start: $WHY)"
else
    dk() { docker -H "$SOCK" "$@"; }
    echo "dockerd $(dk version -f '{{.Server.Version}}'): load $N images, create $N containers"
    dk load -q -i "$ARCH" >/dev/null
    count "$N" dk images -q
    seq 0 $((N - 1)) | xargs -P 4 -I{} docker -H "$SOCK" create --name c{} bench/list:0 >/dev/null
    count "$N" dk ps -a -q
    listings docker dk
    against_strata docker
    stop_dockerd
fi

# ------------------------------------------------------------------ podman

log "podman"
if ! command -v podman >/dev/null; then
    skipped "podman images / ps (podman not installed, and apt-get could not install it)"
else
    P=$RUN/podman
    mkdir -p "$P/tmp" "$SHORT/podman"
    PM=(env "TMPDIR=$P/tmp" podman --root "$P/root" --runroot "$SHORT/podman" --tmpdir "$P/libpod"
        --storage-driver overlay --events-backend file --cgroup-manager cgroupfs)
    pm() { "${PM[@]}" "$@"; }
    if ! pm load -q -i "$ARCH" >/dev/null 2>"$RUN/podman.err"; then
        skipped "podman images / ps (podman load failed: $(tail -1 "$RUN/podman.err" | cut -c1-160))"
    else
        echo "podman $(pm version -f '{{.Client.Version}}'): loaded $N images, creating $N containers"
        count "$N" pm images -q
        seq 0 $((N - 1)) | xargs -P 4 -I{} "${PM[@]}" create -q --name c{} bench/list:0 >/dev/null
        count "$N" pm ps -a -q
        listings podman pm
        against_strata podman
    fi
    unmount_under "$P/"
fi

# ----------------------------------------------------------------- summary

log "summary (best of $RUNS; ratio = strata / peer, lower is better)"
printf '%-46s %12s %12s %8s\n' "" "strata" "peer" "ratio"
printf '%s\n' "${SUMMARY[@]}"
for s in "${SKIPS[@]}"; do echo "$s"; done
