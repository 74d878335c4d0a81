@file:JvmName("StarlingBandits")

package dev.starling

import dev.starling.internal.ArmSummary as FfiArm
import dev.starling.internal.Decision as FfiDecision

/** A choice a bandit made on the device, returned by [Starling.choose]. */
public data class Decision(
    /** Identifies the decision for [Starling.reward]. */
    val id: String,
    /** The bandit that chose. */
    val bandit: String,
    /** The chosen arm: show this variant. */
    val arm: String,
    /**
     * The probability, in (0, 1], with which the policy chose [arm] in its state at the time; the
     * server's off-policy evaluation divides by it.
     */
    val propensity: Double,
) {
    internal companion object {
        fun from(d: FfiDecision) = Decision(id = d.id, bandit = d.bandit, arm = d.arm, propensity = d.propensity)
    }
}

/** What a bandit has learned about one arm, from [Starling.banditArms]. */
public data class ArmSummary(
    /** The arm. */
    val name: String,
    /** `false` once the arm is no longer in the bandit's definition; what it learned is kept. */
    val active: Boolean,
    /** Rewards learned (discounted, so not always a whole number). */
    val pulls: Double,
    /** Their sum (discounted). */
    val rewardSum: Double,
    /** Mean reward; 0 before the first. */
    val mean: Double,
) {
    internal companion object {
        fun from(a: FfiArm) =
            ArmSummary(name = a.name, active = a.active, pulls = a.pulls, rewardSum = a.rewardSum, mean = a.mean)
    }
}

/**
 * Asks the bandit called [bandit] to choose an arm, and logs the decision. Decides from memory in
 * microseconds, never waiting on the database or the network, so it is fine on the main thread.
 *
 * Reward the decision with [reward], or let the bandit's [BanditDefinition.rewardEvent] do it;
 * once its [BanditDefinition.attributionWindowMs] closes without a reward, it is learned as 0.
 *
 * @param context the app's features for a contextual policy ([BanditPolicy.LinUcb]), before the
 *   bandit's context signals; empty for the others.
 * @throws StarlingException.NoConsent without consent: a decision that cannot be logged cannot be
 *   learned from, so show the default variant.
 * @throws StarlingException.NotFound if no bandit has that name.
 * @throws StarlingException.InvalidArgument if the context has the wrong length or a number that
 *   is not finite.
 */
@JvmOverloads
@Throws(StarlingException::class)
public fun Starling.choose(bandit: String, context: List<Double> = emptyList()): Decision =
    Decision.from(call { inner.choose(bandit, context) })

/** [choose] with the context as an array, as a feature vector comes from [featureVector]. */
@Throws(StarlingException::class)
public fun Starling.choose(bandit: String, context: DoubleArray): Decision = choose(bandit, context.asList())

/**
 * Rewards the decision [decisionId] with [value]; the bandit learns it on Starling's writer
 * thread, so [banditArms] shows it after the next commit (or [Starling.flush]). Never waits on I/O.
 *
 * @param value for [BanditPolicy.ThompsonBeta], in [0, 1]; for the others any finite number.
 * @return `true` when the bandit learns from it; `false` when the decision was already settled
 *   (rewarded before, or its window closed): the late reward is counted in
 *   [Diagnostics.rewardsLate] and ignored.
 * @throws StarlingException.NotFound if [decisionId] is not an id Starling made.
 * @throws StarlingException.InvalidArgument if the value is outside what the policy learns from.
 */
@Throws(StarlingException::class)
public fun Starling.reward(decisionId: String, value: Double): Boolean = call { inner.reward(decisionId, value) }

/** [reward] for a [Decision] as [choose] returned it. */
@Throws(StarlingException::class)
public fun Starling.reward(decision: Decision, value: Double): Boolean = reward(decision.id, value)

/**
 * What the bandit called [bandit] has learned about each arm, active and retired. Reads memory
 * only.
 *
 * @throws StarlingException.NotFound if no bandit has that name.
 */
@Throws(StarlingException::class)
public fun Starling.banditArms(bandit: String): List<ArmSummary> = call { inner.banditArms(bandit) }.map { ArmSummary.from(it) }
