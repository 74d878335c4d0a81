@file:JvmName("StarlingSignals")

package dev.starling

import dev.starling.internal.SignalSnapshot as FfiSnapshot
import dev.starling.internal.SignalTrend as FfiTrend

/**
 * Every signal's value as of the last commit, read with [Starling.signals]. It is an immutable
 * copy: reading it again gives newer values once more events are committed.
 *
 * ```kotlin
 * val signals = starling.signals()
 * val views = signals["views_1h"] ?: 0.0
 * if (signals.trend("searches") == SignalTrend.SURGE) showHelp()
 * ```
 */
public data class SignalSnapshot(
    /** Every signal, in the order of [StarlingConfig.signals] (then the server's). */
    val values: List<SignalValue>,
    /** Time of the newest event applied, Unix epoch ms: the time the values refer to. */
    val watermarkMs: Long?,
    /** Events applied to the signals since they were defined. */
    val eventsApplied: Long,
    /**
     * Events that arrived more than [StarlingConfig.signalAllowedLatenessMs] behind the newest
     * one: stored and sent as usual, but applied to no signal.
     */
    val eventsTooLate: Long,
    /** Events a session signal folded in early because its bounded memory was full. */
    val eventsOverBounds: Long,
) {
    private val byName: Map<String, SignalValue> = values.associateBy { it.name }

    /** The names of the signals, in [values] order. */
    public val names: List<String> get() = values.map { it.name }

    /** The value of the signal called [name], or `null` if no signal has that name. */
    public operator fun get(name: String): Double? = byName[name]?.value

    /** Whether a signal called [name] exists. */
    public operator fun contains(name: String): Boolean = name in byName

    /**
     * The value of the signal called [name].
     *
     * @throws StarlingException.NotFound if no signal has that name.
     */
    @Throws(StarlingException::class)
    public fun value(name: String): Double = require(name).value

    /**
     * Where the surge signal called [name] stands, or `null` for a signal of another kind.
     *
     * @throws StarlingException.NotFound if no signal has that name.
     */
    @Throws(StarlingException::class)
    public fun trend(name: String): SignalTrend? = require(name).trend

    /**
     * The most frequent values of the heavy-hitters signal called [name], most frequent first;
     * empty for a signal of another kind.
     *
     * @throws StarlingException.NotFound if no signal has that name.
     */
    @Throws(StarlingException::class)
    public fun topValues(name: String): List<RankedValue> = require(name).topValues

    /** Every signal's value by name, in [values] order. */
    public fun toMap(): Map<String, Double> = values.associate { it.name to it.value }

    private fun require(name: String): SignalValue =
        byName[name] ?: throw StarlingException.NotFound("no signal called \"$name\" is defined")

    internal companion object {
        fun from(s: FfiSnapshot) = SignalSnapshot(
            values = s.values.map { v ->
                SignalValue(
                    name = v.name,
                    value = v.value,
                    trend = v.trend?.let { SignalTrend.from(it) },
                    topValues = v.top.map { RankedValue(it.value, it.count) },
                )
            },
            watermarkMs = s.watermarkMs,
            eventsApplied = s.eventsApplied.toLong(),
            eventsTooLate = s.eventsTooLate.toLong(),
            eventsOverBounds = s.eventsOverBounds.toLong(),
        )
    }
}

/** One signal's value in a [SignalSnapshot]. */
public data class SignalValue(
    /** The signal's name. */
    val name: String,
    /**
     * Its value: a count, an average, a length in ms, or, for a surge signal, the z-score (0
     * while it warms up).
     */
    val value: Double,
    /** For a surge signal, where it stands; `null` for the other kinds. */
    val trend: SignalTrend?,
    /** For a heavy-hitters signal, its values, most frequent first; empty for the other kinds. */
    val topValues: List<RankedValue>,
)

/** Where a surge signal stands. */
public enum class SignalTrend {
    /** Nothing unusual, or still warming up. */
    STEADY,

    /** The rate is unusually high. */
    SURGE,

    /** The rate is unusually low. */
    DROP,
    ;

    internal companion object {
        fun from(t: FfiTrend) = when (t) {
            FfiTrend.STEADY -> STEADY
            FfiTrend.SURGE -> SURGE
            FfiTrend.DROP -> DROP
        }
    }
}

/** A property value with its estimated count, never below the true count. */
public data class RankedValue(
    /** The value, as text. */
    val value: String,
    /** How often it was seen (estimated). */
    val count: Double,
)

/**
 * Every signal's value as of the last commit: after [Starling.flush] returns, it reflects every
 * event tracked before. Reads memory only (never the database), so it is fine on the main thread.
 *
 * @throws StarlingException.Closed once the instance is closed.
 */
@Throws(StarlingException::class)
public fun Starling.signals(): SignalSnapshot = SignalSnapshot.from(call { inner.signals() })

/**
 * The values of the signals called [names], in that order, as the input of a model or a
 * contextual bandit. Reads memory only, like [signals].
 *
 * @throws StarlingException.NotFound if a name is not a signal's; the reason quotes it.
 */
@Throws(StarlingException::class)
public fun Starling.featureVector(names: List<String>): DoubleArray =
    call { inner.featureVector(names) }.toDoubleArray()

/** [featureVector] for names written out: `featureVector("views_1h", "sessions")`. */
@Throws(StarlingException::class)
public fun Starling.featureVector(vararg names: String): DoubleArray = featureVector(names.asList())
