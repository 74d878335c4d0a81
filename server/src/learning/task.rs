//! Learning tasks as an operator defines them: a JSON file given to the server with
//! `--learning-tasks`, read into [`TaskDefinition`]s.

use serde::{Deserialize, Serialize};
use starling_proto::v1::{FeatureLayout, LearningTask, ModelKind, TrainingParams};

/// The operator's file: `{"tasks": [ ... ]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    /// The tasks, each with a distinct name.
    pub tasks: Vec<TaskDefinition>,
}

/// One federated learning task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDefinition {
    /// The task's name, as devices name it (1 to 128 bytes of letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// `logistic` (labels 0 and 1) or `softmax` (labels 0 to `classes - 1`).
    pub kind: Kind,
    /// Classes of a softmax model (2 or more); ignored for a logistic model.
    #[serde(default)]
    pub classes: u32,
    /// How devices lay out an example.
    pub features: FeatureLayout,
    /// Local training on each device.
    pub training: TrainingParams,
    /// L2 bound every update is clipped to, on the device and again on the server.
    pub clip_norm: f64,
    /// Gaussian noise each device adds to its clipped update, as a multiple of `clip_norm`
    /// (0: none). Protects a device's update from the server itself.
    #[serde(default)]
    pub device_noise_multiplier: f64,
    /// Gaussian noise the server adds to each aggregate, as a multiple of the per-update
    /// sensitivity (0: none). Protects each participant from whoever sees the published
    /// models; its zCDP cost is recorded with every version.
    #[serde(default)]
    pub central_noise_multiplier: f64,
    /// Synchronous rounds or buffered asynchronous aggregation.
    pub aggregation: Aggregation,
    /// How the server applies an aggregate to the model.
    #[serde(default)]
    pub server_optimizer: ServerOptimizer,
    /// Starting weights, row-major `[outputs x dims]`; zeros when absent.
    #[serde(default)]
    pub initial_weights: Vec<f64>,
}

/// The model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One sigmoid output.
    Logistic,
    /// `classes` softmax outputs.
    Softmax,
}

/// How updates become model versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Aggregation {
    /// Rounds: up to `ceil(target * over_selection)` devices are admitted; the round closes
    /// when `target` updates arrived, or at the deadline with at least `minimum` (fewer:
    /// the round is abandoned and a new one opens on the same version).
    Synchronous {
        /// Updates that close a round at once.
        target_participants: u32,
        /// Fewest updates aggregated at the deadline.
        min_participants: u32,
        /// Devices admitted per round, as a multiple of the target (1 or more), so that
        /// dropouts do not stall a round.
        #[serde(default = "default_over_selection")]
        over_selection: f64,
        /// How long a round stays open, in ms.
        round_deadline_ms: u64,
    },
    /// Every `buffer_size` updates are aggregated into a new version; an update that started
    /// `s` versions ago weighs `1 / sqrt(1 + s)`, and one more than `max_staleness` versions
    /// old is refused.
    Asynchronous {
        /// Updates per aggregation.
        buffer_size: u32,
        /// Oldest accepted base version, in versions behind the current one.
        max_staleness: u32,
    },
}

fn default_over_selection() -> f64 {
    1.3
}

/// The server optimizer: how the averaged update moves the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerOptimizer {
    /// `w += learning_rate * mean update` (FedAvg with learning rate 1).
    Average {
        /// Server learning rate; 1 is plain FedAvg.
        learning_rate: f64,
    },
    /// FedAdam (Reddi et al., "Adaptive Federated Optimization"): Adam moments of the mean
    /// update, `w += learning_rate * m / (sqrt(v) + tau)`.
    FedAdam {
        /// Server learning rate.
        learning_rate: f64,
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Adaptivity floor.
        tau: f64,
    },
}

impl Default for ServerOptimizer {
    fn default() -> Self {
        ServerOptimizer::Average { learning_rate: 1.0 }
    }
}

impl TaskDefinition {
    /// Model outputs: 1 for logistic, `classes` for softmax.
    pub fn outputs(&self) -> usize {
        match self.kind {
            Kind::Logistic => 1,
            Kind::Softmax => self.classes as usize,
        }
    }

    /// Inputs per example, bias included.
    pub fn dims(&self) -> usize {
        self.features.dense_features as usize
            + self.features.signals.len()
            + self.features.hash_buckets as usize
            + 1
    }

    /// Number of weights.
    pub fn weight_count(&self) -> usize {
        self.outputs() * self.dims()
    }

    /// The task as devices see it.
    pub fn to_wire(&self) -> LearningTask {
        LearningTask {
            name: self.name.clone(),
            kind: match self.kind {
                Kind::Logistic => ModelKind::Logistic,
                Kind::Softmax => ModelKind::Softmax,
            } as i32,
            classes: self.outputs() as u32,
            features: Some(self.features.clone()),
            training: Some(self.training),
            clip_norm: self.clip_norm,
            device_noise_multiplier: self.device_noise_multiplier,
        }
    }

    /// Checks that the definition is usable; the reason says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let fail = |why: String| Err(format!("task {:?}: {why}", self.name));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 128
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !name_ok {
            return fail("a name is 1 to 128 letters, digits, '_', '-' or '.'".into());
        }
        if self.kind == Kind::Softmax && self.classes < 2 {
            return fail("a softmax model needs 2 or more classes".into());
        }
        if self.weight_count() > 1_000_000 {
            return fail(format!(
                "{} weights is more than a device model should have",
                self.weight_count()
            ));
        }
        if !(self.clip_norm.is_finite() && self.clip_norm > 0.0) {
            return fail("clip_norm must be a positive number".into());
        }
        for (what, z) in [
            ("device_noise_multiplier", self.device_noise_multiplier),
            ("central_noise_multiplier", self.central_noise_multiplier),
        ] {
            if !(z.is_finite() && z >= 0.0) {
                return fail(format!("{what} must be 0 or more"));
            }
        }
        let t = &self.training;
        if t.epochs == 0
            || t.batch_size == 0
            || !(t.learning_rate.is_finite() && t.learning_rate > 0.0)
        {
            return fail("training needs epochs, batch_size and a positive learning_rate".into());
        }
        if !(t.l2.is_finite() && t.l2 >= 0.0) || t.holdout_percent > 50 {
            return fail("l2 must be 0 or more and holdout_percent at most 50".into());
        }
        match &self.aggregation {
            Aggregation::Synchronous {
                target_participants,
                min_participants,
                over_selection,
                round_deadline_ms,
            } => {
                if *min_participants == 0 || min_participants > target_participants {
                    return fail("0 < min_participants <= target_participants".into());
                }
                if !(over_selection.is_finite() && *over_selection >= 1.0)
                    || *round_deadline_ms == 0
                {
                    return fail(
                        "over_selection is 1 or more and round_deadline_ms positive".into(),
                    );
                }
            }
            Aggregation::Asynchronous { buffer_size, .. } => {
                if *buffer_size == 0 {
                    return fail("buffer_size must be positive".into());
                }
            }
        }
        match self.server_optimizer {
            ServerOptimizer::Average { learning_rate } if learning_rate > 0.0 => {}
            ServerOptimizer::FedAdam {
                learning_rate,
                beta1,
                beta2,
                tau,
            } if learning_rate > 0.0
                && (0.0..1.0).contains(&beta1)
                && (0.0..1.0).contains(&beta2)
                && tau > 0.0 => {}
            _ => return fail("the server optimizer's parameters are out of range".into()),
        }
        if !self.initial_weights.is_empty() && self.initial_weights.len() != self.weight_count() {
            return fail(format!(
                "{} initial weights for a model of {}",
                self.initial_weights.len(),
                self.weight_count()
            ));
        }
        Ok(())
    }
}

/// Reads and checks an operator's task file.
pub fn load(path: &std::path::Path) -> Result<Vec<TaskDefinition>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: TaskFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut names = std::collections::HashSet::new();
    for task in &file.tasks {
        task.validate()?;
        if !names.insert(task.name.clone()) {
            return Err(format!("task {:?} is defined twice", task.name));
        }
    }
    Ok(file.tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"{"tasks": [{
        "name": "churn",
        "kind": "logistic",
        "features": {"dense_features": 3, "signals": ["views_1h"], "hash_buckets": 8},
        "training": {"epochs": 2, "batch_size": 8, "learning_rate": 0.1, "l2": 0.0001,
                     "min_examples": 5, "holdout_percent": 20, "max_examples": 1000},
        "clip_norm": 1.0,
        "central_noise_multiplier": 1.0,
        "aggregation": {"mode": "synchronous", "target_participants": 10,
                        "min_participants": 5, "round_deadline_ms": 60000},
        "server_optimizer": {"kind": "fed_adam", "learning_rate": 0.01, "beta1": 0.9,
                             "beta2": 0.99, "tau": 0.001}
    }]}"#;

    #[test]
    fn the_operator_file_reads_and_checks() {
        let file: TaskFile = serde_json::from_str(EXAMPLE).unwrap();
        let task = &file.tasks[0];
        task.validate().unwrap();
        assert_eq!(task.dims(), 3 + 1 + 8 + 1);
        assert!(matches!(
            task.aggregation,
            Aggregation::Synchronous { over_selection, .. } if over_selection == 1.3
        ));
        assert_eq!(task.to_wire().kind, ModelKind::Logistic as i32);

        let mut bad = task.clone();
        bad.clip_norm = 0.0;
        assert!(bad.validate().unwrap_err().contains("clip_norm"));
        let mut bad = task.clone();
        bad.initial_weights = vec![0.0; 3];
        assert!(bad.validate().is_err());
        assert!(serde_json::from_str::<TaskFile>(&EXAMPLE.replace("clip_norm", "clip")).is_err());
    }
}
