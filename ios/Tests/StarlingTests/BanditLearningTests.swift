import Foundation
import Starling
import XCTest

/// A bandit feeding a learning task through the Swift API, on the device alone.
final class BanditLearningTests: XCTestCase {
    func testSettledDecisionsAreStoredAsExamplesOfTheLearningTask() async throws {
        var offer = Starling.Bandit("offer", policy: .epsilonGreedy(epsilon: 1), arms: ["list", "grid"])
        offer.learningTask = "clicks"
        var config = configuration(try temporaryDirectory(self))
        config.bandits = [offer]
        let starling = try Starling.open(config)
        try starling.setConsent(true)
        for reward in [1.0, 0.0, 1.0] {
            let decision = try starling.choose("offer", context: [0.5])
            XCTAssertTrue(try starling.reward(decision, value: reward))
        }
        try await starling.flush()
        XCTAssertEqual(try starling.learningStatus(task: "clicks").examples, 3)
        // No model of the task yet: nothing to score the arms with.
        assertThrows(
            StarlingError.invalidArgument, try starling.predictArms("offer", task: "clicks"))
    }
}
