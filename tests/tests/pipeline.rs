//! Events travel from `track` on a device to the real server on loopback, exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use starling_core::{Error, Event, Starling};
use starling_tests::*;

#[test]
fn tracked_events_arrive_exactly_once() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), &server.url());
    config.batch_max_events = 250;
    let device = open_device(config);

    for n in 0..1200 {
        device
            .track(Event::new("tick").with("n", n as i64))
            .unwrap();
    }
    device.flush().unwrap();
    let report = device.sync().unwrap();
    assert_eq!(report.events_sent, 1200);
    assert_eq!(report.batches_sent, 5, "cut into batches of 250");
    assert_eq!((report.events_pending, report.batches_pending), (0, 0));

    let again = device.sync().unwrap();
    assert_eq!(again.events_sent, 0, "nothing is sent twice");

    let events = server.device_events(&device.device_id().unwrap());
    let ns: Vec<i64> = events.iter().filter_map(|e| int_property(e, "n")).collect();
    assert_eq!(ns, (0..1200).collect::<Vec<_>>());
    let stats = server.stats();
    assert_eq!((stats.events, stats.batches, stats.devices), (1200, 5, 1));
    assert_eq!(stats.duplicate_batches, 0);

    let diagnostics = device.diagnostics().unwrap();
    assert_eq!(diagnostics.events_committed, 1200);
    assert_eq!(diagnostics.events_sent, 1200);
}

#[test]
fn properties_and_times_survive_the_trip() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(device_config(dir.path(), &server.url()));
    let now = 1_760_000_000_000;
    let mut workload = Workload::new(9, now - 86_400_000);
    let sent: Vec<Event> = (0..300).map(|_| workload.next_event()).collect();
    for event in &sent {
        device.track(event.clone()).unwrap();
    }
    sync_until_drained(&device, Duration::from_secs(10));

    let stored = server.device_events(&device.device_id().unwrap());
    assert_eq!(stored.len(), sent.len());
    for (event, stored) in sent.iter().zip(&stored) {
        assert_eq!(stored.name, event.name);
        assert_eq!(Some(stored.time_ms), event.time_ms);
        for (key, value) in &event.properties {
            let got = &stored.properties[key.as_str()];
            match value {
                starling_core::Value::String(s) => assert_eq!(got.as_str(), Some(s.as_str())),
                starling_core::Value::Int(i) => assert_eq!(got.as_i64(), Some(*i)),
                starling_core::Value::Float(f) => assert_eq!(got.as_f64(), Some(*f)),
                starling_core::Value::Bool(b) => assert_eq!(got.as_bool(), Some(*b)),
                starling_core::Value::TimestampMs(t) => {
                    assert_eq!(got["timestamp_ms"].as_i64(), Some(*t))
                }
            }
        }
    }
}

#[test]
fn without_consent_nothing_is_recorded_or_sent() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let device = Starling::open(device_config(dir.path(), &server.url())).unwrap();

    assert!(!device.consent(), "consent is off until the app grants it");
    assert!(matches!(
        device.track(Event::new("click")),
        Err(Error::NoConsent)
    ));
    assert!(matches!(device.sync(), Err(Error::NoConsent)));

    device.set_consent(true).unwrap();
    for _ in 0..10 {
        device.track(Event::new("click")).unwrap();
    }
    device.flush().unwrap();
    device.set_consent(false).unwrap();
    assert!(matches!(
        device.track(Event::new("click")),
        Err(Error::NoConsent)
    ));

    let d = device.diagnostics().unwrap();
    assert_eq!(d.events_deleted_by_consent, 10);
    assert_eq!((d.events_unsealed, d.batches_queued), (0, 0));
    assert!(matches!(device.sync(), Err(Error::NoConsent)));
    assert_eq!(server.stats().events, 0);
    drop(device);

    // The choice survives a restart.
    let device = Starling::open(device_config(dir.path(), &server.url())).unwrap();
    assert!(!device.consent());
    device.set_consent(true).unwrap();
    drop(device);
    let device = Starling::open(device_config(dir.path(), &server.url())).unwrap();
    assert!(device.consent());
}

#[test]
fn withdrawing_consent_deletes_sealed_batches_too() {
    let server = TestServer::start();
    server.server.state().faults().push(
        starling_server::Fault::Status {
            status: 503,
            retry_after_s: None,
        },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(device_config(dir.path(), &server.url()));
    for _ in 0..20 {
        device.track(Event::new("click")).unwrap();
    }
    let report = device.sync().unwrap();
    assert_eq!(
        report.batches_pending, 1,
        "sealed, upload failed: {report:?}"
    );

    device.set_consent(false).unwrap();
    let d = device.diagnostics().unwrap();
    assert_eq!((d.batches_queued, d.events_deleted_by_consent), (0, 20));
    device.set_consent(true).unwrap();
    let report = sync_until_drained(&device, Duration::from_secs(5));
    assert_eq!(report.events_sent, 0);
    assert_eq!(server.stats().events, 0);
}

#[test]
fn resetting_the_device_id_separates_old_and_new_events() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(device_config(dir.path(), &server.url()));
    let old_id = device.device_id().unwrap();
    for n in 0..5 {
        device.track(Event::new("before").with("n", n)).unwrap();
    }
    let new_id = device.reset_device_id().unwrap();
    assert_ne!(old_id, new_id);
    assert_eq!(device.device_id().unwrap(), new_id);
    for n in 0..3 {
        device.track(Event::new("after").with("n", n)).unwrap();
    }
    sync_until_drained(&device, Duration::from_secs(5));

    let old: BTreeSet<String> = server
        .device_events(&old_id)
        .into_iter()
        .map(|e| e.name)
        .collect();
    let new: BTreeSet<String> = server
        .device_events(&new_id)
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(old, BTreeSet::from(["before".to_owned()]));
    assert_eq!(new, BTreeSet::from(["after".to_owned()]));
    assert_eq!(server.stats().devices, 2);
}

#[test]
fn a_wrong_api_key_gets_401_and_the_batch_is_kept() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), &server.url());
    config.api_key = "sk_wrong".into();
    let device = open_device(config);
    for n in 0..40 {
        device.track(Event::new("click").with("n", n)).unwrap();
    }
    let report = device.sync().unwrap();
    assert_eq!(report.events_sent, 0);
    assert_eq!(report.events_pending, 40);
    assert!(
        report.last_error.as_deref().unwrap().contains("401"),
        "{report:?}"
    );
    assert!(report.retry_at_ms.is_some());
    drop(device);

    // The app ships a corrected key: the same batch goes through.
    let device = open_device(device_config(dir.path(), &server.url()));
    std::thread::sleep(Duration::from_millis(250));
    let report = sync_until_drained(&device, Duration::from_secs(5));
    assert_eq!(report.events_sent, 40);
    assert_eq!(server.stats().events, 40);
}

#[test]
fn a_restart_keeps_unsent_events() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    {
        let device = open_device(device_config(dir.path(), &server.url()));
        for n in 0..100 {
            device.track(Event::new("tick").with("n", n)).unwrap();
        }
        device.flush().unwrap();
    }
    let device = open_device(device_config(dir.path(), &server.url()));
    assert_eq!(device.diagnostics().unwrap().events_unsealed, 100);
    assert_eq!(
        sync_until_drained(&device, Duration::from_secs(5)).events_sent,
        100
    );
}

#[test]
fn events_become_durable_within_the_flush_interval_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = starling_core::Config::new(dir.path());
    config.flush_interval_ms = 100;
    let device = open_device(config);
    device.track(Event::new("click")).unwrap();
    // Read the database from a second connection, as a crash-restarted process would.
    let path = dir.path().join(starling_core::DATABASE_FILE);
    let count = || -> i64 {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while count() == 0 {
        assert!(std::time::Instant::now() < deadline, "never committed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(device.diagnostics().unwrap().events_uncommitted, 0);
}
