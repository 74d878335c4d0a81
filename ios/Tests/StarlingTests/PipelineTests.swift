import Foundation
import Starling
import XCTest

/// The whole path against a real `starling-server` on loopback: track, flush, sync, and what the
/// server then holds.
final class PipelineTests: XCTestCase {
    private var server: TestServer!

    override func setUp() async throws {
        server = try await TestServer()
    }

    override func tearDown() async throws {
        await server?.stop()
        server = nil
    }

    func testEveryPropertyTypeReachesTheServer() async throws {
        let starling = try Starling.open(
            configuration(try temporaryDirectory(self), server: server))
        try starling.setConsent(true)

        let published = Date(timeIntervalSince1970: 1_700_000_000.123)
        for screen in ["home", "search"] {
            try starling.track(
                "screen_view",
                properties: [
                    "screen": .string(screen),
                    "items": .int(12),
                    "scroll_depth": .double(0.75),
                    "from_push": .bool(false),
                    "published": .date(published),
                ])
        }
        try starling.track(
            "purchase", properties: ["sku": "b-42", "quantity": 2, "price": 9.99, "gift": true],
            at: Date().addingTimeInterval(-60))
        try await starling.flush()
        let report = try await starling.sync()

        XCTAssertNil(report.lastError)
        XCTAssertEqual(report.eventsSent, 3)
        XCTAssertGreaterThanOrEqual(report.batchesSent, 1)
        XCTAssertEqual(report.eventsPending, 0)
        XCTAssertEqual(report.batchesPending, 0)
        XCTAssertNil(report.retryAt)
        let stats = try await server.stats()
        XCTAssertEqual(stats.eventsByName, ["screen_view": 2, "purchase": 1])
        let diagnostics = try starling.diagnostics()
        XCTAssertEqual(diagnostics.eventsSent, 3)
        XCTAssertEqual(diagnostics.eventsCommitted, 3)
        XCTAssertGreaterThan(diagnostics.bytesSent, 0)
        try starling.close()
    }

    func testWithoutConsentNothingIsRecordedOrSent() async throws {
        let starling = try Starling.open(
            configuration(try temporaryDirectory(self), server: server))
        XCTAssertFalse(starling.consent, "consent starts as not granted")

        assertThrows(
            StarlingError.noConsent,
            try starling.track("screen_view", properties: ["screen": "home"]))
        await assertThrowsAsync(StarlingError.noConsent) { try await starling.sync() }

        try starling.setConsent(true)
        XCTAssertTrue(starling.consent)
        let report = try await starling.sync()
        XCTAssertEqual(report.eventsSent, 0)
        XCTAssertEqual(report.eventsPending, 0)
        XCTAssertEqual(try starling.diagnostics().eventsCommitted, 0)
        let stats = try await server.stats()
        XCTAssertEqual(stats.events, 0)
        XCTAssertEqual(stats.eventsByName, [:])
    }

    func testReopenedInstanceKeepsUnsentEvents() async throws {
        let directory = try temporaryDirectory(self)
        do {
            let starling = try Starling.open(configuration(directory, server: server))
            try starling.setConsent(true)
            for step in 1...3 {
                try starling.track("onboarding.step", properties: ["step": .int(step)])
            }
            try await starling.flush()
            try starling.close()
        }

        let reopened = try Starling.open(configuration(directory, server: server))
        XCTAssertTrue(reopened.consent, "consent is persisted")
        let diagnostics = try reopened.diagnostics()
        XCTAssertEqual(diagnostics.eventsUncommitted, 0)
        XCTAssertEqual(diagnostics.eventsUnsealed + diagnostics.eventsBatched, 3)

        let report = try await reopened.sync()
        XCTAssertNil(report.lastError)
        XCTAssertEqual(report.eventsSent, 3)
        let stats = try await server.stats()
        XCTAssertEqual(stats.eventsByName, ["onboarding.step": 3])
    }

    func testWrongAPIKeyKeepsEventsPending() async throws {
        let directory = try temporaryDirectory(self)
        do {
            let starling = try Starling.open(
                configuration(directory, server: server, apiKey: "sk_wrong"))
            try starling.setConsent(true)
            try starling.track("screen_view", properties: ["screen": "home"])
            try starling.track("screen_view", properties: ["screen": "search"])
            try await starling.flush()

            let report = try await starling.sync()
            let lastError = try XCTUnwrap(report.lastError)
            XCTAssertTrue(lastError.contains("401"), lastError)
            XCTAssertEqual(report.eventsSent, 0)
            XCTAssertEqual(report.eventsPending, 2)
            XCTAssertNotNil(report.retryAt)
            let stats = try await server.stats()
            XCTAssertEqual(stats.events, 0)
            try starling.close()
        }

        // With the right key, once the (short, test-sized) backoff has passed, the kept events go.
        let fixed = try Starling.open(configuration(directory, server: server))
        try await Task.sleep(nanoseconds: 300_000_000)
        let report = try await fixed.sync()
        XCTAssertNil(report.lastError)
        XCTAssertEqual(report.eventsSent, 2)
        let stats = try await server.stats()
        XCTAssertEqual(stats.eventsByName, ["screen_view": 2])
    }

    func testConcurrentTrackingFromManyTasks() async throws {
        let starling = try Starling.open(
            configuration(try temporaryDirectory(self), server: server))
        try starling.setConsent(true)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    for index in 0..<50 {
                        try starling.track(
                            "tap", properties: ["worker": .int(worker), "index": .int(index)])
                    }
                    try await starling.flush()
                }
            }
            try await group.waitForAll()
        }

        XCTAssertEqual(try starling.diagnostics().eventsCommitted, 200)
        let report = try await starling.sync()
        XCTAssertEqual(report.eventsSent, 200)
        let stats = try await server.stats()
        XCTAssertEqual(stats.eventsByName, ["tap": 200])
    }
}
