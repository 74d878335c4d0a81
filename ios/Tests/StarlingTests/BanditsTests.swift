import Foundation
import Starling
import XCTest

/// Bandits through the Swift API, against the real native library and a real server.
final class BanditsTests: XCTestCase {
    private let bannerArms = ["red", "green", "blue", "gold"]

    private var bandits: [Starling.Bandit] {
        var price = Starling.Bandit("price", policy: .thompsonGaussian(), arms: ["low", "high"])
        price.discount = 0.99
        return [
            Starling.Bandit("banner", policy: .ucb1(), arms: bannerArms),
            Starling.Bandit(
                "layout", policy: .thompsonBeta(), arms: ["list", "grid"],
                rewardEvent: .init("article_open")),
            Starling.Bandit(
                "feed", policy: .linUCB(dimensions: 2), arms: ["recent", "popular"],
                contextSignals: ["views_1h"]),
            price,
        ]
    }

    private func banditConfiguration(
        _ directory: URL, server: TestServer? = nil
    ) -> Starling.Configuration {
        var config = configuration(directory, server: server)
        config.signals = [.windowedCount("views_1h", event: "screen_view", window: 3600)]
        config.bandits = bandits
        return config
    }

    private func openWithConsent(_ configuration: Starling.Configuration) throws -> Starling {
        let starling = try Starling.open(configuration)
        try starling.setConsent(true)
        return starling
    }

    private func arm(_ starling: Starling, _ bandit: String, _ arm: String) throws
        -> Starling.ArmSummary?
    {
        try starling.banditArms(bandit).first { $0.name == arm }
    }

    func testDefaultsAreTheCoresDefaults() {
        let bandit = Starling.Bandit("b", policy: .epsilonGreedy(), arms: ["x"])
        XCTAssertEqual(bandit.attributionWindow, 30 * 60)
        XCTAssertEqual(bandit.discount, 1)
        XCTAssertTrue(bandit.sharesStatistics)
        XCTAssertTrue(bandit.usesFleetPrior)
        XCTAssertEqual(bandit.maxPriorPulls, 20)
        XCTAssertNil(bandit.rewardEvent)
    }

    func testRewardsChangeWhatTheBanditLearnedAndASecondRewardIsLate() async throws {
        let starling = try openWithConsent(banditConfiguration(try temporaryDirectory(self)))
        // UCB1 plays every untried arm first, uniformly: four ways to tie.
        let first = try starling.choose("banner")
        XCTAssertTrue(bannerArms.contains(first.arm), first.arm)
        XCTAssertEqual(first.bandit, "banner")
        XCTAssertEqual(first.propensity, 0.25, accuracy: 1e-12)
        XCTAssertTrue(try starling.banditArms("banner").allSatisfy { $0.pulls == 0 && $0.isActive })

        XCTAssertTrue(try starling.reward(first, value: 1))
        XCTAssertFalse(try starling.reward(decisionID: first.id, value: 1), "already settled")
        try await starling.flush()
        let learned = try arm(starling, "banner", first.arm)
        XCTAssertEqual(learned?.pulls, 1)
        XCTAssertEqual(learned?.rewardSum, 1)
        XCTAssertEqual(learned?.mean, 1)
        XCTAssertEqual(try starling.banditArms("banner").map(\.pulls).reduce(0, +), 1)

        // Three arms are still untried, so the next decision is one of them.
        let second = try starling.choose("banner")
        XCTAssertNotEqual(second.arm, first.arm)
        XCTAssertEqual(second.propensity, 1.0 / 3.0, accuracy: 1e-12)
        XCTAssertTrue(try starling.reward(second, value: 0))
        try await starling.flush()
        XCTAssertEqual(try arm(starling, "banner", second.arm)?.pulls, 1)
        XCTAssertEqual(try arm(starling, "banner", second.arm)?.rewardSum, 0)

        let diagnostics = try starling.diagnostics()
        XCTAssertEqual(diagnostics.decisionsMade, 2)
        XCTAssertEqual(diagnostics.rewardsReported, 2)
        XCTAssertEqual(diagnostics.rewardsLate, 1)
        XCTAssertEqual(diagnostics.decisionsPending, 0)
        try starling.close()
    }

    func testEveryPolicyChoosesOneOfItsArmsWithAPropensityInZeroToOne() async throws {
        let starling = try openWithConsent(banditConfiguration(try temporaryDirectory(self)))
        for bandit in bandits {
            let context: [Double]
            if case .linUCB(_, _, _) = bandit.policy { context = [0.5] } else { context = [] }
            for _ in 0..<5 {
                let decision = try starling.choose(bandit.name, context: context)
                XCTAssertTrue(bandit.arms.contains(decision.arm), "\(decision)")
                XCTAssertGreaterThan(decision.propensity, 0, "\(decision)")
                XCTAssertLessThanOrEqual(decision.propensity, 1, "\(decision)")
                XCTAssertTrue(try starling.reward(decision, value: 1))
            }
        }
        try await starling.flush()
        for bandit in bandits {
            // Each update first multiplies what was learned by the discount.
            let expected = (0..<5).map { pow(bandit.discount, Double($0)) }.reduce(0, +)
            let pulls = try starling.banditArms(bandit.name).map(\.pulls).reduce(0, +)
            XCTAssertEqual(pulls, expected, accuracy: 1e-9, bandit.name)
        }
        try starling.close()
    }

    func testATrackedRewardEventRewardsTheLatestDecision() async throws {
        let starling = try openWithConsent(banditConfiguration(try temporaryDirectory(self)))
        let decision = try starling.choose("layout")
        try starling.track("article_open")
        try await starling.flush()
        XCTAssertEqual(try starling.diagnostics().rewardsAttributed, 1)
        XCTAssertEqual(try arm(starling, "layout", decision.arm)?.rewardSum, 1)
        XCTAssertFalse(try starling.reward(decision, value: 1), "the event settled it")
        try starling.close()
    }

    func testBadInputGivesNotFoundOrInvalidArgumentWithTheReason() throws {
        let directory = try temporaryDirectory(self)
        let starling = try openWithConsent(banditConfiguration(directory))
        XCTAssertEqual(
            assertThrows(StarlingError.notFound, try starling.choose("checkout")),
            "no bandit called \"checkout\" is defined")
        assertThrows(StarlingError.notFound, try starling.banditArms("checkout"))
        let id = assertThrows(
            StarlingError.notFound, try starling.reward(decisionID: "not-a-decision", value: 1))
        XCTAssertTrue(id?.contains("is not a decision id made by Starling") == true, id ?? "")

        // LinUCB takes one number from the app and one from the signal "views_1h".
        let long = assertThrows(
            StarlingError.invalidArgument, try starling.choose("feed", context: [1, 2]))
        XCTAssertTrue(long?.hasPrefix("bandit \"feed\"") == true, long ?? "")
        let nan = assertThrows(
            StarlingError.invalidArgument, try starling.choose("feed", context: [.nan]))
        XCTAssertTrue(nan?.contains("not a finite number") == true, nan ?? "")

        let decision = try starling.choose("layout")
        let range = assertThrows(
            StarlingError.invalidArgument, try starling.reward(decision, value: 1.5))
        XCTAssertTrue(range?.contains("learns rewards in [0, 1]") == true, range ?? "")
        XCTAssertTrue(
            try starling.reward(decision, value: 1), "a refused reward leaves the decision waiting")

        try starling.setConsent(false)
        assertThrows(StarlingError.noConsent, try starling.choose("banner"))
        try starling.close()
    }

    func testBadDefinitionsAreInvalidConfigurationsNamingTheBandit() throws {
        let directory = try temporaryDirectory(self)
        func refused(_ definitions: [Starling.Bandit]) -> String {
            var config = configuration(directory)
            config.bandits = definitions
            return assertThrows(StarlingError.invalidConfiguration, try Starling.open(config)) ?? ""
        }

        let noArms = refused([.init("layout", policy: .thompsonBeta(), arms: [])])
        XCTAssertTrue(noArms.contains("bandit \"layout\": it needs at least one arm"), noArms)
        let signal = refused([
            .init("feed", policy: .linUCB(dimensions: 1), arms: ["a"], contextSignals: ["nope"])
        ])
        XCTAssertTrue(signal.contains("context signal \"nope\" is not a configured signal"), signal)
        let reserved = refused([
            .init("layout", policy: .ucb1(), arms: ["a"], rewardEvent: .init("starling.decision"))
        ])
        XCTAssertTrue(reserved.contains("reserved"), reserved)
        var negative = Starling.Bandit("layout", policy: .ucb1(), arms: ["a"])
        negative.attributionWindow = -5
        let window = refused([negative])
        XCTAssertTrue(window.contains("bandit \"layout\": attributionWindow"), window)
        let dims = refused([.init("feed", policy: .linUCB(dimensions: -1), arms: ["a"])])
        XCTAssertTrue(dims.contains("bandit \"feed\": dimensions must be at least 0"), dims)
        let twice = refused([
            .init("layout", policy: .ucb1(), arms: ["a"]),
            .init("layout", policy: .ucb1(), arms: ["b"]),
        ])
        XCTAssertTrue(twice.contains("two bandits are called \"layout\""), twice)
    }

    func testLearningAndWaitingDecisionsSurviveReopening() async throws {
        let directory = try temporaryDirectory(self)
        let first = try openWithConsent(banditConfiguration(directory))
        try first.reward(try first.choose("banner"), value: 1)
        try await first.flush()
        let learned = try first.banditArms("banner")
        let waiting = try first.choose("banner")
        try first.close()

        let second = try Starling.open(banditConfiguration(directory))
        XCTAssertEqual(try second.banditArms("banner"), learned)
        XCTAssertEqual(try second.diagnostics().decisionsPending, 1)
        XCTAssertTrue(
            try second.reward(waiting, value: 1),
            "the decision made before the restart still waits")
        try await second.flush()
        XCTAssertEqual(try second.banditArms("banner").map(\.rewardSum).reduce(0, +), 2)
        try second.close()
    }

    /// Runs `body` against a fresh server, stopping it afterwards whatever happens.
    private func withServer(
        deviceConfig: String? = nil, _ body: (TestServer) async throws -> Void
    ) async throws {
        let server = try await TestServer(deviceConfig: deviceConfig)
        do {
            try await body(server)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    func testDecisionsAndArmStatisticsReachTheServer() async throws {
        try await withServer { server in try await decisionsReach(server) }
    }

    private func decisionsReach(_ server: TestServer) async throws {
        let starling = try openWithConsent(
            banditConfiguration(try temporaryDirectory(self), server: server))
        // Learned before the second choice, so UCB1 plays another, untried arm.
        try starling.reward(try starling.choose("banner"), value: 1)
        try await starling.flush()
        try starling.reward(try starling.choose("banner"), value: 0)
        try await starling.flush()
        let report = try await starling.sync()
        XCTAssertNil(report.lastError)
        let stats = try await server.stats()
        XCTAssertEqual(stats.eventsByName["starling.decision"], 2)
        // One statistics event per arm played since the last sync.
        XCTAssertEqual(stats.eventsByName["starling.arm_stats"], 2)
        try starling.close()
    }

    func testSignalsAndBanditsDeclaredByTheServerApplyAtTheNextOpen() async throws {
        let definitions = """
            {
              "signals": [{"name": "clicks_1h", "kind": {"windowed_count": {"event": "click", "window_ms": 3600000}}}],
              "bandits": [{"name": "promo", "policy": {"ucb1": {"exploration": 1.4}}, "arms": ["x", "y"]}]
            }
            """
        try await withServer(deviceConfig: definitions) { server in
            try await serverDefinitionsApply(server)
        }
    }

    private func serverDefinitionsApply(_ server: TestServer) async throws {
        let directory = try temporaryDirectory(self)

        let first = try openWithConsent(configuration(directory, server: server))
        assertThrows(StarlingError.notFound, try first.choose("promo"))
        let report = try await first.sync()
        XCTAssertNil(report.lastError)
        XCTAssertNil(try first.signals()["clicks_1h"], "the running instance keeps its definitions")
        try first.close()

        let second = try Starling.open(configuration(directory, server: server))
        XCTAssertEqual(try second.signals()["clicks_1h"], 0)
        try second.track("click")
        try await second.flush()
        XCTAssertEqual(try second.signals()["clicks_1h"], 1)
        XCTAssertTrue(["x", "y"].contains(try second.choose("promo").arm))
        XCTAssertEqual(try second.banditArms("promo").map(\.name), ["x", "y"])
        try second.close()
    }
}
