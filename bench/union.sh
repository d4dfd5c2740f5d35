#!/usr/bin/env bash
# The same data through three union file systems, in one run: kernel
# overlayfs (the reference), Debian's fuse-overlayfs, and strata's FUSE
# union (`strata union-mount -o`, overlay format), the last twice: as is
# (root: FUSE passthrough where it applies) and with passthrough off
# ("strata-np": every open served by strata, as for a user without root
# or on a kernel before 6.9). Each is mounted over the
# same lower directory with a fresh upper directory per row:
#
#   1. sequential read of a 1 GiB lower file (dd to /dev/null, cold cache)
#   1b. the same through a read-only union (no upper dir: strata passes
#      every open through to the kernel where FUSE passthrough exists)
#   1c. the same file read again through a writable union, warm: read once
#      through the mount (not timed), then opened and read again (timed)
#   2. find over a 20,000-file lower tree (cold cache)
#   3. tar -c of a Debian minbase rootfs through the union (cold cache)
#   4. untar of that rootfs into the union (new files in the upper dir)
#   5. copy-up of a 100 MiB lower file (open for append, one byte)
#
# Caches are dropped before every cold row (echo 3 > drop_caches). Each row
# runs ROUNDS times per file system, interleaved; the median is kept, and
# every round is printed (as it is measured, and again at the end).
# Ratios are the file system's time over kernel overlay's (lower is
# better); the strata/fuse-overlayfs and np/fovl columns are strata's and
# strata-np's time over fuse-overlayfs's. The last line names the rows
# where strata's median is behind fuse-overlayfs's.
#
# Usage (as root): bash bench/union.sh
# Env: STRATA_BENCH_WORK (default bench/work), ROUNDS (default 3),
#      UNION_ROWS (a space-separated subset of: read readro warm find tar
#      untar copyup),
#      STRATA_BENCH_DEBIAN_TAR (a rootfs tar; built with debootstrap
#      under the work dir otherwise)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
. bench/lib.sh
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 1; }
REPO=$PWD
WORK=${STRATA_BENCH_WORK:-bench/work}
ROUNDS=${ROUNDS:-3}
die() { echo "union.sh: $*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }

need_cmds fuse-overlayfs:fuse-overlayfs fusermount3:fuse3 python3:python3 tar:tar
build_and_lock
U=$WORK/union
rm -rf "$U"
mkdir -p "$U"

DEBIAN_TAR=${STRATA_BENCH_DEBIAN_TAR:-$WORK/debian-bookworm-minbase.tar}
debian_tar "$DEBIAN_TAR" "$WORK/debian-rootfs"

log "lower tree: 1 GiB file, 100 MiB file, 20,000 small files, a Debian rootfs"
LOWER=$U/lower
mkdir -p "$LOWER/tree" "$LOWER/rootfs"
head -c $((1 << 30)) /dev/urandom > "$LOWER/big"
head -c $((100 << 20)) /dev/urandom > "$LOWER/copyup"
python3 - "$LOWER/tree" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(200):
    p = os.path.join(root, f"d{d:03}")
    os.mkdir(p)
    for i in range(100):
        with open(os.path.join(p, f"f{i:03}"), "wb") as f:
            f.write(b"x" * (i * 10))
PY
tar -C "$LOWER/rootfs" -xf "$DEBIAN_TAR"
sync

MNT=$U/mnt
mkdir -p "$MNT"
mount_fs() { # fs [ro]
    rm -rf "$U/upper" "$U/work"
    mkdir -p "$U/upper" "$U/work" "$U/empty"
    local o="lowerdir=$LOWER,upperdir=$U/upper,workdir=$U/work"
    # Read-only: no upper dir (kernel overlay wants two lower dirs then).
    [[ ${2:-} == ro ]] && o="lowerdir=$LOWER:$U/empty"
    case $1 in
        overlay) mount -t overlay overlay -o "$o" "$MNT" ;;
        fuse-overlayfs) fuse-overlayfs -o "$o" "$MNT" ;;
        strata) "$STRATA" union-mount -o "$o" "$MNT" ;;
        # As without root (or on a kernel before 6.9): every open served.
        strata-np) STRATA_UNION_NO_PASSTHROUGH=1 "$STRATA" union-mount -o "$o" "$MNT" ;;
    esac
}
umount_fs() {
    umount "$MNT"
    # fuse servers end on unmount; wait until they have.
    while pgrep -f "[f]use-overlayfs .*$MNT|[u]nion-mount .*$MNT" >/dev/null; do sleep 0.05; done
}
cleanup() { mountpoint -q "$MNT" && umount -l "$MNT"; rm -rf "$U"; }
trap cleanup EXIT
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }

row_read() { cold; dd if="$MNT/big" of=/dev/null bs=1M status=none; }
row_readro() { row_read; }
prep_warm() { cat "$MNT/big" >/dev/null; }
row_warm() { dd if="$MNT/big" of=/dev/null bs=1M status=none; }
row_find() { cold; find "$MNT/tree" | wc -l >/dev/null; }
row_tar() { cold; tar -C "$MNT/rootfs" -cf - . | cat >/dev/null; }
row_untar() { mkdir "$MNT/new"; tar -C "$MNT/new" -xf "$DEBIAN_TAR"; sync; }
row_copyup() { printf x >> "$MNT/copyup"; sync; }

# UNION_ROWS="read readro" measures only those rows.
read -r -a ROWS <<< "${UNION_ROWS:-read readro warm find tar untar copyup}"
FSES=(overlay fuse-overlayfs strata strata-np)
declare -A T
for r in "${ROWS[@]}"; do
    log "$r (seconds: ${FSES[*]})"
    for ((i = 0; i < ROUNDS; i++)); do
        line=
        for fs in "${FSES[@]}"; do
            mount_fs "$fs" "$([[ $r == readro ]] && echo ro)"
            if declare -F "prep_$r" >/dev/null; then "prep_$r"; fi
            s=$EPOCHREALTIME
            "row_$r"
            e=$EPOCHREALTIME
            umount_fs
            t=$(python3 -c "print(f'{$e - $s:.3f}')")
            T[$r,$fs]+="$t "
            line+=" $t"
        done
        printf '   round %d:%s\n' "$((i + 1))" "$line" >&2
    done
done

BEHIND=()
median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" $1; }
printf '\n%-44s %9s %9s %9s %9s %11s %11s %11s\n' row "overlay" "f-ovlfs" "strata" "strata-np" "strata/ovl" "strata/fovl" "np/fovl"
declare -A desc=([read]="sequential read, 1 GiB (cold)" [readro]="the same, read-only union (passthrough)" [warm]="the same, read again (warm)" [find]="find, 20,000 files (cold)" [tar]="tar -c of a Debian rootfs (cold)" [untar]="untar of a Debian rootfs into the union" [copyup]="copy-up of a 100 MiB file")
for r in "${ROWS[@]}"; do
    o=$(median "${T[$r,overlay]}"); f=$(median "${T[$r,fuse-overlayfs]}"); s=$(median "${T[$r,strata]}")
    n=$(median "${T[$r,strata-np]}")
    python3 - "${desc[$r]}" "$o" "$f" "$s" "$n" <<'PY'
import sys
d, o, f, s, n = sys.argv[1], *map(float, sys.argv[2:])
print(f"{d:<44} {o:9.3f} {f:9.3f} {s:9.3f} {n:9.3f} {s / o:10.2f}x {s / f:10.2f}x {n / f:10.2f}x")
PY
    if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$s" "$f"; then
        BEHIND+=("$r")
    fi
done
printf '\nevery round, in seconds (overlay | fuse-overlayfs | strata | strata-np):\n'
for r in "${ROWS[@]}"; do
    printf '  %-7s %s| %s| %s| %s\n' "$r" "${T[$r,overlay]}" "${T[$r,fuse-overlayfs]}" "${T[$r,strata]}" "${T[$r,strata-np]}"
done
if ((${#BEHIND[@]})); then
    printf '\nstrata (median) behind fuse-overlayfs on: %s\n' "${BEHIND[*]}"
else
    printf '\nstrata (median) at or ahead of fuse-overlayfs on every row\n'
fi
printf '\nkernel %s, %s, strata %s, %d rounds (median)\n' "$(uname -r)" \
    "fuse-overlayfs $(dpkg-query -W -f '${Version}' fuse-overlayfs 2>/dev/null || echo '?')" "$(git -C "$REPO" rev-parse --short HEAD)" "$ROUNDS"
