package dev.starling

import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.io.File
import kotlin.random.Random

/** Federated learning through the Kotlin API, against a real server running a learning task. */
class LearningTest {
    @TempDir
    lateinit var dir: File

    private lateinit var server: LoopbackServer

    @BeforeEach
    fun startServer() {
        val tasks = File(dir, "tasks.json").apply {
            writeText(
                """
                {"tasks": [{
                  "name": "sign",
                  "kind": "logistic",
                  "features": {"dense_features": 2},
                  "training": {"epochs": 5, "batch_size": 8, "learning_rate": 0.5, "l2": 0.0,
                               "min_examples": 5, "holdout_percent": 20},
                  "clip_norm": 10.0,
                  "aggregation": {"mode": "asynchronous", "buffer_size": 2, "max_staleness": 2}
                }]}
                """.trimIndent(),
            )
        }
        server = LoopbackServer.start(dir, extraArgs = listOf("--learning-tasks", tasks.path))
    }

    @AfterEach
    fun stopServer() {
        server.close()
    }

    private fun device(name: String): Starling =
        openConsented(testConfig(File(dir, name), server))

    @Test
    fun `two devices train a model that both can predict from`() {
        val random = Random(3)
        val devices = listOf(device("a"), device("b"))
        try {
            for (d in devices) {
                // The label is the sign of the first feature; the second is noise.
                repeat(60) {
                    val x = random.nextDouble(-1.0, 1.0)
                    d.addExample("sign", LearningFeatures(listOf(x, random.nextDouble())), if (x > 0) 1 else 0)
                }
                d.flushBlocking()
            }
            for (d in devices) {
                val report = d.syncLearningBlocking("sign", LearningEligibility.ELIGIBLE)
                assertNull(report.lastError, "$report")
                assertTrue(report.training!!.trained, "$report")
                assertEquals(1, report.updatesSent)
            }
            val idle = LearningEligibility(charging = false, unmetered = true, idle = true)
            val report = devices[0].syncLearningBlocking("sign", idle)
            assertEquals(1L, report.modelVersion, "two updates made version 1: $report")
            assertFalse(report.training!!.trained, "not charging: no training")

            val positive = devices[0].predict("sign", LearningFeatures(listOf(0.9, 0.5)))
            val negative = devices[0].predict("sign", LearningFeatures(listOf(-0.9, 0.5)))
            assertEquals(1, positive.size)
            assertTrue(positive[0] > 0.5 && negative[0] < 0.5, "$positive $negative")

            val status = devices[0].learningStatus("sign")
            assertEquals(60L, status.examples)
            assertEquals(listOf("sent"), status.updates.map { it.state })
            assertEquals(0.0, status.updates[0].deviceRho, "no on-device noise in this task")
        } finally {
            devices.forEach { it.close() }
        }
    }

    @Test
    fun `bad examples and unknown tasks are refused with a reason`() {
        device("c").use { d ->
            d.syncLearningBlocking("sign", LearningEligibility(false, false, false))
            assertThrows<StarlingException.InvalidArgument> {
                d.addExample("sign", LearningFeatures(listOf(1.0, 2.0)), 2)
            }
            assertThrows<StarlingException.InvalidArgument> {
                d.addExample("sign", LearningFeatures(listOf(1.0, 2.0)), -1)
            }
            assertThrows<StarlingException.InvalidArgument> {
                d.predict("unknown", LearningFeatures(listOf(1.0)))
            }
            val report = d.syncLearningBlocking("unknown", LearningEligibility.ELIGIBLE)
            assertTrue(report.lastError!!.contains("no task"), "$report")
        }
    }
}
