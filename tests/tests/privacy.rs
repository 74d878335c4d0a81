//! Private reports end to end: devices tally their own events, noise and charge a report for
//! each finished day, and send it to the real server on loopback, which publishes fleet
//! estimates once enough devices contributed. Budgets, refusals, restarts, resends and a
//! SIGKILL between the charge and the send.

use std::net::TcpListener;
use std::time::Duration;

use prost::Message;
use starling_core::{Config, Event, ReportKind, ReportSpec, Starling};
use starling_proto::v1::{DeviceConfig, PrivacyBudget, PrivateEstimate};
use starling_tests::proxy::{FaultyProxy, Misbehaviour};
use starling_tests::{device_config, open_device, ChildTest, TestServer, API_KEY};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn yesterday_noon_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now.div_euclid(DAY_MS) - 1) * DAY_MS + DAY_MS / 2
}

fn yesterday() -> i64 {
    yesterday_noon_ms().div_euclid(DAY_MS)
}

fn usage_report(epsilon: f64) -> ReportSpec {
    ReportSpec {
        name: "usage".into(),
        kind: ReportKind::EventCounts {
            events: vec!["open".into(), "share".into()],
            max_per_event: 5,
        },
        epsilon,
    }
}

fn with_reports(mut config: Config, reports: Vec<ReportSpec>) -> Config {
    config.privacy.reports = reports;
    config
}

/// Tracks `opens` opens and `shares` shares yesterday, and commits them.
fn use_app(device: &Starling, opens: usize, shares: usize) {
    let at = yesterday_noon_ms();
    for i in 0..opens {
        device.track(Event::new("open").at(at + i as i64)).unwrap();
    }
    for i in 0..shares {
        device.track(Event::new("share").at(at + i as i64)).unwrap();
    }
    device.flush().unwrap();
}

fn get(url: &str, accept: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .header("authorization", &format!("Bearer {API_KEY}"))
        .header("accept", accept)
        .call()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_vec().unwrap())
}

fn stored_reports(server: &TestServer, report: &str, day: i64) -> usize {
    let report = report.to_owned();
    server
        .server
        .state()
        .storage()
        .query_blocking(move |s| s.private_reports(starling_tests::APP, &report, day))
        .unwrap()
        .len()
}

#[test]
fn fleet_estimates_come_from_noised_reports_charged_once() {
    const DEVICES: usize = 40;
    let server = TestServer::start_with(|c| c.private_min_devices = 30);
    let dirs: Vec<_> = (0..DEVICES).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut true_opens = 0.0;
    for (i, dir) in dirs.iter().enumerate() {
        let config = with_reports(
            device_config(dir.path(), &server.url()),
            vec![usage_report(1.0)],
        );
        let device = open_device(config);
        // 0..=7 opens: above 5 the report counts 5.
        let opens = i % 8;
        true_opens += opens.min(5) as f64;
        use_app(&device, opens, 1);
        let report = device.sync().unwrap();
        assert_eq!(report.private_reports.charged, 1, "{report:?}");
        assert_eq!(report.private_reports.sent, 1, "{report:?}");

        let receipts = device.privacy_receipts(10).unwrap();
        assert_eq!(receipts.len(), 1);
        assert!(receipts[0].sent_ms.is_some());
        assert_eq!(receipts[0].channel, "report:usage");
        assert!(
            receipts[0].outline.contains("counts of 2 events"),
            "{}",
            receipts[0].outline
        );
        assert!((receipts[0].cost.amount() - 1.0).abs() < 1e-9);
        let spent = device.privacy_spent().unwrap();
        assert!((spent.epsilon_day - 1.0).abs() < 1e-9, "{spent:?}");

        // Nothing new is due: a second sync sends nothing and charges nothing.
        let again = device.sync().unwrap();
        assert_eq!(again.private_reports, Default::default(), "{again:?}");
    }
    assert_eq!(stored_reports(&server, "usage", yesterday()), DEVICES);

    let url = format!(
        "{}/v1/private-reports/usage?day={}",
        server.url(),
        yesterday()
    );
    let (status, body) = get(&url, "application/x-protobuf");
    assert_eq!(status, 200);
    let estimate = PrivateEstimate::decode(body.as_slice()).unwrap();
    assert_eq!(estimate.devices, DEVICES as u32);
    let opens = estimate.cells.iter().find(|c| c.cell == "open").unwrap();
    // Discrete Laplace of scale 10 per device: standard error about 89 over 40 devices. Six
    // standard errors keep this from failing by chance.
    assert!(
        (opens.estimate - true_opens).abs() < 6.0 * opens.standard_error,
        "{opens:?} vs {true_opens}"
    );
    assert!(opens.lower < opens.estimate && opens.estimate < opens.upper);
    let expected_se =
        (DEVICES as f64 * 2.0 * (-0.1f64).exp() / (1.0 - (-0.1f64).exp()).powi(2)).sqrt();
    assert!((opens.standard_error - expected_se).abs() < 1e-6);

    let (status, body) = get(&url, "application/json");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["devices"], DEVICES as u64);
    assert_eq!(json["cells"].as_array().unwrap().len(), 2);
}

#[test]
fn estimates_are_withheld_below_the_minimum_number_of_devices() {
    let server = TestServer::start_with(|c| c.private_min_devices = 5);
    for _ in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let device = open_device(with_reports(
            device_config(dir.path(), &server.url()),
            vec![usage_report(0.5)],
        ));
        use_app(&device, 2, 0);
        assert_eq!(device.sync().unwrap().private_reports.sent, 1);
    }
    let url = format!(
        "{}/v1/private-reports/usage?day={}",
        server.url(),
        yesterday()
    );
    let (status, body) = get(&url, "application/json");
    assert_eq!(status, 404);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], "too_few_devices", "{json}");
}

#[test]
fn a_report_over_the_budget_is_refused_and_nothing_leaves_the_device() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = with_reports(
        device_config(dir.path(), &server.url()),
        vec![usage_report(0.8)],
    );
    config.privacy.budget.epsilon_per_day = 0.5;
    let device = open_device(config);
    use_app(&device, 3, 1);
    let outcome = device.send_private_reports().unwrap();
    assert_eq!(outcome.charged, 0);
    assert_eq!(outcome.sent, 0);
    assert_eq!(outcome.refused.len(), 1, "{outcome:?}");
    assert!(
        outcome.refused[0].contains("epsilon per day"),
        "{outcome:?}"
    );
    assert!(device.privacy_receipts(10).unwrap().is_empty());
    assert_eq!(device.privacy_spent().unwrap().epsilon_day, 0.0);
    assert_eq!(stored_reports(&server, "usage", yesterday()), 0);
}

#[test]
fn the_server_can_lower_the_budget_but_not_raise_it() {
    let server = TestServer::start_with(|c| {
        c.device_config = Some(DeviceConfig {
            version: "tight".into(),
            privacy_budget: Some(PrivacyBudget {
                epsilon_per_day: 0.25,
                epsilon_per_week: 50.0,
                rho_per_day: 0.0,
            }),
            ..Default::default()
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let config = with_reports(
        device_config(dir.path(), &server.url()),
        vec![usage_report(0.5)],
    );
    let device = open_device(config);
    assert_eq!(device.privacy_budget().unwrap().epsilon_per_day, 1.0);
    use_app(&device, 1, 1);
    // The configuration arrives in this sync, before the reports are prepared.
    let report = device.sync().unwrap();
    assert_eq!(report.private_reports.charged, 0, "{report:?}");
    assert_eq!(report.private_reports.refused.len(), 1, "{report:?}");
    let budget = device.privacy_budget().unwrap();
    assert_eq!(budget.epsilon_per_day, 0.25);
    assert_eq!(
        budget.epsilon_per_week, 3.0,
        "the server cannot raise the app's budget"
    );
    assert_eq!(budget.rho_per_day, 0.5, "0 leaves the app's value");
}

#[test]
fn the_budget_and_waiting_reports_survive_a_restart_and_a_lost_answer() {
    let server = TestServer::start();
    let proxy = FaultyProxy::start(server.server.addr());
    let dir = tempfile::tempdir().unwrap();
    let url = proxy.url();
    let config = || {
        let mut config = with_reports(device_config(dir.path(), &url), vec![usage_report(0.6)]);
        config.privacy.budget.epsilon_per_day = 1.0;
        config
    };
    {
        let device = open_device(config());
        use_app(&device, 4, 2);
        // The server stores the report, the device never hears back.
        proxy.misbehave(Misbehaviour::DropResponse, 1);
        let outcome = device.send_private_reports().unwrap();
        assert_eq!(outcome.charged, 1);
        assert_eq!(outcome.sent, 0);
        assert!(outcome.send_error.is_some());
        device.close().unwrap();
    }
    assert_eq!(stored_reports(&server, "usage", yesterday()), 1);

    let device = Starling::open(config()).unwrap();
    let spent = device.privacy_spent().unwrap();
    assert!(
        (spent.epsilon_day - 0.6).abs() < 1e-9,
        "the charge survived: {spent:?}"
    );
    let receipts = device.privacy_receipts(10).unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].sent_ms, None);
    // The same report is resent; the server counts it once.
    let outcome = device.send_private_reports().unwrap();
    assert_eq!((outcome.charged, outcome.sent), (0, 1), "{outcome:?}");
    assert_eq!(stored_reports(&server, "usage", yesterday()), 1);
    assert!(device.privacy_receipts(10).unwrap()[0].sent_ms.is_some());
    assert!((device.privacy_spent().unwrap().epsilon_day - 0.6).abs() < 1e-9);
}

const CHILD_DIR: &str = "STARLING_PRIVACY_CRASH_CHILD_DIR";
const CHILD_URL: &str = "STARLING_PRIVACY_CRASH_CHILD_URL";

fn crash_config(dir: &std::path::Path, url: &str) -> Config {
    let mut config = with_reports(device_config(dir, url), vec![usage_report(0.7)]);
    config.upload_timeout_ms = 60_000;
    config
}

/// The child's body. Does nothing unless started by `a_kill_between_charge_and_send_refunds_nothing`.
#[test]
fn privacy_crash_child() {
    let (Ok(dir), Ok(url)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_URL)) else {
        return;
    };
    let device = open_device(crash_config(std::path::Path::new(&dir), &url));
    use_app(&device, 3, 3);
    println!("READY");
    // Charges, then hangs on a server that never answers, until killed.
    let _ = device.send_private_reports();
}

#[test]
fn a_kill_between_charge_and_send_refunds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A server that accepts the connection and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let child = ChildTest::spawn(
        "privacy_crash_child",
        &[
            (CHILD_DIR, dir.path().as_os_str()),
            (CHILD_URL, silent_url.as_ref()),
        ],
    );
    child.wait_for("READY", Duration::from_secs(60));
    // The child connects only after the charge is committed: kill it while it waits.
    let (connection, _) = silent.accept().unwrap();
    child.kill(); // SIGKILL
    drop(connection);

    let server = TestServer::start();
    let device = Starling::open(crash_config(dir.path(), &server.url())).unwrap();
    let spent = device.privacy_spent().unwrap();
    assert!(
        (spent.epsilon_day - 0.7).abs() < 1e-9,
        "charged before the send: {spent:?}"
    );
    let receipts = device.privacy_receipts(10).unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].sent_ms, None);

    // The stored report goes out as it was; nothing is charged again and the day is not
    // reported twice.
    let report = device.sync().unwrap();
    assert_eq!(report.private_reports.charged, 0, "{report:?}");
    assert_eq!(report.private_reports.sent, 1, "{report:?}");
    assert_eq!(stored_reports(&server, "usage", yesterday()), 1);
    assert!((device.privacy_spent().unwrap().epsilon_day - 0.7).abs() < 1e-9);
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(device.sync().unwrap().private_reports.sent, 0);
}

#[test]
fn histograms_and_randomized_answers_are_reported_too() {
    let server = TestServer::start_with(|c| c.private_min_devices = 1);
    let dir = tempfile::tempdir().unwrap();
    let reports = vec![
        ReportSpec {
            name: "basket".into(),
            kind: ReportKind::Histogram {
                event: "purchase".into(),
                property: "amount".into(),
                edges: vec![10.0, 50.0],
                max_values: 4,
            },
            epsilon: 0.3,
        },
        ReportSpec {
            name: "favourite".into(),
            kind: ReportKind::TopEvent {
                events: vec!["open".into(), "share".into()],
            },
            epsilon: 0.4,
        },
    ];
    let device = open_device(with_reports(
        device_config(dir.path(), &server.url()),
        reports,
    ));
    let at = yesterday_noon_ms();
    for amount in [5.0, 12.5, 70.0, 20.0] {
        device
            .track(Event::new("purchase").with("amount", amount).at(at))
            .unwrap();
    }
    use_app(&device, 1, 3);
    let outcome = device.send_private_reports().unwrap();
    assert_eq!((outcome.charged, outcome.sent), (2, 2), "{outcome:?}");
    let spent = device.privacy_spent().unwrap();
    assert!((spent.epsilon_day - 0.7).abs() < 1e-9, "{spent:?}");
    let receipts = device.privacy_receipts(10).unwrap();
    let channels: Vec<&str> = receipts.iter().map(|r| r.channel.as_str()).collect();
    assert!(channels.contains(&"report:basket") && channels.contains(&"report:favourite"));

    let url = format!(
        "{}/v1/private-reports/basket?day={}",
        server.url(),
        yesterday()
    );
    let (status, body) = get(&url, "application/x-protobuf");
    assert_eq!(status, 200);
    let estimate = PrivateEstimate::decode(body.as_slice()).unwrap();
    let cells: Vec<&str> = estimate.cells.iter().map(|c| c.cell.as_str()).collect();
    assert_eq!(cells, ["(-inf, 10)", "[10, 50)", "[50, +inf)"]);

    let url = format!(
        "{}/v1/private-reports/favourite?day={}",
        server.url(),
        yesterday()
    );
    let (status, body) = get(&url, "application/x-protobuf");
    assert_eq!(status, 200);
    let estimate = PrivateEstimate::decode(body.as_slice()).unwrap();
    let cells: Vec<&str> = estimate.cells.iter().map(|c| c.cell.as_str()).collect();
    assert_eq!(cells, ["open", "share", "none"]);
    // One device: each category's estimate is (1[answer] - q) / (p - q), either
    // (1 - q)/(p - q) or -q/(p - q), and they sum to exactly one device.
    let total: f64 = estimate.cells.iter().map(|c| c.estimate).sum();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
}

#[test]
fn vectors_are_charged_in_rho_and_refused_beyond_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.privacy.budget.rho_per_day = 0.5;
    let device = Starling::open(config).unwrap();
    let update = vec![3.0, 4.0, 0.0];
    assert!(matches!(
        device.release_private_vector("model", &update, 1.0, 0.3),
        Err(starling_core::Error::NoConsent)
    ));
    device.set_consent(true).unwrap();

    let noised = device
        .release_private_vector("model", &update, 1.0, 0.3)
        .unwrap();
    assert_eq!(noised.len(), 3);
    let receipts = device.privacy_receipts(10).unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].channel, "vector:model");
    assert_eq!(receipts[0].cost.measure(), "rho");
    assert!((receipts[0].cost.amount() - 0.3).abs() < 1e-9);
    assert!(receipts[0].sent_ms.is_some());

    let err = device
        .release_private_vector("model", &update, 1.0, 0.3)
        .unwrap_err();
    assert!(
        matches!(&err, starling_core::Error::BudgetExceeded(reason) if reason.contains("rho per day")),
        "{err}"
    );
    assert_eq!(
        device.privacy_receipts(10).unwrap().len(),
        1,
        "a refusal charges nothing"
    );
    let spent = device.privacy_spent().unwrap();
    assert!(
        (spent.rho_day - 0.3).abs() < 1e-9 && spent.epsilon_day == 0.0,
        "{spent:?}"
    );
    assert!(device
        .release_private_vector("bad channel", &update, 1.0, 0.1)
        .is_err());
}

#[test]
fn a_damaged_database_counts_its_lost_ledger_as_spent() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(starling_core::DATABASE_FILE),
        vec![0x5a; 8192],
    )
    .unwrap();
    let device = open_device(with_reports(
        device_config(dir.path(), &server.url()),
        vec![usage_report(0.1)],
    ));
    assert_eq!(device.diagnostics().unwrap().database_recoveries, 1);
    let spent = device.privacy_spent().unwrap();
    assert!((spent.epsilon_week - 3.0).abs() < 1e-9, "{spent:?}");
    let receipts = device.privacy_receipts(10).unwrap();
    assert!(
        receipts.iter().all(|r| r.channel == "ledger:recovered"),
        "{receipts:?}"
    );
    use_app(&device, 1, 0);
    let outcome = device.send_private_reports().unwrap();
    assert_eq!(outcome.charged, 0, "{outcome:?}");
    assert_eq!(outcome.refused.len(), 1, "{outcome:?}");
    assert_eq!(stored_reports(&server, "usage", yesterday()), 0);
}
