//! The rounds of every task: which devices take part, which updates are accepted (and why not),
//! when an aggregate becomes a new version, and the history of versions with their privacy cost
//! and federated evaluation. State lives in `<data dir>/learning.db`; each accepted update is
//! stored with the task's new state in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use starling_proto::v1::{CheckIn, CheckInAnswer, ModelRelease, ModelUpdate};

use super::aggregate::{self, Contribution, OptimizerState};
use super::task::{Aggregation, TaskDefinition};
pub use super::validate::Refusal;
use super::validate::{check, refuse, sensitivity, RoundState};

const SCHEMA: &str = r#"
    CREATE TABLE IF NOT EXISTS task_state (
        task  TEXT PRIMARY KEY,
        state TEXT NOT NULL -- JSON: version, round, weights, buffered updates, optimizer
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS versions (
        task         TEXT    NOT NULL,
        version      INTEGER NOT NULL,
        round        INTEGER NOT NULL,
        created_ms   INTEGER NOT NULL,
        participants INTEGER NOT NULL,
        examples     INTEGER NOT NULL,
        rho          REAL    NOT NULL, -- zCDP cost of this release's central noise
        rho_total    REAL    NOT NULL, -- sum over every release of the task so far
        weights      TEXT    NOT NULL,
        PRIMARY KEY (task, version)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS evaluations (
        task         TEXT    NOT NULL,
        version      INTEGER NOT NULL,
        devices      INTEGER NOT NULL,
        examples     INTEGER NOT NULL,
        loss_sum     REAL    NOT NULL, -- sums weighted by held-out examples
        accuracy_sum REAL    NOT NULL,
        PRIMARY KEY (task, version)
    ) WITHOUT ROWID;
    -- One accepted update per device and round; update ids recognise replays.
    CREATE TABLE IF NOT EXISTS submissions (
        task        TEXT    NOT NULL,
        round       INTEGER NOT NULL,
        device_id   TEXT    NOT NULL,
        update_id   BLOB    NOT NULL UNIQUE,
        received_ms INTEGER NOT NULL,
        device_rho  REAL    NOT NULL, -- zCDP cost of the noise the device added, as it reported
        examples    INTEGER NOT NULL,
        PRIMARY KEY (task, round, device_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS refusals (
        task   TEXT    NOT NULL,
        reason TEXT    NOT NULL,
        count  INTEGER NOT NULL,
        PRIMARY KEY (task, reason)
    ) WITHOUT ROWID;
"#;

/// A task's live state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TaskState {
    /// Weights count when the state was made; a definition of another shape starts anew.
    shape: usize,
    version: u64,
    round: u64,
    weights: Vec<f64>,
    /// Synchronous rounds: when the current round closes, Unix epoch ms.
    deadline_ms: i64,
    admitted: BTreeSet<String>,
    received: Vec<Contribution>,
    optimizer: OptimizerState,
    rho_total: f64,
    rounds_abandoned: u64,
}

/// What became of an accepted update.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// Stored; `staleness_weight` is 1 for a fresh update.
    Accepted {
        /// The weight relative to a fresh update.
        staleness_weight: f64,
        /// The model version after it (a new one when it completed an aggregate).
        version: u64,
    },
    /// The same update id was received before; nothing changed.
    Duplicate {
        /// The current model version.
        version: u64,
    },
}

/// One version in a task's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRecord {
    /// The version.
    pub version: u64,
    /// The round that produced it.
    pub round: u64,
    /// When it was published, Unix epoch ms.
    pub created_ms: i64,
    /// Updates aggregated into it.
    pub participants: u64,
    /// Training examples behind them.
    pub examples: u64,
    /// zCDP rho of its central noise, and the total over every release so far.
    pub rho: f64,
    /// Sum of rho over this and every earlier release.
    pub rho_total: f64,
    /// Federated evaluation of this version: devices that reported, their held-out examples,
    /// mean loss and accuracy (weighted by examples).
    pub evaluation: Option<Evaluation>,
}

/// Held-out loss and accuracy of a version, as devices reported them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Devices that reported.
    pub devices: u64,
    /// Held-out examples.
    pub examples: u64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Mean accuracy, 0 to 1.
    pub accuracy: f64,
}

/// A task's history, for operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    /// The task.
    pub task: String,
    /// Current version and round.
    pub version: u64,
    /// Current round.
    pub round: u64,
    /// Updates waiting for the next aggregate.
    pub buffered: usize,
    /// Synchronous rounds closed without enough updates.
    pub rounds_abandoned: u64,
    /// zCDP rho spent by central noise over every release.
    pub rho_total: f64,
    /// Every published version, oldest first.
    pub versions: Vec<VersionRecord>,
    /// Refused updates, by reason code.
    pub refusals: BTreeMap<String, u64>,
}

struct Task {
    definition: TaskDefinition,
    state: TaskState,
}

/// Every task's rounds.
pub struct Coordinator {
    tasks: Mutex<HashMap<String, Task>>,
    db: Mutex<Connection>,
}

impl Coordinator {
    /// Opens `<data_dir>/learning.db` and restores each task's state (a task whose shape
    /// changed starts anew from its initial weights).
    pub fn open(data_dir: &Path, definitions: &[TaskDefinition]) -> Result<Coordinator, String> {
        std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
        let conn = Connection::open(data_dir.join("learning.db")).map_err(|e| e.to_string())?;
        let setup = || -> rusqlite::Result<()> {
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            // FULL: an update acknowledged to a device survives a crash; the device forgets it.
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.execute_batch(SCHEMA)
        };
        setup().map_err(|e| format!("learning database: {e}"))?;
        let mut tasks = HashMap::new();
        let now = crate::now_ms();
        for definition in definitions {
            definition.validate()?;
            let stored: Option<String> = conn
                .query_row(
                    "SELECT state FROM task_state WHERE task = ?1",
                    [&definition.name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| e.to_string())?;
            let state = stored
                .and_then(|json| serde_json::from_str::<TaskState>(&json).ok())
                .filter(|s| s.shape == definition.weight_count())
                .unwrap_or_else(|| fresh_state(definition, now));
            if state.version == 0 {
                // Version 0 is in the history too, so that its evaluation has a row.
                conn.execute(
                    "INSERT OR REPLACE INTO versions
                         (task, version, round, created_ms, participants, examples, rho, rho_total, weights)
                     VALUES (?1, 0, 0, ?2, 0, 0, 0, 0, ?3)",
                    params![
                        definition.name,
                        now,
                        serde_json::to_string(&state.weights).map_err(|e| e.to_string())?
                    ],
                )
                .map_err(|e| e.to_string())?;
            }
            tasks.insert(
                definition.name.clone(),
                Task {
                    definition: definition.clone(),
                    state,
                },
            );
        }
        Ok(Coordinator {
            tasks: Mutex::new(tasks),
            db: Mutex::new(conn),
        })
    }

    /// The current release of `task`, or `None` when no such task is defined.
    pub fn release(&self, task: &str, now_ms: i64) -> Result<Option<ModelRelease>, String> {
        self.with_task(task, now_ms, |task, _| Ok(release_of(task)))
    }

    /// A device asks to take part in the current round.
    pub fn check_in(
        &self,
        task: &str,
        check_in: &CheckIn,
        now_ms: i64,
    ) -> Result<Option<CheckInAnswer>, String> {
        self.with_task(task, now_ms, |task, _| {
            let s = &mut task.state;
            let mut answer = CheckInAnswer {
                admitted: true,
                round: s.round,
                version: s.version,
                round_deadline_ms: 0,
                reason: String::new(),
            };
            if let Aggregation::Synchronous {
                target_participants,
                over_selection,
                ..
            } = task.definition.aggregation
            {
                answer.round_deadline_ms = s.deadline_ms;
                let seats = (f64::from(target_participants) * over_selection).ceil() as usize;
                if check_in.version != s.version {
                    answer.admitted = false;
                    answer.reason = format!("the current version is {}", s.version);
                } else if !s.admitted.contains(&check_in.device_id) {
                    if s.admitted.len() >= seats {
                        answer.admitted = false;
                        answer.reason = "the round is full".into();
                    } else {
                        s.admitted.insert(check_in.device_id.clone());
                    }
                }
            }
            Ok(answer)
        })
    }

    /// Checks an update and accepts it (aggregating when it completes a round or buffer), or
    /// refuses it with a reason. Refusals are counted by reason.
    pub fn submit(
        &self,
        task_name: &str,
        update: &ModelUpdate,
        now_ms: i64,
    ) -> Result<Option<Result<Submitted, Refusal>>, String> {
        let result = self.with_task(task_name, now_ms, |task, conn| {
            let duplicate: bool = conn
                .query_row(
                    "SELECT 1 FROM submissions WHERE update_id = ?1",
                    [&update.update_id],
                    |_| Ok(true),
                )
                .optional()
                .map_err(|e| e.to_string())?
                .unwrap_or(false);
            if duplicate {
                return Ok(Ok(Submitted::Duplicate {
                    version: task.state.version,
                }));
            }
            let round = RoundState {
                version: task.state.version,
                round: task.state.round,
                admitted: &task.state.admitted,
            };
            let contribution = match check(&task.definition, &round, update) {
                Ok(c) => c,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let taken: bool = conn
                .query_row(
                    "SELECT 1 FROM submissions WHERE task = ?1 AND round = ?2 AND device_id = ?3",
                    params![task.definition.name, update.round as i64, update.device_id],
                    |_| Ok(true),
                )
                .optional()
                .map_err(|e| e.to_string())?
                .unwrap_or(false);
            if taken {
                return Ok(Err(refuse(
                    409,
                    "already_submitted",
                    format!(
                        "this device already sent an update for round {}",
                        update.round
                    ),
                )));
            }
            Ok(Ok(accept(task, conn, update, contribution, now_ms)?))
        })?;
        if let Some(Err(refusal)) = &result {
            let conn = self.db.lock().unwrap_or_else(|p| p.into_inner());
            conn.execute(
                "INSERT INTO refusals (task, reason, count) VALUES (?1, ?2, 1)
                 ON CONFLICT (task, reason) DO UPDATE SET count = count + 1",
                params![task_name, refusal.code],
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(result)
    }

    /// The task's version history, evaluations and refusals.
    pub fn history(&self, task: &str, now_ms: i64) -> Result<Option<History>, String> {
        self.with_task(task, now_ms, |task, conn| {
            let name = &task.definition.name;
            let sql = "SELECT v.version, v.round, v.created_ms, v.participants, v.examples, v.rho,
                              v.rho_total, e.devices, e.examples, e.loss_sum, e.accuracy_sum
                       FROM versions v LEFT JOIN evaluations e
                            ON e.task = v.task AND e.version = v.version
                       WHERE v.task = ?1 ORDER BY v.version";
            let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
            let versions = stmt
                .query_map([name], |r| {
                    let devices: Option<i64> = r.get(7)?;
                    let examples: Option<i64> = r.get(8)?;
                    let evaluation = match (devices, examples) {
                        (Some(devices), Some(examples)) if examples > 0 => Some(Evaluation {
                            devices: devices as u64,
                            examples: examples as u64,
                            loss: r.get::<_, f64>(9)? / examples as f64,
                            accuracy: r.get::<_, f64>(10)? / examples as f64,
                        }),
                        _ => None,
                    };
                    Ok(VersionRecord {
                        version: r.get::<_, i64>(0)? as u64,
                        round: r.get::<_, i64>(1)? as u64,
                        created_ms: r.get(2)?,
                        participants: r.get::<_, i64>(3)? as u64,
                        examples: r.get::<_, i64>(4)? as u64,
                        rho: r.get(5)?,
                        rho_total: r.get(6)?,
                        evaluation,
                    })
                })
                .map_err(|e| e.to_string())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let mut stmt = conn
                .prepare("SELECT reason, count FROM refusals WHERE task = ?1")
                .map_err(|e| e.to_string())?;
            let refusals = stmt
                .query_map([name], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
                .map_err(|e| e.to_string())?
                .collect::<Result<BTreeMap<_, _>, _>>()
                .map_err(|e| e.to_string())?;
            Ok(History {
                task: name.clone(),
                version: task.state.version,
                round: task.state.round,
                buffered: task.state.received.len(),
                rounds_abandoned: task.state.rounds_abandoned,
                rho_total: task.state.rho_total,
                versions,
                refusals,
            })
        })
    }

    /// Runs `f` on a task after closing its round if the deadline passed; saves the state.
    fn with_task<T>(
        &self,
        name: &str,
        now_ms: i64,
        f: impl FnOnce(&mut Task, &Connection) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let Some(task) = tasks.get_mut(name) else {
            return Ok(None);
        };
        let mut conn = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        let before = task.state.clone();
        let result = tick(task, &tx, now_ms).and_then(|()| f(task, &tx));
        let saved = result.as_ref().map_err(Clone::clone).and_then(|_| {
            // Reads (a model download, a refused update) change nothing: no write, no fsync.
            if task.state != before {
                let json = serde_json::to_string(&task.state).map_err(|e| e.to_string())?;
                tx.execute(
                    "INSERT INTO task_state (task, state) VALUES (?1, ?2)
                     ON CONFLICT (task) DO UPDATE SET state = excluded.state",
                    params![name, json],
                )
                .map_err(|e| e.to_string())?;
            }
            tx.commit().map_err(|e| e.to_string())
        });
        if let Err(e) = saved {
            // Nothing was stored: the state goes back to what the database holds.
            task.state = before;
            return Err(e);
        }
        result.map(Some)
    }
}

fn fresh_state(definition: &TaskDefinition, now_ms: i64) -> TaskState {
    let weights = if definition.initial_weights.is_empty() {
        vec![0.0; definition.weight_count()]
    } else {
        definition.initial_weights.clone()
    };
    TaskState {
        shape: definition.weight_count(),
        version: 0,
        round: 0,
        weights,
        deadline_ms: deadline_after(definition, now_ms),
        admitted: BTreeSet::new(),
        received: Vec::new(),
        optimizer: OptimizerState::default(),
        rho_total: 0.0,
        rounds_abandoned: 0,
    }
}

fn deadline_after(definition: &TaskDefinition, now_ms: i64) -> i64 {
    match definition.aggregation {
        Aggregation::Synchronous {
            round_deadline_ms, ..
        } => now_ms.saturating_add(round_deadline_ms as i64),
        Aggregation::Asynchronous { .. } => 0,
    }
}

fn release_of(task: &Task) -> ModelRelease {
    ModelRelease {
        task: Some(task.definition.to_wire()),
        version: task.state.version,
        round: task.state.round,
        weights: task.state.weights.iter().map(|&w| w as f32).collect(),
        round_deadline_ms: task.state.deadline_ms,
        central_rho_total: task.state.rho_total,
    }
}

/// Stores an accepted update, its evaluation of the base version, and aggregates when the
/// round or buffer is complete.
fn accept(
    task: &mut Task,
    conn: &Connection,
    u: &ModelUpdate,
    contribution: Contribution,
    now_ms: i64,
) -> Result<Submitted, String> {
    let name = task.definition.name.clone();
    conn.execute(
        "INSERT INTO submissions (task, round, device_id, update_id, received_ms, device_rho, examples)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![name, u.round as i64, u.device_id, u.update_id, now_ms, u.device_rho, u.examples],
    )
    .map_err(|e| e.to_string())?;
    if u.holdout_examples > 0 {
        let n = f64::from(u.holdout_examples);
        conn.execute(
            "INSERT INTO evaluations (task, version, devices, examples, loss_sum, accuracy_sum)
             VALUES (?1, ?2, 1, ?3, ?4, ?5)
             ON CONFLICT (task, version) DO UPDATE SET devices = devices + 1,
                 examples = examples + excluded.examples, loss_sum = loss_sum + excluded.loss_sum,
                 accuracy_sum = accuracy_sum + excluded.accuracy_sum",
            params![
                name,
                u.base_version as i64,
                u.holdout_examples,
                u.holdout_loss * n,
                u.holdout_accuracy * n
            ],
        )
        .map_err(|e| e.to_string())?;
    }
    let staleness_weight = contribution.staleness_weight;
    task.state.received.push(contribution);
    let full = match task.definition.aggregation {
        Aggregation::Synchronous {
            target_participants,
            ..
        } => task.state.received.len() >= target_participants as usize,
        Aggregation::Asynchronous { buffer_size, .. } => {
            task.state.received.len() >= buffer_size as usize
        }
    };
    if full {
        publish(task, conn, now_ms)?;
    }
    Ok(Submitted::Accepted {
        staleness_weight,
        version: task.state.version,
    })
}

/// Closes a synchronous round whose deadline passed: aggregated when it has its minimum,
/// abandoned (a new round on the same version) when it does not.
fn tick(task: &mut Task, conn: &Connection, now_ms: i64) -> Result<(), String> {
    let Aggregation::Synchronous {
        min_participants, ..
    } = task.definition.aggregation
    else {
        return Ok(());
    };
    if now_ms < task.state.deadline_ms {
        return Ok(());
    }
    if task.state.received.len() >= min_participants as usize {
        publish(task, conn, now_ms)
    } else {
        log::info!(
            "learning task {:?}: round {} closed with {} of {min_participants} updates; abandoned",
            task.definition.name,
            task.state.round,
            task.state.received.len()
        );
        task.state.rounds_abandoned += 1;
        next_round(task, now_ms);
        Ok(())
    }
}

fn next_round(task: &mut Task, now_ms: i64) {
    task.state.round += 1;
    task.state.admitted.clear();
    task.state.received.clear();
    task.state.deadline_ms = deadline_after(&task.definition, now_ms);
}

/// Aggregates the received updates into a new version and records it.
fn publish(task: &mut Task, conn: &Connection, now_ms: i64) -> Result<(), String> {
    let d = &task.definition;
    let aggregate = aggregate::mean(
        &task.state.received,
        d.weight_count(),
        sensitivity(d),
        d.central_noise_multiplier,
    )?;
    let s = &mut task.state;
    aggregate::apply(
        &d.server_optimizer,
        &mut s.optimizer,
        &mut s.weights,
        &aggregate.mean,
    );
    s.version += 1;
    s.rho_total += aggregate.rho;
    let participants = s.received.len() as i64;
    let examples: i64 = s.received.iter().map(|c| i64::from(c.examples)).sum();
    conn.execute(
        "INSERT INTO versions (task, version, round, created_ms, participants, examples, rho, rho_total, weights)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            d.name,
            s.version as i64,
            s.round as i64,
            now_ms,
            participants,
            examples,
            aggregate.rho,
            s.rho_total,
            serde_json::to_string(&s.weights).map_err(|e| e.to_string())?
        ],
    )
    .map_err(|e| e.to_string())?;
    log::info!(
        "learning task {:?}: version {} from {participants} updates (rho {:.4}, total {:.4})",
        d.name,
        s.version,
        aggregate.rho,
        s.rho_total
    );
    next_round(task, now_ms);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::task::TaskFile;

    fn definition() -> TaskDefinition {
        let json = r#"{"tasks": [{
            "name": "t", "kind": "logistic", "features": {"dense_features": 2},
            "training": {"epochs": 1, "batch_size": 1, "learning_rate": 0.1},
            "clip_norm": 1.0,
            "aggregation": {"mode": "asynchronous", "buffer_size": 2, "max_staleness": 1}
        }]}"#;
        serde_json::from_str::<TaskFile>(json)
            .unwrap()
            .tasks
            .remove(0)
    }

    fn update(id: u8, device: &str) -> ModelUpdate {
        ModelUpdate {
            update_id: vec![id; 16],
            task: "t".into(),
            device_id: device.into(),
            examples: 4,
            scale: 0.001,
            quantized: vec![100, 0, 0],
            clip_norm: 1.0,
            ..Default::default()
        }
    }

    #[test]
    fn rounds_survive_a_restart_and_replays_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Coordinator::open(dir.path(), &[definition()]).unwrap();
            let first = c.submit("t", &update(1, "a"), 0).unwrap().unwrap();
            assert!(matches!(first, Ok(Submitted::Accepted { version: 0, .. })));
        }
        let c = Coordinator::open(dir.path(), &[definition()]).unwrap();
        assert_eq!(
            c.history("t", 0).unwrap().unwrap().buffered,
            1,
            "the buffer was kept"
        );
        let replay = c.submit("t", &update(1, "a"), 0).unwrap().unwrap();
        assert_eq!(replay, Ok(Submitted::Duplicate { version: 0 }));
        let second = c.submit("t", &update(2, "b"), 0).unwrap().unwrap();
        assert!(matches!(second, Ok(Submitted::Accepted { version: 1, .. })));
        let release = c.release("t", 0).unwrap().unwrap();
        assert_eq!(release.version, 1);
        // The mean of two identical updates of 0.1 on the first weight.
        assert!(
            (release.weights[0] - 0.1).abs() < 1e-6,
            "{:?}",
            release.weights
        );
        assert!(c.release("unknown", 0).unwrap().is_none());
    }
}
