package dev.starling

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import dev.starling.internal.LearningEligibility as FfiEligibility
import dev.starling.internal.LearningFeatures as FfiFeatures
import dev.starling.internal.LearningStatus as FfiStatus
import dev.starling.internal.LearningSyncReport as FfiSyncReport
import dev.starling.internal.TrainingReport as FfiTrainingReport

/**
 * An example's features for a federated learning task: dense [values] in the task's order, and
 * categorical features as `"key=value"` strings, hashed into the task's buckets. The task's
 * signals are added by Starling.
 */
public data class LearningFeatures(
    val values: List<Double>,
    val categories: List<String> = emptyList(),
) {
    internal fun toFfi() = FfiFeatures(values, categories)
}

/**
 * What the host knows about the device. Training runs only when it is charging, on an unmetered
 * network and idle, so it never costs the user battery, metered data or responsiveness.
 */
public data class LearningEligibility(
    val charging: Boolean,
    val unmetered: Boolean,
    val idle: Boolean,
) {
    internal fun toFfi() = FfiEligibility(charging, unmetered, idle)

    public companion object {
        /** Charging, unmetered and idle. */
        @JvmField
        public val ELIGIBLE: LearningEligibility = LearningEligibility(true, true, true)
    }
}

/** What one round of local training did. */
public data class TrainingReport(
    val trained: Boolean,
    /** Why no update was built, when none was. */
    val skippedReason: String?,
    val round: Long,
    val baseVersion: Long,
    val trainingExamples: Int,
    val holdoutExamples: Int,
    /** Mean cross-entropy of the base version on the held-out examples. */
    val holdoutLoss: Double,
    /** Accuracy (0 to 1) of the base version on the held-out examples. */
    val holdoutAccuracy: Double,
    /** zCDP rho of the noise added on the device (0: none). */
    val deviceRho: Double,
    val updateBytes: Long,
) {
    internal companion object {
        fun from(r: FfiTrainingReport) = TrainingReport(
            trained = r.trained,
            skippedReason = r.skippedReason,
            round = r.round.toLong(),
            baseVersion = r.baseVersion.toLong(),
            trainingExamples = r.trainingExamples.toInt(),
            holdoutExamples = r.holdoutExamples.toInt(),
            holdoutLoss = r.holdoutLoss,
            holdoutAccuracy = r.holdoutAccuracy,
            deviceRho = r.deviceRho,
            updateBytes = r.updateBytes.toLong(),
        )
    }
}

/** What one learning exchange with the server did. Failures worth retrying are in [lastError]. */
public data class LearningSyncReport(
    val modelVersion: Long?,
    val round: Long?,
    val modelChanged: Boolean,
    /** Whether the server admitted the device to the round, if it was asked. */
    val admitted: Boolean?,
    val training: TrainingReport?,
    val updatesSent: Int,
    val updatesRefused: Int,
    val lastError: String?,
) {
    internal companion object {
        fun from(r: FfiSyncReport) = LearningSyncReport(
            modelVersion = r.modelVersion?.toLong(),
            round = r.round?.toLong(),
            modelChanged = r.modelChanged,
            admitted = r.admitted,
            training = r.training?.let(TrainingReport::from),
            updatesSent = r.updatesSent.toInt(),
            updatesRefused = r.updatesRefused.toInt(),
            lastError = r.lastError,
        )
    }
}

/** One update the device built: what left (or will leave) the device and its privacy cost. */
public data class LearningUpdate(
    val round: Long,
    val baseVersion: Long,
    /** `pending`, `sent` or `refused`. */
    val state: String,
    val outcome: String,
    /** zCDP rho of the noise added on the device (0: none). */
    val deviceRho: Double,
    val bytes: Long,
)

/** A task's state on this device. */
public data class LearningStatus(
    val task: String,
    val modelVersion: Long?,
    val round: Long?,
    val examples: Long,
    val examplesEvicted: Long,
    val updatesRefused: Long,
    val updates: List<LearningUpdate>,
) {
    internal companion object {
        fun from(s: FfiStatus) = LearningStatus(
            task = s.task,
            modelVersion = s.modelVersion?.toLong(),
            round = s.round?.toLong(),
            examples = s.examples.toLong(),
            examplesEvicted = s.examplesEvicted.toLong(),
            updatesRefused = s.updatesRefused.toLong(),
            updates = s.updates.map {
                LearningUpdate(
                    it.round.toLong(), it.baseVersion.toLong(), it.state, it.outcome,
                    it.deviceRho, it.bytes.toLong(),
                )
            },
        )
    }
}

/**
 * Stores a training example for [task] with its observed [label] (0 or 1 for a logistic task, a
 * class index for a softmax task). Never waits on I/O.
 *
 * @throws StarlingException.InvalidArgument for a label or features the task's model cannot take.
 */
@Throws(StarlingException::class)
public fun Starling.addExample(task: String, features: LearningFeatures, label: Int) {
    if (label < 0) throw StarlingException.InvalidArgument("a label is 0 or more, not $label")
    call { inner.addExample(task, features.toFfi(), label.toUInt()) }
}

/**
 * The latest model's prediction for [features]: `[P(label 1)]` for a logistic task, one
 * probability per class for a softmax task. Reads memory only.
 */
@Throws(StarlingException::class)
public fun Starling.predict(task: String, features: LearningFeatures): List<Double> =
    call { inner.predict(task, features.toFfi()) }

/** Trains the current round and stores the update, on the calling thread: background work only. */
@Throws(StarlingException::class)
public fun Starling.trainBlocking(task: String, eligibility: LearningEligibility): TrainingReport =
    TrainingReport.from(call { inner.trainBlocking(task, eligibility.toFfi()) })

/**
 * Downloads the model, trains when [eligibility] allows and uploads the update, on the calling
 * thread: for a WorkManager worker or another background job.
 */
@Throws(StarlingException::class)
public fun Starling.syncLearningBlocking(task: String, eligibility: LearningEligibility): LearningSyncReport =
    LearningSyncReport.from(call { inner.syncLearningBlocking(task, eligibility.toFfi()) })

/** [syncLearningBlocking] on [Dispatchers.IO]. */
@Throws(StarlingException::class)
public suspend fun Starling.syncLearning(task: String, eligibility: LearningEligibility): LearningSyncReport =
    withContext(Dispatchers.IO) { syncLearningBlocking(task, eligibility) }

/** Starts a learning exchange on Starling's own thread; false when one is already running. */
@Throws(StarlingException::class)
public fun Starling.syncLearningInBackground(task: String, eligibility: LearningEligibility): Boolean =
    call { inner.syncLearningInBackground(task, eligibility.toFfi()) }

/** The task's model version, examples and every update built, with its privacy cost. */
@Throws(StarlingException::class)
public fun Starling.learningStatus(task: String): LearningStatus =
    LearningStatus.from(call { inner.learningStatus(task) })
