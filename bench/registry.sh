#!/usr/bin/env bash
# `strata pull` and `strata push` benchmarks against a local registry
# (Debian's docker-registry on 127.0.0.1, plain HTTP, started by this
# script with its storage on the run's file system), each a ratio against a
# reference measured in the same run on the same registry and images (the
# Debian bookworm minbase rootfs as one gzip layer, and as the five gzip
# layers of bench/load.sh):
#
#   a. strata pull vs the physical reference: `curl` of each layer blob
#      piped through `tar -xz` into a directory, one after another, then
#      `sync -f` (target <= 1.1x)
#   b. `docker pull` and `podman pull` of the same images vs strata pull
#      (target: strata >= 2x faster), each client's store emptied between
#      rounds; dockerd is started by this script on its own data root
#   c. strata push of the same images vs `skopeo copy` of the same image
#      from its docker-archive (both gzip the layers), each round to a fresh,
#      empty registry (target <= 1x); also the CPU time (user + sys) of
#      each, which other work on the machine disturbs less than wall time,
#      and strata push at --compression-level 6, Docker's level (the
#      default, 3, makes blobs the size of skopeo's; 6 some 2% smaller)
#   d. peak RSS of strata pull, an image with one ~280 MiB layer and one
#      with a ~1 GiB layer of random data (target < 64 MiB, and flat)
#
# Usage (as root): bash bench/registry.sh
# Env: STRATA_BENCH_WORK (default bench/work; images are cached there,
#      shared with bench/load.sh), STRATA_BENCH_RUNS (runs per
#      measurement, best kept; default 3), STRATA_BENCH_PARTS (which of
#      a, b, c, d to run, e.g. "c" for push only; default abcd)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
. bench/lib.sh
bench_init
RUNS=${STRATA_BENCH_RUNS:-3}
PARTS=${STRATA_BENCH_PARTS:-abcd}
[[ $PARTS =~ ^[abcd]+$ ]] || { echo "STRATA_BENCH_PARTS: letters of abcd, not '$PARTS'" >&2; exit 1; }
part() { [[ $PARTS == *[$1]* ]]; } # any of the letters $1 asked for
# bench/load.sh's images (the same cache).
LOAD_GEN=v1
LOAD_TAG=bench/debian:load
# Bump when this script's image builders change.
GEN=v1


need_cmds mkfs.ext4:e2fsprogs losetup:mount /usr/bin/time:time python3:python3 skopeo:skopeo \
    curl:curl docker-registry:docker-registry
# Optional: measured when present (installed here if missing), skipped otherwise.
need_cmds dockerd:docker.io docker:docker.io || true
need_cmds podman:podman || true

build_and_lock

# ------------------------------------------------------------ the run's fs

# Everything this run writes (the registries' storage, every client's
# store) goes to a journaled ext4 made for the run, as in bench/load.sh.
# dockerd's exec root and socket and podman's run roots live in a short
# directory under /tmp (unix socket paths are limited to 108 bytes).
REG_PID=
stop_registry() {
    [[ -n $REG_PID ]] || return 0
    kill -TERM "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
    REG_PID=
}
before_cleanup() { stop_registry; }
run_fs registry reg

# ---------------------------------------------------------------- helpers

# Starts a docker-registry with its storage in $1; its address in $REG.
# One at a time (REG_PID).
start_registry() { # dir
    local d=$1 port
    mkdir -p "$d"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$d/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $d/data
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
EOF
    docker-registry serve "$d/config.yml" >"$d/registry.log" 2>&1 {BENCH_LOCK}<&- &
    REG_PID=$!
    REG=127.0.0.1:$port
    for _ in $(seq 200); do
        curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && return 0
        kill -0 "$REG_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$d/registry.log" >&2
    die "docker-registry did not start"
}

# The manifest of $REG/$1 (name:tag).
manifest() {
    curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$REG/v2/${1%:*}/manifests/${1##*:}"
}
# The layer blob URLs of $REG/$1 (name:tag), in manifest order.
layer_urls() {
    manifest "$1" | python3 -c 'import json, sys
for l in json.load(sys.stdin)["layers"]:
    assert "gzip" in l["mediaType"], l["mediaType"]
    print(sys.argv[1] + l["digest"])' "http://$REG/v2/${1%:*}/blobs/"
}
# The total size in bytes of the layer blobs of $REG/$1.
layers_size() {
    manifest "$1" | python3 -c 'import json, sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))'
}
# The image ID (config digest) of $REG/$1 as skopeo reads it.
registry_id() {
    skopeo inspect --tls-verify=false --raw "docker://$1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["config"]["digest"])'
}

# The reference: each blob fetched and unpacked in turn, then flushed.
curl_tar() { # dir url...
    local d=$1 u; shift
    for u in "$@"; do curl -fsS "$u" | tar -xz -C "$d"; done
    sync -f "$d"
}
strata_pull() { "$STRATA" --root "$1" --driver overlay2 pull -q --tls-verify=false "$2"; }

# ------------------------------------------------------------- the images

debian_five_layers "$LOAD_TAG" "$LOAD_GEN"
R=$WORK/registry-$GEN
mkdir -p "$R"
# The rootfs as one layer: a docker-archive of the uncompressed tarball.
DARCH1=$R/debian-1-layer.tar
if [[ ! -f $DARCH1 || $DEB_TAR -nt $DARCH1 ]]; then
    log "building the one-layer image (cached in $R)"
    docker_archive "$DARCH1.tmp" bench/debian:one "debian bookworm minbase" "$DEB_TAR" >/dev/null
    mv "$DARCH1.tmp" "$DARCH1"
fi
# Images with one big layer, for peak RSS (bench/load.sh's).
part d && for big in 1 4; do
    L=$WORK/layer-$big-x256m-v1.tar
    RA=$A/rss-$big.tar
    if [[ ! -f $RA ]]; then
        if [[ ! -f $L ]]; then
            log "generating a layer of $big x 256 MiB + 5,000 small files (cached in $L)"
            gen_layer "$big" "$L.tmp"
            mv "$L.tmp" "$L"
        fi
        docker_archive "$RA.tmp" "bench/rss:$big" "generated" "$L" >/dev/null
        mv "$RA.tmp" "$RA"
    fi
done
# Every image as an OCI layout with gzip layers, compressed once: what is
# pushed to the registry the pulls read from.
declare -A SRC=([debian:1]=$DARCH1 [debian:5]=$DARCH [rss:1]=$A/rss-1.tar [rss:4]=$A/rss-4.tar)
PULLED=(debian:1 debian:5)
part d && PULLED+=(rss:1 rss:4)
part abd || PULLED=()
for k in "${PULLED[@]}"; do
    O=$R/oci-${k/:/-}
    [[ -d $O && ! ${SRC[$k]} -nt $O ]] && continue
    log "compressing $k with gzip (cached in $O)"
    rm -rf "$O"
    skopeo copy -q --dest-compress-format gzip "docker-archive:${SRC[$k]}" "oci:$O.tmp:bench/$k"
    mv "$O.tmp" "$O"
done

declare -A WANT
if part abd; then
log "starting the registry (storage on the run's ext4) and pushing the images with skopeo"
start_registry "$RUN/registry"
for k in "${PULLED[@]}"; do
    skopeo copy -q --dest-tls-verify=false "oci:$R/oci-${k/:/-}:bench/$k" "docker://$REG/bench/$k"
done
fi
for k in "${PULLED[@]}"; do
    WANT[$k]=$(registry_id "$REG/bench/$k")
    mapfile -t urls < <(layer_urls "bench/$k")
    echo "  $REG/bench/$k: ${#urls[@]} gzip layer(s), $(mib "$(layers_size "bench/$k")") MiB, image ${WANT[$k]}"
done
warm_registry() { find "$RUN/registry/data" -type f -exec cat {} + >/dev/null; }

# ------------------------------------------- a. strata pull vs curl | tar -xz

declare -A SP
if part a; then
log "a. strata pull vs curl | tar -xz + sync -f (best of $RUNS)"
warm_registry
for k in debian:1 debian:5; do
    ref=$REG/bench/$k
    mapfile -t urls < <(layer_urls "bench/$k")
    sp=(); ct=()
    for ((i = 1; i <= RUNS; i++)); do
        newdir curl; sync; ct+=("$(elapsed_us curl_tar "$DIR" "${urls[@]}")"); rm -rf "$DIR"
        newdir strata; sync; sp+=("$(elapsed_us strata_pull "$DIR" "$ref")")
        got=$("$STRATA" --root "$DIR" images --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["ID"])')
        [[ $got == "${WANT[$k]}" ]] || die "strata pulled $got for $ref, the registry says ${WANT[$k]}"
        unmount_under "$DIR/"; rm -rf "$DIR"
        echo "  $k run $i: curl | tar -xz + sync -f $(ms "${ct[-1]}") ms, strata pull $(ms "${sp[-1]}") ms"
    done
    SP[$k]=$(best "${sp[@]}")
    CT=$(best "${ct[@]}")
    n=${k#debian:}
    row "pull debian, $n gzip layer(s) (vs curl|tar)" "$(ms "${SP[$k]}") ms" "$(ms "$CT") ms" "$(ratio "${SP[$k]}" "$CT")x" "<= 1.1x" "$(verdict "$(ratio "${SP[$k]}" "$CT")" 1.1)"
done

fi

# ------------------------------------------------ b. docker and podman pull

if part b && ! part a; then
    skipped "docker and podman pull (their ratio is against part a's strata pull: STRATA_BENCH_PARTS=ab)"
fi
if part a && part b; then

log "b. docker pull (best of $RUNS)"
mkdir -p "$SHORT/docker-config"
export DOCKER_CONFIG=$SHORT/docker-config
if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    skipped "docker pull (dockerd or docker not installed, and apt-get could not install docker.io)"
# 127.0.0.0/8 is insecure by default in dockerd; said anyway.
elif ! start_dockerd --insecure-registry "$REG"; then
    skipped "docker pull (dockerd did not start: $WHY)"
else
    echo "dockerd $(docker -H "$SOCK" version -f '{{.Server.Version}}'), storage driver" \
        "$(docker -H "$SOCK" info -f '{{.Driver}}'), data root on the run's ext4"
    for k in debian:1 debian:5; do
        ref=$REG/bench/$k
        dp=()
        for ((i = 1; i <= RUNS; i++)); do
            sync
            if ! t=$(elapsed_us docker -H "$SOCK" pull -q "$ref"); then dp=(); break; fi
            dp+=("$t")
            did=$(docker -H "$SOCK" image inspect -f '{{.Id}}' "$ref")
            # Clean-up, not counted: remove the image and its layers.
            docker -H "$SOCK" rmi -f "$ref" >/dev/null
            echo "  $k run $i: docker pull $(ms "$t") ms (image $did)"
        done
        if ((${#dp[@]})); then
            [[ $did == "${WANT[$k]}" ]] || echo "  WARNING: docker's image ID $did, the registry's ${WANT[$k]}"
            vs_row "docker pull debian:${k#debian:} (docker/strata)" "$(best "${dp[@]}")" "${SP[$k]}"
        else
            skipped "docker pull of $k (failed: see above)"
        fi
    done
    stop_dockerd
fi
unset DOCKER_CONFIG

log "b. podman pull (best of $RUNS)"
if ! command -v podman >/dev/null; then
    skipped "podman pull (podman not installed, and apt-get could not install it)"
else
    # A fresh store per run on the run's ext4, temporary files there too;
    # the run root (locks, at most 50 bytes of path) in the short directory.
    podman_() { # dir podman-args...
        local d=$1; shift
        mkdir -p "$d/tmp" "$SHORT/${d##*/}"
        TMPDIR=$d/tmp podman --root "$d/root" --runroot "$SHORT/${d##*/}" --tmpdir "$d/libpod" \
            --storage-driver overlay --events-backend file --cgroup-manager cgroupfs "$@"
    }
    podman_pull() { podman_ "$1" pull -q --tls-verify=false "$2"; }
    for k in debian:1 debian:5; do
        ref=$REG/bench/$k
        pp=()
        for ((i = 1; i <= RUNS; i++)); do
            newdir podman; sync
            if ! t=$(elapsed_us podman_pull "$DIR" "$ref"); then pp=(); break; fi
            pp+=("$t")
            pid=$(podman_ "$DIR" image inspect -f '{{.Id}}' "$ref")
            echo "  $k run $i: podman pull $(ms "$t") ms (image sha256:${pid#sha256:})"
            # podman's overlay driver may leave its home bind-mounted.
            unmount_under "$DIR/"; rm -rf "$DIR"
        done
        if ((${#pp[@]})); then
            [[ sha256:${pid#sha256:} == "${WANT[$k]}" ]] || echo "  WARNING: podman's image ID $pid, the registry's ${WANT[$k]}"
            vs_row "podman pull debian:${k#debian:} (podman/strata)" "$(best "${pp[@]}")" "${SP[$k]}"
        else
            skipped "podman pull of $k (failed: see above)"
        fi
    done
fi

fi

# ---------------------------------------------- c. strata push vs skopeo copy

if part c; then

log "c. strata push vs skopeo copy from the docker-archive, each to a fresh registry (best of $RUNS)"
stop_registry
PUSH_STORE=$RUN/push-store
"$STRATA" --root "$PUSH_STORE" --driver overlay2 load -q -i "$DARCH1" >/dev/null
"$STRATA" --root "$PUSH_STORE" load -q -i "$DARCH" >/dev/null
declare -A LOCAL=([debian:1]=bench/debian:one [debian:5]=$LOAD_TAG) ARCH=([debian:1]=$DARCH1 [debian:5]=$DARCH)
# Commands, not functions: /usr/bin/time runs them.
strata_push=("$STRATA" --root "$PUSH_STORE" push --tls-verify=false)
skopeo_push=(skopeo copy -q --dest-tls-verify=false --dest-compress-format gzip)
# "$@" (a command) timed: its wall time in us on stdout, its CPU time
# (user + sys, its children included) in us in $RUN/cpu.
cpu_timed() {
    elapsed_us /usr/bin/time -o "$RUN/cpu.time" -f '%U %S' "$@"
    awk '{ printf "%d\n", ($1 + $2) * 1e6 }' "$RUN/cpu.time" >"$RUN/cpu"
}
# One push of $k to a fresh registry by "$@" (a command, the source and
# destination appended): its wall and CPU time in $T and $C, the image
# ID and layer bytes the registry then holds in $ID and $BYTES.
push_once() { # k command...
    local k=$1 src; shift
    newdir registry; start_registry "$DIR"; sync
    if [[ $1 == skopeo ]]; then src=docker-archive:${ARCH[$k]}; else src=${LOCAL[$k]}; fi
    T=$(cpu_timed "$@" "$src" "$([[ $1 == skopeo ]] && echo docker://)$REG/bench/$k")
    C=$(cat "$RUN/cpu")
    ID=$(registry_id "$REG/bench/$k")
    BYTES=$(layers_size "bench/$k")
    stop_registry; rm -rf "$DIR"
}
cat "$DARCH" "$DARCH1" >/dev/null
for k in debian:1 debian:5; do
    su=(); ku=(); sc=(); kc=(); s6=(); c6=()
    for ((i = 1; i <= RUNS; i++)); do
        push_once "$k" "${skopeo_push[@]}"; ku+=("$T"); kc+=("$C"); kid=$ID; kb=$BYTES
        push_once "$k" "${strata_push[@]}"; su+=("$T"); sc+=("$C"); sid=$ID; sb=$BYTES
        [[ $sid == "$kid" ]] || echo "  WARNING: strata pushed image $sid, skopeo $kid"
        push_once "$k" "${strata_push[@]}" --compression-level 6; s6+=("$T"); c6+=("$C"); sb6=$BYTES
        echo "  $k run $i: skopeo copy $(ms "${ku[-1]}") ms ($(ms "${kc[-1]}") ms CPU, $kb bytes of layers)," \
            "strata push $(ms "${su[-1]}") ms ($(ms "${sc[-1]}") ms CPU, $sb bytes)," \
            "at level 6 $(ms "${s6[-1]}") ms ($(ms "${c6[-1]}") ms CPU, $sb6 bytes) (image $sid)"
    done
    SU=$(best "${su[@]}"); KU=$(best "${ku[@]}"); S6=$(best "${s6[@]}")
    SC=$(best "${sc[@]}"); KC=$(best "${kc[@]}"); C6=$(best "${c6[@]}")
    n=${k#debian:}
    row "push debian, $n layer(s) (vs skopeo copy)" "$(ms "$SU") ms" "$(ms "$KU") ms" "$(ratio "$SU" "$KU")x" "<= 1x" "$(verdict "$(ratio "$SU" "$KU")" 1)"
    row "  CPU user+sys (vs skopeo copy)" "$(ms "$SC") ms" "$(ms "$KC") ms" "$(ratio "$SC" "$KC")x" "" ""
    row "push debian, $n, --compression-level 6" "$(ms "$S6") ms" "$(ms "$KU") ms" "$(ratio "$S6" "$KU")x" "" ""
    row "  CPU user+sys (vs skopeo copy)" "$(ms "$C6") ms" "$(ms "$KC") ms" "$(ratio "$C6" "$KC")x" "" ""
    # To 0.01%: the default's blobs are within that of skopeo's.
    bytes_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }
    row "  layer bytes: default, level 6 / skopeo's" "$(mib "$sb") MiB" "$(mib "$kb") MiB" "$(bytes_ratio "$sb" "$kb")x" "" "level 6: $(bytes_ratio "$sb6" "$kb")x"
done
rm -rf "$PUSH_STORE"
fi

# -------------------------------------------------------------- d. peak RSS

if part d; then
stop_registry

log "d. peak RSS of strata pull (highest of $RUNS runs; time: best)"
start_registry "$RUN/registry"
warm_registry
RSS=()
for big in 1 4; do
    ref=$REG/bench/rss:$big
    mapfile -t urls < <(layer_urls "bench/rss:$big")
    what="$(mib "$(stat -c %s "$A/rss-$big.tar")") MiB layer"
    srss=(); st=(); tt=()
    for ((i = 1; i <= RUNS; i++)); do
        newdir rss-strata; sync
        read -r r t < <(peak "$STRATA" --root "$DIR" --driver overlay2 pull -q --tls-verify=false "$ref")
        srss+=("$r"); st+=("$t")
        unmount_under "$DIR/"; rm -rf "$DIR"
        newdir rss-curl; sync
        c=$(elapsed_us curl_tar "$DIR" "${urls[@]}")
        tt+=("$(awk -v c="$c" 'BEGIN { printf "%.2f", c / 1e6 }')")
        rm -rf "$DIR"
        echo "  $what, run $i: strata pull $(mib $((srss[-1] * 1024))) MiB peak RSS in ${st[-1]} s;" \
            "curl | tar -xz + sync -f ${tt[-1]} s"
    done
    s_rss=$(maxf "${srss[@]}"); s_t=$(minf "${st[@]}"); c_t=$(minf "${tt[@]}")
    RSS+=("$s_rss")
    met=met; ((s_rss < 64 * 1024)) || met=MISSED
    row "peak RSS of pull: $what" "$(mib $((s_rss * 1024))) MiB" "" "" "< 64 MiB" "$met"
    row "  time (vs curl|tar -xz + sync -f)" "${s_t} s" "${c_t} s" "$(ratio "$s_t" "$c_t")x" "" ""
done
growth=$(ratio "${RSS[1]}" "${RSS[0]}")
row "peak RSS growth, 280 MiB -> 1 GiB layer" "${growth}x" "" "" "flat" "$(verdict "$growth" 1.25)"
stop_registry
fi

# ---------------------------------------------------------------- summary

log "summary ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r), $(docker-registry --version 2>/dev/null | head -1), strata $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "best of $RUNS; \"x faster\" rows: the other tool's time / strata's"
printf '%-46s %12s %12s %8s  %-10s %s\n' "benchmark" "strata" "reference" "ratio" "target" ""
for r in "${SUMMARY[@]}"; do echo "$r"; done
for s in "${SKIPS[@]}"; do echo "$s"; done
