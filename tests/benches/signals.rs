//! Signal benchmarks, each beside its baseline in the same process:
//!
//! * `cost`: the durable rate and writer time per event with 50 signals defined, against the
//!   same SDK with none (same events, same configuration otherwise);
//! * `read`: latency of `signals()` (a snapshot) and of `feature_vector()` over 10 names, idle
//!   and while another thread tracks as fast as it can.
//!
//! Run: `cargo bench -p starling-tests --bench signals`. Results go to stdout as Markdown,
//! ready for docs/benchmarks.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use starling_core::{
    Config, Error, Event, PropertyFilter, SessionMeasure, SignalKind, SignalSpec, Starling, Value,
};
use starling_tests::bench::{median, percentile};
use starling_tests::Workload;

const RUNS: usize = 3;
const EVENTS: usize = 100_000;
const READS: usize = 100_000;
const START_MS: i64 = 1_760_000_000_000;
const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 24 * 60 * MINUTE_MS;

/// 50 signals over the workload's events: 16 windowed counts, 10 moving averages, 9 session
/// measures, 8 surge detectors and 7 distinct counts.
fn fifty_signals() -> Vec<SignalSpec> {
    let events = ["screen_view", "click", "scroll", "search"];
    let windows = [MINUTE_MS, 60 * MINUTE_MS, DAY_MS, 7 * DAY_MS];
    let mut specs = Vec::new();
    for event in events {
        for window in windows {
            specs.push(SignalSpec::windowed_count(
                format!("{event}_count_{window}"),
                event,
                window,
            ));
        }
    }
    // Two of them filtered by a property, in place of the last two.
    specs.truncate(14);
    for screen in ["home", "cart"] {
        specs.push(SignalSpec::new(
            format!("click_{screen}_1d"),
            SignalKind::WindowedCount {
                event: "click".into(),
                filter: Some(PropertyFilter {
                    key: "screen".into(),
                    value: Value::String(screen.into()),
                }),
                window_ms: DAY_MS,
                granularity_ms: None,
            },
        ));
    }
    for (i, (event, property)) in [
        ("screen_view", None),
        ("click", None),
        ("scroll", None),
        ("search", None),
        ("purchase", None),
        ("purchase", Some("amount")),
        ("scroll", Some("depth")),
        ("search", Some("results")),
        ("click", Some("position")),
        ("purchase", Some("amount")),
    ]
    .into_iter()
    .enumerate()
    {
        specs.push(SignalSpec::new(
            format!("ema_{i}"),
            SignalKind::Ema {
                event: event.into(),
                property: property.map(String::from),
                half_life_ms: if i < 5 { 60 * MINUTE_MS } else { 7 * DAY_MS },
            },
        ));
    }
    for (i, event) in [None, Some("screen_view"), Some("purchase")]
        .into_iter()
        .enumerate()
    {
        for measure in [
            SessionMeasure::Count,
            SessionMeasure::CurrentLengthMs,
            SessionMeasure::CurrentEvents,
        ] {
            specs.push(SignalSpec::new(
                format!("session_{i}_{measure:?}"),
                SignalKind::Session {
                    event: event.map(String::from),
                    timeout_ms: 30 * MINUTE_MS,
                    max_length_ms: 4 * 60 * MINUTE_MS,
                    measure,
                    emit_events: false,
                },
            ));
        }
    }
    for (i, event) in ["screen_view", "click", "scroll", "search"]
        .into_iter()
        .enumerate()
    {
        for bucket_ms in [MINUTE_MS, 60 * MINUTE_MS] {
            specs.push(SignalSpec::new(
                format!("surge_{i}_{bucket_ms}"),
                SignalKind::Surge {
                    event: event.into(),
                    bucket_ms,
                    baseline_half_life_buckets: 30.0,
                    warmup_buckets: 10,
                    threshold_z: 3.0,
                },
            ));
        }
    }
    for (event, property) in [
        ("screen_view", "screen"),
        ("click", "target"),
        ("click", "screen"),
        ("search", "query"),
        ("purchase", "item"),
        ("scroll", "screen"),
        ("purchase", "amount"),
    ] {
        specs.push(SignalSpec::new(
            format!("distinct_{event}_{property}"),
            SignalKind::DistinctCount {
                event: event.into(),
                property: property.into(),
            },
        ));
    }
    assert_eq!(specs.len(), 50);
    specs
}

fn open(signals: Vec<SignalSpec>) -> (tempfile::TempDir, Starling) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.max_store_bytes = 1 << 30;
    config.signals = signals;
    let device = Starling::open(config).unwrap();
    device.set_consent(true).unwrap();
    (dir, device)
}

fn track_all(device: &Starling, events: &[Event]) {
    for event in events {
        loop {
            match device.track(event.clone()) {
                Ok(()) => break,
                Err(Error::QueueFull { .. }) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// Seconds from the first `track` to the return of `flush`.
fn durable_seconds(signals: Vec<SignalSpec>, events: &[Event]) -> f64 {
    let (_dir, device) = open(signals);
    let start = Instant::now();
    track_all(&device, events);
    device.flush().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(device.signals().events_applied() as usize, {
        if device.signals().iter().count() == 0 {
            0
        } else {
            events.len() - device.signals().events_too_late() as usize
        }
    });
    elapsed
}

fn bench_cost(events: &[Event]) {
    let (mut none, mut fifty) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        none.push(durable_seconds(Vec::new(), events));
        fifty.push(durable_seconds(fifty_signals(), events));
    }
    let (none, fifty) = (median(&mut none), median(&mut fifty));
    let per_event_us = |s: f64| s * 1e6 / events.len() as f64;
    println!(
        "### Cost per event ({} events of the realistic mix)\n",
        events.len()
    );
    println!("| measure | no signals | 50 signals | difference |");
    println!("|---|---|---|---|");
    println!(
        "| durable events/s | {:.0} | {:.0} | {:+.0}% |",
        events.len() as f64 / none,
        events.len() as f64 / fifty,
        (none / fifty - 1.0) * 100.0
    );
    println!(
        "| µs per event, track to durable | {:.2} | {:.2} | +{:.2} µs |",
        per_event_us(none),
        per_event_us(fifty),
        per_event_us(fifty) - per_event_us(none)
    );
    println!();
}

fn read_latencies(device: &Starling, names: &[&str]) -> (Vec<u64>, Vec<u64>) {
    let (mut snapshot, mut vector) = (Vec::with_capacity(READS), Vec::with_capacity(READS));
    for _ in 0..READS {
        let t = Instant::now();
        let s = device.signals();
        snapshot.push(t.elapsed().as_nanos() as u64);
        std::hint::black_box(s);
        let t = Instant::now();
        let v = device.feature_vector(names).unwrap();
        vector.push(t.elapsed().as_nanos() as u64);
        std::hint::black_box(v);
    }
    snapshot.sort_unstable();
    vector.sort_unstable();
    (snapshot, vector)
}

fn bench_read(events: &[Event]) {
    let specs = fifty_signals();
    let names: Vec<String> = specs.iter().step_by(5).map(|s| s.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (_dir, device) = open(specs);
    track_all(&device, &events[..events.len() / 2]);
    device.flush().unwrap();

    let (idle_snapshot, idle_vector) = read_latencies(&device, &names);

    // The same reads while another thread tracks the rest and the writer commits.
    let busy = Arc::new(AtomicBool::new(true));
    let tracker = {
        let (device, busy) = (device.clone(), Arc::clone(&busy));
        let rest: Vec<Event> = events[events.len() / 2..].to_vec();
        std::thread::spawn(move || {
            track_all(&device, &rest);
            device.flush().unwrap();
            busy.store(false, Ordering::SeqCst);
        })
    };
    let (load_snapshot, load_vector) = read_latencies(&device, &names);
    let finished_during_reads = !busy.load(Ordering::SeqCst);
    tracker.join().unwrap();

    println!("### Read latency ({READS} reads each, 50 signals, 10-name feature vector)\n");
    println!("| read | median | p99 |");
    println!("|---|---|---|");
    for (label, sorted) in [
        ("`signals()` snapshot, idle", &idle_snapshot),
        ("`feature_vector(10 names)`, idle", &idle_vector),
        (
            "`signals()` snapshot, while tracking flat out",
            &load_snapshot,
        ),
        (
            "`feature_vector(10 names)`, while tracking flat out",
            &load_vector,
        ),
    ] {
        println!(
            "| {label} | {} ns | {} ns |",
            percentile(sorted, 0.5),
            percentile(sorted, 0.99)
        );
    }
    if finished_during_reads {
        println!("\n(The tracking thread finished before the reads did.)");
    }
    println!();
}

fn main() {
    let run = starling_tests::bench::sections();
    let mut w = Workload::new(7, START_MS);
    let events: Vec<Event> = (0..EVENTS).map(|_| w.next_event()).collect();
    starling_tests::bench::print_header(RUNS);
    if run("cost") {
        bench_cost(&events);
    }
    if run("read") {
        bench_read(&events);
    }
}
