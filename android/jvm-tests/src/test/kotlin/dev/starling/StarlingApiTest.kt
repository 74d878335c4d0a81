package dev.starling

import dev.starling.internal.defaultConfig
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.io.File
import java.math.BigDecimal

/** The Kotlin API against the real native library, without a server. */
class StarlingApiTest {
    @TempDir
    lateinit var dir: File

    @Test
    fun `config defaults are the core's defaults`() {
        val dataDir = File(dir, "device")
        assertEquals(defaultConfig(dataDir.path), StarlingConfig(dataDir).toFfi())
        assertEquals(StarlingConfig(dataDir), StarlingConfig(dataDir.path))
    }

    @Test
    fun `config toString hides the API key`() {
        val text = StarlingConfig(dir, apiKey = "sk_secret").toString()
        assertFalse(text.contains("sk_secret"), text)
    }

    @Test
    fun `unusable settings are refused as InvalidConfig`() {
        val negative = assertThrows<StarlingException.InvalidConfig> {
            Starling.open(StarlingConfig(dir, flushIntervalMs = -1))
        }
        assertTrue(negative.reason.contains("flushIntervalMs"), negative.reason)

        // Zero and URL rules are the core's: its reason comes through unchanged.
        val zero = assertThrows<StarlingException.InvalidConfig> {
            Starling.open(StarlingConfig(dir, uploadTimeoutMs = 0))
        }
        assertTrue(zero.reason.contains("upload_timeout_ms must be greater than zero"), zero.reason)
        val url = assertThrows<StarlingException.InvalidConfig> {
            Starling.open(StarlingConfig(dir, serverUrl = "ftp://example.com"))
        }
        assertEquals(url.reason, url.message)
    }

    @Test
    fun `invalid names and non-finite numbers are rejected with a reason`() {
        openConsented(testConfig(dir)).use { starling ->
            val name = assertThrows<StarlingException.InvalidEvent> { starling.track("Screen View") }
            assertTrue(name.reason.contains("is not allowed"), name.reason)

            val nan = assertThrows<StarlingException.InvalidEvent> {
                starling.track("measure", mapOf("depth" to Double.NaN))
            }
            assertTrue(nan.reason.contains("\"depth\"") && nan.reason.contains("not a finite number"), nan.reason)

            val infinity = assertThrows<StarlingException.InvalidEvent> {
                starling.track("measure") { put("ratio", Float.POSITIVE_INFINITY) }
            }
            assertTrue(infinity.reason.contains("not a finite number"), infinity.reason)

            val early = assertThrows<StarlingException.InvalidEvent> {
                starling.track("late", timeMs = System.currentTimeMillis() / 1000)
            }
            assertTrue(early.reason.contains("before the year 2000"), early.reason)

            assertEquals(4, starling.diagnostics().eventsRejectedInvalid)
        }
    }

    @Test
    fun `unsupported property types are refused before reaching the core`() {
        openConsented(testConfig(dir)).use { starling ->
            for (value in listOf(listOf(1), BigDecimal.ONE, 'c', Any())) {
                val e = assertThrows<IllegalArgumentException> { starling.track("odd", mapOf("value" to value)) }
                assertTrue(e.message!!.contains("\"value\"") && e.message!!.contains(value.javaClass.name), e.message)
            }
            assertEquals(0, starling.diagnostics().eventsRejectedInvalid, "nothing reached the core")
        }
    }

    @Test
    fun `the builder keeps the last value of a key and leaves nulls out`() {
        val properties = EventProperties()
            .put("a", 1)
            .put("b", "x")
            .put("a", "replaced")
            .put("b", null as String?)
            .put("f", 0.1f)
            .toFfi()
        assertEquals(listOf("a", "f"), properties.map { it.key })
        assertEquals(dev.starling.internal.PropertyValue.Text("replaced"), properties[0].value)
        // Through the decimal form, not the binary widening (0.10000000149011612).
        assertEquals(dev.starling.internal.PropertyValue.Real(0.1), properties[1].value)
    }

    @Test
    fun `close is idempotent and later calls throw Closed`() {
        val starling = openConsented(testConfig(dir))
        starling.track("last_words")
        starling.close()
        starling.close()
        assertTrue(starling.isClosed)

        val e = assertThrows<StarlingException.Closed> { starling.track("too_late") }
        assertEquals("this Starling instance is closed", e.reason)
        assertThrows<StarlingException.Closed> { starling.flushBlocking() }
        assertThrows<StarlingException.Closed> { starling.syncBlocking() }
        assertThrows<StarlingException.Closed> { starling.consent }
        assertThrows<StarlingException.Closed> { starling.deviceId }
        assertThrows<StarlingException.Closed> { starling.diagnostics() }

        // close() committed the event before stopping.
        Starling.open(testConfig(dir)).use { assertEquals(1, it.diagnostics().eventsCommitted) }
    }

    @Test
    fun `sync without a server URL throws NoServer`() {
        openConsented(testConfig(dir)).use { starling ->
            val e = assertThrows<StarlingException.NoServer> { starling.syncBlocking() }
            assertTrue(e.reason.contains("no server URL"), e.reason)
        }
    }

    @Test
    fun `the device id is stable until it is reset`() {
        openConsented(testConfig(dir)).use { starling ->
            val first = starling.deviceId
            assertEquals(first, starling.deviceId)
            val second = starling.resetDeviceId()
            assertNotEquals(first, second)
            assertEquals(second, starling.deviceId)
        }
    }

    @Test
    fun `the SDK version comes from the native library`() {
        assertTrue(Starling.sdkVersion.matches(Regex("""\d+\.\d+\.\d+.*""")), Starling.sdkVersion)
    }
}
