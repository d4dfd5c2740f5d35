# Helpers shared by the benchmark scripts (sourced from the repo's root).

# A layer of `big` files of 256 MiB each plus 5,000 small files, written as
# a GNU tar stream directly (nothing staged on disk). bench/archive.sh and
# bench/load.sh cache its output under the same name, so there is one
# generator for both.
gen_layer() { # big out
    python3 - "$1" "$2" <<'EOF'
import io, random, sys, tarfile
big, out = int(sys.argv[1]), sys.argv[2]
r = random.Random(7)
block = r.randbytes(1 << 20)

class Content(io.RawIOBase):
    """size bytes: a random MiB, each copy stamped with its index."""
    def __init__(self, size):
        self.size, self.pos = size, 0
    def readable(self):
        return True
    def readinto(self, b):
        n = min(len(b), self.size - self.pos)
        i, off = divmod(self.pos, 1 << 20)
        n = min(n, (1 << 20) - off)
        chunk = i.to_bytes(8, "little") + block[8:]
        b[:n] = chunk[off:off + n]
        self.pos += n
        return n

def info(name, size, mode=0o644, kind=tarfile.REGTYPE):
    t = tarfile.TarInfo(name)
    t.size, t.mode, t.type, t.mtime = size, mode, kind, 1700000000
    return t

with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:
    tf.addfile(info("small", 0, 0o755, tarfile.DIRTYPE))
    tf.addfile(info("big", 0, 0o755, tarfile.DIRTYPE))
    for d in range(50):
        tf.addfile(info(f"small/{d:02}", 0, 0o755, tarfile.DIRTYPE))
        for i in range(100):
            n = r.randrange(0, 8192)
            tf.addfile(info(f"small/{d:02}/{i:03}", n), io.BytesIO(r.randbytes(n)))
    for i in range(big):
        tf.addfile(info(f"big/{i}", 256 << 20), io.BufferedReader(Content(256 << 20)))
EOF
}

# What a benchmark script starts with, once it has sourced scripts/lib.sh
# and this file: root and bash 5 (EPOCHREALTIME) required, REPO and WORK
# (STRATA_BENCH_WORK, default bench/work) set; `die` (naming the script),
# `log`, and `skipped` (a loud line, kept in SKIPS for the summary).
bench_init() {
    [[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 1; }
    [[ ${BASH_VERSINFO[0]} -ge 5 ]] || { echo "needs bash >= 5 (EPOCHREALTIME)" >&2; exit 1; }
    REPO=$PWD
    WORK=${STRATA_BENCH_WORK:-bench/work}
    SKIPS=()
}
die() { echo "${0##*/}: $*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*"; }
skipped() { printf '\n!!!!! SKIPPED: %s\n\n' "$*" >&2; SKIPS+=("SKIPPED: $*"); }

# Makes $WORK absolute, builds the release binary (its path in $STRATA;
# $REPO is the repo's root) and takes the work dir's lock: one benchmark
# at a time per work dir (a second would unmount the first's file system
# or spoil its timings).
build_and_lock() {
    mkdir -p "$WORK"
    WORK=$(cd "$WORK" && pwd)
    log "building the release binary"
    cargo build --release -q -p strata-cli
    STRATA=${CARGO_TARGET_DIR:-$REPO/target}/release/strata
    [[ -x $STRATA ]] || die "no $STRATA"
    exec {BENCH_LOCK}<"$WORK"
    flock -n "$BENCH_LOCK" || die "another benchmark is running on $WORK"
}

# ---------------------------------------------------------- bench images

# A docker-archive as `docker save` (20.10) writes it: <v1id>/layer.tar,
# <v1id>/json, <v1id>/VERSION per layer, <config>.json, manifest.json and
# repositories, in name order (so the manifest comes after the layers).
# Usage: docker_archive OUT TAG HISTORY-COMMENT LAYER.tar...
docker_archive() {
    python3 - "$@" <<'EOF'
import hashlib, io, json, platform, sys, tarfile
out, tag, what, layers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()
diff_ids = [sha(l) for l in layers]
created = "2024-01-01T00:00:00Z"
config = json.dumps({
    "architecture": arch, "os": "linux", "created": created,
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
               "Cmd": ["/bin/bash"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
    "history": [{"created": created, "created_by": f"{what} (layer {i + 1})"}
                for i in range(len(layers))],
}, separators=(",", ":")).encode()
config_id = hashlib.sha256(config).hexdigest()
members, v1 = {}, []
parent = ""
for i, (l, d) in enumerate(zip(layers, diff_ids)):
    v1id = hashlib.sha256((parent + " " + d).encode()).hexdigest()
    meta = {"id": v1id, "created": created, "os": "linux"}
    if parent:
        meta["parent"] = parent
    members[f"{v1id}/"] = None
    members[f"{v1id}/VERSION"] = b"1.0"
    members[f"{v1id}/json"] = json.dumps(meta).encode()
    members[f"{v1id}/layer.tar"] = l
    v1.append(v1id)
    parent = v1id
members[f"{config_id}.json"] = config
name, _, t = tag.rpartition(":")
members["manifest.json"] = json.dumps([{"Config": f"{config_id}.json", "RepoTags": [tag],
    "Layers": [f"{v}/layer.tar" for v in v1]}]).encode()
members["repositories"] = json.dumps({name: {t: v1[-1]}}).encode()
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
    for n in sorted(members):
        v = members[n]
        ti = tarfile.TarInfo(n.rstrip("/"))
        ti.mtime = 1704067200
        if v is None:
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(ti)
        elif isinstance(v, bytes):
            ti.size, ti.mode = len(v), 0o644
            tf.addfile(ti, io.BytesIO(v))
        else:
            ti = tf.gettarinfo(v, n)
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mtime, ti.mode = 1704067200, 0o644
            with open(v, "rb") as f:
                tf.addfile(ti, f)
print("sha256:" + config_id)
EOF
}

# A docker-archive of N images tagged REPO:0 .. REPO:N-1, each with a
# small layer of its own (one file, so N distinct image IDs). With BASE 1
# they all stand on one shared base layer too, which an image tagged
# REPO:base has alone.
# Usage: many_images OUT N REPO BASE
many_images() {
    python3 - "$@" <<'EOF'
import hashlib, io, json, platform, sys, tarfile
out, n, repo, shared = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
def member(tf, name, data):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, 1704067200
    tf.addfile(ti, io.BytesIO(data))
def layer(tf, files):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.GNU_FORMAT) as lt:
        for name, data in files:
            member(lt, name, data)
    diff = hashlib.sha256(b.getvalue()).hexdigest()
    member(tf, f"{diff}/layer.tar", b.getvalue())
    return diff
manifest = []
def image(tf, diffs, i, label, tag):
    created = f"2024-01-01T00:{i // 60 % 60:02}:{i % 60:02}Z"
    config = json.dumps({
        "architecture": arch, "os": "linux", "created": created,
        "config": {"Cmd": ["/bin/true"], "Labels": {"n": label}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diffs]},
        "history": [{"created": created, "created_by": f"image {label}"} for _ in diffs],
    }, separators=(",", ":")).encode()
    cid = hashlib.sha256(config).hexdigest()
    member(tf, f"{cid}.json", config)
    manifest.append({"Config": f"{cid}.json", "RepoTags": [tag],
                     "Layers": [f"{d}/layer.tar" for d in diffs]})
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
    base = []
    if shared:
        base = [layer(tf, [("etc/os-release", b"base\n"), ("bin/true", b"#!/bin/sh\n")])]
        image(tf, base, 0, "base", f"{repo}:base")
    for i in range(n):
        own = layer(tf, [("etc/image", f"image {i}\n".encode())])
        image(tf, base + [own], i, str(i), f"{repo}:{i}")
    member(tf, "manifest.json", json.dumps(manifest).encode())
EOF
}

# The top layer: /etc/motd changed, a file added, a file (/etc/issue.net)
# and a directory (/usr/share/doc/apt) deleted (whiteouts), parents with
# the metadata they have in the rootfs at $1.
top_layer() { # rootfs out
    python3 - "$1" "$2" <<'EOF'
import io, os, sys, tarfile
root, out = sys.argv[1], sys.argv[2]
for p in ("etc/issue.net", "usr/share/doc/apt"):
    assert os.path.lexists(os.path.join(root, p)), p
with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:
    def parent(p):
        ti = tf.gettarinfo(os.path.join(root, p), p)
        ti.uname = ti.gname = ""
        tf.addfile(ti)
    def file(p, data, mode=0o644):
        ti = tarfile.TarInfo(p)
        ti.size, ti.mode, ti.mtime = len(data), mode, 1704067200
        tf.addfile(ti, io.BytesIO(data))
    parent("etc")
    file("etc/.wh.issue.net", b"", 0)
    file("etc/bench-release", b"strata load benchmark\n")
    file("etc/motd", b"Loaded by bench/load.sh.\n")
    for p in ("usr", "usr/share", "usr/share/doc"):
        parent(p)
    file("usr/share/doc/.wh.apt", b"", 0)
EOF
}

# The Debian bookworm minbase rootfs ($WORK/debian-bookworm-minbase.tar,
# made with debootstrap when missing) split by top-level directory into five
# layers, built once and cached in $WORK/load-GEN: sets DEB_TAR, A (the
# cache dir), LAYERS (the five layer tars), DARCH (a docker-archive of them,
# uncompressed, named TAG), OCIDIR and OARCH (the same image as an OCI
# layout and archive with gzip layers), GZ_LAYERS (their blobs), IMAGE_ID
# and OCI_ID (the two images' IDs). Needs the caller's `log` and `die`.
debian_five_layers() { # tag gen
    local TAG=$1 GEN=$2 B t rest
    DEB_TAR=$WORK/debian-bookworm-minbase.tar
    if [[ ! -f $DEB_TAR ]]; then
        debian_rootfs "$WORK/debian-rootfs"
        tar --numeric-owner --xattrs --xattrs-include='*' -C "$WORK/debian-rootfs" -cf "$DEB_TAR.tmp" .
        mv "$DEB_TAR.tmp" "$DEB_TAR"
    fi
    A=$WORK/load-$GEN
    LAYERS=("$A/layers/1-usr-lib.tar" "$A/layers/2-usr.tar" "$A/layers/3-var-etc.tar"
            "$A/layers/4-rest.tar" "$A/layers/5-top.tar")
    DARCH=$A/debian-docker-archive.tar
    OCIDIR=$A/debian-oci-gzip
    OARCH=$A/debian-oci-gzip.tar
    if [[ ! -f $OARCH || $DEB_TAR -nt $OARCH ]]; then
        log "building the archives from $(basename "$DEB_TAR") (cached in $A)"
        rm -rf "$A"
        mkdir -p "$A/layers"
        B=$WORK/load-build.tmp
        rm -rf "$B"; mkdir -p "$B/rootfs"
        tar -xf "$DEB_TAR" -C "$B/rootfs" --numeric-owner --xattrs --xattrs-include='*'
        # Layers split by top-level directory, names without "./" as Docker's.
        t=(tar --numeric-owner --xattrs --xattrs-include='*' --sort=name -C "$B/rootfs")
        "${t[@]}" -cf "${LAYERS[0]}" --no-recursion usr --recursion usr/lib
        "${t[@]}" -cf "${LAYERS[1]}" --anchored --exclude=usr/lib usr
        "${t[@]}" -cf "${LAYERS[2]}" var etc
        mapfile -t rest < <(ls -A "$B/rootfs" | grep -vxE 'usr|var|etc')
        "${t[@]}" -cf "${LAYERS[3]}" "${rest[@]}"
        top_layer "$B/rootfs" "${LAYERS[4]}"
        rm -rf "$B"
        docker_archive "$DARCH.tmp" "$TAG" "debian bookworm minbase" "${LAYERS[@]}" >"$A/image-id"
        mv "$DARCH.tmp" "$DARCH"
        # The same image as an OCI layout with gzip layers, and as an OCI archive.
        skopeo copy -q --dest-compress-format gzip "docker-archive:$DARCH" "oci:$OCIDIR:$TAG"
        skopeo copy -q "oci:$OCIDIR:$TAG" "oci-archive:$OARCH.tmp:$TAG"
        mv "$OARCH.tmp" "$OARCH"
    fi
    # The gzip layer blobs in manifest order (for tar -xzf).
    mapfile -t GZ_LAYERS < <(python3 - "$OCIDIR" <<'EOF'
import json, sys
d = sys.argv[1]
blob = lambda digest: f"{d}/blobs/{digest.replace(':', '/')}"
m = json.load(open(blob(json.load(open(f"{d}/index.json"))["manifests"][0]["digest"])))
for l in m["layers"]:
    assert "gzip" in l["mediaType"], l["mediaType"]
    print(blob(l["digest"]))
EOF
    )
    ((${#GZ_LAYERS[@]} == ${#LAYERS[@]})) || die "$OCIDIR: expected ${#LAYERS[@]} gzip layers"
    IMAGE_ID=$(cat "$A/image-id")
    # skopeo rewrites the config for OCI, so that image has an ID of its own.
    OCI_ID=$(python3 -c 'import json, sys; d = sys.argv[1]; b = lambda x: json.load(open(d + "/blobs/" + x.replace(":", "/")))
print(b(json.load(open(d + "/index.json"))["manifests"][0]["digest"])["config"]["digest"])' "$OCIDIR")
}

# Unmounts every mount point strictly under $1 (which ends in "/"), deepest
# first. Refuses anything shorter than "/x/", so that an empty variable can
# never make it unmount the machine's own mounts.
unmount_under() {
    local d=$1
    [[ $d == /?*/ && -r /proc/self/mountinfo ]] || return 0
    awk -v d="$d" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# Stops the private dockerd a script started ($DOCKERD_PID), and its own
# containerd if it outlived it ($DOCKERD_KIDS).
stop_dockerd() {
    [[ -n $DOCKERD_PID ]] || return 0
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
    for p in $DOCKERD_KIDS; do kill -TERM "$p" 2>/dev/null || true; done
    DOCKERD_PID=
}

# Starts a private dockerd for the run, with any more dockerd arguments
# given: its data root on the run's file system ($RUN/docker, or
# $DOCKER_ROOT), its storage driver overlay2 (or $DOCKER_DRIVER), its exec
# root and socket under $SHORT. Sets SOCK, DOCKERD_PID and DOCKERD_KIDS
# (the containerd it starts). When it does not answer in 30 s it is
# stopped, WHY says why, and the call fails.
start_dockerd() {
    local root=${DOCKER_ROOT:-$RUN/docker}
    mkdir -p "$root" "$SHORT/exec"
    SOCK=unix://$SHORT/docker.sock
    dockerd --iptables=false --bridge=none --ip-masq=false \
        --storage-driver "${DOCKER_DRIVER:-overlay2}" "$@" \
        --data-root "$root" --exec-root "$SHORT/exec" --pidfile "$SHORT/docker.pid" \
        -H "$SOCK" >"$SHORT/dockerd.log" 2>&1 {BENCH_LOCK}<&- &
    DOCKERD_PID=$!
    for _ in $(seq 150); do
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        if docker -H "$SOCK" version >/dev/null 2>&1; then
            DOCKERD_KIDS=$(ps -o pid= --ppid "$DOCKERD_PID" || true)
            return 0
        fi
        sleep 0.2
    done
    WHY=$(grep -iE 'level=(error|fatal)' "$SHORT/dockerd.log" | tail -1 | cut -c1-200)
    WHY=${WHY:-no answer in 30 s}
    stop_dockerd
    return 1
}

# The run's file system: a journaled ext4 in the sparse image $IMG,
# loop-mounted on $RUN (LOOP), and SHORT, a short directory under /tmp
# named after $1 (unix socket paths are limited to 108 bytes).
make_run_fs() { # short-name
    mkdir -p "$RUN"
    truncate -s 24G "$IMG"
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$IMG"
    LOOP=$(losetup -f --show "$IMG")
    mount "$LOOP" "$RUN"
    SHORT=$(mktemp -d "/tmp/$1.XXXXXX")
}

# The run's file system and its clean-up, as every script that makes one
# wants it: RUN and IMG under $WORK named after $1, made by make_run_fs
# (its short directory strata-$2, default strata-$1), and undone at exit
# or interrupt, and first of all before the run (what a killed run left):
# the script's own `before_cleanup` when it defines one (servers,
# namespaces), then a dockerd start_dockerd started, then the file system.
run_fs() { # name [short-name]
    RUN=$WORK/$1-run
    IMG=$WORK/$1-run.img
    LOOP=
    SHORT=
    DOCKERD_PID=
    DOCKERD_KIDS=
    trap run_fs_cleanup EXIT
    trap 'exit 130' INT TERM HUP
    run_fs_cleanup
    make_run_fs "strata-${2:-$1}"
}
run_fs_cleanup() {
    local -
    set +e
    if declare -F before_cleanup >/dev/null; then before_cleanup; fi
    stop_dockerd
    remove_run_fs
}

# Undoes make_run_fs, and what a run killed hard left (mounts below $RUN
# and $SHORT, loop devices still attached to the image).
remove_run_fs() {
    unmount_under "$RUN/"
    unmount_under "$SHORT/"
    if mountpoint -q "$RUN" 2>/dev/null; then umount "$RUN" || umount -l "$RUN"; fi
    [[ -n $LOOP ]] && losetup -d "$LOOP" 2>/dev/null
    losetup -j "$IMG" 2>/dev/null | cut -d: -f1 | while read -r l; do losetup -d "$l"; done
    rm -rf "$RUN" "$IMG" "$WORK/load-build.tmp"
    [[ -n $SHORT ]] && rm -rf "$SHORT"
    return 0
}

# Now in microseconds, and "$@" timed: stdout discarded, the elapsed
# microseconds printed; fails (printing the command's stderr, kept in
# $RUN/elapsed.err) when the command does.
now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
elapsed_us() {
    local t0 t1 err=$RUN/elapsed.err
    t0=$(now_us)
    "$@" >/dev/null 2>"$err" || { cat "$err" >&2; return 1; }
    t1=$(now_us)
    echo $((t1 - t0))
}

# Peak RSS and time of "$@": prints "max RSS in KiB" and "elapsed
# seconds" (GNU time's); dies, with its output, when the command fails.
peak() {
    local v
    v=$(/usr/bin/time -v "$@" 2>&1 >/dev/null) || { echo "$v" >&2; die "failed: $*"; }
    echo "$(awk -F': ' '/Maximum resident set size/ { print $2 }' <<<"$v")" \
        "$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' <<<"$v")"
}
maxf() { printf '%s\n' "$@" | sort -g | tail -1; }
minf() { printf '%s\n' "$@" | sort -g | head -1; }

# Timings in microseconds: the best of several, as ms, ratios; the rows
# of a run's summary (newdir: a fresh numbered directory under $RUN).
best() { printf '%s\n' "$@" | sort -n | head -1; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }
msl() { local o=() v; for v in "$@"; do o+=("$(ms "$v")"); done; echo "${o[*]}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
N=0
newdir() { N=$((N + 1)); DIR=$RUN/$N-$1; mkdir -p "$DIR"; }
SUMMARY=()
row() { SUMMARY+=("$(printf '%-46s %12s %12s %8s  %-10s %s' "$@")"); }
verdict() { if le "$1" "$2"; then echo met; else echo MISSED; fi; } # value max
# A summary row for a peer against strata: "x faster" = the peer's time /
# strata's, target 2x.
vs_row() { # label tool-us strata-us
    local f; f=$(ratio "$2" "$3")
    row "$1" "$(ms "$3") ms" "$(ms "$2") ms" "${f}x" ">= 2x" "$(le 2 "$f" && echo met || echo MISSED)"
}
