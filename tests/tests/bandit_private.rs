//! Arm statistics through the private channel, against the real server: noised on the device,
//! charged to the privacy ledger before they leave, sent with the private reports (never as
//! raw events), and folded by the server into the fleet prior a new device starts from.
//!
//! The noise comes from opendp's generator, which cannot be seeded; the tolerances below are
//! derived from its distribution so that a failure is far less likely than one in a million.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_core::bandit::{BanditSpec, PolicyKind, ARM_STATS_EVENT};
use starling_core::privacy::Cost;
use starling_core::{Config, Purpose, Starling};
use starling_tests::{device_config, open_device, sync_until_drained, TestServer, APP};

const ARMS: [&str; 3] = ["list", "grid", "carousel"];

fn click_rate(arm: &str) -> f64 {
    match arm {
        "list" => 0.1,
        "grid" => 0.8,
        _ => 0.2,
    }
}

fn thompson() -> PolicyKind {
    PolicyKind::ThompsonBeta {
        prior_alpha: 1.0,
        prior_beta: 1.0,
    }
}

/// A fleet device explores uniformly, so that every arm gathers pulls to contribute.
fn explorer(epsilon: f64) -> BanditSpec {
    let mut spec = BanditSpec::new("layout", PolicyKind::EpsilonGreedy { epsilon: 1.0 }, &ARMS)
        .with_private_statistics(epsilon);
    spec.private_max_pulls_per_day = 21;
    spec
}

fn private_config(dir: &std::path::Path, url: &str, spec: BanditSpec, budget: f64) -> Config {
    let mut config = device_config(dir, url).with_bandit(spec);
    config.privacy.budget.epsilon_per_day = budget;
    config.privacy.budget.epsilon_per_week = 3.0 * budget;
    config
}

fn play(device: &Starling, decisions: usize, rng: &mut StdRng) {
    for _ in 0..decisions {
        let d = device.choose("layout", &[]).unwrap();
        let clicked = rng.random_bool(click_rate(&d.arm));
        device
            .reward(&d.id, if clicked { 1.0 } else { 0.0 })
            .unwrap();
    }
}

fn stored_arm_stats(server: &TestServer) -> usize {
    server
        .server
        .state()
        .storage()
        .query_blocking(|s| s.private_reports_all_days(APP, "bandit:layout"))
        .unwrap()
        .len()
}

#[test]
fn a_fleet_sharing_privately_gives_a_new_device_a_prior_toward_the_best_arm() {
    let server = TestServer::start_with(|c| c.prior_min_devices = 10);
    let mut rng = StdRng::seed_from_u64(5);
    // Epsilon 60 per device and day lets 30 devices carry a usable signal: the noise scale of
    // each sum is 2 * 21 / 30 = 1.4, a standard deviation of 11 over the fleet, against about
    // 200 pulls per arm. A real fleet spends far less per device and has far more devices (the
    // error shrinks with the square root of their number); docs/bandits.md has the figures.
    let epsilon = 60.0;
    for i in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let device = open_device(private_config(
            dir.path(),
            &server.url(),
            explorer(epsilon),
            epsilon,
        ));
        if i % 2 == 0 {
            // Raw events are not needed: private reports' consent carries the statistics.
            device
                .set_purpose_consent(Purpose::RawEvents, false)
                .unwrap();
        }
        play(&device, 30, &mut rng);
        let report = device.sync().unwrap();
        assert_eq!(report.private_reports.charged, 1, "{report:?}");
        assert_eq!(report.private_reports.sent, 1, "{report:?}");
        assert!(report.private_reports.refused.is_empty(), "{report:?}");
        sync_until_drained(&device, Duration::from_secs(10));

        let receipts = device.privacy_receipts(10).unwrap();
        assert_eq!(receipts.len(), 1, "{receipts:?}");
        let receipt = &receipts[0];
        assert_eq!(receipt.channel, "bandit:layout");
        assert!(receipt.sent_ms.is_some(), "{receipt:?}");
        assert!(receipt.outline.contains("arm statistics of bandit layout"));
        let Cost::Epsilon(cost) = receipt.cost else {
            panic!("charged as {:?}", receipt.cost)
        };
        assert!(cost >= epsilon - 1e-9 && cost < epsilon * 1.001, "{cost}");
        let spent = device.privacy_spent().unwrap();
        assert!((spent.epsilon_day - cost).abs() < 1e-9, "{spent:?}");

        // A second sync the same day releases nothing more.
        play(&device, 5, &mut rng);
        let again = device.sync().unwrap();
        assert_eq!(again.private_reports.charged, 0, "{again:?}");
        assert_eq!(device.privacy_receipts(10).unwrap().len(), 1);

        let events = server.device_events(&device.device_id().unwrap());
        assert!(
            events.iter().all(|e| e.name != ARM_STATS_EVENT),
            "no raw arm statistics leave a private bandit"
        );
    }
    assert_eq!(stored_arm_stats(&server), 30);

    let dir = tempfile::tempdir().unwrap();
    let spec = BanditSpec::new("layout", thompson(), &ARMS);
    let fresh = open_device(device_config(dir.path(), &server.url()).with_bandit(spec));
    sync_until_drained(&fresh, Duration::from_secs(10));
    let arms = fresh.bandit_arms("layout").unwrap();
    assert!(arms.iter().all(|a| a.pulls > 0.0), "{arms:?}");
    // Fleet means: about 0.8, 0.1 and 0.2, with standard deviations of about 0.08, 0.05 and
    // 0.06 (noise and sampling, through the ratio of sums): grid leads the runner-up by six
    // standard deviations of the difference.
    let grid = arms.iter().find(|a| a.name == "grid").unwrap();
    for arm in arms.iter().filter(|a| a.name != "grid") {
        assert!(arm.mean() < grid.mean(), "{arms:?}");
    }
    // Left unrewarded, each of the first decisions is drawn from the prior alone: grid wins
    // with probability above 0.9 even three standard deviations off, where a cold start picks
    // it a third of the time (more than 50 of 100 is then 3.5 standard deviations away).
    let grid_first = (0..100)
        .filter(|_| fresh.choose("layout", &[]).unwrap().arm == "grid")
        .count();
    assert!(
        grid_first > 50,
        "grid chosen {grid_first} of the first 100 times"
    );
}

#[test]
fn a_budget_too_small_refuses_the_release_and_sends_nothing() {
    let server = TestServer::start_with(|c| c.prior_min_devices = 1);
    let mut rng = StdRng::seed_from_u64(8);
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(private_config(
        dir.path(),
        &server.url(),
        explorer(1.0),
        0.5,
    ));
    play(&device, 20, &mut rng);
    let report = device.sync().unwrap();
    assert_eq!(report.private_reports.charged, 0, "{report:?}");
    assert_eq!(report.private_reports.sent, 0, "{report:?}");
    assert_eq!(report.private_reports.refused.len(), 1, "{report:?}");
    let reason = &report.private_reports.refused[0];
    assert!(
        reason.contains("arm statistics of bandit layout") && reason.contains("epsilon per day"),
        "{reason}"
    );
    sync_until_drained(&device, Duration::from_secs(10));
    assert!(device.privacy_receipts(10).unwrap().is_empty());
    assert_eq!(device.privacy_spent().unwrap().epsilon_day, 0.0);
    assert_eq!(stored_arm_stats(&server), 0);
    let events = server.device_events(&device.device_id().unwrap());
    assert!(events.iter().all(|e| e.name != ARM_STATS_EVENT));

    // Without consent for private reports nothing is tried, whatever the budget.
    device
        .set_purpose_consent(Purpose::PrivateReports, false)
        .unwrap();
    let report = device.sync().unwrap();
    assert!(report.private_reports.refused.is_empty(), "{report:?}");
    assert_eq!(stored_arm_stats(&server), 0);
}

#[test]
fn a_release_charged_while_the_server_is_away_is_resent_after_a_restart_at_no_cost() {
    let server = TestServer::start_with(|c| c.prior_min_devices = 1);
    let mut rng = StdRng::seed_from_u64(13);
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: the release is charged, then its upload fails.
    let away = open_device(private_config(
        dir.path(),
        "http://127.0.0.1:1",
        explorer(1.0),
        1.0,
    ));
    play(&away, 20, &mut rng);
    let report = away.send_private_reports().unwrap();
    assert_eq!(report.charged, 1, "{report:?}");
    assert_eq!(report.sent, 0, "{report:?}");
    assert!(report.send_error.is_some(), "{report:?}");
    let receipts = away.privacy_receipts(10).unwrap();
    assert_eq!(receipts.len(), 1);
    assert!(receipts[0].sent_ms.is_none(), "{receipts:?}");
    let spent = away.privacy_spent().unwrap().epsilon_day;
    drop(away);

    let back = Starling::open(private_config(
        dir.path(),
        &server.url(),
        explorer(1.0),
        1.0,
    ))
    .unwrap();
    let report = back.sync().unwrap();
    assert_eq!(report.private_reports.charged, 0, "{report:?}");
    assert_eq!(report.private_reports.sent, 1, "{report:?}");
    let receipts = back.privacy_receipts(10).unwrap();
    assert_eq!(receipts.len(), 1, "charged once: {receipts:?}");
    assert!(receipts[0].sent_ms.is_some(), "{receipts:?}");
    assert_eq!(back.privacy_spent().unwrap().epsilon_day, spent);
    assert_eq!(stored_arm_stats(&server), 1);
}
