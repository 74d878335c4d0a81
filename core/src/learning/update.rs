//! Building a model update: the difference from the version training started from, clipped to
//! the task's L2 bound, optionally noised on the device, and quantized to int8.

use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_gaussian;
use opendp::measures::ZeroConcentratedDivergence;
use opendp::metrics::L2Distance;

use crate::error::{Error, Result};

/// An update before it is wrapped in its wire message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Delta {
    pub(crate) scale: f32,
    pub(crate) quantized: Vec<u8>,
    pub(crate) norm_before_clip: f64,
    /// Standard deviation of the noise added on the device (0: none).
    pub(crate) noise_sigma: f64,
    /// zCDP cost of that noise for this one release, from opendp's privacy map (0: none).
    pub(crate) rho: f64,
}

/// L2 norm.
pub(crate) fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `trained - base`, scaled down to L2 norm `clip_norm` if longer; then, when
/// `noise_multiplier > 0`, Gaussian noise of standard deviation `noise_multiplier * clip_norm`
/// on every coordinate; then quantized.
///
/// The noise protects the device's examples from whoever sees the single update (the server
/// included): with clipping, replacing all of the device's data moves the update by at most
/// `clip_norm` in L2, so the release is `rho = 1 / (2 z^2)`-zCDP, as opendp's map computes.
pub(crate) fn build(
    base: &[f64],
    trained: &[f64],
    clip_norm: f64,
    noise_multiplier: f64,
) -> Result<Delta> {
    if !(clip_norm.is_finite() && clip_norm > 0.0) {
        return Err(Error::Learning(format!(
            "the clip bound must be a positive number, not {clip_norm}"
        )));
    }
    if !(noise_multiplier.is_finite() && noise_multiplier >= 0.0) {
        return Err(Error::Learning(format!(
            "the noise multiplier must be 0 or more, not {noise_multiplier}"
        )));
    }
    let mut delta: Vec<f64> = trained.iter().zip(base).map(|(t, b)| t - b).collect();
    let norm_before_clip = norm(&delta);
    if !norm_before_clip.is_finite() {
        return Err(Error::Learning(
            "local training diverged: the update is not finite".into(),
        ));
    }
    if norm_before_clip > clip_norm {
        let shrink = clip_norm / norm_before_clip;
        delta.iter_mut().for_each(|d| *d *= shrink);
    }

    let (mut noise_sigma, mut rho) = (0.0, 0.0);
    if noise_multiplier > 0.0 {
        noise_sigma = noise_multiplier * clip_norm;
        let (noised, cost) = gaussian(&delta, noise_sigma, clip_norm)?;
        delta = noised;
        rho = cost;
    }

    let (scale, quantized) = starling_proto::quantize::quantize(&delta);
    Ok(Delta {
        scale,
        quantized,
        norm_before_clip,
        noise_sigma,
        rho,
    })
}

/// Adds Gaussian noise of standard deviation `sigma` to `values` with opendp, and returns the
/// noised values with the zCDP rho of releasing them when one contribution moves `values` by at
/// most `sensitivity` in L2.
pub(crate) fn gaussian(values: &[f64], sigma: f64, sensitivity: f64) -> Result<(Vec<f64>, f64)> {
    let measurement = gaussian_measurement(sigma)?;
    let rho = measurement.map(&sensitivity).map_err(dp)?;
    let noised = measurement.invoke(&values.to_vec()).map_err(dp)?;
    Ok((noised, rho))
}

/// The zCDP rho an update of a task with this clip bound and device noise multiplier will
/// cost, from the same opendp map [`build`] uses (0 without device noise). Lets the device
/// check its budget before it spends the battery on training.
pub(crate) fn device_rho(clip_norm: f64, noise_multiplier: f64) -> Result<f64> {
    if !noise_multiplier.is_finite() || noise_multiplier <= 0.0 {
        return Ok(0.0);
    }
    gaussian_measurement(noise_multiplier * clip_norm)?
        .map(&clip_norm)
        .map_err(dp)
}

fn dp(e: opendp::error::Error) -> Error {
    Error::Learning(format!("noise: {e}"))
}

type Gaussian = opendp::core::Measurement<
    VectorDomain<AtomDomain<f64>>,
    L2Distance<f64>,
    ZeroConcentratedDivergence,
    Vec<f64>,
>;

fn gaussian_measurement(sigma: f64) -> Result<Gaussian> {
    // Measurements are built per release: opendp's objects are not Send.
    make_gaussian::<_, _, ZeroConcentratedDivergence>(
        VectorDomain::new(AtomDomain::<f64>::new_non_nan()),
        L2Distance::<f64>::default(),
        sigma,
        None,
    )
    .map_err(dp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_updates_are_clipped_to_the_bound() {
        let base = vec![0.0; 4];
        let trained = vec![3.0, 4.0, 0.0, 0.0];
        let delta = build(&base, &trained, 1.0, 0.0).unwrap();
        assert_eq!(delta.norm_before_clip, 5.0);
        let back = starling_proto::quantize::dequantize(delta.scale, &delta.quantized);
        assert!((norm(&back) - 1.0).abs() < 0.01, "{back:?}");
        assert!((back[0] - 0.6).abs() < 0.005 && (back[1] - 0.8).abs() < 0.005);
        assert_eq!((delta.noise_sigma, delta.rho), (0.0, 0.0));

        let short = build(&base, &[0.1, 0.0, 0.0, 0.0], 1.0, 0.0).unwrap();
        let back = starling_proto::quantize::dequantize(short.scale, &short.quantized);
        assert!(
            (back[0] - 0.1).abs() < 1e-6,
            "a short update is not stretched"
        );
    }

    #[test]
    fn device_noise_is_charged_with_opendps_rho() {
        let base = vec![0.0; 200];
        let delta = build(&base, &base, 0.5, 2.0).unwrap();
        assert_eq!(delta.noise_sigma, 1.0);
        // rho = sensitivity^2 / (2 sigma^2) = 0.25 / 2.
        assert!((delta.rho - 0.125).abs() < 1e-9, "{}", delta.rho);
        assert_eq!(device_rho(0.5, 2.0).unwrap(), delta.rho, "the same map");
        assert_eq!(device_rho(0.5, 0.0).unwrap(), 0.0);
        let back = starling_proto::quantize::dequantize(delta.scale, &delta.quantized);
        let sd = (back.iter().map(|x| x * x).sum::<f64>() / back.len() as f64).sqrt();
        // The sample sd of 200 N(0, 1) draws is within 0.8..1.2 with overwhelming probability.
        assert!((0.8..1.2).contains(&sd), "{sd}");
    }

    #[test]
    fn bad_parameters_and_diverged_training_are_refused() {
        assert!(build(&[0.0], &[1.0], 0.0, 0.0).is_err());
        assert!(build(&[0.0], &[1.0], 1.0, -1.0).is_err());
        assert!(build(&[0.0], &[f64::NAN], 1.0, 0.0).is_err());
    }
}
