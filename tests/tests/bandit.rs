//! Bandit decisions through the real SDK: chosen from memory, logged with their propensity,
//! rewarded by the app or by an event inside the window, expired to 0, persisted across a
//! restart, and sent to the real server as decision logs and per-arm statistics.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_core::bandit::{BanditSpec, PolicyKind, ARM_STATS_EVENT, DECISION_EVENT};
use starling_core::{Config, Error, Event, Starling};
use starling_tests::{device_config, open_device, sync_until_drained, TestServer};

const ARMS: [&str; 3] = ["list", "grid", "carousel"];

fn thompson() -> PolicyKind {
    PolicyKind::ThompsonBeta {
        prior_alpha: 1.0,
        prior_beta: 1.0,
    }
}

fn local_config(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir);
    config.flush_interval_ms = 20;
    config
}

/// Waits until `done` holds, for at most five seconds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn decisions_are_rewarded_learned_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path()).with_bandit(BanditSpec::new("layout", thompson(), &ARMS));
    let device = open_device(config);

    let decision = device.choose("layout", &[]).unwrap();
    assert!(ARMS.contains(&decision.arm.as_str()));
    assert!(decision.propensity > 0.0 && decision.propensity <= 1.0);
    assert_eq!(decision.bandit, "layout");

    assert!(
        device.reward(&decision.id, 1.0).unwrap(),
        "first reward applies"
    );
    assert!(
        !device.reward(&decision.id, 1.0).unwrap(),
        "a second reward for the same decision is late"
    );
    device.flush().unwrap();
    let arms = device.bandit_arms("layout").unwrap();
    let chosen = arms.iter().find(|a| a.name == decision.arm).unwrap();
    assert_eq!(chosen.pulls, 1.0);
    assert_eq!(chosen.reward_sum, 1.0);
    let others: f64 = arms
        .iter()
        .filter(|a| a.name != decision.arm)
        .map(|a| a.pulls)
        .sum();
    assert_eq!(others, 0.0);

    let d = device.diagnostics().unwrap();
    assert_eq!(d.decisions_made, 1);
    assert_eq!(d.rewards_reported, 1);
    assert_eq!(d.rewards_late, 1);
    assert_eq!(d.decisions_pending, 0);
}

#[test]
fn bad_calls_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let linucb = PolicyKind::LinUcb {
        dims: 2,
        alpha: 1.0,
        ridge: 1.0,
    };
    let config = local_config(dir.path())
        .with_bandit(BanditSpec::new("layout", thompson(), &ARMS))
        .with_bandit(BanditSpec::new("feed", linucb, &ARMS));
    let device = open_device(config);

    assert!(matches!(device.choose("nope", &[]), Err(Error::UnknownBandit(n)) if n == "nope"));
    assert!(matches!(device.choose("feed", &[1.0]), Err(Error::Bandit(m)) if m.contains("2")));
    assert!(matches!(
        device.choose("feed", &[1.0, f64::NAN]),
        Err(Error::Bandit(_))
    ));
    assert!(matches!(
        device.reward("not-an-id", 1.0),
        Err(Error::UnknownDecision(_))
    ));
    let decision = device.choose("layout", &[]).unwrap();
    assert!(
        matches!(device.reward(&decision.id, 5.0), Err(Error::Bandit(m)) if m.contains("[0, 1]"))
    );
    assert!(matches!(
        device.reward(&decision.id, f64::INFINITY),
        Err(Error::Bandit(_))
    ));
    // A refused reward leaves the decision waiting for a valid one.
    assert!(device.reward(&decision.id, 0.0).unwrap());

    // Configurations that cannot work are refused when opening.
    let bad = [
        BanditSpec::new("empty", thompson(), &[]),
        BanditSpec::new("twice", thompson(), &["a", "a"]),
        BanditSpec::new("comma", thompson(), &["a,b"]),
        BanditSpec::new("reserved", thompson(), &ARMS).rewarded_by("starling.decision", None),
        BanditSpec::new("signal", thompson(), &ARMS).with_context_signals(&["missing"]),
    ];
    for spec in bad {
        let name = spec.name.clone();
        let dir = tempfile::tempdir().unwrap();
        let result = Starling::open(local_config(dir.path()).with_bandit(spec));
        assert!(
            matches!(result, Err(Error::Config(ref m)) if m.contains(&name)),
            "{name}: {result:?}"
        );
    }
    // Without consent nothing is decided (nothing could be logged).
    let dir = tempfile::tempdir().unwrap();
    let device = Starling::open(local_config(dir.path()).with_bandit(BanditSpec::new(
        "layout",
        thompson(),
        &ARMS,
    )))
    .unwrap();
    assert!(matches!(
        device.choose("layout", &[]),
        Err(Error::NoConsent)
    ));
}

#[test]
fn reward_events_are_attributed_to_the_latest_decision_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let spec = BanditSpec::new("offer", PolicyKind::Ucb1 { exploration: 1.0 }, &ARMS)
        .rewarded_by("purchase", Some("amount"))
        .with_window_ms(60_000);
    let device = open_device(local_config(dir.path()).with_bandit(spec));

    let first = device.choose("offer", &[]).unwrap();
    let second = device.choose("offer", &[]).unwrap();
    device
        .track(Event::new("purchase").with("amount", 4.5))
        .unwrap();
    // A purchase without its value says nothing about the reward.
    device.track(Event::new("purchase")).unwrap();
    device.flush().unwrap();

    let arms = device.bandit_arms("offer").unwrap();
    let rewarded: Vec<_> = arms.iter().filter(|a| a.reward_sum > 0.0).collect();
    assert_eq!(rewarded.len(), 1);
    assert_eq!(
        rewarded[0].name, second.arm,
        "the latest decision gets the credit"
    );
    assert_eq!(rewarded[0].reward_sum, 4.5);
    assert!(
        !device.reward(&second.id, 1.0).unwrap(),
        "already attributed"
    );
    assert!(device.reward(&first.id, 2.0).unwrap(), "still waiting");
    let d = device.diagnostics().unwrap();
    assert_eq!((d.rewards_attributed, d.rewards_reported), (1, 1));
}

#[test]
fn decisions_without_a_reward_expire_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let spec = BanditSpec::new("layout", thompson(), &ARMS).with_window_ms(100);
    let device = open_device(local_config(dir.path()).with_bandit(spec));
    let decision = device.choose("layout", &[]).unwrap();
    // The writer wakes up by itself when the window closes.
    eventually("the decision expires", || {
        device.diagnostics().unwrap().decisions_expired == 1
    });
    let arm = device
        .bandit_arms("layout")
        .unwrap()
        .into_iter()
        .find(|a| a.name == decision.arm)
        .unwrap();
    assert_eq!((arm.pulls, arm.reward_sum), (1.0, 0.0));
    assert!(!device.reward(&decision.id, 1.0).unwrap(), "too late");
    assert_eq!(device.diagnostics().unwrap().rewards_late, 1);
}

#[test]
fn learning_and_pending_decisions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        local_config(dir.path()).with_bandit(BanditSpec::new(
            "layout",
            PolicyKind::LinUcb {
                dims: 2,
                alpha: 1.0,
                ridge: 1.0,
            },
            &ARMS,
        ))
    };
    let (learned, pending_id) = {
        let device = open_device(config());
        for i in 0..20 {
            let d = device.choose("layout", &[1.0, i as f64 / 20.0]).unwrap();
            device
                .reward(&d.id, if d.arm == "grid" { 1.0 } else { 0.0 })
                .unwrap();
        }
        let pending = device.choose("layout", &[0.5, 0.5]).unwrap();
        device.flush().unwrap();
        (device.bandit_arms("layout").unwrap(), pending.id)
    };
    let device = Starling::open(config()).unwrap();
    assert_eq!(device.bandit_arms("layout").unwrap(), learned);
    assert_eq!(device.diagnostics().unwrap().decisions_pending, 1);
    assert!(
        device.reward(&pending_id, 1.0).unwrap(),
        "rewarded after the restart"
    );

    // Retiring an arm in the configuration keeps what the others learned.
    drop(device);
    let config = local_config(dir.path()).with_bandit(BanditSpec::new(
        "layout",
        PolicyKind::LinUcb {
            dims: 2,
            alpha: 1.0,
            ridge: 1.0,
        },
        &["list", "grid"],
    ));
    let device = Starling::open(config).unwrap();
    let arms = device.bandit_arms("layout").unwrap();
    let carousel = arms.iter().find(|a| a.name == "carousel").unwrap();
    assert!(!carousel.active);
    let grid = arms.iter().find(|a| a.name == "grid").unwrap();
    assert!(grid.reward_sum >= 1.0);
    for _ in 0..50 {
        assert_ne!(
            device.choose("layout", &[1.0, 0.5]).unwrap().arm,
            "carousel"
        );
    }
}

#[test]
fn withdrawing_consent_forgets_what_was_learned() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        || local_config(dir.path()).with_bandit(BanditSpec::new("layout", thompson(), &ARMS));
    let device = open_device(config());
    let d = device.choose("layout", &[]).unwrap();
    device.reward(&d.id, 1.0).unwrap();
    device.choose("layout", &[]).unwrap();
    device.flush().unwrap();
    device.set_consent(false).unwrap();
    let learned: f64 = device
        .bandit_arms("layout")
        .unwrap()
        .iter()
        .map(|a| a.pulls)
        .sum();
    assert_eq!(learned, 0.0);
    assert_eq!(device.diagnostics().unwrap().decisions_pending, 0);
    drop(device);
    let device = Starling::open(config()).unwrap();
    let learned: f64 = device
        .bandit_arms("layout")
        .unwrap()
        .iter()
        .map(|a| a.pulls)
        .sum();
    assert_eq!(learned, 0.0, "nothing learned comes back after a restart");
    assert_eq!(device.diagnostics().unwrap().decisions_pending, 0);
}

#[test]
fn the_bandit_learns_the_best_arm_from_attributed_clicks() {
    let dir = tempfile::tempdir().unwrap();
    let spec = BanditSpec::new("layout", thompson(), &ARMS)
        .rewarded_by("click", None)
        .with_window_ms(60_000);
    let device = open_device(local_config(dir.path()).with_bandit(spec));
    let click_rate = |arm: &str| match arm {
        "list" => 0.1,
        "grid" => 0.5,
        _ => 0.2,
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut best_late = 0;
    let rounds = 600;
    for round in 0..rounds {
        let decision = device.choose("layout", &[]).unwrap();
        if rng.random_bool(click_rate(&decision.arm)) {
            device.track(Event::new("click")).unwrap();
        } else {
            device.reward(&decision.id, 0.0).unwrap();
        }
        // Each click must be attributed before the next decision, as in an app where the
        // user acts between two screens.
        device.flush().unwrap();
        if round >= rounds - 200 && decision.arm == "grid" {
            best_late += 1;
        }
    }
    // Uniform choice would pick "grid" a third of the time (about 67 of 200); Thompson
    // sampling, with a gap of 0.3 in click rate, settles on it.
    assert!(
        best_late > 150,
        "grid chosen {best_late} of the last 200 times"
    );
    let d = device.diagnostics().unwrap();
    assert_eq!(d.decisions_made, rounds);
    assert_eq!(d.rewards_attributed + d.rewards_reported, rounds);
}

#[test]
fn decision_logs_and_arm_statistics_reach_the_server() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = BanditSpec::new(
        "feed",
        PolicyKind::LinUcb {
            dims: 2,
            alpha: 1.0,
            ridge: 1.0,
        },
        &ARMS,
    );
    let device = open_device(device_config(dir.path(), &server.url()).with_bandit(spec));
    let mut rewards = std::collections::BTreeMap::<String, (f64, f64)>::new();
    for i in 0..10 {
        let d = device.choose("feed", &[1.0, i as f64]).unwrap();
        let reward = i as f64 / 10.0;
        device.reward(&d.id, reward).unwrap();
        let entry = rewards.entry(d.arm.clone()).or_default();
        entry.0 += 1.0;
        entry.1 += reward;
    }
    let open = device.choose("feed", &[0.0, 0.0]).unwrap();
    sync_until_drained(&device, Duration::from_secs(10));

    let events = server.device_events(&device.device_id().unwrap());
    let decisions: Vec<_> = events.iter().filter(|e| e.name == DECISION_EVENT).collect();
    assert_eq!(decisions.len(), 10, "only settled decisions are logged");
    for (i, e) in decisions.iter().enumerate() {
        let p = &e.properties;
        assert_eq!(p["bandit"], "feed");
        assert_eq!(p["policy"], "linucb");
        assert_eq!(p["outcome"], "reported");
        assert_eq!(p["arms"], "list,grid,carousel");
        assert_eq!(p["context"], format!("1,{i}"));
        assert_eq!(p["reward"].as_f64().unwrap(), i as f64 / 10.0);
        let propensity = p["propensity"].as_f64().unwrap();
        assert!(propensity > 0.0 && propensity <= 1.0);
        assert_ne!(p["decision"], open.id.as_str());
    }
    let stats: Vec<_> = events
        .iter()
        .filter(|e| e.name == ARM_STATS_EVENT)
        .collect();
    assert_eq!(
        stats.len(),
        rewards.len(),
        "one statistics event per arm played"
    );
    for e in stats {
        let p = &e.properties;
        let (pulls, sum) = rewards[p["arm"].as_str().unwrap()];
        assert_eq!(p["pulls"].as_f64().unwrap(), pulls);
        assert!((p["reward_sum"].as_f64().unwrap() - sum).abs() < 1e-9);
        assert_eq!(p["noised"], false);
    }
    // Statistics are deltas: a second sync with nothing new sends none.
    sync_until_drained(&device, Duration::from_secs(10));
    let again = server.device_events(&device.device_id().unwrap());
    assert_eq!(again.len(), events.len());
}

#[test]
fn a_new_device_starts_from_the_fleet_prior() {
    let server = TestServer::start_with(|c| c.prior_min_devices = 3);
    let click_rate = |arm: &str| match arm {
        "list" => 0.1,
        "grid" => 0.6,
        _ => 0.2,
    };
    let spec = || BanditSpec::new("layout", thompson(), &ARMS);
    let mut rng = StdRng::seed_from_u64(11);
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();

    // A fresh device before the fleet has contributed: no prior is published yet.
    let early = open_device(device_config(dirs[3].path(), &server.url()).with_bandit(spec()));
    sync_until_drained(&early, Duration::from_secs(10));
    assert!(early
        .bandit_arms("layout")
        .unwrap()
        .iter()
        .all(|a| a.pulls == 0.0));

    for dir in &dirs[..3] {
        let device = open_device(device_config(dir.path(), &server.url()).with_bandit(spec()));
        for _ in 0..200 {
            let d = device.choose("layout", &[]).unwrap();
            let clicked = rng.random_bool(click_rate(&d.arm));
            device
                .reward(&d.id, if clicked { 1.0 } else { 0.0 })
                .unwrap();
        }
        sync_until_drained(&device, Duration::from_secs(10));
    }

    let dir = tempfile::tempdir().unwrap();
    let fresh = open_device(device_config(dir.path(), &server.url()).with_bandit(spec()));
    sync_until_drained(&fresh, Duration::from_secs(10));
    let arms = fresh.bandit_arms("layout").unwrap();
    for arm in &arms {
        assert!(
            arm.pulls > 0.0 && arm.pulls <= 20.0,
            "{}: {} pseudo-pulls, capped at 20",
            arm.name,
            arm.pulls
        );
    }
    let grid = arms.iter().find(|a| a.name == "grid").unwrap();
    assert!(arms.iter().all(|a| a.mean() <= grid.mean()), "{arms:?}");
    // With the prior, the first decisions already favour the best arm (left unrewarded, so
    // each is drawn from the prior alone: grid wins a draw with probability above 0.99, where
    // a cold start picks it a third of the time).
    let grid_first = (0..100)
        .filter(|_| fresh.choose("layout", &[]).unwrap().arm == "grid")
        .count();
    assert!(
        grid_first > 85,
        "grid chosen {grid_first} of the first 100 times"
    );

    // The device that synced before the prior existed picks it up at its next sync.
    sync_until_drained(&early, Duration::from_secs(10));
    assert!(early
        .bandit_arms("layout")
        .unwrap()
        .iter()
        .all(|a| a.pulls > 0.0));
}
