import Foundation
internal import StarlingFFI

extension Starling {
    /// How a ``Starling`` instance stores and sends events.
    ///
    /// Start from ``init(dataDirectory:serverURL:apiKey:)``, whose defaults are the Rust core's
    /// (suited to a phone), and change what you need:
    ///
    /// ```swift
    /// var configuration = Starling.Configuration(
    ///     serverURL: URL(string: "https://starling.example.com")!,
    ///     apiKey: "sk_live_…")
    /// configuration.schemaVersion = 3
    /// let starling = try Starling.open(configuration)
    /// ```
    ///
    /// Durations are `TimeInterval`s in seconds, kept to the millisecond.
    public struct Configuration: Sendable, Hashable {
        /// Directory for Starling's database; created if missing. One instance per directory.
        /// Defaults to ``defaultDataDirectory``.
        public var dataDirectory: URL

        /// Base URL of the aggregation server, such as `https://starling.example.com`. Without
        /// one, events are stored on the device and never sent.
        public var serverURL: URL?

        /// The app's API key for the server, sent as a bearer token. Never printed: the
        /// configuration's `description` hides it.
        public var apiKey: String

        /// The app's own version of its event schema, sent with every batch. Default 1.
        public var schemaVersion: UInt32

        /// Longest time a tracked event stays in memory before it is committed to disk, in
        /// seconds. ``Starling/flush()`` commits at once. Default 0.5 s.
        public var flushInterval: TimeInterval

        /// Bound on the bytes of stored events and batches together. Beyond it the oldest data is
        /// evicted and counted in ``Diagnostics/eventsEvictedSize``. Default 16 MiB.
        public var maxStoreBytes: Int

        /// Events and batches older than this are evicted and counted in
        /// ``Diagnostics/eventsEvictedAge``, in seconds. Default 30 days.
        public var maxAge: TimeInterval

        /// Most events in one uploaded batch. Default 500.
        public var batchMaxEvents: Int

        /// Bound on one upload, from connecting to the last byte, in seconds. Default 20 s.
        public var uploadTimeout: TimeInterval

        /// First retry delay after a failed upload, in seconds; it doubles with each failure in a
        /// row, with random jitter. Default 30 s.
        public var backoffInitial: TimeInterval

        /// Longest retry delay, in seconds. Default 1 hour.
        public var backoffMax: TimeInterval

        /// If set, a native background thread syncs at this interval, in seconds. Default: none.
        /// On iOS prefer ``Starling/BackgroundSync``: the system suspends an app's threads soon
        /// after it leaves the foreground.
        public var backgroundSyncInterval: TimeInterval?

        /// Signals kept current on the device; see ``Starling/Signal``. Default: none.
        public var signals: [Signal]

        /// Events older than the newest one by more than this, in seconds, are too late for the
        /// signals: stored and sent as usual, but applied to none. Default 5 minutes.
        public var signalAllowedLateness: TimeInterval

        /// Bandits that choose variants on the device; see ``Starling/Bandit``. Default: none.
        public var bandits: [Bandit]

        /// A configuration with the core's defaults.
        ///
        /// - Parameters:
        ///   - dataDirectory: Where the database lives. Defaults to ``defaultDataDirectory``.
        ///   - serverURL: The aggregation server, or `nil` to keep events on the device.
        ///   - apiKey: The app's API key for the server.
        public init(
            dataDirectory: URL = Configuration.defaultDataDirectory,
            serverURL: URL? = nil,
            apiKey: String = ""
        ) {
            // The defaults come from the core itself, so the two can never disagree.
            let defaults = StarlingFFI.defaultConfig(dataDir: dataDirectory.path)
            self.dataDirectory = dataDirectory
            self.serverURL = serverURL
            self.apiKey = apiKey
            schemaVersion = defaults.schemaVersion
            flushInterval = seconds(defaults.flushIntervalMs)
            maxStoreBytes = Int(clamping: defaults.maxStoreBytes)
            maxAge = seconds(defaults.maxAgeMs)
            batchMaxEvents = Int(defaults.batchMaxEvents)
            uploadTimeout = seconds(defaults.uploadTimeoutMs)
            backoffInitial = seconds(defaults.backoffInitialMs)
            backoffMax = seconds(defaults.backoffMaxMs)
            backgroundSyncInterval = defaults.backgroundSyncIntervalMs.map(seconds)
            signals = []
            signalAllowedLateness = seconds(defaults.signalAllowedLatenessMs)
            bandits = []
        }

        /// `Application Support/<bundle identifier>/Starling` in the user's domain: private to
        /// the app on iOS, and kept apart per app on macOS, where Application Support is shared.
        /// A process without a bundle identifier (a command-line tool, a test runner) uses its
        /// process name instead.
        public static var defaultDataDirectory: URL {
            let base =
                FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)
                .first
                ?? FileManager.default.temporaryDirectory
            let owner = Bundle.main.bundleIdentifier ?? ProcessInfo.processInfo.processName
            return base.appendingPathComponent(owner, isDirectory: true)
                .appendingPathComponent("Starling", isDirectory: true)
        }

        /// The configuration as the bindings carry it. Checks what only Swift can get wrong
        /// (negative, infinite or NaN durations and sizes); the core checks the rest.
        func ffiConfig() throws(StarlingError) -> StarlingConfig {
            guard dataDirectory.isFileURL else {
                throw .invalidConfiguration(
                    reason: "dataDirectory must be a file URL, got \(dataDirectory.absoluteString)")
            }
            return StarlingConfig(
                dataDir: dataDirectory.path,
                serverUrl: serverURL?.absoluteString,
                apiKey: apiKey,
                schemaVersion: schemaVersion,
                flushIntervalMs: try milliseconds(flushInterval, "flushInterval"),
                maxStoreBytes: try nonNegative(maxStoreBytes, "maxStoreBytes"),
                maxAgeMs: try milliseconds(maxAge, "maxAge"),
                batchMaxEvents: UInt32(clamping: try nonNegative(batchMaxEvents, "batchMaxEvents")),
                uploadTimeoutMs: try milliseconds(uploadTimeout, "uploadTimeout"),
                backoffInitialMs: try milliseconds(backoffInitial, "backoffInitial"),
                backoffMaxMs: try milliseconds(backoffMax, "backoffMax"),
                backgroundSyncIntervalMs: try backgroundSyncInterval.map {
                    (interval) throws(StarlingError) in
                    try milliseconds(interval, "backgroundSyncInterval")
                },
                signals: try signals.map { (signal) throws(StarlingError) in try signal.ffiSignal()
                },
                signalAllowedLatenessMs: try milliseconds(
                    signalAllowedLateness, "signalAllowedLateness"),
                bandits: try bandits.map { (bandit) throws(StarlingError) in try bandit.ffiBandit()
                }
            )
        }
    }
}

extension Starling.Configuration: CustomStringConvertible, CustomDebugStringConvertible {
    /// The settings that matter when reading a log, with the API key hidden.
    public var description: String {
        let server = serverURL?.absoluteString ?? "none"
        let key = apiKey.isEmpty ? "none" : "<hidden>"
        return "Starling.Configuration(dataDirectory: \(dataDirectory.path), serverURL: \(server), "
            + "apiKey: \(key), schemaVersion: \(schemaVersion))"
    }

    /// Same as ``description``: the API key stays hidden in the debugger too.
    public var debugDescription: String { description }
}

/// Milliseconds as seconds.
func seconds(_ milliseconds: UInt64) -> TimeInterval {
    TimeInterval(milliseconds) / 1000
}

/// Seconds as whole milliseconds, rounded to the nearest; `name` is for the error.
func milliseconds(_ seconds: TimeInterval, _ name: String) throws(StarlingError) -> UInt64 {
    guard seconds.isFinite, seconds >= 0,
        let value = UInt64(exactly: (seconds * 1000).rounded())
    else {
        throw .invalidConfiguration(
            reason: "\(name) must be a finite number of seconds, at least 0; got \(seconds)")
    }
    return value
}

/// `value` as an unsigned number; `name` is for the error.
func nonNegative(_ value: Int, _ name: String) throws(StarlingError) -> UInt64 {
    guard value >= 0 else {
        throw .invalidConfiguration(reason: "\(name) must be at least 0; got \(value)")
    }
    return UInt64(value)
}
