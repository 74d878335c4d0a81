//! Pipeline benchmarks, each beside its baseline in the same process:
//!
//! * `track`: cost of `track()` on the caller's thread and the sustained durable rate, against a
//!   plain rusqlite loop inserting the same rows in 1000-row transactions (the ceiling);
//! * `wire`: bytes per event on the wire for a realistic mix, against gzip'd NDJSON of the same
//!   events as common analytics SDKs send them;
//! * `ingest`: server ingest rate over loopback with many concurrent devices, against the
//!   storage layer alone.
//!
//! Run: `cargo bench -p starling-tests --bench pipeline [-- track|wire|ingest]`.
//! Results go to stdout as Markdown, ready for docs/benchmarks.md.

use std::io::Write;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;
use rusqlite::{params, Connection};
use starling_core::{Config, Error, Event, Starling, Value};
use starling_proto::batch::{BatchBuilder, BatchHeader, WireEvent};
use starling_proto::v1::{StoredProperties, StoredProperty};
use starling_server::storage::IngestBatch;
use starling_server::{SqliteStorage, Storage};
use starling_tests::bench::{median, percentile};
use starling_tests::{TestServer, Workload, API_KEY, APP};

const RUNS: usize = 5;
const START_MS: i64 = 1_760_000_000_000;

fn main() {
    let run = starling_tests::bench::sections();
    starling_tests::bench::print_header(RUNS);
    if run("track") {
        bench_track();
    }
    if run("wire") {
        bench_wire();
    }
    if run("ingest") {
        bench_ingest();
    }
}

fn workload(n: usize, seed: u64) -> Vec<Event> {
    let mut w = Workload::new(seed, START_MS);
    (0..n).map(|_| w.next_event()).collect()
}

// ---------------------------------------------------------------------------------------------
// track

fn encode_props(properties: &[(String, Value)]) -> Option<Vec<u8>> {
    if properties.is_empty() {
        return None;
    }
    let stored = StoredProperties {
        properties: properties
            .iter()
            .map(|(k, v)| StoredProperty {
                key: k.clone(),
                value: Some(v.into()),
            })
            .collect(),
    };
    Some(stored.encode_to_vec())
}

/// The ceiling: the same rows, already encoded, inserted with one prepared statement in
/// 1000-row transactions, with the same pragmas as the SDK (WAL, synchronous=FULL).
fn baseline_insert(events: &[Event]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("baseline.db")).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
         time_ms INTEGER NOT NULL, recorded_ms INTEGER NOT NULL, props BLOB, size INTEGER NOT NULL)",
    )
    .unwrap();
    let rows: Vec<(String, i64, Option<Vec<u8>>)> = events
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.time_ms.unwrap(),
                encode_props(&e.properties),
            )
        })
        .collect();
    let start = Instant::now();
    for chunk in rows.chunks(1000) {
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO events (name, time_ms, recorded_ms, props, size) VALUES (?1, ?2, ?3, ?4, ?5)")
                .unwrap();
            for (name, time, props) in chunk {
                let size = 32 + name.len() + props.as_ref().map_or(0, |p| p.len());
                stmt.execute(params![name, time, time, props, size as i64])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    rows.len() as f64 / start.elapsed().as_secs_f64()
}

/// Starling: `track` every event on this thread, then `flush`; returns (durable events/s,
/// per-call latencies in ns, calls that met a full queue).
fn starling_track(events: &[Event]) -> (f64, Vec<u64>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.max_store_bytes = 1 << 30;
    let device = Starling::open(config).unwrap();
    device.set_consent(true).unwrap();
    let mut latencies = Vec::with_capacity(events.len());
    let mut full = 0;
    let start = Instant::now();
    for event in events {
        loop {
            let t = Instant::now();
            let result = device.track(event.clone());
            let elapsed = t.elapsed().as_nanos() as u64;
            match result {
                Ok(()) => {
                    latencies.push(elapsed);
                    break;
                }
                Err(Error::QueueFull { .. }) => {
                    full += 1;
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    device.flush().unwrap();
    let rate = events.len() as f64 / start.elapsed().as_secs_f64();
    (rate, latencies, full)
}

/// `track()` latency at an app's pace: bursts of 20 events, then 2 ms of quiet, so the queue
/// never fills and the writer commits in the background as it would in an app.
fn paced_track_latency(events: &[Event]) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let device = Starling::open(Config::new(dir.path())).unwrap();
    device.set_consent(true).unwrap();
    let mut latencies = Vec::with_capacity(events.len());
    for burst in events.chunks(20) {
        for event in burst {
            let event = event.clone();
            let t = Instant::now();
            device.track(event).unwrap();
            latencies.push(t.elapsed().as_nanos() as u64);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    latencies.sort_unstable();
    latencies
}

fn bench_track() {
    const N: usize = 200_000;
    let events = workload(N, 1);
    let (mut ceiling, mut ours, mut p50s, mut p99s) = (vec![], vec![], vec![], vec![]);
    let mut full_calls = 0;
    for _ in 0..RUNS {
        ceiling.push(baseline_insert(&events));
        let (rate, mut latencies, full) = starling_track(&events);
        ours.push(rate);
        latencies.sort_unstable();
        p50s.push(percentile(&latencies, 0.50) as f64);
        p99s.push(percentile(&latencies, 0.99) as f64);
        full_calls += full;
    }
    let (ceiling, ours) = (median(&mut ceiling), median(&mut ours));
    let paced = paced_track_latency(&events[..20_000]);
    println!("### track() and durable rate ({N} events of the realistic mix)\n");
    println!("| measure | Starling | plain rusqlite, 1000-row transactions | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| durable events/s | {:.0} | {:.0} | {:.0}% of the ceiling |",
        ours,
        ceiling,
        100.0 * ours / ceiling
    );
    println!(
        "| `track()` median, flat out | {:.2} µs | n/a | |",
        median(&mut p50s) / 1000.0
    );
    println!(
        "| `track()` p99, flat out | {:.2} µs | n/a | |",
        median(&mut p99s) / 1000.0
    );
    println!(
        "| `track()` median, app pace (20-event bursts, 2 ms apart) | {:.2} µs | n/a | |",
        percentile(&paced, 0.5) as f64 / 1000.0
    );
    println!(
        "| `track()` p99, app pace | {:.2} µs | n/a | |",
        percentile(&paced, 0.99) as f64 / 1000.0
    );
    println!("\n`track()` calls that met a full queue and were retried: {full_calls} over {RUNS} runs.\n");
}

// ---------------------------------------------------------------------------------------------
// wire

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// ISO-8601 UTC with milliseconds, as analytics SDKs write timestamps.
fn iso8601(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::String(s) => s.as_str().into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Bool(b) => (*b).into(),
        Value::TimestampMs(t) => iso8601(*t).into(),
    }
}

fn bench_wire() {
    const N: usize = 20_000;
    const BATCH: usize = 500;
    let events = workload(N, 2);
    let device_id = uuid::Uuid::new_v4().to_string();

    // Starling, through the real SDK and server: compressed request bodies acknowledged.
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path()).with_server(server.url(), API_KEY);
    config.batch_max_events = BATCH;
    config.max_store_bytes = 1 << 30;
    let device = Starling::open(config).unwrap();
    device.set_consent(true).unwrap();
    for e in &events {
        device.track(e.clone()).unwrap();
    }
    device.flush().unwrap();
    let report = device.sync().unwrap();
    assert_eq!(report.events_sent, N as u64);
    let ours = device.diagnostics().unwrap().bytes_sent as f64 / N as f64;

    // The same batches without gzip, to show what the columnar layout does on its own.
    let mut raw = 0usize;
    for (b, chunk) in events.chunks(BATCH).enumerate() {
        let mut builder = BatchBuilder::new(BatchHeader {
            batch_id: vec![b as u8; 16],
            device_id: device_id.clone(),
            sequence: b as u64 + 1,
            schema_version: 1,
            sdk_version: starling_core::SDK_VERSION.into(),
            sealed_at_ms: START_MS,
        });
        for (i, e) in chunk.iter().enumerate() {
            builder.push(
                (b * BATCH + i + 1) as u64,
                e.time_ms.unwrap(),
                &e.name,
                &e.properties,
            );
        }
        raw += builder.finish().encode_to_vec().len();
    }

    // NDJSON as common analytics SDKs send it: one object per event with a message id, the
    // anonymous id, an ISO timestamp, the name and the properties; gzip'd per batch.
    let (mut ndjson, mut lean) = (0usize, 0usize);
    for chunk in events.chunks(BATCH) {
        let (mut full_text, mut lean_text) = (String::new(), String::new());
        for (i, e) in chunk.iter().enumerate() {
            let props: serde_json::Map<String, serde_json::Value> = e
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect();
            let full_obj = serde_json::json!({
                "type": "track",
                "messageId": uuid::Uuid::new_v4().to_string(),
                "anonymousId": device_id,
                "timestamp": iso8601(e.time_ms.unwrap()),
                "event": e.name,
                "properties": props,
            });
            full_text.push_str(&full_obj.to_string());
            full_text.push('\n');
            // A lean variant: numeric id and time, no per-event device id.
            let lean_obj = serde_json::json!({
                "id": i, "t": e.time_ms.unwrap(), "event": e.name, "properties": props,
            });
            lean_text.push_str(&lean_obj.to_string());
            lean_text.push('\n');
        }
        ndjson += gzip(full_text.as_bytes()).len();
        lean += gzip(lean_text.as_bytes()).len();
    }
    let per = |b: usize| b as f64 / N as f64;
    println!(
        "### Bytes per event on the wire ({N} events of the realistic mix, batches of {BATCH})\n"
    );
    println!("| encoding | bytes/event | vs Starling |");
    println!("|---|---|---|");
    println!("| Starling: columnar protobuf + gzip (request bodies, measured by the SDK) | {ours:.2} | 1.00 |");
    println!(
        "| Starling batch without gzip | {:.2} | {:.2} |",
        per(raw),
        per(raw) / ours
    );
    println!("| gzip'd NDJSON, analytics-SDK style (message id, anonymous id, ISO time) | {:.2} | {:.2} |", per(ndjson), per(ndjson) / ours);
    println!(
        "| gzip'd NDJSON, lean (numeric id and time, no device id) | {:.2} | {:.2} |",
        per(lean),
        per(lean) / ours
    );
    println!(
        "\nStarling sends {:.0}% of the analytics-SDK-style NDJSON bytes.\n",
        100.0 * ours / per(ndjson)
    );
}

// ---------------------------------------------------------------------------------------------
// ingest

fn encoded_batches(
    devices: usize,
    per_device: usize,
    events_per_batch: usize,
) -> Vec<Vec<(Vec<u8>, Vec<WireEvent>)>> {
    let mut w = Workload::new(3, START_MS);
    (0..devices)
        .map(|d| {
            let device_id = format!("bench-device-{d}");
            (0..per_device)
                .map(|b| {
                    let mut builder = BatchBuilder::new(BatchHeader {
                        batch_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
                        device_id: device_id.clone(),
                        sequence: b as u64 + 1,
                        schema_version: 1,
                        sdk_version: "bench".into(),
                        sealed_at_ms: START_MS,
                    });
                    let mut events = Vec::new();
                    for i in 0..events_per_batch {
                        let e = w.next_event();
                        let seq = (b * events_per_batch + i + 1) as u64;
                        builder.push(seq, e.time_ms.unwrap(), &e.name, &e.properties);
                        events.push(WireEvent {
                            seq,
                            time_ms: e.time_ms.unwrap(),
                            name: e.name,
                            properties: e.properties,
                        });
                    }
                    (gzip(&builder.finish().encode_to_vec()), events)
                })
                .collect()
        })
        .collect()
}

fn bench_ingest() {
    const DEVICES: usize = 32;
    const PER_DEVICE: usize = 20;
    const EVENTS: usize = 100;
    let total = (DEVICES * PER_DEVICE * EVENTS) as f64;
    let (mut http, mut storage_only) = (vec![], vec![]);
    for _ in 0..RUNS {
        let batches = encoded_batches(DEVICES, PER_DEVICE, EVENTS);

        // Baseline: the storage layer alone, one batch per transaction.
        let dir = tempfile::tempdir().unwrap();
        let mut storage = SqliteStorage::open(dir.path()).unwrap();
        let start = Instant::now();
        for device in &batches {
            for (b, (_, events)) in device.iter().enumerate() {
                storage
                    .ingest(&[IngestBatch {
                        app: APP.into(),
                        batch_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
                        device_id: format!("{b}"),
                        sequence: b as u64,
                        sdk_version: "bench".into(),
                        schema_version: 1,
                        events: events.clone(),
                        losses: vec![],
                        received_ms: 0,
                    }])
                    .unwrap();
            }
        }
        storage_only.push(total / start.elapsed().as_secs_f64());

        // The server over loopback, one thread per device.
        let server = TestServer::start();
        let url = format!("{}/v1/events", server.url());
        let start = Instant::now();
        let threads: Vec<_> = batches
            .into_iter()
            .map(|device| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .timeout_global(Some(Duration::from_secs(30)))
                        .build()
                        .into();
                    for (body, _) in device {
                        agent
                            .post(&url)
                            .header("content-encoding", "gzip")
                            .header("authorization", format!("Bearer {API_KEY}"))
                            .send(&body[..])
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        http.push(total / start.elapsed().as_secs_f64());
        assert_eq!(server.stats().events, total as u64);
    }
    let (http, storage_only) = (median(&mut http), median(&mut storage_only));
    println!("### Server ingest ({DEVICES} concurrent devices × {PER_DEVICE} batches × {EVENTS} events, loopback)\n");
    println!("| path | events/s | ratio |");
    println!("|---|---|---|");
    println!(
        "| HTTP: gzip + decode + validate + grouped commit | {http:.0} | {:.2} |",
        http / storage_only
    );
    println!(
        "| storage layer alone, one batch per transaction (baseline) | {storage_only:.0} | 1.00 |"
    );
    println!();
}
