//! On-device signals: windowed counts, moving averages, sessions, surge detection, distinct
//! counts and heavy hitters, kept current by the writer thread from the events it commits.
//!
//! The writer applies each committed group to every signal under one watermark (the largest
//! event time seen), persists the changed states in the same SQLite transaction as the events,
//! and then publishes an immutable [`Signals`] snapshot. Reading a snapshot takes a lock only
//! for the time of an `Arc` clone, never across I/O. `docs/signals.md` gives each signal's
//! meaning, units and error bound, and the lateness rules.

mod ema;
pub(crate) mod engine;
mod heavy;
mod hll;
mod session;
mod spec;
mod surge;
mod window;

#[cfg(test)]
mod proptests;

use std::collections::HashMap;
use std::sync::Arc;

pub use session::SessionState;
pub use spec::{
    PropertyFilter, SessionMeasure, SignalKind, SignalSpec, DEFAULT_SESSION_MAX_LENGTH_MS,
    DEFAULT_SESSION_TIMEOUT_MS,
};

use crate::error::{Error, Result};

/// Where a surge detector stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    /// |z| below the threshold, or still warming up.
    Steady,
    /// The rate is unusually high: z at or above the threshold.
    Surge,
    /// The rate is unusually low: z at or below minus the threshold.
    Drop,
}

/// An immutable snapshot of every signal's value, as of the watermark.
///
/// Cheap to clone and never changes; [`Starling::signals`](crate::Starling::signals) returns
/// the latest one.
#[derive(Debug, Clone)]
pub struct Signals {
    names: Arc<HashMap<String, usize>>,
    specs: Arc<Vec<SignalSpec>>,
    values: Vec<f64>,
    trends: Vec<(String, Trend)>,
    heavy: Vec<(String, Vec<(String, f64)>)>,
    sessions: Vec<(String, SessionState)>,
    progress: engine::Progress,
}

impl Signals {
    /// The value of the signal called `name`, if one is defined.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.names.get(name).map(|&i| self.values[i])
    }

    /// Every signal's name and value, in the order of [`Config::signals`](crate::Config).
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.specs
            .iter()
            .zip(&self.values)
            .map(|(s, v)| (s.name.as_str(), *v))
    }

    /// The values of `names`, in that order. Fails on the first name that is not defined.
    pub fn feature_vector(&self, names: &[&str]) -> Result<Vec<f64>> {
        names
            .iter()
            .map(|name| {
                self.get(name)
                    .ok_or_else(|| Error::UnknownSignal((*name).to_string()))
            })
            .collect()
    }

    /// The trend of the surge signal called `name`; `None` for other kinds or unknown names.
    pub fn trend(&self, name: &str) -> Option<Trend> {
        self.trends
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, trend)| *trend)
    }

    /// The most frequent values of the heavy-hitters signal called `name`, with their
    /// estimated counts, most frequent first; `None` for other kinds or unknown names.
    pub fn heavy_hitters(&self, name: &str) -> Option<&[(String, f64)]> {
        self.heavy
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, top)| top.as_slice())
    }

    /// Where the session signal called `name` stands: its latest session and how many ended;
    /// `None` for other kinds or unknown names.
    pub fn session(&self, name: &str) -> Option<SessionState> {
        self.sessions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, state)| *state)
    }

    /// The largest event time applied so far (Unix ms): the time the values refer to.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.progress.watermark_ms
    }

    /// Events applied to the signals since they were created (or consent was last withdrawn).
    pub fn events_applied(&self) -> u64 {
        self.progress.applied
    }

    /// Events left out because they were older than the watermark minus the allowed lateness.
    pub fn events_too_late(&self) -> u64 {
        self.progress.too_late
    }

    /// Times a signal could not place an event because one of its bounds was reached (see
    /// `docs/signals.md`); 0 in normal use.
    pub fn events_over_bounds(&self) -> u64 {
        self.progress.over_bounds
    }
}
