//! Per-arm ridge regression for LinUCB, undiscounted or discounted.
//!
//! Each arm estimates `θ = A⁻¹ b` and scores `θᵀx + alpha · sqrt(xᵀ A⁻¹ x)`, with
//! `A = ridge·I + Σ w_s x_s x_sᵀ` and `b = Σ w_s r_s x_s`, where the weight of an observation is
//! `w_s = discount^(updates of the bandit since it)`. The discount counts the updates of every
//! arm of the bandit, like the context-free counts: an arm that is not played for a while
//! forgets too, its uncertainty grows back towards the prior's, and it is explored again.
//!
//! * Without a discount, the arm keeps `A⁻¹` up to date with the Sherman–Morrison formula:
//!   an update costs O(d²).
//! * With one, the arm keeps the discounted sums `G = Σ w x xᵀ` (the ridge kept apart, so the
//!   regularisation never fades) and `b`, a common `scale` by which both are to be multiplied,
//!   and the eigendecomposition `G = Q Λ Qᵀ`. Fading every arm at an update only multiplies its
//!   `scale`; the arm that learns folds the scale into its sums, adds the observation and
//!   decomposes `G` again (nalgebra's symmetric eigensolver), which costs O(d³). A decision reads
//!   `A⁻¹ = Q diag(1 / (ridge + scale·λ)) Qᵀ` in O(d²), exact for any scale: a scale that
//!   falls below the smallest normal `f64` is set to 0 (an arm unplayed for very long: about
//!   70 000 updates of other arms at discount 0.99), which leaves the prior, `A = ridge·I`, `b = 0`.
//!   `G` and `b` stay below `max |x|² / (1 − discount)` and `max |r x| / (1 − discount)`.

use nalgebra::{DMatrix, SymmetricEigen};

use super::policy::BanditError;

/// Storage tag of an undiscounted arm (`A⁻¹`, `b`), the only form written before discounted
/// regressions existed.
pub(crate) const TAG_EXACT: u8 = 1;
/// Storage tag of a discounted arm (`scale`, `G`, `b`).
pub(crate) const TAG_DISCOUNTED: u8 = 2;

/// Iteration cap of the eigendecomposition (it converges in a few sweeps per eigenvalue).
const EIGEN_MAX_ITERATIONS: usize = 100_000;

/// The linear model of one arm over a `d`-dimensional context.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LinearArm {
    dims: usize,
    ridge: f64,
    model: Model,
}

#[derive(Debug, Clone, PartialEq)]
enum Model {
    /// No discount: `A⁻¹` (row-major, `dims × dims`) and `b`.
    Exact { a_inv: Vec<f64>, b: Vec<f64> },
    /// A discount: see the module documentation.
    Discounted(Discounted),
}

#[derive(Debug, Clone, PartialEq)]
struct Discounted {
    /// Factor by which `gram` and `b` are to be multiplied: the fading since the last update.
    scale: f64,
    /// `G`, row-major, symmetric, positive semi-definite.
    gram: Vec<f64>,
    b: Vec<f64>,
    /// Eigenvectors of `G`, one per row (that is, `Qᵀ`, row-major).
    basis: Vec<f64>,
    /// Eigenvalues of `G`, clamped at 0.
    eigenvalues: Vec<f64>,
    /// `Qᵀ b`.
    b_in_basis: Vec<f64>,
}

impl Discounted {
    /// `G` and `b` with their eigendecomposition, or `None` if it did not converge.
    fn new(dims: usize, gram: Vec<f64>, b: Vec<f64>) -> Option<Self> {
        let eigen = SymmetricEigen::try_new(
            DMatrix::from_row_slice(dims, dims, &gram),
            f64::EPSILON,
            EIGEN_MAX_ITERATIONS,
        )?;
        let mut basis = vec![0.0; dims * dims];
        for i in 0..dims {
            for j in 0..dims {
                basis[i * dims + j] = eigen.eigenvectors[(j, i)];
            }
        }
        let eigenvalues: Vec<f64> = eigen.eigenvalues.iter().map(|v| v.max(0.0)).collect();
        if !basis.iter().chain(&eigenvalues).all(|v| v.is_finite()) {
            return None;
        }
        let b_in_basis = project(&basis, &b);
        Some(Discounted {
            scale: 1.0,
            gram,
            b,
            basis,
            eigenvalues,
            b_in_basis,
        })
    }
}

/// `Qᵀ v` for `basis` = `Qᵀ` row-major.
fn project(basis: &[f64], v: &[f64]) -> Vec<f64> {
    basis
        .chunks_exact(v.len())
        .map(|row| row.iter().zip(v).map(|(q, v)| q * v).sum())
        .collect()
}

/// Refuses an observation whose products would not be finite numbers (features or rewards
/// near the largest `f64`), before anything is changed.
fn check_observation(x: &[f64], reward: f64) -> Result<(), BanditError> {
    let square: f64 = x.iter().map(|v| v * v).sum();
    let largest = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if square.is_finite() && (reward * largest).is_finite() {
        Ok(())
    } else {
        Err(BanditError::NotFinite(
            "the product of the context with itself or with the reward",
        ))
    }
}

impl LinearArm {
    /// A fresh arm: `A = ridge · I` (ridge > 0), `b = 0`; discounted or not.
    pub(crate) fn new(dims: usize, ridge: f64, discounted: bool) -> Self {
        let model = if discounted {
            // Decomposed like any other state, so that a fresh arm read back from storage is
            // identical to it.
            let (gram, b) = (vec![0.0; dims * dims], vec![0.0; dims]);
            Model::Discounted(
                Discounted::new(dims, gram.clone(), b.clone()).unwrap_or_else(|| {
                    let mut basis = vec![0.0; dims * dims];
                    for i in 0..dims {
                        basis[i * dims + i] = 1.0;
                    }
                    Discounted {
                        scale: 1.0,
                        gram,
                        b,
                        basis,
                        eigenvalues: vec![0.0; dims],
                        b_in_basis: vec![0.0; dims],
                    }
                }),
            )
        } else {
            let mut a_inv = vec![0.0; dims * dims];
            for i in 0..dims {
                a_inv[i * dims + i] = 1.0 / ridge;
            }
            Model::Exact {
                a_inv,
                b: vec![0.0; dims],
            }
        };
        LinearArm { dims, ridge, model }
    }

    /// Upper confidence bound `θᵀx + alpha · sqrt(xᵀ A⁻¹ x)` with `θ = A⁻¹ b`.
    pub(crate) fn ucb(&self, x: &[f64], alpha: f64) -> f64 {
        let (mean, variance) = self.mean_and_variance(x);
        mean + alpha * variance.max(0.0).sqrt()
    }

    /// `θᵀx` and `xᵀ A⁻¹ x`. O(d²).
    fn mean_and_variance(&self, x: &[f64]) -> (f64, f64) {
        match &self.model {
            Model::Exact { a_inv, b } => {
                let a_inv_x = project(a_inv, x);
                let mean = a_inv_x.iter().zip(b).map(|(u, b)| u * b).sum();
                let variance = a_inv_x.iter().zip(x).map(|(u, x)| u * x).sum();
                (mean, variance)
            }
            Model::Discounted(m) => {
                // A = Q (ridge + scale Λ) Qᵀ and the discounted b is scale · b.
                let (mut mean, mut variance) = (0.0, 0.0);
                for (i, row) in m.basis.chunks_exact(self.dims).enumerate() {
                    let z: f64 = row.iter().zip(x).map(|(q, x)| q * x).sum();
                    let inverse = 1.0 / (self.ridge + m.scale * m.eigenvalues[i]);
                    mean += m.scale * m.b_in_basis[i] * z * inverse;
                    variance += z * z * inverse;
                }
                (mean, variance)
            }
        }
    }

    /// One update of the bandit went to another arm: the past weighs `discount` times less.
    /// O(1); does nothing to an undiscounted arm.
    pub(crate) fn fade(&mut self, discount: f64) {
        if let Model::Discounted(m) = &mut self.model {
            m.scale *= discount;
            // Repeated rounding would otherwise stop at the smallest subnormal number instead
            // of reaching 0, and subnormal arithmetic is slow.
            if m.scale < f64::MIN_POSITIVE {
                m.scale = 0.0;
            }
        }
    }

    /// This arm after one more update of the bandit, which was this arm's: everything it knew
    /// fades by `discount` (if it is discounted), then `A += x xᵀ`, `b += reward · x`. Leaves
    /// `self` as it is, so that a refused observation changes nothing.
    pub(crate) fn learned(
        &self,
        x: &[f64],
        reward: f64,
        discount: f64,
    ) -> Result<Self, BanditError> {
        check_observation(x, reward)?;
        let d = self.dims;
        let model = match &self.model {
            Model::Exact { a_inv, b } => {
                // Sherman–Morrison: (A + x xᵀ)⁻¹ = A⁻¹ − (A⁻¹x)(A⁻¹x)ᵀ / (1 + xᵀA⁻¹x); A⁻¹ is
                // symmetric.
                let u = project(a_inv, x);
                let denominator = 1.0 + u.iter().zip(x).map(|(u, x)| u * x).sum::<f64>();
                let mut a_inv = a_inv.clone();
                for i in 0..d {
                    for j in 0..d {
                        a_inv[i * d + j] -= u[i] * u[j] / denominator;
                    }
                }
                let b = b.iter().zip(x).map(|(b, x)| b + reward * x).collect();
                Model::Exact { a_inv, b }
            }
            Model::Discounted(m) => {
                let scale = m.scale * discount;
                let mut gram = vec![0.0; d * d];
                for i in 0..d {
                    for j in 0..d {
                        gram[i * d + j] = scale * m.gram[i * d + j] + x[i] * x[j];
                    }
                }
                let b =
                    m.b.iter()
                        .zip(x)
                        .map(|(b, x)| scale * b + reward * x)
                        .collect();
                Model::Discounted(Discounted::new(d, gram, b).ok_or_else(|| {
                    BanditError::Numerical(
                        "the eigendecomposition of a LinUCB arm's regression did not converge"
                            .into(),
                    )
                })?)
            }
        };
        Ok(LinearArm {
            dims: d,
            ridge: self.ridge,
            model,
        })
    }

    /// `A⁻¹` and `b` as they weigh now, row-major (for conversions and tests).
    fn inverse_and_b(&self) -> (Vec<f64>, Vec<f64>) {
        let d = self.dims;
        match &self.model {
            Model::Exact { a_inv, b } => (a_inv.clone(), b.clone()),
            Model::Discounted(m) => {
                let mut a_inv = vec![0.0; d * d];
                for (k, q) in m.basis.chunks_exact(d).enumerate() {
                    let w = 1.0 / (self.ridge + m.scale * m.eigenvalues[k]);
                    for i in 0..d {
                        for j in 0..d {
                            a_inv[i * d + j] += q[i] * w * q[j];
                        }
                    }
                }
                (a_inv, m.b.iter().map(|b| m.scale * b).collect())
            }
        }
    }

    /// The same regression kept the other way, when the configured discount changed between
    /// undiscounted (exactly 1) and discounted since the state was stored. `None` if the stored
    /// `A⁻¹` is not positive definite.
    fn converted(self, discounted: bool) -> Option<Self> {
        let d = self.dims;
        let model = match (self.model, discounted) {
            (model @ Model::Exact { .. }, false) | (model @ Model::Discounted(_), true) => model,
            (Model::Exact { a_inv, b }, true) => {
                // G = A − ridge·I, with A the inverse of the stored A⁻¹.
                let a = DMatrix::from_row_slice(d, d, &a_inv).cholesky()?.inverse();
                let mut gram = vec![0.0; d * d];
                for i in 0..d {
                    for j in 0..d {
                        let symmetric = 0.5 * (a[(i, j)] + a[(j, i)]);
                        let ridge = if i == j { self.ridge } else { 0.0 };
                        gram[i * d + j] = symmetric - ridge;
                    }
                }
                Model::Discounted(Discounted::new(d, gram, b)?)
            }
            (model @ Model::Discounted(_), false) => {
                let arm = LinearArm {
                    dims: d,
                    ridge: self.ridge,
                    model,
                };
                let (a_inv, b) = arm.inverse_and_b();
                Model::Exact { a_inv, b }
            }
        };
        Some(LinearArm {
            dims: d,
            ridge: self.ridge,
            model,
        })
    }

    /// Appends the storage tag, `dims` and the model in little-endian form: `A⁻¹` and `b`
    /// without a discount, `scale`, `G` and `b` with one.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let values: Vec<f64> = match &self.model {
            Model::Exact { a_inv, b } => {
                out.push(TAG_EXACT);
                a_inv.iter().chain(b).copied().collect()
            }
            Model::Discounted(m) => {
                out.push(TAG_DISCOUNTED);
                std::iter::once(m.scale)
                    .chain(m.gram.iter().copied())
                    .chain(m.b.iter().copied())
                    .collect()
            }
        };
        out.extend_from_slice(&(self.dims as u32).to_le_bytes());
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Reads what [`LinearArm::encode`] wrote after the tag `tag`, in either form, and keeps
    /// it in the form the bandit's discount needs. `None` if it is damaged or has other
    /// dimensions.
    pub(crate) fn decode(
        tag: u8,
        r: &mut super::policy::Reader<'_>,
        dims: usize,
        ridge: f64,
        discounted: bool,
    ) -> Option<Self> {
        if r.u32()? as usize != dims {
            return None;
        }
        let mut read = |n: usize| -> Option<Vec<f64>> {
            (0..n).map(|_| r.f64().filter(|v| v.is_finite())).collect()
        };
        let model = match tag {
            TAG_EXACT => {
                let a_inv = read(dims * dims)?;
                let b = read(dims)?;
                Model::Exact { a_inv, b }
            }
            TAG_DISCOUNTED => {
                let scale = read(1)?[0];
                let gram = read(dims * dims)?;
                let b = read(dims)?;
                if !(0.0..=1.0).contains(&scale) {
                    return None;
                }
                let mut m = Discounted::new(dims, gram, b)?;
                m.scale = scale;
                Model::Discounted(m)
            }
            _ => return None,
        };
        LinearArm { dims, ridge, model }.converted(discounted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn learns_a_linear_reward_exactly_without_noise() {
        // reward = 0.3 + 0.5·x1 with x = [1, x1]; after enough points θ ≈ [0.3, 0.5].
        for discounted in [false, true] {
            let mut arm = LinearArm::new(2, 1e-6, discounted);
            for i in 0..50 {
                let x1 = (i % 7) as f64 / 7.0;
                arm = arm.learned(&[1.0, x1], 0.3 + 0.5 * x1, 0.99).unwrap();
            }
            let predict = |x1: f64| arm.ucb(&[1.0, x1], 0.0);
            assert!((predict(0.0) - 0.3).abs() < 1e-3, "{}", predict(0.0));
            assert!((predict(1.0) - 0.8).abs() < 1e-3, "{}", predict(1.0));
        }
    }

    #[test]
    fn uncertainty_shrinks_with_data() {
        for discounted in [false, true] {
            let mut arm = LinearArm::new(2, 1.0, discounted);
            let before = arm.ucb(&[1.0, 0.5], 1.0);
            for _ in 0..100 {
                arm = arm.learned(&[1.0, 0.5], 0.0, 0.999).unwrap();
            }
            let after = arm.ucb(&[1.0, 0.5], 1.0);
            assert!(after < before / 5.0, "{before} -> {after}");
        }
    }

    /// `θᵀx` and `xᵀA⁻¹x` solved directly from `A = ridge·I + Σ w x xᵀ`, `b = Σ w r x`.
    fn direct(
        dims: usize,
        ridge: f64,
        observations: &[(Vec<f64>, f64, f64)],
        x: &[f64],
    ) -> (f64, f64) {
        let mut a = DMatrix::<f64>::identity(dims, dims) * ridge;
        let mut b = nalgebra::DVector::<f64>::zeros(dims);
        for (xs, r, w) in observations {
            let v = nalgebra::DVector::from_column_slice(xs);
            a += &v * v.transpose() * *w;
            b += v * (*r * *w);
        }
        let chol = a.cholesky().expect("positive definite");
        let v = nalgebra::DVector::from_column_slice(x);
        let theta = chol.solve(&b);
        let a_inv_x = chol.solve(&v);
        (theta.dot(&v), a_inv_x.dot(&v))
    }

    #[test]
    fn the_discounted_update_equals_a_direct_solve_of_the_discounted_sums() {
        // Five features, and twenty with feature scales from 0.01 to 100 (so the sums'
        // eigenvalues spread over eight orders of magnitude, and the first twenty updates
        // leave them rank-deficient).
        check_against_direct_solve(5, 400, 9, |_| 1.0);
        check_against_direct_solve(20, 120, 10, |i| 10f64.powf(i as f64 / 19.0 * 4.0 - 2.0));
    }

    fn check_against_direct_solve(dims: usize, steps: usize, seed: u64, scale: fn(usize) -> f64) {
        let ridge = 0.5;
        let discount = 0.97;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut arm = LinearArm::new(dims, ridge, true);
        // (context, reward, weight now) of every observation of this arm.
        let mut seen: Vec<(Vec<f64>, f64, f64)> = Vec::new();
        for step in 0..steps {
            // Every update of the bandit fades this arm; about a third of them are its own,
            // and there are long stretches where it is not played at all.
            for o in &mut seen {
                o.2 *= discount;
            }
            let quiet = (steps * 3 / 8..steps * 5 / 8).contains(&step);
            if !quiet && rng.random_bool(0.35) {
                let x: Vec<f64> = (0..dims)
                    .map(|i| scale(i) * rng.random_range(-2.0..2.0))
                    .collect();
                let r = rng.random_range(-1.0..3.0);
                arm = arm.learned(&x, r, discount).unwrap();
                seen.push((x, r, 1.0));
            } else {
                arm.fade(discount);
            }
            if step % 5 == 0 {
                let probe: Vec<f64> = (0..dims).map(|_| rng.random_range(-1.0..1.0)).collect();
                let (mean, variance) = arm.mean_and_variance(&probe);
                let (want_mean, want_variance) = direct(dims, ridge, &seen, &probe);
                assert!(
                    (mean - want_mean).abs() < 1e-9 * (1.0 + want_mean.abs()),
                    "step {step}: mean {mean} against {want_mean}"
                );
                assert!(
                    (variance - want_variance).abs() < 1e-9 * want_variance,
                    "step {step}: variance {variance} against {want_variance}"
                );
            }
        }
        // The stored sums are the discounted sums themselves.
        let Model::Discounted(m) = &arm.model else {
            unreachable!()
        };
        for i in 0..dims {
            let want: f64 = seen.iter().map(|(x, r, w)| w * r * x[i]).sum();
            assert!((m.scale * m.b[i] - want).abs() < 1e-9 * (1.0 + want.abs()));
            for j in 0..dims {
                let want: f64 = seen.iter().map(|(x, _, w)| w * x[i] * x[j]).sum();
                let got = m.scale * m.gram[i * dims + j];
                assert!(
                    (got - want).abs() < 1e-9 * (1.0 + want.abs()),
                    "G[{i}][{j}]"
                );
            }
        }
    }

    #[test]
    fn without_a_discount_both_forms_agree() {
        // The discounted form with discount 1 is plain ridge regression too.
        let mut rng = StdRng::seed_from_u64(4);
        let mut exact = LinearArm::new(4, 1.0, false);
        let mut discounted = LinearArm::new(4, 1.0, true);
        for _ in 0..300 {
            let x: Vec<f64> = (0..4).map(|_| rng.random_range(0.0..1.0)).collect();
            let r = rng.random_range(0.0..1.0);
            exact = exact.learned(&x, r, 1.0).unwrap();
            discounted = discounted.learned(&x, r, 1.0).unwrap();
        }
        let probe = [0.2, 0.9, 0.4, 0.1];
        let (m1, v1) = exact.mean_and_variance(&probe);
        let (m2, v2) = discounted.mean_and_variance(&probe);
        assert!(
            (m1 - m2).abs() < 1e-9 && (v1 - v2).abs() < 1e-9 * v1,
            "{m1} {v1} / {m2} {v2}"
        );
    }

    #[test]
    fn long_streams_and_long_silences_stay_finite_and_sound() {
        let discount = 0.99;
        let mut rng = StdRng::seed_from_u64(5);
        // A small ridge, so that the prediction is the truth's within 1e-3 (the ridge's pull
        // towards 0 is about ridge / (100 effective observations × 1/12 feature variance)).
        let ridge = 1e-3;
        let mut arm = LinearArm::new(3, ridge, true);
        for _ in 0..100_000 {
            let x = [1.0, rng.random_range(0.0..1.0), rng.random_range(0.0..1.0)];
            arm = arm
                .learned(&x, 0.2 + 0.5 * x[1] - 0.1 * x[2], discount)
                .unwrap();
        }
        let Model::Discounted(m) = &arm.model else {
            unreachable!()
        };
        // Σ discount^k |x|² ≤ 3 / (1 − discount).
        let bound = 3.0 / (1.0 - discount);
        assert!(m.eigenvalues.iter().all(|&l| (0.0..=bound).contains(&l)));
        assert!((arm.ucb(&[1.0, 0.5, 0.5], 0.0) - 0.4).abs() < 1e-3);

        // A million updates of other arms: the weight (0.99^1e6) underflows to 0, and the
        // prior comes back: mean 0, variance |x|² / ridge.
        for _ in 0..1_000_000 {
            arm.fade(discount);
        }
        let (mean, variance) = arm.mean_and_variance(&[1.0, 0.5, 0.5]);
        assert_eq!(mean, 0.0);
        assert!((variance - 1.5 / ridge).abs() < 1e-9, "{variance}");
        // And it learns again from there: A = ridge + 1 along x, b = 1.
        let arm = arm.learned(&[1.0, 0.0, 0.0], 1.0, discount).unwrap();
        let (mean, variance) = arm.mean_and_variance(&[1.0, 0.0, 0.0]);
        let want = 1.0 / (1.0 + ridge);
        assert!((mean - want).abs() < 1e-12 && (variance - want).abs() < 1e-12);
    }

    #[test]
    fn observations_that_would_overflow_are_refused() {
        let arm = LinearArm::new(2, 1.0, true);
        assert!(arm.learned(&[1.0, 2.0], 3.0, 0.9).is_ok());
        assert!(arm.learned(&[1e200, 0.0], 0.0, 0.9).is_err());
        assert!(arm.learned(&[1e200, 1.0], 1e200, 0.9).is_err());
        assert!(arm.learned(&[1.0, 1e160], 0.0, 0.9).is_err());
    }

    fn trained(discounted: bool) -> LinearArm {
        let mut rng = StdRng::seed_from_u64(6);
        let mut arm = LinearArm::new(3, 2.0, discounted);
        for _ in 0..200 {
            let x: Vec<f64> = (0..3).map(|_| rng.random_range(-1.0..1.0)).collect();
            arm = arm.learned(&x, rng.random_range(0.0..1.0), 0.98).unwrap();
        }
        arm.fade(0.98);
        arm
    }

    fn round_trip(arm: &LinearArm, discounted: bool) -> LinearArm {
        let mut bytes = Vec::new();
        arm.encode(&mut bytes);
        let mut r = super::super::policy::Reader(&bytes[1..]);
        let back = LinearArm::decode(bytes[0], &mut r, 3, 2.0, discounted).expect("decodes");
        assert!(r.0.is_empty());
        back
    }

    #[test]
    fn stored_arms_round_trip_and_convert_when_the_discount_changes() {
        for discounted in [false, true] {
            let arm = trained(discounted);
            assert_eq!(round_trip(&arm, discounted), arm);
            let mut fresh = LinearArm::new(3, 2.0, discounted);
            fresh.fade(0.5);
            assert_eq!(round_trip(&fresh, discounted), fresh);
        }
        // A state stored without a discount, read by a discounted bandit, and the reverse:
        // the same regression.
        for stored in [false, true] {
            let arm = trained(stored);
            let other = round_trip(&arm, !stored);
            assert_ne!(
                std::mem::discriminant(&other.model),
                std::mem::discriminant(&arm.model)
            );
            for probe in [[1.0, 0.0, 0.0], [0.3, -0.7, 0.5]] {
                let (m1, v1) = arm.mean_and_variance(&probe);
                let (m2, v2) = other.mean_and_variance(&probe);
                assert!(
                    (m1 - m2).abs() < 1e-9 && (v1 - v2).abs() < 1e-9 * v1,
                    "{m1} {v1} / {m2} {v2}"
                );
            }
        }
        // Damage: a scale outside [0, 1], an unknown tag, a non-finite value.
        let mut bytes = Vec::new();
        trained(true).encode(&mut bytes);
        let mut bad_scale = bytes.clone();
        bad_scale[5..13].copy_from_slice(&2.0f64.to_le_bytes());
        let mut nan = bytes.clone();
        nan[13..21].copy_from_slice(&f64::NAN.to_le_bytes());
        for (tag, body) in [(bytes[0], &bad_scale), (9, &bytes), (bytes[0], &nan)] {
            let mut r = super::super::policy::Reader(&body[1..]);
            assert!(LinearArm::decode(tag, &mut r, 3, 2.0, true).is_none());
        }
    }

    #[test]
    fn one_feature_works_too() {
        let arm = LinearArm::new(1, 1.0, true)
            .learned(&[2.0], 1.0, 0.9)
            .unwrap();
        // A = 1 + 4, b = 2: θ = 0.4, variance at x = 1 is 1/5.
        let (mean, variance) = arm.mean_and_variance(&[1.0]);
        assert!((mean - 0.4).abs() < 1e-12 && (variance - 0.2).abs() < 1e-12);
    }
}
