import Foundation
import Starling
import XCTest

/// The native library's log lines reach ``Starling/setLogHandler(minimumLevel:_:)``, filtered by
/// level.
final class LogTests: XCTestCase {
    /// Collects delivered lines; they arrive on native threads.
    private final class Lines: @unchecked Sendable {
        struct Line: Equatable {
            let level: Starling.LogLevel
            let target: String
            let message: String
        }

        private let lock = NSLock()
        private var lines: [Line] = []

        func append(_ level: Starling.LogLevel, _ target: String, _ message: String) {
            lock.lock()
            defer { lock.unlock() }
            lines.append(Line(level: level, target: target, message: message))
        }

        var all: [Line] {
            lock.lock()
            defer { lock.unlock() }
            return lines
        }

        func removeAll() {
            lock.lock()
            defer { lock.unlock() }
            lines.removeAll()
        }

        /// Waits up to 5 s for a line whose message contains `text`.
        func first(containing text: String) async -> Line? {
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                if let line = all.first(where: { $0.message.contains(text) }) { return line }
                try? await Task.sleep(nanoseconds: 10_000_000)
            }
            return all.first(where: { $0.message.contains(text) })
        }
    }

    override func tearDown() {
        Starling.clearLogHandler()
    }

    func testFailedUploadIsLoggedAsAWarning() async throws {
        // A loopback port where nothing listens any more.
        let server = try await TestServer()
        let closedURL = server.url
        await server.stop()

        let lines = Lines()
        Starling.setLogHandler(minimumLevel: .warning) { lines.append($0, $1, $2) }
        var configuration = configuration(try temporaryDirectory(self))
        configuration.serverURL = closedURL
        let starling = try Starling.open(configuration)
        try starling.setConsent(true)
        try starling.track("screen_view")
        try await starling.flush()
        let report = try await starling.sync()
        XCTAssertNotNil(report.lastError)
        try starling.close()

        let line = await lines.first(containing: "upload failed")
        XCTAssertEqual(line?.level, .warning, "no upload failure among \(lines.all)")
        XCTAssertFalse(line?.target.isEmpty ?? true)
    }

    func testLinesBelowTheLevelAreFilteredAndClearingStopsDelivery() async throws {
        let starling = try Starling.open(configuration(try temporaryDirectory(self)))
        try starling.setConsent(true)
        let lines = Lines()

        Starling.setLogHandler(minimumLevel: .warning) { lines.append($0, $1, $2) }
        try starling.setConsent(false)  // logs "consent withdrawn" at info: filtered out

        Starling.setLogHandler(minimumLevel: .info) { lines.append($0, $1, $2) }
        try starling.setConsent(true)
        try starling.setConsent(false)
        // Both withdrawals log on the writer thread, in order: once the second line is here, the
        // first would have been too.
        let line = await lines.first(containing: "consent withdrawn")
        XCTAssertEqual(line?.level, .info, "no info line among \(lines.all)")
        XCTAssertEqual(lines.all.filter { $0.message.contains("consent withdrawn") }.count, 1)

        Starling.clearLogHandler()
        lines.removeAll()
        try starling.setConsent(true)
        try starling.setConsent(false)
        try await starling.flush()  // the writer thread has logged (or not) by now
        XCTAssertEqual(lines.all, [])
        try starling.close()
    }
}
