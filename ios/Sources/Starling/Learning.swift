import Foundation
internal import StarlingFFI

/// An example's features for a federated learning task: dense `values` in the task's order,
/// and categorical features as `"key=value"` strings, hashed into the task's buckets. The
/// task's signals are added by Starling.
public struct LearningFeatures: Sendable, Hashable {
    /// Dense numeric features, as many as the task's `dense_features`.
    public var values: [Double]
    /// Categorical features, as `"key=value"`.
    public var categories: [String]

    /// Features with these values and categories.
    public init(values: [Double], categories: [String] = []) {
        self.values = values
        self.categories = categories
    }

    var ffi: StarlingFFI.LearningFeatures {
        StarlingFFI.LearningFeatures(values: values, categories: categories)
    }
}

/// What the host knows about the device. Training runs only when it is charging, on an
/// unmetered network and idle, so it never costs the user battery, metered data or
/// responsiveness.
public struct LearningEligibility: Sendable, Hashable {
    /// The device is charging.
    public var charging: Bool
    /// The network is unmetered.
    public var unmetered: Bool
    /// The device is idle.
    public var idle: Bool

    /// Eligibility from the three conditions.
    public init(charging: Bool, unmetered: Bool, idle: Bool) {
        self.charging = charging
        self.unmetered = unmetered
        self.idle = idle
    }

    /// Charging, unmetered and idle.
    public static let eligible = LearningEligibility(charging: true, unmetered: true, idle: true)

    var ffi: StarlingFFI.LearningEligibility {
        StarlingFFI.LearningEligibility(charging: charging, unmetered: unmetered, idle: idle)
    }
}

/// What one round of local training did.
public struct TrainingReport: Sendable, Hashable {
    /// Whether an update was built.
    public let trained: Bool
    /// Why not, when not.
    public let skippedReason: String?
    /// The round the update is for.
    public let round: UInt64
    /// The version training started from.
    public let baseVersion: UInt64
    /// Examples trained on.
    public let trainingExamples: Int
    /// Examples held out for evaluation.
    public let holdoutExamples: Int
    /// Accuracy (0 to 1) of the base version on the held-out examples.
    public let holdoutAccuracy: Double
    /// zCDP rho of the noise added on the device (0: none).
    public let deviceRho: Double
    /// Encoded size of the update, in bytes.
    public let updateBytes: UInt64

    init(_ r: StarlingFFI.TrainingReport) {
        trained = r.trained
        skippedReason = r.skippedReason
        round = r.round
        baseVersion = r.baseVersion
        trainingExamples = Int(r.trainingExamples)
        holdoutExamples = Int(r.holdoutExamples)
        holdoutAccuracy = r.holdoutAccuracy
        deviceRho = r.deviceRho
        updateBytes = r.updateBytes
    }
}

/// What one learning exchange with the server did. Failures worth retrying are in
/// ``lastError``, not thrown.
public struct LearningSyncReport: Sendable, Hashable {
    /// The model version the device holds after it.
    public let modelVersion: UInt64?
    /// The round the device holds the model for.
    public let round: UInt64?
    /// Whether a new model or round was downloaded.
    public let modelChanged: Bool
    /// Local training, if it was tried.
    public let training: TrainingReport?
    /// Updates the server acknowledged.
    public let updatesSent: Int
    /// Updates the server refused for good.
    public let updatesRefused: Int
    /// Why the last exchange failed, if one did.
    public let lastError: String?

    init(_ r: StarlingFFI.LearningSyncReport) {
        modelVersion = r.modelVersion
        round = r.round
        modelChanged = r.modelChanged
        training = r.training.map(TrainingReport.init)
        updatesSent = Int(r.updatesSent)
        updatesRefused = Int(r.updatesRefused)
        lastError = r.lastError
    }
}

/// One update the device built: what left (or will leave) the device and its privacy cost.
public struct LearningUpdate: Sendable, Hashable {
    /// The round.
    public let round: UInt64
    /// `pending`, `sent` or `refused`.
    public let state: String
    /// The server's reason or receipt.
    public let outcome: String
    /// zCDP rho of the noise added on the device (0: none).
    public let deviceRho: Double
    /// Encoded size, in bytes.
    public let bytes: UInt64
}

/// A task's state on this device.
public struct LearningStatus: Sendable, Hashable {
    /// The model version held, if any.
    public let modelVersion: UInt64?
    /// Stored examples.
    public let examples: UInt64
    /// Examples evicted by the bound (all tasks).
    public let examplesEvicted: UInt64
    /// Every update built for the task.
    public let updates: [LearningUpdate]

    init(_ s: StarlingFFI.LearningStatus) {
        modelVersion = s.modelVersion
        examples = s.examples
        examplesEvicted = s.examplesEvicted
        updates = s.updates.map {
            LearningUpdate(
                round: $0.round, state: $0.state, outcome: $0.outcome, deviceRho: $0.deviceRho,
                bytes: $0.bytes)
        }
    }
}

extension Starling {
    /// Stores a training example for `task` with its observed `label` (0 or 1 for a logistic
    /// task, a class index for a softmax task). Never waits on I/O.
    ///
    /// - Throws: ``StarlingError/invalidArgument(reason:)`` for a label or features the task's
    ///   model cannot take, ``StarlingError/noConsent(reason:)`` without consent.
    public func addExample(task: String, features: LearningFeatures, label: Int) throws {
        guard let label = UInt32(exactly: label) else {
            throw StarlingError.invalidArgument(reason: "a label is 0 or more, not \(label)")
        }
        try mappingErrors { try inner.addExample(task: task, features: features.ffi, label: label) }
    }

    /// The latest model's prediction for `features`: `[P(label 1)]` for a logistic task, one
    /// probability per class for a softmax task. Reads memory only.
    public func predict(task: String, features: LearningFeatures) throws -> [Double] {
        try mappingErrors { try inner.predict(task: task, features: features.ffi) }
    }

    /// Downloads the task's model, trains when `eligibility` allows and uploads the update, on
    /// Starling's own queue (call it from a `BGProcessingTask`).
    public func syncLearning(task: String, eligibility: LearningEligibility) async throws
        -> LearningSyncReport
    {
        let eligibility = eligibility.ffi
        return LearningSyncReport(
            try await blocking { try $0.syncLearningBlocking(task: task, eligibility: eligibility) })
    }

    /// Trains the current round and stores the update for the next learning sync, on
    /// Starling's own queue.
    public func train(task: String, eligibility: LearningEligibility) async throws
        -> TrainingReport
    {
        let eligibility = eligibility.ffi
        return TrainingReport(
            try await blocking { try $0.trainBlocking(task: task, eligibility: eligibility) })
    }

    /// The task's model version, examples and every update built, with its privacy cost.
    public func learningStatus(task: String) throws -> LearningStatus {
        LearningStatus(try mappingErrors { try inner.learningStatus(task: task) })
    }
}
