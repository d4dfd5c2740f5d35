#!/usr/bin/env bash
# strata's main job, end to end on a real root filesystem: a Debian
# minbase rootfs (debootstrap) as a zstd layer is applied, checked against
# GNU tar's extraction, diffed back out byte-for-byte deterministically,
# then used as the lower layer of a real overlay mount where a "container"
# changes files; the native diff of its upper directory is the new layer.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ "$(id -u)" = 0 ] || { echo "run as root (mounts, devices, ownership)" >&2; exit 1; }
need_cmds tar:tar zstd:zstd
cargo build --release -q
strata=$PWD/target/release/strata
work=${STRATA_DEMO_DIR:-$PWD/target/demo}
mkdir -p "$work"
merged=$work/merged
cleanup() { mountpoint -q "$merged" 2>/dev/null && umount "$merged" || true; }
trap cleanup EXIT

echo "== 1. a real root filesystem (debootstrap --variant=minbase bookworm)"
debian_rootfs "$work/rootfs"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/rootfs" -cf "$work/rootfs.tar" .
zstd -q -f -T0 "$work/rootfs.tar" -o "$work/rootfs.tar.zst"
echo "   $(find "$work/rootfs" | wc -l) entries, $(du -sh "$work/rootfs.tar" | cut -f1) tar, $(du -sh "$work/rootfs.tar.zst" | cut -f1) zstd"

echo "== 2. apply the zstd layer; its diffID is the sha256 of the uncompressed tar"
rm -rf "$work/applied" "$work/reference" && mkdir "$work/applied" "$work/reference"
diff_id=$("$strata" archive apply "$work/applied" "$work/rootfs.tar.zst")
want="sha256:$(sha256sum "$work/rootfs.tar" | cut -d' ' -f1)"
echo "   diffID $diff_id"
[ "$diff_id" = "$want" ] || { echo "diffID mismatch: want $want" >&2; exit 1; }
tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/reference" -xpf "$work/rootfs.tar"
diff -r --no-dereference "$work/reference" "$work/applied" && echo "   same tree as GNU tar's extraction"

echo "== 3. diff it back out: deterministic, and it applies to the same tree"
"$strata" archive diff "$work/applied" -o "$work/out1.tar" >/dev/null
"$strata" archive diff "$work/applied" -o "$work/out2.tar" >/dev/null
cmp "$work/out1.tar" "$work/out2.tar" && echo "   two diffs, identical bytes ($(sha256sum "$work/out1.tar" | cut -c1-16)...)"
rm -rf "$work/again" && mkdir "$work/again"
"$strata" archive apply "$work/again" "$work/out1.tar" >/dev/null
diff -r --no-dereference "$work/applied" "$work/again" && echo "   apply(diff(tree)) == tree"

echo "== 4. a container on top: overlay mount, changes, native diff of the upper dir"
rm -rf "$work/upper" "$work/work" && mkdir -p "$work/upper" "$work/work" "$merged"
mount -t overlay overlay -o "lowerdir=$work/applied,upperdir=$work/upper,workdir=$work/work,index=off" "$merged"
chroot "$merged" /bin/sh -c 'echo "hello from strata" > /etc/motd; rm -f /etc/issue; rm -rf /usr/share/doc; mkdir -p /srv/app && echo data > /srv/app/file; ln -s /srv/app /app'
umount "$merged"
"$strata" archive changes "$work/upper" --upper "$work/applied" | sed 's/^/   /'
"$strata" archive diff "$work/upper" --upper -o "$work/container-layer.tar" | sed 's/^/   new layer /'
tar -tvf "$work/container-layer.tar" | head -n 12 | sed 's/^/   /'
echo "== done"
