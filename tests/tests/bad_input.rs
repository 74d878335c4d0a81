//! What bad input gets, at the SDK's API and at the server. docs/bad-input.md tabulates these
//! cases; each row there is asserted here.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;
use starling_core::{Error, Event, InvalidEvent};
use starling_proto::batch::{BatchBuilder, BatchHeader, Value};
use starling_proto::v1::{ErrorResponse, EventBatch, IngestResponse};
use starling_tests::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn batch(id: u8, events: usize) -> EventBatch {
    let mut b = BatchBuilder::new(BatchHeader {
        batch_id: vec![id; 16],
        device_id: "device-1".into(),
        sequence: 1,
        schema_version: 1,
        sdk_version: "test".into(),
        sealed_at_ms: 1_760_000_000_000,
    });
    for i in 0..events {
        b.push(
            i as u64 + 1,
            1_760_000_000_000 + i as i64,
            "click",
            &[("screen".into(), Value::String("home".into()))],
        );
    }
    b.finish()
}

struct Answer {
    status: u16,
    code: String,
    body: Vec<u8>,
}

fn post(server: &TestServer, key: Option<&str>, encoding: Option<&str>, body: &[u8]) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent
        .post(format!("{}/v1/events", server.url()))
        .header("content-type", "application/x-protobuf");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_vec().unwrap();
    let code = if status == 200 {
        String::new()
    } else {
        ErrorResponse::decode(&body[..])
            .map(|e| e.code)
            .unwrap_or_default()
    };
    Answer { status, code, body }
}

fn expect(answer: Answer, status: u16, code: &str) {
    assert_eq!((answer.status, answer.code.as_str()), (status, code));
}

#[test]
fn server_accepts_a_good_batch_and_acknowledges_a_replay() {
    let server = TestServer::start();
    let body = gzip(&batch(1, 3).encode_to_vec());
    let first = post(&server, Some(API_KEY), Some("gzip"), &body);
    assert_eq!(first.status, 200);
    let first = IngestResponse::decode(&first.body[..]).unwrap();
    assert_eq!((first.accepted_events, first.duplicate), (3, false));

    let replay = post(&server, Some(API_KEY), Some("gzip"), &body);
    let replay = IngestResponse::decode(&replay.body[..]).unwrap();
    assert_eq!((replay.accepted_events, replay.duplicate), (0, true));
    assert_eq!(server.stats().events, 3);

    // Uncompressed bodies are accepted too.
    let plain = post(&server, Some(API_KEY), None, &batch(2, 1).encode_to_vec());
    assert_eq!(plain.status, 200);
}

#[test]
fn server_rejects_bad_requests_with_reasons() {
    let server = TestServer::start_with(|c| {
        c.max_body_bytes = 64 * 1024;
        c.max_decompressed_bytes = 1024 * 1024;
    });
    let good = gzip(&batch(1, 2).encode_to_vec());

    expect(
        post(&server, None, Some("gzip"), &good),
        401,
        "unauthorized",
    );
    expect(
        post(&server, Some("sk_wrong"), Some("gzip"), &good),
        401,
        "unauthorized",
    );

    let oversized = vec![0u8; 64 * 1024 + 1];
    expect(
        post(&server, Some(API_KEY), None, &oversized),
        413,
        "payload_too_large",
    );

    // 16 MiB of zeros compress to about 16 KiB: under the body limit, far over the
    // decompressed one.
    let bomb = gzip(&vec![0u8; 16 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    expect(
        post(&server, Some(API_KEY), Some("gzip"), &bomb),
        413,
        "decompressed_too_large",
    );

    expect(
        post(&server, Some(API_KEY), Some("gzip"), b"not gzip at all"),
        400,
        "bad_gzip",
    );
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    expect(
        post(&server, Some(API_KEY), Some("gzip"), &truncated),
        400,
        "bad_gzip",
    );
    expect(
        post(&server, Some(API_KEY), Some("br"), &good),
        415,
        "unsupported_encoding",
    );

    expect(
        post(
            &server,
            Some(API_KEY),
            Some("gzip"),
            &gzip(&[0xff, 0xff, 0xff, 0xff]),
        ),
        400,
        "malformed_protobuf",
    );

    let mut short_id = batch(3, 1);
    short_id.batch_id = vec![1, 2, 3];
    expect(
        post(&server, Some(API_KEY), None, &short_id.encode_to_vec()),
        400,
        "invalid_batch",
    );

    let mut no_device = batch(4, 1);
    no_device.device_id.clear();
    expect(
        post(&server, Some(API_KEY), None, &no_device.encode_to_vec()),
        400,
        "invalid_batch",
    );

    let mut bad_index = batch(5, 2);
    bad_index.names[1] = 40;
    expect(
        post(&server, Some(API_KEY), None, &bad_index.encode_to_vec()),
        400,
        "invalid_batch",
    );

    let mut ragged = batch(6, 2);
    ragged.time_deltas_ms.pop();
    expect(
        post(&server, Some(API_KEY), None, &ragged.encode_to_vec()),
        400,
        "invalid_batch",
    );

    let too_many = batch(7, 10_001);
    expect(
        post(
            &server,
            Some(API_KEY),
            Some("gzip"),
            &gzip(&too_many.encode_to_vec()),
        ),
        400,
        "invalid_batch",
    );

    assert_eq!(server.stats().events, 0, "nothing bad was stored");
    // The server is still healthy after all of that.
    expect(post(&server, Some(API_KEY), Some("gzip"), &good), 200, "");
}

#[test]
fn the_sdk_rejects_bad_events_with_reasons_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let device = open_device(starling_core::Config::new(dir.path()));
    type Check = fn(&InvalidEvent) -> bool;
    let cases: Vec<(Event, Check)> = vec![
        (Event::new(""), |e| matches!(e, InvalidEvent::EmptyName)),
        (Event::new("Bad Name"), |e| {
            matches!(e, InvalidEvent::BadName { .. })
        }),
        (Event::new("x".repeat(65)), |e| {
            matches!(e, InvalidEvent::NameTooLong { .. })
        }),
        (Event::new("e").with("depth", f64::NAN), |e| {
            matches!(e, InvalidEvent::NotFinite { .. })
        }),
        (Event::new("e").with("depth", f64::INFINITY), |e| {
            matches!(e, InvalidEvent::NotFinite { .. })
        }),
        (Event::new("e").with("s", "x".repeat(2000)), |e| {
            matches!(e, InvalidEvent::StringTooLong { .. })
        }),
        (Event::new("e").with("a", 1).with("a", 2), |e| {
            matches!(e, InvalidEvent::DuplicateKey(_))
        }),
        (Event::new("e").at(4_102_444_800_000), |e| {
            matches!(e, InvalidEvent::TimeInFuture { .. })
        }),
        (Event::new("e").at(1_700_000_000), |e| {
            matches!(e, InvalidEvent::TimeTooEarly(_))
        }),
    ];
    let count = cases.len() as u64;
    for (event, check) in cases {
        match device.track(event.clone()) {
            Err(Error::InvalidEvent(reason)) => {
                assert!(check(&reason), "{event:?} gave {reason}");
                assert!(!reason.to_string().is_empty());
            }
            other => panic!("{event:?} was not rejected: {other:?}"),
        }
    }
    device.flush().unwrap();
    let d = device.diagnostics().unwrap();
    assert_eq!(d.events_rejected_invalid, count);
    assert_eq!(d.events_committed, 0, "no bad event was stored");
}

#[test]
fn the_sdk_refuses_a_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = starling_core::Config::new(dir.path());
    config.batch_max_events = 0;
    assert!(
        matches!(starling_core::Starling::open(config), Err(Error::Config(m)) if m.contains("batch_max_events"))
    );

    let config = starling_core::Config::new(dir.path()).with_server("ftp://x", "k");
    assert!(matches!(
        starling_core::Starling::open(config),
        Err(Error::Config(_))
    ));

    let config = starling_core::Config::new(dir.path()).with_server("https://x", "");
    assert!(
        matches!(starling_core::Starling::open(config), Err(Error::Config(m)) if m.contains("api_key"))
    );

    let device = open_device(starling_core::Config::new(dir.path()));
    assert!(matches!(device.sync(), Err(Error::NoServer)));
}
