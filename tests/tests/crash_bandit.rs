//! Bandit learning under SIGKILL: a child process decides and rewards as fast as it can,
//! flushing now and then, and is killed at a random moment. After every kill the database is
//! reopened and what the bandit learned must agree exactly with the decisions it settled: no
//! reward learned twice, none acknowledged and lost, every decision either learned or pending,
//! and one learning example stored with each settled decision.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use starling_core::bandit::{BanditSpec, PolicyKind};
use starling_core::{Config, Starling};
use starling_tests::run_child_then_kill;

const CHILD_DIR: &str = "STARLING_BANDIT_CRASH_CHILD_DIR";

fn config(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir).with_bandit(
        BanditSpec::new(
            "layout",
            PolicyKind::Ucb1 { exploration: 1.0 },
            &["a", "b", "c"],
        )
        .with_window_ms(3_600_000)
        .learning_into("layout_clicks"),
    );
    config.flush_interval_ms = 20;
    config
}

/// The child's body. Does nothing unless started by `learning_survives_sigkill`.
#[test]
fn bandit_crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let device = Starling::open(config(std::path::Path::new(&dir))).unwrap();
    device.set_consent(true).unwrap();
    println!("READY");
    let mut rewarded = 0u64;
    for k in 0u64.. {
        let decision = device.choose("layout", &[]).unwrap();
        // Every seventh decision is left waiting for its reward.
        if k % 7 != 0 {
            device.reward(&decision.id, (k % 2) as f64).unwrap();
            rewarded += 1;
        }
        if k % 10 == 9 {
            device.flush().unwrap();
            // Every reward so far is durable from here on.
            println!("ACK {rewarded}");
        }
    }
}

/// What the reopened database says: (learned pulls, decisions made, pending, settled). Every
/// settled decision stored its learning example in the same transaction: kept or evicted,
/// there are exactly as many.
fn audit(dir: &std::path::Path) -> (f64, u64, u64, u64) {
    let device = Starling::open(config(dir)).unwrap();
    let pulls: f64 = device
        .bandit_arms("layout")
        .unwrap()
        .iter()
        .map(|a| a.pulls)
        .sum();
    let d = device.diagnostics().unwrap();
    let settled = d.rewards_reported + d.rewards_attributed + d.decisions_expired;
    let examples = device.learning_status("layout_clicks").unwrap();
    assert_eq!(
        examples.examples + examples.examples_evicted,
        settled,
        "one example per settled decision"
    );
    (pulls, d.decisions_made, d.decisions_pending, settled)
}

#[test]
fn learning_survives_sigkill() {
    const ROUNDS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xba2d17);
    let mut acknowledged = 0u64;

    for round in 0..ROUNDS {
        let lines = run_child_then_kill(
            "bandit_crash_child",
            &[(CHILD_DIR, dir.path().as_os_str())],
            Duration::from_secs(30),
            Duration::from_millis(rng.random_range(50..400)),
        );
        acknowledged += lines
            .iter()
            .filter_map(|l| l.strip_prefix("ACK ").and_then(|n| n.parse::<u64>().ok()))
            .max()
            .unwrap_or(0);

        let (pulls, made, pending, settled) = audit(dir.path());
        // The state and the counters are written in one transaction: they always agree.
        assert_eq!(
            pulls, settled as f64,
            "round {round}: learned {pulls}, settled {settled}"
        );
        assert_eq!(
            made,
            settled + pending,
            "round {round}: a decision went missing"
        );
        assert!(
            settled >= acknowledged,
            "round {round}: {acknowledged} rewards acknowledged, only {settled} learned"
        );
    }
    assert!(
        acknowledged > 100,
        "the children acknowledged only {acknowledged} rewards"
    );
    let (pulls, made, pending, _) = audit(dir.path());
    println!("{ROUNDS} kills: {acknowledged} rewards acknowledged, {pulls} learned, {made} decisions, {pending} pending");
}
