package dev.starling.android

import android.app.Application
import android.content.Context
import android.os.Process
import android.util.Log
import dev.starling.LogLevel
import dev.starling.Starling
import dev.starling.StarlingConfig
import dev.starling.StarlingException
import dev.starling.StarlingLog
import java.io.File
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * The process-wide Starling instance of an Android app, wired to the app's lifecycle.
 *
 * ```kotlin
 * class App : Application() {
 *     override fun onCreate() {
 *         super.onCreate()
 *         StarlingAndroid.install(this, StarlingConfig(StarlingAndroid.defaultDataDir(this), serverUrl, apiKey))
 *         StarlingSyncJobService.schedulePeriodicSync(this)
 *     }
 * }
 * ```
 *
 * Once installed, events are flushed to disk when the app goes to the background (the process may
 * be killed at any moment after that), and queued events are uploaded when it comes back to the
 * foreground with a network, and whenever [StarlingSyncJobService] runs.
 */
public object StarlingAndroid {
    private const val TAG = "Starling"

    private class Installation(
        val application: Application,
        val starling: Starling,
        val lifecycle: StarlingLifecycle,
    )

    @Volatile
    private var installation: Installation? = null

    /**
     * One background thread for the lifecycle's flushes and syncs and for the sync job, so that
     * they queue behind each other instead of competing for the disk and the network.
     */
    internal val executor: ExecutorService by lazy {
        Executors.newSingleThreadExecutor { task ->
            Thread({
                Process.setThreadPriority(Process.THREAD_PRIORITY_BACKGROUND)
                task.run()
            }, "starling-android").apply { isDaemon = true }
        }
    }

    /**
     * Opens Starling with [config], keeps it for the process and registers the lifecycle
     * callbacks. Call it once, from `Application.onCreate`, so that it is in place before any
     * activity starts and before the sync job runs.
     *
     * Blocking: it opens the database (a few milliseconds on a healthy device; longer if a damaged
     * database must be recreated), which StrictMode reports as disk I/O on the main thread.
     *
     * Calling it again with an equal configuration returns the same instance.
     *
     * @param forwardLogsToLogcat whether to send the native library's warnings and errors to
     *   Logcat (tag `Starling`) with [StarlingLog]. Pass `false` to install a sink of your own, or
     *   none; the Logcat sink stays in place until [StarlingLog.clear] or another
     *   [StarlingLog.install].
     * @throws IllegalStateException if Starling is already installed with another configuration.
     * @throws StarlingException if the instance cannot be opened; see [Starling.open].
     */
    @JvmStatic
    @JvmOverloads
    @Synchronized
    @Throws(StarlingException::class)
    public fun install(
        application: Application,
        config: StarlingConfig,
        forwardLogsToLogcat: Boolean = true,
    ): Starling {
        installation?.let { current ->
            check(current.starling.config == config) {
                "Starling is already installed with another configuration; call uninstall() first"
            }
            return current.starling
        }
        // Before opening, so that what opening logs (a recreated database) reaches Logcat too.
        if (forwardLogsToLogcat) StarlingLog.install(LogLevel.WARN, ::logToLogcat)
        val starling = Starling.open(config)
        val lifecycle = StarlingLifecycle(
            onForeground = { executor.execute { syncIfOnline(application, starling) } },
            onBackground = { executor.execute { flush(starling) } },
        )
        application.registerActivityLifecycleCallbacks(lifecycle)
        installation = Installation(application, starling, lifecycle)
        return starling
    }

    /** The installed instance, or `null` before [install]. */
    @JvmStatic
    public val instance: Starling?
        get() = installation?.starling

    /**
     * The installed instance.
     *
     * @throws IllegalStateException before [install].
     */
    @JvmStatic
    public fun requireInstance(): Starling =
        checkNotNull(instance) { "Starling is not installed: call StarlingAndroid.install from Application.onCreate" }

    /** Whether an activity of the app is visible, as counted since [install]. */
    @JvmStatic
    public val isForeground: Boolean
        get() = installation?.lifecycle?.isForeground ?: false

    /**
     * Unregisters the lifecycle callbacks and closes the instance (committing what is buffered).
     * Mostly for tests and for apps that let the user turn Starling off entirely; withdrawing
     * [Starling.consent] is usually what an app wants instead.
     */
    @JvmStatic
    @Synchronized
    public fun uninstall() {
        val current = installation ?: return
        installation = null
        current.application.unregisterActivityLifecycleCallbacks(current.lifecycle)
        try {
            current.starling.close()
        } catch (e: StarlingException) {
            Log.e(TAG, "closing Starling failed, buffered events may be lost: ${e.reason}")
        }
    }

    /**
     * The recommended [StarlingConfig.dataDir]: `noBackupFilesDir/starling`, which keeps the
     * pseudonymous device id and the queue out of cloud backups and device-to-device transfers.
     */
    @JvmStatic
    public fun defaultDataDir(context: Context): File = File(context.noBackupFilesDir, "starling")

    /** One native log line to Logcat, under [TAG], at the matching priority. */
    internal fun logToLogcat(level: LogLevel, target: String, message: String) {
        Log.println(logcatPriority(level), TAG, "$target: $message")
    }

    internal fun logcatPriority(level: LogLevel): Int = when (level) {
        LogLevel.ERROR -> Log.ERROR
        LogLevel.WARN -> Log.WARN
        LogLevel.INFO -> Log.INFO
        LogLevel.DEBUG -> Log.DEBUG
        LogLevel.TRACE -> Log.VERBOSE
    }

    // Background work must never crash the app: a failure here is logged and the data stays
    // queued for the next attempt. Missing consent is the user's choice, not a problem.

    private fun flush(starling: Starling) {
        try {
            starling.flushBlocking()
        } catch (e: StarlingException) {
            if (e !is StarlingException.Closed) Log.w(TAG, "flush on going to the background failed: ${e.reason}")
        }
    }

    private fun syncIfOnline(context: Context, starling: Starling) {
        if (starling.config.serverUrl == null || !DeviceConditions.read(context).isOnline) return
        try {
            val report = starling.syncBlocking()
            report.lastError?.let { Log.w(TAG, "sync on coming to the foreground failed: $it") }
        } catch (e: StarlingException) {
            if (e !is StarlingException.NoConsent && e !is StarlingException.Closed) {
                Log.w(TAG, "sync on coming to the foreground failed: ${e.reason}")
            }
        }
    }
}
