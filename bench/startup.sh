#!/usr/bin/env bash
# What a strata process costs before it does anything, against /bin/true
# in the same run: a script that runs `create` and `mount` per container
# pays it twice per container (bench/store.sh, c).
#
#   a. `strata --version`: the loader, the runtime, the command line;
#   b. `strata images` on a store of one image: the same, and the store
#      opened read-only and listed;
#   c. `strata tag` of that image: the store opened to be changed (lock,
#      directory checks, staging looked through) and one record written.
#
# Each is the median of R rounds of N runs. No target: the numbers say
# where create + mount's time goes (BENCHMARKS.md, "Store").
#
# Usage: bash bench/startup.sh (without root, strata runs in its store's
# user namespace, which costs more: compare runs made as the same user)
# Env: STRATA_BENCH_N (runs per round, 200), STRATA_BENCH_ROUNDS (5),
#      STRATA_BENCH_BIN (a strata binary to time instead of this tree's
#      release build: an older build, to compare)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${STRATA_BENCH_N:-200}
R=${STRATA_BENCH_ROUNDS:-5}
if [[ -n ${STRATA_BENCH_BIN:-} ]]; then
    strata=$STRATA_BENCH_BIN
else
    cargo build --release -q -p strata-cli
    strata=${CARGO_TARGET_DIR:-$PWD/target}/release/strata
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
store=$work/store
# A one-file image: enough for images and tag to have something to read.
mkdir "$work/root"
echo hi >"$work/root/hello"
tar -C "$work/root" -cf "$work/one.tar" .
"$strata" --root "$store" --driver vfs import "$work/one.tar" one:1 >/dev/null

now() { date +%s%N; }
# per_run CMD...: microseconds per run, median of R rounds of N runs.
per_run() {
    local r i t0 t1 all=()
    for r in $(seq "$R"); do
        t0=$(now)
        for i in $(seq "$N"); do "$@" >/dev/null; done
        t1=$(now)
        all+=($(((t1 - t0) / N / 1000)))
    done
    printf '%s\n' "${all[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
ref=$(per_run /bin/true)
ver=$(per_run "$strata" --version)
img=$(per_run "$strata" --root "$store" images)
tag=$(per_run "$strata" --root "$store" tag one:1 one:2)
rows=("strata --version:$ver" "strata images:$img" "strata tag:$tag")
printf '\n== summary (%s cores, kernel %s; /bin/true %s us per run)\n' "$(nproc)" "$(uname -r)" "$ref"
printf '%-24s %10s %10s %8s\n' benchmark strata /bin/true ratio
for row in "${rows[@]}"; do
    printf '%-24s %7s us %7s us %7.2fx\n' "${row%%:*}" "${row#*:}" "$ref" "$(echo "${row#*:} / $ref" | bc -l)"
done
