//! The privacy layer across the FFI: budgets and daily private reports in the settings,
//! consent per purpose, what was spent, and the receipts of every release.

use std::sync::Arc;

use starling_core::privacy::Cost;
use starling_core::{Budget, PrivacyConfig, Purpose, ReportKind, ReportSpec};

use crate::{guard, Starling, StarlingConfig, StarlingError};

/// Privacy budgets and daily private reports; see `docs/privacy.md`. Start from
/// [`default_privacy_settings`].
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PrivacySettings {
    /// Most epsilon (pure differential privacy) spent in any rolling 24 hours.
    pub epsilon_per_day: f64,
    /// Most epsilon spent in any rolling 7 days.
    pub epsilon_per_week: f64,
    /// Most rho (zero-concentrated differential privacy) spent in any rolling 24 hours.
    pub rho_per_day: f64,
    /// Daily private reports.
    pub reports: Vec<PrivateReportDefinition>,
    /// Replace the pseudonymous device id this often, in ms, if set.
    pub device_id_rotation_ms: Option<u64>,
}

/// One daily private report.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PrivateReportDefinition {
    /// Its name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// What it counts.
    pub kind: PrivateReportKind,
    /// Privacy cost of one day's report.
    pub epsilon: f64,
}

/// What a private report counts.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum PrivateReportKind {
    /// How often each event happened that day, each count clamped to `max_per_event`.
    EventCounts {
        /// Event names.
        events: Vec<String>,
        /// Largest count reported per event and day.
        max_per_event: u32,
    },
    /// A histogram of the numeric `property` of `event` over buckets split at `edges`.
    Histogram {
        /// Event name.
        event: String,
        /// Numeric property.
        property: String,
        /// Increasing bucket edges.
        edges: Vec<f64>,
        /// Most values reported per day.
        max_values: u32,
    },
    /// Which of `events` happened most that day (or `none`), by randomized response.
    TopEvent {
        /// Candidate event names.
        events: Vec<String>,
    },
}

/// A purpose the user consents to on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConsentPurpose {
    /// Sending the app's events as recorded.
    RawEvents,
    /// Sending daily private reports.
    PrivateReports,
    /// Signals and bandit decisions on the device.
    Personalization,
    /// Taking part in federated learning.
    FederatedLearning,
}

/// What has been spent in each budget window.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PrivacySpending {
    /// Epsilon spent in the last 24 hours.
    pub epsilon_day: f64,
    /// Epsilon spent in the last 7 days.
    pub epsilon_week: f64,
    /// Rho spent in the last 24 hours.
    pub rho_day: f64,
    /// The time the windows end at (the latest the ledger has seen), Unix epoch ms.
    pub clock_ms: i64,
}

/// The budgets in force: the app's, capped by the server's.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PrivacyBudgets {
    /// Epsilon per rolling 24 hours.
    pub epsilon_per_day: f64,
    /// Epsilon per rolling 7 days.
    pub epsilon_per_week: f64,
    /// Rho per rolling 24 hours.
    pub rho_per_day: f64,
}

/// One release that left (or is about to leave) the device.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PrivacyReceipt {
    /// The release's id.
    pub id: String,
    /// When it was charged, Unix epoch ms.
    pub charged_ms: i64,
    /// When the server acknowledged it; none while it waits.
    pub sent_ms: Option<i64>,
    /// Where it went, such as `report:daily_usage`.
    pub channel: String,
    /// What it held, in words.
    pub outline: String,
    /// `epsilon` or `rho`.
    pub measure: String,
    /// How much of that budget it spent.
    pub amount: f64,
}

/// What one round of private reports did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PrivateReportsOutcome {
    /// Reports noised and charged.
    pub charged: u32,
    /// Reports the server acknowledged.
    pub sent: u32,
    /// Reports the budget refused, with the reason.
    pub refused: Vec<String>,
    /// Why sending failed, if it did.
    pub send_error: Option<String>,
}

/// The default privacy settings: epsilon 1 per day and 3 per week, rho 0.5 per day, no reports.
#[uniffi::export]
pub fn default_privacy_settings() -> PrivacySettings {
    let core = PrivacyConfig::default();
    PrivacySettings {
        epsilon_per_day: core.budget.epsilon_per_day,
        epsilon_per_week: core.budget.epsilon_per_week,
        rho_per_day: core.budget.rho_per_day,
        reports: Vec::new(),
        device_id_rotation_ms: core.device_id_rotation_ms,
    }
}

impl From<PrivacySettings> for PrivacyConfig {
    fn from(s: PrivacySettings) -> Self {
        PrivacyConfig {
            budget: Budget {
                epsilon_per_day: s.epsilon_per_day,
                epsilon_per_week: s.epsilon_per_week,
                rho_per_day: s.rho_per_day,
            },
            reports: s
                .reports
                .into_iter()
                .map(|r| ReportSpec {
                    name: r.name,
                    epsilon: r.epsilon,
                    kind: match r.kind {
                        PrivateReportKind::EventCounts {
                            events,
                            max_per_event,
                        } => ReportKind::EventCounts {
                            events,
                            max_per_event,
                        },
                        PrivateReportKind::Histogram {
                            event,
                            property,
                            edges,
                            max_values,
                        } => ReportKind::Histogram {
                            event,
                            property,
                            edges,
                            max_values,
                        },
                        PrivateReportKind::TopEvent { events } => ReportKind::TopEvent { events },
                    },
                })
                .collect(),
            device_id_rotation_ms: s.device_id_rotation_ms,
        }
    }
}

impl From<ConsentPurpose> for Purpose {
    fn from(p: ConsentPurpose) -> Self {
        match p {
            ConsentPurpose::RawEvents => Purpose::RawEvents,
            ConsentPurpose::PrivateReports => Purpose::PrivateReports,
            ConsentPurpose::Personalization => Purpose::Personalization,
            ConsentPurpose::FederatedLearning => Purpose::FederatedLearning,
        }
    }
}

#[uniffi::export]
impl Starling {
    /// Opens the store like `open`, with privacy budgets and private reports.
    #[uniffi::constructor]
    pub fn open_with_privacy(
        config: StarlingConfig,
        privacy: PrivacySettings,
    ) -> Result<Arc<Starling>, StarlingError> {
        guard(|| {
            let mut core: starling_core::Config = config.into();
            core.privacy = privacy.into();
            starling_core::Starling::open(core)
        })
        .map(|inner| Arc::new(Starling { inner }))
    }

    /// Grants or withdraws consent for one purpose; withdrawing deletes what it kept.
    pub fn set_purpose_consent(
        &self,
        purpose: ConsentPurpose,
        granted: bool,
    ) -> Result<(), StarlingError> {
        guard(|| self.inner.set_purpose_consent(purpose.into(), granted))
    }

    /// Whether consent for `purpose` is granted.
    pub fn purpose_consent(&self, purpose: ConsentPurpose) -> Result<bool, StarlingError> {
        guard(|| Ok(self.inner.purpose_consent(purpose.into())))
    }

    /// What has been spent in each budget window.
    pub fn privacy_spent(&self) -> Result<PrivacySpending, StarlingError> {
        guard(|| self.inner.privacy_spent()).map(|s| PrivacySpending {
            epsilon_day: s.epsilon_day,
            epsilon_week: s.epsilon_week,
            rho_day: s.rho_day,
            clock_ms: s.clock_ms,
        })
    }

    /// The budgets in force.
    pub fn privacy_budget(&self) -> Result<PrivacyBudgets, StarlingError> {
        guard(|| self.inner.privacy_budget()).map(|b| PrivacyBudgets {
            epsilon_per_day: b.epsilon_per_day,
            epsilon_per_week: b.epsilon_per_week,
            rho_per_day: b.rho_per_day,
        })
    }

    /// Every private release, newest first, at most `limit`.
    pub fn privacy_receipts(&self, limit: u32) -> Result<Vec<PrivacyReceipt>, StarlingError> {
        guard(|| self.inner.privacy_receipts(limit)).map(|receipts| {
            receipts
                .into_iter()
                .map(|r| PrivacyReceipt {
                    id: r.id,
                    charged_ms: r.charged_ms,
                    sent_ms: r.sent_ms,
                    channel: r.channel,
                    outline: r.outline,
                    measure: r.cost.measure().to_owned(),
                    amount: match r.cost {
                        Cost::Epsilon(v) | Cost::Rho(v) => v,
                    },
                })
                .collect()
        })
    }

    /// Clips `values` to L2 norm `max_norm`, adds Gaussian noise for a cost of `rho`, charges
    /// it and returns the noised vector, for the app to send itself. Needs consent for
    /// federated learning; beyond the budget it fails with `InvalidArgument` and the reason.
    pub fn release_private_vector(
        &self,
        channel: String,
        values: Vec<f64>,
        max_norm: f64,
        rho: f64,
    ) -> Result<Vec<f64>, StarlingError> {
        guard(|| {
            self.inner
                .release_private_vector(&channel, &values, max_norm, rho)
        })
    }

    /// Noises, charges and sends the private reports that are due. Waits on the network.
    pub fn send_private_reports(&self) -> Result<PrivateReportsOutcome, StarlingError> {
        guard(|| self.inner.send_private_reports()).map(|o| PrivateReportsOutcome {
            charged: o.charged,
            sent: o.sent,
            refused: o.refused,
            send_error: o.send_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_privacy_settings_are_a_config_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::default_config(dir.path().display().to_string());
        let mut privacy = default_privacy_settings();
        privacy.reports.push(PrivateReportDefinition {
            name: "bad name!".into(),
            kind: PrivateReportKind::TopEvent {
                events: vec!["open".into()],
            },
            epsilon: 1.0,
        });
        let err = Starling::open_with_privacy(config.clone(), privacy)
            .err()
            .unwrap();
        assert!(
            matches!(err, StarlingError::InvalidConfig { .. }),
            "{err:?}"
        );

        let mut privacy = default_privacy_settings();
        privacy.epsilon_per_day = f64::NAN;
        let err = Starling::open_with_privacy(config.clone(), privacy)
            .err()
            .unwrap();
        assert!(
            matches!(err, StarlingError::InvalidConfig { .. }),
            "{err:?}"
        );

        let starling = Starling::open_with_privacy(config, default_privacy_settings()).unwrap();
        assert!(!starling
            .purpose_consent(ConsentPurpose::PrivateReports)
            .unwrap());
        let err = starling.send_private_reports().unwrap_err();
        assert!(matches!(err, StarlingError::NoConsent { .. }), "{err:?}");
        assert!(starling.privacy_receipts(10).unwrap().is_empty());
        assert_eq!(starling.privacy_budget().unwrap().epsilon_per_day, 1.0);
    }
}
