package dev.starling.android

import android.app.job.JobInfo
import android.app.job.JobParameters
import android.app.job.JobScheduler
import android.app.job.JobService
import android.content.ComponentName
import android.content.Context
import android.util.Log
import dev.starling.Starling
import dev.starling.StarlingException

/**
 * Uploads queued events when the system runs Starling's periodic job; schedule it with
 * [schedulePeriodicSync].
 *
 * It syncs the instance installed with [StarlingAndroid.install] on Starling's background thread
 * (job callbacks arrive on the main thread) and, when an upload failed for a reason worth
 * retrying (no network, a server error, a wrong key), asks the system to run it again with its
 * own backoff. The library's manifest declares the service.
 */
public class StarlingSyncJobService : JobService() {

    override fun onStartJob(params: JobParameters): Boolean {
        val starling = StarlingAndroid.instance
        if (starling == null) {
            // Application.onCreate runs before any service, so the app does not install Starling
            // in this process (or not synchronously): there is nothing to sync.
            Log.w(TAG, "sync job: Starling is not installed in this process; skipping")
            return false
        }
        StarlingAndroid.executor.execute {
            val outcome = syncForJob(starling)
            if (outcome.reschedule) {
                Log.w(TAG, "sync job: ${outcome.message}")
            } else {
                Log.d(TAG, "sync job: ${outcome.message}")
            }
            jobFinished(params, outcome.reschedule)
        }
        return true
    }

    // The system withdrew the job's conditions (the network went away) mid-upload. The native
    // upload cannot be interrupted, but it is bounded by uploadTimeoutMs and safe to repeat (the
    // server deduplicates), so simply ask for another run.
    override fun onStopJob(params: JobParameters): Boolean = true

    /** Scheduling the periodic job. */
    public companion object {
        private const val TAG = "Starling"

        /** Default job id ("St"); pass another to [schedulePeriodicSync] if the app already uses it. */
        public const val JOB_ID: Int = 0x5374

        /** Default sync interval: every six hours, in ms. */
        public const val DEFAULT_INTERVAL_MS: Long = 6 * 3600 * 1000L

        /**
         * Schedules (or updates) a periodic sync with `JobScheduler`. Call it from
         * `Application.onCreate`: when the same schedule is already pending it is left alone, so
         * its period is not restarted at every launch.
         *
         * The job is not persisted across reboots (that would need the app to hold
         * `RECEIVE_BOOT_COMPLETED`); it is scheduled again the next time the app starts.
         *
         * @param intervalMs how often to sync, in ms. The system runs periodic jobs at most every
         *   15 minutes and raises shorter intervals to that.
         * @param requireUnmetered only sync on an unmetered network, such as Wi-Fi.
         * @param requireCharging only sync while the device is charging.
         * @param jobId the job's id, unique within the app.
         * @return whether the job is scheduled.
         */
        @JvmStatic
        @JvmOverloads
        public fun schedulePeriodicSync(
            context: Context,
            intervalMs: Long = DEFAULT_INTERVAL_MS,
            requireUnmetered: Boolean = false,
            requireCharging: Boolean = false,
            jobId: Int = JOB_ID,
        ): Boolean {
            val scheduler = context.getSystemService(JobScheduler::class.java) ?: return false
            val component = ComponentName(context, StarlingSyncJobService::class.java)
            val job = buildJob(component, jobId, intervalMs, requireUnmetered, requireCharging)
            val pending = scheduler.getPendingJob(jobId)
            if (pending != null && sameSchedule(pending, job)) return true
            return scheduler.schedule(job) == JobScheduler.RESULT_SUCCESS
        }

        /** Cancels the job scheduled by [schedulePeriodicSync]. */
        @JvmStatic
        @JvmOverloads
        public fun cancelPeriodicSync(context: Context, jobId: Int = JOB_ID) {
            context.getSystemService(JobScheduler::class.java)?.cancel(jobId)
        }

        /** The periodic job; the backoff after a failed run is the system's default (30 s, exponential). */
        internal fun buildJob(
            component: ComponentName,
            jobId: Int,
            intervalMs: Long,
            requireUnmetered: Boolean,
            requireCharging: Boolean,
        ): JobInfo = JobInfo.Builder(jobId, component)
            .setPeriodic(intervalMs)
            .setRequiredNetworkType(if (requireUnmetered) JobInfo.NETWORK_TYPE_UNMETERED else JobInfo.NETWORK_TYPE_ANY)
            .setRequiresCharging(requireCharging)
            .setPersisted(false)
            .build()

        /** Whether [pending] already does what [wanted] asks for, so rescheduling can be skipped. */
        @Suppress("DEPRECATION") // networkType: its replacement, requiredNetwork, needs API 28.
        internal fun sameSchedule(pending: JobInfo, wanted: JobInfo): Boolean =
            pending.service == wanted.service &&
                pending.isPeriodic && pending.intervalMillis == wanted.intervalMillis &&
                pending.networkType == wanted.networkType &&
                pending.isRequireCharging == wanted.isRequireCharging

        /**
         * Runs one sync for the job and decides whether the system should retry it. Only
         * failures that a later attempt can fix ask for a retry: a failed upload, or a store that
         * could not be written (a full disk). Missing consent, a missing server URL or a closed
         * instance will not change by retrying.
         */
        internal fun syncForJob(starling: Starling): JobOutcome =
            try {
                val report = starling.syncBlocking()
                if (report.isRetryNeeded) {
                    JobOutcome(true, "upload failed (${report.lastError}); ${report.eventsPending} events stay queued")
                } else {
                    JobOutcome(false, "sent ${report.eventsSent} events; ${report.eventsPending} pending")
                }
            } catch (e: StarlingException) {
                when (e) {
                    is StarlingException.Storage -> JobOutcome(true, "storage failed: ${e.reason}")
                    is StarlingException.NoConsent,
                    is StarlingException.NoServer,
                    is StarlingException.Closed,
                    is StarlingException.InvalidConfig,
                    is StarlingException.InvalidEvent,
                    is StarlingException.QueueFull,
                    is StarlingException.NotFound,
                    is StarlingException.InvalidArgument,
                    is StarlingException.Internal,
                    -> JobOutcome(false, "not synced: ${e.reason}")
                }
            }
    }
}

/** What a sync job run did: whether to ask the system for a retry, and a line for the log. */
internal data class JobOutcome(val reschedule: Boolean, val message: String)
