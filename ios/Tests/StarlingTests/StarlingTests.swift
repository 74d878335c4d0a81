import Foundation
import Starling
import XCTest

/// The API on its own, without a server: errors and their reasons, consent, the device id,
/// closing, and the configuration.
final class StarlingTests: XCTestCase {
    private func openWithConsent() throws -> Starling {
        let starling = try Starling.open(configuration(try temporaryDirectory(self)))
        try starling.setConsent(true)
        return starling
    }

    func testInvalidEventsAreRejectedWithTheirReason() throws {
        let starling = try openWithConsent()

        let badName = assertThrows(StarlingError.invalidEvent, try starling.track("Screen View"))
        XCTAssertTrue(badName?.contains("\"Screen View\" is not allowed") == true, badName ?? "")

        let notANumber = assertThrows(
            StarlingError.invalidEvent,
            try starling.track("scroll", properties: ["depth": .double(.nan)]))
        XCTAssertTrue(notANumber?.contains("not a finite number") == true, notANumber ?? "")

        let tooEarly = Date(timeIntervalSince1970: 0)
        assertThrows(StarlingError.invalidEvent, try starling.track("launch", at: tooEarly))
        XCTAssertEqual(try starling.diagnostics().eventsRejectedInvalid, 3)
    }

    func testErrorsDescribeThemselvesWithTheirReason() {
        let error = StarlingError.noConsent(reason: "consent has not been granted")
        XCTAssertEqual(error.localizedDescription, "consent has not been granted")
        XCTAssertEqual(error.reason, "consent has not been granted")
    }

    func testClosedInstanceRefusesCalls() async throws {
        let starling = try openWithConsent()
        try starling.track("launch")
        try starling.close()
        try starling.close()  // closing twice is fine

        assertThrows(StarlingError.closed, try starling.track("launch"))
        await assertThrowsAsync(StarlingError.closed) { try await starling.flush() }
        assertThrows(StarlingError.closed, try starling.diagnostics())
    }

    func testSyncWithoutServerThrowsNoServer() async throws {
        let starling = try openWithConsent()
        await assertThrowsAsync(StarlingError.noServer) { try await starling.sync() }
    }

    func testWithdrawingConsentDeletesQueuedEvents() async throws {
        let starling = try openWithConsent()
        try starling.track("launch")
        try starling.track("launch")
        try await starling.flush()

        try starling.setConsent(false)
        XCTAssertFalse(starling.consent)
        let diagnostics = try starling.diagnostics()
        XCTAssertEqual(diagnostics.eventsDeletedByConsent, 2)
        XCTAssertEqual(diagnostics.eventsUnsealed + diagnostics.eventsBatched, 0)
    }

    func testDeviceIDIsStableUntilReset() throws {
        let directory = try temporaryDirectory(self)
        let starling = try Starling.open(configuration(directory))
        let first = try starling.deviceID
        XCTAssertFalse(first.isEmpty)
        XCTAssertEqual(try starling.deviceID, first)

        let second = try starling.resetDeviceID()
        XCTAssertNotEqual(second, first)
        XCTAssertEqual(try starling.deviceID, second)
        try starling.close()

        XCTAssertEqual(
            try Starling.open(configuration(directory)).deviceID, second, "the id is persisted")
    }

    func testDefaultsMirrorTheCore() throws {
        let directory = try temporaryDirectory(self)
        let configuration = Starling.Configuration(dataDirectory: directory)
        XCTAssertEqual(configuration.dataDirectory, directory)
        XCTAssertNil(configuration.serverURL)
        XCTAssertEqual(configuration.apiKey, "")
        XCTAssertEqual(configuration.schemaVersion, 1)
        XCTAssertEqual(configuration.flushInterval, 0.5)
        XCTAssertEqual(configuration.maxStoreBytes, 16 * 1024 * 1024)
        XCTAssertEqual(configuration.maxAge, 30 * 24 * 3600)
        XCTAssertEqual(configuration.batchMaxEvents, 500)
        XCTAssertEqual(configuration.uploadTimeout, 20)
        XCTAssertEqual(configuration.backoffInitial, 30)
        XCTAssertEqual(configuration.backoffMax, 3600)
        XCTAssertNil(configuration.backgroundSyncInterval)
        XCTAssertEqual(Starling.Configuration.defaultDataDirectory.lastPathComponent, "Starling")
        XCTAssertFalse(Starling.sdkVersion.isEmpty)
    }

    func testInvalidConfigurationsAreRejected() throws {
        let directory = try temporaryDirectory(self)

        var negative = Starling.Configuration(dataDirectory: directory)
        negative.flushInterval = -1
        let swiftSide = assertThrows(
            StarlingError.invalidConfiguration, try Starling.open(negative))
        XCTAssertTrue(swiftSide?.contains("flushInterval") == true, swiftSide ?? "")

        let ftp = Starling.Configuration(
            dataDirectory: directory, serverURL: URL(string: "ftp://example.com"))
        let coreSide = assertThrows(StarlingError.invalidConfiguration, try Starling.open(ftp))
        XCTAssertTrue(coreSide?.contains("https://") == true, coreSide ?? "")

        var noBatches = Starling.Configuration(dataDirectory: directory)
        noBatches.batchMaxEvents = 0
        assertThrows(StarlingError.invalidConfiguration, try Starling.open(noBatches))
    }

    func testDescriptionHidesTheAPIKey() throws {
        let configuration = Starling.Configuration(
            dataDirectory: try temporaryDirectory(self),
            serverURL: URL(string: "https://starling.example.com"), apiKey: "sk_secret")
        XCTAssertFalse(configuration.description.contains("sk_secret"))
        XCTAssertFalse(String(reflecting: configuration).contains("sk_secret"))
        XCTAssertTrue(configuration.description.contains("https://starling.example.com"))
    }
}
