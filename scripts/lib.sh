# Shared helpers for the scripts under scripts/ and bench/ (sourced).

# Installs Debian packages that provide the given commands, when missing.
# Usage: need_cmds cmd:package ...
need_cmds() {
    local missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "missing packages (install them as root): ${missing[*]}" >&2
            return 1
        fi
        need_pkgs "${missing[@]}"
    fi
}

# Installs Debian packages (as root).
need_pkgs() {
    echo "installing: $*" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The Debian mirror apt is configured with (deb822 or one-line format).
debian_mirror() {
    local m
    m=$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
          grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}') \
        | grep -E '/debian/?$' | head -n1)
    echo "${m:-http://deb.debian.org/debian}"
}

# Builds (once) a minbase Debian root filesystem at $1 (an absolute path:
# debootstrap changes directory).
debian_rootfs() {
    local dir=$1
    if [ -x "$dir/bin/sh" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$dir")"
    need_cmds debootstrap:debootstrap
    rm -rf "$dir.partial"
    # debootstrap says some 450 lines: they go to a log; its latest step
    # is shown while it works.
    local log=$dir.log
    echo "building a Debian minbase root filesystem with debootstrap (a few minutes; log: $log)" >&2
    debootstrap --variant=minbase bookworm "$dir.partial" "$(debian_mirror)" >"$log" 2>&1 &
    local pid=$! step last=
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        step=$(grep -E '^I: ' "$log" | tail -n 1 || true)
        if [ -n "$step" ] && [ "$step" != "$last" ]; then
            echo "   debootstrap: ${step#I: }" >&2
            last=$step
        fi
    done
    if ! wait "$pid"; then
        echo "debootstrap failed; the end of $log:" >&2
        tail -n 20 "$log" >&2
        return 1
    fi
    mv "$dir.partial" "$dir"
}

# Builds (once) a tarball at $1 of the minbase Debian root filesystem at
# $2 (built first when missing), numeric owners and xattrs kept.
debian_tar() {
    local file=$1 dir=$2
    if [ -f "$file" ]; then
        return 0
    fi
    debian_rootfs "$dir"
    tar --numeric-owner --xattrs --xattrs-include='*' -C "$dir" -cf "$file.partial" .
    mv "$file.partial" "$file"
}

# The system user strata-rootless with a subordinate id range of 65536 in
# /etc/subuid and /etc/subgid (added when missing, as root): the user the
# rootless tests and bench/rootless.sh run strata as.
rootless_user() {
    if ! getent passwd strata-rootless >/dev/null; then
        useradd --system --user-group --no-create-home --shell /usr/sbin/nologin strata-rootless
    fi
    if ! grep -q '^strata-rootless:' /etc/subuid 2>/dev/null; then
        touch /etc/subuid /etc/subgid
        usermod --add-subuids 1100000000-1100065535 --add-subgids 1100000000-1100065535 \
            strata-rootless
    fi
}
