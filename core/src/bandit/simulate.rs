//! Policies against simulated environments whose truth is known: regret, propensities, context,
//! drift. Fixed seeds, averaged over several runs, so the assertions are stable.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Bandit, PolicyKind};

const SEEDS: u64 = 3;

/// Expected (pseudo-)regret per half of a run of `steps` on Bernoulli arms `probs`.
fn bernoulli_regret(policy: &PolicyKind, probs: &[f64], steps: usize, seed: u64) -> (f64, f64) {
    let names: Vec<String> = (0..probs.len()).map(|i| format!("arm{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut bandit = Bandit::new(policy.clone(), &names, 1.0).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let best = probs.iter().cloned().fold(0.0, f64::max);
    let mut halves = (0.0, 0.0);
    for t in 0..steps {
        let choice = bandit.choose(&[], &mut rng).unwrap();
        let p = probs[choice.arm];
        let reward = if rng.random_bool(p) { 1.0 } else { 0.0 };
        bandit.update(choice.arm, &[], reward).unwrap();
        if t < steps / 2 {
            halves.0 += best - p;
        } else {
            halves.1 += best - p;
        }
    }
    halves
}

fn average_regret(policy: &PolicyKind, probs: &[f64], steps: usize) -> (f64, f64) {
    let (mut a, mut b) = (0.0, 0.0);
    for seed in 0..SEEDS {
        let (x, y) = bernoulli_regret(policy, probs, steps, seed);
        a += x / SEEDS as f64;
        b += y / SEEDS as f64;
    }
    (a, b)
}

const PROBS: &[f64] = &[0.05, 0.10, 0.15, 0.20, 0.35];
const STEPS: usize = 4000;

fn random_regret() -> f64 {
    let mean = PROBS.iter().sum::<f64>() / PROBS.len() as f64;
    STEPS as f64 * (0.35 - mean)
}

#[test]
fn every_policy_beats_random_by_a_wide_margin() {
    for policy in [
        PolicyKind::EpsilonGreedy { epsilon: 0.1 },
        PolicyKind::Ucb1 {
            exploration: std::f64::consts::SQRT_2,
        },
        PolicyKind::ThompsonBeta {
            prior_alpha: 1.0,
            prior_beta: 1.0,
        },
    ] {
        let (first, second) = average_regret(&policy, PROBS, STEPS);
        let total = first + second;
        assert!(
            total < 0.4 * random_regret(),
            "{policy:?}: regret {total:.0} against random {:.0}",
            random_regret()
        );
    }
}

#[test]
fn ucb_and_thompson_regret_grows_sublinearly() {
    for policy in [
        PolicyKind::Ucb1 {
            exploration: std::f64::consts::SQRT_2,
        },
        PolicyKind::ThompsonBeta {
            prior_alpha: 1.0,
            prior_beta: 1.0,
        },
    ] {
        let (first, second) = average_regret(&policy, PROBS, STEPS);
        // Linear regret would make both halves equal; learning makes the second much smaller.
        assert!(
            second < 0.7 * first,
            "{policy:?}: halves {first:.0}, {second:.0}"
        );
    }
}

#[test]
fn gaussian_thompson_finds_the_best_mean() {
    let means = [1.0, 1.5, 2.0, 1.2];
    let mut regret = 0.0;
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bandit = Bandit::new(
            PolicyKind::ThompsonGaussian {
                prior_mean: 0.0,
                prior_variance: 10.0,
                noise_variance: 1.0,
            },
            &["a", "b", "c", "d"],
            1.0,
        )
        .unwrap();
        for _ in 0..2000 {
            let choice = bandit.choose(&[], &mut rng).unwrap();
            let noise: f64 =
                rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            bandit
                .update(choice.arm, &[], means[choice.arm] + noise)
                .unwrap();
            regret += (2.0 - means[choice.arm]) / SEEDS as f64;
        }
    }
    let random = 2000.0 * (2.0 - means.iter().sum::<f64>() / 4.0);
    assert!(
        regret < 0.1 * random,
        "regret {regret:.0} against random {random:.0}"
    );
}

#[test]
fn the_contextual_policy_beats_the_best_context_free_one_when_context_matters() {
    // Two kinds of user (c = 0 or 1): arm 0 is best for one, arm 1 for the other; on average
    // both arms are equal, so no context-free policy can do better than 0.45.
    let p = |arm: usize, c: f64| {
        if arm == 0 {
            0.7 - 0.5 * c
        } else {
            0.2 + 0.5 * c
        }
    };
    let run = |policy: PolicyKind, seed: u64| -> f64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bandit = Bandit::new(policy, &["a", "b"], 1.0).unwrap();
        let mut reward = 0.0;
        for _ in 0..3000 {
            let c = if rng.random_bool(0.5) { 1.0 } else { 0.0 };
            let x = [1.0, c];
            let choice = bandit.choose(&x, &mut rng).unwrap();
            let r = if rng.random_bool(p(choice.arm, c)) {
                1.0
            } else {
                0.0
            };
            bandit.update(choice.arm, &x, r).unwrap();
            reward += r / 3000.0;
        }
        reward
    };
    let (mut linucb, mut thompson) = (0.0, 0.0);
    for seed in 0..SEEDS {
        linucb += run(
            PolicyKind::LinUcb {
                dims: 2,
                alpha: 1.0,
                ridge: 1.0,
            },
            seed,
        ) / SEEDS as f64;
        thompson += run(
            PolicyKind::ThompsonBeta {
                prior_alpha: 1.0,
                prior_beta: 1.0,
            },
            seed,
        ) / SEEDS as f64;
    }
    assert!(linucb > 0.62, "LinUCB mean reward {linucb:.3}");
    assert!(
        linucb > thompson + 0.12,
        "LinUCB {linucb:.3} against Thompson {thompson:.3}"
    );
}

#[test]
fn propensities_are_probabilities_that_match_observed_frequencies() {
    let mut rng = StdRng::seed_from_u64(11);
    let policies = [
        PolicyKind::EpsilonGreedy { epsilon: 0.3 },
        PolicyKind::Ucb1 { exploration: 1.0 },
        PolicyKind::ThompsonBeta {
            prior_alpha: 1.0,
            prior_beta: 1.0,
        },
    ];
    for policy in policies {
        let mut bandit = Bandit::new(policy.clone(), &["a", "b", "c"], 1.0).unwrap();
        // A state with a clear leader and some uncertainty.
        for (arm, reward) in [
            (0, 1.0),
            (0, 0.0),
            (1, 1.0),
            (1, 1.0),
            (2, 0.0),
            (1, 0.0),
            (0, 1.0),
        ] {
            bandit.update(arm, &[], reward).unwrap();
        }
        let p = bandit.propensities(&[], 20_000, &mut rng).unwrap();
        assert!(
            (p.iter().sum::<f64>() - 1.0).abs() < 1e-9,
            "{policy:?}: {p:?}"
        );
        check_choices(&policy, &bandit, &p, &mut rng);

        // Decisions after `prepare` (what the SDK's writer thread does after each update) too.
        bandit.prepare(&mut rng).unwrap();
        check_choices(&policy, &bandit, &p, &mut rng);
    }
}

/// Chooses many times: the frequency of each arm, and the propensity reported with it on
/// average, must both agree with the arm's probability `p`.
fn check_choices(policy: &PolicyKind, bandit: &Bandit, p: &[f64], rng: &mut StdRng) {
    let n = 8_000;
    let mut counts = vec![0usize; p.len()];
    let mut reported = vec![0.0f64; p.len()];
    for _ in 0..n {
        let choice = bandit.choose(&[], rng).unwrap();
        counts[choice.arm] += 1;
        reported[choice.arm] += choice.propensity;
    }
    for arm in 0..p.len() {
        if counts[arm] > 0 {
            let mean_reported = reported[arm] / counts[arm] as f64;
            assert!(
                (mean_reported - p[arm]).abs() < 0.015,
                "{policy:?}: arm {arm} reported {mean_reported:.4} on average, probability {:.4}",
                p[arm]
            );
        }
        let observed = counts[arm] as f64 / n as f64;
        let sd = (p[arm] * (1.0 - p[arm]) / n as f64).sqrt().max(1e-3);
        assert!(
            (observed - p[arm]).abs() < 5.0 * sd + 0.01,
            "{policy:?}: arm {arm} chosen {observed:.4}, propensity {:.4}",
            p[arm]
        );
    }
}

#[test]
fn a_discount_follows_preferences_that_drift() {
    let run = |discount: f64, seed: u64| -> f64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let policy = PolicyKind::ThompsonBeta {
            prior_alpha: 1.0,
            prior_beta: 1.0,
        };
        let mut bandit = Bandit::new(policy, &["a", "b"], discount).unwrap();
        let mut after_swap = 0.0;
        for t in 0..3000 {
            // The best arm swaps half way.
            let probs = if t < 2000 { [0.8, 0.2] } else { [0.2, 0.8] };
            let choice = bandit.choose(&[], &mut rng).unwrap();
            let r = if rng.random_bool(probs[choice.arm]) {
                1.0
            } else {
                0.0
            };
            bandit.update(choice.arm, &[], r).unwrap();
            if t >= 2000 {
                after_swap += r / 1000.0;
            }
        }
        after_swap
    };
    let (mut discounted, mut plain) = (0.0, 0.0);
    for seed in 0..SEEDS {
        discounted += run(0.99, seed) / SEEDS as f64;
        plain += run(1.0, seed) / SEEDS as f64;
    }
    assert!(
        discounted > 0.65,
        "discounted reward after the swap {discounted:.3}"
    );
    assert!(
        discounted > plain + 0.1,
        "discounted {discounted:.3} against {plain:.3}"
    );
}

#[test]
fn arms_can_be_added_and_retired_without_losing_what_was_learned() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut bandit =
        Bandit::new(PolicyKind::EpsilonGreedy { epsilon: 0.0 }, &["a", "b"], 1.0).unwrap();
    bandit.update(1, &[], 1.0).unwrap();
    assert_eq!(bandit.choose(&[], &mut rng).unwrap().arm, 1);

    bandit.retire_arm("b").unwrap();
    for _ in 0..50 {
        assert_eq!(
            bandit.choose(&[], &mut rng).unwrap().arm,
            0,
            "retired arms are not chosen"
        );
    }
    bandit.add_arm("c");
    bandit.add_arm("b");
    assert_eq!(bandit.arms(), vec!["a", "b", "c"]);
    let choice = bandit.choose(&[], &mut rng).unwrap();
    assert_eq!(
        (choice.arm, choice.propensity),
        (1, 1.0),
        "b kept its record"
    );

    bandit.retire_arm("a").unwrap();
    bandit.retire_arm("b").unwrap();
    bandit.retire_arm("c").unwrap();
    assert!(bandit.choose(&[], &mut rng).is_err());
    assert!(bandit.retire_arm("zzz").is_err());
}

#[test]
fn bad_input_is_refused() {
    let mut rng = StdRng::seed_from_u64(0);
    let linucb = Bandit::new(
        PolicyKind::LinUcb {
            dims: 3,
            alpha: 1.0,
            ridge: 1.0,
        },
        &["a"],
        1.0,
    )
    .unwrap();
    assert!(
        linucb.choose(&[1.0], &mut rng).is_err(),
        "wrong context length"
    );
    assert!(linucb.choose(&[1.0, f64::NAN, 0.0], &mut rng).is_err());
    let mut beta = Bandit::new(
        PolicyKind::ThompsonBeta {
            prior_alpha: 1.0,
            prior_beta: 1.0,
        },
        &["a"],
        1.0,
    )
    .unwrap();
    assert!(
        beta.update(0, &[], 2.0).is_err(),
        "Beta rewards are in [0, 1]"
    );
    assert!(beta.update(0, &[], f64::INFINITY).is_err());
    assert!(beta.update(5, &[], 1.0).is_err());
    assert!(Bandit::new(PolicyKind::EpsilonGreedy { epsilon: 1.5 }, &["a"], 1.0).is_err());
    assert!(Bandit::new(PolicyKind::EpsilonGreedy { epsilon: 0.1 }, &["a"], 0.0).is_err());
}

/// Expected regret after the drift of LinUCB with `discount` on a contextual stream whose
/// truth changes half way: before it, arm 0 is best for users with a high `u` and arm 1 for
/// users with a low one; after it, the other way round. Arm 2 is a constant 0.4 throughout.
fn drifting_contextual_regret(discount: f64, seed: u64) -> f64 {
    const STEPS: usize = 3000;
    const DRIFT: usize = 1500;
    let p = |arm: usize, u: f64, drifted: bool| match (arm, drifted) {
        (0, false) | (1, true) => 0.2 + 0.6 * u,
        (1, false) | (0, true) => 0.8 - 0.6 * u,
        _ => 0.4,
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let policy = PolicyKind::LinUcb {
        dims: 2,
        alpha: 1.0,
        ridge: 1.0,
    };
    let mut bandit = Bandit::new(policy, &["a", "b", "c"], discount).unwrap();
    let mut regret = 0.0;
    for t in 0..STEPS {
        let drifted = t >= DRIFT;
        let u: f64 = rng.random_range(0.0..1.0);
        let x = [1.0, u];
        let choice = bandit.choose(&x, &mut rng).unwrap();
        let chosen = p(choice.arm, u, drifted);
        let r = if rng.random_bool(chosen) { 1.0 } else { 0.0 };
        bandit.update(choice.arm, &x, r).unwrap();
        if drifted {
            let best = (0..3).map(|a| p(a, u, true)).fold(0.0, f64::max);
            regret += best - chosen;
        }
    }
    regret
}

#[test]
fn a_discounted_linucb_follows_a_contextual_drift() {
    // Ten seeds, each playing both bandits on its own stream. Undiscounted, the 750 or so
    // observations of each arm from before the drift keep its old slope for hundreds of rounds
    // after it; with discount 0.99 they weigh about 1e-4 of a fresh one after 1000 rounds.
    const RUNS: u64 = 10;
    let mut differences = Vec::new();
    let (mut discounted, mut plain) = (0.0, 0.0);
    for seed in 0..RUNS {
        let d = drifting_contextual_regret(0.99, 100 + seed);
        let p = drifting_contextual_regret(1.0, 100 + seed);
        discounted += d / RUNS as f64;
        plain += p / RUNS as f64;
        differences.push(p - d);
    }
    let mean = differences.iter().sum::<f64>() / RUNS as f64;
    let sd =
        (differences.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (RUNS - 1) as f64).sqrt();
    let standard_error = sd / (RUNS as f64).sqrt();
    // The gain must stand far out of the seed-to-seed noise (a t statistic over 9 degrees of
    // freedom beyond 5 has probability below 0.001 by chance), and be large: under half the
    // undiscounted regret.
    assert!(
        mean > 5.0 * standard_error,
        "regret after the drift: discounted {discounted:.1}, undiscounted {plain:.1}, \
         difference {mean:.1} ± {standard_error:.1}"
    );
    assert!(
        discounted < 0.5 * plain,
        "regret after the drift: discounted {discounted:.1}, undiscounted {plain:.1}"
    );
}

#[test]
fn a_linucb_discount_fades_every_arm_at_every_update() {
    let policy = PolicyKind::LinUcb {
        dims: 1,
        alpha: 1.0,
        ridge: 1.0,
    };
    let mut rng = StdRng::seed_from_u64(0);
    let mut bandit = Bandit::new(policy.clone(), &["a", "b"], 0.5).unwrap();
    let mut plain = Bandit::new(policy, &["a", "b"], 1.0).unwrap();
    for b in [&mut bandit, &mut plain] {
        b.update(0, &[1.0], 1.0).unwrap();
        for _ in 0..3 {
            b.update(1, &[1.0], 0.0).unwrap();
        }
    }
    // Arm a's one observation now weighs 0.5³: A = 1 + 0.125, b = 0.125, so its score is
    // 0.125/1.125 + sqrt(1/1.125); undiscounted it is 0.5 + sqrt(0.5). Arm b's three weigh
    // 1 + 0.5 + 0.25, so its score is sqrt(1/2.75), and a is chosen.
    let a = 0.125 / 1.125 + (1.0 / 1.125f64).sqrt();
    let b = (1.0 / 2.75f64).sqrt();
    assert!(a > b);
    let p = bandit.propensities(&[1.0], 1, &mut rng).unwrap();
    assert_eq!(p, vec![1.0, 0.0]);
    assert!((bandit.arm_stats()[0].pulls - 0.125).abs() < 1e-12);
    // A refused observation changes nothing.
    let before = bandit.clone();
    assert!(bandit.update(0, &[1e200], 1.0).is_err());
    assert_eq!(bandit, before);
    // The stored state comes back the same, and converts to and from the undiscounted form.
    let mut restored = Bandit::new(
        PolicyKind::LinUcb {
            dims: 1,
            alpha: 1.0,
            ridge: 1.0,
        },
        &["a", "b"],
        0.5,
    )
    .unwrap();
    restored.restore_state(&bandit.encode_state()).unwrap();
    assert_eq!(restored, bandit);
    let mut now_plain = plain.clone();
    now_plain.restore_state(&bandit.encode_state()).unwrap();
    assert_eq!(now_plain.propensities(&[1.0], 1, &mut rng).unwrap(), p);
}
