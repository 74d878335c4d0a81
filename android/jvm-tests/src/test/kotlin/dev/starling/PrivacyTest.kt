package dev.starling

import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.io.File

/** The privacy extensions against the real native library and a real server on loopback. */
class PrivacyTest {
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

    private val dayMs = 24L * 3600 * 1000

    private fun yesterdayNoonMs(): Long = (System.currentTimeMillis() / dayMs - 1) * dayMs + dayMs / 2

    private val usage = PrivateReport.EventCounts("usage", listOf("app_open"), maxPerEvent = 5, epsilon = 0.4)

    @Test
    fun `a daily report is charged, sent and listed in the receipts`() {
        Starling.openWithPrivacy(testConfig(dir, server), PrivacySettings(reports = listOf(usage))).use { starling ->
            starling.consent = true
            assertTrue(starling.purposeConsent(ConsentPurpose.PRIVATE_REPORTS))
            repeat(3) { starling.track("app_open", timeMs = yesterdayNoonMs() + it) }
            starling.flushBlocking()

            val outcome = starling.sendPrivateReportsBlocking()
            assertEquals(1, outcome.charged)
            assertEquals(1, outcome.sent)
            val receipts = starling.privacyReceipts()
            assertEquals(1, receipts.size)
            assertEquals("report:usage", receipts[0].channel)
            assertEquals("epsilon", receipts[0].measure)
            assertEquals(0.4, receipts[0].amount, 1e-9)
            assertNotNull(receipts[0].sentMs)
            assertEquals(0.4, starling.privacySpent().epsilonDay, 1e-9)

            // Nothing more is due.
            assertEquals(0, starling.sendPrivateReportsBlocking().charged)
        }
    }

    @Test
    fun `a report over the budget is refused with its reason`() {
        val settings = PrivacySettings(epsilonPerDay = 0.1, reports = listOf(usage))
        Starling.openWithPrivacy(testConfig(dir, server), settings).use { starling ->
            starling.consent = true
            starling.track("app_open", timeMs = yesterdayNoonMs())
            starling.flushBlocking()
            val outcome = starling.sendPrivateReportsBlocking()
            assertEquals(0, outcome.charged)
            assertTrue(outcome.refused.single().contains("epsilon per day"), outcome.refused.toString())
            assertTrue(starling.privacyReceipts().isEmpty())
        }
    }

    @Test
    fun `consent per purpose is kept apart and withdrawing the last one withdraws consent`() {
        Starling.openWithPrivacy(testConfig(dir, server), PrivacySettings(reports = listOf(usage))).use { starling ->
            starling.consent = true
            starling.setPurposeConsent(ConsentPurpose.PRIVATE_REPORTS, false)
            assertFalse(starling.purposeConsent(ConsentPurpose.PRIVATE_REPORTS))
            assertTrue(starling.purposeConsent(ConsentPurpose.RAW_EVENTS))
            assertThrows<StarlingException.NoConsent> { starling.sendPrivateReportsBlocking() }
            for (purpose in ConsentPurpose.values()) starling.setPurposeConsent(purpose, false)
            assertFalse(starling.consent)
            assertThrows<StarlingException.NoConsent> { starling.track("app_open") }
        }
    }

    @Test
    fun `a private vector is charged in rho and refused beyond the budget`() {
        Starling.openWithPrivacy(testConfig(dir, server), PrivacySettings(rhoPerDay = 0.5)).use { starling ->
            starling.consent = true
            val noised = starling.releasePrivateVector("model", listOf(3.0, 4.0), maxNorm = 1.0, rho = 0.3)
            assertEquals(2, noised.size)
            assertEquals("rho", starling.privacyReceipts().single().measure)
            val e = assertThrows<StarlingException.InvalidArgument> {
                starling.releasePrivateVector("model", listOf(3.0, 4.0), maxNorm = 1.0, rho = 0.3)
            }
            assertTrue(e.reason.contains("rho per day"), e.reason)
            assertEquals(0.3, starling.privacySpent().rhoDay, 1e-9)
        }
    }

    @Test
    fun `bad settings are an InvalidConfig, not a crash`() {
        val bad = PrivacySettings(reports = listOf(PrivateReport.TopEvent("no spaces allowed", listOf("a"), 1.0)))
        assertThrows<StarlingException.InvalidConfig> { Starling.openWithPrivacy(testConfig(dir, server), bad) }
    }
}
