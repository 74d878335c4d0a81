//! Consent per purpose against the real server: each purpose stops and forgets on its own,
//! `set_consent` still means all of them, the choices survive a restart, and the pseudonymous
//! device id rotates on its schedule.

use std::time::Duration;

use starling_core::bandit::{BanditSpec, PolicyKind};
use starling_core::{Config, Error, Event, Purpose, ReportKind, ReportSpec, Starling};
use starling_tests::{device_config, open_device, TestServer, APP};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn yesterday_noon_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now.div_euclid(DAY_MS) - 1) * DAY_MS + DAY_MS / 2
}

fn config(dir: &std::path::Path, url: &str) -> Config {
    let mut config = device_config(dir, url).with_bandit(
        BanditSpec::new("layout", PolicyKind::Ucb1 { exploration: 1.0 }, &["a", "b"])
            .with_window_ms(3_600_000),
    );
    config.privacy.reports = vec![ReportSpec {
        name: "usage".into(),
        kind: ReportKind::EventCounts {
            events: vec!["open".into()],
            max_per_event: 3,
        },
        epsilon: 0.5,
    }];
    config
}

fn opens(device: &Starling, n: usize) {
    let at = yesterday_noon_ms();
    for i in 0..n {
        device.track(Event::new("open").at(at + i as i64)).unwrap();
    }
    device.flush().unwrap();
}

fn server_reports(server: &TestServer) -> usize {
    let day = yesterday_noon_ms().div_euclid(DAY_MS);
    server
        .server
        .state()
        .storage()
        .query_blocking(move |s| s.private_reports(APP, "usage", day))
        .unwrap()
        .len()
}

#[test]
fn set_consent_grants_and_withdraws_every_purpose() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let device = Starling::open(config(dir.path(), &server.url())).unwrap();
    for purpose in Purpose::ALL {
        assert!(
            !device.purpose_consent(purpose),
            "{purpose:?} before any choice"
        );
    }
    device.set_consent(true).unwrap();
    for purpose in Purpose::ALL {
        assert!(device.purpose_consent(purpose), "{purpose:?}");
    }
    device.set_consent(false).unwrap();
    for purpose in Purpose::ALL {
        assert!(!device.purpose_consent(purpose), "{purpose:?}");
    }
    assert!(matches!(
        device.track(Event::new("open")),
        Err(Error::NoConsent)
    ));
}

#[test]
fn withdrawing_raw_events_deletes_the_queue_and_keeps_private_reports() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(config(dir.path(), &server.url()));
    opens(&device, 4);
    assert_eq!(device.diagnostics().unwrap().events_unsealed, 4);

    device
        .set_purpose_consent(Purpose::RawEvents, false)
        .unwrap();
    let d = device.diagnostics().unwrap();
    assert_eq!((d.events_unsealed, d.batches_queued), (0, 0), "{d:?}");
    // Events still feed the reports, but are no longer queued.
    opens(&device, 2);
    assert_eq!(device.diagnostics().unwrap().events_unsealed, 0);
    let report = device.sync().unwrap();
    assert_eq!(report.events_sent, 0, "{report:?}");
    assert_eq!(report.private_reports.sent, 1, "{report:?}");
    assert_eq!(server.stats().events, 0);
    assert_eq!(server_reports(&server), 1);
    device.close().unwrap();

    let device = Starling::open(config(dir.path(), &server.url())).unwrap();
    assert!(
        !device.purpose_consent(Purpose::RawEvents),
        "the choice is persisted"
    );
    assert!(device.purpose_consent(Purpose::PrivateReports));
    assert!(device.consent());
}

#[test]
fn withdrawing_private_reports_deletes_the_tallies() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(config(dir.path(), &server.url()));
    opens(&device, 3);
    device
        .set_purpose_consent(Purpose::PrivateReports, false)
        .unwrap();
    assert!(matches!(
        device.send_private_reports(),
        Err(Error::NoConsent)
    ));
    // Raw events still flow.
    let report = device.sync().unwrap();
    assert_eq!(report.events_sent, 3, "{report:?}");
    assert_eq!(report.private_reports, Default::default());
    // Granted again: yesterday's tallies are gone, so there is nothing to report, and nothing
    // tracked while it was withdrawn was tallied.
    opens(&device, 2);
    device
        .set_purpose_consent(Purpose::PrivateReports, true)
        .unwrap();
    let outcome = device.send_private_reports().unwrap();
    assert_eq!((outcome.charged, outcome.sent), (0, 0), "{outcome:?}");
    assert_eq!(server_reports(&server), 0);
    assert!(device.privacy_receipts(10).unwrap().is_empty());
}

#[test]
fn withdrawing_personalization_stops_decisions_and_forgets_learning() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(config(dir.path(), &server.url()));
    for _ in 0..5 {
        let decision = device.choose("layout", &[]).unwrap();
        device.reward(&decision.id, 1.0).unwrap();
    }
    device.flush().unwrap();
    let pulls: f64 = device
        .bandit_arms("layout")
        .unwrap()
        .iter()
        .map(|a| a.pulls)
        .sum();
    assert_eq!(pulls, 5.0);

    device
        .set_purpose_consent(Purpose::Personalization, false)
        .unwrap();
    assert!(matches!(
        device.choose("layout", &[]),
        Err(Error::NoConsent)
    ));
    let pulls: f64 = device
        .bandit_arms("layout")
        .unwrap()
        .iter()
        .map(|a| a.pulls)
        .sum();
    assert_eq!(pulls, 0.0, "what the bandit learned is forgotten");
    device.track(Event::new("open")).unwrap();
    device.close().unwrap();

    let device = Starling::open(config(dir.path(), &server.url())).unwrap();
    let pulls: f64 = device
        .bandit_arms("layout")
        .unwrap()
        .iter()
        .map(|a| a.pulls)
        .sum();
    assert_eq!(pulls, 0.0, "and stays forgotten after a restart");
    assert!(matches!(
        device.choose("layout", &[]),
        Err(Error::NoConsent)
    ));
}

#[test]
fn withdrawing_the_last_purpose_withdraws_consent() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(config(dir.path(), &server.url()));
    for purpose in Purpose::ALL {
        assert!(device.consent());
        device.set_purpose_consent(purpose, false).unwrap();
    }
    assert!(!device.consent());
    assert!(matches!(
        device.track(Event::new("open")),
        Err(Error::NoConsent)
    ));
    device
        .set_purpose_consent(Purpose::RawEvents, true)
        .unwrap();
    assert!(device.consent());
    device.track(Event::new("open")).unwrap();
    assert!(!device.purpose_consent(Purpose::Personalization));
}

#[test]
fn the_device_id_rotates_on_its_schedule() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), &server.url());
    config.privacy.device_id_rotation_ms = Some(300);
    let device = open_device(config);
    device.track(Event::new("open")).unwrap();
    device.sync().unwrap();
    let first = device.device_id().unwrap();
    device.track(Event::new("open")).unwrap();
    device.sync().unwrap();
    assert_eq!(device.device_id().unwrap(), first, "not due yet");

    std::thread::sleep(Duration::from_millis(350));
    // Tracked before the rotation: sealed and sent under the old id.
    device.track(Event::new("open")).unwrap();
    device.sync().unwrap();
    let second = device.device_id().unwrap();
    assert_ne!(second, first);
    device.track(Event::new("open")).unwrap();
    device.sync().unwrap();
    assert_eq!(device.device_id().unwrap(), second);
    assert_eq!(
        server.device_events(&first).len(),
        3,
        "sent under the old id"
    );
    assert_eq!(
        server.device_events(&second).len(),
        1,
        "sent under the new id"
    );
}
