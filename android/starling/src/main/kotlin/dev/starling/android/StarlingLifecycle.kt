package dev.starling.android

import android.app.Activity
import android.app.Application
import android.os.Bundle

/**
 * Tells foreground from background by counting started activities, and reports the two
 * transitions: [onForeground] when the first activity starts, [onBackground] when the last one
 * stops. [StarlingAndroid] turns them into a sync and a flush.
 *
 * A configuration change (rotation, dark mode) stops and restarts an activity within a frame; it is
 * not a trip to the background, so that pair of callbacks reports nothing.
 *
 * The callbacks must be quick (they run on the main thread): the two hooks only hand work to a
 * background executor.
 */
internal class StarlingLifecycle(
    private val onForeground: () -> Unit,
    private val onBackground: () -> Unit,
) : Application.ActivityLifecycleCallbacks {

    // Lifecycle callbacks all arrive on the main thread, so the counter needs no lock; @Volatile is
    // for readers of isForeground on other threads.
    @Volatile
    private var startedActivities = 0

    // Set when an activity stops only to be recreated, until its successor starts.
    @Volatile
    private var configurationChanging = false

    /** Whether at least one activity is started, that is, visible to the user. */
    val isForeground: Boolean get() = startedActivities > 0

    override fun onActivityStarted(activity: Activity) = activityStarted()

    override fun onActivityStopped(activity: Activity) = activityStopped(activity.isChangingConfigurations)

    /** The counting behind [onActivityStarted], apart so it can be tested without an Activity. */
    fun activityStarted() {
        startedActivities++
        if (startedActivities == 1 && !configurationChanging) onForeground()
        configurationChanging = false
    }

    /** The counting behind [onActivityStopped], apart so it can be tested without an Activity. */
    fun activityStopped(changingConfigurations: Boolean) {
        // Never below zero: when install() ran after an activity had started, the count misses it,
        // and its stop still means the app is (most likely) leaving the screen.
        startedActivities = (startedActivities - 1).coerceAtLeast(0)
        if (changingConfigurations) {
            configurationChanging = true
            return
        }
        if (startedActivities == 0) onBackground()
    }

    override fun onActivityCreated(activity: Activity, savedInstanceState: Bundle?) = Unit
    override fun onActivityResumed(activity: Activity) = Unit
    override fun onActivityPaused(activity: Activity) = Unit
    override fun onActivitySaveInstanceState(activity: Activity, outState: Bundle) = Unit
    override fun onActivityDestroyed(activity: Activity) = Unit
}
