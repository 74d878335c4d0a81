//! Regret of Starling's bandit policies beside Vowpal Wabbit's contextual bandit
//! (`--cb_explore_adf`), on the same simulated streams in the same run.
//!
//! For each seed, one stream with known truth (see `starling_tests::contextual`) is generated
//! and written to a file; Starling's policies play it here, and `vw_regret.py` plays it with VW
//! through its Python package. Both sides learn only from the reward of the arm they chose, and
//! the regret of every learner is computed here from its chosen arms with the same code.
//!
//! Run: `make bench-vw` (creates a venv with `vowpalwabbit` and runs this). By hand:
//! `STARLING_VW_PYTHON=/path/to/python cargo bench -p starling-tests --bench vw`, where that
//! Python can `import vowpalwabbit`. Results go to stdout as Markdown, for docs/benchmarks.md.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use starling_core::bandit::{Bandit, PolicyKind};
use starling_tests::bench::{median, percentile};
use starling_tests::contextual::{read_arms, Stream};

const SEEDS: u64 = 5;
const ROUNDS: usize = 20_000;
const ARMS: usize = 10;
/// Context length: the constant 1 and nine features.
const DIMS: usize = 10;
/// Rounds after which the cumulative regret is shown.
const CHECKPOINTS: [usize; 4] = [1_000, 5_000, 10_000, 20_000];

/// What one learner did on one stream.
struct Outcome {
    label: String,
    /// Cumulative regret after each round.
    regret: Vec<f64>,
    /// Median µs of a decision and of a learning step; `None` where nothing is timed.
    decide_us: Option<f64>,
    learn_us: Option<f64>,
    /// VW only: median µs of parsing one example's text form (outside the decision's time).
    parse_us: Option<f64>,
    vw: bool,
}

fn starling_policies() -> Vec<(&'static str, PolicyKind)> {
    vec![
        (
            "Starling LinUCB (alpha 1, ridge 1)",
            PolicyKind::LinUcb {
                dims: DIMS,
                alpha: 1.0,
                ridge: 1.0,
            },
        ),
        (
            "Starling LinUCB (alpha 0.3, ridge 1)",
            PolicyKind::LinUcb {
                dims: DIMS,
                alpha: 0.3,
                ridge: 1.0,
            },
        ),
        (
            "Starling Thompson Beta(1, 1), context-free",
            PolicyKind::ThompsonBeta {
                prior_alpha: 1.0,
                prior_beta: 1.0,
            },
        ),
    ]
}

/// Plays `policy` on `stream`: choose for the context, learn the chosen arm's reward.
fn play(label: &str, policy: PolicyKind, stream: &Stream, seed: u64) -> Outcome {
    let names: Vec<String> = (0..ARMS).map(|i| format!("arm{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let contextual = matches!(policy, PolicyKind::LinUcb { .. });
    let mut bandit = Bandit::new(policy, &names, 1.0).expect("valid policy");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5747);
    let (mut decide, mut learn) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    let mut chosen = Vec::with_capacity(ROUNDS);
    for round in &stream.rounds {
        let context: &[f64] = if contextual { &round.context } else { &[] };

        let start = Instant::now();
        let choice = bandit.choose(context, &mut rng).expect("a choice");
        decide.push(start.elapsed().as_nanos() as u64);

        let start = Instant::now();
        bandit
            .update(choice.arm, context, round.rewards[choice.arm])
            .expect("an update");
        learn.push(start.elapsed().as_nanos() as u64);
        chosen.push(choice.arm);
    }
    decide.sort_unstable();
    learn.sort_unstable();
    Outcome {
        label: label.to_owned(),
        regret: stream.regret_curve(&chosen),
        decide_us: Some(percentile(&decide, 0.5) as f64 / 1000.0),
        learn_us: Some(percentile(&learn, 0.5) as f64 / 1000.0),
        parse_us: None,
        vw: false,
    }
}

/// Runs `vw_regret.py` on the stream file; one outcome per VW configuration.
fn play_vw(python: &str, stream: &Stream, stream_path: &Path, seed: u64) -> Vec<Outcome> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/vw_regret.py");
    let out_dir = stream_path.parent().expect("the stream is in a directory");
    let output = Command::new(python)
        .arg(&script)
        .arg(stream_path)
        .arg(out_dir)
        .arg(seed.to_string())
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {python}: {e}")));
    if !output.status.success() {
        fail(&format!(
            "{} failed ({}):\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| fail(&format!("bad line from VW script {line:?}: {e}")));
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            let arms = read_arms(&out_dir.join(format!("{}.arms", field("name"))), stream)
                .unwrap_or_else(|e| fail(&e));
            if seed == 0 {
                eprintln!(
                    "{}: vowpalwabbit {}, `{}`",
                    field("label"),
                    field("version"),
                    field("args")
                );
            }
            Outcome {
                label: field("label"),
                regret: stream.regret_curve(&arms),
                decide_us: v["predict_ns"].as_f64().map(|ns| ns / 1000.0),
                learn_us: v["learn_ns"].as_f64().map(|ns| ns / 1000.0),
                parse_us: v["parse_ns"].as_f64().map(|ns| ns / 1000.0),
                vw: true,
            }
        })
        .collect()
}

fn fail(why: &str) -> ! {
    eprintln!("bench vw: {why}");
    eprintln!("Run `make bench-vw`, which installs vowpalwabbit into a venv and runs this bench.");
    std::process::exit(1);
}

fn main() {
    let python = std::env::var("STARLING_VW_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut runs: Vec<Vec<Outcome>> = Vec::new();
    let mut best_fixed = Vec::new();
    for seed in 0..SEEDS {
        let stream = Stream::generate(seed, ROUNDS, ARMS, DIMS);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("stream.txt");
        stream.write(&path).expect("stream written");

        let mut outcomes = vec![Outcome {
            label: "uniform random (expected)".to_owned(),
            regret: stream.random_regret_curve(),
            decide_us: None,
            learn_us: None,
            parse_us: None,
            vw: false,
        }];
        for (label, policy) in starling_policies() {
            outcomes.push(play(label, policy, &stream, seed));
        }
        outcomes.extend(play_vw(&python, &stream, &path, seed));
        best_fixed.push(stream.best_fixed_arm_regret());
        runs.push(outcomes);
    }
    report(&runs, &mut best_fixed);
}

fn report(runs: &[Vec<Outcome>], best_fixed: &mut [f64]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "Machine: {cores} cores; {SEEDS} seeds (one stream each), medians over seeds shown.\n"
    );
    println!(
        "### Cumulative regret, {ARMS} arms, {} context features, {ROUNDS} rounds\n",
        DIMS - 1
    );
    let checkpoints: Vec<String> = CHECKPOINTS
        .iter()
        .map(|c| format!("@{}k", c / 1000))
        .collect();
    println!(
        "| learner | regret {} | final vs random | final vs best VW | decide µs | learn µs |",
        checkpoints.join(" | ")
    );
    println!("|---|{}---|---|---|---|", "---|".repeat(CHECKPOINTS.len()));

    // Every run lists the same learners in the same order, uniform random first.
    let final_of = |o: &Outcome| *o.regret.last().expect("rounds");
    for (i, first) in runs[0].iter().enumerate() {
        let column = |f: &dyn Fn(&[Outcome]) -> f64| {
            median(&mut runs.iter().map(|run| f(run)).collect::<Vec<_>>())
        };
        let at: Vec<String> = CHECKPOINTS
            .iter()
            .map(|&c| format!("{:.0}", column(&|run| run[i].regret[c - 1])))
            .collect();
        let vs_random = column(&|run| final_of(&run[i]) / final_of(&run[0]));
        let vs_vw = column(&|run| {
            let best_vw = run
                .iter()
                .filter(|o| o.vw)
                .map(final_of)
                .fold(f64::INFINITY, f64::min);
            final_of(&run[i]) / best_vw
        });
        let time = |pick: fn(&Outcome) -> Option<f64>| {
            if pick(first).is_some() {
                format!("{:.2}", column(&|run| pick(&run[i]).unwrap_or(f64::NAN)))
            } else {
                "n/a".to_owned()
            }
        };
        println!(
            "| {} | {} | {vs_random:.2} | {vs_vw:.2} | {} | {} |",
            first.label,
            at.join(" | "),
            time(|o| o.decide_us),
            time(|o| o.learn_us)
        );
    }
    let mut parse: Vec<f64> = runs.iter().flatten().filter_map(|o| o.parse_us).collect();
    println!(
        "\nVW's times exclude parsing each example's text form, a median {:.1} µs per example (the \
         Python binding's cost, not the learner's).",
        median(&mut parse)
    );
    println!(
        "\nRegret of always playing the best single arm (the floor for a context-free policy): {:.0} (median).",
        median(best_fixed)
    );
}
