package dev.starling

import dev.starling.internal.PropertyValue as FfiValue
import dev.starling.internal.SessionMeasureDefinition as FfiMeasure
import dev.starling.internal.SignalDefinition as FfiSignal
import dev.starling.internal.SignalKindDefinition as FfiKind
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.io.File

/** Signals through the Kotlin API, against the real native library. */
class StarlingSignalsTest {
    @TempDir
    lateinit var dir: File

    private val minute = 60_000L

    /** Newest event time of [trackActivity]: a minute ago, so that no event is in the future. */
    private val now = System.currentTimeMillis() / minute * minute - minute

    private val signals = listOf(
        SignalDefinition.WindowedCount("views_1h", event = "screen_view", windowMs = 60 * minute),
        SignalDefinition.WindowedCount(
            "home_views_1h",
            event = "screen_view",
            windowMs = 60 * minute,
            granularityMs = minute,
            filter = PropertyFilter("screen", "home"),
        ),
        SignalDefinition.MovingAverage("views_rate", event = "screen_view", halfLifeMs = 10 * minute),
        SignalDefinition.MovingAverage("amount_avg", event = "purchase", halfLifeMs = 10 * minute, property = "amount"),
        SignalDefinition.Session("sessions"),
        SignalDefinition.Session("session_length", measure = SessionMeasure.CURRENT_LENGTH_MS),
        SignalDefinition.Session("screens_this_session", SessionMeasure.CURRENT_EVENTS, event = "screen_view"),
        SignalDefinition.Surge("search_surge", event = "search", bucketMs = minute),
        SignalDefinition.DistinctCount("screens_seen", event = "screen_view", property = "screen"),
        SignalDefinition.HeavyHitters("top_screens", event = "screen_view", property = "screen", k = 2),
    )

    private fun config() = testConfig(dir).copy(signals = signals)

    /**
     * Two hours before [now] one home screen, then home, settings and home again 20, 10 and 0
     * minutes before [now], with purchases of 10 and 20 at the last two.
     */
    private fun trackActivity(starling: Starling) {
        starling.track("screen_view", mapOf("screen" to "home"), timeMs = now - 120 * minute)
        starling.track("screen_view", mapOf("screen" to "home"), timeMs = now - 20 * minute)
        starling.track("screen_view", mapOf("screen" to "settings"), timeMs = now - 10 * minute)
        starling.track("purchase", mapOf("amount" to 10), timeMs = now - 10 * minute)
        starling.track("screen_view", mapOf("screen" to "home"), timeMs = now)
        starling.track("purchase", mapOf("amount" to 20.0), timeMs = now)
        starling.flushBlocking()
    }

    @Test
    fun `definitions map onto the native records`() {
        assertEquals(
            FfiSignal(
                "views",
                FfiKind.WindowedCount("screen_view", "screen", FfiValue.Text("home"), 3_600_000u, 60_000u),
            ),
            signals[1].copyName("views").toFfi(),
        )
        assertEquals(
            FfiKind.Session(null, 1_800_000u, 14_400_000u, FfiMeasure.CURRENT_LENGTH_MS),
            signals[5].toFfi().kind,
        )
        assertEquals(FfiKind.Surge("search", 60_000u, 24.0, 24u, 3.0), signals[7].toFfi().kind)
        assertEquals(FfiKind.HeavyHitters("e", "p", 10u), SignalDefinition.HeavyHitters("h", "e", "p").toFfi().kind)
        assertEquals(
            FfiKind.MovingAverage("purchase", "amount", 600_000u),
            signals[3].toFfi().kind,
        )
    }

    private fun SignalDefinition.copyName(name: String) = (this as SignalDefinition.WindowedCount).copy(name = name)

    @Test
    fun `every kind of signal reads the value its events imply`() {
        openConsented(config()).use { starling ->
            val empty = starling.signals()
            assertEquals(signals.map { it.name }, empty.names)
            assertNull(empty.watermarkMs)
            assertEquals(0.0, empty.value("views_1h"))

            trackActivity(starling)
            val s = starling.signals()

            assertEquals(now, s.watermarkMs)
            assertEquals(6, s.eventsApplied)
            assertEquals(0, s.eventsTooLate)
            // The event of two hours ago is outside the hour; of the three inside, two are home.
            assertEquals(3.0, s["views_1h"])
            assertEquals(2.0, s["home_views_1h"])
            // Weights halve every 10 minutes: 2^-12 + 2^-2 + 2^-1 + 1.
            assertEquals(1.750244140625, s.value("views_rate"), 1e-12)
            // The decayed mean of 10 (weight 1/2) and 20 (weight 1).
            assertEquals(50.0 / 3.0, s.value("amount_avg"), 1e-12)
            // The gap of 100 minutes ends the first session; the second is 20 minutes long and
            // holds three screen views.
            assertEquals(2.0, s["sessions"])
            assertEquals((20 * minute).toDouble(), s["session_length"])
            assertEquals(3.0, s["screens_this_session"])
            // No search ever: still warming up.
            assertEquals(0.0, s["search_surge"])
            assertEquals(SignalTrend.STEADY, s.trend("search_surge"))
            assertNull(s.trend("views_1h"), "only surge signals have a trend")
            // Linear counting over 1024 registers overestimates 2 values by about 2²/2048.
            assertEquals(2.0, s.value("screens_seen"), 0.01)
            assertEquals(listOf(RankedValue("home", 3.0), RankedValue("settings", 1.0)), s.topValues("top_screens"))
            assertEquals(3.0, s["top_screens"], "the value is the top count")
            assertEquals(emptyList<RankedValue>(), s.topValues("views_1h"))
            assertEquals(signals.map { it.name }, s.toMap().keys.toList())

            assertArrayEquals(doubleArrayOf(2.0, 3.0, 2.0), starling.featureVector("home_views_1h", "views_1h", "sessions"))
            assertArrayEquals(doubleArrayOf(3.0), starling.featureVector(listOf("views_1h")))
        }
    }

    @Test
    fun `an event more than the allowed lateness behind the newest changes no signal`() {
        openConsented(config()).use { starling ->
            trackActivity(starling)
            val before = starling.signals()
            starling.track("screen_view", mapOf("screen" to "late"), timeMs = now - 6 * minute)
            starling.flushBlocking()
            val after = starling.signals()
            assertEquals(1, after.eventsTooLate)
            assertEquals(before.values, after.values)
            assertEquals(1, starling.diagnostics().eventsCommitted - before.eventsApplied, "it is still stored")
        }
    }

    @Test
    fun `unknown signal names are NotFound with the name`() {
        openConsented(config()).use { starling ->
            val e = assertThrows<StarlingException.NotFound> { starling.featureVector("views_1h", "views_1d") }
            assertTrue(e.reason.contains("\"views_1d\""), e.reason)
            val snapshot = starling.signals()
            assertNull(snapshot["views_1d"])
            assertFalse("views_1d" in snapshot)
            assertTrue("views_1h" in snapshot)
            val missing = assertThrows<StarlingException.NotFound> { snapshot.value("views_1d") }
            assertEquals("no signal called \"views_1d\" is defined", missing.reason)
        }
    }

    @Test
    fun `signals continue after close and reopen, and a changed definition starts over`() {
        val before = openConsented(config()).use { starling ->
            trackActivity(starling)
            starling.signals()
        }
        Starling.open(config()).use { starling ->
            assertEquals(before, starling.signals())
            starling.track("screen_view", mapOf("screen" to "home"), timeMs = now)
            starling.flushBlocking()
            assertEquals(4.0, starling.signals()["views_1h"])
        }

        val changed = config().copy(
            signals = signals.map {
                if (it.name == "views_1h") SignalDefinition.WindowedCount("views_1h", "screen_view", windowMs = 30 * minute) else it
            },
        )
        Starling.open(changed).use { starling ->
            val s = starling.signals()
            assertEquals(0.0, s["views_1h"], "a redefined signal is not rebuilt from stored events")
            assertEquals(3.0, s["home_views_1h"], "the unchanged ones keep their state")
        }
    }

    @Test
    fun `bad definitions are refused as InvalidConfig naming the signal`() {
        fun refused(vararg definitions: SignalDefinition): String =
            assertThrows<StarlingException.InvalidConfig> {
                Starling.open(testConfig(dir).copy(signals = definitions.toList()))
            }.reason

        val zero = refused(SignalDefinition.WindowedCount("views", "screen_view", windowMs = 0))
        assertTrue(zero.contains("signal \"views\": window_ms and granularity_ms must be greater than zero"), zero)
        val indivisible = refused(SignalDefinition.WindowedCount("views", "screen_view", windowMs = 1000, granularityMs = 300))
        assertTrue(indivisible.contains("granularity_ms must divide window_ms"), indivisible)
        val negative = refused(SignalDefinition.MovingAverage("rate", "screen_view", halfLifeMs = -1))
        assertTrue(negative.contains("signal \"rate\": halfLifeMs must not be negative"), negative)
        val k = refused(SignalDefinition.HeavyHitters("top", "screen_view", "screen", k = 0))
        assertTrue(k.contains("signal \"top\": k must be between 1 and 100"), k)
        val threshold = refused(SignalDefinition.Surge("surge", "search", bucketMs = minute, thresholdZ = Double.NaN))
        assertTrue(threshold.contains("threshold_z must be a positive number"), threshold)
        val twice = refused(SignalDefinition.Session("s"), SignalDefinition.Session("s", SessionMeasure.CURRENT_EVENTS))
        assertTrue(twice.contains("two signals are called \"s\""), twice)

        val type = assertThrows<IllegalArgumentException> { PropertyFilter("screen", listOf("home")) }
        assertTrue(type.message!!.contains("\"screen\""), type.message)
    }
}
