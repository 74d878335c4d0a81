package dev.starling

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.io.File

/** Bandit statistics shared through the private channel: the definition's fields reach the core. */
class PrivateArmStatsTest {
    @TempDir
    lateinit var dir: File

    private fun open(bandit: BanditDefinition) = Starling.open(testConfig(dir).copy(bandits = listOf(bandit)))

    @Test
    fun `raw events stay the default and a private bandit opens`() {
        val raw = BanditDefinition("layout", BanditPolicy.ThompsonBeta(), listOf("list", "grid"))
        assertNull(raw.privateStatisticsEpsilon)
        assertEquals(20u, raw.toFfi().privateMaxPullsPerDay)
        val private = raw.copy(privateStatisticsEpsilon = 0.5, privateMaxPullsPerDay = 10)
        assertEquals(0.5, private.toFfi().privateStatisticsEpsilon)
        openConsented(testConfig(dir).copy(bandits = listOf(private))).use { starling -> assertTrue(starling.choose("layout").arm in raw.arms) }
    }

    @Test
    fun `bad private settings get clear errors`() {
        val base = BanditDefinition("layout", BanditPolicy.ThompsonBeta(), listOf("list", "grid"))
        val negative = assertThrows<StarlingException.InvalidConfig> {
            open(base.copy(privateStatisticsEpsilon = 1.0, privateMaxPullsPerDay = -1))
        }
        assertTrue(negative.reason.contains("privateMaxPullsPerDay"), negative.reason)
        val epsilon = assertThrows<StarlingException.InvalidConfig> {
            open(base.copy(privateStatisticsEpsilon = 0.0))
        }
        assertTrue(epsilon.reason.contains("private_statistics_epsilon"), epsilon.reason)
    }
}
