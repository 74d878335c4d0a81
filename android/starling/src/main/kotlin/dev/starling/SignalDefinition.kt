package dev.starling

import dev.starling.internal.PropertyValue as FfiValue
import dev.starling.internal.SessionMeasureDefinition as FfiMeasure
import dev.starling.internal.SignalDefinition as FfiSignal
import dev.starling.internal.SignalKindDefinition as FfiKind

/**
 * A signal: a number about this device's own activity that Starling keeps current from the
 * events it stores, such as screens viewed in the last hour or the length of the current session.
 * Signals never leave the device. Declare them in [StarlingConfig.signals] and read them with
 * [Starling.signals] or, for a model or a bandit, [Starling.featureVector]:
 *
 * ```kotlin
 * val config = StarlingConfig(
 *     dataDir,
 *     signals = listOf(
 *         SignalDefinition.WindowedCount("views_1h", event = "screen_view", windowMs = 3_600_000),
 *         SignalDefinition.Session("sessions"),
 *     ),
 * )
 * ```
 *
 * Values are as of the newest event applied (the watermark), not of the wall clock; see
 * `docs/signals.md` for each kind's memory and error bound. All durations are in milliseconds;
 * a definition that is not usable makes [Starling.open] throw [StarlingException.InvalidConfig]
 * naming the signal and the rule.
 *
 * A signal's state is kept across restarts as long as its definition is unchanged; a new or
 * changed definition starts from nothing.
 */
public sealed class SignalDefinition {
    /** The name it is read by; unique among [StarlingConfig.signals]. */
    public abstract val name: String

    /**
     * Events called [event] (only those matching [filter], if given) in the last [windowMs] of
     * event time, counted in buckets of [granularityMs]. The count may include up to one bucket
     * more than the window, never less.
     */
    public data class WindowedCount @JvmOverloads constructor(
        override val name: String,
        /** The event counted. */
        val event: String,
        /** Length of the window, in ms. */
        val windowMs: Long,
        /** Bucket length, in ms; must divide [windowMs]. `null`: a sixtieth of the window. */
        val granularityMs: Long? = null,
        /** Only events whose property equals this value are counted; `null` counts them all. */
        val filter: PropertyFilter? = null,
    ) : SignalDefinition()

    /**
     * An exponential moving average with half-life [halfLifeMs]: a decayed count of events called
     * [event], or, with [property], the decayed mean of that numeric property.
     */
    public data class MovingAverage @JvmOverloads constructor(
        override val name: String,
        /** The event averaged. */
        val event: String,
        /** Time for an event's weight to halve, in ms. */
        val halfLifeMs: Long,
        /** A numeric property to average; `null` averages the rate of the event. */
        val property: String? = null,
    ) : SignalDefinition()

    /**
     * Sessions of activity: a session ends after [timeoutMs] without events, or once it has
     * lasted [maxLengthMs]. Each [measure] is its own signal.
     */
    public data class Session @JvmOverloads constructor(
        override val name: String,
        /** What the signal's value is. */
        val measure: SessionMeasure = SessionMeasure.COUNT,
        /** The event that counts as activity; `null` means any event. */
        val event: String? = null,
        /** Inactivity that ends a session, in ms. Default 30 minutes. */
        val timeoutMs: Long = DEFAULT_SESSION_TIMEOUT_MS,
        /** Longest session, in ms; longer activity is split. Default 4 hours. */
        val maxLengthMs: Long = DEFAULT_SESSION_MAX_LENGTH_MS,
    ) : SignalDefinition()

    /**
     * How unusual the rate of [event] is: the z-score of the latest complete bucket of [bucketMs]
     * against an exponentially weighted baseline of the buckets before it. [SignalSnapshot.trend]
     * reports [SignalTrend.SURGE] or [SignalTrend.DROP] once |z| reaches [thresholdZ].
     */
    public data class Surge @JvmOverloads constructor(
        override val name: String,
        /** The event whose rate is watched. */
        val event: String,
        /** Bucket length, in ms. */
        val bucketMs: Long,
        /** Half-life of the baseline, in buckets. Default 24 (a day of hourly buckets). */
        val baselineHalfLifeBuckets: Double = DEFAULT_SURGE_HALF_LIFE_BUCKETS,
        /** Complete buckets the baseline needs before the score is reported (0 until then). */
        val warmupBuckets: Int = DEFAULT_SURGE_WARMUP_BUCKETS,
        /** |z| that counts as a surge or a drop, in standard deviations. Default 3. */
        val thresholdZ: Double = DEFAULT_SURGE_THRESHOLD_Z,
    ) : SignalDefinition()

    /**
     * The estimated number of distinct values of [property] on events called [event] since the
     * signal was defined (HyperLogLog, about 3.3% standard error; small counts nearly exact).
     */
    public data class DistinctCount(
        override val name: String,
        /** The event looked at. */
        val event: String,
        /** The property whose distinct values are counted. */
        val property: String,
    ) : SignalDefinition()

    /**
     * The [k] most frequent values of [property] on events called [event] since the signal was
     * defined (Count-Min sketch: estimates never below the true count). The signal's value is the
     * estimated count of the most frequent one; [SignalSnapshot.topValues] lists them all.
     */
    public data class HeavyHitters @JvmOverloads constructor(
        override val name: String,
        /** The event looked at. */
        val event: String,
        /** The property whose values are counted. */
        val property: String,
        /** How many values are kept, 1 to 100. */
        val k: Int = DEFAULT_HEAVY_HITTERS_K,
    ) : SignalDefinition()

    /** Defaults of the optional parameters, in the units of the fields they fill. */
    public companion object {
        /** Default [Session.timeoutMs]: 30 minutes. */
        public const val DEFAULT_SESSION_TIMEOUT_MS: Long = 30L * 60 * 1000
        /** Default [Session.maxLengthMs]: 4 hours. */
        public const val DEFAULT_SESSION_MAX_LENGTH_MS: Long = 4L * 3600 * 1000
        /** Default [Surge.baselineHalfLifeBuckets]. */
        public const val DEFAULT_SURGE_HALF_LIFE_BUCKETS: Double = 24.0
        /** Default [Surge.warmupBuckets]. */
        public const val DEFAULT_SURGE_WARMUP_BUCKETS: Int = 24
        /** Default [Surge.thresholdZ], in standard deviations. */
        public const val DEFAULT_SURGE_THRESHOLD_Z: Double = 3.0
        /** Default [HeavyHitters.k]. */
        public const val DEFAULT_HEAVY_HITTERS_K: Int = 10
    }

    /**
     * The generated record. Negative numbers are refused here (the core's unsigned types would
     * turn them into huge values); zero and every other rule are the core's to check.
     */
    internal fun toFfi(): FfiSignal {
        fun ms(field: String, value: Long) = nonNegative("signal \"$name\": $field", value).toULong()
        val kind = when (this) {
            is WindowedCount -> FfiKind.WindowedCount(
                event = event,
                filterKey = filter?.key,
                filterValue = filter?.toFfi(),
                windowMs = ms("windowMs", windowMs),
                granularityMs = granularityMs?.let { ms("granularityMs", it) },
            )
            is MovingAverage -> FfiKind.MovingAverage(
                event = event,
                property = property,
                halfLifeMs = ms("halfLifeMs", halfLifeMs),
            )
            is Session -> FfiKind.Session(
                event = event,
                timeoutMs = ms("timeoutMs", timeoutMs),
                maxLengthMs = ms("maxLengthMs", maxLengthMs),
                measure = measure.ffi,
            )
            is Surge -> FfiKind.Surge(
                event = event,
                bucketMs = ms("bucketMs", bucketMs),
                baselineHalfLifeBuckets = baselineHalfLifeBuckets,
                warmupBuckets = nonNegative("signal \"$name\": warmupBuckets", warmupBuckets.toLong()).toUInt(),
                thresholdZ = thresholdZ,
            )
            is DistinctCount -> FfiKind.DistinctCount(event = event, property = property)
            is HeavyHitters -> FfiKind.HeavyHitters(
                event = event,
                property = property,
                k = nonNegative("signal \"$name\": k", k.toLong()).toUInt(),
            )
        }
        return FfiSignal(name = name, kind = kind)
    }
}

/** What a [SignalDefinition.Session] signal reports. */
public enum class SessionMeasure(internal val ffi: FfiMeasure) {
    /** Sessions started since the signal was defined. */
    COUNT(FfiMeasure.COUNT),

    /** Length of the current session, first to last event, in ms; 0 when none is open. */
    CURRENT_LENGTH_MS(FfiMeasure.CURRENT_LENGTH_MS),

    /** Events in the current session; 0 when none is open. */
    CURRENT_EVENTS(FfiMeasure.CURRENT_EVENTS),
}

/**
 * Only events whose property [key] equals [value], of the same type, pass: `3` matches an
 * integer 3, not the text `"3"`.
 *
 * @property value a [String], [Int], [Long], [Short], [Byte], [Float], [Double], [Boolean],
 *   [java.util.Date] or [java.time.Instant], as in [Starling.track].
 * @throws IllegalArgumentException for a value of any other type.
 */
public data class PropertyFilter(val key: String, val value: Any) {
    private val ffiValue: FfiValue = EventProperties.valueOf(key, value)

    internal fun toFfi(): FfiValue = ffiValue
}
