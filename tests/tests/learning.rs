//! Federated learning end to end, accuracy: real devices (each a `Starling` with its own
//! database) and the real server on loopback, on synthetic data with a known best model.
//! Features are standard normal and labels are drawn from a logistic (or softmax) model with
//! known weights, so the best achievable accuracy and a centralized logistic regression on the
//! pooled data are the yardsticks for the federated models.

use rand::{Rng, SeedableRng};
use starling_core::learning::Features;
use starling_tests::learning::*;
use starling_tests::TestServer;

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
