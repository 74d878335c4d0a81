#!/usr/bin/env bash
# Type-checks the Apple-only glue (Sources/Starling/Platform/) on Linux, where `#if canImport(UIKit)`,
# `#if canImport(BackgroundTasks)` and `#if canImport(os)` otherwise compile it out, so that a typo
# or a Swift 6 concurrency mistake there fails CI rather than the first Xcode build.
#
# It compiles small stand-ins for UIKit, BackgroundTasks and os (scripts/apple-stubs/, with the
# iOS 18 SDK's signatures, isolation and Sendable annotations for exactly the API the glue uses)
# into ios/.build/apple-stubs, then type-checks the whole Starling module against them in Swift 6
# mode. It checks the glue's Swift, not the SDK's behaviour: build in Xcode before a release.
#
# Runs where `swiftc` is: scripts/test.sh calls it inside the Swift root after `swift test`, which
# builds the StarlingFFI module it needs. Exit status 0 when the glue type-checks.
set -euo pipefail

ios=$(cd "$(dirname "$0")/.." && pwd)
modules=$(find "$ios/.build" -path '*/debug/Modules' -type d | head -n 1)
if [ -z "$modules" ] || [ ! -e "$modules/StarlingFFI.swiftmodule" ]; then
    echo "typecheck-apple-glue: build the package first (swift build or swift test)" >&2
    exit 2
fi
stubs=$ios/.build/apple-stubs
mkdir -p "$stubs"

for module in UIKit os BackgroundTasks; do
    swiftc -swift-version 6 -parse-as-library -emit-module -module-name "$module" \
        -I "$stubs" "$ios/scripts/apple-stubs/$module.swift" -o "$stubs/$module.swiftmodule"
done
swiftc -typecheck -swift-version 6 -module-name Starling -I "$stubs" -I "$modules" \
    -I "$ios/Sources/StarlingFFIC" "$ios"/Sources/Starling/*.swift "$ios"/Sources/Starling/Platform/*.swift
echo "typecheck-apple-glue: Sources/Starling/Platform type-checks against the iOS stand-ins" >&2
