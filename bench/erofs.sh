#!/usr/bin/env bash
# The erofs driver against overlay2, same data, same disk, same run (a
# journaled ext4 made for the run), each row a ratio erofs / overlay2:
#
#   a. import of the Debian bookworm minbase rootfs tar (target <= 0.85x):
#      one EROFS image and one fsync against a directory of loose files
#   b. rmi of that image, its one layer removed (target <= 0.1x): one
#      unlink against a recursive delete
#   c. create + mount per container, N containers of the image
#      (target <= 1.2x)
#   c2. create + mount of a lone container: the image not mounted by
#      any other, as for `strata run` of one container (target <= 1.2x);
#      then umount and rm, untimed
#   j. commit of a one-file change (`/etc/motd`) in a container of the
#      image (information: erofs writes the commit as an image)
#   d. cold `find` of a container's root, caches dropped (target <= 1.2x)
#   e. cold `tar -c` of a container's root, caches dropped (target <= 1.2x)
#   f. disk used by the imported image (information)
#   h. import while the disk holds other data not yet written back
#      (STRATA_BENCH_DIRTY_MB, 300, written unsynced before each import):
#      the erofs driver fsyncs its image and the store's records of it,
#      overlay2's import flushes the whole file system (target <= 1.0x)
#   i. load of a 499-layer image (a file per layer, each layer leaving
#      out the directory above it, which a layer written over the ones
#      below then copies up from them), as `docker load` gives it
#      (information: the number of layers a default driver must carry)
#   g. disk used by 10 images of the Debian rootfs, each with a file of
#      its own (10 different layers sharing all but one file), object
#      mode (--storage-opt erofs.objects=on) against overlay2
#      (target <= 0.4x); and the import of the first one in object mode
#      against overlay2's (information)
#
# Each of a, b, d, e is R rounds, the two drivers in turn within a round
# (so both share what else the machine is doing); the best and the
# median are printed, every round shown.
#
# Usage (as root): bash bench/erofs.sh
# Env: STRATA_BENCH_WORK (default bench/work), STRATA_BENCH_ROUNDS (5),
#      STRATA_BENCH_N (containers in c, 50)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
. bench/lib.sh
bench_init
R=${STRATA_BENCH_ROUNDS:-5}
DIRTY_MB=${STRATA_BENCH_DIRTY_MB:-300}
C=${STRATA_BENCH_N:-50}

need_cmds mkfs.ext4:e2fsprogs losetup:mount
build_and_lock
grep -qw erofs /proc/filesystems || die "this kernel has no EROFS"

tarball=$WORK/debian-bookworm-minbase.tar
if [[ ! -f $tarball ]]; then
    debian_rootfs "$WORK/debian-rootfs"
    tar --numeric-owner --xattrs --xattrs-include='*' -C "$WORK/debian-rootfs" -cf "$tarball" .
fi

run_fs erofs
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
st() { # driver round args...
    local d=$1 r=$2
    shift 2
    "$STRATA" --root "$RUN/$d-$r" --driver "$d" "$@"
}
DRIVERS=(erofs overlay2)
declare -A T

cat "$tarball" >/dev/null
log "a, b. import and rmi, $R rounds"
for ((i = 0; i < R; i++)); do
    for d in "${DRIVERS[@]}"; do
        sync
        T[import-$d]+=" $(elapsed_us st "$d" "$i" import "$tarball" debian:bench)"
    done
done
declare -A DU
for d in "${DRIVERS[@]}"; do
    DU[$d]=$(du -sk "$RUN/$d-0/$d" | cut -f1)
done
for ((i = 0; i < R; i++)); do
    for d in "${DRIVERS[@]}"; do
        sync
        T[rmi-$d]+=" $(elapsed_us st "$d" "$i" rmi debian:bench)"
    done
done

log "c. create + mount x $C"
declare -A M
for d in "${DRIVERS[@]}"; do
    st "$d" c import "$tarball" debian:bench >/dev/null
done
for d in "${DRIVERS[@]}"; do
    sync
    t0=$(now_us)
    for ((j = 0; j < C; j++)); do
        st "$d" c create --name "n$j" debian:bench >/dev/null
        m=$(st "$d" c mount "n$j")
        [[ $j -gt 0 ]] || M[$d]=$m
    done
    t1=$(now_us)
    T[create-$d]=$(((t1 - t0) / C))
done

log "c2. create + mount of a lone container, $R rounds"
for d in "${DRIVERS[@]}"; do
    st "$d" c2 import "$tarball" debian:bench >/dev/null
done
for ((i = 0; i < R; i++)); do
    for d in "${DRIVERS[@]}"; do
        sync
        t0=$(now_us)
        st "$d" c2 create --name "lone$i" debian:bench >/dev/null
        st "$d" c2 mount "lone$i" >/dev/null
        t1=$(now_us)
        T[lone-$d]+=" $((t1 - t0))"
        st "$d" c2 umount "lone$i" >/dev/null
        st "$d" c2 rm "lone$i" >/dev/null
    done
done

log "j. commit of a one-file change, $R rounds"
for ((i = 0; i < R; i++)); do
    for d in "${DRIVERS[@]}"; do
        st "$d" c2 create --name "j$i" debian:bench >/dev/null
        echo "round $i" >"$(st "$d" c2 mount "j$i")/etc/motd"
        st "$d" c2 umount "j$i" >/dev/null
        sync
        T[commit-$d]+=" $(elapsed_us st "$d" c2 commit "j$i" "bench/j:$i")"
        st "$d" c2 rm "j$i" >/dev/null
    done
done

log "d, e. cold find and tar -c of a container's root, $R rounds"
for ((i = 0; i < R; i++)); do
    for d in "${DRIVERS[@]}"; do
        drop_caches
        T[find-$d]+=" $(elapsed_us find "${M[$d]}")"
        drop_caches
        t0=$(now_us)
        tar -C "${M[$d]}" -cf - . | cat >/dev/null
        t1=$(now_us)
        T[tar-$d]+=" $((t1 - t0))"
    done
done
for d in "${DRIVERS[@]}"; do
    for ((j = 0; j < C; j++)); do st "$d" c umount "n$j" >/dev/null; done
    left=$(grep -c " $RUN/$d-c/" /proc/self/mountinfo || true)
    [[ $left == 0 ]] || die "$d left $left mounts under its store"
done

log "h. import with $DIRTY_MB MB of other data not written back, 3 rounds"
for ((i = 0; i < 3; i++)); do
    for d in "${DRIVERS[@]}"; do
        sync
        dd if=/dev/urandom of="$RUN/dirty-$d-$i" bs=1M count="$DIRTY_MB" status=none
        T[dirty-$d]+=" $(elapsed_us st "$d" "h$i" import "$tarball" debian:bench)"
    done
done

log "i. load of a 499-layer image"
deep=$RUN/deep
mkdir -p "$deep/opt"
layers=()
for ((i = 0; i < 499; i++)); do
    echo "layer $i" >"$deep/opt/layer-$i"
    tar -cf "$deep/$i.tar" -C "$deep" "opt/layer-$i"
    layers+=("$deep/$i.tar")
done
docker_archive "$deep/image.tar" bench/deep:1 "499 layers" "${layers[@]}" >/dev/null
for d in "${DRIVERS[@]}"; do
    sync
    T[deep-$d]=$(elapsed_us st "$d" deep load -q -i "$deep/image.tar")
    st "$d" deep create --name c bench/deep:1 >/dev/null
    n=$(find "$(st "$d" deep mount c)/opt" -mindepth 1 | wc -l)
    st "$d" deep umount c >/dev/null
    [[ $n == 499 ]] || die "$d: a container of the deep image shows $n layers' files, not 499"
done

log "g. 10 images sharing most files, object mode"
variant=$RUN/variant
mkdir -p "$variant/etc"
for ((i = 0; i < 10; i++)); do
    cp "$tarball" "$RUN/v.tar"
    echo "variant $i" >"$variant/etc/bench-variant"
    tar -rf "$RUN/v.tar" -C "$variant" etc/bench-variant
    sync
    t=$(elapsed_us "$STRATA" --root "$RUN/g-overlay2" --driver overlay2 import "$RUN/v.tar" "bench/v:$i")
    [[ $i -gt 0 ]] || T[gimport-overlay2]=$t
    sync
    t=$(elapsed_us "$STRATA" --root "$RUN/g-erofs" --driver erofs --storage-opt erofs.objects=on \
        import "$RUN/v.tar" "bench/v:$i")
    [[ $i -gt 0 ]] || T[gimport-erofs]=$t
done
for d in "${DRIVERS[@]}"; do
    DU[g-$d]=$(du -sk "$RUN/g-$d/$d" | cut -f1)
    n=$("$STRATA" --root "$RUN/g-$d" images -q | wc -l)
    [[ $n == 10 ]] || die "$d holds $n images, not 10"
done
report=$("$STRATA" --root "$RUN/g-erofs" check) || die "check of the object store: $report"

printf '\n== rounds (ms)\n'
for k in import rmi lone commit find tar dirty; do
    for d in "${DRIVERS[@]}"; do
        # shellcheck disable=SC2086
        printf '%-8s %-9s %s\n' "$k" "$d" "$(msl ${T[$k-$d]})"
    done
done

printf '\n== summary (%s cores, kernel %s; best of %s, median in brackets)\n' "$(nproc)" "$(uname -r)" "$R"
printf '%-46s %12s %12s %8s  %-10s %s\n' benchmark erofs overlay2 ratio target ""
line() { # label key target
    # shellcheck disable=SC2086
    local e b em bm
    e=$(best ${T[$2-erofs]})
    b=$(best ${T[$2-overlay2]})
    em=$(median ${T[$2-erofs]})
    bm=$(median ${T[$2-overlay2]})
    printf '%-46s %12s %12s %8s  %-10s %s\n' "$1" "$(ms "$e") ms" "$(ms "$b") ms" \
        "$(ratio "$e" "$b")x" "<= ${3}x" "$(verdict "$(ratio "$e" "$b")" "$3") [median $(ratio "$em" "$bm")x]"
}
line "a. import Debian rootfs" import 0.85
line "b. rmi (the one layer removed)" rmi 0.1
printf '%-46s %12s %12s %8s  %-10s %s\n' "c. create + mount per container ($C)" \
    "$(ms "${T[create-erofs]}") ms" "$(ms "${T[create-overlay2]}") ms" \
    "$(ratio "${T[create-erofs]}" "${T[create-overlay2]}")x" "<= 1.2x" \
    "$(verdict "$(ratio "${T[create-erofs]}" "${T[create-overlay2]}")" 1.2)"
line "c2. create + mount of a lone container" lone 1.2
# shellcheck disable=SC2086
printf '%-46s %12s %12s %8s  %s\n' "j. commit of a one-file change (information)" \
    "$(ms "$(best ${T[commit-erofs]})") ms" "$(ms "$(best ${T[commit-overlay2]})") ms" \
    "$(ratio "$(best ${T[commit-erofs]})" "$(best ${T[commit-overlay2]})")x" \
    "[median $(ratio "$(median ${T[commit-erofs]})" "$(median ${T[commit-overlay2]})")x]"
line "d. cold find of a container's root" find 1.2
line "e. cold tar -c of a container's root" tar 1.2
printf '%-46s %9s MiB %8s MiB %8s  %s\n' "f. disk used by the image (information)" \
    "$((DU[erofs] / 1024))" "$((DU[overlay2] / 1024))" "$(ratio "${DU[erofs]}" "${DU[overlay2]}")x" ""
line "h. import, other data not written back" dirty 1.0
printf '%-46s %12s %12s %8s  %s\n' "i. load of a 499-layer image (information)" \
    "$(ms "${T[deep-erofs]}") ms" "$(ms "${T[deep-overlay2]}") ms" \
    "$(ratio "${T[deep-erofs]}" "${T[deep-overlay2]}")x" ""
gr=$(ratio "${DU[g-erofs]}" "${DU[g-overlay2]}")
printf '%-46s %9s MiB %8s MiB %8s  %-10s %s\n' "g. disk used by 10 images, object mode" \
    "$((DU[g-erofs] / 1024))" "$((DU[g-overlay2] / 1024))" "${gr}x" "<= 0.4x" "$(verdict "$gr" 0.4)"
printf '%-46s %12s %12s %8s  %s\n' "   import of the first, object mode (information)" \
    "$(ms "${T[gimport-erofs]}") ms" "$(ms "${T[gimport-overlay2]}") ms" \
    "$(ratio "${T[gimport-erofs]}" "${T[gimport-overlay2]}")x" ""
