import Foundation
import Starling
import XCTest

/// A fresh directory under the temporary directory, deleted when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("starling-swift-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// A configuration storing in `directory` and sending to `server` with `apiKey`.
func configuration(
    _ directory: URL, server: TestServer? = nil, apiKey: String = TestServer.apiKey
) -> Starling.Configuration {
    var configuration = Starling.Configuration(
        dataDirectory: directory, serverURL: server?.url, apiKey: apiKey)
    // A failed upload in one test must not delay the next sync of the same instance for long.
    configuration.backoffInitial = 0.05
    configuration.uploadTimeout = 5
    return configuration
}

/// Asserts that `body` throws the ``StarlingError`` case `expected` (a case constructor, such as
/// `StarlingError.noConsent`), and returns its reason.
@discardableResult
func assertThrows<T>(
    _ expected: (String) -> StarlingError, _ body: @autoclosure () throws -> T,
    file: StaticString = #filePath, line: UInt = #line
) -> String? {
    do {
        _ = try body()
        XCTFail("expected \(expected("…")), but the call succeeded", file: file, line: line)
    } catch let error as StarlingError {
        XCTAssertEqual(error, expected(error.reason), file: file, line: line)
        return error.reason
    } catch {
        XCTFail(
            "expected \(expected("…")), got \(type(of: error)): \(error)", file: file, line: line)
    }
    return nil
}

/// The async counterpart of ``assertThrows(_:_:file:line:)``.
@discardableResult
func assertThrowsAsync<T>(
    _ expected: (String) -> StarlingError,
    file: StaticString = #filePath, line: UInt = #line,
    _ body: () async throws -> T
) async -> String? {
    do {
        _ = try await body()
        XCTFail("expected \(expected("…")), but the call succeeded", file: file, line: line)
    } catch let error as StarlingError {
        XCTAssertEqual(error, expected(error.reason), file: file, line: line)
        return error.reason
    } catch {
        XCTFail(
            "expected \(expected("…")), got \(type(of: error)): \(error)", file: file, line: line)
    }
    return nil
}

/// The SDK's own types, for test files that also import StarlingFFI, where the bare names are
/// ambiguous (and `Starling.PropertyValue` names a member of the class, not of the module).
typealias SDKPropertyValue = PropertyValue
typealias SDKStarlingError = StarlingError
