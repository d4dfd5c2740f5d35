#!/usr/bin/env bash
# Benchmarks of strata's layer changesets, each printed as a ratio against a
# reference measured in the same run, on the same data:
#
#   a. apply vs GNU `tar -xf`: a generated tree (>= 20,000 files, >= 200 MB)
#   b. apply vs GNU `tar -xf`: a Debian bookworm minbase root file system
#   c. native diff of a one-file change on a real overlay mount, vs the
#      naive tree diff and vs `tar -cf` of the upper directory
#   d. peak RSS applying a 1 GiB and a 256 MiB layer, vs GNU tar
#
# Usage: bash bench/archive.sh            (as root: overlay mounts, debootstrap)
#
# Environment:
#   STRATA_BENCH_WORK        work directory (default bench/work, gitignored);
#                            generated tars are cached there across runs
#   STRATA_BENCH_RUNS        runs per apply measurement, median kept (default 5)
#   STRATA_BENCH_DIFF_ITERS  iterations of the native diff (default 101)
#   STRATA_BENCH_SKIP_DEBIAN set to 1 to skip (b)
#
# Debian's mirror is read from apt's configured sources at run time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh
REPO=$PWD
WORK=${STRATA_BENCH_WORK:-bench/work}
RUNS=${STRATA_BENCH_RUNS:-5}
DIFF_ITERS=${STRATA_BENCH_DIFF_ITERS:-101}
SKIP_DEBIAN=${STRATA_BENCH_SKIP_DEBIAN:-0}
# Bump when the generators change, so cached tars are rebuilt.
GEN=v1

die() { echo "archive.sh: $*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*"; }

[[ ${BASH_VERSINFO[0]} -ge 5 ]] || die "needs bash >= 5 (EPOCHREALTIME)"
[[ $(id -u) -eq 0 ]] || die "run as root: overlay mounts, debootstrap, ownership as in a layer"
command -v python3 >/dev/null || die "needs python3 (data generators)"
tar --version | head -1 | grep -q 'GNU tar' || die "needs GNU tar"

need_pkg() { # command package
    command -v "$1" >/dev/null && return
    echo "installing $2"
    apt-get install -y -q "$2" >/dev/null
}
need_pkg /usr/bin/time time

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
# Everything extracted in this run goes to a file system made for the run:
# a journaled ext4 (mkfs defaults) in a sparse image in $WORK, loop-mounted
# on $RUN. Both tar and strata write there, and nothing is deleted until
# exit. A fresh file system keeps earlier runs out of the numbers: ext4
# without a journal (some VM images) scans past every inode freed in the
# last minutes on each create, which made back-to-back runs on a reused
# directory 5-15x slower for tar and strata alike.
# STRATA_BENCH_FS=dir writes into $WORK itself instead.
FS=${STRATA_BENCH_FS:-loop}
RUN=$WORK/x-run
IMG=$WORK/x-run.img
OVL=$RUN/ovl

cleanup() {
    if mountpoint -q "$OVL/merged" 2>/dev/null; then umount "$OVL/merged"; fi
    if mountpoint -q "$RUN" 2>/dev/null; then umount "$RUN"; fi
    rm -rf "$RUN" "$IMG" "$WORK/debian-rootfs.tmp"
}
trap cleanup EXIT
cleanup
mkdir -p "$RUN"
if [[ $FS == loop ]]; then
    need_pkg mkfs.ext4 e2fsprogs
    truncate -s 24G "$IMG"
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$IMG"
    mount -o loop "$IMG" "$RUN"
fi

log "building the release binary"
cargo build --release --quiet -p strata-cli
STRATA=${CARGO_TARGET_DIR:-$REPO/target}/release/strata
[[ -x $STRATA ]] || die "no $STRATA"

# ---------------------------------------------------------------- helpers

now_us() { echo "${EPOCHREALTIME/[.,]/}"; }

# Runs "$@" with stdout discarded; prints the elapsed microseconds.
elapsed_us() {
    local t0 t1
    t0=$(now_us)
    "$@" >/dev/null
    t1=$(now_us)
    echo $((t1 - t0))
}

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ms2() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
warm() { cat "$@" >/dev/null; }
# (ms, ratio, le, mib and newdir: bench/lib.sh.) Narrower labels here.
row() { SUMMARY+=("$(printf '%-40s %12s %12s %8s  %-12s %s' "$@")"); }

# apply vs tar -xf of one tar; both extract into fresh directories in
# $WORK, page cache warm, `sync` before each run, runs interleaved.
bench_apply() { # label tarfile
    local label=$1 tar=$2 i t s ts=() ss=() dt ds n_tar n_strata changes
    warm "$tar"
    echo "$label: $(du -m "$tar" | cut -f1) MiB tar, $(tar -tf "$tar" | wc -l) entries"
    for ((i = 1; i <= RUNS; i++)); do
        newdir tar; dt=$DIR; sync
        t=$(elapsed_us tar -xf "$tar" -C "$dt")
        newdir strata; ds=$DIR; sync
        s=$(elapsed_us "$STRATA" archive apply "$ds" "$tar")
        echo "  run $i: tar -xf $(ms "$t") ms, strata apply $(ms "$s") ms"
        ts+=("$t"); ss+=("$s")
    done
    sync
    t=$(median "${ts[@]}"); s=$(median "${ss[@]}")
    # Same result: the naive diff of the two extractions lists nothing.
    changes=$("$STRATA" archive changes "$ds" --from "$dt" | wc -l)
    n_tar=$(find "$dt" | wc -l); n_strata=$(find "$ds" | wc -l)
    echo "  median: tar -xf $(ms "$t") ms, strata apply $(ms "$s") ms," \
        "ratio $(ratio "$s" "$t") (entries on disk: $n_tar vs $n_strata, differences: $changes)"
    echo "  diffID: $("$STRATA" archive apply "$ds" "$tar")"
    local met=met; le "$(ratio "$s" "$t")" 1.2 || met=MISSED
    row "apply: $label" "$(ms "$s") ms" "$(ms "$t") ms" "$(ratio "$s" "$t")x" "<= 1.2x" "$met"
}

# -------------------------------------------------------------- generators

# A tree of ~24,000 entries and ~250 MB: many small files, 16 files of
# 1-10 MB, 3 levels of directories, symlinks and hard links. Content and
# shape come from a seeded generator; the tar is made by GNU tar with
# fixed owners and mtimes, so it is byte-identical across runs.
gen_tree() { # dir
    python3 - "$1" <<'EOF'
import os, random, sys
root = sys.argv[1]
r = random.Random(20240601)
dirs = []
for a in range(40):
    for b in range(5):
        for c in range(5):
            d = os.path.join(root, f"d{a:02}", f"s{b}", f"t{c}")
            os.makedirs(d)
            dirs.append(d)
files = []
for i in range(22000):
    d = r.choice(dirs)
    x = r.random()
    n = r.randrange(0, 2048) if x < 0.6 else r.randrange(2048, 16384) if x < 0.9 else r.randrange(16384, 65536)
    p = os.path.join(d, f"f{i:05}")
    with open(p, "wb") as f:
        f.write(r.randbytes(n))
    os.chmod(p, r.choice([0o644, 0o644, 0o755, 0o600]))
    files.append(p)
for i in range(16):
    p = os.path.join(r.choice(dirs), f"big{i:02}")
    with open(p, "wb") as f:
        left = r.randrange(1 << 20, 10 << 20)
        while left:
            n = min(left, 1 << 20)
            f.write(r.randbytes(n))
            left -= n
for i in range(500):
    t = r.choice(files)
    os.symlink(os.path.relpath(t, os.path.dirname(t)), os.path.join(os.path.dirname(t), f"l{i:03}"))
for i in range(500):
    os.link(r.choice(files), os.path.join(r.choice(dirs), f"h{i:03}"))
EOF
}

# Debian's mirror: the first source apt uses for bookworm itself.
apt_mirror() {
    python3 - <<'EOF'
import glob, re
for p in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(p).read().splitlines()
    except OSError:
        continue
    for l in lines:
        l = re.sub(r"\[[^]]*\]", "", l.split("#")[0]).split()
        if len(l) >= 3 and l[0] == "deb" and l[2] == "bookworm":
            print(l[1]); raise SystemExit
for p in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(p).read()):
        f = {}
        for l in stanza.splitlines():
            if ":" in l and not l.startswith(("#", " ")):
                k, v = l.split(":", 1)
                f[k.strip().lower()] = v.split()
        if "deb" in f.get("types", []) and "bookworm" in f.get("suites", []) and f.get("uris"):
            print(f["uris"][0]); raise SystemExit
raise SystemExit("no bookworm source in apt's configuration")
EOF
}

# ------------------------------------------------------------- (a) tree

TREE_TAR=$WORK/tree-$GEN.tar
if [[ ! -f $TREE_TAR ]]; then
    log "generating the tree (cached in $TREE_TAR)"
    newdir gen
    gen_tree "$DIR"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 \
        -cf "$TREE_TAR.tmp" -C "$DIR" .
    mv "$TREE_TAR.tmp" "$TREE_TAR"
fi
log "(a) apply vs tar -xf: generated tree"
bench_apply "generated tree" "$TREE_TAR"

# ----------------------------------------------------------- (b) debian

if [[ $SKIP_DEBIAN != 1 ]]; then
    DEB_TAR=$WORK/debian-bookworm-minbase.tar
    if [[ ! -f $DEB_TAR ]]; then
        need_pkg debootstrap debootstrap
        MIRROR=$(apt_mirror)
        log "debootstrap --variant=minbase bookworm from $MIRROR (cached in $DEB_TAR)"
        rm -rf "$WORK/debian-rootfs.tmp"
        debootstrap --variant=minbase bookworm "$WORK/debian-rootfs.tmp" "$MIRROR" \
            >"$WORK/debootstrap.log" 2>&1 || die "debootstrap failed: see $WORK/debootstrap.log"
        tar --numeric-owner -cf "$DEB_TAR.tmp" -C "$WORK/debian-rootfs.tmp" .
        mv "$DEB_TAR.tmp" "$DEB_TAR"
        rm -rf "$WORK/debian-rootfs.tmp"
    fi
    log "(b) apply vs tar -xf: Debian bookworm minbase"
    bench_apply "debian bookworm minbase" "$DEB_TAR"
fi

# ----------------------------------------------------- (c) native diff

log "(c) diff of a one-file change on an overlay mount"
mkdir -p "$OVL/lower" "$OVL/upper" "$OVL/work" "$OVL/merged"
tar -xf "$TREE_TAR" -C "$OVL/lower"
mount -t overlay overlay \
    -o "lowerdir=$OVL/lower,upperdir=$OVL/upper,workdir=$OVL/work" "$OVL/merged"
CHANGED=$(cd "$OVL/lower" && find . -type f -name 'f*' | sort | sed -n 1000p)
echo "appending to $CHANGED through the mount"
echo "changed by the benchmark" >>"$OVL/merged/$CHANGED"
sync
echo "lower: $(find "$OVL/lower" | wc -l) entries; upper: $(find "$OVL/upper" | wc -l) entries"

nat=()
for ((i = 0; i < DIFF_ITERS; i++)); do
    nat+=("$(elapsed_us "$STRATA" archive diff --upper "$OVL/upper" -o "$OVL/native.tar")")
done
up=()
for ((i = 0; i < DIFF_ITERS; i++)); do
    up+=("$(elapsed_us tar -cf "$OVL/upper.tar" -C "$OVL/upper" .)")
done
nai=()
for ((i = 0; i < 5; i++)); do
    nai+=("$(elapsed_us "$STRATA" archive diff "$OVL/merged" --from "$OVL/lower" -o "$OVL/naive.tar")")
done
NAT=$(median "${nat[@]}"); UP=$(median "${up[@]}"); NAI=$(median "${nai[@]}")
echo "native layer: $(tar -tf "$OVL/native.tar" | tr '\n' ' ')"
echo "naive layer:  $(tar -tf "$OVL/naive.tar" | tr '\n' ' ')"
MIN=$(printf '%s\n' "${nat[@]}" | sort -n | head -1)
echo "native diff --upper: median $(ms2 "$NAT") ms over $DIFF_ITERS runs (min $(ms2 "$MIN") ms)"
echo "tar -cf of upper:    median $(ms2 "$UP") ms over $DIFF_ITERS runs"
echo "naive diff --from:   median $(ms2 "$NAI") ms over 5 runs"
met=met; le "$(ms "$NAT")" 10 || met=MISSED
row "native diff, 1 change in $(find "$OVL/lower" | wc -l) entries" "$(ms2 "$NAT") ms" "-" "-" "< 10 ms" "$met"
row "  vs naive diff (MERGED --from LOWER)" "$(ms2 "$NAT") ms" "$(ms2 "$NAI") ms" "1/$(awk -v a="$NAI" -v b="$NAT" 'BEGIN { printf "%.0f", a / b }')x" "" ""
row "  vs tar -cf of the upper dir" "$(ms2 "$NAT") ms" "$(ms2 "$UP") ms" "$(ratio "$NAT" "$UP")x" "" ""
umount "$OVL/merged"

# ------------------------------------------------------------ (d) memory

log "(d) peak RSS: apply vs tar -xf"
for big in 1 4; do
    L=$WORK/layer-$big-x256m-$GEN.tar
    if [[ ! -f $L ]]; then
        gen_layer "$big" "$L.tmp"
        mv "$L.tmp" "$L"
    fi
done
if command -v zstd >/dev/null && [[ ! -f $WORK/layer-4-x256m-$GEN.tar.zst ]]; then
    zstd -q -1 -T0 "$WORK/layer-4-x256m-$GEN.tar" -o "$WORK/layer-4-x256m-$GEN.tar.zst"
fi


RSS=()
for L in "$WORK/layer-1-x256m-$GEN.tar" "$WORK/layer-4-x256m-$GEN.tar" "$WORK/layer-4-x256m-$GEN.tar.zst"; do
    [[ -f $L ]] || continue
    size=$(mib "$(stat -c %s "$L")")
    case $L in
        *.zst) ref=(tar --zstd -xf "$L")
            what="$(mib "$(stat -c %s "${L%.zst}")") MiB layer, zstd";;
        *) ref=(tar -xf "$L"); what="$size MiB layer";;
    esac
    warm "$L"
    newdir strata; sync
    read -r s_rss s_t < <(peak "$STRATA" archive apply "$DIR" "$L")
    newdir tar; sync
    read -r t_rss t_t < <(cd "$DIR" && peak "${ref[@]}")
    echo "$what: strata apply $(mib $((s_rss * 1024))) MiB peak RSS in ${s_t}s; tar $(mib $((t_rss * 1024))) MiB in ${t_t}s"
    RSS+=("$s_rss")
    met=met; ((s_rss < 64 * 1024)) || met=MISSED
    row "peak RSS: $what" "$(mib $((s_rss * 1024))) MiB" "$(mib $((t_rss * 1024))) MiB" "$(ratio "$s_rss" "$t_rss")x" "< 64 MiB" "$met"
    row "  time: $what" "${s_t} s" "${t_t} s" "$(ratio "$s_t" "$t_t")x" "" ""
done
if ((${#RSS[@]} >= 2)); then
    growth=$(ratio "${RSS[1]}" "${RSS[0]}")
    met=met; le "$growth" 1.25 || met=MISSED
    row "peak RSS growth, 256 MiB -> 1 GiB layer" "${growth}x" "" "" "flat" "$met"
fi

# ---------------------------------------------------------------- summary

log "summary ($(nproc) cores, $(uname -r), $(tar --version | head -1), strata $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
printf '%-40s %12s %12s %8s  %-12s %s\n' "benchmark" "strata" "reference" "ratio" "target" ""
for r in "${SUMMARY[@]}"; do echo "$r"; done
