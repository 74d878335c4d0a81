//! The handle's learning methods: examples, predictions and local training.

use std::sync::Arc;

use crossbeam_channel::TrySendError;
use prost::Message;
use starling_proto::v1::{ModelUpdate, StoredExample};

use super::accounting::{self, Charge, NotStored};
use super::model::{layout, Model};
use super::store::{self, Submission};
use super::train::{self, Sample};
use super::{
    update, with_db, Eligibility, Features, LearningStatus, Loaded, TrainingReport, UpdateRecord,
    DEFAULT_MAX_EXAMPLES,
};
use crate::error::{Error, Result};
use crate::storage::store::Store;
use crate::storage::writer::Command;
use crate::{Inner, Starling};

/// Longest accepted task name, in bytes.
const MAX_TASK_NAME_BYTES: usize = 128;

impl Starling {
    /// Stores a training example for `task`: the app's `features` and the `label` observed
    /// (0 or 1 for a logistic task, a class index for a softmax task). The task's signals are
    /// read from the handle now, so the example sees the signals as they were when it happened.
    ///
    /// Checks the example on the calling thread and hands it to the writer thread; never waits
    /// on I/O. It is durable once [`flush`](Self::flush) returns. Each task keeps at most its
    /// `max_examples` (by default [`DEFAULT_MAX_EXAMPLES`]); older ones are evicted and counted.
    pub fn add_example(&self, task: &str, features: &Features, label: u32) -> Result<()> {
        accounting::require(&self.inner)?;
        check_task_name(task)?;
        if let Some(bad) = features.values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Learning(format!(
                "value {bad} of the example is not a finite number"
            )));
        }
        let loaded = self.inner.learning.get(task);
        let example = self.example_of(loaded.as_deref(), features);
        let mut max_examples = DEFAULT_MAX_EXAMPLES;
        if let Some(loaded) = &loaded {
            loaded.model.check_label(label)?;
            layout(task_of(loaded), &example)?;
            let bound = task_of(loaded)
                .training
                .as_ref()
                .map_or(0, |t| t.max_examples);
            if bound > 0 {
                max_examples = bound;
            }
        }

        let bytes = example.encode_to_vec();
        let task = task.to_owned();
        let shared = Arc::clone(&self.inner.shared);
        let clock = self.inner.config.clock.clone();
        let job = Box::new(move |store: &mut Store| {
            // Consent withdrawn after the check above: the withdrawal deleted the examples
            // queued before it, and this one must not outlive it either.
            if !accounting::allowed(&shared) {
                return;
            }
            match store::add_example(
                store.connection(),
                &task,
                &bytes,
                label,
                clock.now_ms(),
                max_examples,
            ) {
                Ok(0) => {}
                Ok(evicted) => log::debug!(
                    "starling: task {task:?} reached {max_examples} examples; evicted {evicted}"
                ),
                Err(e) => log::error!("starling: an example of task {task:?} was not stored: {e}"),
            }
        });
        self.inner.tx_learning(job)
    }

    /// The model's prediction for `features` under the latest model of `task`: `[P(label 1)]`
    /// for a logistic task, one probability per class for a softmax task. Reads the model from
    /// memory; never waits on the database.
    pub fn predict(&self, task: &str, features: &Features) -> Result<Vec<f64>> {
        let loaded = self.inner.learning.get(task).ok_or_else(|| {
            Error::Learning(format!("no model of task {task:?} has been downloaded yet"))
        })?;
        let example = self.example_of(Some(&loaded), features);
        let x = layout(task_of(&loaded), &example)?;
        Ok(loaded.model.predict(&x))
    }

    /// Trains `task`'s current model on this device's examples and stores the update for the
    /// next sync, on the calling thread: for background jobs only (it reads every example and
    /// runs SGD). Does nothing, and says why, unless the device is eligible, holds the task's
    /// model and enough examples, and has not already built an update for the current round.
    ///
    /// Needs consent for [`Purpose::FederatedLearning`](crate::privacy::Purpose). An update
    /// noised on the device is charged to the privacy ledger (rho, zCDP) in the same
    /// transaction that stores it; one the budget cannot take fails with
    /// [`Error::BudgetExceeded`] and nothing is stored.
    pub fn train_blocking(&self, task: &str, eligibility: Eligibility) -> Result<TrainingReport> {
        let _working = self
            .inner
            .learning
            .work
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        train_round(&self.inner, task, eligibility).map(|(report, _)| report)
    }

    /// What this device holds for `task`: its model version, examples, and every update it
    /// built, with the zCDP cost of any on-device noise. Waits on the database.
    pub fn learning_status(&self, task: &str) -> Result<LearningStatus> {
        let loaded = self.inner.learning.get(task);
        let name = task.to_owned();
        let (examples, evicted, refused, submissions) = with_db(&self.inner, move |conn| {
            Ok((
                store::example_count(conn, &name)?,
                store::counter(conn, store::COUNTER_EVICTED)?,
                store::counter(conn, store::COUNTER_REFUSED)?,
                store::submissions(conn, &name)?,
            ))
        })?;
        Ok(LearningStatus {
            task: task.to_owned(),
            model_version: loaded.as_ref().map(|l| l.release.version),
            round: loaded.as_ref().map(|l| l.release.round),
            examples,
            examples_evicted: evicted,
            updates_refused: refused,
            updates: submissions.into_iter().map(record_of).collect(),
        })
    }

    fn example_of(&self, loaded: Option<&Loaded>, features: &Features) -> StoredExample {
        let signals = self.signals();
        let wanted: Option<&[String]> = loaded
            .and_then(|l| task_of(l).features.as_ref())
            .map(|f| f.signals.as_slice());
        let signals = signals
            .iter()
            .filter(|(name, _)| wanted.is_none_or(|w| w.iter().any(|n| n == name)))
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        StoredExample {
            values: features.values.clone(),
            categories: features.categories.clone(),
            signals,
        }
    }
}

impl Inner {
    /// Queues a learning job for the writer thread without waiting.
    fn tx_learning(&self, job: crate::storage::writer::StoreJob) -> Result<()> {
        match self.tx.try_send(Command::Learning(job)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::QueueFull {
                capacity: self.config.queue_capacity,
            }),
            Err(TrySendError::Disconnected(_)) => Err(Error::Closed),
        }
    }
}

pub(crate) fn task_of(loaded: &Loaded) -> &starling_proto::v1::LearningTask {
    loaded
        .release
        .task
        .as_ref()
        .expect("a loaded release has its task")
}

fn check_task_name(task: &str) -> Result<()> {
    if task.is_empty() || task.len() > MAX_TASK_NAME_BYTES {
        return Err(Error::Learning(format!(
            "a task name is 1 to {MAX_TASK_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

pub(crate) fn record_of(s: Submission) -> UpdateRecord {
    UpdateRecord {
        bytes: s.payload.len() as u64,
        task: s.task,
        round: s.round,
        base_version: s.base_version,
        state: s.state,
        outcome: s.outcome,
        device_rho: s.device_rho,
        created_ms: s.created_ms,
    }
}

/// Trains the current round of `task` and stores the update; returns the report and, when an
/// update was built, its encoded bytes.
pub(crate) fn train_round(
    inner: &Arc<Inner>,
    task: &str,
    eligibility: Eligibility,
) -> Result<(TrainingReport, Option<Vec<u8>>)> {
    let skipped = |why: String| {
        Ok((
            TrainingReport {
                skipped_reason: Some(why),
                ..Default::default()
            },
            None,
        ))
    };
    accounting::require(inner)?;
    if !eligibility.allows_training() {
        return skipped("the device is not charging, unmetered and idle".into());
    }
    let Some(loaded) = inner.learning.get(task) else {
        return skipped(format!("no model of task {task:?} has been downloaded"));
    };
    let spec = task_of(&loaded).clone();
    // Before reading and training on the examples: a release the budget cannot take is refused.
    accounting::check_affordable(inner, &spec)?;
    let params = spec.training.unwrap_or_default();
    let (round, base_version) = (loaded.release.round, loaded.release.version);

    let name = task.to_owned();
    let (existing, rows) = with_db(inner, move |conn| {
        Ok((
            store::submission(conn, &name, round)?,
            store::examples(conn, &name)?,
        ))
    })?;
    if existing.is_some() {
        return skipped(format!("an update for round {round} was already built"));
    }
    let (mut training, mut holdout): (Vec<Sample>, Vec<Sample>) = (Vec::new(), Vec::new());
    for (id, bytes, label) in rows {
        let Ok(example) = StoredExample::decode(bytes.as_slice()) else {
            continue;
        };
        // Examples added before the task's layout was known may not fit it; they are skipped.
        let Ok(x) = layout(&spec, &example) else {
            continue;
        };
        if loaded.model.check_label(label).is_err() {
            continue;
        }
        if train::is_holdout(id, params.holdout_percent) {
            holdout.push((x, label));
        } else {
            training.push((x, label));
        }
    }
    if training.len() < params.min_examples.max(1) as usize {
        return skipped(format!(
            "{} training examples, the task needs {}",
            training.len(),
            params.min_examples.max(1)
        ));
    }

    let evaluation = train::evaluate(&loaded.model, &holdout);
    let device_id = inner.request(Command::DeviceId)?;
    let seed = train::splitmix64(super::model::fnv1a(device_id.as_bytes()) ^ round);
    let mut local: Model = loaded.model.clone();
    train::train(&mut local, &training, &params, seed);
    let delta = update::build(
        &loaded.model.weights,
        &local.weights,
        spec.clip_norm,
        spec.device_noise_multiplier,
    )?;
    let message = ModelUpdate {
        update_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
        task: task.to_owned(),
        device_id,
        base_version,
        round,
        examples: training.len() as u32,
        scale: delta.scale,
        quantized: delta.quantized,
        clip_norm: spec.clip_norm,
        norm_before_clip: delta.norm_before_clip,
        device_noise_sigma: delta.noise_sigma,
        device_rho: delta.rho,
        holdout_examples: evaluation.examples,
        holdout_loss: evaluation.loss,
        holdout_accuracy: evaluation.accuracy,
    };
    let payload = message.encode_to_vec();
    let charge = Charge {
        release_id: hex::encode(&message.update_id),
        rho: delta.rho,
        outline: format!(
            "model update for round {round} of version {base_version}: {} weights trained on \
             {} examples, clipped to L2 norm {} with Gaussian noise (sigma {:.3}), int8",
            message.quantized.len(),
            message.examples,
            spec.clip_norm,
            delta.noise_sigma
        ),
    };
    let submission = Submission {
        task: task.to_owned(),
        round,
        base_version,
        payload: payload.clone(),
        device_rho: delta.rho,
        state: store::state::PENDING.into(),
        outcome: String::new(),
        created_ms: inner.config.clock.now_ms(),
    };
    // Charged and stored together, before the update can leave: see `accounting`.
    match accounting::store_charged(inner, submission, charge)? {
        Ok(()) => {}
        Err(NotStored::NoConsent) => return Err(Error::NoConsent),
        Err(NotStored::Refused(reason)) => {
            log::info!("starling: update of task {task:?} round {round} refused: {reason}");
            return Err(Error::BudgetExceeded(reason));
        }
        Err(NotStored::AlreadyBuilt) => {
            return skipped(format!("an update for round {round} was already built"))
        }
    }
    Ok((
        TrainingReport {
            trained: true,
            skipped_reason: None,
            round,
            base_version,
            training_examples: training.len() as u32,
            holdout_examples: evaluation.examples,
            holdout_loss: evaluation.loss,
            holdout_accuracy: evaluation.accuracy,
            norm_before_clip: delta.norm_before_clip,
            device_rho: delta.rho,
            update_bytes: payload.len() as u64,
        },
        Some(payload),
    ))
}
