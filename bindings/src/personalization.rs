//! Signals and bandits across the FFI: their definitions in the configuration, the signal
//! snapshot and feature vectors, and decisions with their rewards.

use starling_core::bandit::{BanditSpec, PolicyKind, RewardEvent};
use starling_core::{PropertyFilter, SessionMeasure, SignalKind, SignalSpec, Trend};

use crate::{guard, PropertyValue, Starling, StarlingError};

/// A named signal in [`StarlingConfig::signals`](crate::StarlingConfig).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SignalDefinition {
    /// The name it is read by.
    pub name: String,
    /// What it measures.
    pub kind: SignalKindDefinition,
}

/// What a signal measures; `docs/signals.md` describes each kind, its memory and its error.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum SignalKindDefinition {
    /// Events called `event` (with property `filter_key` equal to `filter_value`, if given)
    /// in the last `window_ms`, counted in buckets of `granularity_ms` (none: 1/60 of the
    /// window).
    WindowedCount {
        /// Event name.
        event: String,
        /// Property key to filter on.
        filter_key: Option<String>,
        /// Value the property must have.
        filter_value: Option<PropertyValue>,
        /// Window length.
        window_ms: u64,
        /// Bucket length.
        granularity_ms: Option<u64>,
    },
    /// An exponential moving average with half-life `half_life_ms` of the event's rate, or of
    /// the numeric `property` when given.
    MovingAverage {
        /// Event name.
        event: String,
        /// Numeric property averaged; none averages the rate.
        property: Option<String>,
        /// Half-life.
        half_life_ms: u64,
    },
    /// Sessions from activity (any event, or only `event`).
    Session {
        /// Event that counts as activity; none means any.
        event: Option<String>,
        /// Inactivity that ends a session.
        timeout_ms: u64,
        /// Longest session.
        max_length_ms: u64,
        /// What the signal's value is.
        measure: SessionMeasureDefinition,
        /// Record `starling.session_start` and `starling.session_end` events at its
        /// boundaries, stored and sent like tracked events.
        emit_events: bool,
    },
    /// Surge and drop detection on the rate of `event`: z-score against an EMA baseline.
    Surge {
        /// Event name.
        event: String,
        /// Rate bucket.
        bucket_ms: u64,
        /// Baseline half-life, in buckets.
        baseline_half_life_buckets: f64,
        /// Buckets before the detector speaks.
        warmup_buckets: u32,
        /// |z| that counts as a surge or a drop.
        threshold_z: f64,
    },
    /// Distinct values of `property` on `event` (HyperLogLog).
    DistinctCount {
        /// Event name.
        event: String,
        /// Property whose distinct values are counted.
        property: String,
    },
    /// The `k` most frequent values of `property` on `event` (Count-Min sketch).
    HeavyHitters {
        /// Event name.
        event: String,
        /// Property counted.
        property: String,
        /// How many values are kept.
        k: u32,
    },
}

/// What a session signal reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SessionMeasureDefinition {
    /// Sessions started.
    Count,
    /// Length of the current session, in ms.
    CurrentLengthMs,
    /// Events in the current session.
    CurrentEvents,
}

impl From<SignalDefinition> for SignalSpec {
    fn from(d: SignalDefinition) -> Self {
        let kind = match d.kind {
            SignalKindDefinition::WindowedCount {
                event,
                filter_key,
                filter_value,
                window_ms,
                granularity_ms,
            } => SignalKind::WindowedCount {
                event,
                filter: filter_key
                    .zip(filter_value)
                    .map(|(key, value)| PropertyFilter {
                        key,
                        value: value.into(),
                    }),
                window_ms,
                granularity_ms,
            },
            SignalKindDefinition::MovingAverage {
                event,
                property,
                half_life_ms,
            } => SignalKind::Ema {
                event,
                property,
                half_life_ms,
            },
            SignalKindDefinition::Session {
                event,
                timeout_ms,
                max_length_ms,
                measure,
                emit_events,
            } => SignalKind::Session {
                event,
                timeout_ms,
                max_length_ms,
                emit_events,
                measure: match measure {
                    SessionMeasureDefinition::Count => SessionMeasure::Count,
                    SessionMeasureDefinition::CurrentLengthMs => SessionMeasure::CurrentLengthMs,
                    SessionMeasureDefinition::CurrentEvents => SessionMeasure::CurrentEvents,
                },
            },
            SignalKindDefinition::Surge {
                event,
                bucket_ms,
                baseline_half_life_buckets,
                warmup_buckets,
                threshold_z,
            } => SignalKind::Surge {
                event,
                bucket_ms,
                baseline_half_life_buckets,
                warmup_buckets,
                threshold_z,
            },
            SignalKindDefinition::DistinctCount { event, property } => {
                SignalKind::DistinctCount { event, property }
            }
            SignalKindDefinition::HeavyHitters { event, property, k } => SignalKind::HeavyHitters {
                event,
                property,
                k: k as usize,
            },
        };
        SignalSpec::new(d.name, kind)
    }
}

/// Where a surge detector stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SignalTrend {
    /// Nothing unusual, or still warming up.
    Steady,
    /// The rate is unusually high.
    Surge,
    /// The rate is unusually low.
    Drop,
}

/// One signal's value.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SignalValue {
    /// The signal's name.
    pub name: String,
    /// Its value (for a surge signal, the z-score).
    pub value: f64,
    /// For a surge signal, where it stands.
    pub trend: Option<SignalTrend>,
    /// For a heavy-hitters signal, the most frequent values with their estimated counts,
    /// most frequent first.
    pub top: Vec<RankedValue>,
    /// For a session signal, where its lifecycle stands.
    pub session: Option<SessionState>,
}

/// Where a session signal stands, as of the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SessionState {
    /// Whether the latest session is still open.
    pub open: bool,
    /// Time of its first event, Unix epoch ms; none before any event.
    pub start_ms: Option<i64>,
    /// Time of its last event, Unix epoch ms; none before any event.
    pub last_event_ms: Option<i64>,
    /// Events in it.
    pub events: u64,
    /// Sessions that have ended.
    pub completed: u64,
}

/// A session signal over every event with the core's default timeout (30 minutes) and
/// maximum length (4 hours), recording no session events.
#[uniffi::export]
pub fn default_session_signal(name: String, measure: SessionMeasureDefinition) -> SignalDefinition {
    SignalDefinition {
        name,
        kind: SignalKindDefinition::Session {
            event: None,
            timeout_ms: starling_core::DEFAULT_SESSION_TIMEOUT_MS,
            max_length_ms: starling_core::DEFAULT_SESSION_MAX_LENGTH_MS,
            measure,
            emit_events: false,
        },
    }
}

/// A value and its estimated count.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RankedValue {
    /// The property value, as text.
    pub value: String,
    /// Its estimated count (never below the true count).
    pub count: f64,
}

/// Every signal's value as of the last commit.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SignalSnapshot {
    /// In configuration order.
    pub values: Vec<SignalValue>,
    /// Time of the newest event applied, Unix epoch ms.
    pub watermark_ms: Option<i64>,
    /// Events applied to the signals.
    pub events_applied: u64,
    /// Events that came too late to be applied.
    pub events_too_late: u64,
    /// Events folded in early because a session signal's bounded state was full.
    pub events_over_bounds: u64,
}

/// How a bandit chooses; `docs/bandits.md` says when to use which.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum BanditPolicy {
    /// The best arm so far, a random one with probability `epsilon`.
    EpsilonGreedy {
        /// Exploration probability.
        epsilon: f64,
    },
    /// UCB1 with a confidence bonus of width `exploration`.
    Ucb1 {
        /// Bonus width (sqrt(2) is the textbook value).
        exploration: f64,
    },
    /// Thompson sampling for rewards in [0, 1] with a Beta prior.
    ThompsonBeta {
        /// Prior successes.
        prior_alpha: f64,
        /// Prior failures.
        prior_beta: f64,
    },
    /// Thompson sampling for continuous rewards with a Gaussian prior.
    ThompsonGaussian {
        /// Prior mean of each arm.
        prior_mean: f64,
        /// Prior variance of each arm's mean.
        prior_variance: f64,
        /// Variance of one reward.
        noise_variance: f64,
    },
    /// LinUCB over a context of `dims` features (the app's, then the context signals).
    LinUcb {
        /// Context length.
        dims: u32,
        /// Bonus width.
        alpha: f64,
        /// Ridge regularisation.
        ridge: f64,
    },
}

/// A bandit in [`StarlingConfig::bandits`](crate::StarlingConfig).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct BanditDefinition {
    /// The name passed to `choose`.
    pub name: String,
    /// How it chooses.
    pub policy: BanditPolicy,
    /// The variants.
    pub arms: Vec<String>,
    /// Weight of the past at each update, in (0, 1]; 1 for none.
    pub discount: f64,
    /// Signals appended to the app's context, in order.
    pub context_signals: Vec<String>,
    /// An event that rewards the latest decision inside the window, if any.
    pub reward_event: Option<String>,
    /// A numeric property of the reward event that is the reward; none means 1.
    pub reward_property: Option<String>,
    /// How long a decision waits for its reward, in ms.
    pub attribution_window_ms: u64,
    /// Whether per-arm statistics are shared for fleet priors.
    pub share_statistics: bool,
    /// Whether a bandit that has learned nothing downloads the fleet's prior at its first sync.
    /// Context-free policies only.
    pub use_fleet_prior: bool,
    /// Cap on the fleet prior's weight per arm, in pseudo-observations.
    pub max_prior_pulls: f64,
    /// If set, statistics are shared through the private channel at this cost (epsilon) per
    /// day, with consent for private reports, instead of as raw events.
    pub private_statistics_epsilon: Option<f64>,
    /// Private channel: the most pulls one day's release counts.
    pub private_max_pulls_per_day: u32,
    /// Private channel: rewards are clamped to [0, this] (and to [0, 1] for Thompson Beta).
    pub private_reward_max: f64,
    /// A federated-learning task that stores an example for each settled decision (context
    /// and chosen arm; label 1 if rewarded positively, else 0). None: off.
    #[uniffi(default = None)]
    pub learning_task: Option<String>,
}

impl From<BanditDefinition> for BanditSpec {
    fn from(d: BanditDefinition) -> Self {
        let policy = match d.policy {
            BanditPolicy::EpsilonGreedy { epsilon } => PolicyKind::EpsilonGreedy { epsilon },
            BanditPolicy::Ucb1 { exploration } => PolicyKind::Ucb1 { exploration },
            BanditPolicy::ThompsonBeta {
                prior_alpha,
                prior_beta,
            } => PolicyKind::ThompsonBeta {
                prior_alpha,
                prior_beta,
            },
            BanditPolicy::ThompsonGaussian {
                prior_mean,
                prior_variance,
                noise_variance,
            } => PolicyKind::ThompsonGaussian {
                prior_mean,
                prior_variance,
                noise_variance,
            },
            BanditPolicy::LinUcb { dims, alpha, ridge } => PolicyKind::LinUcb {
                dims: dims as usize,
                alpha,
                ridge,
            },
        };
        let mut spec = BanditSpec::new(d.name, policy, &[]);
        spec.arms = d.arms;
        spec.discount = d.discount;
        spec.context_signals = d.context_signals;
        spec.reward_event = d.reward_event.map(|event| RewardEvent {
            event,
            value_property: d.reward_property,
        });
        spec.attribution_window_ms = d.attribution_window_ms;
        spec.share_statistics = d.share_statistics;
        spec.use_fleet_prior = d.use_fleet_prior;
        spec.max_prior_pulls = d.max_prior_pulls;
        spec.private_statistics_epsilon = d.private_statistics_epsilon;
        spec.private_max_pulls_per_day = d.private_max_pulls_per_day;
        spec.private_reward_max = d.private_reward_max;
        spec.learning_task = d.learning_task;
        spec
    }
}

/// A bandit definition with the defaults: no discount, no context signals, rewards reported
/// by the app, a 30-minute attribution window, statistics shared, the fleet prior used (worth
/// at most 20 observations per arm).
#[uniffi::export]
pub fn default_bandit(name: String, policy: BanditPolicy, arms: Vec<String>) -> BanditDefinition {
    let core = BanditSpec::new("", PolicyKind::Ucb1 { exploration: 1.0 }, &[]);
    BanditDefinition {
        name,
        policy,
        arms,
        discount: core.discount,
        context_signals: core.context_signals,
        reward_event: None,
        reward_property: None,
        attribution_window_ms: core.attribution_window_ms,
        share_statistics: core.share_statistics,
        use_fleet_prior: core.use_fleet_prior,
        max_prior_pulls: core.max_prior_pulls,
        private_statistics_epsilon: core.private_statistics_epsilon,
        private_max_pulls_per_day: core.private_max_pulls_per_day,
        private_reward_max: core.private_reward_max,
        learning_task: core.learning_task,
    }
}

/// A choice made on the device.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Decision {
    /// Pass it to `reward`.
    pub id: String,
    /// The bandit that chose.
    pub bandit: String,
    /// The chosen arm.
    pub arm: String,
    /// The probability with which it was chosen.
    pub propensity: f64,
}

/// What a bandit learned about one arm.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ArmSummary {
    /// The arm.
    pub name: String,
    /// False once retired.
    pub active: bool,
    /// Rewards learned (discounted).
    pub pulls: f64,
    /// Their sum (discounted).
    pub reward_sum: f64,
    /// Mean reward, 0 before the first.
    pub mean: f64,
}

#[uniffi::export]
impl Starling {
    /// Every signal's value as of the last commit. Never waits on the database.
    pub fn signals(&self) -> Result<SignalSnapshot, StarlingError> {
        guard(|| {
            let snapshot = self.inner.signals();
            let values = snapshot
                .iter()
                .map(|(name, value)| SignalValue {
                    name: name.to_owned(),
                    value,
                    trend: snapshot.trend(name).map(|t| match t {
                        Trend::Steady => SignalTrend::Steady,
                        Trend::Surge => SignalTrend::Surge,
                        Trend::Drop => SignalTrend::Drop,
                    }),
                    top: snapshot
                        .heavy_hitters(name)
                        .unwrap_or(&[])
                        .iter()
                        .map(|(value, count)| RankedValue {
                            value: value.clone(),
                            count: *count,
                        })
                        .collect(),
                    session: snapshot.session(name).map(|s| SessionState {
                        open: s.open,
                        start_ms: s.start_ms,
                        last_event_ms: s.last_event_ms,
                        events: s.events,
                        completed: s.completed,
                    }),
                })
                .collect();
            Ok(SignalSnapshot {
                values,
                watermark_ms: snapshot.watermark_ms(),
                events_applied: snapshot.events_applied(),
                events_too_late: snapshot.events_too_late(),
                events_over_bounds: snapshot.events_over_bounds(),
            })
        })
    }

    /// The values of the signals called `names`, in that order, for a model or a bandit.
    pub fn feature_vector(&self, names: Vec<String>) -> Result<Vec<f64>, StarlingError> {
        guard(|| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            self.inner.feature_vector(&names)
        })
    }

    /// Chooses an arm of `bandit` for `context`, from memory, and logs the decision.
    pub fn choose(&self, bandit: String, context: Vec<f64>) -> Result<Decision, StarlingError> {
        guard(|| {
            let d = self.inner.choose(&bandit, &context)?;
            Ok(Decision {
                id: d.id,
                bandit: d.bandit,
                arm: d.arm,
                propensity: d.propensity,
            })
        })
    }

    /// Rewards a decision; false when it was already settled (the late reward is counted).
    pub fn reward(&self, decision_id: String, value: f64) -> Result<bool, StarlingError> {
        guard(|| self.inner.reward(&decision_id, value))
    }

    /// What `bandit` learned about each arm.
    pub fn bandit_arms(&self, bandit: String) -> Result<Vec<ArmSummary>, StarlingError> {
        guard(|| {
            Ok(self
                .inner
                .bandit_arms(&bandit)?
                .into_iter()
                .map(|a| ArmSummary {
                    mean: a.mean(),
                    name: a.name,
                    active: a.active,
                    pulls: a.pulls,
                    reward_sum: a.reward_sum,
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_bandit_is_the_core_default_and_its_fleet_prior_settings_reach_the_core() {
        let policy = BanditPolicy::Ucb1 { exploration: 1.0 };
        let mut definition = default_bandit("b".into(), policy, vec!["x".into()]);
        let core = BanditSpec::new("b", PolicyKind::Ucb1 { exploration: 1.0 }, &["x"]);
        assert_eq!(BanditSpec::from(definition.clone()), core);

        definition.use_fleet_prior = false;
        definition.max_prior_pulls = 5.0;
        let spec = BanditSpec::from(definition);
        assert!(!spec.use_fleet_prior);
        assert_eq!(spec.max_prior_pulls, 5.0);
    }
}

/// One arm of a bandit scored by a learning task's model.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ArmPrediction {
    /// The arm.
    pub arm: String,
    /// The model's probability of a positive reward for the arm.
    pub probability: f64,
}

#[uniffi::export]
impl Starling {
    /// Scores every configured arm of `bandit` with the latest model of `task` for `context`,
    /// with the features laid out as the bandit's decision examples; reads memory only.
    pub fn predict_arms(
        &self,
        bandit: String,
        task: String,
        context: Vec<f64>,
    ) -> Result<Vec<ArmPrediction>, StarlingError> {
        guard(|| self.inner.predict_arms(&bandit, &task, &context)).map(|scored| {
            scored
                .into_iter()
                .map(|s| ArmPrediction {
                    arm: s.arm,
                    probability: s.probability,
                })
                .collect()
        })
    }
}
