package dev.starling

import dev.starling.internal.BanditPolicy as FfiPolicy
import dev.starling.internal.defaultBandit
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.io.File

/** Bandits through the Kotlin API, against the real native library and a real server. */
class StarlingBanditsTest {
    @TempDir
    lateinit var dir: File

    private val bannerArms = listOf("red", "green", "blue", "gold")

    private val bandits = listOf(
        BanditDefinition("banner", BanditPolicy.Ucb1(), bannerArms),
        BanditDefinition(
            "layout",
            BanditPolicy.ThompsonBeta(),
            listOf("list", "grid"),
            rewardEvent = RewardEvent("article_open"),
        ),
        BanditDefinition("feed", BanditPolicy.LinUcb(dimensions = 2), listOf("recent", "popular"), contextSignals = listOf("views_1h")),
        BanditDefinition("price", BanditPolicy.ThompsonGaussian(), listOf("low", "high"), discount = 0.99),
    )

    private fun config(server: LoopbackServer? = null) = testConfig(dir, server).copy(
        signals = listOf(SignalDefinition.WindowedCount("views_1h", "screen_view", windowMs = 3_600_000)),
        bandits = bandits,
    )

    private fun Starling.arm(bandit: String, arm: String) = banditArms(bandit).single { it.name == arm }

    @Test
    fun `defaults are the core's defaults`() {
        val kotlin = BanditDefinition("b", BanditPolicy.EpsilonGreedy(), listOf("x")).toFfi()
        assertEquals(defaultBandit("b", FfiPolicy.EpsilonGreedy(0.1), listOf("x")), kotlin)
        assertEquals(null, kotlin.learningTask)
        val learning = BanditDefinition("b", BanditPolicy.EpsilonGreedy(), listOf("x"), learningTask = "clicks")
        assertEquals("clicks", learning.toFfi().learningTask)
    }

    @Test
    fun `rewards change what the bandit learned, and a second reward is late`() {
        openConsented(config()).use { starling ->
            // UCB1 plays every untried arm first, uniformly: four ways to tie.
            val first = starling.choose("banner")
            assertTrue(first.arm in bannerArms, first.arm)
            assertEquals("banner", first.bandit)
            assertEquals(0.25, first.propensity, 1e-12)
            assertTrue(starling.banditArms("banner").all { it.pulls == 0.0 && it.active })

            assertTrue(starling.reward(first, 1.0))
            assertFalse(starling.reward(first.id, 1.0), "already settled")
            starling.flushBlocking()
            assertEquals(ArmSummary(first.arm, active = true, pulls = 1.0, rewardSum = 1.0, mean = 1.0), starling.arm("banner", first.arm))
            assertEquals(1.0, starling.banditArms("banner").sumOf { it.pulls })

            // Three arms are still untried, so the next decision is one of them.
            val second = starling.choose("banner")
            assertNotEquals(first.arm, second.arm)
            assertEquals(1.0 / 3.0, second.propensity, 1e-12)
            assertTrue(starling.reward(second, 0.0))
            starling.flushBlocking()
            assertEquals(ArmSummary(second.arm, active = true, pulls = 1.0, rewardSum = 0.0, mean = 0.0), starling.arm("banner", second.arm))

            val d = starling.diagnostics()
            assertEquals(2, d.decisionsMade)
            assertEquals(2, d.rewardsReported)
            assertEquals(1, d.rewardsLate)
            assertEquals(0, d.decisionsPending)
        }
    }

    @Test
    fun `every policy chooses one of its arms with a propensity above 0 and at most 1`() {
        openConsented(config()).use { starling ->
            for (bandit in bandits) {
                val context = if (bandit.policy is BanditPolicy.LinUcb) listOf(0.5) else emptyList()
                repeat(5) {
                    val decision = starling.choose(bandit.name, context)
                    assertTrue(decision.arm in bandit.arms, "$decision")
                    assertTrue(decision.propensity > 0.0 && decision.propensity <= 1.0, "$decision")
                    assertTrue(starling.reward(decision, 1.0))
                }
            }
            starling.flushBlocking()
            for (bandit in bandits) {
                // Each update first multiplies what was learned by the discount.
                val expected = (0 until 5).sumOf { Math.pow(bandit.discount, it.toDouble()) }
                assertEquals(expected, starling.banditArms(bandit.name).sumOf { it.pulls }, 1e-9, bandit.name)
            }
        }
    }

    @Test
    fun `a tracked reward event rewards the latest decision`() {
        openConsented(config()).use { starling ->
            val decision = starling.choose("layout")
            starling.track("article_open")
            starling.flushBlocking()
            assertEquals(1, starling.diagnostics().rewardsAttributed)
            assertEquals(1.0, starling.arm("layout", decision.arm).rewardSum)
            assertFalse(starling.reward(decision, 1.0), "the event settled it")
        }
    }

    @Test
    fun `bad input to a bandit gives NotFound or InvalidArgument with the reason`() {
        openConsented(config()).use { starling ->
            val unknown = assertThrows<StarlingException.NotFound> { starling.choose("checkout") }
            assertEquals("no bandit called \"checkout\" is defined", unknown.reason)
            assertThrows<StarlingException.NotFound> { starling.banditArms("checkout") }
            val id = assertThrows<StarlingException.NotFound> { starling.reward("not-a-decision", 1.0) }
            assertTrue(id.reason.contains("\"not-a-decision\" is not a decision id made by Starling"), id.reason)

            // LinUCB takes one number from the app and one from the signal "views_1h".
            val short = assertThrows<StarlingException.InvalidArgument> { starling.choose("feed", listOf(1.0, 2.0)) }
            assertTrue(short.reason.startsWith("bandit \"feed\""), short.reason)
            val nan = assertThrows<StarlingException.InvalidArgument> { starling.choose("feed", doubleArrayOf(Double.NaN)) }
            assertTrue(nan.reason.contains("not a finite number"), nan.reason)

            val decision = starling.choose("layout")
            val range = assertThrows<StarlingException.InvalidArgument> { starling.reward(decision, 1.5) }
            assertTrue(range.reason.contains("learns rewards in [0, 1]"), range.reason)
            assertTrue(starling.reward(decision, 1.0), "a refused reward leaves the decision waiting")
        }
        Starling.open(config()).use { starling ->
            starling.consent = false
            assertThrows<StarlingException.NoConsent> { starling.choose("banner") }
        }
    }

    @Test
    fun `bad definitions are refused as InvalidConfig naming the bandit`() {
        fun refused(vararg definitions: BanditDefinition): String =
            assertThrows<StarlingException.InvalidConfig> {
                Starling.open(testConfig(dir).copy(bandits = definitions.toList()))
            }.reason

        val noArms = refused(BanditDefinition("layout", BanditPolicy.ThompsonBeta(), emptyList()))
        assertTrue(noArms.contains("bandit \"layout\": it needs at least one arm"), noArms)
        val twiceArm = refused(BanditDefinition("layout", BanditPolicy.Ucb1(), listOf("a", "a")))
        assertTrue(twiceArm.contains("arm \"a\" is listed twice"), twiceArm)
        val signal = refused(BanditDefinition("feed", BanditPolicy.LinUcb(1), listOf("a"), contextSignals = listOf("nope")))
        assertTrue(signal.contains("context signal \"nope\" is not a configured signal"), signal)
        val reserved = refused(BanditDefinition("layout", BanditPolicy.Ucb1(), listOf("a"), rewardEvent = RewardEvent("starling.decision")))
        assertTrue(reserved.contains("reserved"), reserved)
        val window = refused(BanditDefinition("layout", BanditPolicy.Ucb1(), listOf("a"), attributionWindowMs = -5))
        assertTrue(window.contains("bandit \"layout\": attributionWindowMs must not be negative"), window)
        val dims = refused(BanditDefinition("feed", BanditPolicy.LinUcb(-1), listOf("a")))
        assertTrue(dims.contains("bandit \"feed\": dimensions must not be negative"), dims)
        val twice = refused(
            BanditDefinition("layout", BanditPolicy.Ucb1(), listOf("a")),
            BanditDefinition("layout", BanditPolicy.Ucb1(), listOf("b")),
        )
        assertTrue(twice.contains("two bandits are called \"layout\""), twice)
    }

    @Test
    fun `learning and waiting decisions survive close and reopen`() {
        val (learned, waiting) = openConsented(config()).use { starling ->
            val rewarded = starling.choose("banner")
            starling.reward(rewarded, 1.0)
            starling.flushBlocking()
            starling.banditArms("banner") to starling.choose("banner")
        }
        Starling.open(config()).use { starling ->
            assertEquals(learned, starling.banditArms("banner"))
            assertEquals(1, starling.diagnostics().decisionsPending)
            assertTrue(starling.reward(waiting, 1.0), "the decision made before the restart still waits")
            starling.flushBlocking()
            assertEquals(2.0, starling.banditArms("banner").sumOf { it.rewardSum })
        }
    }

    @Test
    fun `decisions and arm statistics reach the real server`() {
        LoopbackServer.start(dir).use { server ->
            openConsented(config(server)).use { starling ->
                // Learned before the second choice, so UCB1 plays another, untried arm.
                starling.reward(starling.choose("banner"), 1.0)
                starling.flushBlocking()
                starling.reward(starling.choose("banner"), 0.0)
                starling.flushBlocking()
                val report = starling.syncBlocking()
                assertEquals(null, report.lastError, server.log())
            }
            assertEquals(2, server.eventsNamed("starling.decision"), server.log())
            // One statistics event per arm played since the last sync.
            assertEquals(2, server.eventsNamed("starling.arm_stats"), server.log())
        }
    }

    @Test
    fun `signals and bandits declared by the server apply at the next open`() {
        val operator = """
            {
              "signals": [{"name": "clicks_1h", "kind": {"windowed_count": {"event": "click", "window_ms": 3600000}}}],
              "bandits": [{"name": "promo", "policy": {"ucb1": {"exploration": 1.4}}, "arms": ["x", "y"]}]
            }
        """.trimIndent()
        LoopbackServer.start(dir, deviceConfig = operator).use { server ->
            openConsented(testConfig(dir, server)).use { starling ->
                assertThrows<StarlingException.NotFound> { starling.choose("promo") }
                assertEquals(null, starling.syncBlocking().lastError, server.log())
                assertFalse("clicks_1h" in starling.signals(), "the running instance keeps its definitions")
            }
            Starling.open(testConfig(dir, server)).use { starling ->
                assertEquals(0.0, starling.signals()["clicks_1h"])
                starling.track("click")
                starling.flushBlocking()
                assertEquals(1.0, starling.signals()["clicks_1h"])
                val decision = starling.choose("promo")
                assertTrue(decision.arm in listOf("x", "y"), decision.arm)
                assertEquals(listOf("x", "y"), starling.banditArms("promo").map { it.name })
            }
        }
    }
}
