package dev.starling

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.io.File
import kotlin.random.Random

/** A bandit feeding a learning task through the Kotlin API, against a real server. */
class BanditLearningTest {
    @TempDir
    lateinit var dir: File

    @Test
    fun `settled decisions train a model that scores the arms`() {
        val tasks = File(dir, "tasks.json").apply {
            writeText(
                """
                {"tasks": [{
                  "name": "clicks",
                  "kind": "logistic",
                  "features": {"dense_features": 1, "hash_buckets": 16},
                  "training": {"epochs": 5, "batch_size": 8, "learning_rate": 0.5, "l2": 0.0,
                               "min_examples": 5, "holdout_percent": 20},
                  "clip_norm": 10.0,
                  "aggregation": {"mode": "asynchronous", "buffer_size": 1, "max_staleness": 2}
                }]}
                """.trimIndent(),
            )
        }
        LoopbackServer.start(dir, extraArgs = listOf("--learning-tasks", tasks.path)).use { server ->
            val bandit = BanditDefinition(
                "offer",
                BanditPolicy.EpsilonGreedy(epsilon = 1.0),
                listOf("list", "grid"),
                learningTask = "clicks",
            )
            val config = testConfig(File(dir, "device"), server).copy(bandits = listOf(bandit))
            openConsented(config).use { d ->
                val random = Random(5)
                // "grid" is always clicked, "list" never.
                repeat(60) {
                    val decision = d.choose("offer", listOf(random.nextDouble(-1.0, 1.0)))
                    assertTrue(d.reward(decision, if (decision.arm == "grid") 1.0 else 0.0))
                }
                d.flushBlocking()
                assertEquals(60L, d.learningStatus("clicks").examples)
                assertThrows<StarlingException.InvalidArgument> { d.predictArms("offer", "clicks", listOf(0.0)) }

                val report = d.syncLearningBlocking("clicks", LearningEligibility.ELIGIBLE)
                assertNull(report.lastError, "$report")
                assertTrue(report.training!!.trained, "$report")
                d.syncLearningBlocking("clicks", LearningEligibility(charging = false, unmetered = true, idle = true))
                val scored = d.predictArms("offer", "clicks", listOf(0.0))
                assertEquals(listOf("list", "grid"), scored.map { it.arm })
                assertTrue(scored[1].probability > scored[0].probability, "$scored")
            }
        }
    }
}
