//! Federated learning across the FFI: examples, predictions, local training and the learning
//! exchange with the server. Every call runs inside [`guard`].

use starling_core::learning as core;

use crate::{guard, Starling, StarlingError};

/// An example's features: dense values in the task's order, and `"key=value"` categories.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LearningFeatures {
    /// Dense numeric features, as many as the task's `dense_features`.
    pub values: Vec<f64>,
    /// Categorical features, hashed into the task's buckets.
    pub categories: Vec<String>,
}

impl From<LearningFeatures> for core::Features {
    fn from(f: LearningFeatures) -> Self {
        core::Features {
            values: f.values,
            categories: f.categories,
        }
    }
}

/// The device's state as the host sees it; training needs all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct LearningEligibility {
    /// Charging.
    pub charging: bool,
    /// On an unmetered network.
    pub unmetered: bool,
    /// Idle.
    pub idle: bool,
}

impl From<LearningEligibility> for core::Eligibility {
    fn from(e: LearningEligibility) -> Self {
        core::Eligibility {
            charging: e.charging,
            unmetered: e.unmetered,
            idle: e.idle,
        }
    }
}

/// What one round of local training did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrainingReport {
    /// Whether an update was built.
    pub trained: bool,
    /// Why not, when not.
    pub skipped_reason: Option<String>,
    /// The round it is for.
    pub round: u64,
    /// The version training started from.
    pub base_version: u64,
    /// Examples trained on.
    pub training_examples: u32,
    /// Examples held out for evaluation.
    pub holdout_examples: u32,
    /// Mean cross-entropy of the base version on the held-out examples.
    pub holdout_loss: f64,
    /// Accuracy (0 to 1) of the base version on the held-out examples.
    pub holdout_accuracy: f64,
    /// zCDP rho of the noise added on the device (0: none).
    pub device_rho: f64,
    /// Encoded size of the update, in bytes.
    pub update_bytes: u64,
}

impl From<core::TrainingReport> for TrainingReport {
    fn from(r: core::TrainingReport) -> Self {
        TrainingReport {
            trained: r.trained,
            skipped_reason: r.skipped_reason,
            round: r.round,
            base_version: r.base_version,
            training_examples: r.training_examples,
            holdout_examples: r.holdout_examples,
            holdout_loss: r.holdout_loss,
            holdout_accuracy: r.holdout_accuracy,
            device_rho: r.device_rho,
            update_bytes: r.update_bytes,
        }
    }
}

/// What one learning exchange did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LearningSyncReport {
    /// The model version held after it.
    pub model_version: Option<u64>,
    /// The round held after it.
    pub round: Option<u64>,
    /// Whether a new model or round was downloaded.
    pub model_changed: bool,
    /// Whether the server admitted the device to the round, if asked.
    pub admitted: Option<bool>,
    /// Local training, if tried.
    pub training: Option<TrainingReport>,
    /// Updates acknowledged.
    pub updates_sent: u32,
    /// Updates refused for good.
    pub updates_refused: u32,
    /// Why the last exchange failed, if one did.
    pub last_error: Option<String>,
}

impl From<core::LearningSyncReport> for LearningSyncReport {
    fn from(r: core::LearningSyncReport) -> Self {
        LearningSyncReport {
            model_version: r.model_version,
            round: r.round,
            model_changed: r.model_changed,
            admitted: r.admitted,
            training: r.training.map(TrainingReport::from),
            updates_sent: r.updates_sent,
            updates_refused: r.updates_refused,
            last_error: r.last_error,
        }
    }
}

/// One update the device built and what became of it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LearningUpdate {
    /// The round.
    pub round: u64,
    /// The version it started from.
    pub base_version: u64,
    /// `pending`, `sent` or `refused`.
    pub state: String,
    /// The server's reason or receipt.
    pub outcome: String,
    /// zCDP rho of the noise added on the device (0: none).
    pub device_rho: f64,
    /// Encoded size, in bytes.
    pub bytes: u64,
}

/// A task's state on the device.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LearningStatus {
    /// The task.
    pub task: String,
    /// The model version held, if any.
    pub model_version: Option<u64>,
    /// The round held, if any.
    pub round: Option<u64>,
    /// Stored examples.
    pub examples: u64,
    /// Examples evicted by the bound (all tasks).
    pub examples_evicted: u64,
    /// Updates refused for good (all tasks).
    pub updates_refused: u64,
    /// Every update built for the task.
    pub updates: Vec<LearningUpdate>,
}

impl From<core::LearningStatus> for LearningStatus {
    fn from(s: core::LearningStatus) -> Self {
        LearningStatus {
            task: s.task,
            model_version: s.model_version,
            round: s.round,
            examples: s.examples,
            examples_evicted: s.examples_evicted,
            updates_refused: s.updates_refused,
            updates: s
                .updates
                .into_iter()
                .map(|u| LearningUpdate {
                    round: u.round,
                    base_version: u.base_version,
                    state: u.state,
                    outcome: u.outcome,
                    device_rho: u.device_rho,
                    bytes: u.bytes,
                })
                .collect(),
        }
    }
}

#[uniffi::export]
impl Starling {
    /// Stores a training example for `task`; never waits on I/O.
    pub fn add_example(
        &self,
        task: String,
        features: LearningFeatures,
        label: u32,
    ) -> Result<(), StarlingError> {
        guard(|| self.inner.add_example(&task, &features.into(), label))
    }

    /// The latest model's class probabilities for `features`; reads memory only.
    pub fn predict(
        &self,
        task: String,
        features: LearningFeatures,
    ) -> Result<Vec<f64>, StarlingError> {
        guard(|| self.inner.predict(&task, &features.into()))
    }

    /// Trains the current round and stores the update, on the calling thread: background
    /// jobs only.
    pub fn train_blocking(
        &self,
        task: String,
        eligibility: LearningEligibility,
    ) -> Result<TrainingReport, StarlingError> {
        guard(|| self.inner.train_blocking(&task, eligibility.into())).map(TrainingReport::from)
    }

    /// Downloads the model, trains when eligible and uploads, on the calling thread:
    /// background jobs only.
    pub fn sync_learning_blocking(
        &self,
        task: String,
        eligibility: LearningEligibility,
    ) -> Result<LearningSyncReport, StarlingError> {
        guard(|| self.inner.sync_learning_blocking(&task, eligibility.into()))
            .map(LearningSyncReport::from)
    }

    /// Starts a learning exchange on a background thread; `false` when one is running.
    pub fn sync_learning_in_background(
        &self,
        task: String,
        eligibility: LearningEligibility,
    ) -> Result<bool, StarlingError> {
        guard(|| {
            self.inner
                .sync_learning_in_background(&task, eligibility.into())
        })
    }

    /// The task's model version, examples and updates. Waits on the database.
    pub fn learning_status(&self, task: String) -> Result<LearningStatus, StarlingError> {
        guard(|| self.inner.learning_status(&task)).map(LearningStatus::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_calls_report_errors_instead_of_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::default_config(dir.path().display().to_string());
        let starling = Starling::open(config).unwrap();
        let features = LearningFeatures {
            values: vec![1.0],
            categories: vec![],
        };
        let err = starling
            .predict("none".into(), features.clone())
            .unwrap_err();
        assert!(
            matches!(err, StarlingError::InvalidArgument { .. }),
            "{err:?}"
        );
        let err = starling.add_example("t".into(), features, 0).unwrap_err();
        assert!(matches!(err, StarlingError::NoConsent { .. }), "{err:?}");
        starling.set_consent(true).unwrap();
        let eligible = LearningEligibility {
            charging: true,
            unmetered: true,
            idle: true,
        };
        let err = starling
            .sync_learning_blocking("t".into(), eligible)
            .unwrap_err();
        assert!(matches!(err, StarlingError::NoServer { .. }), "{err:?}");
        let report = starling.train_blocking("t".into(), eligible).unwrap();
        assert!(!report.trained && report.skipped_reason.is_some());
    }
}
