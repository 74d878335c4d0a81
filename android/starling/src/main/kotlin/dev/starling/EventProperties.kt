package dev.starling

import java.time.Instant
import java.util.Date
import dev.starling.internal.Property as FfiProperty
import dev.starling.internal.PropertyValue as FfiValue

/**
 * The properties of one event, built with typed [put] calls:
 *
 * ```kotlin
 * starling.track("purchase") {
 *     put("sku", sku)
 *     put("amount", 9.99)
 *     put("first_time", isFirstPurchase)
 * }
 * ```
 *
 * Keys are lower-case (`[a-z][a-z0-9_]*`, segments joined by `.`), at most 64 bytes; an event has
 * at most 32 properties and a text value at most 1024 bytes. Putting a key twice keeps the last
 * value, as in a map. A `null` value leaves the key out, so optional values can be passed as they
 * are.
 */
public class EventProperties internal constructor() {
    // Insertion order is kept: it is the order the properties are stored and sent in.
    private val values = LinkedHashMap<String, FfiValue>()

    /** Puts a text value. */
    public fun put(key: String, value: String?): EventProperties = set(key, value?.let { FfiValue.Text(it) })

    /** Puts an integer. */
    public fun put(key: String, value: Long?): EventProperties = set(key, value?.let { FfiValue.Integer(it) })

    /** Puts an integer; Kotlin does not widen `Int` to `Long` on its own. */
    public fun put(key: String, value: Int?): EventProperties = put(key, value?.toLong())

    /** Puts a finite number; NaN and infinities are rejected by [Starling.track]. */
    public fun put(key: String, value: Double?): EventProperties = set(key, value?.let { FfiValue.Real(it) })

    /** Puts a finite number, keeping its decimal form (`0.1f` is sent as `0.1`). */
    public fun put(key: String, value: Float?): EventProperties = put(key, value?.let(::widen))

    /** Puts a flag. */
    public fun put(key: String, value: Boolean?): EventProperties = set(key, value?.let { FfiValue.Flag(it) })

    /** Puts a point in time, stored as Unix epoch milliseconds. */
    public fun put(key: String, value: Date?): EventProperties = set(key, value?.let { FfiValue.Timestamp(it.time) })

    /** Puts a point in time, stored as Unix epoch milliseconds (sub-millisecond parts are dropped). */
    public fun put(key: String, value: Instant?): EventProperties =
        set(key, value?.let { FfiValue.Timestamp(epochMs(key, it)) })

    /**
     * Puts a value of any supported type: [String], [Int], [Long], [Short], [Byte], [Float],
     * [Double], [Boolean], [Date] or [Instant]. A `null` value leaves the key out.
     *
     * @throws IllegalArgumentException for any other type.
     */
    public fun putAny(key: String, value: Any?): EventProperties = set(key, value?.let { valueOf(key, it) })

    private fun set(key: String, value: FfiValue?): EventProperties {
        if (value == null) values.remove(key) else values[key] = value
        return this
    }

    internal fun toFfi(): List<FfiProperty> = values.map { (key, value) -> FfiProperty(key, value) }

    internal companion object {
        /** Properties from a map, in its iteration order. */
        fun of(map: Map<String, Any?>): EventProperties {
            val properties = EventProperties()
            for ((key, value) in map) properties.putAny(key, value)
            return properties
        }

        /** The typed value of a loosely typed one; the check an app's `Map<String, Any?>` needs. */
        fun valueOf(key: String, value: Any): FfiValue = when (value) {
            is String -> FfiValue.Text(value)
            is Long -> FfiValue.Integer(value)
            is Int -> FfiValue.Integer(value.toLong())
            is Short -> FfiValue.Integer(value.toLong())
            is Byte -> FfiValue.Integer(value.toLong())
            is Double -> FfiValue.Real(value)
            is Float -> FfiValue.Real(widen(value))
            is Boolean -> FfiValue.Flag(value)
            is Date -> FfiValue.Timestamp(value.time)
            else -> asInstant(value)?.let { FfiValue.Timestamp(epochMs(key, it)) }
                ?: throw IllegalArgumentException(
                    "property \"$key\" has a value of type ${value.javaClass.name}, which Starling cannot " +
                        "store; use String, Int, Long, Short, Byte, Float, Double, Boolean, java.util.Date " +
                        "or java.time.Instant",
                )
        }

        /**
         * [value] as an [Instant], or null. java.time only exists from API 26 (minSdk is 24): on an
         * older device without desugaring no value can be an Instant, and the type check itself
         * would throw, so that case means "not an Instant" too.
         */
        private fun asInstant(value: Any): Instant? =
            try {
                value as? Instant
            } catch (_: NoClassDefFoundError) {
                null
            }

        private fun epochMs(key: String, instant: Instant): Long =
            try {
                instant.toEpochMilli()
            } catch (_: ArithmeticException) {
                throw IllegalArgumentException(
                    "property \"$key\" holds the instant $instant, which does not fit in epoch milliseconds",
                )
            }

        /**
         * Float to Double through its shortest decimal form. A plain widening turns `0.1f` into
         * 0.10000000149011612, which is not what the app meant to record. NaN and infinities
         * survive the round trip and are then rejected by the core with its usual reason.
         */
        private fun widen(value: Float): Double = value.toString().toDouble()
    }
}
