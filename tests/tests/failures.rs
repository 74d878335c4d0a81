//! A failing server or network causes retries, never loss and never duplicates.

use std::collections::BTreeSet;
use std::time::Duration;

use starling_core::{Event, Starling};
use starling_server::Fault;
use starling_tests::proxy::{FaultyProxy, Misbehaviour};
use starling_tests::*;

fn track_numbered(device: &Starling, count: i64) {
    for n in 0..count {
        device.track(Event::new("tick").with("n", n)).unwrap();
    }
    device.flush().unwrap();
}

/// Asserts the server holds events n = 0..count for this device, each exactly once.
fn assert_exactly_once(server: &TestServer, device: &Starling, count: i64) {
    let events = server.device_events(&device.device_id().unwrap());
    let ns: Vec<i64> = events.iter().filter_map(|e| int_property(e, "n")).collect();
    assert_eq!(ns.len() as i64, count, "events stored");
    let distinct: BTreeSet<i64> = ns.iter().copied().collect();
    assert_eq!(distinct, (0..count).collect(), "each event once");
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let server = TestServer::start();
    server.server.state().faults().push(
        Fault::Status {
            status: 503,
            retry_after_s: None,
        },
        3,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), &server.url());
    config.batch_max_events = 100;
    let device = open_device(config);
    track_numbered(&device, 300);

    let first = device.sync().unwrap();
    assert_eq!(first.events_sent, 0);
    assert!(first.last_error.as_deref().unwrap().contains("503"));
    let retry_at = first.retry_at_ms.expect("a retry is scheduled");

    // Before the retry time, sync does not touch the network.
    let early = device.sync().unwrap();
    if early.retry_at_ms == Some(retry_at) {
        assert_eq!(early.events_sent, 0);
    }

    let report = sync_until_drained(&device, Duration::from_secs(10));
    assert_eq!(report.events_sent, 300);
    assert_exactly_once(&server, &device, 300);
}

#[test]
fn retry_after_is_honoured() {
    let server = TestServer::start();
    server.server.state().faults().push(
        Fault::Status {
            status: 429,
            retry_after_s: Some(1),
        },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(device_config(dir.path(), &server.url()));
    track_numbered(&device, 50);

    let before = starling_tests_now_ms();
    let report = device.sync().unwrap();
    let retry_at = report.retry_at_ms.expect("retry scheduled");
    // The device's own backoff is at most 200 ms here; the server asked for 1 s.
    assert!(
        retry_at - before >= 1000,
        "retry in {} ms",
        retry_at - before
    );

    let waiting = device.sync().unwrap();
    assert_eq!(waiting.events_sent, 0, "still backing off");
    assert_eq!(waiting.retry_at_ms, Some(retry_at));

    std::thread::sleep(Duration::from_millis(
        (retry_at - starling_tests_now_ms()).max(0) as u64 + 20,
    ));
    let report = device.sync().unwrap();
    assert_eq!(report.events_sent, 50);
    assert_exactly_once(&server, &device, 50);
}

#[test]
fn dropped_connections_are_retried() {
    let server = TestServer::start();
    let proxy = FaultyProxy::start(server.server.addr());
    proxy.misbehave(Misbehaviour::DropRequest, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), &proxy.url());
    config.batch_max_events = 60;
    let device = open_device(config);
    track_numbered(&device, 240);

    let first = device.sync().unwrap();
    assert!(
        first.last_error.as_deref().unwrap().starts_with("network"),
        "{first:?}"
    );
    sync_until_drained(&device, Duration::from_secs(10));
    assert_eq!(proxy.sabotaged.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_exactly_once(&server, &device, 240);
}

#[test]
fn a_lost_acknowledgement_leads_to_a_replay_that_is_not_stored_twice() {
    let server = TestServer::start();
    let proxy = FaultyProxy::start(server.server.addr());
    proxy.misbehave(Misbehaviour::DropResponse, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), &proxy.url());
    config.batch_max_events = 100;
    let device = open_device(config);
    track_numbered(&device, 200);

    sync_until_drained(&device, Duration::from_secs(10));
    assert_exactly_once(&server, &device, 200);
    let stats = server.stats();
    assert_eq!(
        stats.duplicate_batches, 2,
        "both lost answers were replayed"
    );
    assert_eq!(stats.batches, 2);
    assert_eq!(stats.duplicate_events, 0);
}

#[test]
fn a_hang_past_the_timeout_is_retried_without_duplicates() {
    let server = TestServer::start();
    // The server sits on the request longer than the device waits, then stores it anyway.
    server
        .server
        .state()
        .faults()
        .push(Fault::Delay(Duration::from_millis(1500)), 1);
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), &server.url());
    config.upload_timeout_ms = 300;
    let device = open_device(config);
    track_numbered(&device, 80);

    let started = std::time::Instant::now();
    let first = device.sync().unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "the timeout bounded the wait"
    );
    assert_eq!(first.events_sent, 0);
    assert!(first.last_error.is_some());

    // Whether or not the server finished the abandoned request, the retry stores the batch once.
    std::thread::sleep(Duration::from_millis(1500));
    sync_until_drained(&device, Duration::from_secs(10));
    assert_exactly_once(&server, &device, 80);
    assert_eq!(server.stats().batches, 1);
}

#[test]
fn a_batch_the_server_refuses_is_dropped_and_counted() {
    let server = TestServer::start();
    server.server.state().faults().push(
        Fault::Status {
            status: 400,
            retry_after_s: None,
        },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), &server.url());
    config.batch_max_events = 10;
    let device = open_device(config);
    track_numbered(&device, 30);

    let report = sync_until_drained(&device, Duration::from_secs(5));
    assert_eq!((report.batches_dropped, report.events_dropped), (1, 10));
    assert_eq!(report.events_sent, 20);
    let d = device.diagnostics().unwrap();
    assert_eq!(d.events_dropped_rejected, 10);

    // The loss is reported to the server with a later batch, so the accounting balances.
    device.track(Event::new("tick").with("n", 99)).unwrap();
    sync_until_drained(&device, Duration::from_secs(5));
    assert_eq!(
        server.stats().device_losses.get("dropped_rejected"),
        Some(&10)
    );
}

#[test]
fn an_unreachable_server_keeps_everything_for_later() {
    // Bind and drop a listener to get a port with nobody behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(device_config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
    ));
    track_numbered(&device, 25);
    let report = device.sync().unwrap();
    assert_eq!((report.events_sent, report.events_pending), (0, 25));
    drop(device);

    let server = TestServer::start();
    let device = open_device(device_config(dir.path(), &server.url()));
    std::thread::sleep(Duration::from_millis(250));
    sync_until_drained(&device, Duration::from_secs(5));
    assert_exactly_once(&server, &device, 25);
}

fn starling_tests_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
