// Stand-in for os.Logger and its privacy-annotated interpolation, as Sources/Starling/Platform
// uses them. For scripts/typecheck-apple-glue.sh only.
public enum LogPrivacy: Sendable { case `public`, `private` }
public struct LogMessage: ExpressibleByStringInterpolation, Sendable {
    public struct StringInterpolation: StringInterpolationProtocol, Sendable {
        public init(literalCapacity: Int, interpolationCount: Int) {}
        public mutating func appendLiteral(_ literal: String) {}
        public mutating func appendInterpolation(
            _ value: @autoclosure @escaping () -> String, privacy: LogPrivacy = .private
        ) {}
        public mutating func appendInterpolation(
            _ value: @autoclosure @escaping () -> Int, privacy: LogPrivacy = .private
        ) {}
    }
    public init(stringLiteral value: String) {}
    public init(stringInterpolation: StringInterpolation) {}
}
public struct Logger: @unchecked Sendable {
    public init(subsystem: String, category: String) {}
    public func error(_ message: LogMessage) {}
    public func warning(_ message: LogMessage) {}
    public func info(_ message: LogMessage) {}
    public func debug(_ message: LogMessage) {}
    public func trace(_ message: LogMessage) {}
}
