import Dispatch
import Foundation
internal import StarlingFFI

/// Private, on-device personalization: records engagement events on the device and uploads them
/// in compact batches to your aggregation server.
///
/// Open one instance per process and data directory when the app starts, and keep it for the
/// app's lifetime:
///
/// ```swift
/// let starling = try Starling.open(.init(
///     serverURL: URL(string: "https://starling.example.com")!, apiKey: "sk_live_…"))
/// try starling.setConsent(true)        // after the user agreed
/// try starling.track("screen_view", properties: ["screen": "home"])
/// let report = try await starling.sync()
/// ```
///
/// Every method is safe to call from any thread or task. ``track(_:properties:at:)`` validates
/// the event and queues it for a native writer thread: it returns in microseconds and never
/// waits on I/O, so call it from the main thread freely. ``flush()`` and ``sync()`` wait on the
/// disk and the network; they run on a queue of their own, never on the caller's executor.
/// ``open(_:)``, ``setConsent(_:)``, ``deviceID``, ``resetDeviceID()``, ``diagnostics()`` and
/// ``close()`` wait for the writer thread (milliseconds of disk I/O): fine at launch, better kept
/// off the main thread in tight loops.
///
/// Without consent nothing is recorded or sent. The pseudonymous ``deviceID`` is random and can
/// be reset; it is never derived from hardware or advertising identifiers.
public final class Starling: Sendable {
    /// The generated object. Its methods block; it is `Sendable` because the Rust object behind
    /// it is thread-safe.
    let inner: StarlingFFI.Starling

    /// Where ``flush()`` and ``sync()`` block. Concurrent, so that a flush does not wait behind an
    /// upload; the core serializes syncs itself.
    private let blockingQueue = DispatchQueue(
        label: "dev.starling.blocking", attributes: .concurrent)

    init(inner: StarlingFFI.Starling) {
        self.inner = inner
    }

    /// Opens (or creates) the store in `configuration.dataDirectory` and starts the native
    /// writer thread.
    ///
    /// Reads the database, so it takes a few milliseconds; a damaged database is moved aside and
    /// replaced (see ``Diagnostics/databaseRecoveries``). On Apple platforms the data directory
    /// is excluded from backups, so that a restored backup never gives two devices one device
    /// id.
    ///
    /// - Throws: ``StarlingError/invalidConfiguration(reason:)`` or
    ///   ``StarlingError/storage(reason:)``.
    public static func open(_ configuration: Configuration) throws -> Starling {
        let config = try configuration.ffiConfig()
        let inner = try mappingErrors { try StarlingFFI.Starling.open(config: config) }
        excludeFromBackup(configuration.dataDirectory)
        return Starling(inner: inner)
    }

    /// Records an event.
    ///
    /// Validates the event on the calling thread and hands it to the writer thread; it returns in
    /// microseconds and never waits on I/O. The event is durable once ``flush()`` returns, or at
    /// the latest ``Configuration/flushInterval`` after this call.
    ///
    /// Names and keys are lower-case letters, digits and `_`, in segments joined by `.`, each
    /// starting with a letter (`screen_view`, `checkout.step`), at most 64 bytes. An event has at
    /// most 32 properties; string values are at most 1024 bytes.
    ///
    /// - Parameters:
    ///   - name: The event name, such as `screen_view`.
    ///   - properties: The event's properties. Literals convert on their own: `["screen": "home",
    ///     "items": 3]`.
    ///   - date: When it happened; `nil` means now. Must not be before 2000 or more than an hour
    ///     ahead of the device clock.
    /// - Throws: ``StarlingError/noConsent(reason:)`` without consent,
    ///   ``StarlingError/invalidEvent(reason:)`` with the rule the event breaks,
    ///   ``StarlingError/queueFull(reason:)`` or ``StarlingError/closed(reason:)``.
    public func track(
        _ name: String, properties: [String: PropertyValue] = [:], at date: Date? = nil
    ) throws {
        // Sorted, so that the same properties always reach the store in the same order.
        let properties = try properties.sorted { $0.key < $1.key }.map {
            (key, value) throws(StarlingError) in
            Property(key: key, value: try value.ffiValue(key: key))
        }
        let timeMs = try date.map { (date) throws(StarlingError) in
            try epochMilliseconds(date, what: "the event time")
        }
        let event = TrackEvent(name: name, timeMs: timeMs, properties: properties)
        try mappingErrors { try inner.track(event: event) }
    }

    /// Makes every event tracked so far durable: when it returns, they survive a crash or a killed
    /// process.
    ///
    /// Waits on disk I/O, on Starling's own queue. Call it when the app moves to the background
    /// (``LifecycleObserver`` does).
    ///
    /// - Throws: ``StarlingError/storage(reason:)`` or ``StarlingError/closed(reason:)``.
    public func flush() async throws {
        try await blocking { try $0.flush() }
    }

    /// Seals pending events into batches and uploads them.
    ///
    /// Waits on the network, on Starling's own queue, for at most about
    /// ``Configuration/uploadTimeout`` per batch. Failures worth retrying (no network, a server
    /// error, an unknown API key) do not throw: they are in the report's
    /// ``SyncReport/lastError``, the events stay queued, and syncs before
    /// ``SyncReport/retryAt`` upload nothing. Cancelling the calling task does not stop an upload
    /// in progress.
    ///
    /// - Returns: What was sent, dropped and left pending.
    /// - Throws: ``StarlingError/noConsent(reason:)``, ``StarlingError/noServer(reason:)``,
    ///   ``StarlingError/storage(reason:)`` or ``StarlingError/closed(reason:)``.
    public func sync() async throws -> SyncReport {
        SyncReport(try await blocking { try $0.sync() })
    }

    /// Whether the user's consent to record and send events is granted. It is persisted, and
    /// starts as not granted.
    public var consent: Bool {
        inner.consent()
    }

    /// Grants or withdraws consent.
    ///
    /// Without consent nothing is recorded or sent. Withdrawing deletes every queued event and
    /// batch at once (counted in ``Diagnostics/eventsDeletedByConsent``). The choice is
    /// persisted.
    ///
    /// - Throws: ``StarlingError/storage(reason:)`` or ``StarlingError/closed(reason:)``.
    public func setConsent(_ granted: Bool) throws {
        try mappingErrors { try inner.setConsent(granted: granted) }
    }

    /// The pseudonymous device id sent with every batch: random, stored on the device, never
    /// derived from hardware.
    ///
    /// - Throws: ``StarlingError/storage(reason:)`` or ``StarlingError/closed(reason:)``.
    public var deviceID: String {
        get throws {
            try mappingErrors { try inner.deviceId() }
        }
    }

    /// Replaces the device id with a new random one, for example when the user asks to be
    /// forgotten. Events tracked before the reset are sent under the old id, later ones under
    /// the new id.
    ///
    /// - Returns: The new device id.
    /// - Throws: ``StarlingError/storage(reason:)`` or ``StarlingError/closed(reason:)``.
    @discardableResult
    public func resetDeviceID() throws -> String {
        try mappingErrors { try inner.resetDeviceId() }
    }

    /// Counters and queue sizes, for a debug screen or your own telemetry.
    ///
    /// - Throws: ``StarlingError/storage(reason:)`` or ``StarlingError/closed(reason:)``.
    public func diagnostics() throws -> Diagnostics {
        Diagnostics(try mappingErrors { try inner.diagnostics() })
    }

    /// Commits what is buffered and stops the native threads. Later calls throw
    /// ``StarlingError/closed(reason:)``; closing twice is fine.
    ///
    /// Releasing the last reference to the instance does the same, so most apps never call this.
    ///
    /// - Throws: ``StarlingError/storage(reason:)`` if the final commit failed.
    public func close() throws {
        try mappingErrors { try inner.close() }
    }

    /// The version of the native library, such as `0.1.0`; it is sent with every batch.
    public static var sdkVersion: String {
        StarlingFFI.sdkVersion()
    }

    /// Runs a blocking call on ``blockingQueue`` and resumes the caller with its result.
    func blocking<T: Sendable>(
        _ body: @escaping @Sendable (StarlingFFI.Starling) throws -> T
    ) async throws -> T {
        let inner = self.inner
        return try await withCheckedThrowingContinuation { continuation in
            blockingQueue.async {
                continuation.resume(
                    with: Result { () throws(StarlingError) in try mappingErrors { try body(inner) }
                    })
            }
        }
    }
}

/// Keeps the data directory out of iCloud and device backups. A backup restored onto a second
/// device would otherwise carry the first device's id and sequence numbers, and the server
/// would discard the second device's events as duplicates. Failure is harmless and ignored.
private func excludeFromBackup(_ directory: URL) {
    #if canImport(Darwin)
    var directory = directory
    var values = URLResourceValues()
    values.isExcludedFromBackup = true
    try? directory.setResourceValues(values)
    #endif
}
