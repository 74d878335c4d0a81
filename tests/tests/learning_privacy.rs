//! Federated learning under the privacy contract, against the real server on loopback: an
//! update noised on the device is charged to the persistent ledger (rho) before it can leave
//! and shows in the receipts; a spent budget refuses training and nothing is uploaded; a device
//! killed between the charge and the upload resends without a second charge; withdrawing the
//! federated-learning purpose deletes the examples and stops uploads while raw events go on.

use std::time::Duration;

use rand::SeedableRng;
use starling_core::learning::{Eligibility, Features};
use starling_core::privacy::Cost;
use starling_core::{Error, Event, Purpose, Starling};
use starling_server::learning::TaskDefinition;
use starling_tests::learning::*;
use starling_tests::{device_config, open_device, sync_until_drained, ChildTest, TestServer};

/// An asynchronous task whose devices noise their updates with z = 2: opendp's map gives
/// rho = 1 / (2 z^2) = 0.125 per update, a quarter of the default daily rho budget (0.5).
fn noisy_task(name: &str) -> TaskDefinition {
    let asynchronous = r#"{"mode": "asynchronous", "buffer_size": 10, "max_staleness": 3}"#;
    let mut definition = task(name, asynchronous, r#", "device_noise_multiplier": 2.0"#);
    definition.clip_norm = 1.0;
    definition
}

const RHO: f64 = 0.125;

fn add_examples(device: &Starling, task: &str, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for (x, y) in synthetic(&mut rng, 100) {
        device.add_example(task, &Features::dense(&x), y).unwrap();
    }
    device.flush().unwrap();
}

fn learning_receipts(device: &Starling) -> Vec<starling_core::Receipt> {
    device
        .privacy_receipts(100)
        .unwrap()
        .into_iter()
        .filter(|r| r.channel.starts_with("learning:"))
        .collect()
}

fn rho_of(cost: Cost) -> f64 {
    match cost {
        Cost::Rho(rho) => rho,
        other => panic!("a learning update is charged in rho, not {other:?}"),
    }
}

#[test]
fn a_noised_update_is_charged_to_the_ledger_and_shows_in_the_receipts() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![noisy_task("charged")]);
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(device_config(dir.path(), &server.url()));
    device
        .sync_learning_blocking("charged", Eligibility::default())
        .unwrap();
    add_examples(&device, "charged", 21);
    assert_eq!(device.privacy_spent().unwrap().rho_day, 0.0);

    let report = device
        .sync_learning_blocking("charged", Eligibility::ELIGIBLE)
        .unwrap();
    assert_eq!(report.updates_sent, 1, "{report:?}");
    let training = report.training.unwrap();
    assert!((training.device_rho - RHO).abs() < 1e-9, "{training:?}");

    let receipts = learning_receipts(&device);
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    let receipt = &receipts[0];
    assert_eq!(receipt.channel, "learning:charged");
    assert!((rho_of(receipt.cost) - RHO).abs() < 1e-9, "{receipt:?}");
    assert!(receipt.sent_ms.is_some(), "the server has it: {receipt:?}");
    assert!(
        receipt.outline.contains("round 0")
            && receipt.outline.contains("clipped to L2 norm 1")
            && receipt.outline.contains("Gaussian noise"),
        "{}",
        receipt.outline
    );
    let status = device.learning_status("charged").unwrap();
    assert!((status.updates[0].device_rho - rho_of(receipt.cost)).abs() < 1e-12);

    // The spend is in the rho budget, and survives a restart.
    let spent = device.privacy_spent().unwrap();
    assert!((spent.rho_day - RHO).abs() < 1e-9, "{spent:?}");
    assert_eq!(spent.epsilon_day, 0.0, "{spent:?}");
    device.close().unwrap();
    let device = Starling::open(device_config(dir.path(), &server.url())).unwrap();
    assert!((device.privacy_spent().unwrap().rho_day - RHO).abs() < 1e-9);
    assert_eq!(history(&server, "charged")["buffered"].as_u64(), Some(1));
}

#[test]
fn a_spent_rho_budget_refuses_training_and_nothing_is_uploaded() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![noisy_task("tiny")]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), &server.url());
    config.privacy.budget.rho_per_day = 0.1;
    let device = open_device(config);
    device
        .sync_learning_blocking("tiny", Eligibility::default())
        .unwrap();
    add_examples(&device, "tiny", 22);

    let refused = device.train_blocking("tiny", Eligibility::ELIGIBLE);
    let Err(Error::BudgetExceeded(reason)) = &refused else {
        panic!("an update costing {RHO} cannot fit a budget of 0.1: {refused:?}");
    };
    assert!(
        reason.contains("rho per day") && reason.contains("0.125"),
        "{reason}"
    );
    assert!(device.learning_status("tiny").unwrap().updates.is_empty());

    // A sync checks in, trains, is refused by the budget, and uploads nothing.
    let report = device
        .sync_learning_blocking("tiny", Eligibility::ELIGIBLE)
        .unwrap();
    assert_eq!(report.updates_sent, 0, "{report:?}");
    let why = report.training.unwrap().skipped_reason.unwrap();
    assert!(
        why.contains("privacy budget") && why.contains("rho per day"),
        "{why}"
    );
    assert!(device.learning_status("tiny").unwrap().updates.is_empty());
    assert!(learning_receipts(&device).is_empty());
    assert_eq!(device.privacy_spent().unwrap().rho_day, 0.0);
    assert_eq!(history(&server, "tiny")["buffered"].as_u64(), Some(0));
}

const CHILD_DIR: &str = "STARLING_LEARNING_PRIVACY_CHILD_DIR";
const CHILD_URL: &str = "STARLING_LEARNING_PRIVACY_CHILD_URL";

/// The child's body: downloads the model, stores examples, builds (and so charges) a noised
/// update, says so, and waits to be killed. Does nothing unless started by the test below.
#[test]
fn learning_privacy_child() {
    let (Ok(dir), Ok(url)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_URL)) else {
        return;
    };
    let device = open_device(device_config(std::path::Path::new(&dir), &url));
    device
        .sync_learning_blocking("killed", Eligibility::default())
        .unwrap();
    add_examples(&device, "killed", 23);
    assert!(
        device
            .train_blocking("killed", Eligibility::ELIGIBLE)
            .unwrap()
            .trained
    );
    println!("CHARGED");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_device_killed_between_charge_and_upload_is_not_charged_again() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![noisy_task("killed")]);
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let child = ChildTest::spawn(
        "learning_privacy_child",
        &[
            (CHILD_DIR, dir.path().as_os_str()),
            (CHILD_URL, url.as_ref()),
        ],
    );
    child.wait_for("CHARGED", Duration::from_secs(60));
    child.kill(); // SIGKILL

    // Reopened: the charge and the stored update survived together; nothing was sent.
    let device = open_device(device_config(dir.path(), &server.url()));
    let status = device.learning_status("killed").unwrap();
    assert_eq!(status.updates.len(), 1, "{status:?}");
    assert_eq!(status.updates[0].state, "pending");
    let receipts = learning_receipts(&device);
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0].sent_ms, None);
    assert!((device.privacy_spent().unwrap().rho_day - RHO).abs() < 1e-9);
    assert_eq!(history(&server, "killed")["buffered"].as_u64(), Some(0));

    // The resend costs nothing more, and the round's update is not rebuilt.
    let report = device
        .sync_learning_blocking("killed", Eligibility::ELIGIBLE)
        .unwrap();
    assert_eq!(report.updates_sent, 1, "{report:?}");
    let receipts = learning_receipts(&device);
    assert_eq!(receipts.len(), 1, "one charge for one update: {receipts:?}");
    assert!(receipts[0].sent_ms.is_some(), "{receipts:?}");
    assert!((device.privacy_spent().unwrap().rho_day - RHO).abs() < 1e-9);
    assert_eq!(device.learning_status("killed").unwrap().updates.len(), 1);
    assert_eq!(history(&server, "killed")["buffered"].as_u64(), Some(1));
}

#[test]
fn withdrawing_federated_learning_deletes_examples_and_stops_uploads_but_not_raw_events() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![noisy_task("withdrawn")]);
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(device_config(dir.path(), &server.url()));
    device
        .sync_learning_blocking("withdrawn", Eligibility::default())
        .unwrap();
    add_examples(&device, "withdrawn", 24);
    // An update built and charged, not yet sent.
    assert!(
        device
            .train_blocking("withdrawn", Eligibility::ELIGIBLE)
            .unwrap()
            .trained
    );
    assert_eq!(device.learning_status("withdrawn").unwrap().examples, 100);

    device
        .set_purpose_consent(Purpose::FederatedLearning, false)
        .unwrap();
    assert!(device.consent(), "the other purposes stay granted");
    let status = device.learning_status("withdrawn").unwrap();
    assert_eq!(status.examples, 0, "{status:?}");
    assert!(status.updates.is_empty(), "{status:?}");
    assert!(matches!(
        device.add_example("withdrawn", &Features::dense(&[0.0; DIMS]), 1),
        Err(Error::NoConsent)
    ));
    assert!(matches!(
        device.train_blocking("withdrawn", Eligibility::ELIGIBLE),
        Err(Error::NoConsent)
    ));
    assert!(matches!(
        device.sync_learning_blocking("withdrawn", Eligibility::ELIGIBLE),
        Err(Error::NoConsent)
    ));
    assert_eq!(history(&server, "withdrawn")["buffered"].as_u64(), Some(0));
    // The deleted update's charge stays: nothing is refunded.
    assert!((device.privacy_spent().unwrap().rho_day - RHO).abs() < 1e-9);

    // Raw events are recorded and sent as before.
    for i in 0..5 {
        device
            .track(Event::new("open").with("n", i as i64))
            .unwrap();
    }
    device.flush().unwrap();
    let sent = sync_until_drained(&device, Duration::from_secs(10));
    assert_eq!(sent.events_sent, 5, "{sent:?}");
    assert_eq!(server.stats().events, 5);

    // The choice survives a restart; granting again starts from nothing.
    device.close().unwrap();
    let device = Starling::open(device_config(dir.path(), &server.url())).unwrap();
    assert!(!device.purpose_consent(Purpose::FederatedLearning));
    assert!(matches!(
        device.add_example("withdrawn", &Features::dense(&[0.0; DIMS]), 1),
        Err(Error::NoConsent)
    ));
    device
        .set_purpose_consent(Purpose::FederatedLearning, true)
        .unwrap();
    assert_eq!(device.learning_status("withdrawn").unwrap().examples, 0);
    device
        .add_example("withdrawn", &Features::dense(&[0.0; DIMS]), 1)
        .unwrap();
    device.flush().unwrap();
    assert_eq!(device.learning_status("withdrawn").unwrap().examples, 1);
}
