import Foundation
internal import StarlingFFI

/// The value of one event property.
///
/// Literals convert on their own, so a property list reads like a dictionary of plain values:
///
/// ```swift
/// try starling.track("article_read", properties: [
///     "section": "science",                      // .string
///     "words": 1_200,                            // .int
///     "scroll_depth": 0.8,                       // .double
///     "from_push": false,                        // .bool
///     "published": .date(article.publishedAt),   // .date
/// ])
/// ```
public enum PropertyValue: Sendable, Hashable {
    /// Text, at most 1024 bytes of UTF-8.
    case string(String)

    /// A whole number, stored as 64 bits.
    case int(Int)

    /// A floating-point number. It must be finite: NaN and infinity are rejected with
    /// ``StarlingError/invalidEvent(reason:)``.
    case double(Double)

    /// A yes or no.
    case bool(Bool)

    /// A point in time, kept to the millisecond.
    case date(Date)
}

extension PropertyValue: ExpressibleByStringLiteral {
    /// A ``string(_:)`` value from a string literal.
    public init(stringLiteral value: String) {
        self = .string(value)
    }
}

/// Interpolated literals, such as `"\(count) items"`, become ``PropertyValue/string(_:)`` too.
extension PropertyValue: ExpressibleByStringInterpolation {}

extension PropertyValue: ExpressibleByIntegerLiteral {
    /// An ``int(_:)`` value from an integer literal.
    public init(integerLiteral value: Int) {
        self = .int(value)
    }
}

extension PropertyValue: ExpressibleByFloatLiteral {
    /// A ``double(_:)`` value from a floating-point literal.
    public init(floatLiteral value: Double) {
        self = .double(value)
    }
}

extension PropertyValue: ExpressibleByBooleanLiteral {
    /// A ``bool(_:)`` value from `true` or `false`.
    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }
}

extension PropertyValue {
    /// The value as the bindings carry it. Dates become Unix epoch milliseconds, rounded to the
    /// nearest; a date too far from 1970 for 64-bit milliseconds is an invalid event.
    func ffiValue(key: String) throws(StarlingError) -> StarlingFFI.PropertyValue {
        switch self {
        case .string(let value):
            return .text(value: value)
        case .int(let value):
            return .integer(value: Int64(value))
        case .double(let value):
            // Non-finite values pass through: the core rejects them with the reason apps expect.
            return .real(value: value)
        case .bool(let value):
            return .flag(value: value)
        case .date(let date):
            return .timestamp(
                epochMs: try epochMilliseconds(date, what: "the value of property \"\(key)\""))
        }
    }
}

/// `date` as Unix epoch milliseconds, rounded to the nearest.
func epochMilliseconds(_ date: Date, what: String) throws(StarlingError) -> Int64 {
    let milliseconds = (date.timeIntervalSince1970 * 1000).rounded()
    guard let value = Int64(exactly: milliseconds) else {
        throw .invalidEvent(
            reason: "\(what) is \(date), which cannot be stored as epoch milliseconds")
    }
    return value
}
