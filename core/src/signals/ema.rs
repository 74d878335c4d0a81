//! Exponential moving averages with a half-life, in event time.
//!
//! The value at watermark `W` is defined from the events themselves, not from the order they
//! arrived in: the decayed sum `S = Σ x_i · 2^(-(W - t_i) / h)` and the decayed weight
//! `D = Σ 2^(-(W - t_i) / h)`. Over counts (`x_i = 1`) the signal is `S`, a decayed event count
//! (for a steady rate `r` events/ms it tends to `r · h / ln 2`); over a numeric property it is
//! `S / D`, a decayed mean. Both are kept relative to the watermark, so an event that arrives
//! late but within the allowed lateness gets exactly the weight it would have had in order.

use serde::{Deserialize, Serialize};

/// The state of one moving average: two numbers and the time they refer to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ema {
    /// Decayed sum of values, as of `at_ms`.
    sum: f64,
    /// Decayed weight, as of `at_ms`.
    weight: f64,
    /// The time the sums refer to (the watermark when they were last updated).
    at_ms: Option<i64>,
}

impl Ema {
    /// Adds `x` at `time_ms`, with the watermark already at `watermark_ms` (`time_ms <=
    /// watermark_ms`).
    pub(crate) fn add(&mut self, time_ms: i64, x: f64, watermark_ms: i64, half_life_ms: u64) {
        self.advance(watermark_ms, half_life_ms);
        let w = decay(watermark_ms - time_ms, half_life_ms);
        self.sum += x * w;
        self.weight += w;
    }

    /// Moves the reference time forward to `watermark_ms`, decaying both sums.
    fn advance(&mut self, watermark_ms: i64, half_life_ms: u64) {
        if let Some(at) = self.at_ms {
            if watermark_ms > at {
                let f = decay(watermark_ms - at, half_life_ms);
                self.sum *= f;
                self.weight *= f;
            }
        }
        self.at_ms = Some(self.at_ms.map_or(watermark_ms, |at| at.max(watermark_ms)));
    }

    /// The decayed sum at `watermark_ms` (the signal over counts).
    pub(crate) fn decayed_sum(&self, watermark_ms: i64, half_life_ms: u64) -> f64 {
        let mut at = self.clone();
        at.advance(watermark_ms, half_life_ms);
        at.sum
    }

    /// The decayed mean at `watermark_ms` (the signal over a property); 0 with no events.
    pub(crate) fn mean(&self) -> f64 {
        // Decay scales sum and weight alike, so the mean does not depend on the time.
        if self.weight > 0.0 {
            self.sum / self.weight
        } else {
            0.0
        }
    }
}

/// The weight left after `age_ms`: `2^(-age / half_life)`.
pub(crate) fn decay(age_ms: i64, half_life_ms: u64) -> f64 {
    (-(age_ms as f64) / half_life_ms as f64).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter() {
        let (mut a, mut b) = (Ema::default(), Ema::default());
        a.add(0, 2.0, 0, 100);
        a.add(100, 4.0, 100, 100);
        b.add(100, 4.0, 100, 100);
        b.add(0, 2.0, 100, 100);
        assert!((a.decayed_sum(200, 100) - b.decayed_sum(200, 100)).abs() < 1e-12);
        // At 200: 2 * 1/4 + 4 * 1/2 = 2.5; weights 1/4 + 1/2.
        assert!((a.decayed_sum(200, 100) - 2.5).abs() < 1e-12);
        assert!((a.mean() - 2.5 / 0.75).abs() < 1e-12);
    }
}
