//! Fleet estimates from private reports: unbiased totals with standard errors and 95%
//! confidence intervals, computed from the known noise of each report.
//!
//! * Noised counts: the sum of the reports is unbiased for the fleet total; its variance is the
//!   sum of each report's discrete Laplace variance, known from its scale.
//! * Randomized response: a report of category `c` from a device whose answer is truthful with
//!   probability `p` (and any given lie has probability `q = (1 - p) / (t - 1)`) contributes
//!   `(1[answer = c] - q) / (p - q)`, which is unbiased for `1[truth = c]`. The variance of a
//!   contribution is `p(1-p)/(p-q)^2` for a device in `c` and `q(1-q)/(p-q)^2` otherwise; the
//!   fraction of devices in `c` is taken from the estimate itself.
//!
//! The intervals use the normal approximation, sound for the fleet sizes at which estimates are
//! published (see `ServerConfig::private_min_devices`).

use std::collections::HashMap;

use starling_proto::v1::{private_report::Body, CellEstimate, PrivateEstimate, PrivateReport};

/// The standard normal quantile of 0.975: a 95% two-sided interval.
const Z_95: f64 = 1.959_963_984_540_054;

/// Variance of discrete Laplace noise of scale `s`: `2a / (1 - a)^2`, `a = exp(-1/s)`.
pub fn discrete_laplace_variance(scale: f64) -> f64 {
    let a = (-1.0 / scale).exp();
    2.0 * a / ((1.0 - a) * (1.0 - a))
}

#[derive(Default)]
struct Cell {
    sum: f64,
    /// Known noise variance (counts).
    variance: f64,
    /// Sums of the per-device variances of a randomized-response contribution, for a device in
    /// the category and for one outside it.
    in_variance: f64,
    out_variance: f64,
    devices: u32,
}

/// The fleet estimate of `report` for `day` from its `reports`.
pub fn estimate(report: &str, day: i64, reports: &[PrivateReport]) -> PrivateEstimate {
    let mut order: Vec<String> = Vec::new();
    let mut cells: HashMap<String, Cell> = HashMap::new();
    fn cell<'a>(
        order: &mut Vec<String>,
        cells: &'a mut HashMap<String, Cell>,
        name: &str,
    ) -> &'a mut Cell {
        if !cells.contains_key(name) {
            order.push(name.to_owned());
        }
        cells.entry(name.to_owned()).or_default()
    }
    for r in reports {
        match &r.body {
            Some(Body::Counts(counts)) => {
                let variance = discrete_laplace_variance(counts.scale);
                for (name, value) in counts.cells.iter().zip(&counts.values) {
                    let c = cell(&mut order, &mut cells, name);
                    c.sum += *value as f64;
                    c.variance += variance;
                    c.devices += 1;
                }
            }
            Some(Body::Category(category)) => {
                let t = category.categories.len() as f64;
                let p = category.truth_probability;
                let q = (1.0 - p) / (t - 1.0);
                let gap = p - q;
                for name in &category.categories {
                    let c = cell(&mut order, &mut cells, name);
                    let observed = if *name == category.answer { 1.0 } else { 0.0 };
                    c.sum += (observed - q) / gap;
                    c.in_variance += p * (1.0 - p) / (gap * gap);
                    c.out_variance += q * (1.0 - q) / (gap * gap);
                    c.devices += 1;
                }
            }
            // Arm statistics feed the bandit priors (crate::bandits::prior), not estimates.
            Some(Body::ArmStats(_)) | None => {}
        }
    }
    let cells = order
        .into_iter()
        .map(|name| {
            let c = &cells[&name];
            let fraction = (c.sum / c.devices.max(1) as f64).clamp(0.0, 1.0);
            let variance =
                c.variance + fraction * c.in_variance + (1.0 - fraction) * c.out_variance;
            let standard_error = variance.sqrt();
            CellEstimate {
                cell: name,
                estimate: c.sum,
                standard_error,
                lower: c.sum - Z_95 * standard_error,
                upper: c.sum + Z_95 * standard_error,
                devices: c.devices,
            }
        })
        .collect();
    PrivateEstimate {
        report: report.to_owned(),
        day,
        devices: reports.len() as u32,
        cells,
    }
}

/// Why arm statistics cannot be accepted, if they cannot.
fn check_arm_stats(
    report: &PrivateReport,
    stats: &starling_proto::v1::NoisyArmStats,
) -> Result<(), String> {
    if stats.bandit.is_empty() || stats.bandit.len() > 64 {
        return Err("a bandit name must be 1 to 64 bytes".into());
    }
    if report.report
        != format!(
            "{}{}",
            crate::bandits::prior::PRIVATE_REPORT_PREFIX,
            stats.bandit
        )
    {
        return Err(format!(
            "arm statistics of bandit {:?} must be named \"bandit:\" and the bandit's name",
            stats.bandit
        ));
    }
    let n = stats.arms.len();
    if n == 0 || n > 1000 || stats.pulls.len() != n || stats.reward_sums.len() != n {
        return Err(
            "arm statistics need 1 to 1000 arms, one pull count and reward sum each".into(),
        );
    }
    if stats.arms.iter().any(|a| a.is_empty()) || stats.reward_sums.iter().any(|s| !s.is_finite()) {
        return Err("arm names must not be empty and reward sums must be finite".into());
    }
    let scale_ok = |s: f64| s.is_finite() && s > 0.0;
    if !(scale_ok(stats.pulls_scale) && scale_ok(stats.reward_scale)) {
        return Err("the noise scales must be positive and finite".into());
    }
    Ok(())
}

/// Why a report cannot be accepted, if it cannot.
pub fn check(report: &PrivateReport) -> Result<(), String> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !name_ok(&report.release_id) {
        return Err("release_id must be 1 to 64 letters, digits, '_', '-' or '.'".into());
    }
    // Arm statistics are named after their bandit, checked below.
    if !matches!(report.body, Some(Body::ArmStats(_))) && !name_ok(&report.report) {
        return Err(format!("report name {:?} is not valid", report.report));
    }
    if !(report.epsilon.is_finite() && report.epsilon >= 0.0) {
        return Err("epsilon must be finite and >= 0".into());
    }
    match &report.body {
        None => Err("the report has no body".into()),
        Some(Body::ArmStats(stats)) => check_arm_stats(report, stats),
        Some(Body::Counts(c)) => {
            if c.cells.is_empty() || c.cells.len() != c.values.len() || c.cells.len() > 1000 {
                return Err("counts need 1 to 1000 cells, one value each".into());
            }
            if !(c.scale.is_finite() && c.scale > 0.0) {
                return Err("the noise scale must be positive and finite".into());
            }
            Ok(())
        }
        Some(Body::Category(c)) => {
            let t = c.categories.len();
            if !(2..=1000).contains(&t) || !c.categories.contains(&c.answer) {
                return Err(
                    "a category needs 2 to 1000 categories and an answer among them".into(),
                );
            }
            let p = c.truth_probability;
            if !(p.is_finite() && p > 1.0 / t as f64 && p < 1.0) {
                return Err("truth_probability must lie in (1/categories, 1)".into());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::v1::{NoisyCounts, RandomizedCategory};

    #[test]
    fn noiseless_randomized_response_is_debiased_exactly_in_expectation() {
        // Three categories, p = 0.5, q = 0.25. Expected answers for 40 devices with truth
        // (a: 20, b: 12, c: 8) are a: 10 + 5 = 15, b: 6 + 7 = 13, c: 4 + 8 = 12.
        let mut reports = Vec::new();
        for (answer, n) in [("a", 15), ("b", 13), ("c", 12)] {
            for _ in 0..n {
                reports.push(PrivateReport {
                    release_id: format!("r{}", reports.len()),
                    report: "top".into(),
                    day: 1,
                    epsilon: 1.0,
                    body: Some(Body::Category(RandomizedCategory {
                        categories: vec!["a".into(), "b".into(), "c".into()],
                        answer: answer.into(),
                        truth_probability: 0.5,
                    })),
                });
            }
        }
        let e = estimate("top", 1, &reports);
        let got: Vec<f64> = e.cells.iter().map(|c| c.estimate).collect();
        for (g, want) in got.iter().zip([20.0, 12.0, 8.0]) {
            assert!((g - want).abs() < 1e-9, "{got:?}");
        }
        assert_eq!(e.devices, 40);
        assert!(e.cells[0].lower < 20.0 && e.cells[0].upper > 20.0);
    }

    #[test]
    fn noised_counts_sum_and_their_variance_adds_up() {
        let reports: Vec<PrivateReport> = (0..4)
            .map(|i| PrivateReport {
                release_id: format!("r{i}"),
                report: "usage".into(),
                day: 1,
                epsilon: 1.0,
                body: Some(Body::Counts(NoisyCounts {
                    cells: vec!["open".into()],
                    values: vec![i],
                    scale: 2.0,
                })),
            })
            .collect();
        let e = estimate("usage", 1, &reports);
        assert_eq!(e.cells[0].estimate, 6.0);
        let se = (4.0 * discrete_laplace_variance(2.0)).sqrt();
        assert!((e.cells[0].standard_error - se).abs() < 1e-12);
        assert!(check(&reports[0]).is_ok());
        let mut bad = reports[0].clone();
        bad.body = None;
        assert!(check(&bad).is_err());
    }
}
