import Foundation
import StarlingFFI
import XCTest

@testable import Starling

/// What the generated bindings receive for signal and bandit definitions: seconds become
/// milliseconds, each case its native counterpart, and the defaults are the core's. (This file
/// imports StarlingFFI, so the SDK's own types are named through `Starling.` members.)
final class PersonalizationMappingTests: XCTestCase {
    func testSignalKindsMapToTheNativeDefinitions() throws {
        let filter = Starling.Signal.PropertyFilter("screen", equals: "home")
        XCTAssertEqual(
            try Starling.Signal.windowedCount(
                "views", event: "screen_view", window: 3600, granularity: 60, filter: filter
            ).ffiSignal(),
            SignalDefinition(
                name: "views",
                kind: .windowedCount(
                    event: "screen_view", filterKey: "screen", filterValue: .text(value: "home"),
                    windowMs: 3_600_000, granularityMs: 60_000)))
        XCTAssertEqual(
            try Starling.Signal.session("length", measure: .currentLengthMs).ffiSignal().kind,
            .session(
                event: nil, timeoutMs: 1_800_000, maxLengthMs: 14_400_000,
                measure: .currentLengthMs, emitEvents: false))
        // The SDK's defaults are the core's.
        XCTAssertEqual(
            try Starling.Signal.session("s").ffiSignal(),
            StarlingFFI.defaultSessionSignal(name: "s", measure: .count))
        XCTAssertEqual(
            try Starling.Signal.movingAverage("avg", event: "buy", halfLife: 0.25, property: "x")
                .ffiSignal().kind,
            .movingAverage(event: "buy", property: "x", halfLifeMs: 250))
        XCTAssertEqual(
            try Starling.Signal.surge("s", event: "search", bucket: 60).ffiSignal().kind,
            .surge(
                event: "search", bucketMs: 60_000, baselineHalfLifeBuckets: 24, warmupBuckets: 24,
                thresholdZ: 3))
        XCTAssertEqual(
            try Starling.Signal.heavyHitters("top", event: "e", property: "p").ffiSignal().kind,
            .heavyHitters(event: "e", property: "p", k: 10))
    }

    func testABanditWithDefaultsIsTheCoresDefaultBandit() throws {
        let bandit = Starling.Bandit("b", policy: .thompsonBeta(), arms: ["x", "y"])
        XCTAssertEqual(
            try bandit.ffiBandit(),
            StarlingFFI.defaultBandit(
                name: "b", policy: .thompsonBeta(priorAlpha: 1, priorBeta: 1), arms: ["x", "y"]))

        var tuned = Starling.Bandit(
            "feed", policy: .linUCB(dimensions: 3, alpha: 2), arms: ["a"],
            rewardEvent: .init("purchase", valueProperty: "amount"), contextSignals: ["views"])
        tuned.attributionWindow = 90
        tuned.usesFleetPrior = false
        tuned.learningTask = "purchases"
        let ffi = try tuned.ffiBandit()
        XCTAssertEqual(ffi.learningTask, "purchases")
        XCTAssertNil(try bandit.ffiBandit().learningTask)
        XCTAssertEqual(ffi.policy, .linUcb(dims: 3, alpha: 2, ridge: 1))
        XCTAssertEqual(ffi.rewardEvent, "purchase")
        XCTAssertEqual(ffi.rewardProperty, "amount")
        XCTAssertEqual(ffi.attributionWindowMs, 90_000)
        XCTAssertEqual(ffi.contextSignals, ["views"])
        XCTAssertFalse(ffi.useFleetPrior)
    }

    func testTheConfigurationCarriesSignalsBanditsAndTheLateness() throws {
        var configuration = Starling.Configuration(
            dataDirectory: FileManager.default.temporaryDirectory)
        XCTAssertEqual(configuration.signalAllowedLateness, 300)
        configuration.signals = [.distinctCount("screens", event: "screen_view", property: "s")]
        configuration.bandits = [.init("b", policy: .ucb1(), arms: ["x"])]
        configuration.signalAllowedLateness = 60
        let ffi = try configuration.ffiConfig()
        XCTAssertEqual(ffi.signals.map(\.name), ["screens"])
        XCTAssertEqual(ffi.bandits.map(\.policy), [.ucb1(exploration: 2.0.squareRoot())])
        XCTAssertEqual(ffi.signalAllowedLatenessMs, 60_000)
    }
}
