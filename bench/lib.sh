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

# Makes $WORK absolute, builds the release binary (its path in $STRATA;
# $REPO is the repo's root) and takes the work dir's lock: one benchmark
# at a time per work dir (a second would unmount the first's file system
# or spoil its timings). Needs the caller's `log` and `die`.
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
