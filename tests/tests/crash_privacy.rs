//! The privacy ledger under SIGKILL: a child process prepares and sends a week of daily
//! reports for many report definitions and is killed at a random moment. After every kill the
//! reopened ledger must hold each (report, day) at most once (a charge and the deletion of its
//! tallies are one transaction), and finishing the work must bring every (report, day) to the
//! server exactly once, with nothing charged twice.

use std::collections::HashSet;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use starling_core::{Config, Event, ReportKind, ReportSpec, Starling};
use starling_tests::{device_config, open_device, run_child_then_kill, TestServer, APP};

const CHILD_DIR: &str = "STARLING_LEDGER_CRASH_CHILD_DIR";
const CHILD_URL: &str = "STARLING_LEDGER_CRASH_CHILD_URL";
const REPORTS: usize = 30;
const DAYS: i64 = 7;
const DAY_MS: i64 = 24 * 3600 * 1000;

fn today() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now.div_euclid(DAY_MS)
}

fn config(dir: &std::path::Path, url: &str) -> Config {
    let mut config = device_config(dir, url);
    config.privacy.budget.epsilon_per_day = 100.0;
    config.privacy.budget.epsilon_per_week = 1000.0;
    config.privacy.reports = (0..REPORTS)
        .map(|i| ReportSpec {
            name: format!("r{i}"),
            kind: ReportKind::EventCounts {
                events: vec!["open".into()],
                max_per_event: 3,
            },
            epsilon: 0.01,
        })
        .collect();
    config
}

/// The child's body. Does nothing unless started by `the_ledger_survives_sigkill`.
#[test]
fn ledger_crash_child() {
    let (Ok(dir), Ok(url)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_URL)) else {
        return;
    };
    let device = open_device(config(std::path::Path::new(&dir), &url));
    let today = today();
    for day in today - DAYS..today {
        device
            .track(Event::new("open").at(day * DAY_MS + DAY_MS / 2))
            .unwrap();
    }
    device.flush().unwrap();
    println!("READY");
    let outcome = device.send_private_reports().unwrap();
    println!("DONE {} {}", outcome.charged, outcome.sent);
}

/// (report, day) of every receipt, from its outline ("r3 for day 20424: ...").
fn charged(device: &Starling) -> Vec<(String, i64)> {
    device
        .privacy_receipts(10_000)
        .unwrap()
        .iter()
        .map(|r| {
            let (name, rest) = r.outline.split_once(" for day ").unwrap();
            let day = rest.split_once(':').unwrap().0.parse().unwrap();
            (name.to_owned(), day)
        })
        .collect()
}

#[test]
fn the_ledger_survives_sigkill() {
    const ROUNDS: usize = 8;
    let server = TestServer::start();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1ed9e7);
    let mut interrupted = 0;

    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let url = server.url();
        let lines = run_child_then_kill(
            "ledger_crash_child",
            &[
                (CHILD_DIR, dir.path().as_os_str()),
                (CHILD_URL, url.as_ref()),
            ],
            Duration::from_secs(60),
            Duration::from_millis(rng.random_range(0..120)),
        );
        let finished = lines.iter().any(|l| l.contains("DONE"));
        interrupted += !finished as usize;

        let device = Starling::open(config(dir.path(), &server.url())).unwrap();
        let before = charged(&device);
        let unsent = device
            .privacy_receipts(10_000)
            .unwrap()
            .iter()
            .filter(|r| r.sent_ms.is_none())
            .count();
        println!(
            "round {round}: {} charged before the kill, {unsent} of them unsent",
            before.len()
        );
        let distinct: HashSet<_> = before.iter().cloned().collect();
        assert_eq!(
            distinct.len(),
            before.len(),
            "round {round}: a day was charged twice"
        );
        let spent = device.privacy_spent().unwrap();
        assert!(
            (spent.epsilon_week - 0.01 * before.len() as f64).abs() < 1e-6,
            "round {round}: {spent:?} for {} charges",
            before.len()
        );

        // Finishing the work charges only what was not charged before, and sends everything.
        let outcome = device.send_private_reports().unwrap();
        assert_eq!(
            outcome.charged as usize + before.len(),
            REPORTS * DAYS as usize,
            "round {round}: {outcome:?} after {} charges",
            before.len()
        );
        assert!(outcome.send_error.is_none(), "round {round}: {outcome:?}");
        let after = charged(&device);
        assert_eq!(
            after.iter().cloned().collect::<HashSet<_>>().len(),
            after.len()
        );
        assert!(device
            .privacy_receipts(10_000)
            .unwrap()
            .iter()
            .all(|r| r.sent_ms.is_some()));
        device.close().unwrap();
    }

    // Every round's device reported every (report, day) exactly once.
    let today = today();
    for i in 0..REPORTS {
        for day in today - DAYS..today {
            let name = format!("r{i}");
            let stored = server
                .server
                .state()
                .storage()
                .query_blocking(move |s| s.private_reports(APP, &name, day))
                .unwrap()
                .len();
            assert_eq!(
                stored, ROUNDS,
                "r{i} day {day}: {stored} reports from {ROUNDS} devices"
            );
        }
    }
    println!("{ROUNDS} kills, {interrupted} interrupted mid-work");
}
