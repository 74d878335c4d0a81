package dev.starling

/** One arm of a bandit scored by a learning task's model, from [predictArms]. */
public data class ArmPrediction(
    /** The arm. */
    val arm: String,
    /** The model's probability of a positive reward for this arm in the given context. */
    val probability: Double,
)

/**
 * Scores every configured arm of [bandit] with the latest model of [task] for [context]: each
 * arm's features are laid out as the examples a bandit with [BanditDefinition.learningTask]
 * stores (the context, then the bandit's context signals, and the category `arm=<name>`).
 * Returns the arms in configuration order. Use it to choose by the fleet's model, to rank arms,
 * or as context for another contextual bandit. Reads memory only; throws
 * [StarlingException.InvalidArgument] until the task's model has been downloaded.
 */
@Throws(StarlingException::class)
public fun Starling.predictArms(bandit: String, task: String, context: List<Double> = emptyList()): List<ArmPrediction> =
    call { inner.predictArms(bandit, task, context) }.map { ArmPrediction(it.arm, it.probability) }
