internal import StarlingFFI

extension Starling {
    /// Severity of a log line from the native library, most severe first.
    public enum LogLevel: Sendable, Hashable, CaseIterable {
        /// Data was lost (for example events dropped because the disk stayed full).
        case error
        /// Recoverable trouble (a failed upload that will be retried, an eviction).
        case warning
        /// Notable events (consent withdrawn).
        case info
        /// Detail for debugging an integration.
        case debug
        /// Everything, including per-event detail.
        case trace
    }

    /// Sends the native library's log lines at `minimumLevel` and more severe to `handler`,
    /// replacing any handler set before. Without a handler the lines are dropped.
    ///
    /// ```swift
    /// Starling.setLogHandler(minimumLevel: .info) { level, target, message in
    ///     print("[\(level)] \(target): \(message)")
    /// }
    /// ```
    ///
    /// There is one handler per process. On Apple platforms, ``forwardLogsToOSLog(minimumLevel:)``
    /// sets one that writes to the unified log. Lines never contain event payloads.
    ///
    /// - Parameters:
    ///   - minimumLevel: The least severe level delivered. Default ``LogLevel/warning``.
    ///   - handler: Called with the level, the line's source (a Rust module path such as
    ///     `starling_core::sync`) and the message, on Starling's own threads (the native writer
    ///     thread, or the one running a sync). Keep it short; it must not block.
    public static func setLogHandler(
        minimumLevel: LogLevel = .warning,
        _ handler: @escaping @Sendable (LogLevel, String, String) -> Void
    ) {
        StarlingFFI.setLogSink(sink: LogForwarder(handler), maxLevel: minimumLevel.ffiLevel)
    }

    /// Stops delivering log lines; the native library then logs nothing.
    public static func clearLogHandler() {
        StarlingFFI.clearLogSink()
    }
}

/// The generated callback protocol, calling the app's handler with the SDK's level.
private final class LogForwarder: StarlingFFI.LogSink {
    private let handler: @Sendable (Starling.LogLevel, String, String) -> Void

    init(_ handler: @escaping @Sendable (Starling.LogLevel, String, String) -> Void) {
        self.handler = handler
    }

    func log(level: StarlingFFI.LogLevel, target: String, message: String) {
        handler(Starling.LogLevel(level), target, message)
    }
}

extension Starling.LogLevel {
    fileprivate init(_ level: StarlingFFI.LogLevel) {
        switch level {
        case .error: self = .error
        case .warn: self = .warning
        case .info: self = .info
        case .debug: self = .debug
        case .trace: self = .trace
        }
    }

    fileprivate var ffiLevel: StarlingFFI.LogLevel {
        switch self {
        case .error: .error
        case .warning: .warn
        case .info: .info
        case .debug: .debug
        case .trace: .trace
        }
    }
}
