//! The signal engine: applies committed events to every signal's state under one watermark,
//! builds the read-only snapshots, and turns states into rows for the database.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ema::Ema;
use super::heavy::HeavyHitters;
use super::hll::HyperLogLog;
use super::session::{self, Boundary, Sessions};
use super::spec::{self, SignalKind, SignalSpec};
use super::surge::{Surge, SurgeParams};
use super::window::WindowedCount;
use super::{Signals, Trend};
use crate::capture::Value;

/// One event as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventRef<'a> {
    pub(crate) name: &'a str,
    pub(crate) time_ms: i64,
    pub(crate) props: &'a [(String, Value)],
}

/// The state of one signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum State {
    Count(WindowedCount),
    Ema(Ema),
    Session(Sessions),
    Surge(Surge),
    Distinct(HyperLogLog),
    Heavy(HeavyHitters),
}

impl State {
    fn new(kind: &SignalKind) -> State {
        match kind {
            SignalKind::WindowedCount { .. } => State::Count(WindowedCount::default()),
            SignalKind::Ema { .. } => State::Ema(Ema::default()),
            SignalKind::Session { .. } => State::Session(Sessions::default()),
            SignalKind::Surge { .. } => State::Surge(Surge::default()),
            SignalKind::DistinctCount { .. } => State::Distinct(HyperLogLog::default()),
            SignalKind::HeavyHitters { .. } => State::Heavy(HeavyHitters::default()),
        }
    }
}

/// Engine-wide figures, persisted beside the states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// The largest event time applied, in ms.
    pub(crate) watermark_ms: Option<i64>,
    /// Events applied to the signals.
    pub(crate) applied: u64,
    /// Events older than `watermark - allowed_lateness` when they were committed.
    pub(crate) too_late: u64,
    /// Events a signal could not place because one of its bounds was reached.
    pub(crate) over_bounds: u64,
}

/// What the writer persists with a group of events: the engine's progress and the states that
/// changed, as `(name, fingerprint, state)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SignalRows {
    pub(crate) progress: String,
    pub(crate) states: Vec<(String, String, Vec<u8>)>,
}

/// Every configured signal's state.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    specs: Arc<Vec<SignalSpec>>,
    names: Arc<HashMap<String, usize>>,
    /// Event names whose properties some signal reads.
    needs_props: Arc<HashSet<String>>,
    lateness_ms: u64,
    progress: Progress,
    states: Vec<State>,
    /// States changed since the last [`Engine::rows`].
    dirty: Vec<bool>,
    /// Session boundaries crossed since the last [`Engine::take_session_events`], by signals
    /// that record them: `(signal index, boundary)`.
    boundaries: Vec<(usize, Boundary)>,
}

impl Engine {
    /// An engine with empty states.
    pub(crate) fn new(specs: Vec<SignalSpec>, lateness_ms: u64) -> Engine {
        let names = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let needs_props = specs
            .iter()
            .filter_map(|s| match &s.kind {
                SignalKind::WindowedCount {
                    event,
                    filter: Some(_),
                    ..
                }
                | SignalKind::Ema {
                    event,
                    property: Some(_),
                    ..
                }
                | SignalKind::DistinctCount { event, .. }
                | SignalKind::HeavyHitters { event, .. } => Some(event.clone()),
                _ => None,
            })
            .collect();
        let states = specs.iter().map(|s| State::new(&s.kind)).collect();
        let dirty = vec![true; specs.len()];
        Engine {
            specs: Arc::new(specs),
            names: Arc::new(names),
            needs_props: Arc::new(needs_props),
            lateness_ms,
            progress: Progress::default(),
            states,
            dirty,
            boundaries: Vec::new(),
        }
    }

    /// An engine resumed from persisted progress and states. A state is reused only if it was
    /// built by the same definition; a new or changed signal starts empty.
    pub(crate) fn restore(
        specs: Vec<SignalSpec>,
        lateness_ms: u64,
        progress: Option<&str>,
        rows: &[(String, String, Vec<u8>)],
    ) -> Engine {
        let mut engine = Engine::new(specs, lateness_ms);
        let Some(progress) = progress.and_then(|p| serde_json::from_str(p).ok()) else {
            return engine;
        };
        engine.progress = progress;
        for (i, spec) in engine.specs.iter().enumerate() {
            let fingerprint = spec.fingerprint();
            let stored = rows
                .iter()
                .find(|(name, fp, _)| *name == spec.name && *fp == fingerprint);
            match stored.map(|(_, _, blob)| serde_json::from_slice::<State>(blob)) {
                Some(Ok(state)) => {
                    engine.states[i] = state;
                    engine.dirty[i] = false;
                }
                Some(Err(e)) => {
                    log::warn!("starling: unreadable state of a signal, starting it over: {e}")
                }
                None => {}
            }
        }
        engine.advance();
        engine
    }

    /// Whether any signal is defined.
    pub(crate) fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Whether some signal reads the properties of events with this name.
    pub(crate) fn needs_props(&self, name: &str) -> bool {
        self.needs_props.contains(name)
    }

    /// The same definitions with empty states (after consent is withdrawn).
    pub(crate) fn cleared(&self) -> Engine {
        Engine::new(self.specs.as_ref().clone(), self.lateness_ms)
    }

    /// Marks every state as changed, so that the next [`Engine::rows`] writes them all.
    pub(crate) fn mark_all_dirty(&mut self) {
        self.dirty.iter_mut().for_each(|d| *d = true);
    }

    /// Applies one event, in commit order. An event older than `watermark - allowed_lateness`
    /// is counted as too late and changes nothing.
    pub(crate) fn apply(&mut self, event: EventRef<'_>) {
        let t = event.time_ms;
        if let Some(w) = self.progress.watermark_ms {
            if t < w.saturating_sub_unsigned(self.lateness_ms) {
                self.progress.too_late += 1;
                return;
            }
        }
        let moved = self.progress.watermark_ms.is_none_or(|w| t > w);
        let w = self.progress.watermark_ms.map_or(t, |w| w.max(t));
        self.progress.watermark_ms = Some(w);
        self.progress.applied += 1;
        let cutoff = w.saturating_sub_unsigned(self.lateness_ms);

        for (i, spec) in self.specs.iter().enumerate() {
            let placed = match (&spec.kind, &mut self.states[i]) {
                (
                    SignalKind::WindowedCount {
                        event: name,
                        filter,
                        window_ms,
                        granularity_ms,
                    },
                    State::Count(s),
                ) => {
                    if name != event.name || !spec::passes(filter, event.props) {
                        continue;
                    }
                    let g = spec::granularity(*window_ms, *granularity_ms);
                    s.add(t, w, g, window_ms / g);
                    true
                }
                (
                    SignalKind::Ema {
                        event: name,
                        property,
                        half_life_ms,
                    },
                    State::Ema(s),
                ) => {
                    if name != event.name {
                        continue;
                    }
                    let x = match property {
                        None => 1.0,
                        Some(key) => match spec::numeric(event.props, key) {
                            Some(x) => x,
                            None => continue,
                        },
                    };
                    s.add(t, x, w, *half_life_ms);
                    true
                }
                (
                    SignalKind::Session {
                        event: name,
                        timeout_ms,
                        max_length_ms,
                        emit_events,
                        ..
                    },
                    State::Session(s),
                ) => {
                    if name.as_ref().is_some_and(|n| n != event.name) {
                        continue;
                    }
                    let crossed = s.follow(t, *timeout_ms, *max_length_ms);
                    if *emit_events {
                        self.boundaries.extend(crossed.into_iter().map(|b| (i, b)));
                    }
                    s.add(t, cutoff, *timeout_ms, *max_length_ms)
                }
                (SignalKind::Surge { event: name, .. }, State::Surge(s)) => {
                    if name != event.name {
                        continue;
                    }
                    s.add(t, cutoff, surge_params(&spec.kind))
                }
                (
                    SignalKind::DistinctCount {
                        event: name,
                        property,
                    },
                    State::Distinct(s),
                ) => {
                    if name != event.name {
                        continue;
                    }
                    match event.props.iter().find(|(k, _)| k == property) {
                        Some((_, v)) => s.add(v),
                        None => continue,
                    }
                    true
                }
                (
                    SignalKind::HeavyHitters {
                        event: name,
                        property,
                        k,
                    },
                    State::Heavy(s),
                ) => {
                    if name != event.name {
                        continue;
                    }
                    match event.props.iter().find(|(key, _)| key == property) {
                        Some((_, v)) => s.add(v, *k),
                        None => continue,
                    }
                    true
                }
                _ => unreachable!("a signal's state always matches its kind"),
            };
            self.dirty[i] = true;
            if !placed {
                self.progress.over_bounds += 1;
            }
        }
        if moved {
            self.advance();
        }
    }

    /// Lets time-driven states catch up with the watermark: windows drop old buckets, sessions
    /// fold in final times, surge detectors score complete buckets.
    fn advance(&mut self) {
        let Some(w) = self.progress.watermark_ms else {
            return;
        };
        let cutoff = w.saturating_sub_unsigned(self.lateness_ms);
        for (spec, state) in self.specs.iter().zip(self.states.iter_mut()) {
            match (&spec.kind, state) {
                (
                    SignalKind::WindowedCount {
                        window_ms,
                        granularity_ms,
                        ..
                    },
                    State::Count(s),
                ) => {
                    let g = spec::granularity(*window_ms, *granularity_ms);
                    s.prune(w, g, window_ms / g);
                }
                (
                    SignalKind::Session {
                        timeout_ms,
                        max_length_ms,
                        ..
                    },
                    State::Session(s),
                ) => s.freeze(cutoff, *timeout_ms, *max_length_ms),
                (kind @ SignalKind::Surge { .. }, State::Surge(s)) => {
                    s.complete(cutoff, surge_params(kind))
                }
                _ => {}
            }
        }
    }

    /// The values of every signal at the watermark.
    pub(crate) fn snapshot(&self) -> Signals {
        let w = self.progress.watermark_ms.unwrap_or(0);
        let mut trends = Vec::new();
        let mut heavy = Vec::new();
        let mut sessions = Vec::new();
        let values = self
            .specs
            .iter()
            .zip(&self.states)
            .map(|(spec, state)| match (&spec.kind, state) {
                (
                    SignalKind::WindowedCount {
                        window_ms,
                        granularity_ms,
                        ..
                    },
                    State::Count(s),
                ) => {
                    let g = spec::granularity(*window_ms, *granularity_ms);
                    s.value(w, g, window_ms / g) as f64
                }
                (
                    SignalKind::Ema {
                        property,
                        half_life_ms,
                        ..
                    },
                    State::Ema(s),
                ) => match property {
                    None => s.decayed_sum(w, *half_life_ms),
                    Some(_) => s.mean(),
                },
                (
                    SignalKind::Session {
                        timeout_ms,
                        max_length_ms,
                        measure,
                        ..
                    },
                    State::Session(s),
                ) => {
                    let state = s.state(w, *timeout_ms, *max_length_ms);
                    sessions.push((spec.name.clone(), state));
                    session::measure_of(&state, *measure)
                }
                (SignalKind::Surge { threshold_z, .. }, State::Surge(s)) => {
                    let z = s.z();
                    let trend = if z >= *threshold_z {
                        Trend::Surge
                    } else if z <= -threshold_z {
                        Trend::Drop
                    } else {
                        Trend::Steady
                    };
                    trends.push((spec.name.clone(), trend));
                    z
                }
                (SignalKind::DistinctCount { .. }, State::Distinct(s)) => s.estimate(),
                (SignalKind::HeavyHitters { .. }, State::Heavy(s)) => {
                    let top = s.top();
                    let first = top.first().map_or(0.0, |(_, count)| *count);
                    heavy.push((spec.name.clone(), top));
                    first
                }
                _ => unreachable!("a signal's state always matches its kind"),
            })
            .collect();
        Signals {
            names: Arc::clone(&self.names),
            specs: Arc::clone(&self.specs),
            values,
            trends,
            heavy,
            sessions,
            progress: self.progress,
        }
    }

    /// The progress and the changed states, serialized, and clears the changed marks.
    pub(crate) fn take_rows(&mut self) -> SignalRows {
        let progress = serde_json::to_string(&self.progress).unwrap_or_default();
        let states = self
            .specs
            .iter()
            .zip(&self.states)
            .zip(&mut self.dirty)
            .filter(|(_, dirty)| **dirty)
            .map(|((spec, state), dirty)| {
                *dirty = false;
                let blob = serde_json::to_vec(state).unwrap_or_default();
                (spec.name.clone(), spec.fingerprint(), blob)
            })
            .collect();
        SignalRows { progress, states }
    }
}

/// Name of the event recorded when a session starts.
pub const SESSION_START_EVENT: &str = "starling.session_start";

/// Name of the event recorded when a session ends.
pub const SESSION_END_EVENT: &str = "starling.session_end";

/// One session event to record: `(name, time_ms, properties)`.
pub(crate) type SessionEvent = (&'static str, i64, Vec<(String, Value)>);

impl Engine {
    /// The events of the session boundaries crossed since the last call, in the order they
    /// were crossed. A start is timed at its first event; an end at the session's last event,
    /// with its `duration_ms` (first to last event) and `events`.
    pub(crate) fn take_session_events(&mut self) -> Vec<SessionEvent> {
        let specs = Arc::clone(&self.specs);
        self.boundaries
            .drain(..)
            .map(|(i, boundary)| {
                let signal = ("signal".to_owned(), Value::String(specs[i].name.clone()));
                match boundary {
                    Boundary::Start { time_ms } => (SESSION_START_EVENT, time_ms, vec![signal]),
                    Boundary::End {
                        start_ms,
                        last_ms,
                        events,
                    } => (
                        SESSION_END_EVENT,
                        last_ms,
                        vec![
                            signal,
                            ("start_ms".to_owned(), Value::Int(start_ms)),
                            ("duration_ms".to_owned(), Value::Int(last_ms - start_ms)),
                            (
                                "events".to_owned(),
                                Value::Int(i64::try_from(events).unwrap_or(i64::MAX)),
                            ),
                        ],
                    ),
                }
            })
            .collect()
    }
}

fn surge_params(kind: &SignalKind) -> SurgeParams {
    match kind {
        SignalKind::Surge {
            bucket_ms,
            baseline_half_life_buckets,
            warmup_buckets,
            ..
        } => SurgeParams {
            bucket_ms: *bucket_ms,
            half_life_buckets: *baseline_half_life_buckets,
            warmup_buckets: *warmup_buckets,
        },
        _ => unreachable!("only called for surge signals"),
    }
}
