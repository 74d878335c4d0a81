//! Helpers for the federated learning tests and benchmarks: synthetic data from a known
//! logistic model, learning tasks, fleets of devices, and the server's learning routes.

use std::time::Duration;

use prost::Message;
use rand::Rng;
use starling_core::learning::{Eligibility, Features};
use starling_core::Starling;
use starling_proto::v1::ModelRelease;
use starling_server::learning::TaskDefinition;

use crate::{device_config, open_device, TestServer, API_KEY};

/// The best model: weights of 5 features, then the bias.
pub const TRUE_WEIGHTS: [f64; 6] = [1.5, -2.0, 1.0, 0.5, -1.0, 0.3];
/// Features per synthetic example.
pub const DIMS: usize = 5;

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `n` examples from the true model.
pub fn synthetic(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<(Vec<f64>, u32)> {
    (0..n)
        .map(|_| {
            let x: Vec<f64> = (0..DIMS).map(|_| normal(rng)).collect();
            let z: f64 =
                x.iter().zip(&TRUE_WEIGHTS).map(|(a, b)| a * b).sum::<f64>() + TRUE_WEIGHTS[DIMS];
            let y = u32::from(rng.random::<f64>() < sigmoid(z));
            (x, y)
        })
        .collect()
}

/// A standard normal draw.
pub fn normal(rng: &mut rand::rngs::StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Accuracy of the logistic model `w` (feature weights, then the bias) on `data`.
pub fn accuracy_of(w: &[f64], data: &[(Vec<f64>, u32)]) -> f64 {
    let correct = data
        .iter()
        .filter(|(x, y)| {
            let z = x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + w[DIMS];
            (z >= 0.0) == (*y == 1)
        })
        .count();
    correct as f64 / data.len() as f64
}

/// Accuracy of a device's current model of `task` on `data`, through `predict`.
pub fn device_accuracy(device: &Starling, task: &str, data: &[(Vec<f64>, u32)]) -> f64 {
    let correct = data
        .iter()
        .filter(|(x, y)| {
            let p = device.predict(task, &Features::dense(x)).unwrap()[0];
            (p >= 0.5) == (*y == 1)
        })
        .count();
    correct as f64 / data.len() as f64
}

/// A logistic task over the 5 synthetic features, with `aggregation` and extra fields.
pub fn task(name: &str, aggregation: &str, extra: &str) -> TaskDefinition {
    let json = format!(
        r#"{{
        "name": "{name}",
        "kind": "logistic",
        "features": {{"dense_features": {DIMS}}},
        "training": {{"epochs": 3, "batch_size": 10, "learning_rate": 0.2, "l2": 0.0001,
                     "min_examples": 5, "holdout_percent": 20, "max_examples": 1000}},
        "clip_norm": 5.0,
        "aggregation": {aggregation}
        {extra}
    }}"#
    );
    let task: TaskDefinition = serde_json::from_str(&json).unwrap();
    task.validate().unwrap();
    task
}

/// A synchronous round of 10 updates (5 at the deadline), 15 seats, one minute.
pub const SYNC: &str = r#"{"mode": "synchronous", "target_participants": 10, "min_participants": 5,
    "over_selection": 1.5, "round_deadline_ms": 60000}"#;

/// Opens `n` devices, each with its share of `data`.
pub fn fleet(
    server_url: &str,
    task: &str,
    shares: &[Vec<(Vec<f64>, u32)>],
) -> (Vec<Starling>, Vec<tempfile::TempDir>) {
    let mut devices = Vec::new();
    let mut dirs = Vec::new();
    for share in shares {
        let dir = tempfile::tempdir().unwrap();
        let device = open_device(device_config(dir.path(), server_url));
        for (x, y) in share {
            device.add_example(task, &Features::dense(x), *y).unwrap();
        }
        device.flush().unwrap();
        devices.push(device);
        dirs.push(dir);
    }
    (devices, dirs)
}

/// Runs learning syncs over the fleet, in turn, until the server has published `versions`.
pub fn train_until(devices: &[Starling], task: &str, versions: u64) -> u64 {
    let mut latest = 0;
    for pass in 0..(versions * 4) {
        for device in devices {
            let report = device
                .sync_learning_blocking(task, Eligibility::ELIGIBLE)
                .unwrap();
            assert!(report.last_error.is_none(), "{report:?}");
            latest = latest.max(report.model_version.unwrap_or(0));
        }
        if latest >= versions {
            return pass;
        }
    }
    panic!("only {latest} versions were published");
}

/// `GET /v1/learning/{task}/history` as JSON.
pub fn history(server: &TestServer, task: &str) -> serde_json::Value {
    let mut response = ureq::get(format!("{}/v1/learning/{task}/history", server.url()))
        .header("authorization", format!("Bearer {API_KEY}"))
        .call()
        .unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

/// Deals `data` into `devices` equal shares, in order.
pub fn split(data: Vec<(Vec<f64>, u32)>, devices: usize) -> Vec<Vec<(Vec<f64>, u32)>> {
    let per = data.len() / devices;
    data.chunks(per).take(devices).map(<[_]>::to_vec).collect()
}

/// `GET /v1/learning/{task}/model`, decoded.
pub fn fetch_release(server: &TestServer, task: &str) -> ModelRelease {
    let mut response = ureq::get(format!("{}/v1/learning/{task}/model", server.url()))
        .header("authorization", format!("Bearer {API_KEY}"))
        .call()
        .unwrap();
    ModelRelease::decode(response.body_mut().read_to_vec().unwrap().as_slice()).unwrap()
}

/// Waits until `deadline_ms` (Unix epoch ms) has passed.
pub fn sleep_past(deadline_ms: i64) {
    let now = now_ms();
    if deadline_ms >= now {
        std::thread::sleep(Duration::from_millis((deadline_ms - now + 50) as u64));
    }
}

/// Unix epoch ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Posts a protobuf body with the test API key; the status and the answer.
pub fn post(server: &TestServer, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let mut response = ureq::post(format!("{}{path}", server.url()))
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("content-type", "application/x-protobuf")
        .config()
        .http_status_as_error(false)
        .build()
        .send(&body)
        .unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_vec().unwrap())
}

/// The code of a protobuf `ErrorResponse`.
pub fn code_of(body: &[u8]) -> String {
    starling_proto::v1::ErrorResponse::decode(body)
        .unwrap()
        .code
}
