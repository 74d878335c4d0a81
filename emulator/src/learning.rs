//! Federated learning in the emulator: every topic the app shows becomes a training example on
//! the device (the context and the topic, labelled by whether the user clicked), and at night,
//! while the phone is charging, idle and on Wi-Fi, the device takes part in the server's
//! training rounds. The report shows each round's model, evaluated by the devices on their
//! held-out examples, beside the accuracy of always predicting "no click".

use serde::Serialize;
use starling_core::learning::Features;
use starling_server::learning::TaskDefinition;
use starling_server::RunningServer;

use crate::user::CATEGORIES;

/// The learning task: will the user click the topic shown?
pub const TASK: &str = "topic_click";

/// Dense features: evening, recent activity, this user's past click rate on the topic, then
/// the topic one-hot.
const DENSE: usize = 3 + CATEGORIES.len();

/// The task the embedded server runs rounds for.
pub fn task_definition() -> Result<TaskDefinition, String> {
    // Synchronous rounds of 8 devices (5 at least, by the deadline), 3 local epochs.
    let json = format!(
        r#"{{
        "name": "{TASK}",
        "kind": "logistic",
        "features": {{"dense_features": {DENSE}}},
        "training": {{"epochs": 3, "batch_size": 10, "learning_rate": 0.2, "l2": 0.0001,
                     "min_examples": 10, "holdout_percent": 20, "max_examples": 2000}},
        "clip_norm": 5.0,
        "aggregation": {{"mode": "synchronous", "target_participants": 8,
                        "min_participants": 5, "over_selection": 1.5,
                        "round_deadline_ms": 60000}}
    }}"#
    );
    let task: TaskDefinition =
        serde_json::from_str(&json).map_err(|e| format!("learning task: {e}"))?;
    task.validate().map_err(|e| format!("learning task: {e}"))?;
    Ok(task)
}

/// The example's features for a topic shown at this context; `past_rate` is the user's click
/// rate on that topic so far, as the device's own bandit has seen it.
pub fn features(evening: bool, activity: f64, past_rate: f64, topic: usize) -> Features {
    let mut values = vec![0.0; DENSE];
    values[0] = f64::from(u8::from(evening));
    values[1] = activity;
    values[2] = past_rate;
    values[3 + topic] = 1.0;
    Features::dense(&values)
}

/// Whether the device is charging, idle and on Wi-Fi at this hour of the day.
pub fn eligible(hour_of_day: usize) -> bool {
    (2..=4).contains(&(hour_of_day % 24))
}

/// One published model version.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// The version.
    pub version: u64,
    /// The round that produced it.
    pub round: u64,
    /// Devices whose updates made it.
    pub participants: u64,
    /// Examples they trained on.
    pub examples: u64,
    /// Accuracy of this version on the devices' held-out examples (federated evaluation), once
    /// devices have evaluated it.
    pub accuracy: Option<f64>,
    /// Mean cross-entropy on the same examples.
    pub loss: Option<f64>,
    /// Devices that evaluated it.
    pub evaluated_by: u64,
}

/// Federated learning over the run.
#[derive(Debug, Clone, Serialize)]
pub struct ModelAccuracy {
    /// The task.
    pub task: String,
    /// Every published version, oldest first.
    pub rounds: Vec<Round>,
    /// Rounds abandoned for lack of participants.
    pub rounds_abandoned: u64,
    /// Accuracy of always predicting "no click" on the topics shown (1 - their click rate).
    pub majority_baseline: f64,
    /// Learning syncs the devices ran.
    pub syncs: u64,
    /// Updates the server accepted.
    pub updates_sent: u64,
    /// Updates the server refused for good.
    pub updates_refused: u64,
}

/// The server's history of the task, with the baseline from the topic click rate.
pub(crate) fn history(
    server: &RunningServer,
    click_rate: f64,
    (syncs, updates_sent, updates_refused): (u64, u64, u64),
) -> Result<ModelAccuracy, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let history = server.state().learning().history(TASK, now)?;
    let (rounds, rounds_abandoned) = match history {
        Some(h) => (
            h.versions
                .iter()
                .map(|v| Round {
                    version: v.version,
                    round: v.round,
                    participants: v.participants,
                    examples: v.examples,
                    accuracy: v.evaluation.as_ref().map(|e| e.accuracy),
                    loss: v.evaluation.as_ref().map(|e| e.loss),
                    evaluated_by: v.evaluation.as_ref().map_or(0, |e| e.devices),
                })
                .collect(),
            h.rounds_abandoned,
        ),
        None => (Vec::new(), 0),
    };
    Ok(ModelAccuracy {
        task: TASK.to_owned(),
        rounds,
        rounds_abandoned,
        majority_baseline: 1.0 - click_rate,
        syncs,
        updates_sent,
        updates_refused,
    })
}
