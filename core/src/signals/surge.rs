//! Surge and drop detection: how far the latest complete bucket's event count lies from an
//! exponentially weighted baseline of the buckets before it, as a z-score.
//!
//! A bucket is complete once its end is at or before `watermark - allowed_lateness`: no event
//! can still arrive in it. Complete buckets are taken in time order, empty ones included, and
//! each one first gets its score against the baseline so far, then joins the baseline:
//!
//! ```text
//! z = (x - mean) / sqrt(var + 1)        (the +1 event² keeps z finite on a flat baseline)
//! d = x - mean;  mean += a·d;  var = (1 - a)·(var + a·d²),   a = 1 - 2^(-1 / half_life_buckets)
//! ```
//!
//! The score stays 0 until `warmup_buckets` buckets have joined the baseline. Because only
//! complete buckets are scored, the score lags the watermark by up to one bucket plus the
//! allowed lateness.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most empty buckets folded into the baseline for one silence (a run of buckets without
/// events): past this the baseline has long since decayed to nothing, and an idle app does not
/// pay for a long loop on its return.
pub(crate) const MAX_EMPTY_RUN: i64 = 100_000;

/// The state of one surge detector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Surge {
    /// Counts of buckets not yet complete.
    open: BTreeMap<i64, u64>,
    /// The next bucket to complete, once the first one has.
    next_bucket: Option<i64>,
    mean: f64,
    var: f64,
    /// Buckets that joined the baseline.
    seen: u64,
    /// Score of the latest complete bucket.
    z: f64,
}

/// A surge detector's parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SurgeParams {
    pub(crate) bucket_ms: u64,
    pub(crate) half_life_buckets: f64,
    pub(crate) warmup_buckets: u32,
}

impl Surge {
    /// Adds one event; `cutoff_ms` is `watermark - allowed_lateness` after it. Returns false if
    /// its bucket is already complete (cannot happen for an event the engine applies).
    pub(crate) fn add(&mut self, time_ms: i64, cutoff_ms: i64, p: SurgeParams) -> bool {
        let bucket = time_ms.div_euclid(p.bucket_ms as i64);
        if self.next_bucket.is_some_and(|n| bucket < n) {
            return false;
        }
        *self.open.entry(bucket).or_insert(0) += 1;
        self.complete(cutoff_ms, p);
        true
    }

    /// Scores and folds in every bucket that ends at or before `cutoff_ms`.
    pub(crate) fn complete(&mut self, cutoff_ms: i64, p: SurgeParams) {
        let last = cutoff_ms.div_euclid(p.bucket_ms as i64) - 1;
        let Some(mut bucket) = self.next_bucket.or(self.open.keys().next().copied()) else {
            return;
        };
        if bucket > last {
            return;
        }
        let a = 1.0 - (-1.0 / p.half_life_buckets).exp2();
        while bucket <= last {
            if !self.open.contains_key(&bucket) {
                // Skip most of a long silence: the next bucket with events, or the end.
                let next = self
                    .open
                    .range(bucket..)
                    .next()
                    .map_or(last + 1, |(&b, _)| b);
                let silence_end = next.min(last + 1);
                if silence_end - bucket > MAX_EMPTY_RUN {
                    bucket = silence_end - MAX_EMPTY_RUN;
                }
            }
            let x = self.open.remove(&bucket).unwrap_or(0) as f64;
            let z = (x - self.mean) / (self.var + 1.0).sqrt();
            self.z = if self.seen >= u64::from(p.warmup_buckets) {
                z
            } else {
                0.0
            };
            let d = x - self.mean;
            self.mean += a * d;
            self.var = (1.0 - a) * (self.var + a * d * d);
            self.seen += 1;
            bucket += 1;
        }
        self.next_bucket = Some(bucket);
    }

    /// The z-score of the latest complete bucket.
    pub(crate) fn z(&self) -> f64 {
        self.z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: SurgeParams = SurgeParams {
        bucket_ms: 10,
        half_life_buckets: 5.0,
        warmup_buckets: 3,
    };

    #[test]
    fn a_burst_scores_high_and_silence_low() {
        let mut s = Surge::default();
        // One event per bucket for 20 buckets, then 20 in one bucket.
        for b in 0..20 {
            s.add(b * 10, b * 10, P);
        }
        for _ in 0..20 {
            s.add(205, 205, P);
        }
        s.complete(210, P);
        assert!(s.z() > 3.0, "burst z = {}", s.z());
        // Then silence for a while: a drop, but a bounded one.
        s.complete(500, P);
        assert!(s.z() < 0.0);
        assert!(s.open.is_empty());
    }

    #[test]
    fn a_long_silence_is_shortened() {
        let mut s = Surge::default();
        s.add(0, 0, P);
        // A year of 10 ms buckets, then one event.
        let later = 365 * 24 * 3_600_000;
        s.add(later, later, P);
        assert!(s.seen <= 2 * MAX_EMPTY_RUN as u64, "seen {}", s.seen);
        assert_eq!(s.open.len(), 1);
    }

    #[test]
    fn warmup_reports_zero() {
        let mut s = Surge::default();
        s.add(0, 0, P);
        s.add(15, 15, P);
        assert_eq!(s.z(), 0.0);
        assert_eq!(s.seen, 1);
    }
}
