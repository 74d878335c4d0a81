#!/usr/bin/env bash
# Runs a command inside the Swift root made by scripts/setup-swift.sh:
#
#   scripts/in-swift-root.sh DIR -- CMD [ARG...]
#
# The host directory DIR is bind-mounted at the same absolute path inside the root and CMD runs
# there, so paths given to and printed by the compiler mean the same on both sides. Build the Rust
# library on the host (Debian 12 binaries run in trixie, not the reverse) and the Swift side here.
#
# The mounts are made in a private mount namespace: the kernel drops them when CMD ends, however it
# ends, so nothing is left mounted under the root, concurrent calls do not see each other's mounts,
# and deleting the root can never reach into DIR. The exit status is CMD's.

# The `sh -c` scripts below are single-quoted on purpose: they expand inside the namespace/chroot.
# shellcheck disable=SC2016
set -euo pipefail

root=${STARLING_SWIFT_ROOT:-/opt/starling/swift-root}

if [ $# -lt 3 ] || [ "$2" != "--" ]; then
    echo "usage: $0 DIR -- CMD [ARG...]" >&2
    exit 2
fi
dir=$(realpath -e "$1")
shift 2
if [ "$dir" = / ]; then
    echo "in-swift-root: DIR must not be /" >&2
    exit 2
fi
if [ ! -x "$root/usr/bin/swiftc" ]; then
    echo "in-swift-root: no Swift in $root; run scripts/setup-swift.sh first" >&2
    exit 2
fi

# The mount point has to exist inside the root; the empty directory left behind is harmless.
mkdir -p "$root$dir"

# Start from a clean environment: host values such as PATH or TMPDIR may name things that do not
# exist in trixie. Only these cross over; pass others as `env VAR=value CMD` after the `--`.
vars=(PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8)
for var in LD_LIBRARY_PATH TERM CI; do
    if [ -n "${!var-}" ]; then
        vars+=("$var=${!var}")
    fi
done

# /proc: swiftc locates its runtime libraries through /proc/self/exe.
exec unshare --mount --propagation private -- sh -c '
    set -e
    root=$1 dir=$2
    shift 2
    mount -t proc proc "$root/proc"
    mount --bind "$dir" "$root$dir"
    exec chroot "$root" env -i -C "$dir" "$@"
' sh "$root" "$dir" "${vars[@]}" "$@"
