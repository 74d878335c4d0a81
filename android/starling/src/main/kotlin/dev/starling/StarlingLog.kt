package dev.starling

import dev.starling.internal.LogLevel as FfiLogLevel
import dev.starling.internal.LogSink as FfiLogSink
import dev.starling.internal.clearLogSink as ffiClearLogSink
import dev.starling.internal.setLogSink as ffiSetLogSink

/** Severity of a log line from Starling's native library, most severe first. */
public enum class LogLevel {
    /** Data was lost (for example events dropped because the disk stayed full). */
    ERROR,

    /** Recoverable trouble (a failed upload that will be retried, an eviction). */
    WARN,

    /** Notable events (consent withdrawn). */
    INFO,

    /** Detail for debugging an integration. */
    DEBUG,

    /** Everything, including per-event detail. */
    TRACE,
}

/**
 * Where the native library's log lines go. Without a sink they are dropped.
 *
 * On Android, [dev.starling.android.StarlingAndroid.install] installs a sink that writes to
 * Logcat (tag `Starling`) unless told not to. Elsewhere, or to route the lines into the app's own
 * logging:
 *
 * ```kotlin
 * StarlingLog.install(LogLevel.INFO) { level, target, message -> logger.log(level, "$target: $message") }
 * ```
 *
 * There is one sink per process; installing another replaces it. Lines never contain event
 * payloads.
 */
public object StarlingLog {
    /**
     * Sends the native library's log lines at [minLevel] and more severe to [sink], replacing any
     * sink installed before.
     *
     * [sink] is called with the level, the line's source (a Rust module path such as
     * `starling_core::sync`) and the message, on Starling's own threads (the writer thread, or
     * the thread calling [Starling.sync]): keep it short and thread-safe. Whatever it throws is
     * caught and dropped, so that it never reaches the native library.
     */
    @JvmStatic
    @JvmOverloads
    public fun install(minLevel: LogLevel = LogLevel.WARN, sink: (LogLevel, String, String) -> Unit) {
        ffiCall { ffiSetLogSink(Forwarder(sink), minLevel.toFfi()) }
    }

    /** Stops forwarding log lines; the native library then logs nothing. */
    @JvmStatic
    public fun clear() {
        ffiCall { ffiClearLogSink() }
    }

    /** The generated callback interface, guarding the native caller against the app's sink. */
    private class Forwarder(private val sink: (LogLevel, String, String) -> Unit) : FfiLogSink {
        override fun log(level: FfiLogLevel, target: String, message: String) {
            try {
                sink(level.toPublic(), target, message)
            } catch (_: Throwable) {
                // Dropped: an exception here would surface inside the native library.
            }
        }
    }

    private fun LogLevel.toFfi(): FfiLogLevel = when (this) {
        LogLevel.ERROR -> FfiLogLevel.ERROR
        LogLevel.WARN -> FfiLogLevel.WARN
        LogLevel.INFO -> FfiLogLevel.INFO
        LogLevel.DEBUG -> FfiLogLevel.DEBUG
        LogLevel.TRACE -> FfiLogLevel.TRACE
    }

    private fun FfiLogLevel.toPublic(): LogLevel = when (this) {
        FfiLogLevel.ERROR -> LogLevel.ERROR
        FfiLogLevel.WARN -> LogLevel.WARN
        FfiLogLevel.INFO -> LogLevel.INFO
        FfiLogLevel.DEBUG -> LogLevel.DEBUG
        FfiLogLevel.TRACE -> LogLevel.TRACE
    }
}
