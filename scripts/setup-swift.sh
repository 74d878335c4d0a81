#!/usr/bin/env bash
# Gives this Debian machine a Swift 6 toolchain for the Swift tests.
#
# Debian 12 has no Swift package but Debian 13 (trixie) has `swiftlang`, so we debootstrap a minimal
# trixie root and install Swift there; scripts/in-swift-root.sh then runs commands inside it. The
# root lives outside any clone (default /opt/starling/swift-root, override with STARLING_SWIFT_ROOT)
# so that every clone and CI job on the machine reuses it. Needs root: debootstrap, chroot, mount.
#
# Idempotent: a root whose swiftc already runs is reused in a second or two; an interrupted run is
# finished (apt step) or redone (debootstrap step) on the next call. On macOS none of this is needed.

# The `sh -c` scripts below are single-quoted on purpose: they expand inside the namespace/chroot.
# shellcheck disable=SC2016
set -euo pipefail

root=${STARLING_SWIFT_ROOT:-/opt/starling/swift-root}
log() { echo "setup-swift: $*" >&2; }

# Runs a command in the root with /proc mounted (swiftc locates its runtime libraries through
# /proc/self/exe). The mount is made in a private mount namespace, so the kernel drops it when the
# command ends, however it ends: nothing is ever left mounted for a later `rm -rf` to walk into.
in_root() {
    unshare --mount --propagation private -- sh -c 'set -e; mount -t proc proc "$1/proc"; exec chroot "$@"' \
        sh "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# A runnable swiftc alone is not enough: a run killed midway can leave swiftlang unpacked but not
# configured, or libc6-dev missing, so dpkg must also say both are installed.
swift_version() {
    [ -x "$root/usr/bin/swiftc" ] && in_root sh -c '
        [ "$(dpkg-query -W -f="\${db:Status-Status} " swiftlang libc6-dev)" = "installed installed " ] &&
        swiftc --version' 2>/dev/null
}

# Guard for the `rm -rf` calls below: never delete a tree that has something mounted inside it.
remove_tree() {
    if awk -v p="$1" '$5 == p || index($5, p "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        log "$1 has file systems mounted under it; unmount them and rerun"
        exit 1
    fi
    rm -rf --one-file-system "$1"
}

# The archive this machine already uses (it serves trixie too): the first non-security URI of
# debian.sources, else of sources.list. STARLING_SWIFT_MIRROR overrides it.
mirror_uri() {
    local uri=""
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '$1 == "URIs:" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp|file):/) { if ($i !~ /security/) { print $i; exit } break } }' /etc/apt/sources.list)
    fi
    echo "${STARLING_SWIFT_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (debootstrap, chroot and mount need it)"
    exit 1
fi

# One set-up at a time per root: two CI jobs starting together would otherwise both bootstrap it.
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9

if version=$(swift_version); then
    log "reusing $root"
    echo "$version"
    exit 0
fi

if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap on the host"
    # Refresh the package lists only when the install cannot find the package without it.
    { apt-get install -y -q --no-install-recommends debootstrap ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; }; } >&2
fi

# debootstrap builds into ROOT.partial and is renamed when complete, so an existing ROOT with apt
# in it is always a whole trixie base; a leftover ROOT.partial is from an interrupted run. It runs in
# its own mount namespace so that the /proc and /sys it mounts cannot outlive it if killed.
if [ ! -x "$root/usr/bin/apt-get" ]; then
    mirror=$(mirror_uri)
    bootstrap() {
        remove_tree "$root.partial"
        log "debootstrapping trixie into $root from $mirror (about a minute)"
        unshare --mount --propagation private -- \
            debootstrap --variant=minbase trixie "$root.partial" "$mirror" >&2
    }
    bootstrap || { log "debootstrap failed; retrying once from scratch"; bootstrap; }
    remove_tree "$root"
    mv "$root.partial" "$root"
fi

# `dpkg --configure -a` finishes an install that an earlier run left half done. libc6-dev is not a
# dependency of swiftlang, but without it every link fails with "cannot find Scrt1.o". Use-Pty=0
# because the root has no /dev/pts mounted. Progress goes to stderr: stdout is only the version.
log "installing swiftlang in $root (about 530 MB download, 2.6 GB on disk)"
in_root sh -c 'dpkg --configure -a &&
    apt-get update -q &&
    apt-get install -y -q -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 \
        --no-install-recommends swiftlang libc6-dev &&
    apt-get clean' >&2

if ! version=$(swift_version); then
    log "swiftc does not run in $root; remove it and rerun"
    exit 1
fi
log "ready in ${SECONDS}s: $root"
echo "$version"
