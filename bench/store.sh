#!/usr/bin/env bash
# Store benchmarks, each a ratio against a reference measured in the same
# run on the same data (a Debian bookworm minbase rootfs):
#
#   a. strata import of the rootfs tar vs GNU tar -x followed by sync -f:
#      import makes its layer durable before publishing it, so the
#      reference is a durable tar (target <= 1.0x); bare tar -x beside it
#   b. strata commit of a one-file change in a container of that image vs
#      tar -c of the rootfs (target <= 5%: commit costs the change)
#   c. strata create + strata mount, per container, over 200 containers vs
#      mkdir + mount -t overlay at the same depth (the image's lower
#      directory under an empty one, as a container's init layer), each
#      loop after a few hundred MB written and not synced, so other dirty
#      data is on the disk (target <= 2x); both sides are processes, as a
#      user or script would run them
#
# Usage (as root): bash bench/store.sh
# Env: STRATA_BENCH_WORK (default bench/work), STRATA_BENCH_N (containers, 200),
#      STRATA_BENCH_DIRTY_MB (unsynced data written before each loop of c, 300)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 1; }
WORK=${STRATA_BENCH_WORK:-bench/work}
N=${STRATA_BENCH_N:-200}
DIRTY_MB=${STRATA_BENCH_DIRTY_MB:-300}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
cargo build --release -q -p strata-cli
strata=${CARGO_TARGET_DIR:-$PWD/target}/release/strata
tarball=$WORK/debian-bookworm-minbase.tar
if [[ ! -f $tarball ]]; then
    debian_rootfs "$WORK/debian-rootfs"
    tar --numeric-owner --xattrs --xattrs-include='*' -C "$WORK/debian-rootfs" -cf "$tarball" .
fi
# Everything this run writes goes to a journaled ext4 made for the run (a
# sparse image, loop-mounted), and nothing is deleted before the end: see
# BENCHMARKS.md, "File system" (ext4 without a journal slows creates after
# deletes, for tar and strata alike).
RUN=$WORK/store-run
IMG=$WORK/store-run.img
cleanup() {
    { grep -oE " $RUN/[^ ]*" /proc/self/mountinfo || true; } | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    if mountpoint -q "$RUN" 2>/dev/null; then umount "$RUN"; fi
    rm -rf "$RUN" "$IMG"
}
trap cleanup EXIT
cleanup
need_cmds mkfs.ext4:e2fsprogs bc:bc
mkdir -p "$RUN"
truncate -s 24G "$IMG"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$IMG"
mount -o loop "$IMG" "$RUN"
S=$RUN/store
B=$RUN/bare
now() { date +%s%N; }
ms() { echo "scale=3; ($2 - $1) / 1000000" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== a. import vs tar -x ($(du -h "$tarball" | cut -f1) rootfs tar)"
cat "$tarball" >/dev/null
imp=(); ref=(); refs=()
for i in 1 2 3; do
    mkdir -p "$RUN/x-tar-$i" "$RUN/x-tar-sync-$i"; sync
    t0=$(now); tar -xf "$tarball" -C "$RUN/x-tar-$i"; t1=$(now); ref+=("$(ms "$t0" "$t1")")
    sync
    # import makes the layer durable (syncfs) before publishing it: the
    # like-for-like reference is tar -x followed by a sync of the file system.
    t0=$(now); tar -xf "$tarball" -C "$RUN/x-tar-sync-$i"; sync -f "$RUN/x-tar-sync-$i"; t1=$(now); refs+=("$(ms "$t0" "$t1")")
    sync
    t0=$(now); "$strata" --root "$RUN/import-$i" --driver overlay2 import "$tarball" debian:bench >/dev/null; t1=$(now); imp+=("$(ms "$t0" "$t1")")
done
imp_ms=$(printf '%s\n' "${imp[@]}" | median); ref_ms=$(printf '%s\n' "${ref[@]}" | median)
refs_ms=$(printf '%s\n' "${refs[@]}" | median)
echo "   strata import ${imp[*]} ms; tar -x ${ref[*]} ms; tar -x + sync -f ${refs[*]} ms"

echo "== b. commit of a one-file change vs tar -c of the rootfs"
"$strata" --root "$S" --driver overlay2 import "$tarball" debian:bench >/dev/null
"$strata" --root "$S" create --name c debian:bench >/dev/null
m=$("$strata" --root "$S" mount c)
echo "one change" >"$m/etc/motd"
"$strata" --root "$S" umount c
com=(); tc=()
for i in 1 2 3; do
    sync
    t0=$(now); "$strata" --root "$S" commit c >/dev/null; t1=$(now); com+=("$(ms "$t0" "$t1")")
    t0=$(now); tar -cf "$RUN/commit-ref-$i.tar" -C "$RUN/x-tar-1" .; t1=$(now); tc+=("$(ms "$t0" "$t1")")
done
com_ms=$(printf '%s\n' "${com[@]}" | median); tc_ms=$(printf '%s\n' "${tc[@]}" | median)
echo "   strata commit ${com[*]} ms; tar -c ${tc[*]} ms"

echo "== c. create + mount x $N vs mkdir + mount -t overlay x $N (after $DIRTY_MB MB unsynced)"
# The same lower directory the containers stack on: the base layer's.
lower=$("$strata" --root "$S" layers --format json |
    python3 -c 'import json,sys; print([l["CacheID"] for l in json.load(sys.stdin) if l["Parent"] is None][0])')
lowerdir=$S/overlay2/$lower/diff
[[ -d $lowerdir ]] || lowerdir=$RUN/x-tar-1
# Other work's data, written and left for writeback: a flush by either
# side would have to write it.
dirty() { dd if=/dev/urandom of="$RUN/dirty-$1" bs=1M count="$DIRTY_MB" status=none; }
sync
dirty strata
t0=$(now)
for i in $(seq "$N"); do
    "$strata" --root "$S" create --name "n$i" debian:bench >/dev/null
    "$strata" --root "$S" mount "n$i" >/dev/null
done
t1=$(now); ours=$(ms "$t0" "$t1")
mkdir -p "$B"
sync
dirty bare
t0=$(now)
for i in $(seq "$N"); do
    # A container's view: its upper over its init layer over the image.
    mkdir -p "$B/$i/upper" "$B/$i/work" "$B/$i/merged" "$B/$i/init"
    mount -t overlay overlay -o "lowerdir=$B/$i/init:$lowerdir,upperdir=$B/$i/upper,workdir=$B/$i/work,index=off" "$B/$i/merged"
done
t1=$(now); bare=$(ms "$t0" "$t1")
per_ours=$(echo "scale=3; $ours / $N" | bc); per_bare=$(echo "scale=3; $bare / $N" | bc)

printf '\n== summary (%s cores, kernel %s)\n' "$(nproc)" "$(uname -r)"
printf '%-44s %12s %12s %8s  %s\n' benchmark strata reference ratio target
printf '%-44s %9.1f ms %9.1f ms %7.2fx  %s\n' "import Debian rootfs (vs tar -x + sync -f)" "$imp_ms" "$refs_ms" "$(echo "$imp_ms / $refs_ms" | bc -l)" "<= 1.0x"
printf '%-44s %9.1f ms %9.1f ms %7.2fx  %s\n' "  vs tar -x (no flush)" "$imp_ms" "$ref_ms" "$(echo "$imp_ms / $ref_ms" | bc -l)" ""
printf '%-44s %9.1f ms %9.1f ms %7.1f%%  %s\n' "commit one-file change (vs tar -c rootfs)" "$com_ms" "$tc_ms" "$(echo "100 * $com_ms / $tc_ms" | bc -l)" "<= 5%"
printf '%-44s %9.2f ms %9.2f ms %7.2fx  %s\n' "create+mount per container, $N containers" "$per_ours" "$per_bare" "$(echo "$per_ours / $per_bare" | bc -l)" "<= 2x"
