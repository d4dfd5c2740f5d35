#!/usr/bin/env bash
# What a btrfs snapshot costs a container's creation, for strata and for
# Docker's own drivers, in one run on the same image (the Debian bookworm
# minbase rootfs in five layers, as bench/load.sh makes it):
#
#   a. `strata create` on btrfs (the container's init and read-write
#      layers: two snapshots) vs on overlay2 (two directories); issue 21
#      asks <= 1.5x
#   b. `docker create` with dockerd's btrfs driver vs with its overlay2
#      driver (the same two layers each): the ratio Docker's own drivers
#      give, as the reference for (a); measured when dockerd is installed
#      and starts, skipped loudly otherwise
#
# The overlay2 stores live on a journaled ext4 made for the run (a sparse
# file, loop-mounted), the btrfs ones on a btrfs in a sparse file on that
# ext4, loop-mounted too. Each figure is the median of STRATA_BENCH_N
# creates (default 30) after 3 unmeasured ones.
#
# Usage (as root): bash bench/btrfs.sh
# Env: STRATA_BENCH_WORK (default bench/work; archives are cached there),
#      STRATA_BENCH_N (creates per figure, default 30)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
. bench/lib.sh
bench_init
CREATES=${STRATA_BENCH_N:-30}
# The archive bench/load.sh makes and caches.
GEN=v1
TAG=bench/debian:load

need_cmds mkfs.ext4:e2fsprogs losetup:mount mkfs.btrfs:btrfs-progs python3:python3 skopeo:skopeo
# Optional: measured when present (installed here if missing), skipped otherwise.
need_cmds dockerd:docker.io docker:docker.io || true

build_and_lock

# ------------------------------------------------------------ the run's fs

BTRFS=
BIMG=
# Run first by run_fs's clean-up: dockerd, then the btrfs on the ext4.
before_cleanup() {
    stop_dockerd
    if [[ -n $BTRFS ]] && mountpoint -q "$BTRFS"; then umount "$BTRFS" || umount -l "$BTRFS"; fi
    if [[ -n $BIMG ]]; then
        losetup -j "$BIMG" 2>/dev/null | cut -d: -f1 | while read -r l; do losetup -d "$l"; done
    fi
}
run_fs btrfs
BTRFS=$RUN/btrfs
BIMG=$RUN/btrfs.img
mkdir -p "$BTRFS"
truncate -s 8G "$BIMG"
mkfs.btrfs -q -f "$BIMG"
mount -o loop "$BIMG" "$BTRFS"

debian_five_layers "$TAG" "$GEN"
echo "docker-archive: $(mib "$(stat -c %s "$DARCH")") MiB, ${#LAYERS[@]} layers, image $IMAGE_ID"

# ---------------------------------------------------------------- helpers

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The median microseconds of CREATES runs of "$@", after 3 unmeasured ones,
# in MEDIAN.
creates() {
    local t=() i
    for ((i = 0; i < 3; i++)); do "$@" >/dev/null; done
    for ((i = 0; i < CREATES; i++)); do t+=("$(elapsed_us "$@")"); done
    MEDIAN=$(median "${t[@]}")
}

# ----------------------------------------------------------- a. strata

log "a. strata create, btrfs vs overlay2 (median of $CREATES)"
S_O2=$RUN/strata-overlay2
S_BT=$BTRFS/strata
"$STRATA" --root "$S_O2" --driver overlay2 load -q -i "$DARCH" >/dev/null
"$STRATA" --root "$S_BT" --driver btrfs load -q -i "$DARCH" >/dev/null
creates "$STRATA" --root "$S_O2" --driver overlay2 create "$TAG"
SO=$MEDIAN
creates "$STRATA" --root "$S_BT" --driver btrfs create "$TAG"
SB=$MEDIAN
echo "  overlay2 $(ms "$SO") ms, btrfs $(ms "$SB") ms"
row "strata create, btrfs vs overlay2" "$(ms "$SB") ms" "$(ms "$SO") ms" "$(ratio "$SB" "$SO")x" "<= 1.5x" "$(verdict "$(ratio "$SB" "$SO")" 1.5)"

# ----------------------------------------------------------- b. docker

# docker create with dockerd's driver $1, its data root $2: MEDIAN, or
# fails (WHY says why).
docker_creates() {
    DOCKER_DRIVER=$1 DOCKER_ROOT=$2 start_dockerd || return 1
    local got
    got=$(docker -H "$SOCK" info -f '{{.Driver}}')
    [[ $got == "$1" ]] || { WHY="dockerd runs $got, not $1"; stop_dockerd; return 1; }
    docker -H "$SOCK" load -q -i "$DARCH" >/dev/null
    creates docker -H "$SOCK" create --network none "$TAG"
    DOCKER_VERSION=$(docker -H "$SOCK" version -f '{{.Server.Version}}')
    stop_dockerd
}

log "b. docker create, dockerd's btrfs driver vs its overlay2 driver (median of $CREATES)"
if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    skipped "docker create (dockerd or docker not installed, and apt-get could not install docker.io)"
elif ! docker_creates overlay2 "$RUN/docker"; then
    skipped "docker create on overlay2 (dockerd did not start: $WHY)"
else
    DO=$MEDIAN
    if ! docker_creates btrfs "$BTRFS/docker"; then
        skipped "docker create on btrfs (dockerd did not start: $WHY)"
    else
        DB=$MEDIAN
        echo "  dockerd $DOCKER_VERSION: overlay2 $(ms "$DO") ms, btrfs $(ms "$DB") ms"
        row "docker create, btrfs vs overlay2" "$(ms "$DB") ms" "$(ms "$DO") ms" "$(ratio "$DB" "$DO")x" "" "(Docker's)"
        row "btrfs's extra time per create: strata, docker" "$(ms $((SB - SO))) ms" "$(ms $((DB - DO))) ms" "" "" ""
        row "create on btrfs: strata vs docker" "$(ms "$SB") ms" "$(ms "$DB") ms" "$(ratio "$SB" "$DB")x" "" ""
    fi
fi

# ---------------------------------------------------------------- summary

log "summary ($(nproc) cores, kernel $(uname -r), strata $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "medians of $CREATES creates; columns: btrfs, then the reference (overlay2, or as the row says)"
printf '%-46s %12s %12s %8s  %-10s %s\n' "benchmark" "btrfs" "reference" "ratio" "target" ""
for r in "${SUMMARY[@]}"; do echo "$r"; done
for s in "${SKIPS[@]}"; do echo "$s"; done
