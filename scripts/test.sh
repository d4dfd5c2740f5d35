#!/usr/bin/env bash
# Runs the whole test suite. Tests mount real overlayfs, create devices
# and set ownership, so they want root; they use GNU tar, gzip, zstd and
# getfattr/setfattr as reference tools, installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cmds tar:tar gzip:gzip zstd:zstd getfattr:attr setfattr:attr unshare:util-linux mount:mount
if [ "$(id -u)" != 0 ]; then
    echo "warning: not root: privileged tests will say SKIPPED" >&2
fi
cargo test --workspace --all-targets "$@"
