//! Sessions: runs of activity separated by inactivity.
//!
//! Over the events' times in order, an event starts a new session when it is the first, when
//! more than `timeout_ms` passed since the previous event, or when the current session started
//! `max_length_ms` or more before it. The current session is the last one, and it is open only
//! while the watermark is within `timeout_ms` of its last event.
//!
//! Late events can merge or split sessions, so the times of recent events are kept: an event
//! applied now is never older than `watermark - allowed_lateness`, so everything before that
//! cutoff is final and folded into a few counters, and only the times after it stay in a sorted
//! buffer (bounded by [`MAX_BUFFERED_TIMES`]).

use serde::{Deserialize, Serialize};

use super::spec::SessionMeasure;

/// Most event times one session signal keeps within the allowed lateness. Past it the oldest
/// are folded in early, and events older than those are counted as too late for this signal.
pub(crate) const MAX_BUFFERED_TIMES: usize = 4096;

/// Sessionization of a prefix of the events, in time order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Run {
    sessions: u64,
    start_ms: i64,
    last_ms: i64,
    events: u64,
}

impl Run {
    fn step(&mut self, t: i64, timeout_ms: u64, max_length_ms: u64) {
        let new_session = self.events == 0
            || (t - self.last_ms) as u64 > timeout_ms
            || (t - self.start_ms) as u64 >= max_length_ms;
        if new_session {
            self.sessions += 1;
            self.start_ms = t;
            self.events = 0;
        }
        self.events += 1;
        self.last_ms = t;
    }
}

/// The state of one session signal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sessions {
    /// Sessions over every event before the cutoff.
    frozen: Run,
    /// Times at or after the cutoff, sorted.
    recent: Vec<i64>,
    /// Set once the buffer overflowed: events before this time can no longer be placed.
    frozen_through_ms: Option<i64>,
}

impl Sessions {
    /// Adds an event at `time_ms`; `cutoff_ms` is `watermark - allowed_lateness` after it.
    /// Returns false when the event is too late for this signal (only after an overflow).
    pub(crate) fn add(
        &mut self,
        time_ms: i64,
        cutoff_ms: i64,
        timeout_ms: u64,
        max_length_ms: u64,
    ) -> bool {
        if self.frozen_through_ms.is_some_and(|f| time_ms < f) {
            return false;
        }
        let at = self.recent.partition_point(|&t| t <= time_ms);
        self.recent.insert(at, time_ms);
        self.freeze(cutoff_ms, timeout_ms, max_length_ms);
        if self.recent.len() > MAX_BUFFERED_TIMES {
            let excess = self.recent.len() - MAX_BUFFERED_TIMES;
            self.frozen_through_ms = Some(self.recent[excess - 1]);
            for t in self.recent.drain(..excess) {
                self.frozen.step(t, timeout_ms, max_length_ms);
            }
        }
        true
    }

    /// Folds the times before `cutoff_ms` into the frozen run.
    pub(crate) fn freeze(&mut self, cutoff_ms: i64, timeout_ms: u64, max_length_ms: u64) {
        let n = self.recent.partition_point(|&t| t < cutoff_ms);
        for t in self.recent.drain(..n) {
            self.frozen.step(t, timeout_ms, max_length_ms);
        }
    }

    /// The measure at `watermark_ms`.
    pub(crate) fn value(
        &self,
        watermark_ms: i64,
        timeout_ms: u64,
        max_length_ms: u64,
        measure: SessionMeasure,
    ) -> f64 {
        let mut run = self.frozen;
        for &t in &self.recent {
            run.step(t, timeout_ms, max_length_ms);
        }
        let open = run.events > 0 && (watermark_ms - run.last_ms) as u64 <= timeout_ms;
        match measure {
            SessionMeasure::Count => run.sessions as f64,
            SessionMeasure::CurrentLengthMs if open => (run.last_ms - run.start_ms) as f64,
            SessionMeasure::CurrentEvents if open => run.events as f64,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_event_can_join_two_sessions() {
        let mut s = Sessions::default();
        s.add(0, -1000, 100, 10_000);
        s.add(300, -1000, 100, 10_000);
        assert_eq!(s.value(300, 100, 10_000, SessionMeasure::Count), 2.0);
        s.add(150, -1000, 100, 10_000);
        assert_eq!(s.value(300, 100, 10_000, SessionMeasure::Count), 3.0);
        s.add(80, -1000, 100, 10_000);
        s.add(220, -1000, 100, 10_000);
        assert_eq!(s.value(300, 100, 10_000, SessionMeasure::Count), 1.0);
        assert_eq!(
            s.value(300, 100, 10_000, SessionMeasure::CurrentEvents),
            5.0
        );
        assert_eq!(
            s.value(300, 100, 10_000, SessionMeasure::CurrentLengthMs),
            300.0
        );
        // Inactivity closes the current session.
        assert_eq!(
            s.value(401, 100, 10_000, SessionMeasure::CurrentEvents),
            0.0
        );
    }

    #[test]
    fn long_sessions_are_split_and_old_times_folded() {
        let mut s = Sessions::default();
        for t in (0..=1000).step_by(50) {
            s.add(t, t - 100, 100, 500);
        }
        assert!(s.recent.len() <= 3);
        // Sessions start at 0 and 500 and 1000.
        assert_eq!(s.value(1000, 100, 500, SessionMeasure::Count), 3.0);
    }
}
