//! A small fleet with every fault switched on must still balance its books.

use starling_emulator::{run, Options};

#[test]
fn a_faulty_fleet_balances_its_books() {
    let out = tempfile::tempdir().unwrap();
    let options = Options {
        devices: 12,
        days: 1,
        seed: 7,
        server: None,
        api_key: String::new(),
        offline_fraction: 0.5,
        restart_rate: 0.05,
        server_error_hours: 8,
        out: out.path().to_owned(),
        quiet: true,
    };
    let report = run(&options).unwrap();
    assert!(report.events_generated > 100, "{report:?}");
    assert!(report.balanced, "{report:?}");
    assert_eq!(report.events_duplicated, 0);
    assert_eq!(
        report.events_queued, 0,
        "the final sync drains every device"
    );
    assert_eq!(report.events_on_server, report.events_generated);
    assert!(
        report.restarts > 0 && report.syncs_retried > 0,
        "faults happened: {report:?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(
        json["events_generated"].as_u64(),
        Some(report.events_generated)
    );

    // The same seed gives the same fleet.
    let again = run(&options).unwrap();
    assert_eq!(again.events_generated, report.events_generated);
}
