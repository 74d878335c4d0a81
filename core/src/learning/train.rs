//! Local training: mini-batch SGD with L2 over the device's examples, and evaluation on the
//! held-out ones.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use starling_proto::v1::TrainingParams;

use super::model::Model;

/// A laid-out example: input vector and label.
pub(crate) type Sample = (Vec<f64>, u32);

/// Whether the example with this id is held out for evaluation. Deterministic in the id, so
/// an example stays on the same side of the split across rounds and restarts.
pub(crate) fn is_holdout(example_id: i64, holdout_percent: u32) -> bool {
    splitmix64(example_id as u64) % 100 < u64::from(holdout_percent.min(50))
}

/// Loss and accuracy of `model` on `samples`; `(NaN, NaN)` for none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Evaluation {
    pub(crate) examples: u32,
    pub(crate) loss: f64,
    pub(crate) accuracy: f64,
}

/// Mean cross-entropy and accuracy of `model` on `samples`.
pub(crate) fn evaluate(model: &Model, samples: &[Sample]) -> Evaluation {
    if samples.is_empty() {
        return Evaluation {
            examples: 0,
            loss: 0.0,
            accuracy: 0.0,
        };
    }
    let (mut loss, mut correct) = (0.0, 0usize);
    for (x, label) in samples {
        let (l, ok) = model.loss(&model.predict(x), *label);
        loss += l;
        correct += usize::from(ok);
    }
    let n = samples.len() as f64;
    Evaluation {
        examples: samples.len() as u32,
        loss: loss / n,
        accuracy: correct as f64 / n,
    }
}

/// Trains `model` in place: `epochs` passes of mini-batch SGD over `samples` in an order
/// shuffled with `seed`, each step `w -= lr * (mean gradient + l2 * w)` (the bias is not
/// regularized).
pub(crate) fn train(model: &mut Model, samples: &[Sample], params: &TrainingParams, seed: u64) {
    if samples.is_empty() {
        return;
    }
    let batch = (params.batch_size as usize).max(1);
    let lr = params.learning_rate;
    let l2 = params.l2;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let mut grad = vec![0.0; model.weights.len()];
    for _ in 0..params.epochs.max(1) {
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch) {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for &i in chunk {
                let (x, label) = &samples[i];
                model.accumulate_gradient(x, *label, &mut grad);
            }
            let scale = 1.0 / chunk.len() as f64;
            let dims = model.dims;
            for (i, (w, g)) in model.weights.iter_mut().zip(&grad).enumerate() {
                let bias = i % dims == dims - 1;
                let decay = if bias { 0.0 } else { l2 * *w };
                *w -= lr * (g * scale + decay);
            }
        }
    }
}

/// SplitMix64's finalizer: a fast, well-mixed, stable hash of an integer.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use starling_proto::v1::{FeatureLayout, LearningTask, ModelKind};

    fn task() -> LearningTask {
        LearningTask {
            name: "t".into(),
            kind: ModelKind::Logistic as i32,
            classes: 1,
            features: Some(FeatureLayout {
                dense_features: 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn holdout_split_is_stable_and_near_its_share() {
        let held = (0..10_000).filter(|&id| is_holdout(id, 20)).count();
        // Binomial(10000, 0.2): sd 40; 5 sd either side.
        assert!((1800..=2200).contains(&held), "{held}");
        assert_eq!(is_holdout(42, 20), is_holdout(42, 20));
        assert_eq!((0..1000).filter(|&id| is_holdout(id, 0)).count(), 0);
    }

    #[test]
    fn sgd_learns_a_separable_problem() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let samples: Vec<Sample> = (0..400)
            .map(|_| {
                let a: f64 = rng.random_range(-1.0..1.0);
                let b: f64 = rng.random_range(-1.0..1.0);
                (vec![a, b, 1.0], u32::from(a + 0.5 * b > 0.1))
            })
            .collect();
        let mut model = Model::new(&task(), &[]).unwrap();
        let before = evaluate(&model, &samples);
        let params = TrainingParams {
            epochs: 20,
            batch_size: 16,
            learning_rate: 0.5,
            l2: 1e-4,
            ..Default::default()
        };
        train(&mut model, &samples, &params, 1);
        let after = evaluate(&model, &samples);
        assert!(after.loss < before.loss);
        assert!(after.accuracy > 0.95, "{after:?}");
        // The same seed gives the same model.
        let mut again = Model::new(&task(), &[]).unwrap();
        train(&mut again, &samples, &params, 1);
        assert_eq!(again, model);
    }
}
