#!/usr/bin/env bash
# `strata load` benchmarks, each a ratio against a reference measured in the
# same run on the same archives (a Debian bookworm minbase rootfs split into
# five layers):
#
#   a. strata load of a docker-archive (layers uncompressed, as `docker save`
#      writes them) vs GNU `tar -x` of the same five layer tars one after
#      another followed by `sync -f`: load makes its layers durable before
#      publishing them, so the reference is a durable tar (target <= 1.0x);
#      bare `tar -x` is shown beside it
#   b. the same image as a gzip OCI archive vs `tar -xzf` of its layer blobs
#      followed by `sync -f` (target <= 1.0x), and bare `tar -xzf`
#   c. `docker load` and `podman load` of the same archives vs strata load
#      (target: strata >= 2x faster), each only when the tool is installed
#      and starts; dockerd is started by this script on its own data root
#   d. peak RSS of strata load, an image with one ~280 MiB layer and one with
#      a ~1 GiB layer (target < 64 MiB, and flat as the layer grows)
#
# Usage (as root): bash bench/load.sh
# Env: STRATA_BENCH_WORK (default bench/work; archives are cached there),
#      STRATA_BENCH_RUNS (runs per measurement, best kept; default 3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
. bench/lib.sh
bench_init
RUNS=${STRATA_BENCH_RUNS:-3}
# Bump when the archive builders change, so cached archives are rebuilt.
GEN=v1
TAG=bench/debian:load


need_cmds mkfs.ext4:e2fsprogs losetup:mount /usr/bin/time:time python3:python3 skopeo:skopeo
# Optional: measured when present (installed here if missing), skipped otherwise.
need_cmds dockerd:docker.io docker:docker.io || true
need_cmds podman:podman || true

build_and_lock

# ------------------------------------------------------------ the run's fs

# Everything this run writes goes to a journaled ext4 made for the run (a
# sparse image, loop-mounted): see BENCHMARKS.md, "File system". dockerd's
# exec root and socket live in a short directory under /tmp (unix socket
# paths are limited to 108 bytes).
run_fs load

# ---------------------------------------------------------------- helpers

warm() { cat "$@" >/dev/null; }

# Extracts the tars "$@" one after another into $1.
tar_layers() { local d=$1; shift; for t in "$@"; do tar -xf "$t" -C "$d"; done; }
tar_layers_sync() { tar_layers "$@"; sync -f "$1"; }

# ---------------------------------------------------------- the archives

debian_five_layers "$TAG" "$GEN"
# Validity of the archive, by an independent reader.
skopeo inspect --raw "docker-archive:$DARCH" >/dev/null || die "skopeo cannot read $DARCH"
echo "docker-archive: $(mib "$(stat -c %s "$DARCH")") MiB, ${#LAYERS[@]} layers" \
    "($(for l in "${LAYERS[@]}"; do printf '%s MiB/%s entries, ' "$(mib "$(stat -c %s "$l")")" "$(tar -tf "$l" | wc -l)"; done | sed 's/, $//'))," \
    "image $IMAGE_ID"
echo "oci-archive (gzip): $(mib "$(stat -c %s "$OARCH")") MiB, image $OCI_ID"

# Images with one big layer, for peak RSS.
for big in 1 4; do
    L=$WORK/layer-$big-x256m-v1.tar
    R=$A/rss-$big.tar
    [[ -f $R ]] && continue
    if [[ ! -f $L ]]; then
        log "generating a layer of $big x 256 MiB + 5,000 small files (cached in $L)"
        gen_layer "$big" "$L.tmp"
        mv "$L.tmp" "$L"
    fi
    docker_archive "$R.tmp" "bench/rss:$big" "generated" "$L" >/dev/null
    mv "$R.tmp" "$R"
done

# --------------------------------------------- a, b. strata load vs tar -x

strata_load() { "$STRATA" --root "$1" --driver overlay2 load -q -i "$2"; }

log "a, b. strata load vs tar -x of the same layers (best of $RUNS)"
warm "$DARCH" "$OARCH" "${LAYERS[@]}" "${GZ_LAYERS[@]}"
tx=(); txs=(); sd=(); gx=(); gxs=(); so=()
for ((i = 1; i <= RUNS; i++)); do
    newdir tar; sync; tx+=("$(elapsed_us tar_layers "$DIR" "${LAYERS[@]}")")
    newdir tar-sync; sync; txs+=("$(elapsed_us tar_layers_sync "$DIR" "${LAYERS[@]}")")
    newdir strata-docker; SD_DIR=$DIR; sync; sd+=("$(elapsed_us strata_load "$DIR" "$DARCH")")
    newdir tar-gz; sync; gx+=("$(elapsed_us tar_layers "$DIR" "${GZ_LAYERS[@]}")")
    newdir tar-gz-sync; sync; gxs+=("$(elapsed_us tar_layers_sync "$DIR" "${GZ_LAYERS[@]}")")
    newdir strata-oci; SO_DIR=$DIR; sync; so+=("$(elapsed_us strata_load "$DIR" "$OARCH")")
    echo "  run $i: tar -x $(ms "${tx[-1]}") ms, + sync -f $(ms "${txs[-1]}") ms, strata load $(ms "${sd[-1]}") ms;" \
        "gzip: tar -xzf $(ms "${gx[-1]}") ms, + sync -f $(ms "${gxs[-1]}") ms, strata load $(ms "${so[-1]}") ms"
done
TX=$(best "${tx[@]}"); TXS=$(best "${txs[@]}"); SD=$(best "${sd[@]}")
GX=$(best "${gx[@]}"); GXS=$(best "${gxs[@]}"); SO=$(best "${so[@]}")
# What the stores hold: the tag, with the ID the archive declares.
for x in "$SD_DIR $IMAGE_ID" "$SO_DIR $OCI_ID"; do
    read -r d id <<<"$x"
    "$STRATA" --root "$d" images | grep -E "^bench/debian +load +${id:7:12} " >/dev/null ||
        die "strata images in $d does not list $TAG as ${id:7:12}"
done
echo "  both stores list $TAG with the archive's image ID, $(( $("$STRATA" --root "$SD_DIR" layers | wc -l) - 1 )) layers"
row "load docker-archive (vs tar -x + sync -f)" "$(ms "$SD") ms" "$(ms "$TXS") ms" "$(ratio "$SD" "$TXS")x" "<= 1.0x" "$(verdict "$(ratio "$SD" "$TXS")" 1.0)"
row "  vs tar -x (no flush)" "$(ms "$SD") ms" "$(ms "$TX") ms" "$(ratio "$SD" "$TX")x" "" ""
row "load oci-archive gzip (vs tar -xzf + sync -f)" "$(ms "$SO") ms" "$(ms "$GXS") ms" "$(ratio "$SO" "$GXS")x" "<= 1.0x" "$(verdict "$(ratio "$SO" "$GXS")" 1.0)"
row "  vs tar -xzf (no flush)" "$(ms "$SO") ms" "$(ms "$GX") ms" "$(ratio "$SO" "$GX")x" "" ""

# ------------------------------------------------ c. docker and podman load

# A row of another tool's best time against strata's: "x faster" = tool/strata.
log "c. docker load (best of $RUNS)"
if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    skipped "docker load (dockerd or docker not installed, and apt-get could not install docker.io)"
elif ! start_dockerd; then
    skipped "docker load (dockerd did not start: $WHY)"
else
    echo "dockerd $(docker -H "$SOCK" version -f '{{.Server.Version}}'), storage driver" \
        "$(docker -H "$SOCK" info -f '{{.Driver}}'), data root on the run's ext4"
    dl=()
    for ((i = 1; i <= RUNS; i++)); do
        sync
        if ! t=$(elapsed_us docker -H "$SOCK" load -i "$DARCH"); then dl=(); break; fi
        dl+=("$t")
        did=$(docker -H "$SOCK" image inspect -f '{{.Id}}' "$TAG")
        # Clean-up, not counted: remove the image and its layers.
        docker -H "$SOCK" rmi -f "$TAG" >/dev/null
        echo "  run $i: docker load $(ms "$t") ms (image $did)"
    done
    if ((${#dl[@]})); then
        [[ $did == "$IMAGE_ID" ]] || echo "  WARNING: docker's image ID $did, the archive's $IMAGE_ID"
        DL=$(best "${dl[@]}")
        vs_row "docker load docker-archive (docker/strata)" "$DL" "$SD"
    else
        skipped "docker load (docker load failed: see above)"
    fi
    # Docker 20.10 loads no OCI archives (Docker >= 25 does): try once.
    if docker -H "$SOCK" load -i "$OARCH" >/dev/null 2>"$SHORT/oci.err"; then
        dlo=()
        docker -H "$SOCK" rmi -f "$TAG" >/dev/null
        for ((i = 1; i <= RUNS; i++)); do
            sync
            dlo+=("$(elapsed_us docker -H "$SOCK" load -i "$OARCH")")
            docker -H "$SOCK" rmi -f "$TAG" >/dev/null
        done
        echo "  docker load oci-archive: $(msl "${dlo[@]}") ms"
        vs_row "docker load oci-archive gzip (docker/strata)" "$(best "${dlo[@]}")" "$SO"
    else
        v=$(docker -H "$SOCK" version -f '{{.Server.Version}}')
        if ((${v%%.*} < 25)); then
            skipped "docker load of the OCI archive (dockerd $v loads no OCI archives; Docker >= 25 does)"
        else
            skipped "docker load of the OCI archive (failed: $(tail -1 "$SHORT/oci.err" | cut -c1-160))"
        fi
    fi
    stop_dockerd
fi

log "c. podman load (best of $RUNS)"
if ! command -v podman >/dev/null; then
    skipped "podman load (podman not installed, and apt-get could not install it)"
else
    # A fresh store per run, on the run's ext4, temporary files there too;
    # the run root (locks, at most 50 bytes of path) in the short directory.
    podman_() { # dir podman-args...
        local d=$1; shift
        mkdir -p "$d/tmp" "$SHORT/${d##*/}"
        TMPDIR=$d/tmp podman --root "$d/root" --runroot "$SHORT/${d##*/}" --tmpdir "$d/libpod" \
            --storage-driver overlay --events-backend file --cgroup-manager cgroupfs "$@"
    }
    podman_load() { podman_ "$1" load -q -i "$2"; }
    for kind in docker-archive oci-archive; do
        if [[ $kind == docker-archive ]]; then arch=$DARCH; ours=$SD; want=$IMAGE_ID
        else arch=$OARCH; ours=$SO; want=$OCI_ID; fi
        pl=()
        for ((i = 1; i <= RUNS; i++)); do
            newdir "podman-$kind"; sync
            if ! t=$(elapsed_us podman_load "$DIR" "$arch"); then pl=(); break; fi
            pl+=("$t")
        done
        if ((${#pl[@]})); then
            pid=$(podman_ "$DIR" image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)
            echo "  podman load $kind: $(msl "${pl[@]}") ms (image sha256:${pid#sha256:})"
            [[ sha256:${pid#sha256:} == "$want" ]] || echo "  WARNING: podman's image ID $pid, the archive's $want"
            vs_row "podman load $kind (podman/strata)" "$(best "${pl[@]}")" "$ours"
        else
            skipped "podman load of the $kind (podman load failed: see above)"
        fi
        # podman's overlay driver may leave its home bind-mounted: not counted.
        for d in "$RUN"/*-podman-*/; do unmount_under "$d"; done
    done
fi

# -------------------------------------------------------------- d. peak RSS

log "d. peak RSS of strata load (highest of $RUNS runs; time: best)"
RSS=()
for big in 1 4; do
    R=$A/rss-$big.tar
    L=$WORK/layer-$big-x256m-v1.tar
    what="$(mib "$(stat -c %s "$R")") MiB layer"
    warm "$R" "$L"
    srss=(); st=(); trss=(); tt=()
    for ((i = 1; i <= RUNS; i++)); do
        newdir rss-strata; sync
        read -r r t < <(peak "$STRATA" --root "$DIR" --driver overlay2 load -q -i "$R")
        srss+=("$r"); st+=("$t")
        newdir rss-tar; sync
        read -r r t < <(peak tar -xf "$L" -C "$DIR")
        # load syncs its layer before publishing it: add tar's sync.
        s=$(elapsed_us sync -f "$DIR")
        trss+=("$r"); tt+=("$(awk -v t="$t" -v s="$s" 'BEGIN { printf "%.2f", t + s / 1e6 }')")
        echo "  $what, run $i: strata load $(mib $((srss[-1] * 1024))) MiB peak RSS in ${st[-1]} s;" \
            "tar -x of the layer $(mib $((r * 1024))) MiB in $t s, ${tt[-1]} s with sync -f"
    done
    # The highest peak of the runs, the best time.
    s_rss=$(maxf "${srss[@]}"); t_rss=$(maxf "${trss[@]}")
    s_t=$(minf "${st[@]}"); t_ts=$(minf "${tt[@]}")
    RSS+=("$s_rss")
    met=met; ((s_rss < 64 * 1024)) || met=MISSED
    row "peak RSS: $what (vs tar -x)" "$(mib $((s_rss * 1024))) MiB" "$(mib $((t_rss * 1024))) MiB" "$(ratio "$s_rss" "$t_rss")x" "< 64 MiB" "$met"
    row "  time (vs tar -x + sync -f)" "${s_t} s" "${t_ts} s" "$(ratio "$s_t" "$t_ts")x" "" ""
done
growth=$(ratio "${RSS[1]}" "${RSS[0]}")
row "peak RSS growth, 280 MiB -> 1 GiB layer" "${growth}x" "" "" "flat" "$(verdict "$growth" 1.25)"

# ---------------------------------------------------------------- summary

log "summary ($(nproc) cores, kernel $(uname -r), $(tar --version | head -1), strata $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "best of $RUNS; \"x faster\" rows: the other tool's time / strata's"
printf '%-46s %12s %12s %8s  %-10s %s\n' "benchmark" "strata" "reference" "ratio" "target" ""
for r in "${SUMMARY[@]}"; do echo "$r"; done
for s in "${SKIPS[@]}"; do echo "$s"; done
