//! Bandits and learning together: examples produced by settled bandit decisions, and the
//! predictions of a task's model for each arm of a bandit.
//!
//! A bandit whose definition names a `learning_task` stores one example for that task each
//! time one of its decisions settles, on the writer thread and in the same transaction as the
//! reward that settled it:
//!
//! - dense values: the decision's context, as the bandit saw it (the app's context, then the
//!   bandit's context signals);
//! - categories: the chosen arm, as `"arm=<name>"` (see [`arm_category`]), hashed into the
//!   task's buckets;
//! - signals: none (the ones the bandit uses are already among the values);
//! - label: 1 if the reward was positive, else 0. An expired decision (its attribution window
//!   closed without a reward) is rewarded 0, so it is a label-0 example. The task is a binary
//!   (logistic) task predicting a positive reward.
//!
//! [`Starling::predict_arms`] lays out the same features for every arm, so the model that
//! the fleet trains on these examples scores each arm for a given context.

use std::collections::HashMap;

use prost::Message;
use rusqlite::Connection;
use starling_proto::v1::{LearningTask, ModelRelease, StoredExample};

use super::model::layout;
use super::{accounting, store, Features, DEFAULT_MAX_EXAMPLES};
use crate::bandit::runtime::Settled;
use crate::error::{Result, StorageError};
use crate::{Shared, Starling};

/// The category that carries the chosen arm: `"arm=<name>"`.
pub fn arm_category(arm: &str) -> String {
    format!("arm={arm}")
}

/// An example produced by a settled decision, waiting for the commit that settles it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DecisionExample {
    pub(crate) task: String,
    pub(crate) example: StoredExample,
    pub(crate) label: u32,
    pub(crate) added_ms: i64,
}

/// The example of a settled decision for `task`.
pub(crate) fn of_settled(task: &str, settled: &Settled, now_ms: i64) -> DecisionExample {
    DecisionExample {
        task: task.to_owned(),
        example: StoredExample {
            values: settled.pending.context.clone(),
            categories: vec![arm_category(&settled.pending.arm)],
            signals: HashMap::new(),
        },
        label: u32::from(settled.reward > 0.0),
        added_ms: now_ms,
    }
}

/// Whether examples may be stored now: consent and its federated-learning purpose.
pub(crate) fn may_learn(shared: &Shared) -> bool {
    accounting::allowed(shared)
}

/// Stores `examples` inside the caller's transaction, each task bounded by its
/// `max_examples` (the default until its model was downloaded). An example that does not fit
/// the layout of the task's downloaded model (another number of dense values) is skipped and
/// logged: training could never use it.
pub(crate) fn store_all(tx: &Connection, examples: &[DecisionExample]) -> Result<(), StorageError> {
    let mut tasks: HashMap<&str, Option<LearningTask>> = HashMap::new();
    for e in examples {
        if !tasks.contains_key(e.task.as_str()) {
            let spec = store::release(tx, &e.task)?
                .and_then(|bytes| ModelRelease::decode(bytes.as_slice()).ok())
                .and_then(|release| release.task);
            tasks.insert(&e.task, spec);
        }
        let spec = tasks[e.task.as_str()].as_ref();
        let mut max_examples = DEFAULT_MAX_EXAMPLES;
        if let Some(spec) = spec {
            if let Err(err) = layout(spec, &e.example) {
                log::warn!(
                    "starling: a decision example does not fit task {:?}: {err}",
                    e.task
                );
                continue;
            }
            let bound = spec.training.as_ref().map_or(0, |t| t.max_examples);
            if bound > 0 {
                max_examples = bound;
            }
        }
        store::insert_example(
            tx,
            &e.task,
            &e.example.encode_to_vec(),
            e.label,
            e.added_ms,
            max_examples,
        )?;
    }
    Ok(())
}

/// One arm of a bandit scored by a task's model.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmPrediction {
    /// The arm.
    pub arm: String,
    /// The model's probability of a positive reward for this arm in the given context.
    pub probability: f64,
}

impl Starling {
    /// Scores every configured arm of `bandit` with the latest model of `task`, for the app's
    /// `context`: each arm's features are laid out exactly as the examples the bandit stores
    /// for a `learning_task` (the context, then the bandit's context signals as read now, and
    /// the category `"arm=<name>"`). Returns the arms in configuration order with the
    /// predicted probability of a positive reward (`P(label 1)`; for a softmax task, the
    /// probability of class 1).
    ///
    /// Use it to choose greedily by the fleet's model, to rank arms for display, or to append
    /// the probabilities to the context of another, contextual bandit (whose `dims` then
    /// count them). Reads the model from memory; never waits on the database.
    pub fn predict_arms(
        &self,
        bandit: &str,
        task: &str,
        context: &[f64],
    ) -> Result<Vec<ArmPrediction>> {
        let slot = self.inner.shared.bandits.slot(bandit)?;
        let mut values = context.to_vec();
        if !slot.spec.context_signals.is_empty() {
            let names: Vec<&str> = slot
                .spec
                .context_signals
                .iter()
                .map(String::as_str)
                .collect();
            values.extend(self.signals().feature_vector(&names)?);
        }
        slot.spec
            .arms
            .iter()
            .map(|arm| {
                let features = Features {
                    values: values.clone(),
                    categories: vec![arm_category(arm)],
                };
                let p = self.predict(task, &features)?;
                let probability = p.get(1).or(p.first()).copied().unwrap_or(0.0);
                Ok(ArmPrediction {
                    arm: arm.clone(),
                    probability,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bandit::runtime::{Outcome, Pending};
    use starling_proto::v1::{FeatureLayout, ModelKind, TrainingParams};

    fn settled(context: &[f64], arm: &str, reward: f64, outcome: Outcome) -> Settled {
        Settled {
            pending: Pending {
                id: "d".into(),
                bandit: "offer".into(),
                arm: arm.into(),
                propensity: 0.5,
                context: context.to_vec(),
                arms: "a,b".into(),
                decided_ms: 1,
            },
            reward,
            outcome,
        }
    }

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::storage::schema::migrate(&mut conn).unwrap();
        conn
    }

    #[test]
    fn a_positive_reward_is_label_one_and_anything_else_label_zero() {
        let e = of_settled("t", &settled(&[0.5, 2.0], "b", 0.25, Outcome::Reported), 7);
        assert_eq!(e.example.values, vec![0.5, 2.0]);
        assert_eq!(e.example.categories, vec!["arm=b".to_owned()]);
        assert_eq!((e.task.as_str(), e.label, e.added_ms), ("t", 1, 7));
        for (reward, outcome) in [
            (0.0, Outcome::Reported),
            (-1.0, Outcome::Attributed),
            (0.0, Outcome::Expired),
        ] {
            let e = of_settled("t", &settled(&[1.0], "a", reward, outcome), 0);
            assert_eq!(e.label, 0, "reward {reward}");
        }
    }

    #[test]
    fn stored_examples_follow_the_downloaded_task_bound_and_layout() {
        let conn = db();
        let task = LearningTask {
            name: "t".into(),
            kind: ModelKind::Logistic as i32,
            features: Some(FeatureLayout {
                dense_features: 1,
                signals: Vec::new(),
                hash_buckets: 4,
            }),
            training: Some(TrainingParams {
                max_examples: 3,
                ..Default::default()
            }),
            ..Default::default()
        };
        let release = ModelRelease {
            task: Some(task),
            ..Default::default()
        };
        store::save_release(&conn, "t", &release.encode_to_vec()).unwrap();
        let fits: Vec<DecisionExample> = (0..5)
            .map(|i| {
                of_settled(
                    "t",
                    &settled(&[f64::from(i)], "a", 1.0, Outcome::Reported),
                    i.into(),
                )
            })
            .collect();
        let wrong = of_settled("t", &settled(&[1.0, 2.0], "a", 1.0, Outcome::Reported), 9);
        // A task without a downloaded model takes them all, up to the default bound.
        let other = of_settled("u", &settled(&[1.0, 2.0], "a", 0.0, Outcome::Expired), 9);
        let mut all = fits.clone();
        all.push(wrong);
        all.push(other);
        store_all(&conn, &all).unwrap();

        let kept = store::examples(&conn, "t").unwrap();
        let values: Vec<f64> = kept
            .iter()
            .map(|(_, bytes, _)| StoredExample::decode(bytes.as_slice()).unwrap().values[0])
            .collect();
        assert_eq!(values, vec![2.0, 3.0, 4.0], "the newest 3 fitting examples");
        assert_eq!(store::counter(&conn, store::COUNTER_EVICTED).unwrap(), 2);
        assert_eq!(store::example_count(&conn, "u").unwrap(), 1);
    }
}
