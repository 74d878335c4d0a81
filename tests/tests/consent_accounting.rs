//! Withdrawing consent deletes every event the device holds, including the ones still waiting
//! for their commit, and counts all of them, so the books of a fleet still balance.

use starling_core::{Event, Starling};
use starling_tests::*;

#[test]
fn withdrawal_counts_the_events_not_yet_committed() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), &server.url());
    // Long enough that nothing tracked below is committed before the withdrawal.
    config.flush_interval_ms = 600_000;
    let device = open_device(config.clone());
    for n in 0..30 {
        device
            .track(Event::new("click").with("n", n as i64))
            .unwrap();
    }
    device.flush().unwrap();
    for n in 30..80 {
        device
            .track(Event::new("click").with("n", n as i64))
            .unwrap();
    }
    device.set_consent(false).unwrap();

    let d = device.diagnostics().unwrap();
    assert_eq!(d.events_deleted_by_consent, 80, "{d:?}");
    assert_eq!(
        (d.events_uncommitted, d.events_unsealed, d.events_batched),
        (0, 0, 0)
    );
    drop(device);

    // Nothing comes back after a restart, and nothing was sent.
    let device = Starling::open(config).unwrap();
    assert!(!device.consent());
    assert_eq!(device.diagnostics().unwrap().events_unsealed, 0);
    assert_eq!(server.stats().events, 0);
}
