package dev.starling.android

import android.app.Activity
import android.app.Application
import android.app.job.JobInfo
import android.app.job.JobScheduler
import android.content.ComponentName
import android.content.Context
import android.os.Bundle

/**
 * Placeholder Android glue: tracks whether any activity is started (app in the
 * foreground) and schedules background work through JobScheduler.
 * Compiled by android/jvm-tests against Robolectric's android-all to prove the
 * glue builds off-device; to be replaced by the real glue.
 */
class StarlingLifecycle : Application.ActivityLifecycleCallbacks {
    @Volatile
    var startedActivities: Int = 0
        private set

    val isForeground: Boolean get() = startedActivities > 0

    fun register(application: Application) {
        application.registerActivityLifecycleCallbacks(this)
    }

    override fun onActivityStarted(activity: Activity) {
        startedActivities++
    }

    override fun onActivityStopped(activity: Activity) {
        if (startedActivities > 0) startedActivities--
    }

    override fun onActivityCreated(activity: Activity, savedInstanceState: Bundle?) {}
    override fun onActivityResumed(activity: Activity) {}
    override fun onActivityPaused(activity: Activity) {}
    override fun onActivitySaveInstanceState(activity: Activity, outState: Bundle) {}
    override fun onActivityDestroyed(activity: Activity) {}

    companion object {
        const val SYNC_JOB_ID: Int = 0x5741 // "SW"

        /** Schedules a periodic, network-bound job run by [service]. */
        fun scheduleSync(context: Context, service: Class<*>, periodMillis: Long): Boolean {
            val scheduler = context.getSystemService(JobScheduler::class.java) ?: return false
            val job = JobInfo.Builder(SYNC_JOB_ID, ComponentName(context, service))
                .setRequiredNetworkType(JobInfo.NETWORK_TYPE_ANY)
                .setPeriodic(periodMillis)
                .setPersisted(false)
                .build()
            return scheduler.schedule(job) == JobScheduler.RESULT_SUCCESS
        }
    }
}
