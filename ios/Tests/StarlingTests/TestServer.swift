import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A real `starling-server` on a free loopback port, with its own data directory and one app key.
///
/// The binary is `ios/.native/starling-server`, copied there by `scripts/test.sh`; the
/// `STARLING_SERVER` environment variable overrides the path.
final class TestServer: @unchecked Sendable {
    /// The app's valid API key, registered at start-up.
    static let apiKey = "sk_test"

    /// The base URL, such as `http://127.0.0.1:41234`.
    let url: URL

    private let process: Process
    private let directory: URL

    /// Starts the server and waits until `/healthz` answers. With `deviceConfig` (the operator's
    /// JSON), it serves those signal and bandit definitions at `GET /v1/config`.
    /// `extraArguments` go on its command line.
    init(deviceConfig: String? = nil, extraArguments: [String] = []) async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-server-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let keys = directory.appendingPathComponent("keys.txt")
        try "test-app:\(Self.apiKey)\n".write(to: keys, atomically: true, encoding: .utf8)
        let log = directory.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)

        let process = Process()
        process.executableURL = Self.binary
        process.arguments = [
            "--listen", "127.0.0.1:0",
            "--data-dir", directory.appendingPathComponent("data").path,
            "--api-key-file", keys.path,
        ]
        if let deviceConfig {
            let file = directory.appendingPathComponent("device-config.json")
            try deviceConfig.write(to: file, atomically: true, encoding: .utf8)
            process.arguments! += ["--device-config", file.path]
        }
        process.arguments! += extraArguments
        var environment = ProcessInfo.processInfo.environment
        environment["RUST_LOG"] = "info"
        process.environment = environment
        // A file rather than a pipe: nobody has to keep draining it, and it is there to read when
        // a test fails.
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        self.process = process
        self.directory = directory

        do {
            url = try await Self.waitForAddress(in: log, of: process)
            try await Self.waitUntilHealthy(url)
        } catch {
            await Self.stop(process, deleting: directory)
            throw error
        }
    }

    /// Stops the server and deletes its data.
    func stop() async {
        await Self.stop(process, deleting: directory)
    }

    /// SIGKILL, because it is the one signal the server cannot have blocked: on Linux, `Process`
    /// passes the spawning thread's signal mask on to the child, and the Dispatch threads that
    /// run async tests block nearly every signal, SIGINT and SIGTERM included. Its data is thrown
    /// away anyway. Waits by polling, since `Process.waitUntilExit()` spins a run loop, which
    /// busy-waits on such a thread.
    private static func stop(_ process: Process, deleting directory: URL) async {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// `GET /v1/stats`: what the server holds.
    func stats() async throws -> Stats {
        let (data, status) = try await Self.get(url.appendingPathComponent("v1/stats"))
        XCTAssertEqual(status, 200, String(decoding: data, as: UTF8.self))
        return try JSONDecoder().decode(Stats.self, from: data)
    }

    /// The part of `/v1/stats` the tests look at.
    struct Stats: Decodable {
        let events: Int
        let eventsByName: [String: Int]

        enum CodingKeys: String, CodingKey {
            case events
            case eventsByName = "events_by_name"
        }
    }

    private static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["STARLING_SERVER"] {
            return URL(fileURLWithPath: path)
        }
        // ios/Tests/StarlingTests/TestServer.swift -> ios/.native/starling-server
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".native/starling-server")
    }

    /// Reads the log until the server prints `listening on http://ADDR`.
    private static func waitForAddress(in log: URL, of process: Process) async throws -> URL {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: "listening on http://") {
                let address = text[range.upperBound...].prefix { !$0.isWhitespace && $0 != "," }
                if let url = URL(string: "http://\(address)") {
                    return url
                }
            }
            guard process.isRunning else {
                throw ServerError(
                    "starling-server exited with status \(process.terminationStatus):\n\(text)")
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        throw ServerError("starling-server did not print its address within 10 s")
    }

    private static func waitUntilHealthy(_ url: URL) async throws {
        for _ in 0..<100 {
            if let (_, status) = try? await get(url.appendingPathComponent("healthz")),
                status == 200
            {
                return
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        throw ServerError("\(url)/healthz did not answer 200 within 2 s")
    }

    private static func get(_ url: URL) async throws -> (Data, Int) {
        let (data, response) = try await URLSession.shared.data(from: url)
        return (data, (response as? HTTPURLResponse)?.statusCode ?? 0)
    }
}

/// The test server could not be started.
struct ServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
