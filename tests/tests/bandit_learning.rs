//! Bandits feeding federated learning, end to end: settled decisions become examples of the
//! bandit's learning task (exact features and labels, read back from the device database),
//! nothing is stored without consent for federated learning, and a fleet trained on
//! bandit-produced examples ranks the truly better arm first through `predict_arms`.

use std::path::Path;

use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_core::bandit::{BanditSpec, PolicyKind};
use starling_core::learning::{arm_category, Eligibility};
use starling_core::privacy::Purpose;
use starling_core::{Config, Event, Starling};
use starling_proto::v1::StoredExample;
use starling_server::learning::TaskDefinition;
use starling_tests::learning::train_until;
use starling_tests::{device_config, open_device, TestServer};

/// The examples of `task` stored in the device database at `dir`, oldest first.
fn stored_examples(dir: &Path, task: &str) -> Vec<(StoredExample, u32)> {
    let conn = rusqlite::Connection::open(dir.join("starling.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT example, label FROM learning_examples WHERE task = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([task], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, u32>(1)?))
    })
    .unwrap()
    .map(|row| {
        let (bytes, label) = row.unwrap();
        (StoredExample::decode(bytes.as_slice()).unwrap(), label)
    })
    .collect()
}

fn linucb_offer(window_ms: u64) -> BanditSpec {
    BanditSpec::new(
        "offer",
        PolicyKind::LinUcb {
            dims: 2,
            alpha: 1.0,
            ridge: 1.0,
        },
        &["list", "grid"],
    )
    .with_window_ms(window_ms)
    .learning_into("offer_clicks")
}

fn local_device(dir: &Path, spec: BanditSpec) -> Starling {
    let mut config = Config::new(dir);
    config.flush_interval_ms = 20;
    config.bandits = vec![spec];
    open_device(config)
}

#[test]
fn rewarded_and_expired_decisions_become_labelled_examples() {
    let dir = tempfile::tempdir().unwrap();
    let device = local_device(dir.path(), linucb_offer(60_000));
    let clicked = device.choose("offer", &[0.5, -1.0]).unwrap();
    let ignored = device.choose("offer", &[2.0, 0.25]).unwrap();
    assert!(device.reward(&clicked.id, 1.0).unwrap());
    assert!(device.reward(&ignored.id, 0.0).unwrap());
    device.flush().unwrap();

    let examples = stored_examples(dir.path(), "offer_clicks");
    assert_eq!(examples.len(), 2, "{examples:?}");
    assert_eq!(examples[0].0.values, vec![0.5, -1.0]);
    assert_eq!(
        examples[0].0.categories,
        vec![format!("arm={}", clicked.arm)]
    );
    assert!(examples[0].0.signals.is_empty());
    assert_eq!(examples[0].1, 1);
    assert_eq!(examples[1].0.values, vec![2.0, 0.25]);
    assert_eq!(examples[1].0.categories, vec![arm_category(&ignored.arm)]);
    assert_eq!(examples[1].1, 0);
    assert_eq!(device.learning_status("offer_clicks").unwrap().examples, 2);
    drop(device);

    // A decision whose window closes without a reward is a label-0 example.
    let dir = tempfile::tempdir().unwrap();
    let device = local_device(dir.path(), linucb_offer(50));
    let lapsed = device.choose("offer", &[-3.0, 1.5]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(120));
    device.flush().unwrap();
    let examples = stored_examples(dir.path(), "offer_clicks");
    assert_eq!(examples.len(), 1, "{examples:?}");
    assert_eq!(examples[0].0.values, vec![-3.0, 1.5]);
    assert_eq!(examples[0].0.categories, vec![arm_category(&lapsed.arm)]);
    assert_eq!(examples[0].1, 0);
    // A reward after expiry is late: no second example.
    assert!(!device.reward(&lapsed.id, 1.0).unwrap());
    device.flush().unwrap();
    assert_eq!(stored_examples(dir.path(), "offer_clicks").len(), 1);
}

#[test]
fn an_attributed_reward_is_a_label_one_example_of_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let spec = linucb_offer(60_000).rewarded_by("purchase", Some("amount"));
    let device = local_device(dir.path(), spec);
    let bought = device.choose("offer", &[1.0, 0.0]).unwrap();
    device
        .track(Event::new("purchase").with("amount", 4.5))
        .unwrap();
    device.flush().unwrap();
    let examples = stored_examples(dir.path(), "offer_clicks");
    assert_eq!(examples.len(), 1, "{examples:?}");
    assert_eq!(examples[0].0.values, vec![1.0, 0.0]);
    assert_eq!(examples[0].0.categories, vec![arm_category(&bought.arm)]);
    assert_eq!(examples[0].1, 1);
    // The attributed decision is settled: a reward from the app now is late, no new example.
    assert!(!device.reward(&bought.id, 0.0).unwrap());
    device.flush().unwrap();
    assert_eq!(stored_examples(dir.path(), "offer_clicks").len(), 1);
}

#[test]
fn no_examples_without_consent_for_federated_learning() {
    let dir = tempfile::tempdir().unwrap();
    let device = local_device(dir.path(), linucb_offer(60_000));
    device
        .set_purpose_consent(Purpose::FederatedLearning, false)
        .unwrap();
    let decision = device.choose("offer", &[1.0, 1.0]).unwrap();
    assert!(device.reward(&decision.id, 1.0).unwrap());
    device.flush().unwrap();
    assert!(stored_examples(dir.path(), "offer_clicks").is_empty());
    // The bandit itself still learned: personalization was not withdrawn.
    let pulls: f64 = device
        .bandit_arms("offer")
        .unwrap()
        .iter()
        .map(|a| a.pulls)
        .sum();
    assert_eq!(pulls, 1.0);

    // Granted again: the next settled decision is stored.
    device
        .set_purpose_consent(Purpose::FederatedLearning, true)
        .unwrap();
    let decision = device.choose("offer", &[1.0, 2.0]).unwrap();
    assert!(device.reward(&decision.id, 1.0).unwrap());
    device.flush().unwrap();
    let examples = stored_examples(dir.path(), "offer_clicks");
    assert_eq!(examples.len(), 1);
    assert_eq!(examples[0].0.values, vec![1.0, 2.0]);

    // Withdrawn with a settled decision perhaps not yet committed: the stored example and
    // the uncommitted one both go.
    let decision = device.choose("offer", &[3.0, 4.0]).unwrap();
    assert!(device.reward(&decision.id, 1.0).unwrap());
    device
        .set_purpose_consent(Purpose::FederatedLearning, false)
        .unwrap();
    device.flush().unwrap();
    assert!(stored_examples(dir.path(), "offer_clicks").is_empty());
}

/// Click probability of each arm in the simulated environment: "grid" is truly better.
const TRUTH: [(&str, f64); 2] = [("list", 0.3), ("grid", 0.7)];

fn click_task() -> TaskDefinition {
    let json = r#"{
        "name": "offer_clicks",
        "kind": "logistic",
        "features": {"dense_features": 1, "hash_buckets": 16},
        "training": {"epochs": 3, "batch_size": 10, "learning_rate": 0.2, "l2": 0.0001,
                     "min_examples": 5, "holdout_percent": 20, "max_examples": 1000},
        "clip_norm": 5.0,
        "aggregation": {"mode": "synchronous", "target_participants": 10,
            "min_participants": 5, "over_selection": 1.5, "round_deadline_ms": 60000}
    }"#;
    let task: TaskDefinition = serde_json::from_str(json).unwrap();
    task.validate().unwrap();
    task
}

#[test]
fn a_fleet_trained_on_bandit_examples_ranks_the_better_arm_first() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![click_task()]);
    // A uniformly exploring bandit (epsilon 1), so that both arms are seen equally often.
    let spec = BanditSpec::new(
        "offer",
        PolicyKind::EpsilonGreedy { epsilon: 1.0 },
        &["list", "grid"],
    )
    .learning_into("offer_clicks");
    let mut rng = StdRng::seed_from_u64(41);
    let mut devices = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let mut config = device_config(dir.path(), &server.url());
        config.bandits = vec![spec.clone()];
        let device = open_device(config);
        for _ in 0..100 {
            // The context is noise the truth does not depend on.
            let x = rng.random::<f64>() * 2.0 - 1.0;
            let decision = device.choose("offer", &[x]).unwrap();
            let p = TRUTH.iter().find(|(a, _)| *a == decision.arm).unwrap().1;
            let reward = f64::from(u8::from(rng.random::<f64>() < p));
            assert!(device.reward(&decision.id, reward).unwrap());
        }
        device.flush().unwrap();
        assert_eq!(
            device.learning_status("offer_clicks").unwrap().examples,
            100
        );
        devices.push(device);
        dirs.push(dir);
    }
    // Before a model was downloaded there is nothing to predict with.
    assert!(devices[0]
        .predict_arms("offer", "offer_clicks", &[0.0])
        .is_err());
    train_until(&devices, "offer_clicks", 6);
    // Devices that trained hold a model; a last learning sync brings the latest one.
    devices[0]
        .sync_learning_blocking("offer_clicks", Eligibility::default())
        .unwrap();

    for x in [-0.8, 0.0, 0.8] {
        let scored = devices[0]
            .predict_arms("offer", "offer_clicks", &[x])
            .unwrap();
        let arms: Vec<&str> = scored.iter().map(|s| s.arm.as_str()).collect();
        assert_eq!(arms, ["list", "grid"], "configuration order");
        let (list, grid) = (scored[0].probability, scored[1].probability);
        eprintln!("context {x}: P(click | list) = {list:.3}, P(click | grid) = {grid:.3}");
        // 1000 examples, about 500 per arm: the empirical click rates have a standard error
        // of about 0.02, so the true gap of 0.4 leaves the ranking beyond doubt and a trained
        // model at least a 0.15 gap.
        assert!(grid > list + 0.15, "grid {grid:.3} vs list {list:.3}");
    }
}
