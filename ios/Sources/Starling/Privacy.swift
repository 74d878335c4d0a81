import Foundation
internal import StarlingFFI

/// The privacy layer: budgets, daily private reports, consent per purpose and receipts.
/// `docs/privacy.md` describes the threat model and each mechanism.
///
/// ```swift
/// let starling = try Starling.open(configuration, privacy: .init(reports: [
///     .eventCounts(name: "usage", events: ["app_open"], maxPerEvent: 5, epsilon: 0.5),
/// ]))
/// try starling.setConsent(.privateReports, granted: true)
/// for receipt in try starling.privacyReceipts() { print(receipt.channel, receipt.outline) }
/// ```
extension Starling {
    /// A purpose the user consents to on its own. ``setConsent(_:)`` sets all of them.
    public enum ConsentPurpose: Sendable, Hashable, CaseIterable {
        /// Sending the app's events as recorded.
        case rawEvents
        /// Sending daily private reports (noised aggregates).
        case privateReports
        /// Signals and bandit decisions on the device.
        case personalization
        /// Taking part in federated learning.
        case federatedLearning

        var ffi: StarlingFFI.ConsentPurpose {
            switch self {
            case .rawEvents: .rawEvents
            case .privateReports: .privateReports
            case .personalization: .personalization
            case .federatedLearning: .federatedLearning
            }
        }
    }

    /// One daily private report; the device noises it before it leaves.
    public enum PrivateReport: Sendable, Hashable {
        /// How often each of `events` happened that day, each count at most `maxPerEvent`.
        case eventCounts(name: String, events: [String], maxPerEvent: UInt32, epsilon: Double)
        /// A histogram of the numeric `property` of `event` over buckets split at `edges`.
        case histogram(
            name: String, event: String, property: String, edges: [Double], maxValues: UInt32,
            epsilon: Double)
        /// Which of `events` happened most that day (or `none`), by randomized response.
        case topEvent(name: String, events: [String], epsilon: Double)

        var ffi: PrivateReportDefinition {
            switch self {
            case let .eventCounts(name, events, maxPerEvent, epsilon):
                PrivateReportDefinition(
                    name: name, kind: .eventCounts(events: events, maxPerEvent: maxPerEvent),
                    epsilon: epsilon)
            case let .histogram(name, event, property, edges, maxValues, epsilon):
                PrivateReportDefinition(
                    name: name,
                    kind: .histogram(
                        event: event, property: property, edges: edges, maxValues: maxValues),
                    epsilon: epsilon)
            case let .topEvent(name, events, epsilon):
                PrivateReportDefinition(name: name, kind: .topEvent(events: events), epsilon: epsilon)
            }
        }
    }

    /// Privacy budgets and daily reports. The defaults are the core's: epsilon 1 per day and 3
    /// per 7 days, rho 0.5 per day; the server can lower them, never raise them.
    public struct PrivacySettings: Sendable, Hashable {
        /// Most epsilon (pure differential privacy) spent in any rolling 24 hours.
        public var epsilonPerDay: Double
        /// Most epsilon spent in any rolling 7 days.
        public var epsilonPerWeek: Double
        /// Most rho (zero-concentrated differential privacy) spent in any rolling 24 hours.
        public var rhoPerDay: Double
        /// Daily private reports.
        public var reports: [PrivateReport]
        /// Replace the pseudonymous device id this often; `nil` never on its own.
        public var deviceIDRotation: TimeInterval?

        /// Settings with the given reports and the default budgets.
        public init(
            epsilonPerDay: Double = 1, epsilonPerWeek: Double = 3, rhoPerDay: Double = 0.5,
            reports: [PrivateReport] = [], deviceIDRotation: TimeInterval? = nil
        ) {
            self.epsilonPerDay = epsilonPerDay
            self.epsilonPerWeek = epsilonPerWeek
            self.rhoPerDay = rhoPerDay
            self.reports = reports
            self.deviceIDRotation = deviceIDRotation
        }

        var ffi: StarlingFFI.PrivacySettings {
            StarlingFFI.PrivacySettings(
                epsilonPerDay: epsilonPerDay, epsilonPerWeek: epsilonPerWeek,
                rhoPerDay: rhoPerDay, reports: reports.map(\.ffi),
                deviceIdRotationMs: deviceIDRotation.map { UInt64(max(1, ($0 * 1000).rounded())) })
        }
    }

    /// One release that left (or is about to leave) the device.
    public struct PrivacyReceipt: Sendable, Hashable {
        /// The release's id.
        public let id: String
        /// When it was charged.
        public let charged: Date
        /// When the server acknowledged it; `nil` while it waits.
        public let sent: Date?
        /// Where it went, such as `report:usage`.
        public let channel: String
        /// What it held, in words.
        public let outline: String
        /// `epsilon` or `rho`.
        public let measure: String
        /// How much of that budget it spent.
        public let amount: Double
    }

    /// What has been spent in each budget window.
    public struct PrivacySpending: Sendable, Hashable {
        /// Epsilon spent in the last 24 hours.
        public let epsilonDay: Double
        /// Epsilon spent in the last 7 days.
        public let epsilonWeek: Double
        /// Rho spent in the last 24 hours.
        public let rhoDay: Double
    }

    /// What one round of private reports did.
    public struct PrivateReportsOutcome: Sendable, Hashable {
        /// Reports noised and charged.
        public let charged: Int
        /// Reports the server acknowledged.
        public let sent: Int
        /// Reports the budget refused, with the reason; tried again later.
        public let refused: [String]
        /// Why sending failed, if it did; the reports are resent later at no cost.
        public let sendError: String?
    }

    /// Opens an instance like ``open(_:)``, with privacy budgets and daily private reports.
    ///
    /// - Throws: ``StarlingError/invalidConfiguration(reason:)`` or
    ///   ``StarlingError/storage(reason:)``.
    public static func open(_ configuration: Configuration, privacy: PrivacySettings) throws
        -> Starling
    {
        let config = try configuration.ffiConfig()
        let settings = privacy.ffi
        let inner = try mappingErrors {
            try StarlingFFI.Starling.openWithPrivacy(config: config, privacy: settings)
        }
        return Starling(inner: inner)
    }

    /// Grants or withdraws consent for one purpose; withdrawing deletes what it kept.
    public func setConsent(_ purpose: ConsentPurpose, granted: Bool) throws {
        try mappingErrors { try inner.setPurposeConsent(purpose: purpose.ffi, granted: granted) }
    }

    /// Whether consent for `purpose` is granted.
    public func consent(for purpose: ConsentPurpose) throws -> Bool {
        try mappingErrors { try inner.purposeConsent(purpose: purpose.ffi) }
    }

    /// Every private release, newest first, at most `limit`.
    public func privacyReceipts(limit: UInt32 = 100) throws -> [PrivacyReceipt] {
        try mappingErrors { try inner.privacyReceipts(limit: limit) }.map {
            PrivacyReceipt(
                id: $0.id, charged: Date(timeIntervalSince1970: Double($0.chargedMs) / 1000),
                sent: $0.sentMs.map { Date(timeIntervalSince1970: Double($0) / 1000) },
                channel: $0.channel, outline: $0.outline, measure: $0.measure, amount: $0.amount)
        }
    }

    /// What has been spent in each budget window.
    public func privacySpent() throws -> PrivacySpending {
        let s = try mappingErrors { try inner.privacySpent() }
        return PrivacySpending(epsilonDay: s.epsilonDay, epsilonWeek: s.epsilonWeek, rhoDay: s.rhoDay)
    }

    /// Clips `values` to L2 norm `maxNorm`, adds Gaussian noise for a cost of `rho` (zCDP),
    /// charges it and returns the noised vector, for the app to send itself. Needs consent for
    /// ``ConsentPurpose/federatedLearning``; beyond the budget it throws
    /// ``StarlingError/invalidArgument(reason:)`` with the reason.
    public func releasePrivateVector(
        channel: String, values: [Double], maxNorm: Double, rho: Double
    ) throws -> [Double] {
        try mappingErrors {
            try inner.releasePrivateVector(channel: channel, values: values, maxNorm: maxNorm, rho: rho)
        }
    }

    /// Noises, charges and sends the private reports that are due, on Starling's own queue.
    public func sendPrivateReports() async throws -> PrivateReportsOutcome {
        let o = try await blocking { try $0.sendPrivateReports() }
        return PrivateReportsOutcome(
            charged: Int(o.charged), sent: Int(o.sent), refused: o.refused, sendError: o.sendError)
    }
}
