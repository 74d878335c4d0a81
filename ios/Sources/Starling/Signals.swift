import Foundation
internal import StarlingFFI

extension Starling {
    /// A signal: a number about this device's own activity that Starling keeps current from the
    /// events it stores, such as screens viewed in the last hour or the length of the current
    /// session. Signals never leave the device.
    ///
    /// Declare signals in ``Configuration/signals`` and read them with ``Starling/signals()`` or,
    /// for a model or a bandit, ``Starling/featureVector(_:)``:
    ///
    /// ```swift
    /// configuration.signals = [
    ///     .windowedCount("views_1h", event: "screen_view", window: 3600),
    ///     .session("sessions"),
    /// ]
    /// ```
    ///
    /// Durations are `TimeInterval`s in seconds, kept to the millisecond. Values are as of the
    /// newest event applied (the watermark), not of the wall clock; `docs/signals.md` gives each
    /// kind's memory and error bound. A definition that is not usable makes ``Starling/open(_:)``
    /// throw ``StarlingError/invalidConfiguration(reason:)`` naming the signal and the rule. A
    /// signal's state is kept across launches while its definition is unchanged; a new or changed
    /// one starts from nothing.
    public struct Signal: Sendable, Hashable {
        /// The name it is read by; unique among the configuration's signals.
        public var name: String

        /// What it measures.
        public var kind: Kind

        /// A signal called `name` measuring `kind`.
        public init(_ name: String, _ kind: Kind) {
            self.name = name
            self.kind = kind
        }

        /// What a signal measures.
        public enum Kind: Sendable, Hashable {
            /// Events called `event` (only those matching `filter`, if given) in the last
            /// `window` of event time, counted in buckets of `granularity` (`nil`: a sixtieth of
            /// the window, which must be divisible by it). The count may include up to one
            /// bucket more than the window, never less.
            case windowedCount(
                event: String, window: TimeInterval, granularity: TimeInterval? = nil,
                filter: PropertyFilter? = nil)

            /// An exponential moving average with half-life `halfLife`: a decayed count of
            /// events called `event`, or, with `property`, the decayed mean of that numeric
            /// property.
            case movingAverage(event: String, halfLife: TimeInterval, property: String? = nil)

            /// Sessions of activity (`event`, or any event when `nil`): a session ends after
            /// `timeout` without events, or once it has lasted `maxLength`.
            case session(
                measure: SessionMeasure = .count, event: String? = nil,
                timeout: TimeInterval = 30 * 60, maxLength: TimeInterval = 4 * 3600)

            /// How unusual the rate of `event` is: the z-score of the latest complete bucket of
            /// `bucket` against an exponentially weighted baseline of earlier buckets, with a
            /// half-life of `baselineHalfLifeBuckets` buckets, silent for the first
            /// `warmupBuckets`. ``SignalSnapshot/trend(_:)`` reports a surge or a drop once |z|
            /// reaches `thresholdZ` standard deviations.
            case surge(
                event: String, bucket: TimeInterval, baselineHalfLifeBuckets: Double = 24,
                warmupBuckets: Int = 24, thresholdZ: Double = 3)

            /// The estimated number of distinct values of `property` on events called `event`
            /// since the signal was defined (HyperLogLog, about 3.3% standard error).
            case distinctCount(event: String, property: String)

            /// The `k` (1 to 100) most frequent values of `property` on events called `event`
            /// since the signal was defined (Count-Min sketch: estimates never below the true
            /// count). The value is the top count; ``SignalSnapshot/topValues(_:)`` lists them.
            case heavyHitters(event: String, property: String, k: Int = 10)
        }

        /// What a session signal reports.
        public enum SessionMeasure: Sendable, Hashable {
            /// Sessions started since the signal was defined.
            case count
            /// Length of the current session, first to last event, in milliseconds; 0 when none
            /// is open.
            case currentLengthMs
            /// Events in the current session; 0 when none is open.
            case currentEvents
        }

        /// Only events whose property `key` equals `value`, of the same type, pass: `.int(3)`
        /// matches an integer 3, not the text `"3"`.
        public struct PropertyFilter: Sendable, Hashable {
            /// The property's key.
            public var key: String
            /// The value it must have.
            public var value: PropertyValue

            /// A filter on `key` equal to `value`.
            public init(_ key: String, equals value: PropertyValue) {
                self.key = key
                self.value = value
            }
        }

        /// A ``Kind/windowedCount(event:window:granularity:filter:)`` signal.
        public static func windowedCount(
            _ name: String, event: String, window: TimeInterval,
            granularity: TimeInterval? = nil, filter: PropertyFilter? = nil
        ) -> Signal {
            Signal(
                name,
                .windowedCount(
                    event: event, window: window, granularity: granularity, filter: filter))
        }

        /// A ``Kind/movingAverage(event:halfLife:property:)`` signal.
        public static func movingAverage(
            _ name: String, event: String, halfLife: TimeInterval, property: String? = nil
        ) -> Signal {
            Signal(name, .movingAverage(event: event, halfLife: halfLife, property: property))
        }

        /// A ``Kind/session(measure:event:timeout:maxLength:)`` signal.
        public static func session(
            _ name: String, measure: SessionMeasure = .count, event: String? = nil,
            timeout: TimeInterval = 30 * 60, maxLength: TimeInterval = 4 * 3600
        ) -> Signal {
            Signal(
                name,
                .session(measure: measure, event: event, timeout: timeout, maxLength: maxLength))
        }

        /// A ``Kind/surge(event:bucket:baselineHalfLifeBuckets:warmupBuckets:thresholdZ:)``
        /// signal.
        public static func surge(
            _ name: String, event: String, bucket: TimeInterval,
            baselineHalfLifeBuckets: Double = 24, warmupBuckets: Int = 24, thresholdZ: Double = 3
        ) -> Signal {
            Signal(
                name,
                .surge(
                    event: event, bucket: bucket, baselineHalfLifeBuckets: baselineHalfLifeBuckets,
                    warmupBuckets: warmupBuckets, thresholdZ: thresholdZ))
        }

        /// A ``Kind/distinctCount(event:property:)`` signal.
        public static func distinctCount(_ name: String, event: String, property: String) -> Signal
        {
            Signal(name, .distinctCount(event: event, property: property))
        }

        /// A ``Kind/heavyHitters(event:property:k:)`` signal.
        public static func heavyHitters(
            _ name: String, event: String, property: String, k: Int = 10
        ) -> Signal {
            Signal(name, .heavyHitters(event: event, property: property, k: k))
        }

        /// The definition as the bindings carry it. Negative, infinite or NaN durations and
        /// counts are refused here; zero and the other rules are the core's to check.
        func ffiSignal() throws(StarlingError) -> SignalDefinition {
            let what = "signal \"\(name)\":"
            func ms(_ value: TimeInterval, _ field: String) throws(StarlingError) -> UInt64 {
                try milliseconds(value, "\(what) \(field)")
            }
            func count(_ value: Int, _ field: String) throws(StarlingError) -> UInt32 {
                UInt32(clamping: try nonNegative(value, "\(what) \(field)"))
            }
            let ffiKind: SignalKindDefinition
            switch kind {
            case .windowedCount(let event, let window, let granularity, let filter):
                ffiKind = .windowedCount(
                    event: event, filterKey: filter?.key,
                    filterValue: try filter.map { (filter) throws(StarlingError) in
                        try filter.value.ffiValue(key: filter.key)
                    },
                    windowMs: try ms(window, "window"),
                    granularityMs: try granularity.map { (g) throws(StarlingError) in
                        try ms(g, "granularity")
                    })
            case .movingAverage(let event, let halfLife, let property):
                ffiKind = .movingAverage(
                    event: event, property: property, halfLifeMs: try ms(halfLife, "halfLife"))
            case .session(let measure, let event, let timeout, let maxLength):
                ffiKind = .session(
                    event: event, timeoutMs: try ms(timeout, "timeout"),
                    maxLengthMs: try ms(maxLength, "maxLength"), measure: measure.ffiMeasure)
            case .surge(let event, let bucket, let halfLife, let warmup, let threshold):
                ffiKind = .surge(
                    event: event, bucketMs: try ms(bucket, "bucket"),
                    baselineHalfLifeBuckets: halfLife,
                    warmupBuckets: try count(warmup, "warmupBuckets"), thresholdZ: threshold)
            case .distinctCount(let event, let property):
                ffiKind = .distinctCount(event: event, property: property)
            case .heavyHitters(let event, let property, let k):
                ffiKind = .heavyHitters(event: event, property: property, k: try count(k, "k"))
            }
            return SignalDefinition(name: name, kind: ffiKind)
        }
    }
}

extension Starling.Signal.SessionMeasure {
    var ffiMeasure: SessionMeasureDefinition {
        switch self {
        case .count: return .count
        case .currentLengthMs: return .currentLengthMs
        case .currentEvents: return .currentEvents
        }
    }
}

extension Starling {
    /// Every signal's value as of the last commit, from ``Starling/signals()``: an immutable
    /// copy, so reading it again gives newer values once more events are committed.
    ///
    /// ```swift
    /// let signals = try starling.signals()
    /// let views = signals["views_1h"] ?? 0
    /// if try signals.trend("searches") == .surge { showHelp() }
    /// ```
    public struct SignalSnapshot: Sendable, Hashable {
        /// Every signal, in the order of ``Configuration/signals`` (then the server's).
        public let values: [SignalValue]
        /// Time of the newest event applied: the time the values refer to. `nil` before the
        /// first event.
        public let watermark: Date?
        /// Events applied to the signals since they were defined.
        public let eventsApplied: Int
        /// Events that arrived more than ``Configuration/signalAllowedLateness`` behind the
        /// newest one: stored and sent as usual, but applied to no signal.
        public let eventsTooLate: Int
        /// Events a session signal folded in early because its bounded memory was full.
        public let eventsOverBounds: Int

        /// The names of the signals, in ``values`` order.
        public var names: [String] { values.map(\.name) }

        /// The value of the signal called `name`, or `nil` if no signal has that name.
        public subscript(name: String) -> Double? {
            values.first { $0.name == name }?.value
        }

        /// The value of the signal called `name`.
        ///
        /// - Throws: ``StarlingError/notFound(reason:)`` if no signal has that name.
        public func value(_ name: String) throws(StarlingError) -> Double {
            try signal(name).value
        }

        /// Where the surge signal called `name` stands; `nil` for a signal of another kind.
        ///
        /// - Throws: ``StarlingError/notFound(reason:)`` if no signal has that name.
        public func trend(_ name: String) throws(StarlingError) -> SignalTrend? {
            try signal(name).trend
        }

        /// The most frequent values of the heavy-hitters signal called `name`, most frequent
        /// first; empty for a signal of another kind.
        ///
        /// - Throws: ``StarlingError/notFound(reason:)`` if no signal has that name.
        public func topValues(_ name: String) throws(StarlingError) -> [RankedValue] {
            try signal(name).topValues
        }

        private func signal(_ name: String) throws(StarlingError) -> SignalValue {
            guard let value = values.first(where: { $0.name == name }) else {
                throw .notFound(reason: "no signal called \"\(name)\" is defined")
            }
            return value
        }

        init(_ s: StarlingFFI.SignalSnapshot) {
            values = s.values.map { v in
                SignalValue(
                    name: v.name, value: v.value, trend: v.trend.map(SignalTrend.init),
                    topValues: v.top.map { RankedValue(value: $0.value, count: $0.count) })
            }
            watermark = s.watermarkMs.map { Date(timeIntervalSince1970: Double($0) / 1000) }
            eventsApplied = Int(clamping: s.eventsApplied)
            eventsTooLate = Int(clamping: s.eventsTooLate)
            eventsOverBounds = Int(clamping: s.eventsOverBounds)
        }
    }

    /// One signal's value in a ``SignalSnapshot``.
    public struct SignalValue: Sendable, Hashable {
        /// The signal's name.
        public let name: String
        /// Its value: a count, an average, a length in milliseconds, or, for a surge signal, the
        /// z-score (0 while it warms up).
        public let value: Double
        /// For a surge signal, where it stands; `nil` for the other kinds.
        public let trend: SignalTrend?
        /// For a heavy-hitters signal, its values, most frequent first; empty for the others.
        public let topValues: [RankedValue]
    }

    /// Where a surge signal stands.
    public enum SignalTrend: Sendable, Hashable {
        /// Nothing unusual, or still warming up.
        case steady
        /// The rate is unusually high.
        case surge
        /// The rate is unusually low.
        case drop

        init(_ trend: StarlingFFI.SignalTrend) {
            switch trend {
            case .steady: self = .steady
            case .surge: self = .surge
            case .drop: self = .drop
            }
        }
    }

    /// A property value with its estimated count, never below the true count.
    public struct RankedValue: Sendable, Hashable {
        /// The value, as text.
        public let value: String
        /// How often it was seen (estimated).
        public let count: Double

        /// A value seen `count` times.
        public init(value: String, count: Double) {
            self.value = value
            self.count = count
        }
    }

    /// Every signal's value as of the last commit: after ``flush()`` returns, it reflects every
    /// event tracked before. Reads memory only, never the database, so it is fine on the main
    /// actor.
    ///
    /// - Throws: ``StarlingError/closed(reason:)`` once the instance is closed.
    public func signals() throws(StarlingError) -> SignalSnapshot {
        SignalSnapshot(try mappingErrors { try inner.signals() })
    }

    /// The values of the signals called `names`, in that order, as the input of a model or a
    /// contextual bandit. Reads memory only, like ``signals()``.
    ///
    /// - Throws: ``StarlingError/notFound(reason:)`` if a name is not a signal's; the reason
    ///   quotes it.
    public func featureVector(_ names: [String]) throws(StarlingError) -> [Double] {
        try mappingErrors { try inner.featureVector(names: names) }
    }
}
