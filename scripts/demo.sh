#!/usr/bin/env bash
# strata's main job, end to end on a real root filesystem: a Debian
# minbase rootfs (debootstrap) as a zstd layer is applied, checked against
# GNU tar's extraction and diffed back out deterministically; then the
# store: the rootfs is imported as an image, a container runs a command
# (through crun, or runc where crun cannot run) that changes it, `diff` shows the change, `commit` makes
# a new image, a run of the new image sees the change while a container of
# the old one does not, and a named volume outlives the containers that
# wrote and read it; the new image is saved, checked with skopeo, and
# loaded into a fresh store with the same image ID and diffIDs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ "$(id -u)" = 0 ] || { echo "run as root (mounts, devices, ownership)" >&2; exit 1; }
need_cmds tar:tar zstd:zstd skopeo:skopeo crun:crun runc:runc pasta:passt
cargo build --release -q
strata=$PWD/target/release/strata
work=${STRATA_DEMO_DIR:-$PWD/target/demo}
mkdir -p "$work"
# Same types, modes, owners, mtimes (to the second: layers strata writes
# carry whole seconds, as Docker's do) and link targets, and same content.
same_tree() {
    local list='%y %m %U:%G %T@ %l %p\n'
    diff <(cd "$1" && find . -mindepth 1 -printf "$list" | sed -E 's/\.[0-9]+ / /' | LC_ALL=C sort) \
         <(cd "$2" && find . -mindepth 1 -printf "$list" | sed -E 's/\.[0-9]+ / /' | LC_ALL=C sort) &&
        diff -r --no-dereference -x dev "$1" "$2"
}
cleanup() {
    for c in two three; do STRATA_ROOT=$work/store "$strata" umount "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

echo "== 1. a real root filesystem (debootstrap --variant=minbase bookworm)"
# Built once and shared with the test suite (scripts/test.sh).
data=$PWD/target/test-data
rootfs=$data/debian-rootfs
rootfs_tar=$data/debian-bookworm-minbase.tar
debian_tar "$rootfs_tar" "$rootfs"
zstd -q -f -T0 "$rootfs_tar" -o "$work/rootfs.tar.zst"
echo "   $(find "$rootfs" | wc -l) entries, $(du -sh "$rootfs_tar" | cut -f1) tar, $(du -sh "$work/rootfs.tar.zst" | cut -f1) zstd"

echo "== 2. apply the zstd layer; its diffID is the sha256 of the uncompressed tar"
rm -rf "$work/applied" "$work/reference" && mkdir "$work/applied" "$work/reference"
diff_id=$("$strata" archive apply "$work/applied" "$work/rootfs.tar.zst")
want="sha256:$(sha256sum "$rootfs_tar" | cut -d' ' -f1)"
echo "   diffID $diff_id"
[ "$diff_id" = "$want" ] || { echo "diffID mismatch: want $want" >&2; exit 1; }
tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/reference" -xpf "$rootfs_tar"
same_tree "$work/reference" "$work/applied"
echo "   same tree as GNU tar's extraction"

echo "== 3. diff it back out: deterministic, and it applies to the same tree"
"$strata" archive diff "$work/applied" -o "$work/out1.tar" >/dev/null
"$strata" archive diff "$work/applied" -o "$work/out2.tar" >/dev/null
cmp "$work/out1.tar" "$work/out2.tar" && echo "   two diffs, identical bytes ($(sha256sum "$work/out1.tar" | cut -c1-16)...)"
rm -rf "$work/again" && mkdir "$work/again"
"$strata" archive apply "$work/again" "$work/out1.tar" >/dev/null
same_tree "$work/applied" "$work/again"
echo "   apply(diff(tree)) == tree"

echo "== 4. the store: import, run a command that changes a container, diff, commit, run the new image"
export STRATA_ROOT=$work/store
for c in one two three; do "$strata" umount "$c" >/dev/null 2>&1 || true; "$strata" rm -f "$c" >/dev/null 2>&1 || true; done
"$strata" rmi -f debian:minbase-changed debian:minbase >/dev/null 2>&1 || true
"$strata" volume rm -f demo-data >/dev/null 2>&1 || true
image=$("$strata" import "$work/rootfs.tar.zst" debian:minbase -m "debootstrap --variant=minbase bookworm")
echo "   imported $image"
"$strata" images | sed 's/^/   /'
echo "   strata run --name one debian:minbase sh -c '...':"
"$strata" run --name one -v demo-data:/data debian:minbase /bin/sh -c '
    echo "hello from strata" > /etc/motd; rm -f /etc/issue; rm -rf /usr/share/doc
    mkdir -p /srv/app && echo data > /srv/app/file
    echo "kept on a volume" > /data/note
    echo "Debian $(cat /etc/debian_version) as $(id -un) on $(hostname), pid $$ in its own namespace"' | sed 's/^/     /'
"$strata" create --name two debian:minbase /bin/sh >/dev/null
echo "   strata diff one:"
"$strata" diff one | grep -v '^D /usr/share/doc/.' | sed 's/^/     /'
new=$("$strata" commit one debian:minbase-changed -m "motd, no issue, no docs, /srv/app")
echo "   committed $new"
"$strata" image history debian:minbase-changed | sed 's/^/   /'
"$strata" rm one >/dev/null
echo "   strata run --rm debian:minbase-changed (a new container of the new image):"
"$strata" run --rm -v demo-data:/data debian:minbase-changed /bin/sh -c '
    echo "/etc/motd: $(cat /etc/motd); /srv/app/file: $(cat /srv/app/file); /etc/issue $(test -e /etc/issue && echo present || echo gone)"
    echo "/data/note (the volume, after its first container was removed): $(cat /data/note)"' | sed 's/^/     /'
two=$("$strata" mount two)
echo "   two (from the old image):   /etc/issue $( [ -e "$two/etc/issue" ] && echo present || echo missing), /srv/app $( [ -e "$two/srv/app" ] && echo present || echo absent)"
"$strata" umount two
"$strata" layers | sed 's/^/   /'
"$strata" info | sed 's/^/   /'

echo "== 5. save the new image, check it with skopeo, load it into a fresh store: same identity"
rm -rf "$work/saved.tar" "$work/store2"
"$strata" save -o "$work/saved.tar" debian:minbase-changed
echo "   saved $(du -h "$work/saved.tar" | cut -f1): $(tar -tf "$work/saved.tar" | tr '\n' ' ')"
skopeo inspect "docker-archive:$work/saved.tar" |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print("   skopeo: docker-archive", m["Digest"][:19], "...", len(m["Layers"]), "layers")'
loaded=$(STRATA_ROOT=$work/store2 "$strata" load -q -i "$work/saved.tar")
echo "   loaded into a fresh store: $loaded"
[ "$loaded" = "$new" ] || { echo "image ID changed: $new -> $loaded" >&2; exit 1; }
"$strata" image inspect debian:minbase-changed | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RootFS"]["Layers"])' >"$work/ids1"
STRATA_ROOT=$work/store2 "$strata" image inspect "$loaded" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RootFS"]["Layers"])' >"$work/ids2"
cmp -s "$work/ids1" "$work/ids2" && echo "   same image ID, same diffIDs"
STRATA_ROOT=$work/store2 "$strata" save -o "$work/saved2.tar" "$loaded"
cmp <(tar -xOf "$work/saved.tar" --wildcards 'blobs/sha256/*') <(tar -xOf "$work/saved2.tar" --wildcards 'blobs/sha256/*') &&
    echo "   saved again from the second store: every blob (config, layers, manifest) byte for byte the same"
echo "== done"
