//! Bandit policies, their per-arm statistics, and choices with propensities.

use rand::Rng;
use rand_distr::{Beta, Distribution, Normal};

use super::linear::LinearArm;

/// Posterior draws used to estimate a Thompson-sampling propensity at decision time, when no
/// prepared estimate is at hand. The estimate's standard error is at most `0.5 / sqrt(256)` ≈ 0.031.
const THOMPSON_PROPENSITY_DRAWS: usize = 256;

/// Posterior draws used by [`Bandit::prepare`], off the deciding thread: standard error at most
/// `0.5 / sqrt(2048)` ≈ 0.011.
const PREPARED_PROPENSITY_DRAWS: usize = 2048;

/// How a bandit chooses.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyKind {
    /// The best arm so far, except with probability `epsilon` a uniformly random one.
    EpsilonGreedy {
        /// Exploration probability, in [0, 1].
        epsilon: f64,
    },
    /// UCB1: the arm with the highest mean plus `exploration · sqrt(ln n / n_arm)`.
    /// `exploration = sqrt(2)` is the textbook value for rewards in [0, 1].
    Ucb1 {
        /// Width of the confidence bonus.
        exploration: f64,
    },
    /// Thompson sampling for rewards in [0, 1] (clicks): a Beta(alpha, beta) prior per arm,
    /// updated with fractional successes.
    ThompsonBeta {
        /// Prior pseudo-successes (1 = uniform prior).
        prior_alpha: f64,
        /// Prior pseudo-failures.
        prior_beta: f64,
    },
    /// Thompson sampling for continuous rewards: a Gaussian prior on each arm's mean with a
    /// known reward noise.
    ThompsonGaussian {
        /// Prior mean of every arm.
        prior_mean: f64,
        /// Prior variance of an arm's mean.
        prior_variance: f64,
        /// Variance of one reward around the arm's mean.
        noise_variance: f64,
    },
    /// LinUCB: a ridge regression per arm over the context vector; chooses the highest
    /// `θᵀx + alpha · sqrt(xᵀ A⁻¹ x)`.
    LinUcb {
        /// Length of the context vector.
        dims: usize,
        /// Width of the confidence bonus (about 1 to 2).
        alpha: f64,
        /// Ridge regularisation (1 is customary).
        ridge: f64,
    },
}

/// Why a bandit call was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BanditError {
    /// The bandit has no active arm to choose from.
    #[error("the bandit has no active arm")]
    NoActiveArm,
    /// The context has the wrong length for a contextual policy.
    #[error("the context has {got} features; this bandit expects {expected}")]
    ContextLength {
        /// Expected length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// An arm name is not known.
    #[error("unknown arm {0:?}")]
    UnknownArm(String),
    /// A reward or context value is NaN or infinite.
    #[error("{0} is not a finite number")]
    NotFinite(&'static str),
    /// A parameter is outside its range.
    #[error("invalid bandit parameter: {0}")]
    Parameter(String),
    /// A computation on the learned state failed; the state is left as it was.
    #[error("numerical failure: {0}")]
    Numerical(String),
}

/// One choice: the arm, and the probability that the policy picks it in its current state.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Index of the chosen arm in [`Bandit::arms`].
    pub arm: usize,
    /// Probability of this choice, in (0, 1].
    pub propensity: f64,
}

/// Format tag of [`Bandit::encode_state`]. Within it, each arm's linear model carries its own
/// tag (see `linear.rs`), so states written before discounted regressions existed still load.
const STATE_FORMAT: u8 = 1;

/// What a bandit has learned about one arm, for reports and fleet statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmStats {
    /// The arm's name.
    pub name: String,
    /// False once the arm is retired.
    pub active: bool,
    /// Times the arm was rewarded (discounted, so a real number).
    pub pulls: f64,
    /// Sum of its rewards (discounted).
    pub reward_sum: f64,
}

impl ArmStats {
    /// Mean reward, or 0 before the first reward.
    pub fn mean(&self) -> f64 {
        if self.pulls > 0.0 {
            self.reward_sum / self.pulls
        } else {
            0.0
        }
    }
}

/// Reads little-endian values from a byte slice.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    pub(crate) fn f64(&mut self) -> Option<f64> {
        self.take(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

/// What the bandit knows about one arm. Counts are discounted (see [`Bandit::new`]), so they are
/// real numbers.
#[derive(Debug, Clone, PartialEq)]
struct Arm {
    name: String,
    active: bool,
    pulls: f64,
    reward_sum: f64,
    linear: Option<LinearArm>,
}

impl Arm {
    fn mean(&self) -> f64 {
        if self.pulls > 0.0 {
            self.reward_sum / self.pulls
        } else {
            0.0
        }
    }
}

/// A bandit: a policy over named arms, with what it has learned.
#[derive(Debug, Clone, PartialEq)]
pub struct Bandit {
    policy: PolicyKind,
    /// Weight of the past at each update, in (0, 1]: 1 remembers everything; 0.999 halves the
    /// weight of an observation after about 700 later ones, so preferences that drift are
    /// followed. It applies to every arm at every update of any arm: the counts and, for
    /// LinUCB, the regressions.
    discount: f64,
    arms: Vec<Arm>,
    /// Thompson sampling only: every arm's probability of being chosen in the current state,
    /// estimated by [`Bandit::prepare`] and cleared by anything that changes the state, so that
    /// a decision costs one posterior draw per arm instead of hundreds.
    prepared: Option<Vec<f64>>,
}

impl Bandit {
    /// A bandit over `arms` with `policy`; `discount` in (0, 1] (1 for none).
    pub fn new(policy: PolicyKind, arms: &[&str], discount: f64) -> Result<Bandit, BanditError> {
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(BanditError::Parameter(what.to_owned()))
            }
        };
        check(
            discount > 0.0 && discount <= 1.0,
            "discount must be in (0, 1]",
        )?;
        match &policy {
            PolicyKind::EpsilonGreedy { epsilon } => {
                check((0.0..=1.0).contains(epsilon), "epsilon must be in [0, 1]")?
            }
            PolicyKind::Ucb1 { exploration } => {
                check(*exploration >= 0.0, "exploration must be non-negative")?
            }
            PolicyKind::ThompsonBeta {
                prior_alpha,
                prior_beta,
            } => check(
                *prior_alpha > 0.0 && *prior_beta > 0.0,
                "Beta priors must be positive",
            )?,
            PolicyKind::ThompsonGaussian {
                prior_variance,
                noise_variance,
                ..
            } => check(
                *prior_variance > 0.0 && *noise_variance > 0.0,
                "variances must be positive",
            )?,
            PolicyKind::LinUcb { dims, alpha, ridge } => check(
                *dims > 0 && *alpha >= 0.0 && *ridge > 0.0,
                "LinUCB needs dims > 0, alpha >= 0 and ridge > 0",
            )?,
        }
        let mut bandit = Bandit {
            policy,
            discount,
            arms: Vec::new(),
            prepared: None,
        };
        for name in arms {
            bandit.add_arm(name);
        }
        Ok(bandit)
    }

    /// The policy and its parameters.
    pub fn policy(&self) -> &PolicyKind {
        &self.policy
    }

    /// Index of the arm called `name`, active or retired.
    pub fn arm_index(&self, name: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.name == name)
    }

    /// Names of all arms, active or retired, in index order.
    pub fn arms(&self) -> Vec<&str> {
        self.arms.iter().map(|a| a.name.as_str()).collect()
    }

    /// Adds an arm (or reactivates a retired one, with what it had learned).
    pub fn add_arm(&mut self, name: &str) {
        self.prepared = None;
        if let Some(arm) = self.arms.iter_mut().find(|a| a.name == name) {
            arm.active = true;
            return;
        }
        let linear = match self.policy {
            PolicyKind::LinUcb { dims, ridge, .. } => {
                Some(LinearArm::new(dims, ridge, self.discount < 1.0))
            }
            _ => None,
        };
        self.arms.push(Arm {
            name: name.to_owned(),
            active: true,
            pulls: 0.0,
            reward_sum: 0.0,
            linear,
        });
    }

    /// Stops choosing an arm; what it learned is kept.
    pub fn retire_arm(&mut self, name: &str) -> Result<(), BanditError> {
        let arm = self
            .arms
            .iter_mut()
            .find(|a| a.name == name)
            .ok_or_else(|| BanditError::UnknownArm(name.to_owned()))?;
        arm.active = false;
        self.prepared = None;
        Ok(())
    }

    /// Adds `pulls` pseudo-observations whose rewards sum to `reward_sum` to an arm's counts,
    /// as a prior (see [`prior_from_fleet`](super::prior_from_fleet)). Context-free statistics
    /// only: a LinUCB arm's regression is left as it is.
    pub fn add_pseudo_observations(
        &mut self,
        name: &str,
        pulls: f64,
        reward_sum: f64,
    ) -> Result<(), BanditError> {
        if !pulls.is_finite() || !reward_sum.is_finite() {
            return Err(BanditError::NotFinite("a pseudo-observation"));
        }
        if pulls < 0.0 {
            return Err(BanditError::Parameter("pseudo-pulls must be >= 0".into()));
        }
        if matches!(self.policy, PolicyKind::ThompsonBeta { .. })
            && !(0.0..=pulls).contains(&reward_sum)
        {
            return Err(BanditError::Parameter(format!(
                "Beta-Bernoulli pseudo-rewards must sum to between 0 and {pulls}, got {reward_sum}"
            )));
        }
        let arm = self
            .arms
            .iter_mut()
            .find(|a| a.name == name)
            .ok_or_else(|| BanditError::UnknownArm(name.to_owned()))?;
        arm.pulls += pulls;
        arm.reward_sum += reward_sum;
        self.prepared = None;
        Ok(())
    }

    /// Chooses an arm for `context` (ignored by context-free policies).
    pub fn choose(&self, context: &[f64], rng: &mut impl Rng) -> Result<Choice, BanditError> {
        let active: Vec<usize> = (0..self.arms.len())
            .filter(|&i| self.arms[i].active)
            .collect();
        if active.is_empty() {
            return Err(BanditError::NoActiveArm);
        }
        self.check_context(context)?;
        match &self.policy {
            PolicyKind::EpsilonGreedy { epsilon } => {
                let best = argmax_ties(&active, |i| self.arms[i].mean());
                let explore = *epsilon / active.len() as f64;
                let arm = if rng.random_bool(*epsilon) {
                    active[rng.random_range(0..active.len())]
                } else {
                    best[rng.random_range(0..best.len())]
                };
                let exploit = if best.contains(&arm) {
                    (1.0 - epsilon) / best.len() as f64
                } else {
                    0.0
                };
                Ok(Choice {
                    arm,
                    propensity: explore + exploit,
                })
            }
            PolicyKind::Ucb1 { exploration } => {
                let untried: Vec<usize> = active
                    .iter()
                    .copied()
                    .filter(|&i| self.arms[i].pulls < 1e-9)
                    .collect();
                let candidates = if untried.is_empty() {
                    let total: f64 = active.iter().map(|&i| self.arms[i].pulls).sum();
                    argmax_ties(&active, |i| {
                        let arm = &self.arms[i];
                        arm.mean() + exploration * (total.ln().max(0.0) / arm.pulls).sqrt()
                    })
                } else {
                    untried
                };
                Ok(uniform_among(&candidates, rng))
            }
            PolicyKind::LinUcb { alpha, .. } => {
                let candidates = argmax_ties(&active, |i| {
                    self.arms[i]
                        .linear
                        .as_ref()
                        .expect("LinUCB arm")
                        .ucb(context, *alpha)
                });
                Ok(uniform_among(&candidates, rng))
            }
            PolicyKind::ThompsonBeta { .. } | PolicyKind::ThompsonGaussian { .. } => {
                let arm = self.thompson_draw(&active, rng)?;
                if let Some(prepared) = &self.prepared {
                    let floor = 1.0 / PREPARED_PROPENSITY_DRAWS as f64;
                    return Ok(Choice {
                        arm,
                        propensity: prepared[arm].max(floor),
                    });
                }
                let wins = (0..THOMPSON_PROPENSITY_DRAWS)
                    .map(|_| self.thompson_draw(&active, rng))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .filter(|&a| a == arm)
                    .count();
                // At least one pseudo-win so a chosen arm never reports probability zero.
                let propensity = (wins.max(1)) as f64 / THOMPSON_PROPENSITY_DRAWS as f64;
                Ok(Choice { arm, propensity })
            }
        }
    }

    /// The probability of each arm being chosen for `context`, in arm order (0 for retired
    /// arms). Exact for every policy but Thompson sampling, where it is estimated from
    /// `draws` posterior draws.
    pub fn propensities(
        &self,
        context: &[f64],
        draws: usize,
        rng: &mut impl Rng,
    ) -> Result<Vec<f64>, BanditError> {
        let active: Vec<usize> = (0..self.arms.len())
            .filter(|&i| self.arms[i].active)
            .collect();
        let mut p = vec![0.0; self.arms.len()];
        match &self.policy {
            PolicyKind::ThompsonBeta { .. } | PolicyKind::ThompsonGaussian { .. } => {
                for _ in 0..draws.max(1) {
                    p[self.thompson_draw(&active, rng)?] += 1.0 / draws.max(1) as f64;
                }
            }
            _ => {
                // Deterministic apart from ties and epsilon: one choice per arm tells its
                // probability exactly, and every arm's probability follows from the rule.
                for &i in &active {
                    p[i] = self.exact_propensity(i, context, &active)?;
                }
            }
        }
        Ok(p)
    }

    fn exact_propensity(
        &self,
        arm: usize,
        context: &[f64],
        active: &[usize],
    ) -> Result<f64, BanditError> {
        self.check_context(context)?;
        let in_set = |set: &[usize]| {
            if set.contains(&arm) {
                1.0 / set.len() as f64
            } else {
                0.0
            }
        };
        Ok(match &self.policy {
            PolicyKind::EpsilonGreedy { epsilon } => {
                let best = argmax_ties(active, |i| self.arms[i].mean());
                epsilon / active.len() as f64 + (1.0 - epsilon) * in_set(&best)
            }
            PolicyKind::Ucb1 { exploration } => {
                let untried: Vec<usize> = active
                    .iter()
                    .copied()
                    .filter(|&i| self.arms[i].pulls < 1e-9)
                    .collect();
                if untried.is_empty() {
                    let total: f64 = active.iter().map(|&i| self.arms[i].pulls).sum();
                    in_set(&argmax_ties(active, |i| {
                        let a = &self.arms[i];
                        a.mean() + exploration * (total.ln().max(0.0) / a.pulls).sqrt()
                    }))
                } else {
                    in_set(&untried)
                }
            }
            PolicyKind::LinUcb { alpha, .. } => in_set(&argmax_ties(active, |i| {
                self.arms[i]
                    .linear
                    .as_ref()
                    .expect("LinUCB arm")
                    .ucb(context, *alpha)
            })),
            PolicyKind::ThompsonBeta { .. } | PolicyKind::ThompsonGaussian { .. } => {
                unreachable!("Thompson propensities are estimated")
            }
        })
    }

    /// Estimates Thompson sampling's propensities for the current state, so that the following
    /// decisions only draw once per arm. Meant for a background thread after each update (the
    /// SDK's writer thread does it); decisions made without it estimate the propensity on the
    /// spot, which costs hundreds of posterior draws. Does nothing for the other policies, whose
    /// propensities are exact and cheap.
    pub fn prepare(&mut self, rng: &mut impl Rng) -> Result<(), BanditError> {
        if matches!(
            self.policy,
            PolicyKind::ThompsonBeta { .. } | PolicyKind::ThompsonGaussian { .. }
        ) && self.prepared.is_none()
            && self.arms.iter().any(|a| a.active)
        {
            self.prepared = Some(self.propensities(&[], PREPARED_PROPENSITY_DRAWS, rng)?);
        }
        Ok(())
    }

    /// Learns from the reward of `arm` chosen for `context`.
    pub fn update(&mut self, arm: usize, context: &[f64], reward: f64) -> Result<(), BanditError> {
        if !reward.is_finite() {
            return Err(BanditError::NotFinite("the reward"));
        }
        self.check_context(context)?;
        if arm >= self.arms.len() {
            return Err(BanditError::UnknownArm(format!("#{arm}")));
        }
        if let PolicyKind::ThompsonBeta { .. } = self.policy {
            if !(0.0..=1.0).contains(&reward) {
                return Err(BanditError::Parameter(format!(
                    "Beta-Bernoulli rewards must be in [0, 1], got {reward}"
                )));
            }
        }
        // The chosen arm's regression first: it can still refuse, and then nothing changes.
        let learned = match &self.arms[arm].linear {
            Some(linear) => Some(linear.learned(context, reward, self.discount)?),
            None => None,
        };
        self.prepared = None;
        if self.discount < 1.0 {
            for (i, a) in self.arms.iter_mut().enumerate() {
                a.pulls *= self.discount;
                a.reward_sum *= self.discount;
                if let (true, Some(linear)) = (i != arm, &mut a.linear) {
                    linear.fade(self.discount);
                }
            }
        }
        let chosen = &mut self.arms[arm];
        chosen.pulls += 1.0;
        chosen.reward_sum += reward;
        if learned.is_some() {
            chosen.linear = learned;
        }
        Ok(())
    }

    /// What the bandit has learned about each arm, in arm order.
    pub fn arm_stats(&self) -> Vec<ArmStats> {
        self.arms
            .iter()
            .map(|a| ArmStats {
                name: a.name.clone(),
                active: a.active,
                pulls: a.pulls,
                reward_sum: a.reward_sum,
            })
            .collect()
    }

    /// The learned state (every arm's statistics and linear model) in a compact binary form,
    /// for [`Bandit::restore_state`]. The policy and its parameters are not included: they
    /// come from the configuration.
    pub fn encode_state(&self) -> Vec<u8> {
        let mut out = vec![STATE_FORMAT];
        out.extend_from_slice(&(self.arms.len() as u32).to_le_bytes());
        for arm in &self.arms {
            out.extend_from_slice(&(arm.name.len() as u16).to_le_bytes());
            out.extend_from_slice(arm.name.as_bytes());
            out.push(arm.active as u8);
            out.extend_from_slice(&arm.pulls.to_le_bytes());
            out.extend_from_slice(&arm.reward_sum.to_le_bytes());
            match &arm.linear {
                None => out.push(0),
                Some(linear) => linear.encode(&mut out),
            }
        }
        out
    }

    /// Replaces the learned state with one from [`Bandit::encode_state`] of a bandit with the
    /// same policy. A state that does not fit this policy is refused and nothing changes. A
    /// LinUCB state stored under another discount is converted: the regressions are the same,
    /// kept in the form this bandit's discount needs.
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<(), BanditError> {
        let bad = || BanditError::Parameter("the stored bandit state is damaged".into());
        let mut r = Reader(bytes);
        if r.u8().ok_or_else(bad)? != STATE_FORMAT {
            return Err(bad());
        }
        let n = r.u32().ok_or_else(bad)? as usize;
        let linear_shape = match self.policy {
            PolicyKind::LinUcb { dims, ridge, .. } => Some((dims, ridge)),
            _ => None,
        };
        let mut arms = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let len = r.u16().ok_or_else(bad)? as usize;
            let name =
                String::from_utf8(r.take(len).ok_or_else(bad)?.to_vec()).map_err(|_| bad())?;
            let active = r.u8().ok_or_else(bad)? != 0;
            let pulls = r.f64().ok_or_else(bad)?;
            let reward_sum = r.f64().ok_or_else(bad)?;
            let linear = match (r.u8().ok_or_else(bad)?, linear_shape) {
                (0, None) => None,
                (0, Some(_)) => return Err(bad()),
                (tag, Some((dims, ridge))) => Some(
                    LinearArm::decode(tag, &mut r, dims, ridge, self.discount < 1.0)
                        .ok_or_else(bad)?,
                ),
                (_, None) => return Err(bad()),
            };
            if !pulls.is_finite() || !reward_sum.is_finite() {
                return Err(bad());
            }
            arms.push(Arm {
                name,
                active,
                pulls,
                reward_sum,
                linear,
            });
        }
        if !r.0.is_empty() {
            return Err(bad());
        }
        self.arms = arms;
        self.prepared = None;
        Ok(())
    }

    fn check_context(&self, context: &[f64]) -> Result<(), BanditError> {
        if let PolicyKind::LinUcb { dims, .. } = self.policy {
            if context.len() != dims {
                return Err(BanditError::ContextLength {
                    expected: dims,
                    got: context.len(),
                });
            }
            if context.iter().any(|x| !x.is_finite()) {
                return Err(BanditError::NotFinite("a context feature"));
            }
        }
        Ok(())
    }

    /// One posterior draw per active arm; the index of the highest.
    fn thompson_draw(&self, active: &[usize], rng: &mut impl Rng) -> Result<usize, BanditError> {
        let mut best = (f64::NEG_INFINITY, active[0]);
        for &i in active {
            let arm = &self.arms[i];
            let draw = match self.policy {
                PolicyKind::ThompsonBeta {
                    prior_alpha,
                    prior_beta,
                } => {
                    let successes = arm.reward_sum;
                    let failures = (arm.pulls - arm.reward_sum).max(0.0);
                    Beta::new(prior_alpha + successes, prior_beta + failures)
                        .map_err(|e| BanditError::Parameter(e.to_string()))?
                        .sample(rng)
                }
                PolicyKind::ThompsonGaussian {
                    prior_mean,
                    prior_variance,
                    noise_variance,
                } => {
                    // Conjugate update of a Gaussian mean with known noise.
                    let precision = 1.0 / prior_variance + arm.pulls / noise_variance;
                    let mean =
                        (prior_mean / prior_variance + arm.reward_sum / noise_variance) / precision;
                    Normal::new(mean, (1.0 / precision).sqrt())
                        .map_err(|e| BanditError::Parameter(e.to_string()))?
                        .sample(rng)
                }
                _ => unreachable!("only Thompson policies draw"),
            };
            if draw > best.0 {
                best = (draw, i);
            }
        }
        Ok(best.1)
    }
}

/// The indices (among `candidates`) whose score is highest, within a relative 1e-12.
fn argmax_ties(candidates: &[usize], score: impl Fn(usize) -> f64) -> Vec<usize> {
    let scores: Vec<(usize, f64)> = candidates.iter().map(|&i| (i, score(i))).collect();
    let top = scores.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    let tolerance = 1e-12 * top.abs().max(1.0);
    scores
        .into_iter()
        .filter(|(_, s)| *s >= top - tolerance)
        .map(|(i, _)| i)
        .collect()
}

fn uniform_among(candidates: &[usize], rng: &mut impl Rng) -> Choice {
    Choice {
        arm: candidates[rng.random_range(0..candidates.len())],
        propensity: 1.0 / candidates.len() as f64,
    }
}
