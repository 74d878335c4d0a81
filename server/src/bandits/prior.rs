//! Fleet priors: the arm statistics devices contribute (`starling.arm_stats` events, each a
//! delta since the device's previous contribution) summed per arm into a [`BanditPrior`].
//!
//! Devices that share through the private channel send the same sums, noised on the device,
//! as private reports named `bandit:<bandit>` ([`NoisyArmStats`]): they are added to the same
//! totals (the noise has mean zero, so the totals stay unbiased) but carry no squared sums, so
//! the variance comes from the raw contributions only. They carry no device id either: a device
//! releases at most once per bandit and UTC day, so the busiest day's number of releases is
//! what they add to the count of devices (a lower bound of how many there were).
//!
//! Contributions may carry noise for differential privacy, so a sum can be slightly off and
//! even negative. The clamping rules, applied to the fleet's totals (never to one contribution,
//! which would bias the sum upwards):
//!
//! * total pulls below 1 become 0, and the arm is published with mean and variance 0: fewer
//!   than one pull's worth of information is noise, and a device keeps its default prior;
//! * the variance, `Σ r² / pulls − mean²`, is clamped at 0;
//! * the mean is not clamped: the server does not know a bandit's reward range (clicks are in
//!   [0, 1], revenue is not), so the device clamps it to its policy's range when it builds its
//!   prior (`starling_core::bandit::prior_from_fleet`).

use std::collections::{BTreeMap, HashSet};

use starling_proto::v1::{ArmPrior, BanditPrior, NoisyArmStats};

use crate::storage::BanditEvent;

/// The name of the events devices send their arm statistics in.
pub const ARM_STATS_EVENT: &str = "starling.arm_stats";

/// Prefix of the name of the private reports that carry arm statistics.
pub const PRIVATE_REPORT_PREFIX: &str = "bandit:";

/// Fewer total pulls than this are noise: the arm is published as unknown.
const MIN_PULLS: f64 = 1.0;

/// The statistics of one arm contributed by one device.
#[derive(Debug, Clone, PartialEq)]
struct Contribution {
    arm: String,
    pulls: f64,
    reward_sum: f64,
    reward_sq_sum: f64,
    noised: bool,
}

fn parse(properties: &serde_json::Value) -> Option<Contribution> {
    let number = |key: &str| properties.get(key)?.as_f64().filter(|x| x.is_finite());
    let arm = properties.get("arm")?.as_str()?;
    if arm.is_empty() {
        return None;
    }
    Some(Contribution {
        arm: arm.to_owned(),
        pulls: number("pulls")?,
        reward_sum: number("reward_sum")?,
        reward_sq_sum: number("reward_sq_sum")?,
        noised: properties
            .get("noised")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
    })
}

/// What aggregation found: the prior, and how many events could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The fleet prior.
    pub prior: BanditPrior,
    /// Events skipped because a field was missing, of the wrong type, or not finite.
    pub malformed: usize,
}

/// Running totals of one arm.
#[derive(Debug, Default)]
struct Totals {
    pulls: f64,
    reward_sum: f64,
    /// Pulls and squared reward sum of the contributions that carry squares (raw ones).
    sq_pulls: f64,
    reward_sq_sum: f64,
}

/// Sums the `starling.arm_stats` events and the private arm statistics (with the UTC day each
/// covers) of one bandit into its prior.
pub fn aggregate(
    bandit: &str,
    events: &[BanditEvent],
    private: &[(i64, NoisyArmStats)],
    now_ms: i64,
) -> Aggregate {
    let mut devices = HashSet::new();
    let mut sums: BTreeMap<String, Totals> = BTreeMap::new();
    let (mut contributions, mut noised, mut malformed) = (0u64, 0u64, 0usize);
    for event in events {
        let Some(c) = parse(&event.properties) else {
            malformed += 1;
            continue;
        };
        devices.insert(event.device_id.as_str());
        contributions += 1;
        noised += u64::from(c.noised);
        let sum = sums.entry(c.arm).or_default();
        sum.pulls += c.pulls;
        sum.reward_sum += c.reward_sum;
        sum.sq_pulls += c.pulls;
        sum.reward_sq_sum += c.reward_sq_sum;
    }
    let mut per_day: BTreeMap<i64, u32> = BTreeMap::new();
    for (day, stats) in private {
        let n = stats.arms.len();
        if stats.pulls.len() != n || stats.reward_sums.len() != n {
            malformed += 1;
            continue;
        }
        *per_day.entry(*day).or_default() += 1;
        for ((arm, pulls), reward_sum) in
            stats.arms.iter().zip(&stats.pulls).zip(&stats.reward_sums)
        {
            contributions += 1;
            noised += 1;
            let sum = sums.entry(arm.clone()).or_default();
            sum.pulls += *pulls as f64;
            sum.reward_sum += reward_sum;
        }
    }
    let private_devices = per_day.values().copied().max().unwrap_or(0);

    let arms = sums
        .into_iter()
        .map(|(arm, totals)| {
            let Totals {
                pulls,
                reward_sum,
                sq_pulls,
                reward_sq_sum,
            } = totals;
            if pulls < MIN_PULLS {
                return ArmPrior {
                    arm,
                    pulls: 0.0,
                    mean: 0.0,
                    variance: 0.0,
                };
            }
            let mean = reward_sum / pulls;
            ArmPrior {
                arm,
                pulls,
                mean,
                variance: if sq_pulls >= MIN_PULLS {
                    (reward_sq_sum / sq_pulls - mean * mean).max(0.0)
                } else {
                    0.0
                },
            }
        })
        .collect();
    Aggregate {
        prior: BanditPrior {
            bandit: bandit.to_owned(),
            devices: devices.len() as u32 + private_devices,
            arms,
            contributions,
            noised_contributions: noised,
            computed_at_ms: now_ms,
        },
        malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(device: &str, properties: serde_json::Value) -> BanditEvent {
        BanditEvent {
            device_id: device.into(),
            seq: 1,
            time_ms: 0,
            properties,
        }
    }

    fn stats(arm: &str, pulls: f64, sum: f64, sq: f64) -> serde_json::Value {
        json!({"bandit": "b", "arm": arm, "pulls": pulls, "reward_sum": sum,
               "reward_sq_sum": sq, "noised": false, "epsilon": 0.0})
    }

    #[test]
    fn deltas_from_several_devices_are_summed_per_arm() {
        let events = [
            event("d1", stats("x", 10.0, 3.0, 3.0)),
            event("d1", stats("x", 10.0, 5.0, 5.0)),
            event("d2", stats("x", 20.0, 4.0, 4.0)),
            event("d2", stats("y", 4.0, 2.0, 1.5)),
            event("d3", json!({"arm": "x", "pulls": "many"})),
        ];
        let a = aggregate("b", &events, &[], 7);
        assert_eq!(a.malformed, 1);
        assert_eq!(a.prior.devices, 2);
        assert_eq!(a.prior.contributions, 4);
        assert_eq!(a.prior.computed_at_ms, 7);
        let x = &a.prior.arms[0];
        assert_eq!((x.arm.as_str(), x.pulls), ("x", 40.0));
        assert!((x.mean - 0.3).abs() < 1e-12);
        assert!((x.variance - (0.3 - 0.09)).abs() < 1e-12);
        let y = &a.prior.arms[1];
        assert_eq!((y.arm.as_str(), y.pulls, y.mean), ("y", 4.0, 0.5));
        assert!((y.variance - (1.5 / 4.0 - 0.25)).abs() < 1e-12);
    }

    #[test]
    fn noisy_sums_are_clamped() {
        let mut noisy = stats("x", -3.0, -1.0, 0.5);
        noisy["noised"] = json!(true);
        let events = [
            event("d1", noisy),
            event("d2", stats("x", 2.5, 2.0, 0.1)),
            // A variance that noise pushed below zero.
            event("d3", stats("y", 10.0, 9.0, 7.0)),
        ];
        let a = aggregate("b", &events, &[], 0);
        assert_eq!(a.prior.noised_contributions, 1);
        let x = &a.prior.arms[0];
        assert_eq!((x.pulls, x.mean, x.variance), (0.0, 0.0, 0.0), "{x:?}");
        let y = &a.prior.arms[1];
        assert_eq!((y.pulls, y.mean, y.variance), (10.0, 0.9, 0.0), "{y:?}");
    }

    #[test]
    fn private_releases_add_to_the_totals_and_count_their_busiest_day() {
        let private = |day: i64, pulls: Vec<i64>, sums: Vec<f64>| {
            (
                day,
                NoisyArmStats {
                    bandit: "b".into(),
                    arms: vec!["x".into(), "y".into()],
                    pulls,
                    reward_sums: sums,
                    pulls_scale: 4.0,
                    reward_scale: 4.0,
                },
            )
        };
        let events = [event("d1", stats("x", 10.0, 5.0, 4.0))];
        let releases = [
            private(1, vec![12, -2], vec![6.5, -1.0]),
            private(1, vec![8, 1], vec![3.5, 0.5]),
            private(2, vec![5, 0], vec![1.0, 0.0]),
            private(2, vec![5], vec![1.0, 0.0]),
        ];
        let a = aggregate("b", &events, &releases, 0);
        assert_eq!(a.malformed, 1);
        // One raw device, and two private releases on the busiest day.
        assert_eq!(a.prior.devices, 3);
        assert_eq!(
            (a.prior.contributions, a.prior.noised_contributions),
            (7, 6)
        );
        let x = &a.prior.arms[0];
        assert_eq!(x.pulls, 35.0);
        assert!((x.mean - 16.0 / 35.0).abs() < 1e-12, "{x:?}");
        // The variance comes from the raw contribution's squares alone.
        assert!(
            (x.variance - (0.4 - x.mean * x.mean).max(0.0)).abs() < 1e-12,
            "{x:?}"
        );
        // y: -2 + 1 + 0 pulls is noise: published as unknown.
        let y = &a.prior.arms[1];
        assert_eq!((y.pulls, y.mean, y.variance), (0.0, 0.0, 0.0), "{y:?}");
    }
}
