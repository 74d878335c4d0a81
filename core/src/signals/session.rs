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
//!
//! The lifecycle the SDK reports as events is followed separately and never revised: it moves
//! only with events at or after the latest one it saw, so a session starts when such an event
//! comes after the timeout or past the maximum length, and the previous session ends at that
//! moment. An out-of-order event inside the current session counts in its events; an older one
//! changes the values above but no boundary already reported.

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

/// Where one session signal stands, as of the watermark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionState {
    /// Whether the latest session is still open: the watermark is within the timeout of its
    /// last event.
    pub open: bool,
    /// Time of the latest session's first event (Unix ms); `None` before any event.
    pub start_ms: Option<i64>,
    /// Time of the latest session's last event (Unix ms); `None` before any event.
    pub last_event_ms: Option<i64>,
    /// Events in the latest session.
    pub events: u64,
    /// Sessions that have ended (every session but an open latest one).
    pub completed: u64,
}

/// A session boundary the lifecycle crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Boundary {
    /// A session started with an event at `time_ms`.
    Start { time_ms: i64 },
    /// A session with `events` events from `start_ms` to `last_ms` ended.
    End {
        start_ms: i64,
        last_ms: i64,
        events: u64,
    },
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
    /// The lifecycle reported as events; `None` in states stored before it was followed.
    #[serde(default)]
    lifecycle: Option<Run>,
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

    /// Follows the lifecycle with an event at `time_ms`, before it is added, and returns the
    /// boundaries it crossed (none, a start, or an end and a start).
    pub(crate) fn follow(
        &mut self,
        time_ms: i64,
        timeout_ms: u64,
        max_length_ms: u64,
    ) -> Vec<Boundary> {
        let live = match &mut self.lifecycle {
            Some(live) => live,
            None => {
                // A state from before the lifecycle was followed resumes at its latest session,
                // which was never reported as started.
                let run = self.run(timeout_ms, max_length_ms);
                self.lifecycle.insert(run)
            }
        };
        if live.events > 0 && time_ms < live.last_ms {
            if time_ms >= live.start_ms {
                live.events += 1;
            }
            return Vec::new();
        }
        let before = *live;
        live.step(time_ms, timeout_ms, max_length_ms);
        if live.sessions == before.sessions {
            return Vec::new();
        }
        let mut crossed = Vec::with_capacity(2);
        if before.events > 0 {
            crossed.push(Boundary::End {
                start_ms: before.start_ms,
                last_ms: before.last_ms,
                events: before.events,
            });
        }
        crossed.push(Boundary::Start { time_ms });
        crossed
    }

    /// Sessionization of every event kept.
    fn run(&self, timeout_ms: u64, max_length_ms: u64) -> Run {
        let mut run = self.frozen;
        for &t in &self.recent {
            run.step(t, timeout_ms, max_length_ms);
        }
        run
    }

    /// Where the signal stands at `watermark_ms`.
    pub(crate) fn state(
        &self,
        watermark_ms: i64,
        timeout_ms: u64,
        max_length_ms: u64,
    ) -> SessionState {
        let run = self.run(timeout_ms, max_length_ms);
        let open = run.events > 0 && (watermark_ms - run.last_ms) as u64 <= timeout_ms;
        let any = run.events > 0;
        SessionState {
            open,
            start_ms: any.then_some(run.start_ms),
            last_event_ms: any.then_some(run.last_ms),
            events: run.events,
            completed: run.sessions - u64::from(open),
        }
    }

    /// Folds the times before `cutoff_ms` into the frozen run.
    pub(crate) fn freeze(&mut self, cutoff_ms: i64, timeout_ms: u64, max_length_ms: u64) {
        let n = self.recent.partition_point(|&t| t < cutoff_ms);
        for t in self.recent.drain(..n) {
            self.frozen.step(t, timeout_ms, max_length_ms);
        }
    }

    /// The measure at `watermark_ms`.
    #[cfg(test)]
    pub(crate) fn value(
        &self,
        watermark_ms: i64,
        timeout_ms: u64,
        max_length_ms: u64,
        measure: SessionMeasure,
    ) -> f64 {
        measure_of(
            &self.state(watermark_ms, timeout_ms, max_length_ms),
            measure,
        )
    }
}

/// A measure read off a session state.
pub(crate) fn measure_of(state: &SessionState, measure: SessionMeasure) -> f64 {
    match (measure, state.start_ms, state.last_event_ms) {
        (SessionMeasure::Count, _, _) => (state.completed + u64::from(state.open)) as f64,
        (SessionMeasure::CurrentLengthMs, Some(start), Some(last)) if state.open => {
            (last - start) as f64
        }
        (SessionMeasure::CurrentEvents, _, _) if state.open => state.events as f64,
        _ => 0.0,
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

    /// Adds an event as the engine does: lifecycle first, then the values.
    fn both(s: &mut Sessions, t: i64, timeout: u64, max: u64) -> Vec<Boundary> {
        let crossed = s.follow(t, timeout, max);
        s.add(t, t - 1000, timeout, max);
        crossed
    }

    #[test]
    fn the_lifecycle_crosses_each_boundary_once_in_time_order() {
        let mut s = Sessions::default();
        assert_eq!(
            both(&mut s, 0, 100, 1000),
            vec![Boundary::Start { time_ms: 0 }]
        );
        assert!(both(&mut s, 50, 100, 1000).is_empty());
        assert!(both(&mut s, 150, 100, 1000).is_empty());
        // More than the timeout after the last event: the session ends, another starts.
        assert_eq!(
            both(&mut s, 251, 100, 1000),
            vec![
                Boundary::End {
                    start_ms: 0,
                    last_ms: 150,
                    events: 3
                },
                Boundary::Start { time_ms: 251 }
            ]
        );
        // Exactly the timeout still continues it.
        assert!(both(&mut s, 351, 100, 1000).is_empty());
        let state = s.state(351, 100, 1000);
        assert_eq!(
            state,
            SessionState {
                open: true,
                start_ms: Some(251),
                last_event_ms: Some(351),
                events: 2,
                completed: 1,
            }
        );
        assert!(!s.state(452, 100, 1000).open);
        assert_eq!(s.state(452, 100, 1000).completed, 2);
    }

    #[test]
    fn the_maximum_length_splits_the_lifecycle() {
        let mut s = Sessions::default();
        let mut crossed = Vec::new();
        for t in (0..=1000).step_by(50) {
            crossed.extend(both(&mut s, t, 100, 500));
        }
        let starts: Vec<i64> = crossed
            .iter()
            .filter_map(|b| match b {
                Boundary::Start { time_ms } => Some(*time_ms),
                _ => None,
            })
            .collect();
        assert_eq!(starts, vec![0, 500, 1000]);
        assert_eq!(
            crossed[1],
            Boundary::End {
                start_ms: 0,
                last_ms: 450,
                events: 10
            }
        );
    }

    #[test]
    fn late_events_never_revise_reported_boundaries() {
        let mut s = Sessions::default();
        both(&mut s, 0, 100, 10_000);
        both(&mut s, 300, 100, 10_000);
        both(&mut s, 350, 100, 10_000);
        // Late, inside the current session: counted in its events.
        assert!(both(&mut s, 320, 100, 10_000).is_empty());
        assert_eq!(s.value(350, 100, 10_000, SessionMeasure::Count), 2.0);
        // Late, before it: a session of its own in the values, but no boundary is crossed.
        assert!(both(&mut s, 150, 100, 10_000).is_empty());
        assert_eq!(s.value(350, 100, 10_000, SessionMeasure::Count), 3.0);
        assert_eq!(
            both(&mut s, 500, 100, 10_000),
            vec![
                Boundary::End {
                    start_ms: 300,
                    last_ms: 350,
                    events: 3
                },
                Boundary::Start { time_ms: 500 }
            ]
        );
    }

    #[test]
    fn a_state_stored_before_the_lifecycle_resumes_without_a_second_start() {
        let mut s = Sessions::default();
        s.add(0, -1000, 100, 10_000);
        s.add(50, -1000, 100, 10_000);
        let stored: Sessions = serde_json::from_str(
            &serde_json::to_string(&s)
                .unwrap()
                .replace(",\"lifecycle\":null", ""),
        )
        .unwrap();
        let mut s = stored;
        assert!(s.follow(80, 100, 10_000).is_empty());
        assert_eq!(
            s.follow(400, 100, 10_000),
            vec![
                Boundary::End {
                    start_ms: 0,
                    last_ms: 80,
                    events: 3
                },
                Boundary::Start { time_ms: 400 }
            ]
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
