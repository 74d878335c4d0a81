//! Arm statistics through the private channel: a bandit whose
//! [`private_statistics_epsilon`](crate::BanditSpec::private_statistics_epsilon) is set
//! releases its per-arm pulls and reward sums once per UTC day, clamped and noised, charged to
//! the ledger with the encoded release, and sent with the private reports.
//!
//! What one release covers: the pulls and reward sums the bandit gathered since its previous
//! release (kept in `bandit_contrib`, as for the raw channel). Clamping, so that the noise
//! bounds what the release says about the device:
//!
//! * pulls over all arms are cut to `private_max_pulls_per_day` (`P`), each arm keeping its
//!   share (rounded down) and its mean reward;
//! * each arm's reward sum is clamped to `[0, kept pulls * R]`, where `R` is the reward bound
//!   (`private_reward_max`, at most 1 for a Beta-Bernoulli policy).
//!
//! Half of epsilon goes to the pulls (discrete Laplace, L1 sensitivity `min(arms, 2) * P`),
//! half to the reward sums (Laplace, L1 sensitivity `min(arms, 2) * P * R`); the cost charged
//! is the sum of what opendp's privacy maps return for both.

use prost::Message;
use rusqlite::{params, Connection, OptionalExtension};
use starling_proto::v1::{private_report::Body, NoisyArmStats, PrivateReport};

use super::ledger::{self, Budget, NewRelease};
use super::mechanisms::{self, Cost};
use super::reports::{effective_budget, Prepared};
use super::tally::day_of;
use crate::bandit::BanditSpec;
use crate::error::{Result, StorageError};

/// Prefix of the ledger channel (and of the report name) of every arm-statistics release.
pub(crate) const CHANNEL_PREFIX: &str = "bandit:";

fn day_key(bandit: &str) -> String {
    format!("privacy_arm_stats_day:{bandit}")
}

/// Whether `spec` shares its statistics through the private channel.
pub(crate) fn is_private(spec: &BanditSpec) -> bool {
    spec.share_statistics && spec.private_statistics_epsilon.is_some()
}

/// Pulls and reward sums per configured arm, clamped as the module describes.
fn clamp(spec: &BanditSpec, gathered: &[(String, i64, f64)]) -> (Vec<u64>, Vec<f64>) {
    let max_pulls = u64::from(spec.private_max_pulls_per_day);
    let reward_max = spec.private_reward_bound();
    let raw: Vec<(u64, f64)> = spec
        .arms
        .iter()
        .map(|arm| {
            gathered
                .iter()
                .find(|(a, _, _)| a == arm)
                .map_or((0, 0.0), |(_, n, s)| ((*n).max(0) as u64, *s))
        })
        .collect();
    let total: u64 = raw.iter().map(|(n, _)| n).sum();
    let mut pulls = Vec::with_capacity(raw.len());
    let mut sums = Vec::with_capacity(raw.len());
    for (n, sum) in raw {
        let kept = if total > max_pulls {
            // u128: n * max_pulls cannot overflow.
            (u128::from(n) * u128::from(max_pulls) / u128::from(total)) as u64
        } else {
            n
        };
        let mean = if n > 0 && sum.is_finite() {
            sum / n as f64
        } else {
            0.0
        };
        pulls.push(kept);
        sums.push((mean * kept as f64).clamp(0.0, kept as f64 * reward_max));
    }
    (pulls, sums)
}

/// Noises one bandit's clamped statistics into a report, with an outline for the receipt.
fn build(
    spec: &BanditSpec,
    epsilon: f64,
    day: i64,
    pulls: &[u64],
    sums: &[f64],
) -> Result<(PrivateReport, String, Cost)> {
    let max_pulls = u64::from(spec.private_max_pulls_per_day);
    let reward_max = spec.private_reward_bound();
    let noisy_pulls = mechanisms::noisy_counts(pulls, max_pulls, Some(max_pulls), epsilon / 2.0)?;
    let noisy_sums = mechanisms::noisy_sums(sums, max_pulls as f64 * reward_max, epsilon / 2.0)?;
    let cost = Cost::Epsilon(noisy_pulls.cost.amount() + noisy_sums.cost.amount());
    let outline = format!(
        "arm statistics of bandit {} for day {day}: pulls of {} arms, at most {max_pulls} in all, with discrete Laplace noise (scale {:.1}), and reward sums with rewards in [0, {reward_max}], with Laplace noise (scale {:.1})",
        spec.name,
        spec.arms.len(),
        noisy_pulls.scale,
        noisy_sums.scale
    );
    let report = PrivateReport {
        release_id: uuid::Uuid::new_v4().simple().to_string(),
        report: format!("{CHANNEL_PREFIX}{}", spec.name),
        day,
        epsilon: cost.amount(),
        body: Some(Body::ArmStats(NoisyArmStats {
            bandit: spec.name.clone(),
            arms: spec.arms.clone(),
            pulls: noisy_pulls.values,
            reward_sums: noisy_sums.values,
            pulls_scale: noisy_pulls.scale,
            reward_scale: noisy_sums.scale,
        })),
    };
    Ok((report, outline, cost))
}

/// Noises and charges the arm statistics of every private bandit that has not released today
/// and gathered at least one pull, each in its own transaction with the deletion of what it
/// released. A refused charge keeps the statistics for a later day. Runs on the writer thread.
pub(crate) fn prepare(
    conn: &mut Connection,
    specs: &[BanditSpec],
    app_budget: Budget,
    now_ms: i64,
) -> Result<Prepared> {
    let budget = effective_budget(conn, app_budget)?;
    let today = day_of(ledger::spent(conn, now_ms)?.clock_ms);
    let mut prepared = Prepared::default();
    for spec in specs.iter().filter(|s| is_private(s)) {
        let Some(epsilon) = spec.private_statistics_epsilon else {
            continue;
        };
        let key = day_key(&spec.name);
        let last: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(StorageError::from)?
            .and_then(|v| v.parse().ok());
        if last.is_some_and(|last| last >= today) {
            continue;
        }
        let gathered: Vec<(String, i64, f64)> = {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT arm, pulls, reward_sum FROM bandit_contrib WHERE bandit = ?1",
                )
                .map_err(StorageError::from)?;
            let rows = stmt
                .query_map([&spec.name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(StorageError::from)?;
            rows.collect::<Result<_, _>>().map_err(StorageError::from)?
        };
        let (pulls, sums) = clamp(spec, &gathered);
        if pulls.iter().all(|&n| n == 0) {
            continue;
        }
        let (report, outline, cost) = build(spec, epsilon, today, &pulls, &sums)?;
        let payload = report.encode_to_vec();
        let release = NewRelease {
            id: &report.release_id,
            channel: &report.report,
            outline: &outline,
            cost,
            payload: &payload,
        };
        let tx = conn.transaction().map_err(StorageError::from)?;
        match ledger::charge(&tx, &budget, &release, now_ms)? {
            Ok(_) => {
                tx.execute("DELETE FROM bandit_contrib WHERE bandit = ?1", [&spec.name])
                    .map_err(StorageError::from)?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, today.to_string()],
                )
                .map_err(StorageError::from)?;
                tx.commit().map_err(StorageError::from)?;
                prepared.charged += 1;
            }
            Err(refusal) => {
                tx.commit().map_err(StorageError::from)?;
                log::info!(
                    "starling: arm statistics of bandit {:?} not released: {}",
                    spec.name,
                    refusal.0
                );
                prepared.refused.push(format!(
                    "arm statistics of bandit {}: {}",
                    spec.name, refusal.0
                ));
            }
        }
    }
    Ok(prepared)
}

/// Deletes the statistics gathered for private bandits: consent for private reports was
/// withdrawn.
pub(crate) fn forget(conn: &Connection, specs: &[BanditSpec]) -> Result<(), StorageError> {
    for spec in specs.iter().filter(|s| is_private(s)) {
        conn.execute("DELETE FROM bandit_contrib WHERE bandit = ?1", [&spec.name])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bandit::PolicyKind;

    fn spec() -> BanditSpec {
        let beta = PolicyKind::ThompsonBeta {
            prior_alpha: 1.0,
            prior_beta: 1.0,
        };
        BanditSpec::new("feed", beta, &["a", "b", "c"]).with_private_statistics(1.0)
    }

    #[test]
    fn pulls_are_cut_to_the_daily_bound_keeping_each_arms_mean() {
        let mut spec = spec();
        spec.private_max_pulls_per_day = 10;
        spec.private_reward_max = 5.0;
        let gathered = [("a".to_owned(), 30, 15.0), ("c".to_owned(), 10, 40.0)];
        let (pulls, sums) = clamp(&spec, &gathered);
        assert_eq!(pulls, vec![7, 0, 2]);
        // a: mean 0.5 over 7 pulls; c: mean 4 clamped to the Beta range [0, 1].
        assert!((sums[0] - 3.5).abs() < 1e-12, "{sums:?}");
        assert_eq!(sums[1], 0.0);
        assert!((sums[2] - 2.0).abs() < 1e-12, "{sums:?}");
    }

    #[test]
    fn the_release_costs_what_the_privacy_maps_say_and_lists_every_arm() {
        let spec = spec();
        let (report, outline, cost) = build(&spec, 0.8, 3, &[4, 0, 1], &[2.0, 0.0, 1.0]).unwrap();
        assert!((cost.amount() - 0.8).abs() < 1e-6, "{cost:?}");
        assert!(cost.amount() >= 0.8 - 1e-12);
        assert_eq!(report.report, "bandit:feed");
        let Some(Body::ArmStats(stats)) = report.body else {
            panic!("not arm statistics")
        };
        assert_eq!(stats.arms, vec!["a", "b", "c"]);
        assert_eq!((stats.pulls.len(), stats.reward_sums.len()), (3, 3));
        // Scale: sensitivity 2 * 20 pulls over epsilon 0.4.
        assert!((stats.pulls_scale - 100.0).abs() < 1e-9);
        assert!((stats.reward_scale - 100.0).abs() < 1e-9);
        assert!(outline.contains("bandit feed"), "{outline}");
    }
}
