//! Federated learning end to end: real devices (each a `Starling` with its own database) and
//! the real server on loopback.
//!
//! The data is synthetic with a known best model: features are standard normal and labels are
//! drawn from a logistic model with known weights, so the accuracy a centralized logistic
//! regression reaches on the pooled data is the yardstick for the federated one.

use std::process::{Command, Stdio};
use std::time::Duration;

use prost::Message;
use rand::{Rng, SeedableRng};
use starling_core::learning::{Eligibility, Features};
use starling_core::Starling;
use starling_proto::v1::{CheckIn, ModelRelease, ModelUpdate};
use starling_server::learning::TaskDefinition;
use starling_tests::{device_config, open_device, proxy, TestServer, API_KEY};

/// The best model: weights of 5 features, then the bias.
const TRUE_WEIGHTS: [f64; 6] = [1.5, -2.0, 1.0, 0.5, -1.0, 0.3];
const DIMS: usize = 5;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `n` examples from the true model.
fn synthetic(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<(Vec<f64>, u32)> {
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

fn normal(rng: &mut rand::rngs::StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Centralized logistic regression on the pooled data: full-batch gradient descent with the
/// same L2 as the devices, run to convergence.
fn centralized(data: &[(Vec<f64>, u32)], l2: f64) -> Vec<f64> {
    let mut w = vec![0.0; DIMS + 1];
    for _ in 0..2000 {
        let mut grad = [0.0; DIMS + 1];
        for (x, y) in data {
            let z = x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + w[DIMS];
            let e = sigmoid(z) - f64::from(*y);
            for i in 0..DIMS {
                grad[i] += e * x[i];
            }
            grad[DIMS] += e;
        }
        for i in 0..=DIMS {
            let decay = if i < DIMS { l2 * w[i] } else { 0.0 };
            w[i] -= 1.0 * (grad[i] / data.len() as f64 + decay);
        }
    }
    w
}

fn accuracy_of(w: &[f64], data: &[(Vec<f64>, u32)]) -> f64 {
    let correct = data
        .iter()
        .filter(|(x, y)| {
            let z = x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + w[DIMS];
            (z >= 0.0) == (*y == 1)
        })
        .count();
    correct as f64 / data.len() as f64
}

fn device_accuracy(device: &Starling, task: &str, data: &[(Vec<f64>, u32)]) -> f64 {
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
fn task(name: &str, aggregation: &str, extra: &str) -> TaskDefinition {
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

const SYNC: &str = r#"{"mode": "synchronous", "target_participants": 10, "min_participants": 5,
    "over_selection": 1.5, "round_deadline_ms": 60000}"#;

/// Opens `n` devices, each with its share of `data`.
fn fleet(
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
fn train_until(devices: &[Starling], task: &str, versions: u64) -> u64 {
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

fn history(server: &TestServer, task: &str) -> serde_json::Value {
    let mut response = ureq::get(format!("{}/v1/learning/{task}/history", server.url()))
        .header("authorization", format!("Bearer {API_KEY}"))
        .call()
        .unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

fn split(data: Vec<(Vec<f64>, u32)>, devices: usize) -> Vec<Vec<(Vec<f64>, u32)>> {
    let per = data.len() / devices;
    data.chunks(per).take(devices).map(<[_]>::to_vec).collect()
}

#[test]
fn federated_training_reaches_centralized_accuracy() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let train = synthetic(&mut rng, 2000);
    let test = synthetic(&mut rng, 4000);
    let central = accuracy_of(&centralized(&train, 1e-4), &test);
    let best = accuracy_of(&TRUE_WEIGHTS, &test);

    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("fl", SYNC, "")]);
    let (devices, _dirs) = fleet(&server.url(), "fl", &split(train, 20));
    train_until(&devices, "fl", 25);

    let federated = device_accuracy(&devices[0], "fl", &test);
    eprintln!("accuracy: best model {best:.4}, centralized {central:.4}, federated {federated:.4}");
    assert!(
        federated >= central - 0.01,
        "federated {federated:.4} is more than one point below centralized {central:.4}"
    );

    // Federated evaluation: devices reported held-out accuracy of the versions they trained
    // from, and it rose from the all-zero start.
    let history = history(&server, "fl");
    let versions = history["versions"].as_array().unwrap();
    let first = versions[0]["evaluation"]["accuracy"].as_f64().unwrap();
    let last = versions
        .iter()
        .rev()
        .find_map(|v| v["evaluation"]["accuracy"].as_f64())
        .unwrap();
    assert!(last > first + 0.1, "held-out accuracy {first} -> {last}");
    assert_eq!(history["rho_total"].as_f64(), Some(0.0), "no central noise");
    // Every round closed at its target.
    assert!(versions[1..]
        .iter()
        .all(|v| v["participants"].as_u64() == Some(10)));
    for device in &devices {
        let status = device.learning_status("fl").unwrap();
        assert!(
            status.updates.iter().all(|u| u.state != "pending"),
            "{status:?}"
        );
    }
}

#[test]
fn central_differential_privacy_stays_within_its_margin_and_is_accounted() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let train = synthetic(&mut rng, 4000);
    let test = synthetic(&mut rng, 4000);
    let central = accuracy_of(&centralized(&train, 1e-4), &test);

    // 40 updates per round, clipped to 1, noise multiplier 1: the noise on each coordinate of a
    // round's mean has sd 1 * 1 / 40 = 0.025; over 15 rounds the weights carry noise of sd
    // about 0.1 per coordinate against true weights of norm 2.9, which costs well under a point
    // of accuracy on average. The margin of 5 points is several standard deviations of that.
    let sync = r#"{"mode": "synchronous", "target_participants": 40, "min_participants": 20,
        "over_selection": 1.0, "round_deadline_ms": 60000}"#;
    let mut definition = task("dp", sync, r#", "central_noise_multiplier": 1.0"#);
    definition.clip_norm = 1.0;
    let server = TestServer::start_with(|c| c.learning_tasks = vec![definition]);
    let (devices, _dirs) = fleet(&server.url(), "dp", &split(train, 40));
    train_until(&devices, "dp", 15);

    let private = device_accuracy(&devices[0], "dp", &test);
    eprintln!("accuracy: centralized {central:.4}, federated with central DP {private:.4}");
    assert!(private >= central - 0.05, "{private} vs {central}");

    // Each release costs rho = 1 / (2 z^2) = 0.5 by opendp's map; zCDP composes by addition.
    let history = history(&server, "dp");
    let versions = history["versions"].as_array().unwrap();
    let released: Vec<f64> = versions[1..]
        .iter()
        .map(|v| v["rho"].as_f64().unwrap())
        .collect();
    assert!(released.len() >= 15);
    assert!(
        released.iter().all(|r| (r - 0.5).abs() < 1e-9),
        "{released:?}"
    );
    let total = history["rho_total"].as_f64().unwrap();
    assert!((total - 0.5 * released.len() as f64).abs() < 1e-9);
    let release = fetch_release(&server, "dp");
    assert!((release.central_rho_total - total).abs() < 1e-9);
}

fn fetch_release(server: &TestServer, task: &str) -> ModelRelease {
    let mut response = ureq::get(format!("{}/v1/learning/{task}/model", server.url()))
        .header("authorization", format!("Bearer {API_KEY}"))
        .call()
        .unwrap();
    ModelRelease::decode(response.body_mut().read_to_vec().unwrap().as_slice()).unwrap()
}

#[test]
fn the_model_is_revalidated_with_its_etag() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("etag", SYNC, "")]);
    let url = format!("{}/v1/learning/etag/model", server.url());
    let auth = format!("Bearer {API_KEY}");
    let first = ureq::get(&url)
        .header("authorization", &auth)
        .call()
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"0.0\"");
    let again = ureq::get(&url)
        .header("authorization", &auth)
        .header("if-none-match", &etag)
        .call()
        .unwrap();
    assert_eq!(again.status(), 304);
    let missing = ureq::get(format!("{}/v1/learning/nope/model", server.url()))
        .header("authorization", &auth)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// Waits until `deadline_ms` (Unix epoch ms) has passed.
fn sleep_past(deadline_ms: i64) {
    let now = now_ms();
    if deadline_ms >= now {
        std::thread::sleep(Duration::from_millis((deadline_ms - now + 50) as u64));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn dropouts_close_the_round_at_its_deadline_or_abandon_it() {
    const DEADLINE_MS: i64 = 2_000;
    let sync = r#"{"mode": "synchronous", "target_participants": 5, "min_participants": 3,
        "over_selection": 1.0, "round_deadline_ms": 2000}"#;
    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("drop", sync, "")]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let (devices, _dirs) = fleet(&server.url(), "drop", &split(synthetic(&mut rng, 500), 5));

    // Start from a round with most of its time ahead (setting the fleet up took some of the
    // first one).
    let mut start = fetch_release(&server, "drop");
    if start.round_deadline_ms - now_ms() < DEADLINE_MS * 3 / 4 {
        sleep_past(start.round_deadline_ms);
        start = fetch_release(&server, "drop");
    }
    let abandoned = history(&server, "drop")["rounds_abandoned"]
        .as_u64()
        .unwrap();

    // Only 3 of 5 take part; the others drop out. At the deadline the round has its minimum.
    for device in &devices[..3] {
        let report = device
            .sync_learning_blocking("drop", Eligibility::ELIGIBLE)
            .unwrap();
        assert!(report.training.as_ref().unwrap().trained, "{report:?}");
    }
    assert_eq!(
        fetch_release(&server, "drop").version,
        0,
        "the round is still open"
    );
    sleep_past(start.round_deadline_ms);
    let release = fetch_release(&server, "drop");
    assert_eq!((release.version, release.round), (1, start.round + 1));

    // Next round: only 2 take part, fewer than the minimum: abandoned, same version, new round.
    for device in &devices[..2] {
        device
            .sync_learning_blocking("drop", Eligibility::ELIGIBLE)
            .unwrap();
    }
    sleep_past(release.round_deadline_ms);
    let after = fetch_release(&server, "drop");
    assert_eq!((after.version, after.round), (1, start.round + 2));
    assert_eq!(
        history(&server, "drop")["rounds_abandoned"].as_u64(),
        Some(abandoned + 1)
    );

    // A device that is not eligible downloads but does not train.
    let busy = Eligibility {
        charging: true,
        unmetered: true,
        idle: false,
    };
    let report = devices[4].sync_learning_blocking("drop", busy).unwrap();
    assert_eq!(report.model_version, Some(1));
    assert!(!report.training.unwrap().trained);
    assert!(devices[4]
        .learning_status("drop")
        .unwrap()
        .updates
        .is_empty());
}

#[test]
fn late_and_stale_updates_are_refused_or_down_weighted() {
    // Synchronous: an update built for a round that closed before it arrived is refused, and the
    // device records the refusal instead of resending.
    let sync = r#"{"mode": "synchronous", "target_participants": 2, "min_participants": 2,
        "over_selection": 2.0, "round_deadline_ms": 60000}"#;
    let asynchronous = r#"{"mode": "asynchronous", "buffer_size": 2, "max_staleness": 1}"#;
    let server = TestServer::start_with(|c| {
        c.learning_tasks = vec![task("late", sync, ""), task("async", asynchronous, "")]
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let (devices, _dirs) = fleet(&server.url(), "late", &split(synthetic(&mut rng, 400), 4));
    let not_now = Eligibility::default();
    devices[0].sync_learning_blocking("late", not_now).unwrap();
    let built = devices[0]
        .train_blocking("late", Eligibility::ELIGIBLE)
        .unwrap();
    assert!(built.trained && built.round == 0);
    for device in &devices[1..3] {
        device
            .sync_learning_blocking("late", Eligibility::ELIGIBLE)
            .unwrap();
    }
    assert_eq!(fetch_release(&server, "late").version, 1);
    let report = devices[0].sync_learning_blocking("late", not_now).unwrap();
    assert_eq!(report.updates_refused, 1, "{report:?}");
    let status = devices[0].learning_status("late").unwrap();
    assert_eq!(status.updates[0].state, "refused");
    assert!(
        status.updates[0].outcome.starts_with("round_closed"),
        "{status:?}"
    );
    assert_eq!(status.updates_refused, 1);

    // Asynchronous: a stale update is accepted at a lower weight; one beyond max_staleness is
    // refused.
    let (devices, _dirs) = fleet(&server.url(), "async", &split(synthetic(&mut rng, 500), 5));
    for device in &devices {
        device.sync_learning_blocking("async", not_now).unwrap();
    }
    // Devices 0 and 1 build updates on version 0 and hold them; 2 and 3 make version 1.
    for device in &devices[..2] {
        assert!(
            device
                .train_blocking("async", Eligibility::ELIGIBLE)
                .unwrap()
                .trained
        );
    }
    for device in &devices[2..4] {
        device
            .sync_learning_blocking("async", Eligibility::ELIGIBLE)
            .unwrap();
    }
    assert_eq!(fetch_release(&server, "async").version, 1);
    let report = devices[0].sync_learning_blocking("async", not_now).unwrap();
    assert_eq!(report.updates_sent, 1);
    let status = devices[0].learning_status("async").unwrap();
    assert_eq!(status.updates[0].outcome, "accepted_stale");
    // Device 4 makes version 2 with device 0's stale update; device 1's is now 2 versions old.
    devices[4]
        .sync_learning_blocking("async", Eligibility::ELIGIBLE)
        .unwrap();
    assert_eq!(fetch_release(&server, "async").version, 2);
    let report = devices[1].sync_learning_blocking("async", not_now).unwrap();
    assert_eq!(report.updates_refused, 1, "{report:?}");
    let status = devices[1].learning_status("async").unwrap();
    assert!(
        status.updates[0].outcome.starts_with("too_stale"),
        "{status:?}"
    );
}

fn post(server: &TestServer, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
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

fn code_of(body: &[u8]) -> String {
    starling_proto::v1::ErrorResponse::decode(body)
        .unwrap()
        .code
}

#[test]
fn malformed_updates_are_refused_with_a_reason() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("bad", SYNC, "")]);
    let admitted = post(
        &server,
        "/v1/learning/bad/checkin",
        CheckIn {
            device_id: "dev-1".into(),
            version: 0,
            examples: 10,
        }
        .encode_to_vec(),
    );
    assert_eq!(admitted.0, 200);
    let good = ModelUpdate {
        update_id: vec![7; 16],
        task: "bad".into(),
        device_id: "dev-1".into(),
        base_version: 0,
        round: 0,
        examples: 10,
        scale: 0.01,
        quantized: vec![10; DIMS + 1],
        clip_norm: 5.0,
        ..Default::default()
    };
    let cases: Vec<(&str, ModelUpdate, u16, &str)> = vec![
        (
            "wrong shape",
            ModelUpdate {
                quantized: vec![1; 3],
                ..good.clone()
            },
            422,
            "wrong_shape",
        ),
        (
            "NaN scale",
            ModelUpdate {
                scale: f32::NAN,
                ..good.clone()
            },
            422,
            "not_finite",
        ),
        (
            "infinite scale",
            ModelUpdate {
                scale: f32::INFINITY,
                ..good.clone()
            },
            422,
            "not_finite",
        ),
        (
            "NaN evaluation",
            ModelUpdate {
                holdout_examples: 3,
                holdout_loss: f64::NAN,
                ..good.clone()
            },
            422,
            "not_finite",
        ),
        // 127 * 1.0 per coordinate: a norm of 311, far beyond the bound of 5.
        (
            "too long",
            ModelUpdate {
                scale: 1.0,
                quantized: vec![127; DIMS + 1],
                ..good.clone()
            },
            422,
            "norm_out_of_bound",
        ),
        (
            "short id",
            ModelUpdate {
                update_id: vec![1; 3],
                ..good.clone()
            },
            422,
            "malformed",
        ),
        (
            "no examples",
            ModelUpdate {
                examples: 0,
                ..good.clone()
            },
            422,
            "malformed",
        ),
        (
            "future round",
            ModelUpdate {
                round: 5,
                ..good.clone()
            },
            422,
            "unknown_round",
        ),
        (
            "not admitted",
            ModelUpdate {
                device_id: "dev-2".into(),
                ..good.clone()
            },
            409,
            "not_admitted",
        ),
        (
            "wrong task",
            ModelUpdate {
                task: "other".into(),
                ..good.clone()
            },
            422,
            "wrong_task",
        ),
    ];
    for (what, update, status, code) in cases {
        let (got, body) = post(&server, "/v1/learning/bad/updates", update.encode_to_vec());
        assert_eq!((got, code_of(&body)), (status, code.to_owned()), "{what}");
    }
    let (got, _) = post(
        &server,
        "/v1/learning/bad/updates",
        b"not protobuf \xff\xff".to_vec(),
    );
    assert_eq!(got, 400);

    // The good one is accepted once; a replay is recognised; a second update of the same device
    // in the same round is refused.
    let (got, body) = post(&server, "/v1/learning/bad/updates", good.encode_to_vec());
    assert_eq!(got, 200);
    let receipt = starling_proto::v1::UpdateReceipt::decode(body.as_slice()).unwrap();
    assert_eq!(receipt.status, "accepted");
    let (_, body) = post(&server, "/v1/learning/bad/updates", good.encode_to_vec());
    assert_eq!(
        starling_proto::v1::UpdateReceipt::decode(body.as_slice())
            .unwrap()
            .status,
        "duplicate"
    );
    let again = ModelUpdate {
        update_id: vec![8; 16],
        ..good
    };
    let (got, body) = post(&server, "/v1/learning/bad/updates", again.encode_to_vec());
    assert_eq!((got, code_of(&body).as_str()), (409, "already_submitted"));

    let history = history(&server, "bad");
    assert_eq!(history["buffered"].as_u64(), Some(1));
    assert_eq!(history["refusals"]["not_finite"].as_u64(), Some(3));
}

const CHILD_DIR: &str = "STARLING_LEARNING_CHILD_DIR";
const CHILD_URL: &str = "STARLING_LEARNING_CHILD_URL";

/// The child's body: downloads the model, stores examples, builds an update, says so, and
/// waits to be killed. Does nothing unless started by the test below.
#[test]
fn learning_child() {
    let (Ok(dir), Ok(url)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_URL)) else {
        return;
    };
    let device = open_device(device_config(std::path::Path::new(&dir), &url));
    device
        .sync_learning_blocking("resume", Eligibility::default())
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    for (x, y) in synthetic(&mut rng, 100) {
        device
            .add_example("resume", &Features::dense(&x), y)
            .unwrap();
    }
    device.flush().unwrap();
    assert!(
        device
            .train_blocking("resume", Eligibility::ELIGIBLE)
            .unwrap()
            .trained
    );
    println!("BUILT");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_device_resumes_without_submitting_twice() {
    let asynchronous = r#"{"mode": "asynchronous", "buffer_size": 10, "max_staleness": 3}"#;
    let server =
        TestServer::start_with(|c| c.learning_tasks = vec![task("resume", asynchronous, "")]);
    let proxy = proxy::FaultyProxy::start(server.server.addr());
    let dir = tempfile::tempdir().unwrap();

    // A real process builds its update, then is killed before it sends it.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "learning_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_URL, proxy.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("BUILT") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "child died"
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Reopened, the device sends the stored update; the server keeps it but the answer is lost.
    let device = open_device(device_config(dir.path(), &proxy.url()));
    let pending = device.learning_status("resume").unwrap();
    assert_eq!(pending.updates.len(), 1);
    assert_eq!(pending.updates[0].state, "pending");
    proxy.misbehave(proxy::Misbehaviour::DropResponse, 1);
    let report = device
        .sync_learning_blocking("resume", Eligibility::default())
        .unwrap();
    assert!(report.last_error.is_some(), "{report:?}");
    assert_eq!(
        device.learning_status("resume").unwrap().updates[0].state,
        "pending"
    );

    // The next sync sends the same bytes; the server recognises them.
    let report = device
        .sync_learning_blocking("resume", Eligibility::ELIGIBLE)
        .unwrap();
    assert_eq!(report.updates_sent, 1, "{report:?}");
    let status = device.learning_status("resume").unwrap();
    assert_eq!(status.updates[0].state, "sent");
    assert_eq!(status.updates[0].outcome, "duplicate");
    assert!(
        status.updates.len() == 1 || status.updates[1].round == status.updates[0].round,
        "no second update for the same round: {status:?}"
    );
    assert_eq!(
        history(&server, "resume")["buffered"].as_u64(),
        Some(1),
        "stored once"
    );
}

#[test]
fn examples_are_bounded_and_predictions_need_a_model() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("bound", SYNC, "")]);
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(device_config(dir.path(), &server.url()));
    assert!(device
        .predict("bound", &Features::dense(&[0.0; DIMS]))
        .is_err());
    device
        .sync_learning_blocking("bound", Eligibility::default())
        .unwrap();
    let p = device
        .predict("bound", &Features::dense(&[0.0; DIMS]))
        .unwrap();
    assert_eq!(p, vec![0.5], "the all-zero model says 0.5");
    assert!(
        device
            .predict("bound", &Features::dense(&[0.0; 2]))
            .is_err(),
        "wrong width"
    );
    assert!(
        device
            .add_example("bound", &Features::dense(&[0.0; DIMS]), 2)
            .is_err(),
        "label 2"
    );
    assert!(device
        .add_example("bound", &Features::dense(&[f64::NAN; DIMS]), 1)
        .is_err());

    // The task keeps 1000 examples: the oldest go and are counted.
    for i in 0..1100 {
        let x = [i as f64 / 1100.0; DIMS];
        device
            .add_example("bound", &Features::dense(&x), (i % 2) as u32)
            .unwrap();
    }
    device.flush().unwrap();
    let status = device.learning_status("bound").unwrap();
    assert_eq!((status.examples, status.examples_evicted), (1000, 100));

    // Withdrawing consent deletes the examples.
    device.set_consent(false).unwrap();
    assert!(matches!(
        device.add_example("bound", &Features::dense(&[0.0; DIMS]), 1),
        Err(starling_core::Error::NoConsent)
    ));
    device.set_consent(true).unwrap();
    assert_eq!(device.learning_status("bound").unwrap().examples, 0);
}

/// `n` examples of 3 classes from a known softmax model over the 5 features.
fn synthetic_softmax(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<(Vec<f64>, u32)> {
    (0..n)
        .map(|_| {
            let x: Vec<f64> = (0..DIMS).map(|_| normal(rng)).collect();
            let scores: Vec<f64> = SOFTMAX_WEIGHTS
                .iter()
                .map(|w| x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + w[DIMS])
                .collect();
            let total: f64 = scores.iter().map(|s| s.exp()).sum();
            let mut u = rng.random::<f64>() * total;
            let mut label = 2;
            for (k, s) in scores.iter().enumerate() {
                u -= s.exp();
                if u <= 0.0 {
                    label = k as u32;
                    break;
                }
            }
            (x, label)
        })
        .collect()
}

const SOFTMAX_WEIGHTS: [[f64; 6]; 3] = [
    [2.0, 0.0, -1.0, 0.5, 0.0, 0.2],
    [-1.0, 2.0, 0.5, 0.0, -0.5, 0.0],
    [0.0, -1.5, 1.0, -1.0, 1.0, -0.2],
];

/// Accuracy of the most likely class under the true softmax model: the best any model can do.
fn softmax_best_accuracy(data: &[(Vec<f64>, u32)]) -> f64 {
    let correct = data
        .iter()
        .filter(|(x, y)| {
            let best = (0..3)
                .max_by(|&a, &b| {
                    let s = |k: usize| {
                        x.iter()
                            .zip(&SOFTMAX_WEIGHTS[k])
                            .map(|(p, q)| p * q)
                            .sum::<f64>()
                            + SOFTMAX_WEIGHTS[k][DIMS]
                    };
                    s(a).total_cmp(&s(b))
                })
                .unwrap();
            best as u32 == *y
        })
        .count();
    correct as f64 / data.len() as f64
}

#[test]
fn softmax_regression_and_fedadam_learn_close_to_the_best_model() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let fedadam = r#", "server_optimizer": {"kind": "fed_adam", "learning_rate": 0.1,
        "beta1": 0.9, "beta2": 0.99, "tau": 0.001}"#;
    let mut softmax = task("softmax", SYNC, "");
    softmax.kind = starling_server::learning::task::Kind::Softmax;
    softmax.classes = 3;
    let server =
        TestServer::start_with(|c| c.learning_tasks = vec![task("adam", SYNC, fedadam), softmax]);

    // Logistic regression with FedAdam on the server.
    let test = synthetic(&mut rng, 4000);
    let best = accuracy_of(&TRUE_WEIGHTS, &test);
    let (devices, _dirs) = fleet(&server.url(), "adam", &split(synthetic(&mut rng, 2000), 20));
    train_until(&devices, "adam", 30);
    let adam = device_accuracy(&devices[0], "adam", &test);
    eprintln!("logistic with FedAdam: best model {best:.4}, federated {adam:.4}");
    assert!(adam >= best - 0.03, "{adam} vs {best}");

    // Softmax regression over 3 classes.
    let test = synthetic_softmax(&mut rng, 4000);
    let best = softmax_best_accuracy(&test);
    let shares = split(synthetic_softmax(&mut rng, 3000), 20);
    let (devices, _dirs) = fleet(&server.url(), "softmax", &shares);
    train_until(&devices, "softmax", 30);
    let correct = test
        .iter()
        .filter(|(x, y)| {
            let p = devices[0].predict("softmax", &Features::dense(x)).unwrap();
            assert_eq!(p.len(), 3);
            let top = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            top as u32 == *y
        })
        .count();
    let federated = correct as f64 / test.len() as f64;
    eprintln!("softmax: best model {best:.4}, federated {federated:.4}");
    assert!(federated >= best - 0.03, "{federated} vs {best}");
}

#[test]
fn over_selection_admits_a_bounded_number_of_devices_per_round() {
    // Target 10, over-selection 1.5: 15 seats.
    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("seats", SYNC, "")]);
    let check_in = |device: &str, version: u64| {
        let (status, body) = post(
            &server,
            "/v1/learning/seats/checkin",
            CheckIn {
                device_id: device.into(),
                version,
                examples: 10,
            }
            .encode_to_vec(),
        );
        assert_eq!(status, 200);
        starling_proto::v1::CheckInAnswer::decode(body.as_slice()).unwrap()
    };
    for i in 0..15 {
        assert!(check_in(&format!("d{i}"), 0).admitted, "seat {i}");
    }
    let full = check_in("d15", 0);
    assert!(!full.admitted);
    assert_eq!(full.reason, "the round is full");
    assert!(
        check_in("d3", 0).admitted,
        "an admitted device keeps its seat"
    );
    let stale = check_in("d16", 7);
    assert!(
        !stale.admitted && stale.reason.contains("version is 0"),
        "{stale:?}"
    );
}

#[test]
fn device_noise_is_recorded_with_each_update_and_accepted_by_the_server() {
    // z_d = 0.5: each update costs rho = 1 / (2 * 0.25) = 2 on the device.
    let asynchronous = r#"{"mode": "asynchronous", "buffer_size": 3, "max_staleness": 2}"#;
    let mut definition = task("noisy", asynchronous, r#", "device_noise_multiplier": 0.5"#);
    definition.clip_norm = 1.0;
    let server = TestServer::start_with(|c| c.learning_tasks = vec![definition]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let (devices, _dirs) = fleet(&server.url(), "noisy", &split(synthetic(&mut rng, 300), 3));
    for device in &devices {
        let report = device
            .sync_learning_blocking("noisy", Eligibility::ELIGIBLE)
            .unwrap();
        assert_eq!(report.updates_sent, 1, "{report:?}");
        let training = report.training.unwrap();
        assert!((training.device_rho - 2.0).abs() < 1e-9, "{training:?}");
        let status = device.learning_status("noisy").unwrap();
        assert_eq!(status.updates[0].state, "sent");
        assert!((status.updates[0].device_rho - 2.0).abs() < 1e-9);
    }
    let history = history(&server, "noisy");
    assert_eq!(history["version"].as_u64(), Some(1), "{history}");
    assert!(
        history["refusals"].as_object().unwrap().is_empty(),
        "{history}"
    );
}
