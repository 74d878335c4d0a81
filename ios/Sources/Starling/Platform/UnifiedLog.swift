// Unified-log glue for the native library's log lines. `os` exists on Apple platforms only; on
// Linux this is compiled out.
#if canImport(os)
import os

extension Starling {
    /// Sends the native library's log lines at `minimumLevel` and more severe to the unified log
    /// (subsystem `dev.starling`, category `native`), at the matching `Logger` level, replacing
    /// any handler set with ``setLogHandler(minimumLevel:_:)``. Call it once at launch.
    ///
    /// - Parameter minimumLevel: The least severe level logged. Default ``LogLevel/warning``.
    public static func forwardLogsToOSLog(minimumLevel: LogLevel = .warning) {
        setLogHandler(minimumLevel: minimumLevel) { level, target, message in
            // The lines carry no event payloads, only reasons such as a server's status.
            switch level {
            case .error:
                nativeLog.error("\(target, privacy: .public): \(message, privacy: .public)")
            case .warning:
                nativeLog.warning("\(target, privacy: .public): \(message, privacy: .public)")
            case .info:
                nativeLog.info("\(target, privacy: .public): \(message, privacy: .public)")
            case .debug:
                nativeLog.debug("\(target, privacy: .public): \(message, privacy: .public)")
            case .trace:
                nativeLog.trace("\(target, privacy: .public): \(message, privacy: .public)")
            }
        }
    }
}

private let nativeLog = Logger(subsystem: "dev.starling", category: "native")
#endif
