import Foundation
import StarlingFFI
import XCTest

@testable import Starling

/// What the generated bindings receive: each ``PropertyValue`` case becomes the right native
/// value. (This file imports StarlingFFI, where `PropertyValue` and `StarlingError` are also
/// declared, so it names the SDK's own types through the aliases in Helpers.swift.)
final class MappingTests: XCTestCase {
    func testCasesMapToTheNativeValues() throws {
        XCTAssertEqual(try SDKPropertyValue.string("home").ffiValue(key: "k"), .text(value: "home"))
        XCTAssertEqual(
            try SDKPropertyValue.int(Int.min).ffiValue(key: "k"), .integer(value: Int64.min))
        XCTAssertEqual(try SDKPropertyValue.double(-1.5).ffiValue(key: "k"), .real(value: -1.5))
        XCTAssertEqual(try SDKPropertyValue.bool(false).ffiValue(key: "k"), .flag(value: false))
        // Milliseconds, rounded to the nearest.
        XCTAssertEqual(
            try SDKPropertyValue.date(Date(timeIntervalSince1970: 1_700_000_000.1236)).ffiValue(
                key: "k"),
            .timestamp(epochMs: 1_700_000_000_124))
        XCTAssertEqual(
            try SDKPropertyValue.date(Date(timeIntervalSince1970: -0.0004)).ffiValue(key: "k"),
            .timestamp(epochMs: 0))
    }

    func testADateBeyondEpochMillisecondsIsAnInvalidEvent() {
        XCTAssertThrowsError(
            try SDKPropertyValue.date(Date(timeIntervalSince1970: 1e300)).ffiValue(key: "when")
        ) {
            guard case .invalidEvent(let reason) = $0 as? SDKStarlingError else {
                return XCTFail("unexpected error: \($0)")
            }
            XCTAssertTrue(reason.contains("\"when\""), reason)
        }
    }
}
