//! What a signal is: its name and kind, as declared in [`Config::signals`](crate::Config).

use crate::capture::Value;
use crate::error::{Error, Result};

/// Bound on the number of buckets one windowed count keeps (window / granularity), so that its
/// state stays small whatever the configuration.
pub(crate) const MAX_WINDOW_BUCKETS: u64 = 10_000;

/// One signal: a named number kept current from the events the writer commits.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    /// The name used by [`Signals::get`](crate::Signals::get) and
    /// [`Starling::feature_vector`](crate::Starling::feature_vector). Unique in a config.
    pub name: String,
    /// What the signal measures.
    pub kind: SignalKind,
}

/// A property filter: only events whose property `key` equals `value` are counted.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyFilter {
    /// Property name.
    pub key: String,
    /// The value it must have (same type and value).
    pub value: Value,
}

/// Default inactivity that ends a session: 30 minutes, in ms.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 30 * 60 * 1000;

/// Default longest session: 4 hours, in ms; longer runs of activity are split.
pub const DEFAULT_SESSION_MAX_LENGTH_MS: u64 = 4 * 3600 * 1000;

/// What one session signal reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionMeasure {
    /// Number of sessions since the signal was defined.
    Count,
    /// Length of the current session, first to last event, in ms (0 when none is open).
    CurrentLengthMs,
    /// Events in the current session (0 when none is open).
    CurrentEvents,
}

/// The kinds of signal. `docs/signals.md` gives each one's meaning and error bound.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SignalKind {
    /// Events named `event` (optionally filtered) in the sliding window of `window_ms` that
    /// ends at the watermark, counted in buckets of `granularity_ms`.
    WindowedCount {
        /// Event name to count.
        event: String,
        /// Optional property filter.
        filter: Option<PropertyFilter>,
        /// Window length, in ms.
        window_ms: u64,
        /// Bucket length, in ms; must divide `window_ms`. `None`: `window_ms / 60`.
        granularity_ms: Option<u64>,
    },
    /// Exponentially decayed sum of events named `event` (`property: None`: each event weighs
    /// 1), or decayed mean of a numeric property of those events.
    Ema {
        /// Event name.
        event: String,
        /// Numeric property to average; `None` counts events.
        property: Option<String>,
        /// Time after which an event's weight has halved, in ms.
        half_life_ms: u64,
    },
    /// Sessions of events (`event: None`: every event): a session ends after `timeout_ms`
    /// without events, or once it has lasted `max_length_ms`.
    Session {
        /// Event name, or every event.
        event: Option<String>,
        /// Inactivity that ends a session, in ms (usually 30 min).
        timeout_ms: u64,
        /// Longest session, in ms; a longer run of activity is split.
        max_length_ms: u64,
        /// What the signal reports.
        measure: SessionMeasure,
        /// Whether the SDK records a `starling.session_start` and a `starling.session_end`
        /// event at each session boundary it detects, stored and sent like tracked events
        /// (see `docs/signals.md`). Off by default.
        emit_events: bool,
    },
    /// How unusual the rate of `event` is: the z-score of the latest complete bucket's count
    /// against an exponentially weighted baseline of earlier buckets.
    Surge {
        /// Event name.
        event: String,
        /// Bucket length, in ms.
        bucket_ms: u64,
        /// Half-life of the baseline, in buckets.
        baseline_half_life_buckets: f64,
        /// Complete buckets needed before a z-score is reported (0 until then).
        warmup_buckets: u32,
        /// |z| at or above which [`Signals::alert`](crate::Signals::alert) reports a surge or
        /// drop (sensitivity: lower is more sensitive).
        threshold_z: f64,
    },
    /// Estimated number of distinct values of `property` on events named `event` (HyperLogLog,
    /// about 3.3% standard error), since the signal was defined.
    DistinctCount {
        /// Event name.
        event: String,
        /// Property whose values are counted.
        property: String,
    },
    /// The `k` most frequent values of `property` on events named `event` (Count-Min sketch
    /// with a top-k list), since the signal was defined. The signal's value is the estimated
    /// count of the most frequent one; [`Signals::heavy_hitters`](crate::Signals::heavy_hitters)
    /// gives the list.
    HeavyHitters {
        /// Event name.
        event: String,
        /// Property whose values are counted.
        property: String,
        /// How many values to keep, 1 to 100.
        k: usize,
    },
}

impl SignalSpec {
    /// A windowed count with the default granularity (window / 60).
    pub fn windowed_count(
        name: impl Into<String>,
        event: impl Into<String>,
        window_ms: u64,
    ) -> Self {
        Self::new(
            name,
            SignalKind::WindowedCount {
                event: event.into(),
                filter: None,
                window_ms,
                granularity_ms: None,
            },
        )
    }

    /// A session signal over every event with the default timeout
    /// ([`DEFAULT_SESSION_TIMEOUT_MS`], 30 min) and maximum length
    /// ([`DEFAULT_SESSION_MAX_LENGTH_MS`], 4 h), recording no session events.
    pub fn session(name: impl Into<String>, measure: SessionMeasure) -> Self {
        Self::new(
            name,
            SignalKind::Session {
                event: None,
                timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
                max_length_ms: DEFAULT_SESSION_MAX_LENGTH_MS,
                measure,
                emit_events: false,
            },
        )
    }

    /// The same session signal, recording `starling.session_start` and `starling.session_end`
    /// events at its boundaries. Other kinds are returned unchanged.
    pub fn with_session_events(mut self) -> Self {
        if let SignalKind::Session { emit_events, .. } = &mut self.kind {
            *emit_events = true;
        }
        self
    }

    /// A signal of any kind.
    pub fn new(name: impl Into<String>, kind: SignalKind) -> Self {
        SignalSpec {
            name: name.into(),
            kind,
        }
    }

    /// A text that changes whenever the definition changes: persisted state is reused only
    /// when it was built by the same definition.
    ///
    /// Whether a session signal records events leaves its state unchanged (the lifecycle is
    /// followed either way), so it is not part of the fingerprint: turning the events on or
    /// off keeps the sessions counted so far.
    pub(crate) fn fingerprint(&self) -> String {
        match &self.kind {
            SignalKind::Session {
                event,
                timeout_ms,
                max_length_ms,
                measure,
                emit_events: _,
            } => format!(
                "Session {{ event: {event:?}, timeout_ms: {timeout_ms:?}, \
                 max_length_ms: {max_length_ms:?}, measure: {measure:?} }}"
            ),
            kind => format!("{kind:?}"),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |why: &str| Err(Error::Config(format!("signal {:?}: {why}", self.name)));
        if self.name.is_empty() {
            return Err(Error::Config("a signal name must not be empty".into()));
        }
        match &self.kind {
            SignalKind::WindowedCount {
                window_ms,
                granularity_ms,
                ..
            } => {
                let g = granularity_ms.unwrap_or(window_ms / 60);
                if *window_ms == 0 || g == 0 {
                    return bad("window_ms and granularity_ms must be greater than zero");
                }
                if window_ms % g != 0 {
                    return bad("granularity_ms must divide window_ms");
                }
                if window_ms / g > MAX_WINDOW_BUCKETS {
                    return bad("window_ms / granularity_ms must be at most 10 000");
                }
            }
            SignalKind::Ema { half_life_ms, .. } if *half_life_ms == 0 => {
                return bad("half_life_ms must be greater than zero");
            }
            SignalKind::Session {
                timeout_ms,
                max_length_ms,
                ..
            } if *timeout_ms == 0 || *max_length_ms == 0 => {
                return bad("timeout_ms and max_length_ms must be greater than zero");
            }
            SignalKind::Surge {
                bucket_ms,
                baseline_half_life_buckets,
                threshold_z,
                ..
            } => {
                if *bucket_ms == 0 {
                    return bad("bucket_ms must be greater than zero");
                }
                if !(baseline_half_life_buckets.is_finite() && *baseline_half_life_buckets > 0.0) {
                    return bad("baseline_half_life_buckets must be a positive number");
                }
                if !(threshold_z.is_finite() && *threshold_z > 0.0) {
                    return bad("threshold_z must be a positive number");
                }
            }
            SignalKind::HeavyHitters { k, .. } if !(1..=100).contains(k) => {
                return bad("k must be between 1 and 100");
            }
            _ => {}
        }
        Ok(())
    }
}

/// The granularity a windowed count uses.
pub(crate) fn granularity(window_ms: u64, granularity_ms: Option<u64>) -> u64 {
    granularity_ms.unwrap_or(window_ms / 60)
}

/// Whether an event's properties pass an optional filter.
pub(crate) fn passes(filter: &Option<PropertyFilter>, props: &[(String, Value)]) -> bool {
    match filter {
        None => true,
        Some(f) => props.iter().any(|(k, v)| *k == f.key && *v == f.value),
    }
}

/// The numeric value of a property, if the event has it as a number.
pub(crate) fn numeric(props: &[(String, Value)], key: &str) -> Option<f64> {
    props
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| match v {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_definitions_are_refused() {
        let count = |w, g| SignalKind::WindowedCount {
            event: "e".into(),
            filter: None,
            window_ms: w,
            granularity_ms: g,
        };
        assert!(SignalSpec::new("a", count(60_000, None)).validate().is_ok());
        assert!(SignalSpec::new("a", count(0, None)).validate().is_err());
        assert!(SignalSpec::new("a", count(60_000, Some(7)))
            .validate()
            .is_err());
        assert!(SignalSpec::new("a", count(60_000, Some(1)))
            .validate()
            .is_err());
        assert!(SignalSpec::new("", count(60_000, None)).validate().is_err());
    }

    #[test]
    fn a_default_session_has_the_documented_bounds_and_records_no_events() {
        let spec = SignalSpec::session("s", SessionMeasure::Count);
        assert!(spec.validate().is_ok());
        let SignalKind::Session {
            event,
            timeout_ms,
            max_length_ms,
            emit_events,
            ..
        } = &spec.kind
        else {
            panic!("not a session signal: {spec:?}");
        };
        assert_eq!(
            (event, *timeout_ms, *max_length_ms),
            (&None, 1_800_000, 14_400_000)
        );
        assert!(!emit_events);
    }

    #[test]
    fn session_events_keep_the_fingerprint_of_states_stored_before_them() {
        let plain = SignalSpec::session("s", SessionMeasure::CurrentEvents);
        // The text older versions derived from the kind, which persisted states carry.
        assert_eq!(
            plain.fingerprint(),
            "Session { event: None, timeout_ms: 1800000, max_length_ms: 14400000, \
             measure: CurrentEvents }"
        );
        assert_eq!(
            plain.clone().with_session_events().fingerprint(),
            plain.fingerprint()
        );
        let shorter = SignalSpec::new(
            "s",
            SignalKind::Session {
                event: None,
                timeout_ms: 60_000,
                max_length_ms: 14_400_000,
                measure: SessionMeasure::CurrentEvents,
                emit_events: false,
            },
        );
        assert_ne!(shorter.fingerprint(), plain.fingerprint());
    }
}
