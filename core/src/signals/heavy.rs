//! Heavy hitters: the most frequent values of a property, from a Count-Min sketch (Cormode and
//! Muthukrishnan 2005) and a list of the `k` values with the highest estimates.
//!
//! Written here for the same reasons as the distinct count (`hll.rs`): a stable hash for
//! persisted state, serde support, and no extra weight in the mobile library.
//!
//! With `DEPTH = 4` rows of `WIDTH = 256` counters (8 KiB), an estimate never undercounts and
//! overcounts by at most `e / WIDTH · N`, about 1.1% of the `N` values added, with probability
//! at least `1 - e^-DEPTH`, about 98%. Candidates are compared on fresh estimates, so a value
//! seen more than `N / k + overcount` times is always in the list.

use serde::{Deserialize, Serialize};

use super::hll::hash_value;
use crate::capture::Value;

const DEPTH: usize = 4;
const WIDTH: usize = 256;

/// Longest label kept for a value in the list, in bytes.
const MAX_LABEL_BYTES: usize = 128;

/// The state of one heavy-hitters signal: 8 KiB of counters and at most `k` candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct HeavyHitters {
    counters: Vec<u64>,
    /// Values added.
    total: u64,
    /// Candidates: hash and readable label.
    top: Vec<(u64, String)>,
}

impl Default for HeavyHitters {
    fn default() -> Self {
        HeavyHitters {
            counters: vec![0; DEPTH * WIDTH],
            total: 0,
            top: Vec::new(),
        }
    }
}

impl HeavyHitters {
    /// Adds one value; keeps at most `k` candidates.
    pub(crate) fn add(&mut self, value: &Value, k: usize) {
        let h = hash_value(value);
        for row in 0..DEPTH {
            let i = cell(h, row);
            self.counters[i] = self.counters[i].saturating_add(1);
        }
        self.total += 1;
        if self.top.iter().any(|(c, _)| *c == h) {
            return;
        }
        if self.top.len() < k {
            self.top.push((h, label(value)));
            return;
        }
        let estimate = self.estimate_hash(h);
        let weakest = self
            .top
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (self.estimate_hash(*c), i))
            .min();
        if let Some((min, i)) = weakest {
            if estimate > min {
                self.top[i] = (h, label(value));
            }
        }
    }

    fn estimate_hash(&self, h: u64) -> u64 {
        (0..DEPTH)
            .map(|row| self.counters[cell(h, row)])
            .min()
            .unwrap_or(0)
    }

    /// The candidates with their estimated counts, most frequent first.
    pub(crate) fn top(&self) -> Vec<(String, f64)> {
        let mut top: Vec<(String, f64)> = self
            .top
            .iter()
            .map(|(h, l)| (l.clone(), self.estimate_hash(*h) as f64))
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top
    }

    /// The estimated count of a value (never below the true count).
    #[cfg(test)]
    pub(crate) fn estimate(&self, value: &Value) -> u64 {
        self.estimate_hash(hash_value(value))
    }

    /// Values added.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

/// The counter of `hash` in `row`: rows take independent-enough slices of a remixed hash.
fn cell(hash: u64, row: usize) -> usize {
    let mixed = hash
        .wrapping_add((row as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    row * WIDTH + ((mixed >> 32) as usize % WIDTH)
}

/// A readable label for a value, as the app sent it.
pub(crate) fn label(value: &Value) -> String {
    let mut text = match value {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::TimestampMs(t) => t.to_string(),
    };
    if text.len() > MAX_LABEL_BYTES {
        let mut end = MAX_LABEL_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_frequent_values_of_a_skewed_stream() {
        let mut hh = HeavyHitters::default();
        // Value i appears 1000 / (i + 1) times (Zipf-like), interleaved.
        let counts: Vec<u64> = (0..200).map(|i| 1000 / (i + 1)).collect();
        for round in 0..1000 {
            for (i, &c) in counts.iter().enumerate() {
                if round < c {
                    hh.add(&Value::Int(i as i64), 10);
                }
            }
        }
        let top = hh.top();
        assert_eq!(top.len(), 10);
        assert_eq!(top[0].0, "0");
        for (i, &c) in counts.iter().enumerate().take(5) {
            let est = hh.estimate(&Value::Int(i as i64));
            assert!(est >= c, "never undercounts");
            assert!(est - c <= hh.total() / 50, "small overcount: {est} vs {c}");
            assert!(
                top.iter().any(|(l, _)| *l == i.to_string()),
                "{i} is listed"
            );
        }
    }
}
