//! What the bandits earned against the known truth: on every opportunity the emulator knows
//! each arm's click probability for that user at that moment, so it scores the arm the bandit
//! chose, a uniformly random arm, and the best arm, on the same opportunities.
//!
//! The scores are expected click probabilities (not the realised clicks), which removes the
//! users' coin flips from the comparison; realised clicks are counted too.

use serde::Serialize;

/// One bandit's opportunities in one simulated hour (or any set of opportunities).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Decisions made.
    pub opportunities: u64,
    /// Sum of the chosen arms' click probabilities.
    pub chosen: f64,
    /// Sum of the mean click probability over the arms: what a uniformly random choice earns.
    pub random: f64,
    /// Sum of the best arm's click probability.
    pub best: f64,
    /// Clicks that happened.
    pub clicks: u64,
    /// Sum of the variance of the click probability of a uniformly random arm: how much a
    /// random choice's expected clicks vary around [`Tally::random`].
    pub random_variance: f64,
}

impl Tally {
    /// Adds one decision: the arms' click probabilities, the chosen arm, and whether the user
    /// clicked.
    pub fn add(&mut self, probabilities: &[f64], chosen: usize, clicked: bool) {
        let n = probabilities.len().max(1) as f64;
        self.opportunities += 1;
        self.chosen += probabilities[chosen];
        let mean = probabilities.iter().sum::<f64>() / n;
        self.random += mean;
        self.random_variance += probabilities
            .iter()
            .map(|p| (p - mean).powi(2))
            .sum::<f64>()
            / n;
        self.best += probabilities.iter().cloned().fold(0.0, f64::max);
        self.clicks += u64::from(clicked);
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &Tally) {
        self.opportunities += other.opportunities;
        self.chosen += other.chosen;
        self.random += other.random;
        self.best += other.best;
        self.clicks += other.clicks;
        self.random_variance += other.random_variance;
    }

    /// Expected regret of the bandit against the best arm.
    pub fn regret(&self) -> f64 {
        self.best - self.chosen
    }

    /// Expected regret of a uniformly random choice against the best arm.
    pub fn random_regret(&self) -> f64 {
        self.best - self.random
    }

    fn per(&self, x: f64) -> f64 {
        if self.opportunities == 0 {
            0.0
        } else {
            x / self.opportunities as f64
        }
    }
}

/// A bandit's results over a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct BanditSummary {
    /// The bandit's name.
    pub bandit: String,
    /// Its policy, for people.
    pub policy: String,
    /// Decisions made by every device together.
    pub opportunities: u64,
    /// Realised clicks per decision.
    pub click_rate: f64,
    /// Expected clicks per decision of the arms the bandit chose.
    pub expected_click_rate: f64,
    /// Expected clicks per decision of a uniformly random arm.
    pub random_click_rate: f64,
    /// Expected clicks per decision of the best arm for that user at that moment.
    pub best_click_rate: f64,
    /// Standard deviation of the expected click rate of a policy that chooses uniformly at
    /// random on these opportunities: a bandit that learned nothing lands within a few of
    /// these of `random_click_rate`.
    pub random_click_rate_sd: f64,
    /// Total expected regret against the best arm.
    pub regret: f64,
    /// Total expected regret of uniformly random choices.
    pub random_regret: f64,
    /// Bandit regret as a fraction of random's (below 1: it learned something).
    pub regret_vs_random: f64,
    /// The same over the last quarter of the run, once the bandits have had time to learn.
    pub regret_vs_random_last_quarter: f64,
    /// Per simulated hour, the fleet's tally.
    pub hourly: Vec<Tally>,
}

impl BanditSummary {
    /// Summarises the fleet's hourly tallies.
    pub fn new(bandit: &str, policy: &str, hourly: Vec<Tally>) -> BanditSummary {
        let mut total = Tally::default();
        hourly.iter().for_each(|t| total.merge(t));
        let mut last = Tally::default();
        hourly[hourly.len() * 3 / 4..]
            .iter()
            .for_each(|t| last.merge(t));
        let ratio = |t: &Tally| {
            if t.random_regret() > 0.0 {
                t.regret() / t.random_regret()
            } else {
                0.0
            }
        };
        BanditSummary {
            bandit: bandit.to_owned(),
            policy: policy.to_owned(),
            opportunities: total.opportunities,
            click_rate: total.per(total.clicks as f64),
            expected_click_rate: total.per(total.chosen),
            random_click_rate: total.per(total.random),
            best_click_rate: total.per(total.best),
            random_click_rate_sd: total.random_variance.sqrt() / total.opportunities.max(1) as f64,
            regret: total.regret(),
            random_regret: total.random_regret(),
            regret_vs_random: ratio(&total),
            regret_vs_random_last_quarter: ratio(&last),
            hourly,
        }
    }

    /// Cumulative regret per decision so far, after each hour: (bandit, random).
    pub fn cumulative_regret_per_decision(&self) -> Vec<(f64, f64)> {
        let mut total = Tally::default();
        self.hourly
            .iter()
            .map(|t| {
                total.merge(t);
                (total.per(total.regret()), total.per(total.random_regret()))
            })
            .collect()
    }

    /// Click rates over windows of `hours`: (expected bandit, random, best, realised), one
    /// entry per window, `None` for a window without decisions.
    pub fn click_rates(&self, hours: usize) -> Vec<Option<[f64; 4]>> {
        self.hourly
            .chunks(hours.max(1))
            .map(|chunk| {
                let mut t = Tally::default();
                chunk.iter().for_each(|c| t.merge(c));
                (t.opportunities > 0).then(|| {
                    [
                        t.per(t.chosen),
                        t.per(t.random),
                        t.per(t.best),
                        t.per(t.clicks as f64),
                    ]
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regret_is_measured_against_the_best_and_random_arms() {
        let mut t = Tally::default();
        t.add(&[0.1, 0.3], 0, false);
        t.add(&[0.1, 0.3], 1, true);
        assert_eq!(t.opportunities, 2);
        assert!((t.regret() - 0.2).abs() < 1e-12);
        assert!((t.random_regret() - 0.2).abs() < 1e-12);
        let s = BanditSummary::new("b", "p", vec![t, Tally::default()]);
        assert!((s.regret_vs_random - 1.0).abs() < 1e-12);
        assert_eq!(s.click_rate, 0.5);
        // Each decision: a random arm earns 0.1 or 0.3, variance 0.01; two of them.
        assert!((s.random_click_rate_sd - (0.02f64).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(s.click_rates(1)[1], None);
        assert_eq!(s.cumulative_regret_per_decision().len(), 2);
    }
}
