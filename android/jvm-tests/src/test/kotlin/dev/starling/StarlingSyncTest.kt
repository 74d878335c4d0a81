package dev.starling

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.io.File
import java.time.Instant
import java.util.Date

/** The Kotlin API against the real native library and a real `starling-server` on loopback. */
class StarlingSyncTest {
    @TempDir
    lateinit var dir: File

    private lateinit var server: LoopbackServer

    @BeforeEach
    fun startServer() {
        server = LoopbackServer.start(dir)
    }

    @AfterEach
    fun stopServer() {
        server.close()
    }

    @Test
    fun `events with every property type reach the server`() {
        openConsented(testConfig(dir, server)).use { starling ->
            starling.track(
                "screen_view",
                mapOf(
                    "screen" to "home",
                    "int" to 7,
                    "long" to (1L shl 40),
                    "short" to 3.toShort(),
                    "byte" to 1.toByte(),
                    "float" to 0.5f,
                    "double" to 2.25,
                    "premium" to true,
                    "date" to Date(1_700_000_000_000),
                    "instant" to Instant.ofEpochMilli(1_700_000_000_123),
                    "skipped" to null,
                ),
            )
            starling.track("purchase") {
                put("sku", "a-1")
                put("amount", 9.99)
                put("quantity", 2)
                put("at", Instant.now())
            }
            starling.track("app_open", timeMs = System.currentTimeMillis() - 1_000)

            starling.flushBlocking()
            val report = starling.syncBlocking()

            assertEquals(3, report.eventsSent, "$report\n${server.log()}")
            assertEquals(1, report.batchesSent)
            assertEquals(0, report.eventsPending)
            assertNull(report.lastError)
            assertFalse(report.isRetryNeeded)
        }
        val byName = server.stats().getJSONObject("events_by_name")
        assertEquals(1, byName.getLong("screen_view"))
        assertEquals(1, byName.getLong("purchase"))
        assertEquals(1, byName.getLong("app_open"))
        assertEquals(3, server.stats().getLong("events"))
    }

    @Test
    fun `without consent track and sync throw NoConsent and nothing is sent`() {
        Starling.open(testConfig(dir, server)).use { starling ->
            assertFalse(starling.consent, "consent starts out withheld")
            val e = assertThrows<StarlingException.NoConsent> { starling.track("screen_view") }
            assertTrue(e.message!!.contains("consent"), e.message)
            assertThrows<StarlingException.NoConsent> { starling.syncBlocking() }

            // Withdrawing consent deletes what was queued: granting it again sends nothing old.
            starling.consent = true
            starling.track("before_withdrawal")
            starling.track("before_withdrawal")
            starling.flushBlocking()
            starling.consent = false
            starling.consent = true
            assertEquals(0, starling.syncBlocking().eventsSent)
            assertEquals(2, starling.diagnostics().eventsDeletedByConsent)
        }
        assertEquals(0, server.stats().getLong("events"))
    }

    @Test
    fun `events tracked from many threads at once all arrive once`() {
        val threads = 8
        val perThread = 250
        openConsented(testConfig(dir, server)).use { starling ->
            val start = java.util.concurrent.CountDownLatch(1)
            val workers = (0 until threads).map { t ->
                Thread {
                    start.await()
                    repeat(perThread) { i -> starling.track("parallel", mapOf("thread" to t, "i" to i)) }
                }.apply { start() }
            }
            start.countDown()
            workers.forEach { it.join() }
            starling.flushBlocking()
            var sent = 0L
            for (attempt in 1..100) {
                val report = starling.syncBlocking()
                sent += report.eventsSent
                if (report.eventsPending == 0L) break
            }
            assertEquals((threads * perThread).toLong(), sent)
            assertEquals((threads * perThread).toLong(), starling.diagnostics().eventsCommitted)
        }
        assertEquals((threads * perThread).toLong(), server.eventsNamed("parallel"))
    }

    @Test
    fun `suspend flush and sync work from a coroutine`() = runBlocking {
        val starling = Starling.openAsync(testConfig(dir, server))
        starling.use {
            it.consent = true
            repeat(5) { i -> it.track("tap", mapOf("index" to i)) }
            it.flush()
            val report = it.sync()
            assertEquals(5, report.eventsSent, report.toString())
        }
        assertEquals(5, server.eventsNamed("tap"))
    }

    @Test
    fun `diagnostics count what was committed, rejected and sent`() {
        openConsented(testConfig(dir, server)).use { starling ->
            repeat(4) { starling.track("tick") }
            assertThrows<StarlingException.InvalidEvent> { starling.track("Bad Name") }
            starling.flushBlocking()

            val before = starling.diagnostics()
            assertEquals(4, before.eventsCommitted)
            assertEquals(4, before.eventsPending)
            assertEquals(1, before.eventsRejectedInvalid)
            assertEquals(0, before.eventsSent)
            assertTrue(before.storedBytes > 0, before.toString())

            starling.syncBlocking()
            val after = starling.diagnostics()
            assertEquals(4, after.eventsSent)
            assertEquals(1, after.batchesSent)
            assertTrue(after.bytesSent > 0, after.toString())
            assertEquals(0, after.eventsPending)
        }
    }

    @Test
    fun `a reopened instance keeps and then sends unsent events`() {
        val config = testConfig(dir, server)
        val deviceId = openConsented(config).use { starling ->
            repeat(3) { starling.track("offline_event") }
            starling.deviceId
            // close() commits what is buffered: no flush needed.
        }

        Starling.open(config).use { starling ->
            assertTrue(starling.consent, "consent is stored on the device")
            assertEquals(deviceId, starling.deviceId)
            assertEquals(3, starling.diagnostics().eventsPending)
            assertEquals(3, starling.syncBlocking().eventsSent)
        }
        assertEquals(3, server.eventsNamed("offline_event"))
    }

    @Test
    fun `a wrong API key is reported as a 401 and the events stay queued`() {
        openConsented(testConfig(dir, server, apiKey = "sk_wrong")).use { starling ->
            repeat(2) { starling.track("rejected_key") }
            starling.flushBlocking()

            val report = starling.syncBlocking()

            assertEquals(0, report.eventsSent)
            val lastError = requireNotNull(report.lastError) { report.toString() }
            assertTrue(lastError.contains("401"), lastError)
            assertTrue(report.isRetryNeeded)
            assertNotNull(report.retryAtMs, "uploads back off after a failure")
            assertEquals(2, report.eventsPending)
            assertEquals(2, starling.diagnostics().eventsPending)
        }
        assertEquals(0, server.stats().getLong("events"))
    }
}
