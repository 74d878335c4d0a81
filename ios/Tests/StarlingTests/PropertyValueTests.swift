import Foundation
import Starling
import XCTest

/// Literals become the right ``PropertyValue`` cases.
final class PropertyValueTests: XCTestCase {
    func testLiteralsBecomeTheirCases() {
        let count = 3
        let properties: [String: PropertyValue] = [
            "text": "home",
            "interpolated": "\(count) items",
            "integer": 42,
            "negative": -7,
            "real": 0.25,
            "flag": true,
            "date": .date(Date(timeIntervalSince1970: 1_700_000_000)),
        ]
        XCTAssertEqual(properties["text"], .string("home"))
        XCTAssertEqual(properties["interpolated"], .string("3 items"))
        XCTAssertEqual(properties["integer"], .int(42))
        XCTAssertEqual(properties["negative"], .int(-7))
        XCTAssertEqual(properties["real"], .double(0.25))
        XCTAssertEqual(properties["flag"], .bool(true))
        XCTAssertEqual(properties["date"], .date(Date(timeIntervalSince1970: 1_700_000_000)))
    }
}
