// swift-tools-version:6.0
//
// Starling for Swift: the hand-written `Starling` module over the uniffi-generated bindings of the
// Rust library `starling_ffi`.
//
//   StarlingFFIC   C declarations of the Rust library (a Clang module)
//   StarlingFFI    the generated Swift bindings; copied in by scripts/test.sh, not checked in
//   Starling       the public API; apps import only this
//
// Where the Rust library comes from:
//
// * Apple platforms (apps): `scripts/build-xcframework.sh` (macOS) builds
//   `StarlingFFIC.xcframework` next to this file, with static libraries for iOS devices, the iOS
//   simulator and macOS. When that folder exists, StarlingFFIC is a binary target and nothing
//   else is needed.
// * Linux and macOS without the XCFramework (tests): StarlingFFIC is a system library whose
//   module map links `starling_ffi`; `scripts/test.sh` copies the host build into `.native/` and
//   passes `-Xlinker -L.native -Xlinker -rpath -Xlinker .native` to `swift test`, so this
//   manifest needs no unsafe flags.

import Foundation
import PackageDescription

let xcframework = "StarlingFFIC.xcframework"
let useXCFramework = FileManager.default.fileExists(
    atPath: Context.packageDirectory + "/" + xcframework)

let nativeLibrary: Target =
    useXCFramework
    ? .binaryTarget(name: "StarlingFFIC", path: xcframework)
    : .systemLibrary(name: "StarlingFFIC", path: "Sources/StarlingFFIC")

let package = Package(
    name: "Starling",
    platforms: [.iOS(.v15), .macOS(.v12), .tvOS(.v15), .visionOS(.v1)],
    products: [
        .library(name: "Starling", targets: ["Starling"])
    ],
    targets: [
        nativeLibrary,
        .target(
            name: "StarlingFFI",
            dependencies: ["StarlingFFIC"],
            exclude: ["README.md"]
        ),
        .target(
            name: "Starling",
            dependencies: ["StarlingFFI"]
        ),
        .testTarget(
            name: "StarlingTests",
            // StarlingFFI too, only to check how Swift values map onto the generated types.
            dependencies: ["Starling", "StarlingFFI"]
        ),
    ]
)
