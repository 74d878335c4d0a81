#!/usr/bin/env bash
# Builds the native library (debug, host) and generates its Kotlin and Swift bindings with the
# workspace's own uniffi-bindgen, so the generated code always matches the library. Also builds
# the server binary, which the Kotlin and Swift tests start on loopback.
#   target/uniffi/kotlin/dev/starling/internal/starling_ffi.kt
#   target/uniffi/swift/{StarlingFFI.swift, StarlingFFIC.h, StarlingFFIC.modulemap}
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

cargo build --quiet -p starling-ffi -p uniffi-bindgen -p starling-server
case "$(uname -s)" in
  Darwin) lib="$target/debug/libstarling_ffi.dylib" ;;
  *) lib="$target/debug/libstarling_ffi.so" ;;
esac
# Generate beside the old output and swap it in at the end, so a build reading it never sees a
# half-written tree.
staging="$(mktemp -d "$target/uniffi.XXXXXX")"
for language in kotlin swift; do
  "$target/debug/uniffi-bindgen" generate --library "$lib" --language "$language" \
    --out-dir "$staging/$language" --no-format >/dev/null
done
rm -rf "$target/uniffi"
mv "$staging" "$target/uniffi"
echo "generate-bindings: $target/uniffi/{kotlin,swift} from $lib"
