#!/usr/bin/env bash
# Builds ios/StarlingFFIC.xcframework, the native library for Apple platforms, and puts the
# matching generated Swift into the package. macOS with Xcode 16+ and rustup only.
#
#   ios/scripts/build-xcframework.sh
#
# Once the XCFramework exists, Package.swift uses it as the StarlingFFIC binary target, so the
# package builds for devices, simulators and macOS in Xcode or with `swift build`.
#
# Slices (static libraries, release profile: LTO, debug info stripped, panics unwind so the FFI
# layer can catch them):
#   ios-arm64                    aarch64-apple-ios
#   ios-arm64_x86_64-simulator   aarch64-apple-ios-sim + x86_64-apple-ios (lipo)
#   macos-arm64_x86_64           aarch64-apple-darwin + x86_64-apple-darwin (lipo), for
#                                `swift test` and macOS apps
# Headers: the uniffi-generated StarlingFFIC.h with a module map, in Headers/StarlingFFIC/ so
# that several uniffi XCFrameworks in one app do not collide on Headers/module.modulemap.
#
# Deployment targets follow Package.swift: iOS 15, macOS 12. Override the profile with
# PROFILE=debug (much larger, faster to build).
set -euo pipefail

if [ "$(uname -s)" != Darwin ]; then
    echo "build-xcframework: needs macOS with Xcode (xcodebuild, lipo)" >&2
    exit 2
fi

ios=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$ios/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
profile=${PROFILE:-release}
work=$target/xcframework
output=$ios/StarlingFFIC.xcframework
log() { echo "build-xcframework: $*" >&2; }

export IPHONEOS_DEPLOYMENT_TARGET=15.0
export MACOSX_DEPLOYMENT_TARGET=12.0

cd "$repo"
rust_targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${rust_targets[@]}" >/dev/null

# 1. The static library for every target. `cargo rustc --crate-type staticlib` skips the cdylib,
#    which apps do not use. The printed native-static-libs are what the app must link besides
#    the library (today only libSystem, which every app links anyway).
for rust_target in "${rust_targets[@]}"; do
    log "building $rust_target ($profile)"
    cargo rustc --quiet -p starling-ffi --lib --crate-type staticlib --profile "$profile" \
        --target "$rust_target" -- --print native-static-libs
done
# Cargo names the directory of the dev profile `debug`.
profile_dir=$profile
[ "$profile" = dev ] && profile_dir=debug
lib() { echo "$target/$1/$profile_dir/libstarling_ffi.a"; }

# 2. Bindings, generated from a host build with the workspace's pinned uniffi-bindgen, so that
#    they match the library (scripts/generate-bindings.sh does the same on Linux).
log "generating the Swift bindings"
cargo build --quiet -p starling-ffi -p uniffi-bindgen
rm -rf "$work"
mkdir -p "$work/swift" "$work/headers/StarlingFFIC" "$work/ios-simulator" "$work/macos"
"$target/debug/uniffi-bindgen" generate --library "$target/debug/libstarling_ffi.dylib" \
    --language swift --out-dir "$work/swift" --no-format >/dev/null
cp "$work/swift/StarlingFFIC.h" "$work/headers/StarlingFFIC/"
cat >"$work/headers/StarlingFFIC/module.modulemap" <<'EOF'
module StarlingFFIC {
    header "StarlingFFIC.h"
    export *
}
EOF

# 3. One library per platform: lipo the two simulator and the two macOS architectures.
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" \
    -output "$work/ios-simulator/libstarling_ffi.a"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" \
    -output "$work/macos/libstarling_ffi.a"

# 4. The XCFramework, replacing an older one.
rm -rf "$output"
xcodebuild -create-xcframework \
    -library "$(lib aarch64-apple-ios)" -headers "$work/headers" \
    -library "$work/ios-simulator/libstarling_ffi.a" -headers "$work/headers" \
    -library "$work/macos/libstarling_ffi.a" -headers "$work/headers" \
    -output "$output" >/dev/null

# 5. The generated Swift that goes with it (gitignored, like the header scripts/test.sh copies).
mkdir -p "$ios/Sources/StarlingFFI"
cp "$work/swift/StarlingFFI.swift" "$ios/Sources/StarlingFFI/StarlingFFI.swift"
cp "$work/swift/StarlingFFIC.h" "$ios/Sources/StarlingFFIC/StarlingFFIC.h"

log "wrote $output"
