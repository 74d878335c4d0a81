//! Decision latency of each bandit policy with 10 arms, beside a uniform random choice (the
//! floor: one random number) measured in the same process; then what learning costs where it
//! is not trivial (Thompson's `prepare`, LinUCB's update with and without a discount).
//!
//! Run: `cargo bench -p starling-tests --bench bandit`.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_core::bandit::{Bandit, PolicyKind};

const ARMS: usize = 10;
const DIMS: usize = 16;
const WARMUP_UPDATES: usize = 5_000;
const DECISIONS: usize = 20_000;
const UPDATES: usize = 2_000;
/// The discount of the discounted LinUCB rows.
const DISCOUNT: f64 = 0.999;

/// The `p` quantile of sorted nanosecond samples, in µs.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    starling_tests::bench::percentile(sorted, p) as f64 / 1000.0
}

fn trained(policy: PolicyKind, discount: f64, rng: &mut StdRng) -> Bandit {
    let names: Vec<String> = (0..ARMS).map(|i| format!("variant_{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut bandit = Bandit::new(policy, &names, discount).unwrap();
    for _ in 0..WARMUP_UPDATES {
        let (arm, context, reward) = observation(&bandit, rng);
        bandit.update(arm, &context, reward).unwrap();
    }
    bandit
}

/// A random arm, its context (empty for a context-free policy) and a click.
fn observation(bandit: &Bandit, rng: &mut StdRng) -> (usize, Vec<f64>, f64) {
    let arm = rng.random_range(0..ARMS);
    let context: Vec<f64> = (0..DIMS).map(|_| rng.random()).collect();
    let context = if matches!(bandit_kind(bandit), Kind::Linear) {
        context
    } else {
        vec![]
    };
    let reward = if rng.random_bool(0.05 + 0.03 * arm as f64) {
        1.0
    } else {
        0.0
    };
    (arm, context, reward)
}

enum Kind {
    Linear,
    Other,
}

fn bandit_kind(bandit: &Bandit) -> Kind {
    // A LinUCB bandit refuses an empty context.
    let mut rng = StdRng::seed_from_u64(0);
    if bandit.choose(&[], &mut rng).is_err() {
        Kind::Linear
    } else {
        Kind::Other
    }
}

fn measure(mut decide: impl FnMut() -> usize) -> (f64, f64) {
    let mut latencies = Vec::with_capacity(DECISIONS);
    let mut sink = 0usize;
    for _ in 0..DECISIONS {
        let t = Instant::now();
        sink = sink.wrapping_add(decide());
        latencies.push(t.elapsed().as_nanos() as u64);
    }
    std::hint::black_box(sink);
    latencies.sort_unstable();
    (percentile(&latencies, 0.5), percentile(&latencies, 0.99))
}

fn main() {
    let mut rng = StdRng::seed_from_u64(1);
    println!("### Bandit decision latency per policy ({ARMS} arms, after {WARMUP_UPDATES} updates; {DECISIONS} decisions)\n");
    println!("| policy | median µs | p99 µs | median vs baseline |");
    println!("|---|---|---|---|");
    let (base50, base99) = {
        let mut r = StdRng::seed_from_u64(2);
        measure(|| r.random_range(0..ARMS))
    };
    println!("| baseline: uniform random arm | {base50:.3} | {base99:.3} | 1.0 |");
    let linucb = PolicyKind::LinUcb {
        dims: DIMS,
        alpha: 1.0,
        ridge: 1.0,
    };
    let policies = [
        (
            "epsilon-greedy (0.1)",
            PolicyKind::EpsilonGreedy { epsilon: 0.1 },
        ),
        (
            "UCB1",
            PolicyKind::Ucb1 {
                exploration: std::f64::consts::SQRT_2,
            },
        ),
        (
            "Thompson, Beta-Bernoulli",
            PolicyKind::ThompsonBeta {
                prior_alpha: 1.0,
                prior_beta: 1.0,
            },
        ),
        (
            "Thompson, Gaussian",
            PolicyKind::ThompsonGaussian {
                prior_mean: 0.0,
                prior_variance: 1.0,
                noise_variance: 1.0,
            },
        ),
        ("LinUCB, 16 features", linucb.clone()),
    ];
    let policies = policies
        .into_iter()
        .map(|(name, policy)| (name, policy, 1.0))
        .chain([(
            "LinUCB, 16 features, discount 0.999",
            linucb.clone(),
            DISCOUNT,
        )]);
    for (name, policy, discount) in policies {
        let linear = matches!(policy, PolicyKind::LinUcb { .. });
        let mut bandit = trained(policy, discount, &mut rng);
        // As the SDK's writer thread does after each update.
        bandit.prepare(&mut rng).unwrap();
        let context: Vec<f64> = if linear {
            (0..DIMS).map(|i| i as f64 / DIMS as f64).collect()
        } else {
            vec![]
        };
        let mut r = StdRng::seed_from_u64(3);
        let (p50, p99) = measure(|| bandit.choose(&context, &mut r).unwrap().arm);
        println!(
            "| {name} | {p50:.2} | {p99:.2} | {:.0}× |",
            p50 / base50.max(0.001)
        );
    }

    // What `prepare` costs, off the deciding thread, after each update.
    let mut bandit = trained(
        PolicyKind::ThompsonBeta {
            prior_alpha: 1.0,
            prior_beta: 1.0,
        },
        1.0,
        &mut rng,
    );
    let mut times = Vec::new();
    for i in 0..200 {
        bandit.update(i % ARMS, &[], 1.0).unwrap();
        let t = Instant::now();
        bandit.prepare(&mut rng).unwrap();
        times.push(t.elapsed().as_nanos() as u64);
    }
    times.sort_unstable();
    println!(
        "\n`prepare()` for Thompson Beta-Bernoulli (2048 posterior draws, on the writer thread after an update): median {:.0} µs, p99 {:.0} µs.",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );

    // What a LinUCB update costs (on the writer thread in the SDK), without and with a
    // discount: Sherman–Morrison in O(d²), against the discounted sums' eigendecomposition in
    // O(d³) plus fading the other arms.
    println!("\n| LinUCB update, {ARMS} arms, {DIMS} features ({UPDATES} updates) | median µs | p99 µs | median vs no discount |");
    println!("|---|---|---|---|");
    let mut undiscounted = None;
    for (name, discount) in [("no discount", 1.0), ("discount 0.999", DISCOUNT)] {
        let mut bandit = trained(linucb.clone(), discount, &mut rng);
        let mut times = Vec::with_capacity(UPDATES);
        for _ in 0..UPDATES {
            let (arm, context, reward) = observation(&bandit, &mut rng);
            let t = Instant::now();
            bandit.update(arm, &context, reward).unwrap();
            times.push(t.elapsed().as_nanos() as u64);
        }
        times.sort_unstable();
        let p50 = percentile(&times, 0.5);
        let baseline = *undiscounted.get_or_insert(p50);
        println!(
            "| {name} | {p50:.2} | {:.2} | {:.0}× |",
            percentile(&times, 0.99),
            p50 / baseline.max(0.001)
        );
    }
}
