//! Turning accepted updates into a model version: the weighted mean, central differential
//! privacy, and the server optimizer.

use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_gaussian;
use opendp::measures::ZeroConcentratedDivergence;
use opendp::metrics::L2Distance;
use serde::{Deserialize, Serialize};

use super::task::ServerOptimizer;

/// One accepted update, dequantized and clipped to the task's sensitivity bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The device's pseudonymous id.
    pub device_id: String,
    /// The update's id, for deduplication.
    pub update_id: String,
    /// Training examples behind it.
    pub examples: u32,
    /// 1 for a fresh update, less for a stale one.
    pub staleness_weight: f64,
    /// The update.
    pub delta: Vec<f64>,
}

/// Server optimizer state (FedAdam's moments).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// First moment.
    pub m: Vec<f64>,
    /// Second moment.
    pub v: Vec<f64>,
}

/// What one aggregation released.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The mean update applied (noised when central noise is on).
    pub mean: Vec<f64>,
    /// zCDP rho of this release (0 without central noise), from opendp's privacy map.
    pub rho: f64,
}

/// L2 norm.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Scales `v` down to L2 norm `bound` if it is longer.
pub fn clip(v: &mut [f64], bound: f64) {
    let n = norm(v);
    if n > bound {
        let s = bound / n;
        v.iter_mut().for_each(|x| *x *= s);
    }
}

/// The mean of `contributions`.
///
/// Without central noise it is FedAvg's mean weighted by examples (and staleness). With
/// central noise (`noise_multiplier = z > 0`) every update weighs only its staleness weight
/// (at most 1), so adding or removing one device moves the weighted sum by at most
/// `sensitivity` (each update is clipped to it) in L2; Gaussian noise of standard deviation
/// `z * sensitivity` is added to the sum before dividing by the total weight (which depends on
/// versions only, not on data). The release is then `rho = 1 / (2 z^2)`-zCDP for each
/// participant, as opendp's privacy map computes it.
pub fn mean(
    contributions: &[Contribution],
    dims: usize,
    sensitivity: f64,
    noise_multiplier: f64,
) -> Result<Aggregate, String> {
    let private = noise_multiplier > 0.0;
    let mut sum = vec![0.0; dims];
    let mut total = 0.0;
    for c in contributions {
        let weight = if private {
            c.staleness_weight
        } else {
            f64::from(c.examples) * c.staleness_weight
        };
        for (s, d) in sum.iter_mut().zip(&c.delta) {
            *s += weight * d;
        }
        total += weight;
    }
    if total <= 0.0 {
        return Err("no weight to aggregate".into());
    }
    let mut rho = 0.0;
    if private {
        let dp = |e: opendp::error::Error| format!("central noise: {e}");
        // Built per release: opendp's measurements are not Send.
        let measurement = make_gaussian::<_, _, ZeroConcentratedDivergence>(
            VectorDomain::new(AtomDomain::<f64>::new_non_nan()),
            L2Distance::<f64>::default(),
            noise_multiplier * sensitivity,
            None,
        )
        .map_err(dp)?;
        rho = measurement.map(&sensitivity).map_err(dp)?;
        sum = measurement.invoke(&sum).map_err(dp)?;
    }
    Ok(Aggregate {
        mean: sum.into_iter().map(|s| s / total).collect(),
        rho,
    })
}

/// Applies the mean update to `weights` with the task's server optimizer.
pub fn apply(
    optimizer: &ServerOptimizer,
    state: &mut OptimizerState,
    weights: &mut [f64],
    mean: &[f64],
) {
    match *optimizer {
        ServerOptimizer::Average { learning_rate } => {
            for (w, d) in weights.iter_mut().zip(mean) {
                *w += learning_rate * d;
            }
        }
        ServerOptimizer::FedAdam {
            learning_rate,
            beta1,
            beta2,
            tau,
        } => {
            if state.m.len() != weights.len() {
                state.m = vec![0.0; weights.len()];
                // Starting v at tau^2 (as the paper does) keeps the first steps bounded.
                state.v = vec![tau * tau; weights.len()];
            }
            for i in 0..weights.len() {
                state.m[i] = beta1 * state.m[i] + (1.0 - beta1) * mean[i];
                state.v[i] = beta2 * state.v[i] + (1.0 - beta2) * mean[i] * mean[i];
                weights[i] += learning_rate * state.m[i] / (state.v[i].sqrt() + tau);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(examples: u32, delta: Vec<f64>) -> Contribution {
        Contribution {
            device_id: "d".into(),
            update_id: "u".into(),
            examples,
            staleness_weight: 1.0,
            delta,
        }
    }

    #[test]
    fn fedavg_weighs_by_examples() {
        let agg = mean(&[c(1, vec![1.0, 0.0]), c(3, vec![0.0, 1.0])], 2, 1.0, 0.0).unwrap();
        assert_eq!(agg.mean, vec![0.25, 0.75]);
        assert_eq!(agg.rho, 0.0);
    }

    #[test]
    fn central_noise_costs_the_rho_of_its_multiplier() {
        let many: Vec<Contribution> = (0..100).map(|_| c(10, vec![0.5; 50])).collect();
        let agg = mean(&many, 50, 1.0, 2.0).unwrap();
        // rho = 1 / (2 z^2) for z = 2.
        assert!((agg.rho - 0.125).abs() < 1e-9, "{}", agg.rho);
        // Noise sd on the mean is z * C / n = 0.02; the mean of 50 coordinates is within
        // 5 * 0.02 / sqrt(50) of 0.5 with overwhelming probability.
        let m = agg.mean.iter().sum::<f64>() / 50.0;
        assert!((m - 0.5).abs() < 0.015, "{m}");
        assert!(agg.mean.iter().any(|&x| x != 0.5), "noise was added");
    }

    #[test]
    fn fedadam_moves_in_the_direction_of_the_update() {
        let optimizer = ServerOptimizer::FedAdam {
            learning_rate: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        };
        let mut state = OptimizerState::default();
        let mut w = vec![0.0, 0.0];
        apply(&optimizer, &mut state, &mut w, &[1.0, -0.5]);
        assert!(w[0] > 0.0 && w[1] < 0.0, "{w:?}");
        let mut plain = vec![1.0];
        apply(
            &ServerOptimizer::Average { learning_rate: 1.0 },
            &mut state,
            &mut plain,
            &[0.5],
        );
        assert_eq!(plain, vec![1.5]);
    }

    #[test]
    fn clipping_bounds_the_norm() {
        let mut v = vec![3.0, 4.0];
        clip(&mut v, 1.0);
        assert!((norm(&v) - 1.0).abs() < 1e-12);
    }
}
