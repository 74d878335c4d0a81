//! The device model: logistic or softmax regression over a task's feature layout.
//!
//! Inputs are laid out as the task's [`FeatureLayout`] says: the app's dense values, the named
//! signals, one-hot slots for the hashed categorical features, then a constant 1 for the bias.
//! Weights are row-major `[outputs x dims]`.

use starling_proto::v1::{LearningTask, ModelKind, StoredExample};

use crate::error::{Error, Result};

/// A model's shape and weights, ready to predict and train.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Model {
    /// One output for a logistic model, `classes` for a softmax model.
    pub(crate) outputs: usize,
    /// Inputs per example, bias included.
    pub(crate) dims: usize,
    pub(crate) softmax: bool,
    pub(crate) weights: Vec<f64>,
}

/// Inputs per example that `task` defines, bias included.
pub(crate) fn dims_of(task: &LearningTask) -> usize {
    let layout = task.features.clone().unwrap_or_default();
    layout.dense_features as usize + layout.signals.len() + layout.hash_buckets as usize + 1
}

/// Outputs of the model `task` defines; an error for a kind this SDK does not know.
pub(crate) fn outputs_of(task: &LearningTask) -> Result<(usize, bool)> {
    match ModelKind::try_from(task.kind) {
        Ok(ModelKind::Logistic) => Ok((1, false)),
        Ok(ModelKind::Softmax) if task.classes >= 2 => Ok((task.classes as usize, true)),
        Ok(ModelKind::Softmax) => Err(Error::Learning(format!(
            "task {:?}: a softmax model needs 2 or more classes",
            task.name
        ))),
        _ => Err(Error::Learning(format!(
            "task {:?}: unknown model kind {}",
            task.name, task.kind
        ))),
    }
}

impl Model {
    /// The model `task` defines, with `weights` (all zero when empty).
    pub(crate) fn new(task: &LearningTask, weights: &[f32]) -> Result<Model> {
        let (outputs, softmax) = outputs_of(task)?;
        let dims = dims_of(task);
        let weights: Vec<f64> = if weights.is_empty() {
            vec![0.0; outputs * dims]
        } else if weights.len() == outputs * dims {
            weights.iter().map(|&w| f64::from(w)).collect()
        } else {
            return Err(Error::Learning(format!(
                "task {:?}: {} weights for a model of {outputs} x {dims}",
                task.name,
                weights.len()
            )));
        };
        if weights.iter().any(|w| !w.is_finite()) {
            return Err(Error::Learning(format!(
                "task {:?}: the model has a weight that is not a finite number",
                task.name
            )));
        }
        Ok(Model {
            outputs,
            dims,
            softmax,
            weights,
        })
    }

    /// Class probabilities for the laid-out input `x`: `[P(label = 1)]` for a logistic model,
    /// one probability per class for a softmax model.
    pub(crate) fn predict(&self, x: &[f64]) -> Vec<f64> {
        let scores: Vec<f64> = self
            .weights
            .chunks_exact(self.dims)
            .map(|row| dot(row, x))
            .collect();
        if self.softmax {
            softmax(&scores)
        } else {
            vec![sigmoid(scores[0])]
        }
    }

    /// Cross-entropy of `label` under the prediction `p`, and whether the most likely class
    /// is `label`.
    pub(crate) fn loss(&self, p: &[f64], label: u32) -> (f64, bool) {
        // Probabilities are floored so that one confident mistake costs a bounded loss.
        const FLOOR: f64 = 1e-12;
        if self.softmax {
            let label = label as usize;
            let best = argmax(p);
            (-p[label].max(FLOOR).ln(), best == label)
        } else {
            let q = if label == 1 { p[0] } else { 1.0 - p[0] };
            (-q.max(FLOOR).ln(), (p[0] >= 0.5) == (label == 1))
        }
    }

    /// Adds the gradient of the cross-entropy of one example to `grad`.
    pub(crate) fn accumulate_gradient(&self, x: &[f64], label: u32, grad: &mut [f64]) {
        let p = self.predict(x);
        for (k, row) in grad.chunks_exact_mut(self.dims).enumerate() {
            let target = if self.softmax {
                f64::from(u8::from(k == label as usize))
            } else {
                f64::from(label)
            };
            let error = p[k] - target;
            for (g, xi) in row.iter_mut().zip(x) {
                *g += error * xi;
            }
        }
    }

    /// Whether `label` is a valid label for this model.
    pub(crate) fn check_label(&self, label: u32) -> Result<()> {
        let classes = if self.softmax { self.outputs } else { 2 };
        if (label as usize) < classes {
            Ok(())
        } else {
            Err(Error::Learning(format!(
                "label {label} is out of range: this model has {classes} classes"
            )))
        }
    }
}

/// Lays out a stored example as `task`'s input vector. An example whose dense values do not
/// match the layout, or a non-finite value, is an error.
pub(crate) fn layout(task: &LearningTask, example: &StoredExample) -> Result<Vec<f64>> {
    let layout = task.features.clone().unwrap_or_default();
    if example.values.len() != layout.dense_features as usize {
        return Err(Error::Learning(format!(
            "task {:?} takes {} dense values, the example has {}",
            task.name,
            layout.dense_features,
            example.values.len()
        )));
    }
    let mut x = Vec::with_capacity(dims_of(task));
    x.extend_from_slice(&example.values);
    for name in &layout.signals {
        x.push(example.signals.get(name).copied().unwrap_or(0.0));
    }
    let start = x.len();
    x.resize(start + layout.hash_buckets as usize, 0.0);
    if layout.hash_buckets > 0 {
        for category in &example.categories {
            let bucket = (fnv1a(category.as_bytes()) % u64::from(layout.hash_buckets)) as usize;
            x[start + bucket] = 1.0;
        }
    }
    x.push(1.0);
    if let Some(bad) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Learning(format!(
            "feature {bad} of the example is not a finite number"
        )));
    }
    Ok(x)
}

/// FNV-1a, 64 bits: a stable hash, identical on every platform and SDK version, so that a
/// category lands in the same bucket on every device.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn softmax(scores: &[f64]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

fn argmax(p: &[f64]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::v1::FeatureLayout;

    pub(crate) fn task(kind: ModelKind, classes: u32, dense: u32, buckets: u32) -> LearningTask {
        LearningTask {
            name: "t".into(),
            kind: kind as i32,
            classes,
            features: Some(FeatureLayout {
                dense_features: dense,
                signals: vec!["s".into()],
                hash_buckets: buckets,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn layout_places_values_signals_buckets_and_bias() {
        let t = task(ModelKind::Logistic, 1, 2, 4);
        let example = StoredExample {
            values: vec![0.5, -1.0],
            categories: vec!["country=fr".into()],
            signals: [("s".to_owned(), 3.0)].into_iter().collect(),
        };
        let x = layout(&t, &example).unwrap();
        assert_eq!(x.len(), dims_of(&t));
        assert_eq!(&x[..3], &[0.5, -1.0, 3.0]);
        assert_eq!(x[3..7].iter().sum::<f64>(), 1.0, "one bucket set");
        assert_eq!(*x.last().unwrap(), 1.0);
        let bucket = (fnv1a(b"country=fr") % 4) as usize;
        assert_eq!(x[3 + bucket], 1.0);

        let short = StoredExample {
            values: vec![1.0],
            ..Default::default()
        };
        assert!(layout(&t, &short).is_err());
    }

    #[test]
    fn fnv_is_the_published_function() {
        // Test vectors of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn softmax_probabilities_sum_to_one_and_gradients_match_finite_differences() {
        let t = task(ModelKind::Softmax, 3, 2, 0);
        let weights: Vec<f32> = (0..3 * dims_of(&t))
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let model = Model::new(&t, &weights).unwrap();
        let x = vec![0.3, -0.7, 1.2, 1.0];
        let p = model.predict(&x);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);

        let mut grad = vec![0.0; model.weights.len()];
        model.accumulate_gradient(&x, 2, &mut grad);
        for (i, analytic) in grad.iter().enumerate() {
            let h = 1e-6;
            let mut plus = model.clone();
            plus.weights[i] += h;
            let mut minus = model.clone();
            minus.weights[i] -= h;
            let numeric = (plus.loss(&plus.predict(&x), 2).0 - minus.loss(&minus.predict(&x), 2).0)
                / (2.0 * h);
            assert!(
                (numeric - analytic).abs() < 1e-6,
                "weight {i}: {numeric} vs {analytic}"
            );
        }
    }

    #[test]
    fn wrong_shapes_and_labels_are_refused() {
        let t = task(ModelKind::Logistic, 1, 2, 0);
        assert!(Model::new(&t, &[1.0; 3]).is_err());
        assert!(Model::new(&t, &[f32::NAN; 4]).is_err());
        let model = Model::new(&t, &[]).unwrap();
        assert!(model.check_label(1).is_ok());
        assert!(model.check_label(2).is_err());
        let bad = task(ModelKind::Softmax, 1, 2, 0);
        assert!(Model::new(&bad, &[]).is_err());
    }
}
