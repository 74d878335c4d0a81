//! Federated learning on the device: a small model (logistic or softmax regression over the
//! app's values, signals and hashed categorical features), examples stored in the device
//! database, local training when the host says the device is eligible, and updates that are
//! clipped, optionally noised, quantized and tied to the model version and round they came from.
//!
//! The server defines each task and publishes its model versions; a device downloads them at
//! [`Starling::sync_learning_blocking`](crate::Starling::sync_learning_blocking).
//! `docs/federated.md` describes a round from start to end.

mod accounting;
mod api;
mod from_decisions;
mod model;
mod store;
mod sync;
mod train;
mod update;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use starling_proto::v1::ModelRelease;

use crate::error::{Error, Result, StorageError};
use crate::storage::store::Store;
use crate::storage::writer::Command;
use crate::Inner;

pub use from_decisions::{arm_category, ArmPrediction};
pub use sync::LearningSyncReport;

pub(crate) use from_decisions::{may_learn, of_settled, store_all, DecisionExample};

/// Most examples kept per task until the task's own bound is known (its `max_examples`).
pub const DEFAULT_MAX_EXAMPLES: u32 = 10_000;

/// An example's features as the app knows them. The task's layout decides how they become the
/// model's input: `values` first, then the task's signals (read from the handle when the
/// example is added), then the hashed `categories`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    /// Dense numeric features, as many as the task's `dense_features`, in its order.
    pub values: Vec<f64>,
    /// Categorical features as `"key=value"` strings, hashed into the task's buckets.
    pub categories: Vec<String>,
}

impl Features {
    /// Features with these dense values and no categories.
    pub fn dense(values: &[f64]) -> Features {
        Features {
            values: values.to_vec(),
            categories: Vec::new(),
        }
    }
}

/// What the host knows about the device's state. Training runs only when all three hold, so
/// that it never costs the user battery, metered data or responsiveness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Eligibility {
    /// The device is charging.
    pub charging: bool,
    /// The network is unmetered (Wi-Fi, not cellular).
    pub unmetered: bool,
    /// The device is idle (screen off, or the OS's idle signal).
    pub idle: bool,
}

impl Eligibility {
    /// Charging, unmetered and idle: the state background training needs.
    pub const ELIGIBLE: Eligibility = Eligibility {
        charging: true,
        unmetered: true,
        idle: true,
    };

    /// Whether training may run.
    pub fn allows_training(&self) -> bool {
        self.charging && self.unmetered && self.idle
    }
}

/// What one round of local training did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingReport {
    /// Whether an update was built.
    pub trained: bool,
    /// Why not, when not.
    pub skipped_reason: Option<String>,
    /// The round and model version the update is for.
    pub round: u64,
    /// The version training started from.
    pub base_version: u64,
    /// Examples trained on (the update's weight) and held out.
    pub training_examples: u32,
    /// Examples held out for evaluation.
    pub holdout_examples: u32,
    /// Mean cross-entropy and accuracy of the base version on the held-out examples.
    pub holdout_loss: f64,
    /// Accuracy, 0 to 1, of the base version on the held-out examples.
    pub holdout_accuracy: f64,
    /// L2 norm of the update before clipping.
    pub norm_before_clip: f64,
    /// zCDP rho of the noise added on the device (0: none).
    pub device_rho: f64,
    /// Encoded size of the update, in bytes.
    pub update_bytes: u64,
}

/// One update this device built, and what became of it: what left (or will leave) the device
/// and what its on-device noise cost.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRecord {
    /// The task.
    pub task: String,
    /// The round it was built for.
    pub round: u64,
    /// The model version it started from.
    pub base_version: u64,
    /// `pending` (stored, not yet acknowledged), `sent` or `refused`.
    pub state: String,
    /// The server's reason when refused, or its receipt status when sent.
    pub outcome: String,
    /// zCDP rho of the noise added on the device (0: none).
    pub device_rho: f64,
    /// Encoded size, in bytes.
    pub bytes: u64,
    /// When it was built, Unix epoch ms.
    pub created_ms: i64,
}

/// A task's state on this device.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningStatus {
    /// The task.
    pub task: String,
    /// The model version the device holds, if it downloaded one.
    pub model_version: Option<u64>,
    /// The round the device holds the model for.
    pub round: Option<u64>,
    /// Examples stored for the task.
    pub examples: u64,
    /// Examples evicted (all tasks) because a task reached its bound.
    pub examples_evicted: u64,
    /// Updates refused for good by the server (all tasks).
    pub updates_refused: u64,
    /// Every update built for the task.
    pub updates: Vec<UpdateRecord>,
}

/// A release with its model, ready to predict from.
pub(crate) struct Loaded {
    pub(crate) release: ModelRelease,
    pub(crate) model: model::Model,
}

/// Learning state held by the handle.
#[derive(Default)]
pub(crate) struct State {
    /// The latest release of each task; predictions read it without touching the database.
    pub(crate) models: RwLock<HashMap<String, Arc<Loaded>>>,
    /// Set while a background learning job runs.
    pub(crate) busy: Arc<AtomicBool>,
    /// Held by whoever trains or syncs learning, so that two callers never build two updates
    /// for one round.
    pub(crate) work: std::sync::Mutex<()>,
}

impl State {
    /// Loads the stored releases (at open, before the writer thread starts).
    pub(crate) fn restore(store: &mut Store) -> Result<State> {
        let state = State::default();
        for (task, bytes) in store::releases(store.connection())? {
            match decode_release(&bytes) {
                Ok(loaded) => state.install(loaded),
                Err(e) => {
                    log::warn!("starling: the stored model of task {task:?} is unusable: {e}")
                }
            }
        }
        Ok(state)
    }

    pub(crate) fn install(&self, loaded: Loaded) {
        let name = loaded
            .release
            .task
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        self.models
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, Arc::new(loaded));
    }

    pub(crate) fn get(&self, task: &str) -> Option<Arc<Loaded>> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(task)
            .cloned()
    }
}

/// Decodes and checks a release: a known model kind and weights of the right shape.
pub(crate) fn decode_release(bytes: &[u8]) -> Result<Loaded> {
    let release = <ModelRelease as prost::Message>::decode(bytes)
        .map_err(|e| Error::Learning(format!("unreadable model release: {e}")))?;
    let task = release
        .task
        .as_ref()
        .ok_or_else(|| Error::Learning("a model release without its task".into()))?;
    let model = model::Model::new(task, &release.weights)?;
    Ok(Loaded { release, model })
}

/// Deletes what federated learning kept on the device: every task's examples and the updates
/// not yet sent. Runs inside the caller's transaction, both when consent as a whole and when
/// the federated-learning purpose is withdrawn. The ledger charges of deleted updates stay
/// (nothing is refunded); models and the records of sent updates stay too, as they hold no
/// example. Returns `(examples, updates)` deleted.
pub(crate) fn forget(conn: &rusqlite::Connection) -> Result<(u64, u64), StorageError> {
    store::forget(conn)
}

/// Runs `f` on the writer thread with the database connection and waits for its result.
pub(crate) fn with_db<T: Send + 'static>(
    inner: &Inner,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StorageError> + Send + 'static,
) -> Result<T> {
    inner.request(move |reply| {
        Command::Learning(Box::new(move |store: &mut Store| {
            let _ = reply.send(f(store.connection()).map_err(Error::from));
        }))
    })
}
