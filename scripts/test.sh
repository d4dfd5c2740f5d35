#!/usr/bin/env bash
# Runs the whole test suite. Tests mount real overlayfs, create devices
# and set ownership, so they want root; they use GNU tar, gzip, zstd and
# getfattr/setfattr as reference tools, and the load/save interop tests
# build images with umoci from busybox-static's binary, convert them with
# skopeo and round-trip them through a private dockerd (docker.io; those
# tests say SKIPPED when dockerd cannot start here). The run tests start
# containers with crun and runc (one on a terminal made by bsdutils'
# script; `--init` with tini), on private networks through pasta (passt)
# and slirp4netns, in busybox and in a Debian minbase image built once with
# debootstrap and cached under target/test-data (its tarball's path is
# passed in STRATA_TEST_DEBIAN_TAR). The FUSE union's tests mount as an
# unprivileged user through fuse3's fusermount3 (setpriv from
# util-linux), and run pjdfstest (the Rust rewrite of the POSIX
# file-system suite, from crates.io, built once under target/tools; its
# cases switch to the users nobody and tests, added here when missing).
# The registry client's tests start Debian's docker-registry on 127.0.0.1,
# with TLS from a CA made by openssl and htpasswd (apache2-utils) auth; what
# strata pushes there is pulled back by skopeo, podman (its store in a temp
# dir) and the private dockerd.
# The btrfs driver's tests make a btrfs in a file with btrfs-progs'
# mkfs.btrfs and loop-mount it (losetup: mount).
# The rootless tests run strata as the system user strata-rootless, added
# here with a subordinate id range in /etc/subuid and /etc/subgid, through
# newuidmap/newgidmap (uidmap), and as nobody, who has no range.
# The EROFS writer's tests check its images with fsck.erofs (erofs-utils);
# the erofs driver's tests mount its images from their files (Linux >= 6.12).
# All are installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cmds tar:tar gzip:gzip zstd:zstd getfattr:attr setfattr:attr unshare:util-linux mount:mount \
    umoci:umoci skopeo:skopeo busybox:busybox-static dockerd:docker.io docker:docker.io \
    crun:crun runc:runc tini-static:tini script:bsdutils fusermount3:fuse3 setpriv:util-linux \
    pasta:passt slirp4netns:slirp4netns docker-registry:docker-registry htpasswd:apache2-utils \
    openssl:openssl podman:podman mkfs.btrfs:btrfs-progs losetup:mount newuidmap:uidmap \
    fsck.erofs:erofs-utils
if [ "$(id -u)" != 0 ]; then
    echo "warning: not root: privileged tests will say SKIPPED" >&2
else
    # Debian's udev rules make /dev/fuse 0666 (fusermount3 opens it as
    # the user); a container's /dev may hold it 0600.
    [ ! -c /dev/fuse ] || chmod 0666 /dev/fuse
    # The same for /dev/net/tun, which pasta opens for a rootless
    # container's network.
    [ ! -c /dev/net/tun ] || chmod 0666 /dev/net/tun
    data=$PWD/target/test-data
    debian_tar "$data/debian-bookworm-minbase.tar" "$data/debian-rootfs"
    export STRATA_TEST_DEBIAN_TAR="$data/debian-bookworm-minbase.tar"
    # pjdfstest links libacl (libacl1-dev has the library to link with).
    pjd=0.2.2
    tools=$PWD/target/tools/pjdfstest-$pjd
    if [ ! -x "$tools/bin/pjdfstest" ]; then
        dpkg -s libacl1-dev >/dev/null 2>&1 || need_pkgs libacl1-dev
        cargo install --locked --quiet --version "$pjd" --root "$tools" pjdfstest
    fi
    export STRATA_TEST_PJDFSTEST=$tools/bin/pjdfstest
    if ! getent passwd tests >/dev/null; then
        if getent group tests >/dev/null; then group=(--gid tests); else group=(--user-group); fi
        useradd --system "${group[@]}" --no-create-home --shell /usr/sbin/nologin tests
    fi
    rootless_user
fi
cargo test --workspace --all-targets "$@"
