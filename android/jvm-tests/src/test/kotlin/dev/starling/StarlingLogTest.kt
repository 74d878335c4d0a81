package dev.starling

import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.io.File
import java.net.InetAddress
import java.net.ServerSocket
import java.util.concurrent.CopyOnWriteArrayList

/** The native library's log lines reach a [StarlingLog] sink, filtered by level. */
class StarlingLogTest {
    @TempDir
    lateinit var dir: File

    /** One delivered line. Lines arrive on native threads, hence the concurrent list. */
    private data class Line(val level: LogLevel, val target: String, val message: String)

    private val lines = CopyOnWriteArrayList<Line>()

    private fun collect(level: LogLevel, target: String, message: String) {
        lines += Line(level, target, message)
    }

    @AfterEach
    fun clearSink() {
        StarlingLog.clear()
    }

    /** A URL on loopback where nothing listens: the port was bound, then released. */
    private fun closedPortUrl(): String {
        val port = ServerSocket(0, 1, InetAddress.getLoopbackAddress()).use { it.localPort }
        return "http://127.0.0.1:$port"
    }

    /** Waits up to 5 s for a line matching [predicate]. */
    private fun awaitLine(predicate: (Line) -> Boolean): Line? {
        val deadline = System.nanoTime() + 5_000_000_000L
        while (System.nanoTime() < deadline) {
            lines.firstOrNull(predicate)?.let { return it }
            Thread.sleep(10)
        }
        return lines.firstOrNull(predicate)
    }

    @Test
    fun `a failed upload is logged at WARN`() {
        StarlingLog.install(LogLevel.WARN, ::collect)
        val config = testConfig(dir).copy(serverUrl = closedPortUrl())
        openConsented(config).use { starling ->
            starling.track("screen_view")
            starling.flushBlocking()
            val report = starling.syncBlocking()
            assertNotNull(report.lastError, report.toString())
        }
        val line = awaitLine { "upload failed" in it.message }
        assertNotNull(line, "no upload failure among $lines")
        assertEquals(LogLevel.WARN, line!!.level)
        assertTrue(line.target.isNotEmpty(), line.toString())
    }

    @Test
    fun `lines below the level are not delivered, and clear stops delivery`() {
        openConsented(testConfig(dir)).use { starling ->
            StarlingLog.install(LogLevel.WARN, ::collect)
            starling.consent = false // logs "consent withdrawn" at INFO: filtered out

            StarlingLog.install(LogLevel.INFO, ::collect)
            starling.consent = true
            starling.consent = false
            // Both withdrawals log on the same writer thread, in order: once the second line is
            // here, the first would have been too.
            val line = awaitLine { "consent withdrawn" in it.message }
            assertEquals(LogLevel.INFO, line?.level, "no INFO line among $lines")
            assertEquals(1, lines.count { "consent withdrawn" in it.message }, lines.toString())

            StarlingLog.clear()
            lines.clear()
            starling.consent = true
            starling.consent = false
            starling.flushBlocking() // the writer thread has logged (or not) by now
            assertTrue(lines.isEmpty(), lines.toString())
        }
    }

    @Test
    fun `a sink that throws does not disturb Starling`() {
        StarlingLog.install(LogLevel.INFO) { _, _, _ -> throw IllegalStateException("sink failed") }
        openConsented(testConfig(dir)).use { starling ->
            starling.consent = false
            starling.consent = true
            starling.track("after_a_throwing_sink")
            starling.flushBlocking()
            assertEquals(1, starling.diagnostics().eventsCommitted)
        }
    }
}
