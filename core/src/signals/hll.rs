//! Distinct counts with a HyperLogLog sketch (Flajolet et al. 2007, with linear counting for
//! small cardinalities).
//!
//! Written here rather than taken from a crate: the sketch is about 60 lines, its state must be
//! persisted in a stable format across SDK versions (so the hash must be fixed and ours, not a
//! crate's or the standard library's, which may change), and the crates available either lack
//! serde support or pull in more than the mobile library should carry.
//!
//! With `2^10 = 1024` one-byte registers the relative standard error is `1.04 / sqrt(1024)`,
//! about 3.3% (within 10% for 99.7% of estimates); below about 2.5 × 1024 distinct values
//! linear counting applies and small counts are close to exact.

use serde::{Deserialize, Serialize};

use crate::capture::Value;

/// Register index bits: 2^10 registers, 1 KiB of state.
const PRECISION: u32 = 10;
const REGISTERS: usize = 1 << PRECISION;

/// The state of one distinct count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct HyperLogLog {
    registers: Vec<u8>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog {
            registers: vec![0; REGISTERS],
        }
    }
}

impl HyperLogLog {
    /// Adds one value.
    pub(crate) fn add(&mut self, value: &Value) {
        let h = hash_value(value);
        let index = (h >> (64 - PRECISION)) as usize;
        // Rank of the first 1 bit in the remaining 54 bits, counting from 1.
        let rest = h << PRECISION;
        let rank = (rest.leading_zeros().min(64 - PRECISION) + 1) as u8;
        if let Some(r) = self.registers.get_mut(index) {
            *r = (*r).max(rank);
        }
    }

    /// The estimated number of distinct values added.
    pub(crate) fn estimate(&self) -> f64 {
        let m = self.registers.len() as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|&r| (-f64::from(r)).exp2()).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }
}

/// A 64-bit hash of a property value that never changes between SDK versions: FNV-1a over a
/// type tag and the value's bytes, then the splitmix64 finalizer to spread the bits.
pub(crate) fn hash_value(value: &Value) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match value {
        Value::String(s) => {
            feed(b"s");
            feed(s.as_bytes());
        }
        Value::Int(i) => {
            feed(b"i");
            feed(&i.to_le_bytes());
        }
        Value::Float(f) => {
            feed(b"f");
            feed(&f.to_bits().to_le_bytes());
        }
        Value::Bool(b) => feed(if *b { b"b1" } else { b"b0" }),
        Value::TimestampMs(t) => {
            feed(b"t");
            feed(&t.to_le_bytes());
        }
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_within_the_error_bound() {
        for n in [0u64, 1, 10, 100, 1_000, 20_000] {
            let mut h = HyperLogLog::default();
            for i in 0..n {
                h.add(&Value::String(format!("user-{i}")));
                h.add(&Value::String(format!("user-{i}"))); // repeats do not count
            }
            let est = h.estimate();
            let tolerance = (n as f64 * 0.1).max(1.0);
            assert!(
                (est - n as f64).abs() <= tolerance,
                "n = {n}, estimate {est}"
            );
        }
    }

    #[test]
    fn the_hash_is_stable() {
        // Persisted sketches depend on it: changing it needs a new signal state version.
        assert_eq!(
            hash_value(&Value::String("a".into())),
            0xb500_1f71_0f9b_7af3
        );
    }
}
