//! The configured bandits at run time: their learned state and the decisions waiting for a
//! reward, in memory, shared by the threads that decide and the writer thread that learns.
//!
//! Deciding only reads a bandit and appends a pending decision, under that bandit's own lock,
//! which is never held across I/O. Every change to what a bandit has learned happens on the
//! writer thread, which persists the new state in the same transaction as the decisions it
//! settled, so a crash never applies a reward twice or loses one that was committed.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use starling_proto::batch::Value;

use super::{Bandit, BanditSpec, PolicyKind};
use crate::error::{Error, Result};
use crate::signals::Signals;
use crate::storage::store::{encode_properties, NewEvent};

/// Name of the event that logs a settled decision (context, arm, propensity, reward).
pub const DECISION_EVENT: &str = "starling.decision";
/// Name of the event that carries a device's per-arm statistics for fleet priors.
pub const ARM_STATS_EVENT: &str = "starling.arm_stats";

/// Most decisions one bandit keeps waiting for a reward; beyond it the oldest is settled as
/// expired early, so memory stays bounded whatever the app does.
pub(crate) const MAX_PENDING: usize = 10_000;

/// A choice made on the device, returned by [`Starling::choose`](crate::Starling::choose).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Identifies the decision for [`Starling::reward`](crate::Starling::reward).
    pub id: String,
    /// The bandit that decided.
    pub bandit: String,
    /// The chosen arm.
    pub arm: String,
    /// The probability with which the policy chose this arm, in (0, 1].
    pub propensity: f64,
}

/// How a decision got its reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The app called `reward`.
    Reported,
    /// The bandit's reward event happened inside the window.
    Attributed,
    /// The window closed without a reward: rewarded 0.
    Expired,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Reported => "reported",
            Outcome::Attributed => "attributed",
            Outcome::Expired => "expired",
        }
    }
}

/// A decision waiting for its reward; also its row in the `decisions` table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    pub(crate) id: String,
    pub(crate) bandit: String,
    pub(crate) arm: String,
    pub(crate) propensity: f64,
    pub(crate) context: Vec<f64>,
    /// The arms active when the decision was made, comma-separated.
    pub(crate) arms: String,
    pub(crate) decided_ms: i64,
}

/// A decision with its reward, ready for the writer to learn from and log.
#[derive(Debug, Clone)]
pub(crate) struct Settled {
    pub(crate) pending: Pending,
    pub(crate) reward: f64,
    pub(crate) outcome: Outcome,
}

/// One configured bandit.
pub(crate) struct Slot {
    pub(crate) spec: BanditSpec,
    state: Mutex<State>,
}

struct State {
    bandit: Bandit,
    /// Oldest first (decisions are appended in time order).
    pending: VecDeque<Pending>,
    /// Changed since it was last persisted.
    dirty: bool,
    /// Changed since Thompson sampling's propensities were last prepared.
    unprepared: bool,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every configured bandit, in configuration order.
pub(crate) struct Runtime {
    slots: Vec<Slot>,
}

/// A persisted bandit state: name, policy fingerprint, encoded state.
pub(crate) type StateRow = (String, String, Vec<u8>);

impl Runtime {
    /// Builds the bandits from their definitions, the persisted states whose policy still
    /// matches, and the persisted pending decisions.
    pub(crate) fn restore(
        specs: &[BanditSpec],
        states: &[StateRow],
        pending: Vec<Pending>,
    ) -> Result<Runtime> {
        let mut slots = Vec::with_capacity(specs.len());
        for spec in specs {
            let mut bandit = spec.build()?;
            if let Some((_, _, blob)) = states
                .iter()
                .find(|(name, fp, _)| name == &spec.name && *fp == spec.fingerprint())
            {
                match bandit.restore_state(blob) {
                    Ok(()) => {
                        // The configuration decides which arms are active now.
                        for arm in bandit
                            .arms()
                            .into_iter()
                            .map(str::to_owned)
                            .collect::<Vec<_>>()
                        {
                            if !spec.arms.contains(&arm) {
                                let _ = bandit.retire_arm(&arm);
                            }
                        }
                        for arm in &spec.arms {
                            bandit.add_arm(arm);
                        }
                    }
                    Err(e) => {
                        log::warn!("starling: bandit {:?} starts afresh: {e}", spec.name);
                        bandit = spec.build()?;
                    }
                }
            }
            let mut mine: Vec<Pending> = pending
                .iter()
                .filter(|p| p.bandit == spec.name && bandit.arm_index(&p.arm).is_some())
                .cloned()
                .collect();
            mine.sort_by_key(|p| p.decided_ms);
            slots.push(Slot {
                spec: spec.clone(),
                state: Mutex::new(State {
                    bandit,
                    pending: mine.into(),
                    dirty: false,
                    unprepared: true,
                }),
            });
        }
        Ok(Runtime { slots })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(crate) fn slot(&self, name: &str) -> Result<&Slot> {
        self.slots
            .iter()
            .find(|s| s.spec.name == name)
            .ok_or_else(|| Error::UnknownBandit(name.to_owned()))
    }

    /// Chooses an arm of bandit `name` for the app's `context` followed by the bandit's
    /// context signals, and records the decision as pending. Runs on the caller's thread.
    pub(crate) fn choose(
        &self,
        name: &str,
        context: &[f64],
        signals: &Signals,
        now_ms: i64,
    ) -> Result<(Decision, Pending)> {
        let slot = self.slot(name)?;
        if context.iter().any(|x| !x.is_finite()) {
            return Err(Error::Bandit(format!(
                "bandit {name:?}: the context holds a value that is not a finite number"
            )));
        }
        let mut full = context.to_vec();
        if !slot.spec.context_signals.is_empty() {
            let names: Vec<&str> = slot
                .spec
                .context_signals
                .iter()
                .map(String::as_str)
                .collect();
            full.extend(signals.feature_vector(&names)?);
        }
        let mut state = slot.lock();
        let choice = state
            .bandit
            .choose(&full, &mut rand::rng())
            .map_err(|e| Error::Bandit(format!("bandit {name:?}: {e}")))?;
        let arm_names = state.bandit.arms();
        let active: Vec<&str> = state
            .bandit
            .arm_stats()
            .iter()
            .zip(&arm_names)
            .filter(|(s, _)| s.active)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>();
        let pending = Pending {
            id: new_decision_id(now_ms),
            bandit: name.to_owned(),
            arm: arm_names[choice.arm].to_owned(),
            propensity: choice.propensity,
            context: full,
            arms: active.join(","),
            decided_ms: now_ms,
        };
        state.pending.push_back(pending.clone());
        let decision = Decision {
            id: pending.id.clone(),
            bandit: name.to_owned(),
            arm: pending.arm.clone(),
            propensity: pending.propensity,
        };
        Ok((decision, pending))
    }

    /// Removes a pending decision (one that could not be logged, or that is being rewarded).
    pub(crate) fn take(&self, id: &str) -> Option<Pending> {
        for slot in &self.slots {
            let mut state = slot.lock();
            if let Some(at) = state.pending.iter().position(|p| p.id == id) {
                return state.pending.remove(at);
            }
        }
        None
    }

    /// Puts back a decision taken by [`Runtime::take`] whose reward could not be passed on.
    pub(crate) fn restore_pending(&self, pending: Pending) {
        if let Ok(slot) = self.slot(&pending.bandit) {
            let mut state = slot.lock();
            let at = state
                .pending
                .iter()
                .position(|p| p.decided_ms > pending.decided_ms)
                .unwrap_or(state.pending.len());
            state.pending.insert(at, pending);
        }
    }

    /// Checks that `reward` can be learned by the bandit that made decision `pending`.
    pub(crate) fn check_reward(&self, bandit: &str, reward: f64) -> Result<()> {
        let slot = self.slot(bandit)?;
        if !reward.is_finite() {
            return Err(Error::Bandit(format!(
                "bandit {bandit:?}: the reward {reward} is not a finite number"
            )));
        }
        if matches!(slot.spec.policy, PolicyKind::ThompsonBeta { .. })
            && !(0.0..=1.0).contains(&reward)
        {
            return Err(Error::Bandit(format!(
                "bandit {bandit:?} learns rewards in [0, 1] (Beta-Bernoulli); got {reward}"
            )));
        }
        Ok(())
    }

    /// Learns from a settled decision. Writer thread only.
    pub(crate) fn learn(&self, settled: &Settled) {
        let Ok(slot) = self.slot(&settled.pending.bandit) else {
            return;
        };
        let mut state = slot.lock();
        let Some(arm) = state.bandit.arm_index(&settled.pending.arm) else {
            return;
        };
        let reward = clamp_reward(&slot.spec.policy, settled.reward);
        match state.bandit.update(arm, &settled.pending.context, reward) {
            Ok(()) => {
                state.dirty = true;
                state.unprepared = true;
            }
            Err(e) => log::warn!(
                "starling: bandit {:?} could not learn from decision {}: {e}",
                settled.pending.bandit,
                settled.pending.id
            ),
        }
    }

    /// Pending decisions whose window closed by `now_ms`, or beyond the bound, removed and
    /// rewarded 0.
    pub(crate) fn expire(&self, now_ms: i64) -> Vec<Settled> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let window = slot.spec.attribution_window_ms as i64;
            let mut state = slot.lock();
            while let Some(first) = state.pending.front() {
                let due = first.decided_ms.saturating_add(window) <= now_ms
                    || state.pending.len() > MAX_PENDING;
                if !due {
                    break;
                }
                let pending = state.pending.pop_front().expect("checked");
                out.push(Settled {
                    pending,
                    reward: 0.0,
                    outcome: Outcome::Expired,
                });
            }
        }
        out
    }

    /// When the next pending decision expires, in Unix ms.
    pub(crate) fn next_expiry_ms(&self) -> Option<i64> {
        self.slots
            .iter()
            .filter_map(|slot| {
                let window = slot.spec.attribution_window_ms as i64;
                slot.lock()
                    .pending
                    .front()
                    .map(|p| p.decided_ms.saturating_add(window))
            })
            .min()
    }

    /// Whether an event called `name` rewards any bandit.
    pub(crate) fn rewards(&self, name: &str) -> bool {
        self.slots.iter().any(|s| {
            s.spec
                .reward_event
                .as_ref()
                .is_some_and(|r| r.event == name)
        })
    }

    /// Attributes a committed event to the latest pending decision of every bandit it rewards
    /// that was made at or before it and whose window is still open at its time.
    pub(crate) fn attribute(
        &self,
        name: &str,
        time_ms: i64,
        props: &[(String, Value)],
    ) -> Vec<Settled> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let Some(rule) = slot.spec.reward_event.as_ref().filter(|r| r.event == name) else {
                continue;
            };
            let reward = match &rule.value_property {
                None => 1.0,
                Some(key) => match props.iter().find(|(k, _)| k == key).map(|(_, v)| v) {
                    Some(Value::Int(i)) => *i as f64,
                    Some(Value::Float(f)) => *f,
                    Some(Value::Bool(b)) => f64::from(u8::from(*b)),
                    // Without its value the event says nothing about this bandit's reward.
                    _ => continue,
                },
            };
            let window = slot.spec.attribution_window_ms as i64;
            let mut state = slot.lock();
            let found = state.pending.iter().rposition(|p| {
                p.decided_ms <= time_ms && time_ms < p.decided_ms.saturating_add(window)
            });
            if let Some(at) = found {
                let pending = state.pending.remove(at).expect("found");
                out.push(Settled {
                    pending,
                    reward,
                    outcome: Outcome::Attributed,
                });
            }
        }
        out
    }

    /// Encodes every state changed since the last call, and forgets that it changed.
    pub(crate) fn take_dirty(&self) -> Vec<StateRow> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let mut state = slot.lock();
            if state.dirty {
                state.dirty = false;
                out.push((
                    slot.spec.name.clone(),
                    slot.spec.fingerprint(),
                    state.bandit.encode_state(),
                ));
            }
        }
        out
    }

    /// Marks states as changed again (their write failed).
    pub(crate) fn mark_dirty(&self, names: &[String]) {
        for slot in self.slots.iter().filter(|s| names.contains(&s.spec.name)) {
            slot.lock().dirty = true;
        }
    }

    /// Estimates Thompson sampling's propensities for every bandit that learned since the
    /// last call, without holding a bandit's lock while drawing. Writer thread only (the only
    /// thread that changes a bandit, so the state cannot change in between).
    pub(crate) fn prepare(&self) {
        for slot in &self.slots {
            let mut copy = {
                let mut state = slot.lock();
                if !state.unprepared {
                    continue;
                }
                state.unprepared = false;
                state.bandit.clone()
            };
            if copy.prepare(&mut rand::rng()).is_ok() {
                slot.lock().bandit = copy;
            }
        }
    }

    /// Forgets everything learned and every pending decision (consent was withdrawn).
    pub(crate) fn reset(&self) {
        for slot in &self.slots {
            let mut state = slot.lock();
            if let Ok(fresh) = slot.spec.build() {
                state.bandit = fresh;
            }
            state.pending.clear();
            state.dirty = false;
            state.unprepared = true;
        }
    }

    /// The bandits that want a fleet prior and have learned nothing yet (a fresh install, or
    /// a bandit new to the configuration), by name.
    pub(crate) fn wanting_priors(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| {
                s.spec.use_fleet_prior && !matches!(s.spec.policy, PolicyKind::LinUcb { .. })
            })
            .filter(|s| s.lock().bandit.arm_stats().iter().all(|a| a.pulls == 0.0))
            .map(|s| s.spec.name.clone())
            .collect()
    }

    /// Adds the fleet's prior to bandit `name` if it has still learned nothing. Writer thread
    /// only. Returns the number of arms that received a prior.
    pub(crate) fn apply_prior(
        &self,
        name: &str,
        prior: &starling_proto::v1::BanditPrior,
    ) -> Result<usize> {
        let slot = self.slot(name)?;
        let observations =
            super::prior_from_fleet(prior, &slot.spec.policy, slot.spec.max_prior_pulls)
                .map_err(|e| Error::Bandit(format!("bandit {name:?}: {e}")))?;
        let mut state = slot.lock();
        if state.bandit.arm_stats().iter().any(|a| a.pulls > 0.0) {
            return Ok(0);
        }
        let applied = super::apply_prior(&mut state.bandit, &observations)
            .map_err(|e| Error::Bandit(format!("bandit {name:?}: {e}")))?;
        if applied > 0 {
            state.dirty = true;
            state.unprepared = true;
        }
        Ok(applied)
    }

    /// Per-arm statistics of bandit `name`.
    pub(crate) fn arm_stats(&self, name: &str) -> Result<Vec<super::ArmStats>> {
        Ok(self.slot(name)?.lock().bandit.arm_stats())
    }

    /// Number of decisions waiting for a reward, over every bandit.
    pub(crate) fn pending_count(&self) -> usize {
        self.slots.iter().map(|s| s.lock().pending.len()).sum()
    }

    /// The learning task bandit `name` stores its settled decisions for, if any.
    pub(crate) fn learning_task(&self, name: &str) -> Option<&str> {
        self.slot(name).ok()?.spec.learning_task.as_deref()
    }

    /// Whether bandit `name` shares its per-arm statistics with the fleet.
    pub(crate) fn shares_statistics(&self, name: &str) -> bool {
        self.slot(name).is_ok_and(|s| s.spec.share_statistics)
    }

    /// The bandits whose statistics leave through the private channel, not as events.
    pub(crate) fn private_statistics(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| crate::privacy::arm_stats::is_private(&s.spec))
            .map(|s| s.spec.name.clone())
            .collect()
    }

    /// The policy label of bandit `name`, as logged with its decisions.
    fn policy_label(&self, name: &str) -> &'static str {
        match self.slot(name).map(|s| &s.spec.policy) {
            Ok(PolicyKind::EpsilonGreedy { .. }) => "epsilon_greedy",
            Ok(PolicyKind::Ucb1 { .. }) => "ucb1",
            Ok(PolicyKind::ThompsonBeta { .. }) => "thompson_beta",
            Ok(PolicyKind::ThompsonGaussian { .. }) => "thompson_gaussian",
            Ok(PolicyKind::LinUcb { .. }) => "linucb",
            Err(_) => "unknown",
        }
    }

    /// The event that logs a settled decision for off-policy evaluation on the server.
    pub(crate) fn decision_event(&self, settled: &Settled, now_ms: i64) -> NewEvent {
        let p = &settled.pending;
        let context = p
            .context
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let properties = vec![
            ("bandit".to_owned(), Value::String(p.bandit.clone())),
            ("decision".to_owned(), Value::String(p.id.clone())),
            ("arm".to_owned(), Value::String(p.arm.clone())),
            ("propensity".to_owned(), Value::Float(p.propensity)),
            ("reward".to_owned(), Value::Float(settled.reward)),
            (
                "outcome".to_owned(),
                Value::String(settled.outcome.label().to_owned()),
            ),
            ("decided_ms".to_owned(), Value::Int(p.decided_ms)),
            (
                "policy".to_owned(),
                Value::String(self.policy_label(&p.bandit).to_owned()),
            ),
            ("context".to_owned(), Value::String(context)),
            ("arms".to_owned(), Value::String(p.arms.clone())),
        ];
        event(DECISION_EVENT, now_ms, &properties)
    }
}

/// An SDK-generated event, encoded like a tracked one.
pub(crate) fn event(name: &str, now_ms: i64, properties: &[(String, Value)]) -> NewEvent {
    let mut props = Vec::new();
    encode_properties(properties, &mut props);
    NewEvent {
        name: name.to_owned(),
        time_ms: now_ms,
        recorded_ms: now_ms,
        props,
    }
}

/// A Beta-Bernoulli bandit learns rewards in [0, 1]; an attributed event value outside that
/// range (a purchase amount, say) counts as 0 or 1.
fn clamp_reward(policy: &PolicyKind, reward: f64) -> f64 {
    match policy {
        PolicyKind::ThompsonBeta { .. } => reward.clamp(0.0, 1.0),
        _ => reward,
    }
}

/// A decision id: the decision time in hex (so a late reward can be recognised as late), then
/// 80 random bits.
fn new_decision_id(now_ms: i64) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{:012x}{}", now_ms.max(0), &random[..20])
}

/// The decision time encoded in an id made by this SDK.
pub(crate) fn decided_ms_of(id: &str) -> Option<i64> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(&id[..12], 16).ok()
}

/// Context vectors are stored as little-endian f64s.
pub(crate) fn encode_context(context: &[f64]) -> Vec<u8> {
    context.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Reads what [`encode_context`] wrote.
pub(crate) fn decode_context(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn linucb() -> BanditSpec {
        BanditSpec::new(
            "feed",
            PolicyKind::LinUcb {
                dims: 2,
                alpha: 1.0,
                ridge: 1.0,
            },
            &["a", "b", "c"],
        )
    }

    #[test]
    fn learned_state_round_trips_and_damage_is_refused() {
        let spec = linucb();
        let mut bandit = spec.build().unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        for i in 0..30 {
            let x = [1.0, i as f64 / 30.0];
            let c = bandit.choose(&x, &mut rng).unwrap();
            bandit.update(c.arm, &x, (i % 3) as f64 / 2.0).unwrap();
        }
        bandit.retire_arm("c").unwrap();
        let bytes = bandit.encode_state();
        let mut restored = spec.build().unwrap();
        restored.restore_state(&bytes).unwrap();
        assert_eq!(restored, bandit);

        let fresh = spec.build().unwrap();
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            let mut target = spec.build().unwrap();
            assert!(target.restore_state(&bytes[..cut]).is_err(), "cut at {cut}");
            assert_eq!(target, fresh, "a refused state changes nothing");
        }
        // A context-free policy refuses a state with linear models.
        let mut other = BanditSpec::new("x", PolicyKind::Ucb1 { exploration: 1.0 }, &["a"])
            .build()
            .unwrap();
        assert!(other.restore_state(&bytes).is_err());
    }

    #[test]
    fn a_linucb_state_stored_before_discounted_regressions_still_loads() {
        // Written byte by byte in the layout stored before discounted regressions existed:
        // arm "a" saw x = [1] with reward 1 (A⁻¹ = 1/2, b = 1), arm "b" nothing.
        let mut old = vec![1u8];
        old.extend_from_slice(&2u32.to_le_bytes());
        for (name, pulls, sum, a_inv, b) in [("a", 1.0, 1.0, 0.5, 1.0), ("b", 0.0, 0.0, 1.0, 0.0)] {
            old.extend_from_slice(&1u16.to_le_bytes());
            old.extend_from_slice(name.as_bytes());
            old.push(1);
            for v in [pulls, sum] {
                old.extend_from_slice(&f64::to_le_bytes(v));
            }
            old.push(1);
            old.extend_from_slice(&1u32.to_le_bytes());
            for v in [a_inv, b] {
                old.extend_from_slice(&f64::to_le_bytes(v));
            }
        }
        let policy = PolicyKind::LinUcb {
            dims: 1,
            alpha: 1.0,
            ridge: 1.0,
        };
        let mut rng = StdRng::seed_from_u64(2);
        for discount in [1.0, 0.5] {
            let spec = BanditSpec::new("feed", policy.clone(), &["a", "b"]).with_discount(discount);
            let row = ("feed".to_owned(), spec.fingerprint(), old.clone());
            let runtime =
                Runtime::restore(std::slice::from_ref(&spec), &[row], Vec::new()).unwrap();
            let stats = runtime.arm_stats("feed").unwrap();
            assert_eq!(
                (stats[0].pulls, stats[1].pulls),
                (1.0, 0.0),
                "discount {discount}"
            );
            // Arm a scores 1/2 + sqrt(1/2), arm b (the prior) 1: a is chosen, whatever the
            // discount, so the old regression was read as it was.
            let slot = runtime.slot("feed").unwrap();
            let mut state = slot.lock();
            let p = state.bandit.propensities(&[1.0], 1, &mut rng).unwrap();
            assert_eq!(p, vec![1.0, 0.0], "discount {discount}");
            // With discount 0.5, two updates of b fade a to A = 1 + 1/4, b = 1/4: a scores
            // 0.2 + sqrt(0.8) ≈ 1.094, b (A = 1 + 1.5, b = 0) sqrt(1/2.5) ≈ 0.632.
            if discount < 1.0 {
                state.bandit.update(1, &[1.0], 0.0).unwrap();
                state.bandit.update(1, &[1.0], 0.0).unwrap();
                let stats = state.bandit.arm_stats();
                assert_eq!(stats[0].pulls, 0.25);
                let p = state.bandit.propensities(&[1.0], 1, &mut rng).unwrap();
                assert_eq!(p, vec![1.0, 0.0]);
            }
        }
    }

    #[test]
    fn restoring_follows_the_configured_arms_and_drops_orphan_decisions() {
        let spec = linucb();
        let mut bandit = spec.build().unwrap();
        bandit.update(0, &[1.0, 0.0], 1.0).unwrap();
        let row = ("feed".to_owned(), spec.fingerprint(), bandit.encode_state());
        let pending = |id: &str, arm: &str, at: i64| Pending {
            id: id.into(),
            bandit: "feed".into(),
            arm: arm.into(),
            propensity: 0.5,
            context: vec![1.0, 0.0],
            arms: "a,b".into(),
            decided_ms: at,
        };
        let mut now = spec.clone();
        now.arms = vec!["a".into(), "b".into(), "d".into()];
        let runtime = Runtime::restore(
            &[now],
            std::slice::from_ref(&row),
            vec![
                pending("2", "b", 20),
                pending("1", "a", 10),
                pending("x", "zz", 5),
            ],
        )
        .unwrap();
        let stats = runtime.arm_stats("feed").unwrap();
        let names: Vec<_> = stats.iter().map(|s| (s.name.as_str(), s.active)).collect();
        assert_eq!(names, [("a", true), ("b", true), ("c", false), ("d", true)]);
        assert_eq!(stats[0].pulls, 1.0);
        assert_eq!(
            runtime.pending_count(),
            2,
            "a decision for an unknown arm is dropped"
        );
        assert_eq!(
            runtime.next_expiry_ms(),
            Some(10 + spec.attribution_window_ms as i64)
        );

        // A changed policy starts afresh.
        let mut changed = spec.clone();
        changed.policy = PolicyKind::LinUcb {
            dims: 2,
            alpha: 2.0,
            ridge: 1.0,
        };
        let runtime = Runtime::restore(&[changed], &[row], Vec::new()).unwrap();
        assert!(runtime
            .arm_stats("feed")
            .unwrap()
            .iter()
            .all(|s| s.pulls == 0.0));
    }

    #[test]
    fn attribution_credits_the_latest_open_decision_and_expiry_the_oldest() {
        let spec = BanditSpec::new("offer", PolicyKind::Ucb1 { exploration: 1.0 }, &["a", "b"])
            .rewarded_by("purchase", None)
            .with_window_ms(100);
        let runtime = Runtime::restore(&[spec], &[], Vec::new()).unwrap();
        let signals = crate::signals::engine::Engine::restore(Vec::new(), 0, None, &[]).snapshot();
        let (first, _) = runtime.choose("offer", &[], &signals, 1_000).unwrap();
        let (second, _) = runtime.choose("offer", &[], &signals, 1_050).unwrap();
        // Before both decisions: rewards none.
        assert!(runtime.attribute("purchase", 990, &[]).is_empty());
        // Another event name rewards nothing.
        assert!(runtime.attribute("click", 1_060, &[]).is_empty());
        let got = runtime.attribute("purchase", 1_060, &[]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].pending.id, second.id);
        assert_eq!(got[0].outcome, Outcome::Attributed);
        // Past the first decision's window: nothing left to credit.
        assert!(runtime.attribute("purchase", 1_100, &[]).is_empty());
        assert!(runtime.expire(1_099).is_empty());
        let expired = runtime.expire(1_100);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].pending.id, first.id);
        assert_eq!(expired[0].reward, 0.0);
        assert_eq!(runtime.pending_count(), 0);
    }

    #[test]
    fn decision_ids_carry_their_time() {
        let id = new_decision_id(1_700_000_000_123);
        assert_eq!(decided_ms_of(&id), Some(1_700_000_000_123));
        assert_ne!(id, new_decision_id(1_700_000_000_123));
        assert_eq!(decided_ms_of("zz"), None);
        assert_eq!(decided_ms_of(&"g".repeat(32)), None);
    }
}
