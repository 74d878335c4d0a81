//! Per-arm ridge regression for LinUCB: keeps the inverse of `A = ridge·I + Σ x xᵀ` up to date
//! with the Sherman–Morrison formula, so an update costs O(d²) and no matrix is ever inverted.

/// The linear model of one arm over a `d`-dimensional context.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LinearArm {
    dims: usize,
    /// `A⁻¹`, row-major, `dims × dims`.
    a_inv: Vec<f64>,
    /// `b = Σ reward · x`.
    b: Vec<f64>,
}

impl LinearArm {
    /// A fresh arm: `A = ridge · I` (ridge > 0), `b = 0`.
    pub(crate) fn new(dims: usize, ridge: f64) -> Self {
        let mut a_inv = vec![0.0; dims * dims];
        for i in 0..dims {
            a_inv[i * dims + i] = 1.0 / ridge;
        }
        LinearArm {
            dims,
            a_inv,
            b: vec![0.0; dims],
        }
    }

    fn a_inv_times(&self, x: &[f64]) -> Vec<f64> {
        (0..self.dims)
            .map(|i| {
                (0..self.dims)
                    .map(|j| self.a_inv[i * self.dims + j] * x[j])
                    .sum()
            })
            .collect()
    }

    /// Upper confidence bound `θᵀx + alpha · sqrt(xᵀ A⁻¹ x)` with `θ = A⁻¹ b`.
    pub(crate) fn ucb(&self, x: &[f64], alpha: f64) -> f64 {
        let a_inv_x = self.a_inv_times(x);
        let mean: f64 = a_inv_x.iter().zip(&self.b).map(|(u, b)| u * b).sum();
        let variance: f64 = a_inv_x.iter().zip(x).map(|(u, x)| u * x).sum();
        mean + alpha * variance.max(0.0).sqrt()
    }

    /// Appends `dims`, `A⁻¹` and `b` in little-endian form.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.dims as u32).to_le_bytes());
        for v in self.a_inv.iter().chain(&self.b) {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Reads what [`LinearArm::encode`] wrote; `None` if it is damaged or has other dimensions.
    pub(crate) fn decode(r: &mut super::policy::Reader<'_>, dims: usize) -> Option<Self> {
        if r.u32()? as usize != dims {
            return None;
        }
        let mut read = |n: usize| -> Option<Vec<f64>> {
            (0..n).map(|_| r.f64().filter(|v| v.is_finite())).collect()
        };
        let a_inv = read(dims * dims)?;
        let b = read(dims)?;
        Some(LinearArm { dims, a_inv, b })
    }

    /// Adds one observation: `A += x xᵀ`, `b += reward · x`.
    pub(crate) fn update(&mut self, x: &[f64], reward: f64) {
        // Sherman–Morrison: (A + x xᵀ)⁻¹ = A⁻¹ − (A⁻¹x)(A⁻¹x)ᵀ / (1 + xᵀA⁻¹x); A⁻¹ is symmetric.
        let u = self.a_inv_times(x);
        let denominator = 1.0 + u.iter().zip(x).map(|(u, x)| u * x).sum::<f64>();
        for i in 0..self.dims {
            for j in 0..self.dims {
                self.a_inv[i * self.dims + j] -= u[i] * u[j] / denominator;
            }
        }
        for (b, x) in self.b.iter_mut().zip(x) {
            *b += reward * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_linear_reward_exactly_without_noise() {
        // reward = 0.3 + 0.5·x1 with x = [1, x1]; after enough points θ ≈ [0.3, 0.5].
        let mut arm = LinearArm::new(2, 1e-6);
        for i in 0..50 {
            let x1 = (i % 7) as f64 / 7.0;
            arm.update(&[1.0, x1], 0.3 + 0.5 * x1);
        }
        let predict = |x1: f64| arm.ucb(&[1.0, x1], 0.0);
        assert!((predict(0.0) - 0.3).abs() < 1e-3, "{}", predict(0.0));
        assert!((predict(1.0) - 0.8).abs() < 1e-3, "{}", predict(1.0));
    }

    #[test]
    fn uncertainty_shrinks_with_data() {
        let mut arm = LinearArm::new(2, 1.0);
        let before = arm.ucb(&[1.0, 0.5], 1.0);
        for _ in 0..100 {
            arm.update(&[1.0, 0.5], 0.0);
        }
        let after = arm.ucb(&[1.0, 0.5], 1.0);
        assert!(after < before / 5.0, "{before} -> {after}");
    }
}
