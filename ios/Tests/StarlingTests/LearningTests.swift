import Foundation
import Starling
import XCTest

/// Federated learning through the Swift API, against a real server running a learning task.
final class LearningTests: XCTestCase {
    private static let tasks = """
        {"tasks": [{
          "name": "sign",
          "kind": "logistic",
          "features": {"dense_features": 2},
          "training": {"epochs": 5, "batch_size": 8, "learning_rate": 0.5, "l2": 0.0,
                       "min_examples": 5, "holdout_percent": 20},
          "clip_norm": 10.0,
          "aggregation": {"mode": "asynchronous", "buffer_size": 2, "max_staleness": 2}
        }]}
        """

    func testTwoDevicesTrainAModelBothCanPredictFrom() async throws {
        let directory = try temporaryDirectory(self)
        let tasks = directory.appendingPathComponent("tasks.json")
        try Self.tasks.write(to: tasks, atomically: true, encoding: .utf8)
        let server = try await TestServer(extraArguments: ["--learning-tasks", tasks.path])
        defer { Task { await server.stop() } }

        var generator = SplitMix(seed: 5)
        var devices: [Starling] = []
        for name in ["a", "b"] {
            let device = try Starling.open(
                configuration(directory.appendingPathComponent(name), server: server))
            try device.setConsent(true)
            for _ in 0..<60 {
                let x = generator.nextUnit() * 2 - 1
                // The label is the sign of the first feature; the second is noise.
                try device.addExample(
                    task: "sign", features: LearningFeatures(values: [x, generator.nextUnit()]),
                    label: x > 0 ? 1 : 0)
            }
            try await device.flush()
            devices.append(device)
        }
        for device in devices {
            let report = try await device.syncLearning(task: "sign", eligibility: .eligible)
            XCTAssertNil(report.lastError)
            XCTAssertEqual(report.training?.trained, true)
            XCTAssertEqual(report.updatesSent, 1)
        }
        let busy = LearningEligibility(charging: true, unmetered: false, idle: true)
        let report = try await devices[0].syncLearning(task: "sign", eligibility: busy)
        XCTAssertEqual(report.modelVersion, 1, "two updates make version 1")
        XCTAssertEqual(report.training?.trained, false, "metered: no training")

        let positive = try devices[0].predict(
            task: "sign", features: LearningFeatures(values: [0.9, 0.5]))
        let negative = try devices[0].predict(
            task: "sign", features: LearningFeatures(values: [-0.9, 0.5]))
        XCTAssertEqual(positive.count, 1)
        XCTAssertGreaterThan(positive[0], 0.5)
        XCTAssertLessThan(negative[0], 0.5)

        let status = try devices[0].learningStatus(task: "sign")
        XCTAssertEqual(status.examples, 60)
        XCTAssertEqual(status.updates.map(\.state), ["sent"])

        assertThrows(
            StarlingError.invalidArgument,
            try devices[0].addExample(
                task: "sign", features: LearningFeatures(values: [1, 2]), label: 2))
        assertThrows(
            StarlingError.invalidArgument,
            try devices[0].addExample(
                task: "sign", features: LearningFeatures(values: [1, 2]), label: -1))
        assertThrows(
            StarlingError.invalidArgument,
            try devices[0].predict(task: "unknown", features: LearningFeatures(values: [1])))
        for device in devices { try device.close() }
    }
}

/// A small seeded generator, so the examples are the same on every run.
private struct SplitMix {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
