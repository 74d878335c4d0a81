//! Federated learning on real data: Starling's devices and server on loopback, trained on a
//! split prepared by `scripts/bench_federated.py` (scikit-learn's breast cancer data), which
//! runs this binary beside a centralized logistic regression and a Flower FedAvg simulation of
//! the same split and prints the comparison.
//!
//! Run everything with `make bench-federated`. This binary alone:
//! `FL_BENCH_DATA=split.csv cargo bench -p starling-tests --bench federated`; it prints one
//! `RESULT {json}` line.
//!
//! The CSV has a header `split,device,label,f0,f1,...`: `split` is `train` or `test`, and
//! `device` the index of the simulated device a training row belongs to.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use starling_core::learning::{Eligibility, Features};
use starling_core::Starling;
use starling_server::learning::TaskDefinition;
use starling_tests::bench::median;
use starling_tests::{device_config, open_device, TestServer};

type Row = (Vec<f64>, u32);

/// Local training and server settings, the same as the Flower clients in the script use.
fn task(name: &str, dims: usize, participants: usize) -> TaskDefinition {
    let json = format!(
        r#"{{
        "name": "{name}",
        "kind": "logistic",
        "features": {{"dense_features": {dims}}},
        "training": {{"epochs": 5, "batch_size": 8, "learning_rate": 0.1, "l2": 0.0001,
                     "min_examples": 1, "holdout_percent": 0, "max_examples": 10000}},
        "clip_norm": 100.0,
        "aggregation": {{"mode": "synchronous", "target_participants": {participants},
                        "min_participants": {participants}, "over_selection": 1.0,
                        "round_deadline_ms": 3600000}}
    }}"#
    );
    serde_json::from_str(&json).expect("task")
}

fn read(path: &str) -> (Vec<(usize, Row)>, Vec<Row>) {
    let text = std::fs::read_to_string(path).expect("FL_BENCH_DATA is readable");
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let device: usize = cells[1].parse().unwrap();
        let label: u32 = cells[2].parse().unwrap();
        let x: Vec<f64> = cells[3..].iter().map(|c| c.parse().unwrap()).collect();
        match cells[0] {
            "train" => train.push((device, (x, label))),
            _ => test.push((x, label)),
        }
    }
    (train, test)
}

/// Opens one device per share and stores its examples.
fn devices(url: &str, task: &str, shares: &[Vec<Row>], root: &std::path::Path) -> Vec<Starling> {
    shares
        .iter()
        .enumerate()
        .map(|(i, share)| {
            let device = open_device(device_config(&root.join(format!("{task}-{i}")), url));
            for (x, y) in share {
                device.add_example(task, &Features::dense(x), *y).unwrap();
            }
            device.flush().unwrap();
            device
        })
        .collect()
}

/// One round: every device syncs in turn (download, check in, train, upload). Returns the
/// wall time in ms.
fn round(devices: &[Starling], task: &str) -> f64 {
    let start = Instant::now();
    for device in devices {
        let report = device
            .sync_learning_blocking(task, Eligibility::ELIGIBLE)
            .unwrap();
        assert!(report.last_error.is_none(), "{report:?}");
    }
    start.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let path = std::env::var("FL_BENCH_DATA").expect("FL_BENCH_DATA names the split CSV");
    let rounds: usize = std::env::var("FL_ROUNDS").map_or(30, |r| r.parse().unwrap());
    let (train, test) = read(&path);
    let dims = test[0].0.len();
    let shares_count = train.iter().map(|(d, _)| d + 1).max().unwrap();
    let mut shares = vec![Vec::new(); shares_count];
    for (device, row) in &train {
        shares[*device].push(row.clone());
    }

    let timing_sizes = [100usize, 1000];
    let mut tasks = vec![task("bc", dims, shares_count)];
    tasks.extend(
        timing_sizes
            .iter()
            .map(|n| task(&format!("t{n}"), dims, *n)),
    );
    let server = TestServer::start_with(|c| c.learning_tasks = tasks);
    let root = tempfile::tempdir().unwrap();

    // Accuracy: the split as prepared, trained for `rounds` rounds.
    let fleet = devices(&server.url(), "bc", &shares, root.path());
    let mut round_ms = Vec::new();
    for _ in 0..rounds {
        round_ms.push(round(&fleet, "bc"));
    }
    fleet[0]
        .sync_learning_blocking("bc", Eligibility::default())
        .unwrap();
    let correct = test
        .iter()
        .filter(|(x, y)| {
            (fleet[0].predict("bc", &Features::dense(x)).unwrap()[0] >= 0.5) == (*y == 1)
        })
        .count();
    let accuracy = correct as f64 / test.len() as f64;
    let update_bytes = fleet[0].learning_status("bc").unwrap().updates[0].bytes;
    drop(fleet);

    // Wall time of one round for larger fleets: each device holds 5 training rows drawn with
    // replacement (the data set has 455 training rows, fewer than the devices).
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut timings = serde_json::Map::new();
    for n in timing_sizes {
        let name = format!("t{n}");
        let shares: Vec<Vec<Row>> = (0..n)
            .map(|_| {
                (0..5)
                    .map(|_| train[rng.random_range(0..train.len())].1.clone())
                    .collect()
            })
            .collect();
        let fleet = devices(&server.url(), &name, &shares, root.path());
        for device in &fleet {
            device
                .sync_learning_blocking(&name, Eligibility::default())
                .unwrap();
        }
        let mut ms: Vec<f64> = (0..3).map(|_| round(&fleet, &name)).collect();
        timings.insert(name, serde_json::json!(median(&mut ms)));
    }

    let result = serde_json::json!({
        "devices": shares_count,
        "rounds": rounds,
        "accuracy": accuracy,
        "round_ms_median": median(&mut round_ms),
        "update_bytes": update_bytes,
        "weights": dims + 1,
        "round_ms": timings,
    });
    println!("RESULT {result}");
}
