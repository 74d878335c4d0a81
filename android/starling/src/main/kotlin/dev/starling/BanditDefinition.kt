package dev.starling

import kotlin.math.sqrt
import dev.starling.internal.BanditDefinition as FfiBandit
import dev.starling.internal.BanditPolicy as FfiPolicy

/**
 * A bandit: it chooses which variant ("arm") of something to show, such as a layout or an offer,
 * and learns from what the user does next, on the device and offline. Declare bandits in
 * [StarlingConfig.bandits]; ask one to choose with [Starling.choose] and reward the decision with
 * [Starling.reward], or name a [rewardEvent] that rewards it when tracked:
 *
 * ```kotlin
 * val homeLayout = BanditDefinition(
 *     name = "home_layout",
 *     policy = BanditPolicy.ThompsonBeta(),
 *     arms = listOf("list", "grid", "carousel"),
 *     rewardEvent = RewardEvent("article_open"),
 *     attributionWindowMs = 10 * 60_000,
 * )
 * ```
 *
 * What a bandit learned is kept across restarts; changing its [policy] starts it afresh, removing
 * an arm retires it (keeping what it learned) and adding one starts that arm fresh. A definition
 * that is not usable makes [Starling.open] throw [StarlingException.InvalidConfig] naming the
 * bandit and the rule. `docs/bandits.md` says which policy suits what.
 */
public data class BanditDefinition @JvmOverloads constructor(
    /** The name passed to [Starling.choose]: 1 to 64 bytes, unique among the bandits. */
    val name: String,
    /** How it chooses. */
    val policy: BanditPolicy,
    /** The variants, 1 to 128 bytes each, without commas. */
    val arms: List<String>,
    /** An event that rewards the latest decision inside the window; `null`: only [Starling.reward]. */
    val rewardEvent: RewardEvent? = null,
    /**
     * How long a decision waits for its reward, in ms; when it closes without one, the decision is
     * learned as reward 0. Default 30 minutes.
     */
    val attributionWindowMs: Long = DEFAULT_ATTRIBUTION_WINDOW_MS,
    /**
     * Weight of the past at each update, in (0, 1]; below 1 follows preferences that drift (0.99
     * halves an observation's weight after about 69 later ones). Default 1: no discount.
     */
    val discount: Double = 1.0,
    /** Signals appended, in this order, to the context the app passes to [Starling.choose]. */
    val contextSignals: List<String> = emptyList(),
    /**
     * Whether per-arm statistics (pulls and reward sums, never contexts) are sent at sync so the
     * server can build priors for new devices. Sent as events, so only with consent.
     */
    val shareStatistics: Boolean = true,
    /**
     * Whether a bandit that has learned nothing yet downloads the fleet's prior at its first
     * successful sync. Context-free policies only.
     */
    val useFleetPrior: Boolean = true,
    /** Cap on the fleet prior's weight per arm, in pseudo-observations. Default 20. */
    val maxPriorPulls: Double = DEFAULT_MAX_PRIOR_PULLS,
    /**
     * With [shareStatistics]: if set, the statistics leave through the private channel instead
     * of as events, once per UTC day, clamped and noised for this cost (epsilon) charged to the
     * privacy budget, with consent for private reports. Default null: raw events.
     */
    val privateStatisticsEpsilon: Double? = null,
    /** Private channel: the most pulls, over all arms, one day's release counts. Default 20. */
    val privateMaxPullsPerDay: Int = DEFAULT_PRIVATE_MAX_PULLS_PER_DAY,
    /** Private channel: rewards are clamped to [0, this] (to [0, 1] for Thompson Beta). */
    val privateRewardMax: Double = 1.0,
    /**
     * A federated-learning task fed by this bandit: each settled decision (rewarded, or expired
     * at the end of its window) stores an example with the decision's context as values, the
     * chosen arm as the category `arm=<name>`, and label 1 if its reward was positive, else 0.
     * Only with consent for federated learning. `null` (the default): off.
     */
    val learningTask: String? = null,
) {
    /** The core's defaults, in the units of the fields they fill. */
    public companion object {
        /** Default [attributionWindowMs]: 30 minutes. */
        public const val DEFAULT_ATTRIBUTION_WINDOW_MS: Long = 30L * 60 * 1000

        /** Default [maxPriorPulls]. */
        public const val DEFAULT_MAX_PRIOR_PULLS: Double = 20.0

        /** Default [privateMaxPullsPerDay]. */
        public const val DEFAULT_PRIVATE_MAX_PULLS_PER_DAY: Int = 20
    }

    /** The generated record; negative durations are refused here, the rest by the core. */
    internal fun toFfi(): FfiBandit = FfiBandit(
        name = name,
        policy = policy.toFfi(name),
        arms = arms,
        discount = discount,
        contextSignals = contextSignals,
        rewardEvent = rewardEvent?.event,
        rewardProperty = rewardEvent?.valueProperty,
        attributionWindowMs = nonNegative("bandit \"$name\": attributionWindowMs", attributionWindowMs).toULong(),
        shareStatistics = shareStatistics,
        useFleetPrior = useFleetPrior,
        maxPriorPulls = maxPriorPulls,
        privateStatisticsEpsilon = privateStatisticsEpsilon,
        privateMaxPullsPerDay = nonNegative(
            "bandit \"$name\": privateMaxPullsPerDay",
            privateMaxPullsPerDay.toLong(),
        ).toUInt(),
        privateRewardMax = privateRewardMax,
        learningTask = learningTask,
    )
}

/**
 * An event that rewards a bandit's decisions: when one called [event] is tracked, it rewards the
 * latest decision still waiting, made at or before it (last touch).
 */
public data class RewardEvent @JvmOverloads constructor(
    /** The event's name; names starting with `starling.` are the SDK's own and refused. */
    val event: String,
    /**
     * A numeric property that is the reward (clamped to [0, 1] for [BanditPolicy.ThompsonBeta]);
     * `null`: each event is worth 1. An event without the property rewards nothing.
     */
    val valueProperty: String? = null,
)

/** How a bandit chooses; `docs/bandits.md` says when to use which. */
public sealed class BanditPolicy {
    /** The best arm so far, or a random one with probability [epsilon], in [0, 1]. */
    public data class EpsilonGreedy @JvmOverloads constructor(val epsilon: Double = 0.1) : BanditPolicy()

    /** UCB1 for rewards in [0, 1], with a confidence bonus of width [exploration]. */
    public data class Ucb1 @JvmOverloads constructor(val exploration: Double = sqrt(2.0)) : BanditPolicy()

    /** Thompson sampling for rewards in [0, 1] (clicks), with a Beta prior; (1, 1) is uniform. */
    public data class ThompsonBeta @JvmOverloads constructor(
        /** Prior successes per arm. */
        val priorAlpha: Double = 1.0,
        /** Prior failures per arm. */
        val priorBeta: Double = 1.0,
    ) : BanditPolicy()

    /** Thompson sampling for continuous rewards (time spent, revenue) with a Gaussian prior. */
    public data class ThompsonGaussian @JvmOverloads constructor(
        /** Prior mean of each arm's reward. */
        val priorMean: Double = 0.0,
        /** Prior variance of each arm's mean. */
        val priorVariance: Double = 1.0,
        /** Variance of one reward. */
        val noiseVariance: Double = 1.0,
    ) : BanditPolicy()

    /**
     * LinUCB: the best arm depends on a context of [dimensions] numbers, the app's own followed by
     * the bandit's [BanditDefinition.contextSignals].
     */
    public data class LinUcb @JvmOverloads constructor(
        /** Length of the full context. */
        val dimensions: Int,
        /** Width of the confidence bonus; 1 to 2 is usual. */
        val alpha: Double = 1.0,
        /** Ridge regularisation. */
        val ridge: Double = 1.0,
    ) : BanditPolicy()

    internal fun toFfi(bandit: String): FfiPolicy = when (this) {
        is EpsilonGreedy -> FfiPolicy.EpsilonGreedy(epsilon)
        is Ucb1 -> FfiPolicy.Ucb1(exploration)
        is ThompsonBeta -> FfiPolicy.ThompsonBeta(priorAlpha, priorBeta)
        is ThompsonGaussian -> FfiPolicy.ThompsonGaussian(priorMean, priorVariance, noiseVariance)
        is LinUcb -> FfiPolicy.LinUcb(
            dims = nonNegative("bandit \"$bandit\": dimensions", dimensions.toLong()).toUInt(),
            alpha = alpha,
            ridge = ridge,
        )
    }
}
