//! A simulated contextual-bandit stream whose truth is known, for regret benchmarks that run
//! several learners (Starling's and others) on exactly the same rounds.
//!
//! Each round has a context `x` (a constant 1 followed by standard normal features) and, for
//! every arm `a`, a click probability `p_a(x) = σ(β_a · x)` from a logistic model with its own
//! coefficients per arm, so which arm is best depends on the context. The stream also fixes
//! every arm's realised reward (a Bernoulli draw of `p_a(x)`), so every learner observes the
//! same outcome when it picks the same arm.
//!
//! Regret is the expected (pseudo-)regret: the sum over rounds of `max_a p_a(x) − p_chosen(x)`,
//! which does not depend on the luck of the draws of the chosen arm.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal, StandardNormal};

/// Header of the text form written by [`Stream::write`].
const FORMAT: &str = "starling-cb-stream";

/// Intercept of every arm's logit: about 18% clicks for an average context.
const INTERCEPT_MEAN: f64 = -1.5;
/// Spread of the intercepts across arms.
const INTERCEPT_SD: f64 = 0.3;
/// Total standard deviation of the context part of a logit, shared out over the features.
const CONTEXT_SD: f64 = 1.0;

/// One round: the context, every arm's click probability and every arm's realised reward.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// The context; `context[0]` is the constant 1.
    pub context: Vec<f64>,
    /// `p_a(x)` for each arm.
    pub probabilities: Vec<f64>,
    /// The reward (0 or 1) each arm would earn in this round.
    pub rewards: Vec<f64>,
}

impl Round {
    /// The highest click probability of any arm in this round.
    pub fn best(&self) -> f64 {
        self.probabilities.iter().copied().fold(0.0, f64::max)
    }
}

/// A seeded stream of rounds over `arms` arms and `dims` context features.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Number of arms.
    pub arms: usize,
    /// Length of a context, the constant included.
    pub dims: usize,
    /// The rounds, in order.
    pub rounds: Vec<Round>,
}

impl Stream {
    /// Draws the model (one coefficient vector per arm) and `rounds` rounds from `seed`.
    /// `arms` ≥ 1 and `dims` ≥ 2 (the constant and at least one feature).
    pub fn generate(seed: u64, rounds: usize, arms: usize, dims: usize) -> Stream {
        assert!(
            arms >= 1 && dims >= 2,
            "a stream needs an arm and a feature"
        );
        let mut rng = StdRng::seed_from_u64(seed);
        let intercept = Normal::new(INTERCEPT_MEAN, INTERCEPT_SD).expect("valid normal");
        let slope = Normal::new(0.0, CONTEXT_SD / ((dims - 1) as f64).sqrt()).expect("valid");
        let coefficients: Vec<Vec<f64>> = (0..arms)
            .map(|_| {
                std::iter::once(intercept.sample(&mut rng))
                    .chain((1..dims).map(|_| slope.sample(&mut rng)))
                    .collect()
            })
            .collect();

        let rounds = (0..rounds)
            .map(|_| {
                let context: Vec<f64> = std::iter::once(1.0)
                    .chain((1..dims).map(|_| StandardNormal.sample(&mut rng)))
                    .collect();
                let probabilities: Vec<f64> = coefficients
                    .iter()
                    .map(|beta| {
                        let logit: f64 = beta.iter().zip(&context).map(|(b, x)| b * x).sum();
                        1.0 / (1.0 + (-logit).exp())
                    })
                    .collect();
                let rewards = probabilities
                    .iter()
                    .map(|&p| if rng.random_bool(p) { 1.0 } else { 0.0 })
                    .collect();
                Round {
                    context,
                    probabilities,
                    rewards,
                }
            })
            .collect();
        Stream { arms, dims, rounds }
    }

    /// Writes what a learner may see: a header line, then per round the context features and
    /// every arm's realised reward, space-separated. The probabilities stay out of the file.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut text = format!(
            "{FORMAT} rounds={} arms={} dims={}\n",
            self.rounds.len(),
            self.arms,
            self.dims
        );
        for round in &self.rounds {
            let features = round.context.iter().map(|x| format!("{x:.6}"));
            let rewards = round.rewards.iter().map(|r| format!("{r}"));
            let line: Vec<String> = features.chain(rewards).collect();
            writeln!(text, "{}", line.join(" ")).expect("writing to a String");
        }
        std::fs::write(path, text)
    }

    /// The cumulative expected regret after each round of the arms `chosen`, one per round.
    pub fn regret_curve(&self, chosen: &[usize]) -> Vec<f64> {
        assert_eq!(chosen.len(), self.rounds.len(), "one arm per round");
        let mut total = 0.0;
        self.rounds
            .iter()
            .zip(chosen)
            .map(|(round, &arm)| {
                total += round.best() - round.probabilities[arm];
                total
            })
            .collect()
    }

    /// The cumulative expected regret after each round of a uniformly random choice.
    pub fn random_regret_curve(&self) -> Vec<f64> {
        let mut total = 0.0;
        self.rounds
            .iter()
            .map(|round| {
                let mean = round.probabilities.iter().sum::<f64>() / self.arms as f64;
                total += round.best() - mean;
                total
            })
            .collect()
    }

    /// The regret, over the whole stream, of always playing the single best arm (the best a
    /// policy that ignores the context can do).
    pub fn best_fixed_arm_regret(&self) -> f64 {
        let oracle: f64 = self.rounds.iter().map(Round::best).sum();
        let best_fixed = (0..self.arms)
            .map(|a| self.rounds.iter().map(|r| r.probabilities[a]).sum::<f64>())
            .fold(f64::NEG_INFINITY, f64::max);
        oracle - best_fixed
    }
}

/// Reads the chosen arms written one per line by another learner, checking that there is one
/// valid arm per round.
pub fn read_arms(path: &Path, stream: &Stream) -> Result<Vec<usize>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let arms: Vec<usize> = text
        .lines()
        .map(|line| {
            line.trim()
                .parse::<usize>()
                .ok()
                .filter(|&a| a < stream.arms)
                .ok_or_else(|| format!("{}: {line:?} is not an arm", path.display()))
        })
        .collect::<Result<_, _>>()?;
    if arms.len() != stream.rounds.len() {
        return Err(format!(
            "{}: {} arms for {} rounds",
            path.display(),
            arms.len(),
            stream.rounds.len()
        ));
    }
    Ok(arms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream_and_another_seed_another() {
        let a = Stream::generate(4, 50, 5, 6);
        assert_eq!(a, Stream::generate(4, 50, 5, 6));
        assert_ne!(a, Stream::generate(5, 50, 5, 6));
    }

    #[test]
    fn the_best_arm_depends_on_the_context() {
        let stream = Stream::generate(1, 4000, 10, 10);
        let mut best_counts = vec![0usize; 10];
        for round in &stream.rounds {
            let best = (0..10)
                .max_by(|&a, &b| round.probabilities[a].total_cmp(&round.probabilities[b]))
                .unwrap();
            best_counts[best] += 1;
        }
        let most = *best_counts.iter().max().unwrap();
        assert!(
            most < 4000 / 2,
            "one arm is best in most rounds: {best_counts:?}"
        );
        // Ignoring the context costs a large share of what random choice loses.
        let random = *stream.random_regret_curve().last().unwrap();
        assert!(
            stream.best_fixed_arm_regret() > 0.4 * random,
            "best fixed arm {:.0} against random {random:.0}",
            stream.best_fixed_arm_regret()
        );
    }

    #[test]
    fn rewards_are_draws_of_the_probabilities() {
        // Over 20 000 arm-rounds the mean reward is within 4 standard errors of the mean
        // probability (a standard error is at most 0.5 / sqrt(20 000) ≈ 0.0035).
        let stream = Stream::generate(2, 2000, 10, 4);
        let (mut p, mut r) = (0.0, 0.0);
        for round in &stream.rounds {
            p += round.probabilities.iter().sum::<f64>();
            r += round.rewards.iter().sum::<f64>();
            assert!(round.rewards.iter().all(|&v| v == 0.0 || v == 1.0));
        }
        let n = 20_000.0;
        assert!((p / n - r / n).abs() < 4.0 * 0.5 / n.sqrt(), "{p} {r}");
    }

    #[test]
    fn regret_is_zero_for_the_oracle_and_random_matches_its_expectation() {
        let stream = Stream::generate(3, 3000, 4, 3);
        let oracle: Vec<usize> = stream
            .rounds
            .iter()
            .map(|r| {
                (0..4)
                    .max_by(|&a, &b| r.probabilities[a].total_cmp(&r.probabilities[b]))
                    .unwrap()
            })
            .collect();
        assert!(stream.regret_curve(&oracle).last().unwrap().abs() < 1e-9);

        // Choosing arms in turn plays each arm in a quarter of rounds, like random choice
        // does on average; their regrets agree within the spread of per-round regrets.
        let turns: Vec<usize> = (0..3000).map(|t| t % 4).collect();
        let by_turns = *stream.regret_curve(&turns).last().unwrap();
        let random = *stream.random_regret_curve().last().unwrap();
        assert!(
            (by_turns - random).abs() < 0.05 * random,
            "{by_turns} {random}"
        );
        let curve = stream.regret_curve(&turns);
        assert!(curve.windows(2).all(|w| w[1] >= w[0]), "regret never falls");
    }

    #[test]
    fn the_written_file_round_trips_features_and_rewards() {
        let stream = Stream::generate(6, 20, 3, 4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.txt");
        stream.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "starling-cb-stream rounds=20 arms=3 dims=4"
        );
        for (line, round) in lines.zip(&stream.rounds) {
            let values: Vec<f64> = line.split(' ').map(|v| v.parse().unwrap()).collect();
            assert_eq!(values.len(), 7);
            for (read, x) in values[..4].iter().zip(&round.context) {
                assert!((read - x).abs() < 1e-6);
            }
            assert_eq!(&values[4..], &round.rewards[..]);
        }

        let arms_path = dir.path().join("arms");
        std::fs::write(&arms_path, "0\n".repeat(20)).unwrap();
        assert_eq!(read_arms(&arms_path, &stream).unwrap(), vec![0; 20]);
        std::fs::write(&arms_path, "0\n".repeat(19) + "3\n").unwrap();
        assert!(read_arms(&arms_path, &stream).is_err(), "arm 3 of 3");
        std::fs::write(&arms_path, "1\n".repeat(19)).unwrap();
        assert!(read_arms(&arms_path, &stream).is_err(), "a round short");
    }
}
