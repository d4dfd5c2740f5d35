#!/usr/bin/env bash
# Cost as the store grows: `create`, `commit`, `rm` and `rmi` with N
# images in the store against the same commands with 10, in the same run,
# as ratios.
#
# Two stores on one file system, each loaded from a docker-archive whose
# images all stand on one shared base layer (`many_images`: a base image,
# and images of the base layer plus one layer of their own): the small
# store holds 10
# images besides the R images the rounds use, the large one N. Each round
# times, in each store in turn (so both share what else the machine is
# doing), `create --name cI bench/grow:I`, `commit cI bench/commit:I`
# (a layer and an image, with the index entries and the tag), `rm cI`,
# `rmi bench/commit:I` (the committed image and its layer collected:
# "rmi, committed") and `rmi bench/grow:I` (which removes the image and
# its own layer, and keeps the base layer that the others hold). The
# median of R rounds is kept.
#
# Target (issue 18): each of create, rm, rmi with 1,000 images in the
# store <= 1.5x its time with 10 images; commit and the collection of a
# committed image are held to the same.
#
# Then depth: a chain of CHAIN commits (each image a commit of a
# container of the one before, 440 by default, as the issue measured),
# and `rm -f` of a fresh container of its top image against one of its
# base image, in turn, median of R (held to the same 1.5x).
#
# Usage (as root): bash bench/growth.sh
# Env: STRATA_BENCH_WORK (default bench/work), STRATA_BENCH_N (images in
#      the large store, default 1000), STRATA_BENCH_ROUNDS (default 21),
#      STRATA_BENCH_CHAIN (commits in the chain, default 440)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
. bench/lib.sh
bench_init
N=${STRATA_BENCH_N:-1000}
SMALL=10
R=${STRATA_BENCH_ROUNDS:-21}
CHAIN=${STRATA_BENCH_CHAIN:-440}


need_cmds mkfs.ext4:e2fsprogs losetup:mount python3:python3
build_and_lock

run_fs growth

now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A STORE
st() { # size args...
    local size=$1
    shift
    "$STRATA" --root "${STORE[$size]}" "$@"
}
for size in "$SMALL" "$N"; do
    log "a store of $size images besides the $R the rounds remove"
    many_images "$RUN/images-$size.tar" $((size + R)) bench/grow 1
    STORE[$size]=$RUN/store-$size
    st "$size" --driver overlay2 load -i "$RUN/images-$size.tar" >/dev/null
    got=$(st "$size" images -q | wc -l)
    [[ $got == $((size + R + 1)) ]] || die "store of $size lists $got images"
done

declare -A T

OPS=(create commit rm rmi-committed rmi)
log "$R rounds of ${OPS[*]} in each store"
for ((i = 0; i < R; i++)); do
    for op in "${OPS[@]}"; do
        for size in "$SMALL" "$N"; do
            case $op in
                create) args=(create --name "c$i" "bench/grow:$i") ;;
                commit) args=(commit "c$i" "bench/commit:$i") ;;
                rm) args=(rm "c$i") ;;
                rmi-committed) args=(rmi "bench/commit:$i") ;;
                rmi) args=(rmi "bench/grow:$i") ;;
            esac
            t0=$(now_us)
            st "$size" "${args[@]}" >/dev/null || die "failed: $op in the store of $size"
            t1=$(now_us)
            T[$op-$size]+=" $((t1 - t0))"
        done
    done
done
for size in "$SMALL" "$N"; do
    left=$(st "$size" images -q | wc -l)
    [[ $left == $((size + 1)) ]] || die "store of $size lists $left images after the rounds"
    report=$(st "$size" check) || die "check of the store of $size: $report"
done

log "a chain of $CHAIN commits, and rm -f of a container at its top and at its base"
CS=$RUN/store-chain
mkdir -p "$RUN/chain/etc"
echo base >"$RUN/chain/etc/motd"
tar -cf "$RUN/chain.tar" -C "$RUN/chain" .
"$STRATA" --root "$CS" --driver overlay2 import "$RUN/chain.tar" bench/chain:0 >/dev/null
for ((i = 1; i <= CHAIN; i++)); do
    "$STRATA" --root "$CS" create --name "k$i" "bench/chain:$((i - 1))" >/dev/null
    "$STRATA" --root "$CS" commit "k$i" "bench/chain:$i" >/dev/null 2>&1
    "$STRATA" --root "$CS" rm "k$i" >/dev/null
done
for ((i = 0; i < R; i++)); do
    for at in "$CHAIN" 0; do
        "$STRATA" --root "$CS" create --name "f$i-$at" "bench/chain:$at" >/dev/null 2>&1
        t0=$(now_us)
        "$STRATA" --root "$CS" rm -f "f$i-$at" >/dev/null || die "rm -f at depth $at"
        t1=$(now_us)
        T[chain-$at]+=" $((t1 - t0))"
    done
done

log "summary (median of $R; ratio = $N images / $SMALL images)"
printf '%-40s %12s %12s %8s  %-10s %s\n' "" "$N images" "$SMALL images" "ratio" "target" ""
for op in "${OPS[@]}"; do
    # shellcheck disable=SC2086
    big=$(median ${T[$op-$N]})
    # shellcheck disable=SC2086
    small=$(median ${T[$op-$SMALL]})
    r=$(ratio "$big" "$small")
    printf '%-40s %12s %12s %8s  %-10s %s\n' "$op" "$(ms "$big") ms" "$(ms "$small") ms" "${r}x" "<= 1.5x" \
        "$(verdict "$r" 1.5)"
done
# shellcheck disable=SC2086
top=$(median ${T[chain-$CHAIN]})
# shellcheck disable=SC2086
base=$(median ${T[chain-0]})
r=$(ratio "$top" "$base")
printf '%-40s %12s %12s %8s  %-10s %s\n' "rm -f, $CHAIN-commit chain (top / base)" "$(ms "$top") ms" \
    "$(ms "$base") ms" "${r}x" "<= 1.5x" "$(verdict "$r" 1.5)"
