//! The server's 95% confidence intervals cover the truth in about 95% of simulated fleets.
//!
//! Each fleet is a few hundred devices with known data; every device noises its own report with
//! the same mechanisms the SDK uses, and the server's estimator turns the reports into
//! intervals. Over `FLEETS` fleets the number of intervals that cover the truth is binomial;
//! the test accepts 4 binomial standard deviations either side of 95% (a correct estimator
//! fails about once in 15 000 runs; one whose intervals are 20% too narrow or too wide fails
//! nearly always).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_core::privacy::mechanisms;
use starling_proto::v1::{private_report::Body, NoisyCounts, PrivateReport, RandomizedCategory};
use starling_server::privacy::estimate::estimate;

const FLEETS: usize = 300;
const DEVICES: usize = 200;

fn check_coverage(what: &str, covered: usize, trials: usize) {
    let rate = covered as f64 / trials as f64;
    let sd = (0.95 * 0.05 / trials as f64).sqrt();
    println!("{what}: {covered} of {trials} intervals cover the truth ({rate:.3})");
    assert!(
        (rate - 0.95).abs() < 4.0 * sd,
        "{what}: coverage {rate:.3}, expected 0.95 within {:.3}",
        4.0 * sd
    );
}

#[test]
fn count_intervals_cover_the_truth_95_percent_of_the_time() {
    let mut rng = StdRng::seed_from_u64(0xc0ffee);
    let mut covered = 0;
    let mut trials = 0;
    for _ in 0..FLEETS {
        let mut truth = [0.0f64; 2];
        let reports: Vec<PrivateReport> = (0..DEVICES)
            .map(|i| {
                let counts = [rng.random_range(0..8u64), rng.random_range(0..3u64)];
                truth[0] += counts[0].min(5) as f64;
                truth[1] += counts[1].min(5) as f64;
                let noisy = mechanisms::noisy_counts(&counts, 5, None, 1.0).unwrap();
                PrivateReport {
                    release_id: format!("r{i}"),
                    report: "usage".into(),
                    day: 1,
                    epsilon: noisy.cost.amount(),
                    body: Some(Body::Counts(NoisyCounts {
                        cells: vec!["open".into(), "share".into()],
                        values: noisy.values,
                        scale: noisy.scale,
                    })),
                }
            })
            .collect();
        let e = estimate("usage", 1, &reports);
        for (cell, truth) in e.cells.iter().zip(truth) {
            trials += 1;
            covered += (cell.lower <= truth && truth <= cell.upper) as usize;
        }
    }
    check_coverage("noised counts", covered, trials);
}

#[test]
fn randomized_response_intervals_cover_the_truth_95_percent_of_the_time() {
    let categories: Vec<String> = ["home", "search", "cart", "none"]
        .map(String::from)
        .to_vec();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut covered = 0;
    let mut trials = 0;
    for _ in 0..FLEETS {
        // Each fleet has its own mix, so coverage is checked across shapes, not one.
        let weights: Vec<f64> = (0..categories.len())
            .map(|_| rng.random_range(0.1..1.0))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut truth = vec![0.0f64; categories.len()];
        let reports: Vec<PrivateReport> = (0..DEVICES)
            .map(|i| {
                let mut u = rng.random_range(0.0..total);
                let mut k = 0;
                while u >= weights[k] && k + 1 < weights.len() {
                    u -= weights[k];
                    k += 1;
                }
                truth[k] += 1.0;
                let rr = mechanisms::randomized_answer(&categories[k], &categories, 1.0).unwrap();
                PrivateReport {
                    release_id: format!("r{i}"),
                    report: "top".into(),
                    day: 1,
                    epsilon: rr.cost.amount(),
                    body: Some(Body::Category(RandomizedCategory {
                        categories: categories.clone(),
                        answer: rr.answer,
                        truth_probability: rr.truth_probability,
                    })),
                }
            })
            .collect();
        let e = estimate("top", 1, &reports);
        for cell in &e.cells {
            let k = categories.iter().position(|c| *c == cell.cell).unwrap();
            trials += 1;
            covered += (cell.lower <= truth[k] && truth[k] <= cell.upper) as usize;
        }
    }
    check_coverage("randomized response", covered, trials);
}
