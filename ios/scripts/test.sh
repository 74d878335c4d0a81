#!/usr/bin/env bash
# Runs the Swift package's tests (XCTest) against the real native library and a real
# starling-server on loopback. `make test-swift` calls it after scripts/generate-bindings.sh;
# by hand, from the repository root:
#
#   scripts/generate-bindings.sh && ios/scripts/test.sh [extra `swift test` arguments]
#
# Steps:
#   1. copy the generated Swift and C header from ${CARGO_TARGET_DIR:-target}/uniffi/swift into
#      the package (Sources/StarlingFFI, Sources/StarlingFFIC; both gitignored), and the host
#      library and server binary into ios/.native (gitignored);
#   2. Linux: make sure the Swift root exists (scripts/setup-swift.sh, a second when it does) and
#      run `swift test` inside it (scripts/in-swift-root.sh), since Debian 12 has no Swift;
#      macOS: run `swift test` directly with the Xcode toolchain;
#   3. Linux, when the tests passed: type-check the Apple-only glue, which #if compiles out there,
#      against iOS stand-ins (scripts/typecheck-apple-glue.sh; STARLING_SKIP_APPLE_TYPECHECK=1
#      skips it).
# Either way the library is found through `-Xlinker -L.native` at link time and an rpath to
# .native at run time (and LD_LIBRARY_PATH on Linux), so Package.swift needs no unsafe flags.
#
# Exits with `swift test`'s status, or the type-check's when the tests passed.
# STARLING_SWIFT_ROOT overrides the Swift root (see scripts/setup-swift.sh).
set -euo pipefail

ios=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$ios/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
generated=$target/uniffi/swift
native=$ios/.native
log() { echo "test-swift: $*" >&2; }

case $(uname -s) in
    Darwin) library=libstarling_ffi.dylib ;;
    *) library=libstarling_ffi.so ;;
esac
for file in "$generated/StarlingFFI.swift" "$generated/StarlingFFIC.h" "$target/debug/$library" \
    "$target/debug/starling-server"; do
    if [ ! -f "$file" ]; then
        log "missing $file; run scripts/generate-bindings.sh (or make bindings) first"
        exit 2
    fi
done

# The committed module map must name the header uniffi generated; a mismatch means uniffi's
# naming changed and Sources/StarlingFFIC/module.modulemap needs the same change.
if ! grep -q 'header "StarlingFFIC.h"' "$generated/StarlingFFIC.modulemap"; then
    log "uniffi's StarlingFFIC.modulemap no longer uses StarlingFFIC.h; update Sources/StarlingFFIC/module.modulemap"
    exit 2
fi

# Copies only when the content changed, so that SwiftPM's incremental build stays warm.
sync_file() {
    if ! cmp -s "$1" "$2"; then
        cp -f "$1" "$2.tmp" && mv -f "$2.tmp" "$2"
    fi
}
mkdir -p "$ios/Sources/StarlingFFI" "$native"
sync_file "$generated/StarlingFFI.swift" "$ios/Sources/StarlingFFI/StarlingFFI.swift"
sync_file "$generated/StarlingFFIC.h" "$ios/Sources/StarlingFFIC/StarlingFFIC.h"
sync_file "$target/debug/starling-server" "$native/starling-server"
sync_file "$target/debug/$library" "$native/$library"
chmod +x "$native/starling-server"

linker_flags=(-Xlinker -L"$native" -Xlinker -rpath -Xlinker "$native")
# The tests are XCTest; without this, swift-testing adds a "0 tests passed" line of its own.
test_flags=(--disable-swift-testing)
step="swift test"

case $(uname -s) in
    Darwin)
        # A cargo-built dylib names its own build path as install name; make it @rpath-relative
        # so the test bundle finds the copy in .native through the rpath above. (DYLD_* variables
        # would be stripped by System Integrity Protection on the way to xctest.) Editing the
        # file voids its ad-hoc signature, which Apple silicon requires, so sign it again.
        install_name_tool -id "@rpath/$library" "$native/$library" 2>/dev/null
        codesign --force --sign - "$native/$library"
        if [ -d "$ios/StarlingFFIC.xcframework" ]; then
            log "note: StarlingFFIC.xcframework exists, so the tests link it instead of $native/$library"
        fi
        cd "$ios"
        status=0
        swift test "${test_flags[@]}" "${linker_flags[@]}" "$@" || status=$?
        ;;
    *)
        "$repo/scripts/setup-swift.sh" >/dev/null
        # The compiler leaves empty TemporaryDirectory.* folders behind, and the tests make their
        # own: keep both in the gitignored build folder, emptied at each run, rather than in the
        # shared root's /tmp.
        tmp=$ios/.build/tmp
        rm -rf "$tmp" && mkdir -p "$tmp"
        status=0
        "$repo/scripts/in-swift-root.sh" "$ios" -- env LD_LIBRARY_PATH="$native" TMPDIR="$tmp" \
            swift test "${test_flags[@]}" "${linker_flags[@]}" "$@" || status=$?
        # The Apple-only glue is compiled out above; type-check it against iOS stand-ins (~5 s).
        if [ "$status" -eq 0 ] && [ -z "${STARLING_SKIP_APPLE_TYPECHECK-}" ]; then
            step="the Apple glue type-check"
            "$repo/scripts/in-swift-root.sh" "$ios" -- env TMPDIR="$tmp" \
                "$ios/scripts/typecheck-apple-glue.sh" || status=$?
        fi
        ;;
esac

if [ "$status" -ne 0 ]; then
    log "$step failed (exit status $status)"
fi
exit "$status"
