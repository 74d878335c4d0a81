//! Every signal kind against a brute-force recomputation from the raw event log: events out of
//! order, late beyond the allowed lateness, a device clock that jumps back, and a restart (state
//! persisted as rows, then restored) in the middle.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;

use super::engine::{Engine, EventRef};
use super::heavy::{label, HeavyHitters};
use super::hll::HyperLogLog;
use super::spec::{PropertyFilter, SessionMeasure, SignalKind, SignalSpec};
use crate::capture::Value;

const LATENESS_MS: u64 = 1_000;

#[derive(Debug, Clone)]
struct Ev {
    name: &'static str,
    time_ms: i64,
    props: Vec<(String, Value)>,
}

fn specs() -> Vec<SignalSpec> {
    let mut specs = Vec::new();
    for (i, (window, g)) in [(600, None), (2_000, Some(100)), (10_000, Some(10_000))]
        .into_iter()
        .enumerate()
    {
        specs.push(SignalSpec::new(
            format!("count{i}"),
            SignalKind::WindowedCount {
                event: "a".into(),
                filter: None,
                window_ms: window,
                granularity_ms: g,
            },
        ));
    }
    specs.push(SignalSpec::new(
        "count_filtered",
        SignalKind::WindowedCount {
            event: "a".into(),
            filter: Some(PropertyFilter {
                key: "k".into(),
                value: Value::String("x".into()),
            }),
            window_ms: 3_000,
            granularity_ms: Some(50),
        },
    ));
    specs.push(SignalSpec::new(
        "ema_count",
        SignalKind::Ema {
            event: "a".into(),
            property: None,
            half_life_ms: 700,
        },
    ));
    specs.push(SignalSpec::new(
        "ema_mean",
        SignalKind::Ema {
            event: "b".into(),
            property: Some("v".into()),
            half_life_ms: 1_500,
        },
    ));
    for (i, measure) in [
        SessionMeasure::Count,
        SessionMeasure::CurrentLengthMs,
        SessionMeasure::CurrentEvents,
    ]
    .into_iter()
    .enumerate()
    {
        specs.push(SignalSpec::new(
            format!("session{i}"),
            SignalKind::Session {
                event: None,
                timeout_ms: 300,
                max_length_ms: 2_500,
                measure,
                emit_events: i == 0,
            },
        ));
    }
    specs.push(SignalSpec::new(
        "surge",
        SignalKind::Surge {
            event: "a".into(),
            bucket_ms: 200,
            baseline_half_life_buckets: 4.0,
            warmup_buckets: 3,
            threshold_z: 2.0,
        },
    ));
    specs.push(SignalSpec::new(
        "distinct",
        SignalKind::DistinctCount {
            event: "b".into(),
            property: "k".into(),
        },
    ));
    specs.push(SignalSpec::new(
        "heavy",
        SignalKind::HeavyHitters {
            event: "b".into(),
            property: "k".into(),
            k: 5,
        },
    ));
    specs
}

/// The events the engine should apply: the lateness rule, and nothing else.
fn applied(events: &[Ev]) -> Vec<&Ev> {
    let mut w: Option<i64> = None;
    let mut out = Vec::new();
    for e in events {
        if w.is_some_and(|w| e.time_ms < w - LATENESS_MS as i64) {
            continue;
        }
        w = Some(w.map_or(e.time_ms, |w| w.max(e.time_ms)));
        out.push(e);
    }
    out
}

/// Each signal's value recomputed from scratch from the applied events.
fn brute_force(events: &[Ev]) -> (BTreeMap<String, f64>, HyperLogLog, HeavyHitters) {
    let ev = applied(events);
    let w = ev.iter().map(|e| e.time_ms).max().unwrap_or(0);
    let cutoff = w - LATENESS_MS as i64;
    let named = |n: &str| -> Vec<&Ev> { ev.iter().filter(|e| e.name == n).copied().collect() };
    let mut out = BTreeMap::new();
    let mut hll = HyperLogLog::default();
    let mut heavy = HeavyHitters::default();
    for spec in specs() {
        let value = match &spec.kind {
            SignalKind::WindowedCount {
                filter,
                window_ms,
                granularity_ms,
                ..
            } => {
                let g = granularity_ms.unwrap_or(window_ms / 60) as i64;
                let last = w.div_euclid(g);
                let first = last - (*window_ms as i64 / g) + 1;
                named("a")
                    .into_iter()
                    .filter(|e| super::spec::passes(filter, &e.props))
                    .filter(|e| (first..=last).contains(&e.time_ms.div_euclid(g)))
                    .count() as f64
            }
            SignalKind::Ema {
                event,
                property,
                half_life_ms,
            } => {
                let weight = |e: &Ev| super::ema::decay(w - e.time_ms, *half_life_ms);
                match property {
                    None => named(event).into_iter().map(weight).sum(),
                    Some(key) => {
                        let pairs: Vec<(f64, f64)> = named(event)
                            .into_iter()
                            .filter_map(|e| {
                                super::spec::numeric(&e.props, key).map(|x| (x, weight(e)))
                            })
                            .collect();
                        let den: f64 = pairs.iter().map(|p| p.1).sum();
                        if den > 0.0 {
                            pairs.iter().map(|p| p.0 * p.1).sum::<f64>() / den
                        } else {
                            0.0
                        }
                    }
                }
            }
            SignalKind::Session {
                timeout_ms,
                max_length_ms,
                measure,
                ..
            } => {
                let mut times: Vec<i64> = ev.iter().map(|e| e.time_ms).collect();
                times.sort();
                let (mut sessions, mut start, mut last, mut n) = (0, 0, 0, 0);
                for t in times {
                    if n == 0 || t - last > *timeout_ms as i64 || t - start >= *max_length_ms as i64
                    {
                        sessions += 1;
                        start = t;
                        n = 0;
                    }
                    n += 1;
                    last = t;
                }
                let open = n > 0 && w - last <= *timeout_ms as i64;
                match measure {
                    SessionMeasure::Count => sessions as f64,
                    SessionMeasure::CurrentLengthMs if open => (last - start) as f64,
                    SessionMeasure::CurrentEvents if open => n as f64,
                    _ => 0.0,
                }
            }
            SignalKind::Surge {
                bucket_ms,
                baseline_half_life_buckets,
                warmup_buckets,
                ..
            } => {
                let g = *bucket_ms as i64;
                let mut counts = BTreeMap::new();
                for e in named("a") {
                    *counts.entry(e.time_ms.div_euclid(g)).or_insert(0u64) += 1;
                }
                let a = 1.0 - (-1.0 / baseline_half_life_buckets).exp2();
                let (mut mean, mut var, mut z) = (0.0f64, 0.0f64, 0.0);
                if let Some(&first) = counts.keys().next() {
                    for (seen, b) in (first..=cutoff.div_euclid(g) - 1).enumerate() {
                        let x = counts.get(&b).copied().unwrap_or(0) as f64;
                        z = if seen as u64 >= u64::from(*warmup_buckets) {
                            (x - mean) / (var + 1.0).sqrt()
                        } else {
                            0.0
                        };
                        let d = x - mean;
                        mean += a * d;
                        var = (1.0 - a) * (var + a * d * d);
                    }
                }
                z
            }
            SignalKind::DistinctCount { property, .. } => {
                let values: HashSet<String> = named("b")
                    .into_iter()
                    .filter_map(|e| e.props.iter().find(|(k, _)| k == property))
                    .map(|(_, v)| {
                        hll.add(v);
                        format!("{v:?}")
                    })
                    .collect();
                values.len() as f64
            }
            SignalKind::HeavyHitters { property, k, .. } => {
                // The exact most frequent count; the sketch is checked against it below.
                let mut counts: HashMap<String, u64> = HashMap::new();
                for e in named("b") {
                    if let Some((_, v)) = e.props.iter().find(|(key, _)| key == property) {
                        heavy.add(v, *k);
                        *counts.entry(label(v)).or_insert(0) += 1;
                    }
                }
                counts.values().copied().max().unwrap_or(0) as f64
            }
        };
        out.insert(spec.name, value);
    }
    (out, hll, heavy)
}

fn event() -> impl Strategy<Value = (i64, bool, bool, u8, f64)> {
    (
        // Clock step: mostly forward, sometimes a jump back (a clock set back by the user).
        prop_oneof![30 => 0i64..150, 1 => -2_500i64..0],
        any::<bool>(),             // name a or b
        prop::bool::weighted(0.2), // delivered late: time set up to 3 s in the past
        0u8..40,
        -50.0f64..50.0,
    )
}

fn build(raw: &[(i64, bool, bool, u8, f64)]) -> Vec<Ev> {
    let mut clock = 1_000_000i64;
    raw.iter()
        .map(|&(step, is_a, late, k, v)| {
            clock += step;
            let time_ms = if late {
                clock - 3 * i64::from(k) * 25
            } else {
                clock
            };
            let key = if k % 3 == 0 {
                "x".to_string()
            } else {
                format!("v{k}")
            };
            let props = if is_a {
                vec![("k".into(), Value::String(key))]
            } else {
                vec![
                    ("k".into(), Value::Int(i64::from(k))),
                    ("v".into(), Value::Float(v)),
                ]
            };
            Ev {
                name: if is_a { "a" } else { "b" },
                time_ms,
                props,
            }
        })
        .collect()
}

fn feed(engine: &mut Engine, events: &[Ev]) {
    for e in events {
        engine.apply(EventRef {
            name: e.name,
            time_ms: e.time_ms,
            props: &e.props,
        });
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The list's guarantee: every value seen more than `N / k + overcount` times is listed, and
/// no estimate is below the true count.
fn check_heavy_hitters(events: &[Ev], sketch: &HeavyHitters) -> Result<(), TestCaseError> {
    let mut counts: HashMap<String, (Value, u64)> = HashMap::new();
    for e in applied(events).into_iter().filter(|e| e.name == "b") {
        if let Some((_, v)) = e.props.iter().find(|(k, _)| k == "k") {
            counts.entry(label(v)).or_insert((v.clone(), 0)).1 += 1;
        }
    }
    let overcount = counts
        .values()
        .map(|(v, c)| sketch.estimate(v) - c)
        .max()
        .unwrap_or(0);
    let listed = sketch.top();
    for (l, (v, c)) in &counts {
        prop_assert!(sketch.estimate(v) >= *c);
        if *c > sketch.total() / 5 + overcount {
            prop_assert!(
                listed.iter().any(|(x, _)| x == l),
                "{l} seen {c} times is not listed"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_signal_matches_a_recomputation_across_a_restart(
        raw in prop::collection::vec(event(), 0..400),
        groups in prop::collection::vec(1usize..50, 1..20),
        restart_at in 0usize..400,
    ) {
        let events = build(&raw);
        let restart_at = restart_at.min(events.len());

        // Persist as the writer does: after each group, upsert the changed states.
        let mut engine = Engine::new(specs(), LATENESS_MS);
        let mut db: HashMap<String, (String, Vec<u8>)> = HashMap::new();
        let mut progress = String::new();
        let mut at = 0;
        for size in groups.iter().cycle() {
            if at >= restart_at {
                break;
            }
            let end = (at + size).min(restart_at);
            feed(&mut engine, &events[at..end]);
            let rows = engine.take_rows();
            progress = rows.progress;
            for (name, fp, state) in rows.states {
                db.insert(name, (fp, state));
            }
            at = end;
        }
        let rows: Vec<_> = db.into_iter().map(|(n, (f, s))| (n, f, s)).collect();
        let stored = (restart_at > 0).then_some(progress.as_str());
        let mut restored = Engine::restore(specs(), LATENESS_MS, stored, &rows);
        feed(&mut restored, &events[restart_at..]);

        let mut straight = Engine::new(specs(), LATENESS_MS);
        feed(&mut straight, &events);

        let (expected, expected_hll, expected_heavy) = brute_force(&events);
        let snapshot = restored.snapshot();
        let uninterrupted = straight.snapshot();
        for (name, want) in &expected {
            let got = snapshot.get(name).unwrap();
            prop_assert!(close(got, uninterrupted.get(name).unwrap()), "{name}: restart changed it");
            if name == "distinct" {
                prop_assert!(close(got, expected_hll.estimate()), "distinct: {got} vs sketch");
                prop_assert!((got - want).abs() <= (want * 0.1).max(2.0), "distinct: {got} vs {want}");
            } else if name == "heavy" {
                // Same sketch fed the same values in the same order: identical.
                let top = expected_heavy.top();
                prop_assert_eq!(snapshot.heavy_hitters(name).unwrap(), top.as_slice());
                prop_assert!(got >= *want, "heavy: the top estimate {got} is below the true {want}");
                check_heavy_hitters(&events, &expected_heavy)?;
            } else {
                prop_assert!(close(got, *want), "{name}: engine {got}, brute force {want}");
            }
        }
        let late = events.len() - applied(&events).len();
        prop_assert_eq!(snapshot.events_too_late(), late as u64);
        prop_assert_eq!(snapshot.events_applied(), applied(&events).len() as u64);
        prop_assert_eq!(snapshot.events_over_bounds(), 0);
    }
}
