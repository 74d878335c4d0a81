//! Federated learning end to end, rounds and robustness: the real server on loopback with
//! real devices; dropouts, deadlines, over-selection, late, stale and malformed updates, a
//! device killed mid-round, example bounds, ETag revalidation and on-device noise.

use std::time::Duration;

use prost::Message;
use rand::SeedableRng;
use starling_core::learning::{Eligibility, Features};
use starling_proto::v1::{CheckIn, ModelUpdate};
use starling_tests::learning::*;
use starling_tests::{device_config, open_device, proxy, ChildTest, TestServer, API_KEY};

#[test]
fn the_model_is_revalidated_with_its_etag() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("etag", SYNC, "")]);
    let url = format!("{}/v1/learning/etag/model", server.url());
    let auth = format!("Bearer {API_KEY}");
    let first = ureq::get(&url)
        .header("authorization", &auth)
        .call()
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"0.0\"");
    let again = ureq::get(&url)
        .header("authorization", &auth)
        .header("if-none-match", &etag)
        .call()
        .unwrap();
    assert_eq!(again.status(), 304);
    let missing = ureq::get(format!("{}/v1/learning/nope/model", server.url()))
        .header("authorization", &auth)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn dropouts_close_the_round_at_its_deadline_or_abandon_it() {
    const DEADLINE_MS: i64 = 2_000;
    let sync = r#"{"mode": "synchronous", "target_participants": 5, "min_participants": 3,
        "over_selection": 1.0, "round_deadline_ms": 2000}"#;
    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("drop", sync, "")]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let (devices, _dirs) = fleet(&server.url(), "drop", &split(synthetic(&mut rng, 500), 5));

    // Start from a round with most of its time ahead (setting the fleet up took some of the
    // first one).
    let mut start = fetch_release(&server, "drop");
    if start.round_deadline_ms - now_ms() < DEADLINE_MS * 3 / 4 {
        sleep_past(start.round_deadline_ms);
        start = fetch_release(&server, "drop");
    }
    let abandoned = history(&server, "drop")["rounds_abandoned"]
        .as_u64()
        .unwrap();

    // Only 3 of 5 take part; the others drop out. At the deadline the round has its minimum.
    for device in &devices[..3] {
        let report = device
            .sync_learning_blocking("drop", Eligibility::ELIGIBLE)
            .unwrap();
        assert!(report.training.as_ref().unwrap().trained, "{report:?}");
    }
    assert_eq!(
        fetch_release(&server, "drop").version,
        0,
        "the round is still open"
    );
    sleep_past(start.round_deadline_ms);
    let release = fetch_release(&server, "drop");
    assert_eq!((release.version, release.round), (1, start.round + 1));

    // Next round: only 2 take part, fewer than the minimum: abandoned, same version, new round.
    for device in &devices[..2] {
        device
            .sync_learning_blocking("drop", Eligibility::ELIGIBLE)
            .unwrap();
    }
    sleep_past(release.round_deadline_ms);
    let after = fetch_release(&server, "drop");
    assert_eq!((after.version, after.round), (1, start.round + 2));
    assert_eq!(
        history(&server, "drop")["rounds_abandoned"].as_u64(),
        Some(abandoned + 1)
    );

    // A device that is not eligible downloads but does not train.
    let busy = Eligibility {
        charging: true,
        unmetered: true,
        idle: false,
    };
    let report = devices[4].sync_learning_blocking("drop", busy).unwrap();
    assert_eq!(report.model_version, Some(1));
    assert!(!report.training.unwrap().trained);
    assert!(devices[4]
        .learning_status("drop")
        .unwrap()
        .updates
        .is_empty());
}

#[test]
fn late_and_stale_updates_are_refused_or_down_weighted() {
    // Synchronous: an update built for a round that closed before it arrived is refused, and the
    // device records the refusal instead of resending.
    let sync = r#"{"mode": "synchronous", "target_participants": 2, "min_participants": 2,
        "over_selection": 2.0, "round_deadline_ms": 60000}"#;
    let asynchronous = r#"{"mode": "asynchronous", "buffer_size": 2, "max_staleness": 1}"#;
    let server = TestServer::start_with(|c| {
        c.learning_tasks = vec![task("late", sync, ""), task("async", asynchronous, "")]
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let (devices, _dirs) = fleet(&server.url(), "late", &split(synthetic(&mut rng, 400), 4));
    let not_now = Eligibility::default();
    devices[0].sync_learning_blocking("late", not_now).unwrap();
    let built = devices[0]
        .train_blocking("late", Eligibility::ELIGIBLE)
        .unwrap();
    assert!(built.trained && built.round == 0);
    for device in &devices[1..3] {
        device
            .sync_learning_blocking("late", Eligibility::ELIGIBLE)
            .unwrap();
    }
    assert_eq!(fetch_release(&server, "late").version, 1);
    let report = devices[0].sync_learning_blocking("late", not_now).unwrap();
    assert_eq!(report.updates_refused, 1, "{report:?}");
    let status = devices[0].learning_status("late").unwrap();
    assert_eq!(status.updates[0].state, "refused");
    assert!(
        status.updates[0].outcome.starts_with("round_closed"),
        "{status:?}"
    );
    assert_eq!(status.updates_refused, 1);

    // Asynchronous: a stale update is accepted at a lower weight; one beyond max_staleness is
    // refused.
    let (devices, _dirs) = fleet(&server.url(), "async", &split(synthetic(&mut rng, 500), 5));
    for device in &devices {
        device.sync_learning_blocking("async", not_now).unwrap();
    }
    // Devices 0 and 1 build updates on version 0 and hold them; 2 and 3 make version 1.
    for device in &devices[..2] {
        assert!(
            device
                .train_blocking("async", Eligibility::ELIGIBLE)
                .unwrap()
                .trained
        );
    }
    for device in &devices[2..4] {
        device
            .sync_learning_blocking("async", Eligibility::ELIGIBLE)
            .unwrap();
    }
    assert_eq!(fetch_release(&server, "async").version, 1);
    let report = devices[0].sync_learning_blocking("async", not_now).unwrap();
    assert_eq!(report.updates_sent, 1);
    let status = devices[0].learning_status("async").unwrap();
    assert_eq!(status.updates[0].outcome, "accepted_stale");
    // Device 4 makes version 2 with device 0's stale update; device 1's is now 2 versions old.
    devices[4]
        .sync_learning_blocking("async", Eligibility::ELIGIBLE)
        .unwrap();
    assert_eq!(fetch_release(&server, "async").version, 2);
    let report = devices[1].sync_learning_blocking("async", not_now).unwrap();
    assert_eq!(report.updates_refused, 1, "{report:?}");
    let status = devices[1].learning_status("async").unwrap();
    assert!(
        status.updates[0].outcome.starts_with("too_stale"),
        "{status:?}"
    );
}

#[test]
fn malformed_updates_are_refused_with_a_reason() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("bad", SYNC, "")]);
    let admitted = post(
        &server,
        "/v1/learning/bad/checkin",
        CheckIn {
            device_id: "dev-1".into(),
            version: 0,
            examples: 10,
        }
        .encode_to_vec(),
    );
    assert_eq!(admitted.0, 200);
    let good = ModelUpdate {
        update_id: vec![7; 16],
        task: "bad".into(),
        device_id: "dev-1".into(),
        base_version: 0,
        round: 0,
        examples: 10,
        scale: 0.01,
        quantized: vec![10; DIMS + 1],
        clip_norm: 5.0,
        ..Default::default()
    };
    let cases: Vec<(&str, ModelUpdate, u16, &str)> = vec![
        (
            "wrong shape",
            ModelUpdate {
                quantized: vec![1; 3],
                ..good.clone()
            },
            422,
            "wrong_shape",
        ),
        (
            "NaN scale",
            ModelUpdate {
                scale: f32::NAN,
                ..good.clone()
            },
            422,
            "not_finite",
        ),
        (
            "infinite scale",
            ModelUpdate {
                scale: f32::INFINITY,
                ..good.clone()
            },
            422,
            "not_finite",
        ),
        (
            "NaN evaluation",
            ModelUpdate {
                holdout_examples: 3,
                holdout_loss: f64::NAN,
                ..good.clone()
            },
            422,
            "not_finite",
        ),
        // 127 * 1.0 per coordinate: a norm of 311, far beyond the bound of 5.
        (
            "too long",
            ModelUpdate {
                scale: 1.0,
                quantized: vec![127; DIMS + 1],
                ..good.clone()
            },
            422,
            "norm_out_of_bound",
        ),
        (
            "short id",
            ModelUpdate {
                update_id: vec![1; 3],
                ..good.clone()
            },
            422,
            "malformed",
        ),
        (
            "no examples",
            ModelUpdate {
                examples: 0,
                ..good.clone()
            },
            422,
            "malformed",
        ),
        (
            "future round",
            ModelUpdate {
                round: 5,
                ..good.clone()
            },
            422,
            "unknown_round",
        ),
        (
            "not admitted",
            ModelUpdate {
                device_id: "dev-2".into(),
                ..good.clone()
            },
            409,
            "not_admitted",
        ),
        (
            "wrong task",
            ModelUpdate {
                task: "other".into(),
                ..good.clone()
            },
            422,
            "wrong_task",
        ),
    ];
    for (what, update, status, code) in cases {
        let (got, body) = post(&server, "/v1/learning/bad/updates", update.encode_to_vec());
        assert_eq!((got, code_of(&body)), (status, code.to_owned()), "{what}");
    }
    let (got, _) = post(
        &server,
        "/v1/learning/bad/updates",
        b"not protobuf \xff\xff".to_vec(),
    );
    assert_eq!(got, 400);

    // The good one is accepted once; a replay is recognised; a second update of the same device
    // in the same round is refused.
    let (got, body) = post(&server, "/v1/learning/bad/updates", good.encode_to_vec());
    assert_eq!(got, 200);
    let receipt = starling_proto::v1::UpdateReceipt::decode(body.as_slice()).unwrap();
    assert_eq!(receipt.status, "accepted");
    let (_, body) = post(&server, "/v1/learning/bad/updates", good.encode_to_vec());
    assert_eq!(
        starling_proto::v1::UpdateReceipt::decode(body.as_slice())
            .unwrap()
            .status,
        "duplicate"
    );
    let again = ModelUpdate {
        update_id: vec![8; 16],
        ..good
    };
    let (got, body) = post(&server, "/v1/learning/bad/updates", again.encode_to_vec());
    assert_eq!((got, code_of(&body).as_str()), (409, "already_submitted"));

    let history = history(&server, "bad");
    assert_eq!(history["buffered"].as_u64(), Some(1));
    assert_eq!(history["refusals"]["not_finite"].as_u64(), Some(3));
}

const CHILD_DIR: &str = "STARLING_LEARNING_CHILD_DIR";
const CHILD_URL: &str = "STARLING_LEARNING_CHILD_URL";

/// The child's body: downloads the model, stores examples, builds an update, says so, and
/// waits to be killed. Does nothing unless started by the test below.
#[test]
fn learning_child() {
    let (Ok(dir), Ok(url)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_URL)) else {
        return;
    };
    let device = open_device(device_config(std::path::Path::new(&dir), &url));
    device
        .sync_learning_blocking("resume", Eligibility::default())
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    for (x, y) in synthetic(&mut rng, 100) {
        device
            .add_example("resume", &Features::dense(&x), y)
            .unwrap();
    }
    device.flush().unwrap();
    assert!(
        device
            .train_blocking("resume", Eligibility::ELIGIBLE)
            .unwrap()
            .trained
    );
    println!("BUILT");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_device_resumes_without_submitting_twice() {
    let asynchronous = r#"{"mode": "asynchronous", "buffer_size": 10, "max_staleness": 3}"#;
    let server =
        TestServer::start_with(|c| c.learning_tasks = vec![task("resume", asynchronous, "")]);
    let proxy = proxy::FaultyProxy::start(server.server.addr());
    let dir = tempfile::tempdir().unwrap();

    // A real process builds its update, then is killed before it sends it.
    let url = proxy.url();
    let child = ChildTest::spawn(
        "learning_child",
        &[
            (CHILD_DIR, dir.path().as_os_str()),
            (CHILD_URL, url.as_ref()),
        ],
    );
    child.wait_for("BUILT", Duration::from_secs(60));
    child.kill(); // SIGKILL

    // Reopened, the device sends the stored update; the server keeps it but the answer is lost.
    let device = open_device(device_config(dir.path(), &proxy.url()));
    let pending = device.learning_status("resume").unwrap();
    assert_eq!(pending.updates.len(), 1);
    assert_eq!(pending.updates[0].state, "pending");
    proxy.misbehave(proxy::Misbehaviour::DropResponse, 1);
    let report = device
        .sync_learning_blocking("resume", Eligibility::default())
        .unwrap();
    assert!(report.last_error.is_some(), "{report:?}");
    assert_eq!(
        device.learning_status("resume").unwrap().updates[0].state,
        "pending"
    );

    // The next sync sends the same bytes; the server recognises them.
    let report = device
        .sync_learning_blocking("resume", Eligibility::ELIGIBLE)
        .unwrap();
    assert_eq!(report.updates_sent, 1, "{report:?}");
    let status = device.learning_status("resume").unwrap();
    assert_eq!(status.updates[0].state, "sent");
    assert_eq!(status.updates[0].outcome, "duplicate");
    assert!(
        status.updates.len() == 1 || status.updates[1].round == status.updates[0].round,
        "no second update for the same round: {status:?}"
    );
    assert_eq!(
        history(&server, "resume")["buffered"].as_u64(),
        Some(1),
        "stored once"
    );
}

#[test]
fn examples_are_bounded_and_predictions_need_a_model() {
    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("bound", SYNC, "")]);
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(device_config(dir.path(), &server.url()));
    assert!(device
        .predict("bound", &Features::dense(&[0.0; DIMS]))
        .is_err());
    device
        .sync_learning_blocking("bound", Eligibility::default())
        .unwrap();
    let p = device
        .predict("bound", &Features::dense(&[0.0; DIMS]))
        .unwrap();
    assert_eq!(p, vec![0.5], "the all-zero model says 0.5");
    assert!(
        device
            .predict("bound", &Features::dense(&[0.0; 2]))
            .is_err(),
        "wrong width"
    );
    assert!(
        device
            .add_example("bound", &Features::dense(&[0.0; DIMS]), 2)
            .is_err(),
        "label 2"
    );
    assert!(device
        .add_example("bound", &Features::dense(&[f64::NAN; DIMS]), 1)
        .is_err());

    // The task keeps 1000 examples: the oldest go and are counted.
    for i in 0..1100 {
        let x = [i as f64 / 1100.0; DIMS];
        device
            .add_example("bound", &Features::dense(&x), (i % 2) as u32)
            .unwrap();
    }
    device.flush().unwrap();
    let status = device.learning_status("bound").unwrap();
    assert_eq!((status.examples, status.examples_evicted), (1000, 100));

    // Withdrawing consent deletes the examples.
    device.set_consent(false).unwrap();
    assert!(matches!(
        device.add_example("bound", &Features::dense(&[0.0; DIMS]), 1),
        Err(starling_core::Error::NoConsent)
    ));
    device.set_consent(true).unwrap();
    assert_eq!(device.learning_status("bound").unwrap().examples, 0);
}

#[test]
fn over_selection_admits_a_bounded_number_of_devices_per_round() {
    // Target 10, over-selection 1.5: 15 seats.
    let server = TestServer::start_with(|c| c.learning_tasks = vec![task("seats", SYNC, "")]);
    let check_in = |device: &str, version: u64| {
        let (status, body) = post(
            &server,
            "/v1/learning/seats/checkin",
            CheckIn {
                device_id: device.into(),
                version,
                examples: 10,
            }
            .encode_to_vec(),
        );
        assert_eq!(status, 200);
        starling_proto::v1::CheckInAnswer::decode(body.as_slice()).unwrap()
    };
    for i in 0..15 {
        assert!(check_in(&format!("d{i}"), 0).admitted, "seat {i}");
    }
    let full = check_in("d15", 0);
    assert!(!full.admitted);
    assert_eq!(full.reason, "the round is full");
    assert!(
        check_in("d3", 0).admitted,
        "an admitted device keeps its seat"
    );
    let stale = check_in("d16", 7);
    assert!(
        !stale.admitted && stale.reason.contains("version is 0"),
        "{stale:?}"
    );
}

#[test]
fn device_noise_is_recorded_with_each_update_and_accepted_by_the_server() {
    // z_d = 1.25: each update costs rho = 1 / (2 * 1.5625) = 0.32 on the device, within the
    // default daily rho budget (0.5).
    let asynchronous = r#"{"mode": "asynchronous", "buffer_size": 3, "max_staleness": 2}"#;
    let mut definition = task(
        "noisy",
        asynchronous,
        r#", "device_noise_multiplier": 1.25"#,
    );
    definition.clip_norm = 1.0;
    let server = TestServer::start_with(|c| c.learning_tasks = vec![definition]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let (devices, _dirs) = fleet(&server.url(), "noisy", &split(synthetic(&mut rng, 300), 3));
    for device in &devices {
        let report = device
            .sync_learning_blocking("noisy", Eligibility::ELIGIBLE)
            .unwrap();
        assert_eq!(report.updates_sent, 1, "{report:?}");
        let training = report.training.unwrap();
        assert!((training.device_rho - 0.32).abs() < 1e-9, "{training:?}");
        let status = device.learning_status("noisy").unwrap();
        assert_eq!(status.updates[0].state, "sent");
        assert!((status.updates[0].device_rho - 0.32).abs() < 1e-9);
    }
    let history = history(&server, "noisy");
    assert_eq!(history["version"].as_u64(), Some(1), "{history}");
    assert!(
        history["refusals"].as_object().unwrap().is_empty(),
        "{history}"
    );
}
