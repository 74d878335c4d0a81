import Foundation
import Starling
import XCTest

/// The privacy extension against a real `starling-server` on loopback: a daily report is
/// charged, sent and listed, the budget refuses what it cannot take, and consent per purpose.
final class PrivacyTests: XCTestCase {
    private var server: TestServer!

    override func setUp() async throws {
        server = try await TestServer()
    }

    override func tearDown() async throws {
        await server?.stop()
        server = nil
    }

    private let usage = Starling.PrivateReport.eventCounts(
        name: "usage", events: ["app_open"], maxPerEvent: 5, epsilon: 0.4)

    private func yesterdayNoon() -> Date {
        let day = 86_400.0
        let today = (Date().timeIntervalSince1970 / day).rounded(.down)
        return Date(timeIntervalSince1970: (today - 1) * day + day / 2)
    }

    func testADailyReportIsChargedSentAndListed() async throws {
        let starling = try Starling.open(
            configuration(try temporaryDirectory(self), server: server),
            privacy: .init(reports: [usage]))
        try starling.setConsent(true)
        XCTAssertTrue(try starling.consent(for: .privateReports))
        for i in 0..<3 {
            try starling.track("app_open", at: yesterdayNoon().addingTimeInterval(Double(i)))
        }
        try await starling.flush()

        let outcome = try await starling.sendPrivateReports()
        XCTAssertEqual(outcome.charged, 1)
        XCTAssertEqual(outcome.sent, 1)
        let receipts = try starling.privacyReceipts()
        XCTAssertEqual(receipts.count, 1)
        XCTAssertEqual(receipts.first?.channel, "report:usage")
        XCTAssertEqual(receipts.first?.measure, "epsilon")
        XCTAssertEqual(receipts.first?.amount ?? 0, 0.4, accuracy: 1e-9)
        XCTAssertNotNil(receipts.first?.sent)
        XCTAssertEqual(try starling.privacySpent().epsilonDay, 0.4, accuracy: 1e-9)
        let again = try await starling.sendPrivateReports()
        XCTAssertEqual(again.charged, 0, "nothing more is due")
        try starling.close()
    }

    func testAReportOverTheBudgetIsRefusedWithItsReason() async throws {
        let starling = try Starling.open(
            configuration(try temporaryDirectory(self), server: server),
            privacy: .init(epsilonPerDay: 0.1, reports: [usage]))
        try starling.setConsent(true)
        try starling.track("app_open", at: yesterdayNoon())
        try await starling.flush()
        let outcome = try await starling.sendPrivateReports()
        XCTAssertEqual(outcome.charged, 0)
        XCTAssertEqual(outcome.refused.count, 1)
        XCTAssertTrue(outcome.refused[0].contains("epsilon per day"), outcome.refused[0])
        XCTAssertTrue(try starling.privacyReceipts().isEmpty)
        try starling.close()
    }

    func testConsentPerPurpose() async throws {
        let starling = try Starling.open(
            configuration(try temporaryDirectory(self), server: server),
            privacy: .init(reports: [usage]))
        try starling.setConsent(true)
        try starling.setConsent(.privateReports, granted: false)
        XCTAssertFalse(try starling.consent(for: .privateReports))
        XCTAssertTrue(try starling.consent(for: .rawEvents))
        await assertThrowsAsync(StarlingError.noConsent) { try await starling.sendPrivateReports() }
        for purpose in Starling.ConsentPurpose.allCases {
            try starling.setConsent(purpose, granted: false)
        }
        XCTAssertFalse(starling.consent)
        assertThrows(StarlingError.noConsent, try starling.track("app_open"))
        try starling.close()
    }

    func testAPrivateVectorIsChargedInRhoAndRefusedBeyondTheBudget() throws {
        let starling = try Starling.open(
            configuration(try temporaryDirectory(self), server: server),
            privacy: .init(rhoPerDay: 0.5))
        try starling.setConsent(true)
        let noised = try starling.releasePrivateVector(
            channel: "model", values: [3, 4], maxNorm: 1, rho: 0.3)
        XCTAssertEqual(noised.count, 2)
        XCTAssertEqual(try starling.privacyReceipts().first?.measure, "rho")
        let reason = assertThrows(
            StarlingError.invalidArgument,
            try starling.releasePrivateVector(channel: "model", values: [3, 4], maxNorm: 1, rho: 0.3))
        XCTAssertTrue(reason?.contains("rho per day") ?? false, reason ?? "")
        XCTAssertEqual(try starling.privacySpent().rhoDay, 0.3, accuracy: 1e-9)
        try starling.close()
    }

    func testBadSettingsAreAnInvalidConfiguration() throws {
        let bad = Starling.PrivacySettings(reports: [
            .topEvent(name: "no spaces allowed", events: ["a"], epsilon: 1)
        ])
        assertThrows(
            StarlingError.invalidConfiguration,
            try Starling.open(configuration(try temporaryDirectory(self)), privacy: bad))
    }
}
