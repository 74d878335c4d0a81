//! Decide: multi-armed and contextual bandits that choose a content variant on the device, in
//! microseconds and offline, and report the probability with which they chose it.
//!
//! This module holds the policies and their learning state. Every choice returns the arm and its
//! propensity (the probability that the policy picks that arm in its current state), which is
//! what off-policy evaluation needs later.
//!
//! | policy | propensity |
//! |---|---|
//! | epsilon-greedy | exact |
//! | UCB1 | exact (deterministic, ties split evenly) |
//! | Thompson sampling, Beta-Bernoulli or Gaussian | estimated from repeated posterior draws |
//! | LinUCB (contextual) | exact (deterministic, ties split evenly) |
//!
//! The policies are written here rather than taken from a crate: they are the product, they must
//! report propensities, persist compactly and merge fleet priors, and no maintained Rust crate
//! offers that combination.

mod linear;
mod policy;
mod prior;
pub(crate) mod runtime;
mod spec;

pub use policy::{ArmStats, Bandit, BanditError, Choice, PolicyKind};
pub use prior::{apply_prior, prior_from_fleet, PseudoObservations, DEFAULT_MAX_PRIOR_PULLS};
pub use runtime::{Decision, ARM_STATS_EVENT, DECISION_EVENT};
pub use spec::DEFAULT_PRIVATE_MAX_PULLS_PER_DAY;
pub use spec::{BanditSpec, RewardEvent, DEFAULT_ATTRIBUTION_WINDOW_MS};

#[cfg(test)]
mod simulate;
