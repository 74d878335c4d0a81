import Foundation
internal import StarlingFFI

extension Starling {
    /// A bandit: it chooses which variant ("arm") of something to show, such as a layout or an
    /// offer, and learns from what the user does next, on the device and offline.
    ///
    /// Declare bandits in ``Configuration/bandits``; ask one to choose with
    /// ``Starling/choose(_:context:)`` and reward the decision with ``Starling/reward(_:value:)``,
    /// or name a ``rewardEvent`` that rewards it when tracked:
    ///
    /// ```swift
    /// var layout = Starling.Bandit(
    ///     "home_layout", policy: .thompsonBeta(), arms: ["list", "grid", "carousel"],
    ///     rewardEvent: .init("article_open"))
    /// layout.attributionWindow = 10 * 60
    /// configuration.bandits = [layout]
    /// ```
    ///
    /// What a bandit learned is kept across launches; changing its ``policy`` starts it afresh,
    /// removing an arm retires it (keeping what it learned) and adding one starts that arm fresh.
    /// A definition that is not usable makes ``Starling/open(_:)`` throw
    /// ``StarlingError/invalidConfiguration(reason:)`` naming the bandit and the rule.
    public struct Bandit: Sendable, Hashable {
        /// The name passed to ``Starling/choose(_:context:)``: 1 to 64 bytes, unique among the
        /// bandits.
        public var name: String

        /// How it chooses.
        public var policy: Policy

        /// The variants, 1 to 128 bytes each, without commas.
        public var arms: [String]

        /// An event that rewards the latest decision inside the window; `nil`: only
        /// ``Starling/reward(_:value:)`` does.
        public var rewardEvent: RewardEvent?

        /// How long a decision waits for its reward, in seconds; when it closes without one, the
        /// decision is learned as reward 0. Default 30 minutes.
        public var attributionWindow: TimeInterval

        /// Weight of the past at each update, in (0, 1]; below 1 follows preferences that drift
        /// (0.99 halves an observation's weight after about 69 later ones). Default 1.
        public var discount: Double

        /// Signals appended, in this order, to the context the app passes to
        /// ``Starling/choose(_:context:)``.
        public var contextSignals: [String]

        /// Whether per-arm statistics (pulls and reward sums, never contexts) are sent at sync,
        /// so that the server can build priors for new devices. Sent as events, so only with
        /// consent. Default `true`.
        public var sharesStatistics: Bool

        /// Whether a bandit that has learned nothing yet downloads the fleet's prior at its
        /// first successful sync. Context-free policies only. Default `true`.
        public var usesFleetPrior: Bool

        /// Cap on the fleet prior's weight per arm, in pseudo-observations. Default 20.
        public var maxPriorPulls: Double

        /// With ``sharesStatistics``: if set, the statistics leave through the private channel
        /// instead of as events, once per UTC day, clamped and noised for this cost (epsilon)
        /// charged to the privacy budget, with consent for private reports. Default `nil`.
        public var privateStatisticsEpsilon: Double?

        /// Private channel: the most pulls, over all arms, one day's release counts. Default 20.
        public var privateMaxPullsPerDay: Int

        /// Private channel: rewards are clamped to [0, this] (to [0, 1] for Thompson Beta).
        public var privateRewardMax: Double

        /// A federated-learning task fed by this bandit: each settled decision (rewarded, or
        /// expired at the end of its window) stores an example with the decision's context as
        /// values, the chosen arm as the category `arm=<name>`, and label 1 if its reward was
        /// positive, else 0. Only with consent for federated learning. `nil` (the default): off.
        public var learningTask: String?

        /// A bandit with the core's defaults for everything not given.
        public init(
            _ name: String, policy: Policy, arms: [String], rewardEvent: RewardEvent? = nil,
            contextSignals: [String] = []
        ) {
            // The defaults come from the core itself, so the two can never disagree.
            let defaults = StarlingFFI.defaultBandit(
                name: name, policy: .ucb1(exploration: 1), arms: arms)
            self.name = name
            self.policy = policy
            self.arms = arms
            self.rewardEvent = rewardEvent
            self.contextSignals = contextSignals
            attributionWindow = seconds(defaults.attributionWindowMs)
            discount = defaults.discount
            sharesStatistics = defaults.shareStatistics
            usesFleetPrior = defaults.useFleetPrior
            maxPriorPulls = defaults.maxPriorPulls
            privateStatisticsEpsilon = defaults.privateStatisticsEpsilon
            privateMaxPullsPerDay = Int(defaults.privateMaxPullsPerDay)
            privateRewardMax = defaults.privateRewardMax
            learningTask = defaults.learningTask
        }

        /// How a bandit chooses; `docs/bandits.md` says when to use which.
        public enum Policy: Sendable, Hashable {
            /// The best arm so far, or a random one with probability `epsilon`, in [0, 1].
            case epsilonGreedy(epsilon: Double = 0.1)

            /// UCB1 for rewards in [0, 1], with a confidence bonus of width `exploration`
            /// (√2 is the textbook value).
            case ucb1(exploration: Double = 1.4142135623730951)

            /// Thompson sampling for rewards in [0, 1] (clicks) with a Beta prior of
            /// `priorAlpha` successes and `priorBeta` failures per arm; (1, 1) is uniform.
            case thompsonBeta(priorAlpha: Double = 1, priorBeta: Double = 1)

            /// Thompson sampling for continuous rewards (time spent, revenue): a Gaussian prior
            /// on each arm's mean, and `noiseVariance` for one reward.
            case thompsonGaussian(
                priorMean: Double = 0, priorVariance: Double = 1, noiseVariance: Double = 1)

            /// LinUCB: the best arm depends on a context of `dimensions` numbers, the app's own
            /// followed by the bandit's ``Bandit/contextSignals``.
            case linUCB(dimensions: Int, alpha: Double = 1, ridge: Double = 1)
        }

        /// An event that rewards a bandit's decisions: when one called ``event`` is tracked, it
        /// rewards the latest decision still waiting, made at or before it (last touch).
        public struct RewardEvent: Sendable, Hashable {
            /// The event's name; names starting with `starling.` are the SDK's own and refused.
            public var event: String
            /// A numeric property that is the reward (clamped to [0, 1] for
            /// ``Policy/thompsonBeta(priorAlpha:priorBeta:)``); `nil`: each event is worth 1. An
            /// event without the property rewards nothing.
            public var valueProperty: String?

            /// Rewards with `event`, worth `valueProperty` or 1.
            public init(_ event: String, valueProperty: String? = nil) {
                self.event = event
                self.valueProperty = valueProperty
            }
        }

        /// The definition as the bindings carry it; negative or non-finite durations and counts
        /// are refused here, the rest by the core.
        func ffiBandit() throws(StarlingError) -> BanditDefinition {
            let what = "bandit \"\(name)\":"
            let ffiPolicy: BanditPolicy
            switch policy {
            case .epsilonGreedy(let epsilon):
                ffiPolicy = .epsilonGreedy(epsilon: epsilon)
            case .ucb1(let exploration):
                ffiPolicy = .ucb1(exploration: exploration)
            case .thompsonBeta(let alpha, let beta):
                ffiPolicy = .thompsonBeta(priorAlpha: alpha, priorBeta: beta)
            case .thompsonGaussian(let mean, let variance, let noise):
                ffiPolicy = .thompsonGaussian(
                    priorMean: mean, priorVariance: variance, noiseVariance: noise)
            case .linUCB(let dimensions, let alpha, let ridge):
                ffiPolicy = .linUcb(
                    dims: UInt32(clamping: try nonNegative(dimensions, "\(what) dimensions")),
                    alpha: alpha, ridge: ridge)
            }
            return BanditDefinition(
                name: name, policy: ffiPolicy, arms: arms, discount: discount,
                contextSignals: contextSignals, rewardEvent: rewardEvent?.event,
                rewardProperty: rewardEvent?.valueProperty,
                attributionWindowMs: try milliseconds(
                    attributionWindow, "\(what) attributionWindow"),
                shareStatistics: sharesStatistics, useFleetPrior: usesFleetPrior,
                maxPriorPulls: maxPriorPulls,
                privateStatisticsEpsilon: privateStatisticsEpsilon,
                privateMaxPullsPerDay: UInt32(
                    clamping: try nonNegative(
                        privateMaxPullsPerDay, "\(what) privateMaxPullsPerDay")),
                privateRewardMax: privateRewardMax, learningTask: learningTask)
        }
    }

    /// A choice a bandit made on the device, from ``Starling/choose(_:context:)``.
    public struct Decision: Sendable, Hashable {
        /// Identifies the decision for ``Starling/reward(_:value:)``.
        public let id: String
        /// The bandit that chose.
        public let bandit: String
        /// The chosen arm: show this variant.
        public let arm: String
        /// The probability, in (0, 1], with which the policy chose ``arm`` in its state at the
        /// time; the server's off-policy evaluation divides by it.
        public let propensity: Double
    }

    /// What a bandit has learned about one arm, from ``Starling/banditArms(_:)``.
    public struct ArmSummary: Sendable, Hashable {
        /// The arm.
        public let name: String
        /// `false` once the arm is no longer in the bandit's definition; what it learned is kept.
        public let isActive: Bool
        /// Rewards learned (discounted, so not always a whole number).
        public let pulls: Double
        /// Their sum (discounted).
        public let rewardSum: Double
        /// Mean reward; 0 before the first.
        public let mean: Double
    }

    /// Asks the bandit called `bandit` to choose an arm, and logs the decision. Decides from
    /// memory in microseconds, never waiting on the database or the network, so it is fine on
    /// the main actor.
    ///
    /// Reward the decision with ``reward(_:value:)``, or let the bandit's
    /// ``Bandit/rewardEvent`` do it; once its ``Bandit/attributionWindow`` closes without a
    /// reward, it is learned as 0.
    ///
    /// - Parameters:
    ///   - bandit: The bandit's name.
    ///   - context: The app's features for ``Bandit/Policy/linUCB(dimensions:alpha:ridge:)``,
    ///     before the bandit's context signals; empty for the other policies.
    /// - Throws: ``StarlingError/noConsent(reason:)`` without consent (show the default
    ///   variant), ``StarlingError/notFound(reason:)`` for an unknown bandit,
    ///   ``StarlingError/invalidArgument(reason:)`` for a context of the wrong length or with a
    ///   number that is not finite.
    public func choose(_ bandit: String, context: [Double] = []) throws(StarlingError) -> Decision {
        let d = try mappingErrors { try inner.choose(bandit: bandit, context: context) }
        return Decision(id: d.id, bandit: d.bandit, arm: d.arm, propensity: d.propensity)
    }

    /// Rewards `decision` with `value`; the bandit learns it on Starling's writer thread, so
    /// ``banditArms(_:)`` shows it after the next commit (or ``flush()``). Never waits on I/O.
    ///
    /// - Parameters:
    ///   - decision: What ``choose(_:context:)`` returned.
    ///   - value: For ``Bandit/Policy/thompsonBeta(priorAlpha:priorBeta:)``, in [0, 1]; for the
    ///     other policies any finite number.
    /// - Returns: `true` when the bandit learns from it; `false` when the decision was already
    ///   settled (rewarded before, or its window closed): the late reward is counted in
    ///   ``Diagnostics/rewardsLate`` and ignored.
    /// - Throws: ``StarlingError/invalidArgument(reason:)`` for a value the policy does not
    ///   learn from.
    @discardableResult
    public func reward(_ decision: Decision, value: Double) throws(StarlingError) -> Bool {
        try reward(decisionID: decision.id, value: value)
    }

    /// ``reward(_:value:)`` for a decision id kept on its own, for example across launches.
    ///
    /// - Throws: ``StarlingError/notFound(reason:)`` if it is not an id Starling made, and
    ///   ``StarlingError/invalidArgument(reason:)`` for a value the policy does not learn from.
    @discardableResult
    public func reward(decisionID: String, value: Double) throws(StarlingError) -> Bool {
        try mappingErrors { try inner.reward(decisionId: decisionID, value: value) }
    }

    /// What the bandit called `bandit` has learned about each arm, active and retired. Reads
    /// memory only.
    ///
    /// - Throws: ``StarlingError/notFound(reason:)`` if no bandit has that name.
    public func banditArms(_ bandit: String) throws(StarlingError) -> [ArmSummary] {
        try mappingErrors { try inner.banditArms(bandit: bandit) }.map {
            ArmSummary(
                name: $0.name, isActive: $0.active, pulls: $0.pulls, rewardSum: $0.rewardSum,
                mean: $0.mean)
        }
    }
}
