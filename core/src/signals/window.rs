//! Windowed counts: events in a sliding window that ends at the watermark, kept as counts per
//! time bucket.
//!
//! With buckets of `g` ms and a window of `n * g` ms, the count at watermark `W` covers the
//! buckets `floor(W/g) - n + 1 ..= floor(W/g)`, that is the events with a time in
//! `[(floor(W/g) - n + 1) * g, W]`. This window starts at a bucket boundary, so it is exact when
//! `W` ends a bucket and otherwise reaches back at most `g` ms further than `window_ms`: the
//! error is the number of events in one bucket's span, at most.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The state of one windowed count: at most `window / granularity` buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct WindowedCount {
    /// Events per bucket index (`time_ms.div_euclid(granularity_ms)`).
    buckets: BTreeMap<i64, u64>,
}

impl WindowedCount {
    /// Adds one event at `time_ms`, with the watermark already moved to `watermark_ms`.
    pub(crate) fn add(&mut self, time_ms: i64, watermark_ms: i64, granularity_ms: u64, n: u64) {
        let oldest = first_bucket(watermark_ms, granularity_ms, n);
        let bucket = time_ms.div_euclid(granularity_ms as i64);
        if bucket >= oldest {
            *self.buckets.entry(bucket).or_insert(0) += 1;
        }
        self.prune(watermark_ms, granularity_ms, n);
    }

    /// Drops buckets that have left the window; the watermark never goes back, so they can
    /// never count again.
    pub(crate) fn prune(&mut self, watermark_ms: i64, granularity_ms: u64, n: u64) {
        let oldest = first_bucket(watermark_ms, granularity_ms, n);
        // Runs for every event that moves the watermark: split (which allocates) only when a
        // bucket has actually left the window.
        if self
            .buckets
            .first_key_value()
            .is_some_and(|(&b, _)| b < oldest)
        {
            self.buckets = self.buckets.split_off(&oldest);
        }
    }

    /// Events in the window ending at `watermark_ms`.
    pub(crate) fn value(&self, watermark_ms: i64, granularity_ms: u64, n: u64) -> u64 {
        let oldest = first_bucket(watermark_ms, granularity_ms, n);
        self.buckets.range(oldest..).map(|(_, c)| c).sum()
    }
}

/// Index of the oldest bucket inside the window that ends at `watermark_ms`.
pub(crate) fn first_bucket(watermark_ms: i64, granularity_ms: u64, n: u64) -> i64 {
    watermark_ms.div_euclid(granularity_ms as i64) - n as i64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_buckets_of_the_window() {
        let mut w = WindowedCount::default();
        // Window 60 ms in 6 buckets of 10 ms.
        for t in [0, 5, 15, 59] {
            w.add(t, 59, 10, 6);
        }
        assert_eq!(w.value(59, 10, 6), 4);
        // At 60 the window is buckets 1..=6: the two events of bucket 0 leave.
        w.prune(60, 10, 6);
        assert_eq!(w.value(60, 10, 6), 2);
        assert_eq!(w.buckets.len(), 2, "state is pruned");
        // A late event older than the window is ignored.
        w.add(3, 60, 10, 6);
        assert_eq!(w.value(60, 10, 6), 2);
    }
}
