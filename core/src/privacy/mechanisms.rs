//! The noise mechanisms behind every private release, each built with opendp.
//!
//! Every function here clamps its input so that the sensitivity it declares to opendp holds,
//! builds the opendp measurement for this one release (opendp's measurements are not `Send`,
//! so none is kept), draws the noise, and asks the measurement's privacy map what the release
//! costs. The cost is what the ledger charges: it is never recomputed by hand.
//!
//! The unit of privacy is the device: two neighbouring inputs are any two inputs the device
//! could have produced (local differential privacy), so each sensitivity is the diameter of the
//! clamped input set.

use std::collections::HashSet;

use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::{
    make_gaussian, make_laplace, make_randomized_response, make_randomized_response_bool,
};
use opendp::measures::{MaxDivergence, ZeroConcentratedDivergence};
use opendp::metrics::{AbsoluteDistance, L1Distance, L2Distance};

use crate::error::{Error, Result};

/// The privacy cost of one release, as opendp's privacy map computed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cost {
    /// Pure differential privacy: the release is epsilon-DP.
    Epsilon(f64),
    /// Zero-concentrated differential privacy: the release is rho-zCDP.
    Rho(f64),
}

impl Cost {
    /// The amount, whatever the measure.
    pub fn amount(&self) -> f64 {
        match self {
            Cost::Epsilon(v) | Cost::Rho(v) => *v,
        }
    }

    /// `"epsilon"` or `"rho"`: the measure's name as stored in the ledger.
    pub fn measure(&self) -> &'static str {
        match self {
            Cost::Epsilon(_) => "epsilon",
            Cost::Rho(_) => "rho",
        }
    }
}

/// Counts with integer (discrete Laplace, also called two-sided geometric) noise.
#[derive(Debug, Clone, PartialEq)]
pub struct NoisyCounts {
    /// The noised counts, in the order of the input. May be negative.
    pub values: Vec<i64>,
    /// Scale `s` of the discrete Laplace noise: `P(noise = k)` is proportional to
    /// `exp(-|k| / s)`.
    pub scale: f64,
    /// What the release costs.
    pub cost: Cost,
}

/// A sum of real values with Laplace noise.
#[derive(Debug, Clone, PartialEq)]
pub struct NoisySum {
    /// The noised sum.
    pub value: f64,
    /// Scale `b` of the Laplace noise (standard deviation `b * sqrt(2)`).
    pub scale: f64,
    /// What the release costs.
    pub cost: Cost,
}

/// A vector with Gaussian noise.
#[derive(Debug, Clone, PartialEq)]
pub struct NoisyVector {
    /// The clipped, noised vector.
    pub values: Vec<f64>,
    /// Standard deviation of the noise added to each coordinate.
    pub sigma: f64,
    /// What the release costs (rho, zero-concentrated DP).
    pub cost: Cost,
}

/// One categorical answer through randomized response.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomizedAnswer {
    /// The reported category: the true one with probability `truth_probability`, otherwise one
    /// of the others, uniformly.
    pub answer: String,
    /// Probability that the report is the truth.
    pub truth_probability: f64,
    /// What the release costs.
    pub cost: Cost,
}

/// One boolean answer through randomized response.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomizedBool {
    /// The reported bit: the truth with probability `truth_probability`.
    pub answer: bool,
    /// Probability that the report is the truth.
    pub truth_probability: f64,
    /// What the release costs.
    pub cost: Cost,
}

fn dp_error(what: &str, e: opendp::error::Error) -> Error {
    Error::Privacy(format!(
        "{what}: {}",
        e.message.unwrap_or_else(|| e.variant.to_string())
    ))
}

fn check_positive(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::Privacy(format!(
            "{name} must be a positive finite number, got {value}"
        )))
    }
}

/// Releases counts, each clamped to `[0, max_per_count]`, with discrete Laplace noise of scale
/// `sensitivity / epsilon`, where the L1 sensitivity is the diameter of the clamped set,
/// `counts.len() * max_per_count`, or `max_total * 2` when the device's contributions are also
/// limited to `max_total` in all (a histogram: moving them all from one bucket to another
/// changes the vector by twice their number).
pub fn noisy_counts(
    counts: &[u64],
    max_per_count: u64,
    max_total: Option<u64>,
    epsilon: f64,
) -> Result<NoisyCounts> {
    check_positive("epsilon", epsilon)?;
    if max_per_count == 0 || counts.is_empty() {
        return Err(Error::Privacy(
            "a count release needs at least one count and a positive bound per count".into(),
        ));
    }
    let mut clamped: Vec<i64> = counts
        .iter()
        .map(|&c| c.min(max_per_count) as i64)
        .collect();
    let by_cells = counts.len() as u64 * max_per_count;
    let sensitivity = match max_total {
        Some(total) => {
            // Keep the first `total` contributions, bucket by bucket, so the bound holds.
            let mut left = total as i64;
            for c in clamped.iter_mut() {
                *c = (*c).min(left);
                left -= *c;
            }
            by_cells.min(2 * total)
        }
        None => by_cells,
    };
    let sensitivity = i64::try_from(sensitivity)
        .map_err(|_| Error::Privacy("the count bounds are too large".into()))?;
    let scale = sensitivity as f64 / epsilon;

    let measurement = make_laplace::<_, _, MaxDivergence>(
        VectorDomain::new(AtomDomain::<i64>::default()),
        L1Distance::<i64>::default(),
        scale,
        None,
    )
    .map_err(|e| dp_error("building the count mechanism", e))?;
    let cost = measurement
        .map(&sensitivity)
        .map_err(|e| dp_error("privacy map of the count mechanism", e))?;
    let values = measurement
        .invoke(&clamped)
        .map_err(|e| dp_error("noising the counts", e))?;
    Ok(NoisyCounts {
        values,
        scale,
        cost: Cost::Epsilon(cost),
    })
}

/// Releases the sum of `values`, each clamped to `[lower, upper]`, of which at most
/// `max_values` are kept, with Laplace noise. Sensitivity: `max_values * (upper - lower)`.
pub fn noisy_sum(
    values: &[f64],
    lower: f64,
    upper: f64,
    max_values: usize,
    epsilon: f64,
) -> Result<NoisySum> {
    check_positive("epsilon", epsilon)?;
    if !(lower.is_finite() && upper.is_finite() && lower < upper) || max_values == 0 {
        return Err(Error::Privacy(format!(
            "a sum needs finite bounds lower < upper and max_values > 0, got [{lower}, {upper}] and {max_values}"
        )));
    }
    let sum: f64 = values
        .iter()
        .filter(|v| !v.is_nan())
        .take(max_values)
        .map(|v| v.clamp(lower, upper))
        .sum();
    let sensitivity = max_values as f64 * (upper - lower);
    let scale = sensitivity / epsilon;

    let measurement = make_laplace::<_, _, MaxDivergence>(
        AtomDomain::<f64>::new_non_nan(),
        AbsoluteDistance::<f64>::default(),
        scale,
        None,
    )
    .map_err(|e| dp_error("building the sum mechanism", e))?;
    let cost = measurement
        .map(&sensitivity)
        .map_err(|e| dp_error("privacy map of the sum mechanism", e))?;
    let value = measurement
        .invoke(&sum)
        .map_err(|e| dp_error("noising the sum", e))?;
    Ok(NoisySum {
        value,
        scale,
        cost: Cost::Epsilon(cost),
    })
}

/// Sums with independent real Laplace noise.
#[derive(Debug, Clone, PartialEq)]
pub struct NoisySums {
    /// The noised sums, in the order of the input. May be negative.
    pub values: Vec<f64>,
    /// Scale `b` of the Laplace noise added to each sum.
    pub scale: f64,
    /// What the release costs.
    pub cost: Cost,
}

/// Releases non-negative sums whose total is at most `max_total` (the caller keeps that bound;
/// negative or non-finite inputs count as 0 and the total is cut to `max_total`, sum by sum),
/// with Laplace noise of scale `sensitivity / epsilon`. The L1 sensitivity is the diameter of
/// that set: `max_total` for one sum, `2 * max_total` for several.
pub fn noisy_sums(sums: &[f64], max_total: f64, epsilon: f64) -> Result<NoisySums> {
    check_positive("epsilon", epsilon)?;
    check_positive("max_total", max_total)?;
    if sums.is_empty() {
        return Err(Error::Privacy(
            "a sum release needs at least one sum".into(),
        ));
    }
    let mut left = max_total;
    let clamped: Vec<f64> = sums
        .iter()
        .map(|&v| {
            let v = if v.is_finite() { v.max(0.0) } else { 0.0 }.min(left);
            left -= v;
            v
        })
        .collect();
    let sensitivity = if sums.len() == 1 {
        max_total
    } else {
        2.0 * max_total
    };
    let scale = sensitivity / epsilon;
    let measurement = make_laplace::<_, _, MaxDivergence>(
        VectorDomain::new(AtomDomain::<f64>::new_non_nan()),
        L1Distance::<f64>::default(),
        scale,
        None,
    )
    .map_err(|e| dp_error("building the sums mechanism", e))?;
    let cost = measurement
        .map(&sensitivity)
        .map_err(|e| dp_error("privacy map of the sums mechanism", e))?;
    let values = measurement
        .invoke(&clamped)
        .map_err(|e| dp_error("noising the sums", e))?;
    Ok(NoisySums {
        values,
        scale,
        cost: Cost::Epsilon(cost),
    })
}

/// Releases `values` clipped to L2 norm `max_norm`, with Gaussian noise for a cost of `rho`
/// (zero-concentrated DP). Sensitivity: `2 * max_norm`, the diameter of the clipping ball;
/// `sigma = sensitivity / sqrt(2 * rho)`.
pub fn gaussian_vector(values: &[f64], max_norm: f64, rho: f64) -> Result<NoisyVector> {
    check_positive("rho", rho)?;
    check_positive("max_norm", max_norm)?;
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return Err(Error::Privacy(
            "a vector release needs at least one value, all finite".into(),
        ));
    }
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    let shrink = if norm > max_norm {
        max_norm / norm
    } else {
        1.0
    };
    let clipped: Vec<f64> = values.iter().map(|v| v * shrink).collect();
    let sensitivity = 2.0 * max_norm;
    let sigma = sensitivity / (2.0 * rho).sqrt();

    let measurement = make_gaussian::<_, _, ZeroConcentratedDivergence>(
        VectorDomain::new(AtomDomain::<f64>::new_non_nan()),
        L2Distance::<f64>::default(),
        sigma,
        None,
    )
    .map_err(|e| dp_error("building the Gaussian mechanism", e))?;
    let cost = measurement
        .map(&sensitivity)
        .map_err(|e| dp_error("privacy map of the Gaussian mechanism", e))?;
    let values = measurement
        .invoke(&clipped)
        .map_err(|e| dp_error("noising the vector", e))?;
    Ok(NoisyVector {
        values,
        sigma,
        cost: Cost::Rho(cost),
    })
}

/// The probability of telling the truth that makes randomized response over `categories`
/// options epsilon-DP: `e^epsilon / (e^epsilon + categories - 1)`.
pub fn truth_probability(epsilon: f64, categories: usize) -> f64 {
    let e = epsilon.exp();
    e / (e + categories as f64 - 1.0)
}

/// Reports `truth` among `categories` through randomized response at `epsilon`. A truth that
/// is not one of the categories is reported as a uniformly random category.
pub fn randomized_answer(
    truth: &str,
    categories: &[String],
    epsilon: f64,
) -> Result<RandomizedAnswer> {
    check_positive("epsilon", epsilon)?;
    let set: HashSet<String> = categories.iter().cloned().collect();
    if set.len() < 2 || set.len() != categories.len() {
        return Err(Error::Privacy(
            "randomized response needs at least two distinct categories".into(),
        ));
    }
    let prob = truth_probability(epsilon, set.len());

    let measurement = make_randomized_response(set, prob)
        .map_err(|e| dp_error("building randomized response", e))?;
    let cost = measurement
        .map(&1)
        .map_err(|e| dp_error("privacy map of randomized response", e))?;
    let answer = measurement
        .invoke(&truth.to_owned())
        .map_err(|e| dp_error("randomizing the answer", e))?;
    Ok(RandomizedAnswer {
        answer,
        truth_probability: prob,
        cost: Cost::Epsilon(cost),
    })
}

/// Reports `truth` through randomized response at `epsilon`.
pub fn randomized_bool(truth: bool, epsilon: f64) -> Result<RandomizedBool> {
    check_positive("epsilon", epsilon)?;
    let prob = truth_probability(epsilon, 2);

    let measurement = make_randomized_response_bool(prob, false)
        .map_err(|e| dp_error("building randomized response", e))?;
    let cost = measurement
        .map(&1)
        .map_err(|e| dp_error("privacy map of randomized response", e))?;
    let answer = measurement
        .invoke(&truth)
        .map_err(|e| dp_error("randomizing the answer", e))?;
    Ok(RandomizedBool {
        answer,
        truth_probability: prob,
        cost: Cost::Epsilon(cost),
    })
}

/// Variance of discrete Laplace noise of scale `s`: `2 a / (1 - a)^2` with `a = exp(-1 / s)`.
pub fn discrete_laplace_variance(scale: f64) -> f64 {
    let a = (-1.0 / scale).exp();
    2.0 * a / ((1.0 - a) * (1.0 - a))
}

#[cfg(test)]
mod tests {
    //! The noise is drawn from opendp's secure generator, which cannot be seeded: the tolerances
    //! are wide multiples (6 standard errors) of each statistic's own sampling error, so a
    //! correct mechanism fails about once in 10^8 runs while a wrong scale is caught.

    use super::*;

    const Z: f64 = 6.0;

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    /// Checks the sample mean against `truth` and the sample variance against `variance`;
    /// `kurtosis` is the noise's fourth standardised moment (3 for Gaussian, 6 for Laplace).
    fn check_moments(samples: &[f64], truth: f64, variance: f64, kurtosis: f64) {
        let n = samples.len() as f64;
        let (mean, var) = mean_var(samples);
        let mean_tolerance = Z * (variance / n).sqrt();
        assert!(
            (mean - truth).abs() < mean_tolerance,
            "mean {mean} vs {truth} (tolerance {mean_tolerance})"
        );
        let var_tolerance = Z * variance * ((kurtosis - 1.0) / n).sqrt();
        assert!(
            (var - variance).abs() < var_tolerance,
            "variance {var} vs {variance} (tolerance {var_tolerance})"
        );
    }

    #[test]
    fn count_noise_has_the_nominal_scale_and_the_charged_epsilon() {
        let epsilon = 0.5;
        let counts = vec![7u64; 4000];
        let mut samples = Vec::new();
        let mut release = None;
        for _ in 0..5 {
            // Cap 3, so the true counts are clamped to 3; sensitivity 4000 * 3.
            let r = noisy_counts(&counts[..], 3, None, epsilon).unwrap();
            samples.extend(r.values.iter().map(|&v| v as f64));
            release = Some(r);
        }
        let release = release.unwrap();
        assert!((release.scale - 4000.0 * 3.0 / epsilon).abs() < 1e-9);
        assert!(
            (release.cost.amount() - epsilon).abs() < 1e-9,
            "{:?}",
            release.cost
        );
        assert_eq!(release.cost.measure(), "epsilon");
        check_moments(&samples, 3.0, discrete_laplace_variance(release.scale), 6.0);
    }

    #[test]
    fn a_small_count_scale_matches_the_discrete_laplace_variance() {
        // At scale 2 the discreteness matters: 2a/(1-a)^2 = 7.92 against 2 s^2 = 8 for the
        // continuous Laplace. One count, sensitivity 1, epsilon 0.5.
        let mut samples = Vec::new();
        for _ in 0..20_000 {
            let r = noisy_counts(&[1], 1, None, 0.5).unwrap();
            samples.push(r.values[0] as f64);
        }
        check_moments(&samples, 1.0, discrete_laplace_variance(2.0), 6.5);
    }

    #[test]
    fn a_histogram_bound_limits_the_total_and_halves_nothing_else() {
        let r = noisy_counts(&[5, 5, 5, 5], 10, Some(6), 1.0).unwrap();
        // Diameter of {x >= 0, sum x <= 6}: 12, smaller than 4 * 10.
        assert!((r.scale - 12.0).abs() < 1e-9);
        assert!((r.cost.amount() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn sum_noise_has_the_nominal_scale() {
        let mut samples = Vec::new();
        let mut scale = 0.0;
        for _ in 0..20_000 {
            // Two of the three values kept, each clamped to [0, 2]: true sum 2 + 1.5.
            let r = noisy_sum(&[9.0, 1.5, 1.0], 0.0, 2.0, 2, 2.0).unwrap();
            assert!((r.cost.amount() - 2.0).abs() < 1e-9);
            scale = r.scale;
            samples.push(r.value);
        }
        assert!((scale - 2.0).abs() < 1e-12);
        check_moments(&samples, 3.5, 2.0 * scale * scale, 6.0);
    }

    #[test]
    fn gaussian_noise_has_the_nominal_sigma_and_the_charged_rho() {
        let rho = 0.125;
        // Norm 223.6, clipped to norm 1.
        let values: Vec<f64> = (0..2000).flat_map(|_| [3.0, 4.0]).collect();
        let r = gaussian_vector(&values, 1.0, rho).unwrap();
        assert!((r.cost.amount() - rho).abs() < 1e-9, "{:?}", r.cost);
        assert_eq!(r.cost.measure(), "rho");
        assert!((r.sigma - 2.0 / (2.0 * rho).sqrt()).abs() < 1e-12);
        let norm = (2000.0 * 25.0f64).sqrt();
        let mut noise = Vec::new();
        for _ in 0..10 {
            let r = gaussian_vector(&values, 1.0, rho).unwrap();
            noise.extend(r.values.iter().zip(&values).map(|(y, x)| y - x / norm));
        }
        check_moments(&noise, 0.0, r.sigma * r.sigma, 3.0);
        // A vector inside the ball is not scaled (sigma 0.0014 at this rho).
        let inside = gaussian_vector(&[0.03, 0.04], 1.0, 1e6).unwrap();
        assert!((inside.values[0] - 0.03).abs() < 0.05 && (inside.values[1] - 0.04).abs() < 0.05);
    }

    #[test]
    fn randomized_response_tells_the_truth_at_the_nominal_rate() {
        let categories: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let epsilon = 1.0;
        let n = 20_000;
        let mut truthful = 0u32;
        let mut others = [0u32; 4];
        let mut prob = 0.0;
        for _ in 0..n {
            let r = randomized_answer("b", &categories, epsilon).unwrap();
            assert!((r.cost.amount() - epsilon).abs() < 1e-9, "{:?}", r.cost);
            prob = r.truth_probability;
            let i = categories.iter().position(|c| *c == r.answer).unwrap();
            others[i] += 1;
            truthful += (r.answer == "b") as u32;
        }
        assert!((prob - epsilon.exp() / (epsilon.exp() + 3.0)).abs() < 1e-12);
        let tolerance = |p: f64| Z * (p * (1.0 - p) / n as f64).sqrt();
        let rate = truthful as f64 / n as f64;
        assert!(
            (rate - prob).abs() < tolerance(prob),
            "truth rate {rate} vs {prob}"
        );
        // The lies spread evenly over the other three.
        let lie = (1.0 - prob) / 3.0;
        for i in [0, 2, 3] {
            let r = others[i] as f64 / n as f64;
            assert!(
                (r - lie).abs() < tolerance(lie),
                "category {i}: {r} vs {lie}"
            );
        }
    }

    #[test]
    fn boolean_randomized_response_tells_the_truth_at_the_nominal_rate() {
        let epsilon = 0.5;
        let n = 20_000;
        let truthful = (0..n)
            .filter(|_| randomized_bool(true, epsilon).unwrap().answer)
            .count();
        let prob = truth_probability(epsilon, 2);
        let rate = truthful as f64 / n as f64;
        let tolerance = Z * (prob * (1.0 - prob) / n as f64).sqrt();
        assert!((rate - prob).abs() < tolerance, "{rate} vs {prob}");
        let cost = randomized_bool(false, epsilon).unwrap().cost;
        assert!((cost.amount() - epsilon).abs() < 1e-9);
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        assert!(noisy_counts(&[1], 1, None, 0.0).is_err());
        assert!(noisy_counts(&[1], 1, None, f64::NAN).is_err());
        assert!(noisy_counts(&[], 1, None, 1.0).is_err());
        assert!(noisy_sum(&[1.0], 2.0, 1.0, 1, 1.0).is_err());
        assert!(gaussian_vector(&[f64::INFINITY], 1.0, 1.0).is_err());
        let one = vec!["x".to_owned()];
        let err = randomized_answer("x", &one, 1.0).unwrap_err();
        assert!(err.to_string().contains("two distinct categories"), "{err}");
    }
}
