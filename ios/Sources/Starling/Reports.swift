import Foundation
internal import StarlingFFI

/// What one ``Starling/sync()`` did.
///
/// A sync that could not reach the server, or that the server turned away for a reason a retry
/// may fix (an unknown API key, a server error, a timeout), does not throw: it reports
/// ``lastError`` and ``retryAt``, and the events stay queued for the next sync.
public struct SyncReport: Sendable, Hashable {
    /// Batches the server acknowledged.
    public let batchesSent: Int
    /// Events in those batches.
    public let eventsSent: Int
    /// Batches the server refused for good (for example as malformed); they are dropped and
    /// counted in ``Diagnostics/eventsDroppedRejected``.
    public let batchesDropped: Int
    /// Events in those batches.
    public let eventsDropped: Int
    /// Batches still queued on the device after this sync.
    public let batchesPending: Int
    /// Events still queued on the device, batched or not, after this sync.
    public let eventsPending: Int
    /// When the next upload attempt is due, if uploads are backing off after a failure. A sync
    /// before then uploads nothing.
    public let retryAt: Date?
    /// Why the last upload attempt failed, if it did; for example
    /// `"server answered 401"`.
    public let lastError: String?

    init(_ report: StarlingFFI.SyncReport) {
        batchesSent = Int(report.batchesSent)
        eventsSent = Int(clamping: report.eventsSent)
        batchesDropped = Int(report.batchesDropped)
        eventsDropped = Int(clamping: report.eventsDropped)
        batchesPending = Int(clamping: report.batchesPending)
        eventsPending = Int(clamping: report.eventsPending)
        retryAt = report.retryAtMs.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        lastError = report.lastError
    }
}

/// Counters and queue sizes: what happened to every event this device has seen.
///
/// At any moment, every event that ``Starling/track(_:properties:at:)`` accepted is in exactly
/// one of these states: uncommitted, unsealed, batched, sent, evicted, dropped, or deleted by
/// consent withdrawal. Counters marked "this process" start from zero at every
/// ``Starling/open(_:)``; the others are kept in the database.
public struct Diagnostics: Sendable, Hashable {
    /// Events committed to the database since it was created.
    public let eventsCommitted: Int
    /// Events the server acknowledged.
    public let eventsSent: Int
    /// Batches the server acknowledged.
    public let batchesSent: Int
    /// Compressed bytes of the batches the server acknowledged (request bodies).
    public let bytesSent: Int
    /// Events evicted because the store reached ``Starling/Configuration/maxStoreBytes``.
    public let eventsEvictedSize: Int
    /// Events evicted because they reached ``Starling/Configuration/maxAge``.
    public let eventsEvictedAge: Int
    /// Events in batches the server refused for good.
    public let eventsDroppedRejected: Int
    /// Batches dropped for any reason (refused or evicted).
    public let batchesDropped: Int
    /// Events deleted because consent was withdrawn.
    public let eventsDeletedByConsent: Int
    /// Times a damaged database was moved aside and recreated.
    public let databaseRecoveries: Int
    /// Events dropped from memory because the store refused writes for too long (this process).
    public let eventsDroppedUnwritable: Int
    /// Events rejected by validation (this process).
    public let eventsRejectedInvalid: Int
    /// Events refused because the in-memory queue was full (this process).
    public let eventsDroppedQueueFull: Int
    /// Events accepted but not yet committed to the database.
    public let eventsUncommitted: Int
    /// Committed events not yet sealed into a batch.
    public let eventsUnsealed: Int
    /// Sealed batches waiting for upload.
    public let batchesQueued: Int
    /// Events in those batches.
    public let eventsBatched: Int
    /// Bytes the store holds (events and batches), as counted against
    /// ``Starling/Configuration/maxStoreBytes``.
    public let storedBytes: Int
    /// Bandit decisions made with ``Starling/choose(_:context:)``.
    public let decisionsMade: Int
    /// Decisions still waiting for their reward.
    public let decisionsPending: Int
    /// Decisions rewarded by the app with ``Starling/reward(_:value:)``.
    public let rewardsReported: Int
    /// Decisions rewarded by a tracked ``Starling/Bandit/rewardEvent``.
    public let rewardsAttributed: Int
    /// Decisions whose attribution window closed without a reward (learned as 0).
    public let decisionsExpired: Int
    /// Rewards for decisions already settled, ignored.
    public let rewardsLate: Int

    init(_ d: StarlingFFI.Diagnostics) {
        eventsCommitted = Int(clamping: d.eventsCommitted)
        eventsSent = Int(clamping: d.eventsSent)
        batchesSent = Int(clamping: d.batchesSent)
        bytesSent = Int(clamping: d.bytesSent)
        eventsEvictedSize = Int(clamping: d.eventsEvictedSize)
        eventsEvictedAge = Int(clamping: d.eventsEvictedAge)
        eventsDroppedRejected = Int(clamping: d.eventsDroppedRejected)
        batchesDropped = Int(clamping: d.batchesDropped)
        eventsDeletedByConsent = Int(clamping: d.eventsDeletedByConsent)
        databaseRecoveries = Int(clamping: d.databaseRecoveries)
        eventsDroppedUnwritable = Int(clamping: d.eventsDroppedUnwritable)
        eventsRejectedInvalid = Int(clamping: d.eventsRejectedInvalid)
        eventsDroppedQueueFull = Int(clamping: d.eventsDroppedQueueFull)
        eventsUncommitted = Int(clamping: d.eventsUncommitted)
        eventsUnsealed = Int(clamping: d.eventsUnsealed)
        batchesQueued = Int(clamping: d.batchesQueued)
        eventsBatched = Int(clamping: d.eventsBatched)
        storedBytes = Int(clamping: d.storedBytes)
        decisionsMade = Int(clamping: d.decisionsMade)
        decisionsPending = Int(clamping: d.decisionsPending)
        rewardsReported = Int(clamping: d.rewardsReported)
        rewardsAttributed = Int(clamping: d.rewardsAttributed)
        decisionsExpired = Int(clamping: d.decisionsExpired)
        rewardsLate = Int(clamping: d.rewardsLate)
    }
}
