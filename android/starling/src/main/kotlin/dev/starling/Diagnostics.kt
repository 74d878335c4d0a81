package dev.starling

import dev.starling.internal.Diagnostics as FfiDiagnostics

/**
 * Counters and queue sizes: what happened to every event this device has seen.
 *
 * Every event accepted by [Starling.track] is, at any moment, in exactly one of these states:
 * uncommitted, unsealed, batched, sent, evicted, dropped, or deleted by consent withdrawal. Totals
 * count since the database was created unless marked "this process". All counts are events unless
 * the name says batches or bytes.
 */
public data class Diagnostics(
    /** Events committed to the database. */
    val eventsCommitted: Long,
    /** Events the server acknowledged. */
    val eventsSent: Long,
    /** Batches the server acknowledged. */
    val batchesSent: Long,
    /** Compressed bytes of the batches the server acknowledged (request bodies). */
    val bytesSent: Long,
    /** Events evicted because the store reached [StarlingConfig.maxStoreBytes]. */
    val eventsEvictedSize: Long,
    /** Events evicted because they reached [StarlingConfig.maxAgeMs]. */
    val eventsEvictedAge: Long,
    /** Events in batches the server refused for good. */
    val eventsDroppedRejected: Long,
    /** Batches dropped for any reason (refused or evicted). */
    val batchesDropped: Long,
    /** Events deleted because consent was withdrawn. */
    val eventsDeletedByConsent: Long,
    /** Times a damaged database was set aside and recreated. */
    val databaseRecoveries: Long,
    /** Events dropped from memory because the store refused writes for too long (this process). */
    val eventsDroppedUnwritable: Long,
    /** Events rejected by validation (this process). */
    val eventsRejectedInvalid: Long,
    /** Events refused because the in-memory queue was full (this process). */
    val eventsDroppedQueueFull: Long,
    /** Events accepted but not yet committed to disk. */
    val eventsUncommitted: Long,
    /** Committed events not yet sealed into a batch. */
    val eventsUnsealed: Long,
    /** Sealed batches waiting for upload. */
    val batchesQueued: Long,
    /** Events in those batches. */
    val eventsBatched: Long,
    /** Bytes the store holds, as counted against [StarlingConfig.maxStoreBytes]. */
    val storedBytes: Long,
    /** Bandit decisions made with [Starling.choose]. */
    val decisionsMade: Long,
    /** Decisions still waiting for their reward. */
    val decisionsPending: Long,
    /** Decisions rewarded by the app with [Starling.reward]. */
    val rewardsReported: Long,
    /** Decisions rewarded by a tracked [BanditDefinition.rewardEvent]. */
    val rewardsAttributed: Long,
    /** Decisions whose attribution window closed without a reward (learned as 0). */
    val decisionsExpired: Long,
    /** Rewards for decisions already settled, ignored. */
    val rewardsLate: Long,
) {
    /** Events still on the device and not yet sent: uncommitted, unsealed and batched. */
    val eventsPending: Long get() = eventsUncommitted + eventsUnsealed + eventsBatched

    internal companion object {
        fun from(d: FfiDiagnostics) = Diagnostics(
            eventsCommitted = d.eventsCommitted.toLong(),
            eventsSent = d.eventsSent.toLong(),
            batchesSent = d.batchesSent.toLong(),
            bytesSent = d.bytesSent.toLong(),
            eventsEvictedSize = d.eventsEvictedSize.toLong(),
            eventsEvictedAge = d.eventsEvictedAge.toLong(),
            eventsDroppedRejected = d.eventsDroppedRejected.toLong(),
            batchesDropped = d.batchesDropped.toLong(),
            eventsDeletedByConsent = d.eventsDeletedByConsent.toLong(),
            databaseRecoveries = d.databaseRecoveries.toLong(),
            eventsDroppedUnwritable = d.eventsDroppedUnwritable.toLong(),
            eventsRejectedInvalid = d.eventsRejectedInvalid.toLong(),
            eventsDroppedQueueFull = d.eventsDroppedQueueFull.toLong(),
            eventsUncommitted = d.eventsUncommitted.toLong(),
            eventsUnsealed = d.eventsUnsealed.toLong(),
            batchesQueued = d.batchesQueued.toLong(),
            eventsBatched = d.eventsBatched.toLong(),
            storedBytes = d.storedBytes.toLong(),
            decisionsMade = d.decisionsMade.toLong(),
            decisionsPending = d.decisionsPending.toLong(),
            rewardsReported = d.rewardsReported.toLong(),
            rewardsAttributed = d.rewardsAttributed.toLong(),
            decisionsExpired = d.decisionsExpired.toLong(),
            rewardsLate = d.rewardsLate.toLong(),
        )
    }
}
