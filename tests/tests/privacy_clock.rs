//! A clock supplied by the host (`Config::clock`) drives the private reports: a day is
//! reported once the supplied clock has left it, whatever the system clock says, receipts carry
//! the supplied time, and the ledger's clock still never goes backwards.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use starling_core::{Clock, Event, ReportKind, ReportSpec};
use starling_tests::{device_config, open_device, TestServer};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// 2020-03-10 00:00 UTC, years before the system clock.
const DAY_START_MS: i64 = 18_331 * DAY_MS;

#[test]
fn a_supplied_clock_decides_when_a_day_is_reported() {
    let server = TestServer::start_with(|c| c.private_min_devices = 1);
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(DAY_START_MS + DAY_MS / 2));
    let mut config = device_config(dir.path(), &server.url());
    let clock = Arc::clone(&now);
    config.clock = Clock::new(move || clock.load(Ordering::SeqCst));
    config.privacy.reports = vec![ReportSpec {
        name: "usage".into(),
        kind: ReportKind::EventCounts {
            events: vec!["open".into()],
            max_per_event: 5,
        },
        epsilon: 1.0,
    }];
    let device = open_device(config);
    for i in 0..3 {
        device
            .track(Event::new("open").at(DAY_START_MS + DAY_MS / 2 + i))
            .unwrap();
    }
    // An hour and a half ahead of the supplied clock is beyond the allowed skew, though far in
    // the past of the system clock.
    assert!(device
        .track(Event::new("open").at(DAY_START_MS + DAY_MS / 2 + 90 * 60 * 1000))
        .is_err());
    device.flush().unwrap();

    // The day is not over by the supplied clock: nothing is charged.
    let report = device.sync().unwrap();
    assert_eq!(report.last_error, None, "{report:?}");
    assert_eq!(report.private_reports.charged, 0, "{report:?}");
    assert!(device.privacy_receipts(10).unwrap().is_empty());

    // Past midnight: the day is charged at the supplied time and sent.
    let midnight = DAY_START_MS + DAY_MS + 1_000;
    now.store(midnight, Ordering::SeqCst);
    let report = device.sync().unwrap();
    assert_eq!(report.private_reports.charged, 1, "{report:?}");
    assert_eq!(report.private_reports.sent, 1, "{report:?}");
    let receipts = device.privacy_receipts(10).unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].charged_ms, midnight);
    assert_eq!(receipts[0].sent_ms, Some(midnight));
    let day = DAY_START_MS / DAY_MS;
    let stored = server
        .server
        .state()
        .storage()
        .query_blocking(move |s| s.private_reports(starling_tests::APP, "usage", day))
        .unwrap();
    assert_eq!(stored.len(), 1);

    // The supplied clock moves back: the ledger keeps its time, and the day is not reported
    // again.
    now.store(DAY_START_MS + DAY_MS / 2, Ordering::SeqCst);
    let spent = device.privacy_spent().unwrap();
    assert_eq!(spent.clock_ms, midnight, "{spent:?}");
    assert!((spent.epsilon_day - 1.0).abs() < 1e-9, "{spent:?}");
    let report = device.sync().unwrap();
    assert_eq!(report.private_reports.charged, 0, "{report:?}");
}
