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

        let badName = assertThrowsStarlingError(try starling.track("Screen View")) {
            if case .invalidEvent = $0 { return true }
            return false
        }
        XCTAssertTrue(badName?.reason.contains("\"Screen View\" is not allowed") == true, "\(String(describing: badName))")

        let notANumber = assertThrowsStarlingError(
            try starling.track("scroll", properties: ["depth": .double(.nan)])
        ) {
            if case .invalidEvent = $0 { return true }
            return false
        }
        XCTAssertTrue(notANumber?.reason.contains("not a finite number") == true, "\(String(describing: notANumber))")
        XCTAssertEqual(notANumber?.localizedDescription, notANumber?.reason)

        assertThrowsStarlingError(try starling.track("launch", at: Date(timeIntervalSince1970: 0))) {
            if case .invalidEvent = $0 { return true }
            return false
        }
        XCTAssertEqual(try starling.diagnostics().eventsRejectedInvalid, 3)
    }

    func testClosedInstanceRefusesCalls() async throws {
        let starling = try openWithConsent()
        try starling.track("launch")
        try starling.close()
        try starling.close()  // closing twice is fine

        assertThrowsStarlingError(try starling.track("launch")) {
            if case .closed = $0 { return true }
            return false
        }
        await assertThrowsStarlingError({ try await starling.flush() }) {
            if case .closed = $0 { return true }
            return false
        }
        assertThrowsStarlingError(try starling.diagnostics()) {
            if case .closed = $0 { return true }
            return false
        }
    }

    func testSyncWithoutServerThrowsNoServer() async throws {
        let starling = try openWithConsent()
        await assertThrowsStarlingError({ try await starling.sync() }) {
            if case .noServer = $0 { return true }
            return false
        }
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

        XCTAssertEqual(try Starling.open(configuration(directory)).deviceID, second, "the id is persisted")
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
        let swiftSide = assertThrowsStarlingError(try Starling.open(negative)) {
            if case .invalidConfiguration = $0 { return true }
            return false
        }
        XCTAssertTrue(swiftSide?.reason.contains("flushInterval") == true)

        let ftp = Starling.Configuration(dataDirectory: directory, serverURL: URL(string: "ftp://example.com"))
        let coreSide = assertThrowsStarlingError(try Starling.open(ftp)) {
            if case .invalidConfiguration = $0 { return true }
            return false
        }
        XCTAssertTrue(coreSide?.reason.contains("https://") == true)

        var noBatches = Starling.Configuration(dataDirectory: directory)
        noBatches.batchMaxEvents = 0
        assertThrowsStarlingError(try Starling.open(noBatches)) {
            if case .invalidConfiguration = $0 { return true }
            return false
        }
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
