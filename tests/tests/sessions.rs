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

/// A session event as `(name, time, signal, duration_ms, events)`.
type SessionEvent = (String, i64, String, Option<i64>, Option<i64>);

/// The session events the server stored.
fn session_events(events: &[StoredEvent]) -> Vec<SessionEvent> {
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

fn start(t: i64) -> SessionEvent {
    (START.into(), t, "visits".into(), None, None)
}

fn end(last: i64, duration: i64, events: i64) -> SessionEvent {
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
    assert_eq!(
        stored.len(),
        7 + 5,
        "the tracked views and the session events"
    );
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
    assert_eq!(
        device.signals().session("visits"),
        Some(SessionState::default())
    );

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

const FULL_DISK_CHILD_DIR: &str = "STARLING_SESSIONS_FULL_DISK_CHILD_DIR";

/// One tick every 2 s from `t0`: with a 1 s timeout each tick ends a session and starts one.
fn full_disk_signals() -> Vec<SignalSpec> {
    vec![SignalSpec::new(
        "ticks",
        starling_core::SignalKind::Session {
            event: None,
            timeout_ms: 1_000,
            max_length_ms: 60_000,
            measure: SessionMeasure::Count,
            emit_events: true,
        },
    )]
}

/// The child of the test below: tracks ticks while its file-size limit makes commits fail,
/// then lifts the limit; does nothing unless started by that test.
#[test]
fn full_disk_child() {
    let Ok(dir) = std::env::var(FULL_DISK_CHILD_DIR) else {
        return;
    };
    let t0: i64 = std::env::var("T0").unwrap().parse().unwrap();
    // SAFETY: setting a signal disposition to "ignore", so that EFBIG is an error.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let set_limit = |bytes: u64| {
        let limit = libc::rlimit {
            rlim_cur: bytes as libc::rlim_t,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: plain syscall on a stack value.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);
    };
    let mut config = starling_core::Config::new(&dir);
    config.flush_interval_ms = 20;
    config.signals = full_disk_signals();
    let device = open_device(config);
    let mut n = 0i64;
    let mut track = |count: i64| {
        for _ in 0..count {
            let event = Event::new("tick")
                .with("padding", "x".repeat(200))
                .at(t0 + 2_000 * n);
            device.track(event).unwrap();
            n += 1;
        }
        n
    };
    track(20);
    device.flush().unwrap();
    let path = Path::new(&dir).join(starling_core::DATABASE_FILE);
    let largest = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .max()
        .unwrap();
    set_limit(largest + 16 * 1024);
    let mut failures = 0;
    for _ in 0..30 {
        track(100);
        if device.flush().is_err() {
            failures += 1;
        }
    }
    assert!(failures > 0, "the disk never filled");
    set_limit(u64::MAX >> 1);
    let total = track(5);
    device.flush().unwrap();
    let diagnostics = device.diagnostics().unwrap();
    assert_eq!(diagnostics.events_dropped_unwritable, 0);
    println!("DONE {total}");
}

#[test]
fn failed_commits_record_each_session_boundary_once() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "full_disk_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FULL_DISK_CHILD_DIR, dir.path())
        .env("T0", t0.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let total: i64 = stdout
        .lines()
        .find_map(|l| {
            l.rsplit_once("DONE ")
                .and_then(|(_, n)| n.trim().parse().ok())
        })
        .expect("child finished");

    let server = TestServer::start();
    let mut config = device_config(dir.path(), &server.url());
    config.signals = full_disk_signals();
    let device = open_device(config);
    sync_until_drained(&device, Duration::from_secs(30));
    let stored = server.device_events(&device.device_id().unwrap());
    let times = |name: &str| -> Vec<i64> {
        let mut times: Vec<i64> = stored
            .iter()
            .filter(|e| e.name == name)
            .map(|e| e.time_ms)
            .collect();
        times.sort();
        times
    };
    let ticks: Vec<i64> = (0..total).map(|i| t0 + 2_000 * i).collect();
    assert_eq!(times("tick"), ticks);
    let (starts, ends) = (times(START), times(END));
    assert_eq!(
        (starts.len(), ends.len()),
        (ticks.len(), ticks.len() - 1),
        "session events recorded twice or missing"
    );
    assert_eq!(starts, ticks, "one start per tick, none twice");
    assert_eq!(
        ends,
        ticks[..ticks.len() - 1],
        "one end per tick but the last"
    );
    assert!(
        stored
            .iter()
            .filter(|e| e.name == END)
            .all(|e| int_property(e, "events") == Some(1)
                && int_property(e, "duration_ms") == Some(0))
    );
}
