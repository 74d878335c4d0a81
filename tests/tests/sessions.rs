//! Sessions as a lifecycle through the real SDK and server: session start and end events
//! recorded exactly once where the app asks for them (also across a restart), none without the
//! opt-in, none from activity tracked without consent, and the session state in the snapshot.

use std::path::Path;
use std::time::Duration;

use starling_core::{Error, Event, SessionMeasure, SessionState, SignalSpec, Starling};
use starling_server::StoredEvent;
use starling_tests::{device_config, int_property, open_device, sync_until_drained, TestServer};

const MINUTE: i64 = 60_000;
const START: &str = "starling.session_start";
const END: &str = "starling.session_end";

/// Ten hours ago, on a minute boundary.
fn t0() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 10 * 3_600_000) / MINUTE * MINUTE
}

fn open(dir: &Path, server: &TestServer, signals: Vec<SignalSpec>) -> Starling {
    let mut config = device_config(dir, &server.url());
    config.signals = signals;
    config.signal_allowed_lateness_ms = 5 * MINUTE as u64;
    open_device(config)
}

/// A session signal with the defaults (30 min timeout, 4 h maximum) that records its events,
/// and one that does not.
fn both_signals() -> Vec<SignalSpec> {
    vec![
        SignalSpec::session("visits", SessionMeasure::Count).with_session_events(),
        SignalSpec::session("quiet", SessionMeasure::CurrentEvents),
    ]
}

fn view(device: &Starling, time_ms: i64) {
    device.track(Event::new("screen_view").at(time_ms)).unwrap();
}

/// The session events the server stored, as `(name, time, signal, duration, events)`.
fn session_events(events: &[StoredEvent]) -> Vec<(String, i64, String, Option<i64>, Option<i64>)> {
    events
        .iter()
        .filter(|e| e.name.starts_with("starling.session_"))
        .map(|e| {
            (
                e.name.clone(),
                e.time_ms,
                e.properties["signal"].as_str().unwrap_or("").to_owned(),
                int_property(e, "duration_ms"),
                int_property(e, "events"),
            )
        })
        .collect()
}

fn start(t: i64) -> (String, i64, String, Option<i64>, Option<i64>) {
    (START.into(), t, "visits".into(), None, None)
}

fn end(last: i64, duration: i64, events: i64) -> (String, i64, String, Option<i64>, Option<i64>) {
    (
        END.into(),
        last,
        "visits".into(),
        Some(duration),
        Some(events),
    )
}

#[test]
fn session_boundaries_reach_the_server_exactly_once_across_a_restart() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();

    let device = open(dir.path(), &server, both_signals());
    let id = device.device_id().unwrap();
    // First session: three views in ten minutes.
    for m in [0, 5, 10] {
        view(&device, t0 + m * MINUTE);
    }
    device.flush().unwrap();
    sync_until_drained(&device, Duration::from_secs(10));
    // Fifty minutes later: the first session ends, a second starts.
    view(&device, t0 + 60 * MINUTE);
    device.flush().unwrap();
    sync_until_drained(&device, Duration::from_secs(10));
    device.close().unwrap();
    drop(device);

    // Resumed: the second session goes on (a late view inside it counts), then a gap of 80
    // minutes ends it.
    let device = open(dir.path(), &server, both_signals());
    view(&device, t0 + 70 * MINUTE);
    view(&device, t0 + 68 * MINUTE);
    device.flush().unwrap();
    let state = device.signals().session("visits").unwrap();
    assert_eq!(
        state,
        SessionState {
            open: true,
            start_ms: Some(t0 + 60 * MINUTE),
            last_event_ms: Some(t0 + 70 * MINUTE),
            events: 3,
            completed: 1,
        }
    );
    view(&device, t0 + 150 * MINUTE);
    device.flush().unwrap();
    sync_until_drained(&device, Duration::from_secs(10));
    sync_until_drained(&device, Duration::from_secs(10));

    let stored = server.device_events(&id);
    assert_eq!(
        session_events(&stored),
        vec![
            start(t0),
            end(t0 + 10 * MINUTE, 10 * MINUTE, 3),
            start(t0 + 60 * MINUTE),
            end(t0 + 70 * MINUTE, 10 * MINUTE, 3),
            start(t0 + 150 * MINUTE),
        ],
        "one event per boundary, none for the signal without the opt-in"
    );
    assert_eq!(stored.len(), 7 + 5, "the tracked views and the session events");
    let diagnostics = device.diagnostics().unwrap();
    assert_eq!(diagnostics.events_sent, 7 + 5);

    let s = device.signals();
    assert_eq!(s.get("visits"), Some(3.0));
    assert_eq!(s.session("visits"), s.session("quiet"));
    assert_eq!(s.session("visits").unwrap().completed, 2);
    assert_eq!(s.session("nothing"), None);
    device.close().unwrap();
}

#[test]
fn without_the_opt_in_no_session_event_is_recorded() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let device = open(
        dir.path(),
        &server,
        vec![SignalSpec::session("quiet", SessionMeasure::Count)],
    );
    let id = device.device_id().unwrap();
    for m in [0, 40, 80, 400] {
        view(&device, t0 + m * MINUTE);
    }
    device.flush().unwrap();
    sync_until_drained(&device, Duration::from_secs(10));
    assert_eq!(device.signals().get("quiet"), Some(4.0));
    let stored = server.device_events(&id);
    assert_eq!(stored.len(), 4);
    assert!(session_events(&stored).is_empty());
    assert_eq!(device.diagnostics().unwrap().events_committed, 4);
    device.close().unwrap();
}

#[test]
fn without_consent_no_session_event_is_recorded() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let device = open(dir.path(), &server, both_signals());
    view(&device, t0);
    view(&device, t0 + 5 * MINUTE);
    device.flush().unwrap();

    // Withdrawn: the first session goes with the deleted events, and nothing tracked meanwhile
    // starts or ends one.
    device.set_consent(false).unwrap();
    assert!(matches!(
        device.track(Event::new("screen_view").at(t0 + 60 * MINUTE)),
        Err(Error::NoConsent)
    ));
    device.flush().unwrap();
    assert_eq!(device.signals().session("visits"), Some(SessionState::default()));

    device.set_consent(true).unwrap();
    view(&device, t0 + 200 * MINUTE);
    device.flush().unwrap();
    sync_until_drained(&device, Duration::from_secs(10));
    let stored = server.device_events(&device.device_id().unwrap());
    assert_eq!(
        session_events(&stored),
        vec![start(t0 + 200 * MINUTE)],
        "a fresh session, and no end for the deleted one"
    );
    assert_eq!(stored.len(), 2);
    device.close().unwrap();
}
