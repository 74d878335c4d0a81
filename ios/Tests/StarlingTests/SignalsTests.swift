import Foundation
import Starling
import XCTest

private let minute: TimeInterval = 60

/// Signals through the Swift API, against the real native library.
final class SignalsTests: XCTestCase {
    /// Newest event time of ``trackActivity(_:)``: a whole minute, a minute ago, so that no
    /// event is in the future.
    private let now = Date(
        timeIntervalSince1970: (Date().timeIntervalSince1970 / minute).rounded(.down) * minute
            - minute)

    private let signals: [Starling.Signal] = [
        .windowedCount("views_1h", event: "screen_view", window: 60 * minute),
        .windowedCount(
            "home_views_1h", event: "screen_view", window: 60 * minute, granularity: minute,
            filter: .init("screen", equals: "home")),
        .movingAverage("views_rate", event: "screen_view", halfLife: 10 * minute),
        .movingAverage(
            "amount_avg", event: "purchase", halfLife: 10 * minute, property: "amount"),
        .session("sessions"),
        .session("session_length", measure: .currentLengthMs),
        .session("screens_this_session", measure: .currentEvents, event: "screen_view"),
        .surge("search_surge", event: "search", bucket: minute),
        .distinctCount("screens_seen", event: "screen_view", property: "screen"),
        .heavyHitters("top_screens", event: "screen_view", property: "screen", k: 2),
    ]

    private func signalConfiguration(_ directory: URL) -> Starling.Configuration {
        var config = configuration(directory)
        config.signals = signals
        return config
    }

    private func openWithConsent(_ configuration: Starling.Configuration) throws -> Starling {
        let starling = try Starling.open(configuration)
        try starling.setConsent(true)
        return starling
    }

    /// A home screen two hours before ``now``, then home, settings and home again 20, 10 and 0
    /// minutes before it, with purchases of 10 and 20 at the last two.
    private func trackActivity(_ starling: Starling) async throws {
        try starling.track("screen_view", properties: ["screen": "home"], at: now - 120 * minute)
        try starling.track("screen_view", properties: ["screen": "home"], at: now - 20 * minute)
        try starling.track(
            "screen_view", properties: ["screen": "settings"], at: now - 10 * minute)
        try starling.track("purchase", properties: ["amount": 10], at: now - 10 * minute)
        try starling.track("screen_view", properties: ["screen": "home"], at: now)
        try starling.track("purchase", properties: ["amount": 20.0], at: now)
        try await starling.flush()
    }

    func testEveryKindOfSignalReadsTheValueItsEventsImply() async throws {
        let starling = try openWithConsent(signalConfiguration(try temporaryDirectory(self)))
        let empty = try starling.signals()
        XCTAssertEqual(empty.names, signals.map(\.name))
        XCTAssertNil(empty.watermark)

        try await trackActivity(starling)
        let s = try starling.signals()

        XCTAssertEqual(s.watermark, now)
        XCTAssertEqual(s.eventsApplied, 6)
        XCTAssertEqual(s.eventsTooLate, 0)
        // The event of two hours ago is outside the hour; of the three inside, two are home.
        XCTAssertEqual(s["views_1h"], 3)
        XCTAssertEqual(s["home_views_1h"], 2)
        // Weights halve every 10 minutes: 2^-12 + 2^-2 + 2^-1 + 1.
        XCTAssertEqual(try s.value("views_rate"), 1.750244140625, accuracy: 1e-12)
        // The decayed mean of 10 (weight 1/2) and 20 (weight 1).
        XCTAssertEqual(try s.value("amount_avg"), 50.0 / 3.0, accuracy: 1e-12)
        // The gap of 100 minutes ends the first session; the second is 20 minutes long and holds
        // three screen views.
        XCTAssertEqual(s["sessions"], 2)
        XCTAssertEqual(s["session_length"], 20 * 60_000)
        XCTAssertEqual(s["screens_this_session"], 3)
        // No search ever: still warming up.
        XCTAssertEqual(s["search_surge"], 0)
        XCTAssertEqual(try s.trend("search_surge"), .steady)
        XCTAssertNil(try s.trend("views_1h"), "only surge signals have a trend")
        // Linear counting over 1024 registers overestimates 2 values by about 2²/2048.
        XCTAssertEqual(try s.value("screens_seen"), 2, accuracy: 0.01)
        XCTAssertEqual(
            try s.topValues("top_screens"),
            [.init(value: "home", count: 3), .init(value: "settings", count: 1)])
        XCTAssertEqual(s["top_screens"], 3, "the value is the top count")

        XCTAssertEqual(
            try starling.featureVector(["home_views_1h", "views_1h", "sessions"]), [2, 3, 2])
        try starling.close()
    }

    func testAnEventMoreThanTheAllowedLatenessBehindChangesNoSignal() async throws {
        let starling = try openWithConsent(signalConfiguration(try temporaryDirectory(self)))
        try await trackActivity(starling)
        let before = try starling.signals()
        try starling.track("screen_view", properties: ["screen": "late"], at: now - 6 * minute)
        try await starling.flush()
        let after = try starling.signals()
        XCTAssertEqual(after.eventsTooLate, 1)
        XCTAssertEqual(after.values, before.values)
        XCTAssertEqual(try starling.diagnostics().eventsCommitted, 7, "it is still stored")
        try starling.close()
    }

    func testUnknownSignalNamesAreNotFound() throws {
        let starling = try openWithConsent(signalConfiguration(try temporaryDirectory(self)))
        let reason = assertThrows(
            StarlingError.notFound, try starling.featureVector(["views_1h", "views_1d"]))
        XCTAssertTrue(reason?.contains("\"views_1d\"") == true, reason ?? "")
        let snapshot = try starling.signals()
        XCTAssertNil(snapshot["views_1d"])
        XCTAssertEqual(
            assertThrows(StarlingError.notFound, try snapshot.value("views_1d")),
            "no signal called \"views_1d\" is defined")
        try starling.close()
    }

    func testSignalsContinueAfterReopening() async throws {
        let directory = try temporaryDirectory(self)
        let first = try openWithConsent(signalConfiguration(directory))
        try await trackActivity(first)
        let before = try first.signals()
        try first.close()

        let second = try Starling.open(signalConfiguration(directory))
        XCTAssertEqual(try second.signals(), before)
        try second.track("screen_view", properties: ["screen": "home"], at: now)
        try await second.flush()
        XCTAssertEqual(try second.signals()["views_1h"], 4)
        try second.close()
    }

    func testBadDefinitionsAreInvalidConfigurationsNamingTheSignal() throws {
        let directory = try temporaryDirectory(self)
        func refused(_ definitions: [Starling.Signal]) -> String {
            var config = configuration(directory)
            config.signals = definitions
            return assertThrows(StarlingError.invalidConfiguration, try Starling.open(config)) ?? ""
        }

        let zero = refused([.windowedCount("views", event: "screen_view", window: 0)])
        XCTAssertTrue(
            zero.contains(
                "signal \"views\": window_ms and granularity_ms must be greater than zero"), zero)
        let negative = refused([.movingAverage("rate", event: "screen_view", halfLife: -1)])
        XCTAssertTrue(
            negative.contains("signal \"rate\": halfLife must be a finite number"), negative)
        let infinite = refused([.session("s", timeout: .infinity)])
        XCTAssertTrue(infinite.contains("signal \"s\": timeout"), infinite)
        let k = refused([.heavyHitters("top", event: "screen_view", property: "screen", k: 0)])
        XCTAssertTrue(k.contains("signal \"top\": k must be between 1 and 100"), k)
        let twice = refused([.session("s"), .session("s", measure: .currentEvents)])
        XCTAssertTrue(twice.contains("two signals are called \"s\""), twice)
    }
}
