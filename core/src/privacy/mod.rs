//! The privacy layer: noise mechanisms built with opendp, the persisted budget ledger, and the
//! private reports a device sends about its own data. `docs/privacy.md` describes the threat
//! model and each mechanism.
//!
//! Every private release follows the same path: the data is clamped and noised by a
//! [`mechanisms`] function, which returns what opendp's privacy map says the release costs;
//! the [`ledger`] charges that cost and stores the release in one transaction, refusing it if a
//! budget would be exceeded; only then is it sent. A release is never charged twice and never
//! refunded.

pub(crate) mod api;
pub(crate) mod arm_stats;
pub mod consent;
pub(crate) mod ledger;
pub mod mechanisms;
pub(crate) mod reports;
pub(crate) mod tally;

pub use consent::Purpose;
pub use ledger::{Budget, Receipt, Spent};
pub use mechanisms::Cost;

/// One private report the device sends each day about its own events.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSpec {
    /// The report's name: letters, digits, `_`, `-` and `.`, 1 to 64 of them.
    pub name: String,
    /// What is counted and how it is noised.
    pub kind: ReportKind,
    /// Privacy cost of one day's report (pure DP epsilon), charged to the daily and weekly
    /// budgets. Smaller means more noise; the fleet estimate's error shrinks with the square
    /// root of the number of devices.
    pub epsilon: f64,
}

/// What a private report counts.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportKind {
    /// How many times each of `events` happened that day, each count clamped to
    /// `max_per_event` (the bound keeps one heavy user from dominating, and sets the noise).
    /// Noise: discrete Laplace with scale `events.len() * max_per_event / epsilon`.
    EventCounts {
        /// Event names to count, in report order.
        events: Vec<String>,
        /// Largest count a device reports for one event and day.
        max_per_event: u32,
    },
    /// How the numeric property `property` of event `event` fell into buckets that day. The
    /// buckets are `(-inf, edges[0])`, `[edges[0], edges[1])`, ..., `[edges[last], +inf)`;
    /// at most `max_values` values are counted per day. Noise: discrete Laplace with scale
    /// `min(buckets * max_values, 2 * max_values) / epsilon`.
    Histogram {
        /// Event whose property is bucketed.
        event: String,
        /// Numeric (integer or float) property.
        property: String,
        /// Increasing, finite bucket edges.
        edges: Vec<f64>,
        /// Largest number of values a device reports per day.
        max_values: u32,
    },
    /// Which of `events` happened most often that day (the first on a tie), or `"none"` if
    /// none did, reported through randomized response over the `events.len() + 1` answers.
    TopEvent {
        /// Candidate event names.
        events: Vec<String>,
    },
}

/// The answer of a [`ReportKind::TopEvent`] report when none of its events happened.
pub const NO_EVENT: &str = "none";

/// How the privacy layer behaves: the app's budgets and its private reports.
#[derive(Debug, Clone, PartialEq)]
pub struct PrivacyConfig {
    /// The most this device may spend. The server can lower it (never raise it) through the
    /// configuration it serves. Default: epsilon 1 per day and 3 per 7 days, rho 0.5 per day.
    pub budget: Budget,
    /// Daily private reports. Default: none.
    pub reports: Vec<ReportSpec>,
    /// If set, the pseudonymous device id is replaced by a new random one when this much time
    /// has passed since it last changed, in ms (checked at each sync), so that the server
    /// cannot link a device's events over longer spans. Default: none (the id changes only
    /// through `reset_device_id`).
    pub device_id_rotation_ms: Option<u64>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            // Epsilon 1 per day bounds what one day's reports reveal about the device to a
            // likelihood ratio of e (2.7); 3 per week rather than 7 because days of one person
            // are correlated and a week of reports should not reveal much more than a few days.
            // Rho 0.5 per day is the zCDP budget of vector releases, about epsilon 4.3 at
            // delta 1e-6: vectors (model updates) carry less about any one event.
            budget: Budget {
                epsilon_per_day: 1.0,
                epsilon_per_week: 3.0,
                rho_per_day: 0.5,
            },
            reports: Vec::new(),
            device_id_rotation_ms: None,
        }
    }
}

impl PrivacyConfig {
    pub(crate) fn validate(&self) -> crate::Result<()> {
        use crate::Error;
        let b = &self.budget;
        for (name, v) in [
            ("epsilon_per_day", b.epsilon_per_day),
            ("epsilon_per_week", b.epsilon_per_week),
            ("rho_per_day", b.rho_per_day),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::Config(format!(
                    "privacy budget {name} must be a finite number >= 0, got {v}"
                )));
            }
        }
        if self.device_id_rotation_ms == Some(0) {
            return Err(Error::Config(
                "device_id_rotation_ms must be greater than zero".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for spec in &self.reports {
            spec.validate()?;
            if !names.insert(spec.name.as_str()) {
                return Err(Error::Config(format!(
                    "two private reports are called {:?}",
                    spec.name
                )));
            }
        }
        Ok(())
    }
}

impl ReportSpec {
    fn validate(&self) -> crate::Result<()> {
        let bad = |why: String| {
            Err(crate::Error::Config(format!(
                "private report {:?}: {why}",
                self.name
            )))
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !name_ok {
            return bad("the name must be 1 to 64 letters, digits, '_', '-' or '.'".into());
        }
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return bad(format!(
                "epsilon must be positive and finite, got {}",
                self.epsilon
            ));
        }
        match &self.kind {
            ReportKind::EventCounts {
                events,
                max_per_event,
            } => {
                if events.is_empty() || *max_per_event == 0 {
                    return bad("needs at least one event and max_per_event > 0".into());
                }
            }
            ReportKind::Histogram {
                edges, max_values, ..
            } => {
                if edges.is_empty()
                    || edges.iter().any(|e| !e.is_finite())
                    || edges.windows(2).any(|w| w[0] >= w[1])
                    || *max_values == 0
                {
                    return bad("needs finite, strictly increasing edges and max_values > 0".into());
                }
            }
            ReportKind::TopEvent { events } => {
                if events.is_empty() || events.iter().any(|e| e == NO_EVENT) {
                    return bad(format!(
                        "needs at least one event, none called {NO_EVENT:?}"
                    ));
                }
            }
        }
        if let ReportKind::EventCounts { events, .. } | ReportKind::TopEvent { events } = &self.kind
        {
            let distinct: std::collections::HashSet<_> = events.iter().collect();
            if distinct.len() != events.len() {
                return bad("an event is listed twice".into());
            }
        }
        Ok(())
    }
}

/// What one round of private reports did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportsOutcome {
    /// Daily reports noised and charged in this round.
    pub charged: u32,
    /// Reports the server acknowledged in this round (new or left over from before).
    pub sent: u32,
    /// Reports refused by the budget, with the reason; they are tried again later.
    pub refused: Vec<String>,
    /// Why sending failed, if it did; the charged reports stay queued and are resent as they
    /// are (a resend costs no budget).
    pub send_error: Option<String>,
}
