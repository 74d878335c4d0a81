//! Fleet priors: what other devices learned about each arm, as a head start for a new device.
//!
//! The server sums the arm statistics devices contribute into a [`BanditPrior`] (pulls, mean and
//! variance per arm). [`prior_from_fleet`] turns it into pseudo-observations for a new bandit:
//! each arm starts as if it had been pulled `min(fleet pulls, max_pulls)` times with the fleet's
//! mean reward. The cap matters: the fleet has seen millions of pulls, but this device's users
//! are not the fleet's average user, so the device must be able to overrule the fleet after
//! about `max_pulls` of its own observations. [`apply_prior`] adds the pseudo-observations to a
//! [`Bandit`].
//!
//! The prior is about context-free statistics; a contextual policy (LinUCB) is refused rather
//! than given a prior that ignores its context.

use starling_proto::v1::BanditPrior;

use super::{Bandit, BanditError, PolicyKind};

/// A sensible default for `max_pulls`: a prior worth 20 observations per arm. Enough to skip
/// most of the early exploration among clearly worse arms, little enough that a device whose
/// users differ from the fleet overrules it within a few dozen decisions.
pub const DEFAULT_MAX_PRIOR_PULLS: f64 = 20.0;

/// What a new device starts one arm with.
#[derive(Debug, Clone, PartialEq)]
pub struct PseudoObservations {
    /// The arm's name.
    pub arm: String,
    /// Pseudo-pulls, in [0, `max_pulls`].
    pub pulls: f64,
    /// Sum of their rewards (`pulls × mean`).
    pub reward_sum: f64,
}

/// Turns a fleet prior into pseudo-observations for a new bandit with `policy`, at most
/// `max_pulls` per arm. Arms the fleet knows nothing about (0 pulls) are left out. For
/// Beta-Bernoulli Thompson sampling the fleet's mean is clamped to [0, 1]: noise added for
/// privacy can push it slightly outside.
pub fn prior_from_fleet(
    prior: &BanditPrior,
    policy: &PolicyKind,
    max_pulls: f64,
) -> Result<Vec<PseudoObservations>, BanditError> {
    if !(max_pulls.is_finite() && max_pulls >= 0.0) {
        return Err(BanditError::Parameter(
            "max_pulls must be a non-negative number".into(),
        ));
    }
    if matches!(policy, PolicyKind::LinUcb { .. }) {
        return Err(BanditError::Parameter(
            "fleet priors hold context-free statistics; LinUCB takes none".into(),
        ));
    }
    let mut observations = Vec::with_capacity(prior.arms.len());
    for arm in &prior.arms {
        if !(arm.pulls.is_finite() && arm.mean.is_finite()) || arm.pulls <= 0.0 {
            continue;
        }
        let mean = match policy {
            PolicyKind::ThompsonBeta { .. } => arm.mean.clamp(0.0, 1.0),
            _ => arm.mean,
        };
        let pulls = arm.pulls.min(max_pulls);
        observations.push(PseudoObservations {
            arm: arm.arm.clone(),
            pulls,
            reward_sum: pulls * mean,
        });
    }
    Ok(observations)
}

/// Adds `prior` to the arms of `bandit` that it names; arms the bandit does not have are
/// skipped. Returns how many arms received a prior.
pub fn apply_prior(
    bandit: &mut Bandit,
    prior: &[PseudoObservations],
) -> Result<usize, BanditError> {
    let names: Vec<String> = bandit.arms().iter().map(|a| a.to_string()).collect();
    let mut applied = 0;
    for p in prior.iter().filter(|p| names.contains(&p.arm)) {
        bandit.add_pseudo_observations(&p.arm, p.pulls, p.reward_sum)?;
        applied += 1;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};
    use starling_proto::v1::ArmPrior;

    const BETA: PolicyKind = PolicyKind::ThompsonBeta {
        prior_alpha: 1.0,
        prior_beta: 1.0,
    };

    fn fleet(arms: &[(&str, f64, f64)]) -> BanditPrior {
        BanditPrior {
            bandit: "banner".into(),
            devices: 10,
            arms: arms
                .iter()
                .map(|(arm, pulls, mean)| ArmPrior {
                    arm: arm.to_string(),
                    pulls: *pulls,
                    mean: *mean,
                    variance: mean * (1.0 - mean),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_prior_is_capped_clamped_and_skips_unknown_arms() {
        let prior = fleet(&[
            ("a", 5000.0, 0.3),
            ("b", 4.0, 0.5),
            ("c", 0.0, 0.0),
            ("d", 900.0, 1.02),
        ]);
        let obs = prior_from_fleet(&prior, &BETA, 20.0).unwrap();
        let got: Vec<(&str, f64, f64)> = obs
            .iter()
            .map(|o| (o.arm.as_str(), o.pulls, o.reward_sum))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, "a");
        assert_eq!(got[0].1, 20.0);
        assert!((got[0].2 - 6.0).abs() < 1e-12);
        assert_eq!((got[1].0, got[1].1, got[1].2), ("b", 4.0, 2.0));
        assert_eq!((got[2].0, got[2].1, got[2].2), ("d", 20.0, 20.0));

        // A Gaussian policy keeps the mean as it is.
        let gaussian = PolicyKind::ThompsonGaussian {
            prior_mean: 0.0,
            prior_variance: 1.0,
            noise_variance: 1.0,
        };
        let obs = prior_from_fleet(&prior, &gaussian, 20.0).unwrap();
        assert!((obs[2].reward_sum - 20.4).abs() < 1e-9);

        let linucb = PolicyKind::LinUcb {
            dims: 2,
            alpha: 1.0,
            ridge: 1.0,
        };
        assert!(prior_from_fleet(&prior, &linucb, 20.0).is_err());
        assert!(prior_from_fleet(&prior, &BETA, f64::NAN).is_err());

        let mut bandit = Bandit::new(BETA, &["a", "b", "x"], 1.0).unwrap();
        let obs = prior_from_fleet(&prior, &BETA, 20.0).unwrap();
        assert_eq!(apply_prior(&mut bandit, &obs).unwrap(), 2);
        assert!(bandit.add_pseudo_observations("a", 1.0, 2.0).is_err());
        assert!(bandit.add_pseudo_observations("zzz", 1.0, 0.5).is_err());
    }

    /// Every device's arms are the fleet's arms plus a personal deviation.
    fn device_probs(base: &[f64], rng: &mut StdRng) -> Vec<f64> {
        let spread = Normal::new(0.0, 0.03).unwrap();
        base.iter()
            .map(|p| (p + spread.sample(rng)).clamp(0.01, 0.99))
            .collect()
    }

    /// Plays `steps` Bernoulli rounds; returns the regret against this device's best arm and
    /// the per-arm (pulls, reward sum) the device would contribute.
    fn play(
        bandit: &mut Bandit,
        probs: &[f64],
        steps: usize,
        rng: &mut StdRng,
    ) -> (f64, Vec<(f64, f64)>) {
        let best = probs.iter().copied().fold(0.0, f64::max);
        let mut regret = 0.0;
        let mut stats = vec![(0.0, 0.0); probs.len()];
        for _ in 0..steps {
            let arm = bandit.choose(&[], rng).unwrap().arm;
            let reward = f64::from(u8::from(rng.random_bool(probs[arm])));
            bandit.update(arm, &[], reward).unwrap();
            regret += best - probs[arm];
            stats[arm].0 += 1.0;
            stats[arm].1 += reward;
        }
        (regret, stats)
    }

    #[test]
    fn a_fleet_prior_lowers_a_new_devices_early_regret() {
        const BASE: [f64; 5] = [0.05, 0.10, 0.15, 0.20, 0.35];
        const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
        const FLEET_DEVICES: usize = 10;
        const NEW_DEVICES: usize = 40;
        const EARLY: usize = 200;
        let mut rng = StdRng::seed_from_u64(7);

        // The fleet: devices that learned on their own and contributed their statistics; the
        // server's sum, as `starling-server` computes it from `starling.arm_stats` events.
        let mut totals = vec![(0.0, 0.0); BASE.len()];
        for _ in 0..FLEET_DEVICES {
            let probs = device_probs(&BASE, &mut rng);
            let mut bandit = Bandit::new(BETA, &NAMES, 1.0).unwrap();
            let (_, stats) = play(&mut bandit, &probs, 300, &mut rng);
            for (total, s) in totals.iter_mut().zip(stats) {
                total.0 += s.0;
                total.1 += s.1;
            }
        }
        let prior = fleet(
            &NAMES
                .iter()
                .zip(&totals)
                .map(|(name, (pulls, sum))| {
                    (*name, *pulls, if *pulls > 0.0 { sum / pulls } else { 0.0 })
                })
                .collect::<Vec<_>>(),
        );
        let obs = prior_from_fleet(&prior, &BETA, DEFAULT_MAX_PRIOR_PULLS).unwrap();

        // New devices, each played twice from the same seed: cold, and with the prior.
        let mut differences = Vec::with_capacity(NEW_DEVICES);
        let (mut cold_total, mut warm_total) = (0.0, 0.0);
        for device in 0..NEW_DEVICES {
            let probs = device_probs(&BASE, &mut rng);
            let seed = 1000 + device as u64;
            let mut cold = Bandit::new(BETA, &NAMES, 1.0).unwrap();
            let (cold_regret, _) = play(&mut cold, &probs, EARLY, &mut StdRng::seed_from_u64(seed));
            let mut warm = Bandit::new(BETA, &NAMES, 1.0).unwrap();
            apply_prior(&mut warm, &obs).unwrap();
            let (warm_regret, _) = play(&mut warm, &probs, EARLY, &mut StdRng::seed_from_u64(seed));
            cold_total += cold_regret;
            warm_total += warm_regret;
            differences.push(cold_regret - warm_regret);
        }

        // Paired differences: the mean improvement must exceed 4 standard errors, and be large.
        let n = NEW_DEVICES as f64;
        let mean = differences.iter().sum::<f64>() / n;
        let sd = (differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!(
            mean > 4.0 * sd / n.sqrt(),
            "regret lowered by {mean:.2} per device on average (sd {sd:.2})"
        );
        assert!(
            warm_total < 0.5 * cold_total,
            "early regret with the prior {:.1}, cold {:.1}",
            warm_total / n,
            cold_total / n
        );
    }
}
