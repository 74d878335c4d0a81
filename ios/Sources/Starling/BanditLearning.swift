import Foundation
internal import StarlingFFI

extension Starling {
    /// One arm of a bandit scored by a learning task's model, from
    /// ``Starling/predictArms(_:task:context:)``.
    public struct ArmPrediction: Sendable, Hashable {
        /// The arm.
        public let arm: String
        /// The model's probability of a positive reward for this arm in the given context.
        public let probability: Double
    }

    /// Scores every configured arm of `bandit` with the latest model of `task` for `context`:
    /// each arm's features are laid out as the examples a bandit with
    /// ``Bandit/learningTask`` stores (the context, then the bandit's context signals, and the
    /// category `arm=<name>`). Returns the arms in configuration order. Use it to choose by the
    /// fleet's model, to rank arms, or as context for another contextual bandit. Reads memory
    /// only.
    ///
    /// - Throws: ``StarlingError/invalidArgument(reason:)`` until the task's model has been
    ///   downloaded, ``StarlingError/notFound(reason:)`` for an unknown bandit.
    public func predictArms(_ bandit: String, task: String, context: [Double] = [])
        throws(StarlingError) -> [ArmPrediction]
    {
        try mappingErrors { try inner.predictArms(bandit: bandit, task: task, context: context) }
            .map { ArmPrediction(arm: $0.arm, probability: $0.probability) }
    }
}
