//! Signals through the real SDK: kept current by the writer, persisted with the events, resumed
//! after a restart, cleared with consent, and read without touching the database.

use starling_core::{
    Config, Error, Event, PropertyFilter, SessionMeasure, SignalKind, SignalSpec, Starling, Trend,
    Value,
};

const MINUTE_MS: u64 = 60_000;

fn signals() -> Vec<SignalSpec> {
    vec![
        SignalSpec::windowed_count("views_1h", "screen_view", 60 * MINUTE_MS),
        SignalSpec::new(
            "home_views_1h",
            SignalKind::WindowedCount {
                event: "screen_view".into(),
                filter: Some(PropertyFilter {
                    key: "screen".into(),
                    value: Value::String("home".into()),
                }),
                window_ms: 60 * MINUTE_MS,
                granularity_ms: None,
            },
        ),
        SignalSpec::new(
            "sessions",
            SignalKind::Session {
                event: None,
                timeout_ms: 30 * MINUTE_MS,
                max_length_ms: 4 * 60 * MINUTE_MS,
                measure: SessionMeasure::Count,
                emit_events: false,
            },
        ),
        SignalSpec::new(
            "price_ema",
            SignalKind::Ema {
                event: "purchase".into(),
                property: Some("price".into()),
                half_life_ms: 24 * 60 * MINUTE_MS,
            },
        ),
        SignalSpec::new(
            "screens",
            SignalKind::DistinctCount {
                event: "screen_view".into(),
                property: "screen".into(),
            },
        ),
        SignalSpec::new(
            "view_surge",
            SignalKind::Surge {
                event: "screen_view".into(),
                bucket_ms: MINUTE_MS,
                baseline_half_life_buckets: 10.0,
                warmup_buckets: 5,
                threshold_z: 3.0,
            },
        ),
    ]
}

fn open(dir: &std::path::Path) -> Starling {
    let mut config = Config::new(dir);
    config.signals = signals();
    config.signal_allowed_lateness_ms = 5 * MINUTE_MS;
    let device = Starling::open(config).unwrap();
    device.set_consent(true).unwrap();
    device
}

/// Two hours ago, on a minute boundary, so that windows are easy to reason about.
fn start_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 2 * 3_600_000) / 60_000 * 60_000
}

#[test]
fn signals_follow_the_events_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = start_ms();
    let minute = MINUTE_MS as i64;

    // First session: one view a minute for 20 minutes, alternating screens.
    let device = open(dir.path());
    for i in 0..20 {
        let screen = if i % 2 == 0 { "home" } else { "search" };
        device
            .track(
                Event::new("screen_view")
                    .with("screen", screen)
                    .at(t0 + i * minute),
            )
            .unwrap();
    }
    device
        .track(
            Event::new("purchase")
                .with("price", 10.0)
                .at(t0 + 19 * minute),
        )
        .unwrap();
    device.flush().unwrap();
    let s = device.signals();
    assert_eq!(s.watermark_ms(), Some(t0 + 19 * minute));
    assert_eq!(s.get("views_1h"), Some(20.0));
    assert_eq!(s.get("home_views_1h"), Some(10.0));
    assert_eq!(s.get("sessions"), Some(1.0));
    assert_eq!(s.get("price_ema"), Some(10.0));
    assert!((s.get("screens").unwrap() - 2.0).abs() < 0.01);
    assert_eq!(s.events_applied(), 21);
    device.close().unwrap();
    drop(device);

    // Restart, then a second session 90 minutes later: a burst, and one event that is too late.
    let device = open(dir.path());
    assert_eq!(
        device.signals().get("views_1h"),
        Some(20.0),
        "resumed from the database"
    );
    let t1 = t0 + 110 * minute;
    for i in 0..40 {
        device
            .track(
                Event::new("screen_view")
                    .with("screen", "cart")
                    .at(t1 + i * 100),
            )
            .unwrap();
    }
    device
        .track(
            Event::new("screen_view")
                .with("screen", "home")
                .at(t0 + 60 * minute),
        )
        .unwrap();
    // Six minutes later the burst's minute is past the 5-minute lateness, complete, and scored.
    device
        .track(
            Event::new("purchase")
                .with("price", 30.0)
                .at(t1 + 6 * minute + 10_000),
        )
        .unwrap();
    device.flush().unwrap();
    let s = device.signals();
    assert_eq!(s.events_too_late(), 1);
    assert_eq!(
        s.get("views_1h"),
        Some(40.0),
        "the first session left the window"
    );
    assert_eq!(s.get("sessions"), Some(2.0));
    assert!((s.get("screens").unwrap() - 3.0).abs() < 0.01);
    let ema = s.get("price_ema").unwrap();
    // The purchases are 97 minutes 10 s apart, with a one-day half-life.
    let w = (-(97.0 * 60.0 + 10.0) / 86_400.0f64).exp2();
    let expected = (10.0 * w + 30.0) / (w + 1.0);
    assert!(
        (ema - expected).abs() < 1e-9,
        "decayed mean {ema}, expected {expected}"
    );
    assert!(
        s.get("view_surge").unwrap() > 3.0,
        "{:?}",
        s.get("view_surge")
    );
    assert_eq!(s.trend("view_surge"), Some(Trend::Surge));

    // Feature vectors: fixed order, and an unknown name is an error.
    assert_eq!(
        device.feature_vector(&["sessions", "views_1h"]).unwrap(),
        vec![2.0, 40.0]
    );
    match device.feature_vector(&["views_1h", "nope"]) {
        Err(Error::UnknownSignal(name)) => assert_eq!(name, "nope"),
        other => panic!("expected UnknownSignal, got {other:?}"),
    }

    // Signals and events are written together: the persisted progress counts what is stored.
    device.close().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join(starling_core::DATABASE_FILE)).unwrap();
    let progress: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'signals'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let events: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    let progress: serde_json::Value = serde_json::from_str(&progress).unwrap();
    assert_eq!(
        progress["applied"].as_i64().unwrap() + progress["too_late"].as_i64().unwrap(),
        events
    );
}

#[test]
fn withdrawing_consent_clears_the_signals() {
    let dir = tempfile::tempdir().unwrap();
    let device = open(dir.path());
    device
        .track(Event::new("screen_view").with("screen", "home"))
        .unwrap();
    device.flush().unwrap();
    assert_eq!(device.signals().get("views_1h"), Some(1.0));

    device.set_consent(false).unwrap();
    assert_eq!(device.signals().get("views_1h"), Some(0.0));
    assert_eq!(device.signals().watermark_ms(), None);
    device.close().unwrap();
    drop(device);
    let device = open(dir.path());
    assert_eq!(
        device.signals().events_applied(),
        0,
        "nothing comes back after a restart"
    );
}

#[test]
fn bad_signal_definitions_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.signals = vec![
        SignalSpec::windowed_count("a", "e", 60_000),
        SignalSpec::windowed_count("a", "e", 120_000),
    ];
    assert!(matches!(Starling::open(config), Err(Error::Config(_))));
}
