//! The durability contract under SIGKILL: a child process tracks at a high rate, flushes,
//! reports each flush it saw return, and is killed at a random moment (often mid-commit or
//! mid-upload). After every kill the database is reopened; at the end everything is synced,
//! and every event acknowledged by `flush()` must be on the server exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use starling_core::Event;
use starling_tests::*;

const CHILD_DIR: &str = "STARLING_CRASH_CHILD_DIR";
const CHILD_URL: &str = "STARLING_CRASH_CHILD_URL";
const CHILD_ROUND: &str = "STARLING_CRASH_CHILD_ROUND";
/// Each round numbers its events from `round * ROUND_SPAN`, so numbers never collide.
const ROUND_SPAN: i64 = 10_000_000;

/// The child's body. Does nothing unless started by `acknowledged_events_survive_sigkill`.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(url), Ok(round)) = (
        std::env::var(CHILD_DIR),
        std::env::var(CHILD_URL),
        std::env::var(CHILD_ROUND),
    ) else {
        return;
    };
    let round: i64 = round.parse().unwrap();
    let mut config = device_config(std::path::Path::new(&dir), &url);
    config.batch_max_events = 200;
    let device = open_device(config);
    println!("READY");
    let mut n = round * ROUND_SPAN;
    loop {
        for _ in 0..50 {
            device
                .track(Event::new("tick").with("n", n).with("screen", "home"))
                .unwrap();
            n += 1;
        }
        device.flush().unwrap();
        // Everything below n is durable from here on.
        println!("ACK {n}");
        if n % 1000 == 0 {
            let _ = device.sync();
        }
    }
}

#[test]
fn acknowledged_events_survive_sigkill() {
    const ROUNDS: i64 = 20;
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    // For each round, the highest n below which all events were acknowledged.
    let mut acknowledged: BTreeMap<i64, i64> = BTreeMap::new();

    for round in 1..=ROUNDS {
        let url = server.url();
        let round_text = round.to_string();
        let lines = run_child_then_kill(
            "crash_child",
            &[
                (CHILD_DIR, dir.path().as_os_str()),
                (CHILD_URL, url.as_ref()),
                (CHILD_ROUND, round_text.as_ref()),
            ],
            Duration::from_secs(30),
            Duration::from_millis(rng.random_range(20..400)),
        );

        let acked = lines
            .iter()
            .filter_map(|line| {
                line.strip_prefix("ACK ")
                    .and_then(|n| n.parse::<i64>().ok())
            })
            .max()
            .unwrap_or(round * ROUND_SPAN);
        acknowledged.insert(round, acked);
    }

    let device = open_device(device_config(dir.path(), &server.url()));
    sync_until_drained(&device, Duration::from_secs(60));
    let events = server.device_events(&device.device_id().unwrap());

    let mut seen = BTreeSet::new();
    for event in &events {
        let n = int_property(event, "n").expect("numbered");
        assert!(seen.insert(n), "event n={n} stored twice");
    }
    let mut total_acked = 0;
    for (round, acked) in &acknowledged {
        let first = round * ROUND_SPAN;
        total_acked += acked - first;
        for n in first..*acked {
            assert!(
                seen.contains(&n),
                "round {round}: acknowledged event n={n} is missing"
            );
        }
    }
    assert!(
        total_acked > 1000,
        "the children acknowledged only {total_acked} events"
    );
    let d = device.diagnostics().unwrap();
    assert_eq!(d.events_evicted_size + d.events_evicted_age, 0);
    println!(
        "{ROUNDS} kills: {total_acked} acknowledged, {} stored on the server, {} duplicate batches refused",
        events.len(),
        server.stats().duplicate_batches
    );
}
