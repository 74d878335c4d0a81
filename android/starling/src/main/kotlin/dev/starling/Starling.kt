package dev.starling

import java.util.concurrent.atomic.AtomicBoolean
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import dev.starling.internal.Starling as FfiStarling
import dev.starling.internal.TrackEvent as FfiEvent
import dev.starling.internal.sdkVersion as ffiSdkVersion

/**
 * A Starling instance: records engagement events on the device and uploads them, batched and
 * deduplicated, to the app's aggregation server.
 *
 * Open one per process and data directory with [open] and keep it for the life of the process
 * (on Android, [dev.starling.android.StarlingAndroid.install] does this and wires it to the app's
 * lifecycle). It is safe to use from any thread.
 *
 * ```kotlin
 * val starling = Starling.open(StarlingConfig(dataDir, serverUrl = url, apiKey = key))
 * starling.consent = true                       // after the user opted in
 * starling.track("screen_view", mapOf("screen" to "home"))
 * val report = starling.sync()                  // from a coroutine; syncBlocking() elsewhere
 * ```
 *
 * Every method throws a [StarlingException] subclass on failure, and [StarlingException.Closed]
 * once [close] has been called.
 */
public class Starling internal constructor(
    internal val inner: FfiStarling,
    /** The configuration this instance was opened with. */
    public val config: StarlingConfig,
) : AutoCloseable {

    internal val closed = AtomicBoolean(false)

    /** Whether [close] has been called. */
    public val isClosed: Boolean get() = closed.get()

    /**
     * Records an event. Validates it on the calling thread and hands it to Starling's writer
     * thread: it returns in microseconds and never waits on I/O, so it is fine on the main thread.
     * The event is on disk after [flush], or at the latest [StarlingConfig.flushIntervalMs] later.
     *
     * @param name lower-case name such as `screen_view` (`[a-z][a-z0-9_]*` segments joined by `.`,
     *   at most 64 bytes).
     * @param properties values of type [String], [Int], [Long], [Short], [Byte], [Float], [Double],
     *   [Boolean], [java.util.Date] or [java.time.Instant], in the map's order; `null` values are
     *   left out. See [EventProperties] for the limits.
     * @param timeMs when it happened, Unix epoch ms; `null` means now.
     * @throws IllegalArgumentException if a property has a type Starling cannot store (a
     *   programming error, so it is not a [StarlingException]).
     * @throws StarlingException.NoConsent if consent has not been granted.
     * @throws StarlingException.InvalidEvent if the event breaks a rule; the reason says which.
     * @throws StarlingException.QueueFull if events arrive faster than they can be stored.
     */
    @JvmOverloads
    @Throws(StarlingException::class)
    public fun track(name: String, properties: Map<String, Any?> = emptyMap(), timeMs: Long? = null) {
        track(name, timeMs, EventProperties.of(properties))
    }

    /**
     * Records an event whose properties are built with typed calls, which the compiler checks:
     *
     * ```kotlin
     * starling.track("level_end") {
     *     put("level", 3)
     *     put("won", true)
     * }
     * ```
     *
     * Otherwise the same as the map form of [track].
     */
    @JvmSynthetic
    @Throws(StarlingException::class)
    public fun track(name: String, timeMs: Long? = null, properties: EventProperties.() -> Unit) {
        track(name, timeMs, EventProperties().apply(properties))
    }

    private fun track(name: String, timeMs: Long?, properties: EventProperties) {
        val event = FfiEvent(name = name, timeMs = timeMs, properties = properties.toFfi())
        call { inner.track(event) }
    }

    /**
     * Commits every event tracked so far: once it returns, they survive a crash or a killed
     * process. Runs on [Dispatchers.IO]. The disk write cannot be interrupted, so cancelling the
     * caller takes effect only once it has finished.
     */
    @Throws(StarlingException::class)
    public suspend fun flush(): Unit = withContext(Dispatchers.IO) { flushBlocking() }

    /**
     * [flush] on the calling thread, for Java callers and code that is already on a background
     * thread. Waits on disk I/O: do not call it on the main thread.
     */
    @Throws(StarlingException::class)
    public fun flushBlocking() {
        call { inner.flush() }
    }

    /**
     * Seals pending events into batches and uploads them. Runs on [Dispatchers.IO]; one upload is
     * bounded by [StarlingConfig.uploadTimeoutMs]. Failures worth retrying are reported in the
     * [SyncReport], not thrown, and uploads back off on their own: calling this often is cheap.
     *
     * @throws StarlingException.NoConsent if consent has not been granted.
     * @throws StarlingException.NoServer if [StarlingConfig.serverUrl] is not set.
     */
    @Throws(StarlingException::class)
    public suspend fun sync(): SyncReport = withContext(Dispatchers.IO) { syncBlocking() }

    /**
     * [sync] on the calling thread, for Java callers and background jobs. Waits on the network:
     * do not call it on the main thread.
     */
    @Throws(StarlingException::class)
    public fun syncBlocking(): SyncReport = SyncReport.from(call { inner.sync() })

    /**
     * Whether the user has agreed to engagement events being recorded and sent. It starts out
     * `false` and the choice is stored on the device. While it is `false`, [track] and [sync]
     * throw [StarlingException.NoConsent]; setting it to `false` also deletes every event not yet
     * sent. Setting it waits briefly on disk I/O.
     */
    public var consent: Boolean
        @Throws(StarlingException::class)
        get() = call { inner.consent() }
        @Throws(StarlingException::class)
        set(granted) = call { inner.setConsent(granted) }

    /**
     * The pseudonymous device id sent with every batch: random, stored on the device, never
     * derived from hardware. Reading it waits briefly on the writer thread.
     */
    public val deviceId: String
        @Throws(StarlingException::class)
        get() = call { inner.deviceId() }

    /**
     * Replaces the device id with a new random one, for example when the user asks to be
     * forgotten. Events tracked before the reset are still sent under the old id.
     *
     * @return the new device id.
     */
    @Throws(StarlingException::class)
    public fun resetDeviceId(): String = call { inner.resetDeviceId() }

    /** Counters and queue sizes; see [Diagnostics]. */
    @Throws(StarlingException::class)
    public fun diagnostics(): Diagnostics = Diagnostics.from(call { inner.diagnostics() })

    /**
     * Commits what is buffered, stops Starling's threads and frees the native instance. Later
     * calls throw [StarlingException.Closed]; calling [close] again does nothing. Waits on disk
     * I/O.
     *
     * @throws StarlingException.Storage if the final commit failed; the instance is closed anyway.
     */
    @Throws(StarlingException::class)
    override fun close() {
        if (!closed.compareAndSet(false, true)) return
        try {
            ffiCall { inner.shutdown() }
        } catch (_: StarlingException.Closed) {
            // The core had already stopped (its writer thread died): nothing left to commit.
        } finally {
            // Frees the native handle now rather than whenever the garbage collector gets to it.
            inner.destroy()
        }
    }

    /** Runs [block] against the native instance unless this one is closed, mapping its errors. */
    internal inline fun <T> call(block: () -> T): T {
        if (closed.get()) throw StarlingException.Closed()
        return ffiCall({ closed.get() }, block)
    }

    /** Opening an instance, and facts about the SDK. */
    public companion object {
        /**
         * Opens (or creates) the store in [StarlingConfig.dataDir] and starts the writer thread.
         *
         * Blocking: it reads the database, and a damaged one is set aside and recreated, so call
         * it off the main thread (or use [openAsync]).
         *
         * @throws StarlingException.InvalidConfig if a setting is not usable.
         * @throws StarlingException.Storage if the directory or database cannot be used.
         */
        @JvmStatic
        @Throws(StarlingException::class)
        public fun open(config: StarlingConfig): Starling {
            val ffiConfig = config.toFfi()
            return Starling(ffiCall { FfiStarling.open(ffiConfig) }, config)
        }

        /** [open] on [Dispatchers.IO]. */
        @Throws(StarlingException::class)
        public suspend fun openAsync(config: StarlingConfig): Starling =
            withContext(Dispatchers.IO) { open(config) }

        /** The version of the native SDK, as sent with every batch. */
        @JvmStatic
        public val sdkVersion: String
            get() = ffiCall { ffiSdkVersion() }
    }
}
