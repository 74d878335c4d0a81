package dev.starling

import java.io.File
import dev.starling.internal.StarlingConfig as FfiConfig

/**
 * Settings for [Starling.open].
 *
 * Only [dataDir] is required. The defaults are the core's own (the same values as the native
 * `defaultConfig`, which a test checks), chosen for a phone: a few hundred milliseconds of
 * buffering, a 16 MiB store and retries that back off from 30 s to one hour.
 *
 * ```kotlin
 * val config = StarlingConfig(
 *     dataDir = File(context.noBackupFilesDir, "starling"),
 *     serverUrl = "https://starling.example.com",
 *     apiKey = BuildConfig.STARLING_KEY,
 * )
 * ```
 */
public data class StarlingConfig @JvmOverloads constructor(
    /**
     * Directory for Starling's database, created if missing. Use one directory per process:
     * `noBackupFilesDir` keeps the pseudonymous device id out of cloud backups.
     */
    val dataDir: File,
    /** Base URL of the aggregation server, such as `https://starling.example.com`; `null` keeps events local. */
    val serverUrl: String? = null,
    /** The app's API key for the server, sent as a bearer token. */
    val apiKey: String = "",
    /** The app's own version of its event schema, sent with every batch. */
    val schemaVersion: Int = DEFAULT_SCHEMA_VERSION,
    /** Longest time a tracked event stays in memory before it is committed to disk, in ms. */
    val flushIntervalMs: Long = DEFAULT_FLUSH_INTERVAL_MS,
    /** Bound on stored events and batches together, in bytes; the oldest are evicted beyond it. */
    val maxStoreBytes: Long = DEFAULT_MAX_STORE_BYTES,
    /** Events and batches older than this are evicted, in ms. */
    val maxAgeMs: Long = DEFAULT_MAX_AGE_MS,
    /** Most events in one uploaded batch. */
    val batchMaxEvents: Int = DEFAULT_BATCH_MAX_EVENTS,
    /** Bound on one upload, connection to last byte, in ms. */
    val uploadTimeoutMs: Long = DEFAULT_UPLOAD_TIMEOUT_MS,
    /** First retry delay after a failed upload, in ms; it doubles (with jitter) per failure. */
    val backoffInitialMs: Long = DEFAULT_BACKOFF_INITIAL_MS,
    /** Longest retry delay, in ms. */
    val backoffMaxMs: Long = DEFAULT_BACKOFF_MAX_MS,
    /**
     * If set, the core syncs from its own thread at this interval, in ms. On Android prefer
     * `null` and [dev.starling.android.StarlingSyncJobService], which lets the system pick a
     * moment with network and battery to spare.
     */
    val backgroundSyncIntervalMs: Long? = null,
    /** Signals kept current on the device; see [SignalDefinition]. */
    val signals: List<SignalDefinition> = emptyList(),
    /**
     * Events older than the newest one by more than this are too late for the signals (stored
     * and sent, but applied to none), in ms. Default 5 minutes.
     */
    val signalAllowedLatenessMs: Long = DEFAULT_SIGNAL_ALLOWED_LATENESS_MS,
    /** Bandits that choose variants on the device; see [BanditDefinition]. */
    val bandits: List<BanditDefinition> = emptyList(),
) {
    /** Same as the primary constructor, for a directory given as a path. */
    public constructor(dataDir: String) : this(File(dataDir))

    /** The core's defaults, in the units of the fields they fill. */
    public companion object {
        /** Default [schemaVersion]. */
        public const val DEFAULT_SCHEMA_VERSION: Int = 1
        /** Default [flushIntervalMs]: half a second. */
        public const val DEFAULT_FLUSH_INTERVAL_MS: Long = 500
        /** Default [maxStoreBytes]: 16 MiB. */
        public const val DEFAULT_MAX_STORE_BYTES: Long = 16L * 1024 * 1024
        /** Default [maxAgeMs]: 30 days. */
        public const val DEFAULT_MAX_AGE_MS: Long = 30L * 24 * 3600 * 1000
        /** Default [batchMaxEvents]. */
        public const val DEFAULT_BATCH_MAX_EVENTS: Int = 500
        /** Default [uploadTimeoutMs]: 20 s. */
        public const val DEFAULT_UPLOAD_TIMEOUT_MS: Long = 20_000
        /** Default [backoffInitialMs]: 30 s. */
        public const val DEFAULT_BACKOFF_INITIAL_MS: Long = 30_000
        /** Default [backoffMaxMs]: one hour. */
        public const val DEFAULT_BACKOFF_MAX_MS: Long = 3600L * 1000
        /** Default [signalAllowedLatenessMs]: 5 minutes. */
        public const val DEFAULT_SIGNAL_ALLOWED_LATENESS_MS: Long = 5L * 60 * 1000
    }

    /**
     * The generated record. Negative numbers are refused here, because converting them to the
     * core's unsigned types would turn them into huge values instead of an error; zero and the
     * remaining rules are the core's to check, so every rule has one home.
     */
    internal fun toFfi(): FfiConfig = FfiConfig(
        dataDir = dataDir.path,
        serverUrl = serverUrl,
        apiKey = apiKey,
        schemaVersion = nonNegative("schemaVersion", schemaVersion.toLong()).toUInt(),
        flushIntervalMs = nonNegative("flushIntervalMs", flushIntervalMs).toULong(),
        maxStoreBytes = nonNegative("maxStoreBytes", maxStoreBytes).toULong(),
        maxAgeMs = nonNegative("maxAgeMs", maxAgeMs).toULong(),
        batchMaxEvents = nonNegative("batchMaxEvents", batchMaxEvents.toLong()).toUInt(),
        uploadTimeoutMs = nonNegative("uploadTimeoutMs", uploadTimeoutMs).toULong(),
        backoffInitialMs = nonNegative("backoffInitialMs", backoffInitialMs).toULong(),
        backoffMaxMs = nonNegative("backoffMaxMs", backoffMaxMs).toULong(),
        backgroundSyncIntervalMs = backgroundSyncIntervalMs
            ?.let { nonNegative("backgroundSyncIntervalMs", it).toULong() },
        signals = signals.map { it.toFfi() },
        signalAllowedLatenessMs = nonNegative("signalAllowedLatenessMs", signalAllowedLatenessMs).toULong(),
        bandits = bandits.map { it.toFfi() },
    )

    // The API key is a credential: keep it out of logs and crash reports that print the config.
    override fun toString(): String =
        "StarlingConfig(dataDir=$dataDir, serverUrl=$serverUrl, apiKey=${if (apiKey.isEmpty()) "" else "***"}, " +
            "schemaVersion=$schemaVersion, flushIntervalMs=$flushIntervalMs, maxStoreBytes=$maxStoreBytes, " +
            "maxAgeMs=$maxAgeMs, batchMaxEvents=$batchMaxEvents, uploadTimeoutMs=$uploadTimeoutMs, " +
            "backoffInitialMs=$backoffInitialMs, backoffMaxMs=$backoffMaxMs, " +
            "backgroundSyncIntervalMs=$backgroundSyncIntervalMs, signals=$signals, " +
            "signalAllowedLatenessMs=$signalAllowedLatenessMs, bandits=$bandits)"
}

internal fun nonNegative(name: String, value: Long): Long {
    if (value < 0) {
        throw StarlingException.InvalidConfig("invalid configuration: $name must not be negative, got $value")
    }
    return value
}
