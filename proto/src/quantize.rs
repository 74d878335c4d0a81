//! 8-bit quantization of model updates: one `f32` scale and one int8 per weight, so an update
//! of `d` weights costs `d + 4` bytes instead of `4 d` (or `8 d`).
//!
//! `scale = max |x_i| / 127` and `q_i = round(x_i / scale)`, so every value is recovered to
//! within `scale / 2` and the largest one exactly (up to `f32` rounding).

/// Quantizes `values`: the scale and one two's-complement int8 per value. A vector of zeros
/// (or one with a non-finite value) quantizes to scale 0, all zeros, or NaN scale; the receiver
/// must check.
pub fn quantize(values: &[f64]) -> (f32, Vec<u8>) {
    let max = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return (0.0, vec![0; values.len()]);
    }
    if !max.is_finite() {
        return (f32::NAN, vec![0; values.len()]);
    }
    let scale = max / 127.0;
    let bytes = values
        .iter()
        .map(|v| ((v / scale).round().clamp(-127.0, 127.0) as i8) as u8)
        .collect();
    (scale as f32, bytes)
}

/// The values a quantized update stands for.
pub fn dequantize(scale: f32, bytes: &[u8]) -> Vec<f64> {
    let scale = f64::from(scale);
    bytes.iter().map(|&b| f64::from(b as i8) * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_within_half_a_step() {
        let values: Vec<f64> = (0..200)
            .map(|i| ((i as f64) * 0.731).sin() * 0.05)
            .collect();
        let (scale, bytes) = quantize(&values);
        assert_eq!(bytes.len(), values.len());
        let back = dequantize(scale, &bytes);
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= f64::from(scale) / 2.0 + 1e-9, "{a} vs {b}");
        }
        assert_eq!(quantize(&[0.0, 0.0]), (0.0, vec![0, 0]));
        assert!(quantize(&[1.0, f64::INFINITY]).0.is_nan());
        assert_eq!(dequantize(1.0, &[0x81]), vec![-127.0]);
    }
}
