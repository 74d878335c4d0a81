//! Decisions through the SDK: latency of `Starling::choose` and `Starling::reward` on the
//! caller's thread, beside the bare policy's `Bandit::choose` in the same process (the
//! baseline: what the handle adds is the context assembly, the lock, the decision id and the
//! hand-off to the writer thread).
//!
//! Run: `cargo bench -p starling-tests --bench decisions`. Results go to stdout as Markdown,
//! ready for docs/benchmarks.md.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_core::bandit::{Bandit, BanditSpec, PolicyKind};
use starling_core::{Config, Starling};
use starling_tests::bench::{median, percentile, print_header};

const RUNS: usize = 3;
const DECISIONS: usize = 20_000;
const WARMUP: usize = 2_000;

struct Case {
    label: &'static str,
    policy: PolicyKind,
    arms: usize,
    features: usize,
    discount: f64,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            label: "Thompson Beta, 10 arms",
            policy: PolicyKind::ThompsonBeta {
                prior_alpha: 1.0,
                prior_beta: 1.0,
            },
            arms: 10,
            features: 0,
            discount: 1.0,
        },
        Case {
            label: "LinUCB, 50 arms, 20 features",
            policy: PolicyKind::LinUcb {
                dims: 20,
                alpha: 1.0,
                ridge: 1.0,
            },
            arms: 50,
            features: 20,
            discount: 1.0,
        },
        Case {
            label: "LinUCB, 50 arms, 20 features, discount 0.999",
            policy: PolicyKind::LinUcb {
                dims: 20,
                alpha: 1.0,
                ridge: 1.0,
            },
            arms: 50,
            features: 20,
            discount: 0.999,
        },
    ]
}

fn context(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(0.0..1.0)).collect()
}

/// Per-call nanoseconds: (bare choose, handle choose, handle reward).
fn run(case: &Case) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let names: Vec<String> = (0..case.arms).map(|i| format!("arm{i}")).collect();
    let arms: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut rng = StdRng::seed_from_u64(3);

    let mut bandit = Bandit::new(case.policy.clone(), &arms, case.discount).unwrap();
    for _ in 0..WARMUP {
        let x = context(&mut rng, case.features);
        let c = bandit.choose(&x, &mut rng).unwrap();
        bandit
            .update(c.arm, &x, rng.random_range(0.0..1.0))
            .unwrap();
    }
    bandit.prepare(&mut rng).unwrap();
    let mut bare = Vec::with_capacity(DECISIONS);
    for _ in 0..DECISIONS {
        let x = context(&mut rng, case.features);
        let start = Instant::now();
        let c = bandit.choose(&x, &mut rng).unwrap();
        bare.push(start.elapsed().as_nanos() as u64);
        std::hint::black_box(c);
    }

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path()).with_bandit(
        BanditSpec::new("bench", case.policy.clone(), &arms)
            .with_window_ms(3_600_000)
            .with_discount(case.discount),
    );
    config.queue_capacity = 100_000;
    let device = Starling::open(config).unwrap();
    device.set_consent(true).unwrap();
    for _ in 0..WARMUP {
        let x = context(&mut rng, case.features);
        let d = device.choose("bench", &x).unwrap();
        device.reward(&d.id, rng.random_range(0.0..1.0)).unwrap();
    }
    device.flush().unwrap();
    let (mut choose, mut reward) = (Vec::new(), Vec::new());
    for i in 0..DECISIONS {
        let x = context(&mut rng, case.features);
        let start = Instant::now();
        let d = device.choose("bench", &x).unwrap();
        choose.push(start.elapsed().as_nanos() as u64);
        let value = rng.random_range(0.0..1.0);
        let start = Instant::now();
        device.reward(&d.id, value).unwrap();
        reward.push(start.elapsed().as_nanos() as u64);
        if i % 1000 == 999 {
            device.flush().unwrap();
        }
    }
    device.close().unwrap();
    (bare, choose, reward)
}

fn main() {
    print_header(RUNS);
    println!("### Decision latency through the SDK ({DECISIONS} decisions per run)\n");
    println!("| policy | bare `Bandit::choose` median / p99 | `Starling::choose` median / p99 | `Starling::reward` median / p99 | choose vs bare (medians) |");
    println!("|---|---|---|---|---|");
    for case in cases() {
        let mut rows: Vec<[f64; 7]> = Vec::new();
        for _ in 0..RUNS {
            let (mut bare, mut choose, mut reward) = run(&case);
            for v in [&mut bare, &mut choose, &mut reward] {
                v.sort_unstable();
            }
            let us = |v: &[u64], p: f64| percentile(v, p) as f64 / 1000.0;
            rows.push([
                us(&bare, 0.5),
                us(&bare, 0.99),
                us(&choose, 0.5),
                us(&choose, 0.99),
                us(&reward, 0.5),
                us(&reward, 0.99),
                percentile(&choose, 0.5) as f64 / percentile(&bare, 0.5).max(1) as f64,
            ]);
        }
        let col = |i: usize| median(&mut rows.iter().map(|r| r[i]).collect::<Vec<_>>());
        println!(
            "| {} | {:.2} / {:.2} µs | {:.2} / {:.2} µs | {:.2} / {:.2} µs | {:.2}× |",
            case.label,
            col(0),
            col(1),
            col(2),
            col(3),
            col(4),
            col(5),
            col(6)
        );
    }
}
