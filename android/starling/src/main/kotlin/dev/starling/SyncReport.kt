package dev.starling

import dev.starling.internal.SyncReport as FfiSyncReport

/**
 * What one [Starling.sync] did.
 *
 * Failures worth retrying (no network, a 5xx, a wrong API key) are not thrown: they are reported
 * here in [lastError], the events stay queued, and [retryAtMs] says when the next attempt is due.
 */
public data class SyncReport(
    /** Batches the server acknowledged. */
    val batchesSent: Long,
    /** Events in those batches. */
    val eventsSent: Long,
    /** Batches the server refused for good (malformed or too large); they are dropped and counted. */
    val batchesDropped: Long,
    /** Events in those batches. */
    val eventsDropped: Long,
    /** Batches still queued on the device after this sync. */
    val batchesPending: Long,
    /** Events still queued on the device, batched or not, after this sync. */
    val eventsPending: Long,
    /** When the next upload attempt is due, Unix epoch ms, if uploads are backing off. */
    val retryAtMs: Long?,
    /** Why the last upload attempt failed (for example `server answered 401`), if it did. */
    val lastError: String?,
) {
    /** True when an upload failed and should be tried again later; see [lastError]. */
    val isRetryNeeded: Boolean get() = lastError != null

    internal companion object {
        fun from(r: FfiSyncReport) = SyncReport(
            batchesSent = r.batchesSent.toLong(),
            eventsSent = r.eventsSent.toLong(),
            batchesDropped = r.batchesDropped.toLong(),
            eventsDropped = r.eventsDropped.toLong(),
            batchesPending = r.batchesPending.toLong(),
            eventsPending = r.eventsPending.toLong(),
            retryAtMs = r.retryAtMs,
            lastError = r.lastError,
        )
    }
}
