//! The privacy layer: what one private release costs on the device, beside the same
//! computation without noise, and how the fleet estimate's error shrinks as the number of
//! devices grows, beside the error the noise predicts.
//!
//! Run: `cargo bench -p starling-tests --bench privacy` (sections: `release`, `fleet`).
//! Results go to stdout as Markdown, ready for docs/benchmarks.md.

use std::hint::black_box;
use std::time::Instant;

use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_core::privacy::mechanisms;
use starling_proto::v1::{private_report::Body, NoisyCounts, PrivateReport, RandomizedCategory};
use starling_server::privacy::estimate::{discrete_laplace_variance, estimate};
use starling_tests::bench::{median, print_header, sections};

const RUNS: usize = 5;
const CALLS: usize = 2_000;

/// Median microseconds per call of `f` over [`RUNS`] runs of [`CALLS`] calls.
fn time_us(mut f: impl FnMut(usize)) -> f64 {
    for i in 0..CALLS / 10 {
        f(i);
    }
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for i in 0..CALLS {
                f(i);
            }
            start.elapsed().as_secs_f64() * 1e6 / CALLS as f64
        })
        .collect();
    median(&mut runs)
}

fn report(body: Body) -> PrivateReport {
    PrivateReport {
        release_id: "0123456789abcdef0123456789abcdef".into(),
        report: "usage".into(),
        day: 20_000,
        epsilon: 1.0,
        body: Some(body),
    }
}

fn release_section() {
    println!("### One release on the device ({CALLS} calls × {RUNS} runs, median µs per call)\n");
    println!("| release | without noise (baseline) | with opendp noise | ratio |");
    println!("|---|---:|---:|---:|");
    let cells: Vec<String> = (0..10).map(|i| format!("event_{i}")).collect();
    let counts: Vec<u64> = (0..10).map(|i| i * 3).collect();

    // The baseline clamps and encodes the same report, so the difference is the mechanism:
    // building the opendp measurement, sampling, and its privacy map.
    let plain = time_us(|_| {
        let values: Vec<i64> = counts.iter().map(|&c| c.min(20) as i64).collect();
        let body = Body::Counts(NoisyCounts {
            cells: cells.clone(),
            values,
            scale: 200.0,
        });
        black_box(report(body).encode_to_vec());
    });
    let noised = time_us(|_| {
        let noisy = mechanisms::noisy_counts(&counts, 20, None, 1.0).unwrap();
        let body = Body::Counts(NoisyCounts {
            cells: cells.clone(),
            values: noisy.values,
            scale: noisy.scale,
        });
        black_box(report(body).encode_to_vec());
    });
    println!(
        "| 10 event counts, discrete Laplace | {plain:.2} | {noised:.2} | {:.0}× |",
        noised / plain
    );

    let categories: Vec<String> = ["home", "search", "cart", "profile", "none"]
        .map(String::from)
        .to_vec();
    let plain = time_us(|i| {
        let answer = categories[i % categories.len()].clone();
        let body = Body::Category(RandomizedCategory {
            categories: categories.clone(),
            answer,
            truth_probability: 1.0,
        });
        black_box(report(body).encode_to_vec());
    });
    let noised = time_us(|i| {
        let rr = mechanisms::randomized_answer(&categories[i % categories.len()], &categories, 1.0)
            .unwrap();
        let body = Body::Category(RandomizedCategory {
            categories: categories.clone(),
            answer: rr.answer,
            truth_probability: rr.truth_probability,
        });
        black_box(report(body).encode_to_vec());
    });
    println!(
        "| 1 of 5 categories, randomized response | {plain:.2} | {noised:.2} | {:.0}× |",
        noised / plain
    );

    let vector: Vec<f64> = (0..100).map(|i| (i as f64 * 0.37).sin()).collect();
    let plain = time_us(|_| {
        let norm = vector.iter().map(|v| v * v).sum::<f64>().sqrt();
        let clipped: Vec<f64> = vector.iter().map(|v| v / norm.max(1.0)).collect();
        black_box(clipped);
    });
    let noised = time_us(|_| {
        black_box(mechanisms::gaussian_vector(&vector, 1.0, 0.5).unwrap());
    });
    println!(
        "| 100-dim vector, clip + Gaussian (zCDP) | {plain:.2} | {noised:.2} | {:.0}× |",
        noised / plain
    );
    println!();
}

/// Root mean square of `errors`.
fn rms(errors: &[f64]) -> f64 {
    (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt()
}

fn fleet_section() {
    const EPSILON: f64 = 1.0;
    const MAX_PER_EVENT: u64 = 5;
    println!(
        "### Fleet estimate error at epsilon {EPSILON} per device and day (server estimator; RMSE over repeated fleets)\n"
    );
    println!(
        "Counts: one event, each device's count clamped to {MAX_PER_EVENT} (discrete Laplace scale {}); the estimate is the fleet total. Randomized response: 4 categories, true shares 40/30/20/10%; the estimate is the number of devices in the first.\n",
        MAX_PER_EVENT as f64 / EPSILON
    );
    println!("| devices | fleets | counts: RMSE | predicted | RMSE / devices | RR: RMSE | predicted | RMSE / devices |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let categories: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let shares = [0.4, 0.3, 0.2, 0.1];
    let mut rng = StdRng::seed_from_u64(0xf1ee7);
    for (devices, fleets) in [
        (100usize, 40usize),
        (1_000, 40),
        (10_000, 20),
        (100_000, 10),
    ] {
        let mut count_errors = Vec::new();
        let mut rr_errors = Vec::new();
        let mut scale = 0.0;
        let mut prob = 0.0;
        for _ in 0..fleets {
            let mut truth = 0.0;
            let mut in_first = 0.0;
            let mut counts = Vec::with_capacity(devices);
            let mut answers = Vec::with_capacity(devices);
            for i in 0..devices {
                let count = rng.random_range(0..=MAX_PER_EVENT + 2);
                truth += count.min(MAX_PER_EVENT) as f64;
                let noisy =
                    mechanisms::noisy_counts(&[count], MAX_PER_EVENT, None, EPSILON).unwrap();
                scale = noisy.scale;
                counts.push(report(Body::Counts(NoisyCounts {
                    cells: vec!["open".into()],
                    values: noisy.values,
                    scale: noisy.scale,
                })));
                let u: f64 = rng.random();
                let k = match u {
                    u if u < shares[0] => 0,
                    u if u < shares[0] + shares[1] => 1,
                    u if u < shares[0] + shares[1] + shares[2] => 2,
                    _ => 3,
                };
                in_first += (k == 0) as u8 as f64;
                let rr =
                    mechanisms::randomized_answer(&categories[k], &categories, EPSILON).unwrap();
                prob = rr.truth_probability;
                let mut r = report(Body::Category(RandomizedCategory {
                    categories: categories.clone(),
                    answer: rr.answer,
                    truth_probability: rr.truth_probability,
                }));
                r.release_id = format!("{i}");
                answers.push(r);
            }
            let e = estimate("usage", 1, &counts);
            count_errors.push(e.cells[0].estimate - truth);
            let e = estimate("top", 1, &answers);
            let first = e.cells.iter().find(|c| c.cell == "a").unwrap();
            rr_errors.push(first.estimate - in_first);
        }
        let n = devices as f64;
        let count_theory = (n * discrete_laplace_variance(scale)).sqrt();
        let q = (1.0 - prob) / 3.0;
        let f = shares[0];
        let rr_theory =
            (n * (f * prob * (1.0 - prob) + (1.0 - f) * q * (1.0 - q))).sqrt() / (prob - q);
        let (c, r) = (rms(&count_errors), rms(&rr_errors));
        println!(
            "| {devices} | {fleets} | {c:.1} | {count_theory:.1} | {:.4} | {r:.1} | {rr_theory:.1} | {:.4} |",
            c / n,
            r / n
        );
    }
    println!();
}

fn main() {
    let wanted = sections();
    print_header(RUNS);
    if wanted("release") {
        release_section();
    }
    if wanted("fleet") {
        fleet_section();
    }
}
