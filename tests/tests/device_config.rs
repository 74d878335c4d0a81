//! Definitions from the server: an operator's signals and bandits reach a device through
//! `GET /v1/config` at sync, apply at the next open, never override the app's own, and never
//! break `open` when they are invalid.

use std::time::Duration;

use starling_core::bandit::{BanditSpec, PolicyKind};
use starling_core::{Event, SignalSpec, Starling};
use starling_tests::{device_config, open_device, sync_until_drained, TestServer};

const OPERATOR_JSON: &str = r#"{
    "signals": [
        {"name": "views_1h", "kind": {"windowed_count": {"event": "screen_view", "window_ms": 3600000}}},
        {"name": "clicks_1h", "kind": {"windowed_count": {"event": "click", "window_ms": 3600000}}},
        {"name": "broken", "kind": {"windowed_count": {"event": "click", "window_ms": 0}}}
    ],
    "bandits": [
        {"name": "banner", "policy": {"thompson_beta": {"prior_alpha": 1, "prior_beta": 1}},
         "arms": ["red", "blue"], "reward_event": "click", "share_statistics": true},
        {"name": "layout", "policy": {"ucb1": {"exploration": 1.4}}, "arms": ["x"]}
    ]
}"#;

#[test]
fn server_definitions_apply_at_the_next_open() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), OPERATOR_JSON).unwrap();
    let operator = starling_server::load_device_config(file.path()).unwrap();
    assert!(
        !operator.version.is_empty(),
        "a version is derived from the content"
    );
    let server = TestServer::start_with(|c| c.device_config = Some(operator));

    let dir = tempfile::tempdir().unwrap();
    // The app declares its own "clicks_1h" (a one-minute window) and its own "layout" bandit.
    let config = || {
        let mut config = device_config(dir.path(), &server.url()).with_bandit(BanditSpec::new(
            "layout",
            PolicyKind::EpsilonGreedy { epsilon: 0.1 },
            &["list", "grid"],
        ));
        config
            .signals
            .push(SignalSpec::windowed_count("clicks_1h", "click", 60_000));
        config
    };
    let device = open_device(config());
    assert!(matches!(
        device.choose("banner", &[]),
        Err(starling_core::Error::UnknownBandit(_))
    ));
    sync_until_drained(&device, Duration::from_secs(10));
    // Downloaded, but the running instance keeps its definitions.
    assert!(device.signals().get("views_1h").is_none());
    drop(device);

    let device = Starling::open(config()).unwrap();
    assert_eq!(device.signals().get("views_1h"), Some(0.0));
    assert!(device.signals().get("broken").is_none(), "invalid: skipped");
    let decision = device.choose("banner", &[]).unwrap();
    assert!(["red", "blue"].contains(&decision.arm.as_str()));
    // The app's own bandit wins over the server's of the same name.
    let layout = device.choose("layout", &[]).unwrap();
    assert!(["list", "grid"].contains(&layout.arm.as_str()));
    device.track(Event::new("screen_view")).unwrap();
    device.track(Event::new("click")).unwrap();
    device.flush().unwrap();
    assert_eq!(device.signals().get("views_1h"), Some(1.0));
    assert_eq!(device.diagnostics().unwrap().rewards_attributed, 1);

    // An unchanged configuration is revalidated, not downloaded again; the device keeps it.
    sync_until_drained(&device, Duration::from_secs(10));
    drop(device);
    let device = Starling::open(config()).unwrap();
    assert!(device.signals().get("views_1h").is_some());
}

#[test]
fn a_server_without_definitions_changes_nothing() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(device_config(dir.path(), &server.url()));
    sync_until_drained(&device, Duration::from_secs(10));
    drop(device);
    let device = Starling::open(device_config(dir.path(), &server.url())).unwrap();
    assert_eq!(device.signals().iter().count(), 0);
}

#[test]
fn a_bad_operator_file_is_refused_with_its_reason() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        r#"{"signals": [{"name": "x", "kind": {"windowed": {}}}]}"#,
    )
    .unwrap();
    let err = starling_server::load_device_config(file.path()).unwrap_err();
    assert!(err.contains("windowed"), "{err}");
}
