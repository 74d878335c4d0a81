//! How an app declares a bandit in its configuration.

use super::{Bandit, PolicyKind};
use crate::error::{Error, Result};

/// Default time a decision waits for its reward event: 30 minutes.
pub const DEFAULT_ATTRIBUTION_WINDOW_MS: u64 = 30 * 60 * 1000;

/// Automatic reward attribution: an event that rewards the most recent decision of a bandit
/// made before it, inside the attribution window.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardEvent {
    /// Name of the rewarding event, for example `"purchase"` or `"article_open"`.
    pub event: String,
    /// A numeric property of the event that is the reward (for example `"amount"`); without
    /// one, the event is worth 1.
    pub value_property: Option<String>,
}

/// One bandit in [`Config::bandits`](crate::Config::bandits).
#[derive(Debug, Clone, PartialEq)]
pub struct BanditSpec {
    /// The name the app passes to [`Starling::choose`](crate::Starling::choose).
    pub name: String,
    /// How it chooses.
    pub policy: PolicyKind,
    /// The variants it chooses between. Removing an arm from the configuration retires it
    /// (what it learned is kept); adding one starts it fresh.
    pub arms: Vec<String>,
    /// Weight of the past at each update, in (0, 1]; below 1 follows preferences that drift.
    pub discount: f64,
    /// Signals appended, in this order, to the context the app passes to `choose`. A
    /// contextual policy's `dims` counts them.
    pub context_signals: Vec<String>,
    /// Rewards attributed automatically from events, if any.
    pub reward_event: Option<RewardEvent>,
    /// How long a decision waits for its reward; when the window closes without one, the
    /// decision is rewarded 0. Rewards that come later are counted and ignored.
    pub attribution_window_ms: u64,
    /// Whether the device sends its per-arm statistics (pulls and reward sums, no contexts) so
    /// that the server can build priors for new devices. Sent as events, so only with consent.
    pub share_statistics: bool,
    /// Whether a fresh bandit (one that has learned nothing yet) downloads the fleet's prior
    /// from the server at its first successful sync, worth at most `max_prior_pulls`
    /// observations per arm. Context-free policies only.
    pub use_fleet_prior: bool,
    /// Cap on the prior's weight per arm, in pseudo-observations.
    pub max_prior_pulls: f64,
    /// With `share_statistics`: if set, the statistics leave through the private channel
    /// instead of as raw events, once per UTC day, clamped and noised for this cost (pure DP
    /// epsilon) charged to the privacy budget, with consent for private reports. Default: none
    /// (raw events, with consent for raw events).
    pub private_statistics_epsilon: Option<f64>,
    /// Private channel only: the most pulls (over all arms) one day's release counts; beyond
    /// it, each arm keeps its share and its mean reward. Sets the noise with the reward range.
    pub private_max_pulls_per_day: u32,
    /// Private channel only: rewards are clamped to `[0, private_reward_max]` (and to [0, 1]
    /// for a Beta-Bernoulli policy) before they are summed.
    pub private_reward_max: f64,
    /// A federated-learning task that learns from this bandit's decisions: when a decision is
    /// settled (rewarded, or expired at the end of its window), an example is stored for the
    /// task, with the decision's context as dense values, the chosen arm as the category
    /// `"arm=<name>"`, and label 1 if the reward was positive, else 0 (a logistic task). Only
    /// with consent for federated learning. Off (`None`) by default; see `docs/bandits.md`.
    pub learning_task: Option<String>,
}

/// Default of [`BanditSpec::private_max_pulls_per_day`].
pub const DEFAULT_PRIVATE_MAX_PULLS_PER_DAY: u32 = 20;

impl BanditSpec {
    /// A bandit over `arms` with `policy`, no discount, no context signals, rewards reported
    /// by the app, a 30-minute window, and statistics shared with the fleet.
    pub fn new(name: impl Into<String>, policy: PolicyKind, arms: &[&str]) -> Self {
        BanditSpec {
            name: name.into(),
            policy,
            arms: arms.iter().map(|a| (*a).to_owned()).collect(),
            discount: 1.0,
            context_signals: Vec::new(),
            reward_event: None,
            attribution_window_ms: DEFAULT_ATTRIBUTION_WINDOW_MS,
            share_statistics: true,
            use_fleet_prior: true,
            max_prior_pulls: super::DEFAULT_MAX_PRIOR_PULLS,
            private_statistics_epsilon: None,
            private_max_pulls_per_day: DEFAULT_PRIVATE_MAX_PULLS_PER_DAY,
            private_reward_max: 1.0,
            learning_task: None,
        }
    }

    /// Stores an example for the federated-learning task `task` each time a decision settles.
    pub fn learning_into(mut self, task: impl Into<String>) -> Self {
        self.learning_task = Some(task.into());
        self
    }

    /// Rewards decisions automatically with the event `event` (worth 1, or the value of
    /// `value_property` when given) inside the attribution window.
    pub fn rewarded_by(mut self, event: impl Into<String>, value_property: Option<&str>) -> Self {
        self.reward_event = Some(RewardEvent {
            event: event.into(),
            value_property: value_property.map(str::to_owned),
        });
        self
    }

    /// Sets the attribution window, in ms.
    pub fn with_window_ms(mut self, window_ms: u64) -> Self {
        self.attribution_window_ms = window_ms;
        self
    }

    /// Appends these signals to every context.
    pub fn with_context_signals(mut self, names: &[&str]) -> Self {
        self.context_signals = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// Shares the statistics through the private channel at a cost of `epsilon` per day.
    pub fn with_private_statistics(mut self, epsilon: f64) -> Self {
        self.share_statistics = true;
        self.private_statistics_epsilon = Some(epsilon);
        self
    }

    /// The largest reward the private channel counts: the policy's bound, if it has one.
    pub(crate) fn private_reward_bound(&self) -> f64 {
        match self.policy {
            PolicyKind::ThompsonBeta { .. } => self.private_reward_max.min(1.0),
            _ => self.private_reward_max,
        }
    }

    /// Sets the discount.
    pub fn with_discount(mut self, discount: f64) -> Self {
        self.discount = discount;
        self
    }

    /// A fresh bandit for this definition.
    pub(crate) fn build(&self) -> Result<Bandit> {
        let arms: Vec<&str> = self.arms.iter().map(String::as_str).collect();
        Bandit::new(self.policy.clone(), &arms, self.discount)
            .map_err(|e| Error::Config(format!("bandit {:?}: {e}", self.name)))
    }

    /// Changes whenever persisted learning would no longer fit: the policy or its parameters.
    pub(crate) fn fingerprint(&self) -> String {
        format!("{:?}", self.policy)
    }

    pub(crate) fn validate(&self, signals: &[crate::SignalSpec]) -> Result<()> {
        let bad = |why: String| Err(Error::Config(format!("bandit {:?}: {why}", self.name)));
        if self.name.is_empty() || self.name.len() > 64 {
            return bad("a bandit name must be 1 to 64 bytes".into());
        }
        if self.arms.is_empty() {
            return bad("it needs at least one arm".into());
        }
        let mut seen = std::collections::HashSet::new();
        for arm in &self.arms {
            if arm.is_empty() || arm.len() > 128 || arm.contains(',') {
                return bad(format!(
                    "arm {arm:?}: names must be 1 to 128 bytes, without commas"
                ));
            }
            if !seen.insert(arm) {
                return bad(format!("arm {arm:?} is listed twice"));
            }
        }
        for name in &self.context_signals {
            if !signals.iter().any(|s| &s.name == name) {
                return bad(format!(
                    "context signal {name:?} is not a configured signal"
                ));
            }
        }
        if !(self.max_prior_pulls.is_finite() && self.max_prior_pulls >= 0.0) {
            return bad("max_prior_pulls must be a non-negative number".into());
        }
        if let Some(epsilon) = self.private_statistics_epsilon {
            if !(epsilon.is_finite() && epsilon > 0.0) {
                return bad(format!(
                    "private_statistics_epsilon must be positive and finite, got {epsilon}"
                ));
            }
            if self.private_max_pulls_per_day == 0 {
                return bad("private_max_pulls_per_day must be positive".into());
            }
            if !(self.private_reward_max.is_finite() && self.private_reward_max > 0.0) {
                return bad("private_reward_max must be positive and finite".into());
            }
        }
        if self.attribution_window_ms == 0 {
            return bad("the attribution window must be positive".into());
        }
        if let Some(task) = &self.learning_task {
            if task.is_empty() || task.len() > 128 {
                return bad("a learning task name must be 1 to 128 bytes".into());
            }
        }
        if let Some(reward) = &self.reward_event {
            if reward.event.is_empty() || reward.event.starts_with("starling.") {
                return bad(format!(
                    "the reward event {:?} is empty or reserved (\"starling.\" names are the SDK's own)",
                    reward.event
                ));
            }
        }
        self.build().map(drop)
    }
}
