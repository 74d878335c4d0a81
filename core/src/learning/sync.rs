//! Learning's exchange with the server: download the task's model when it changed, send the
//! updates built earlier and not yet acknowledged, check in for the current round, train, and
//! send the new update.
//!
//! An update is stored before its first upload and re-sent byte for byte until the server
//! answers, so a device killed mid-round neither loses its update nor submits twice: the
//! server recognises the update id. Its on-device noise was charged to the privacy ledger
//! when it was stored (see `accounting`), so a resend costs no budget; every exchange needs
//! consent for federated learning, checked again before each upload.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use prost::Message;
use starling_proto::v1::{CheckIn, CheckInAnswer, ErrorResponse, ModelUpdate, UpdateReceipt};

use super::store::{self, state};
use super::{accounting, api, decode_release, with_db, Eligibility, TrainingReport};
use crate::error::{Error, Result};
use crate::sync::transport::{Fetched, Transport};
use crate::{Inner, Starling};

/// What one learning sync did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LearningSyncReport {
    /// The model version the device holds after this sync.
    pub model_version: Option<u64>,
    /// The round the device holds the model for.
    pub round: Option<u64>,
    /// Whether a new model (or round) was downloaded.
    pub model_changed: bool,
    /// Whether the server admitted the device to the round, if it asked.
    pub admitted: Option<bool>,
    /// What local training did, if it was tried.
    pub training: Option<TrainingReport>,
    /// Updates the server acknowledged during this sync.
    pub updates_sent: u32,
    /// Updates the server refused for good during this sync.
    pub updates_refused: u32,
    /// Why the last exchange failed, if one did; pending updates are retried next time.
    pub last_error: Option<String>,
}

impl Starling {
    /// Runs one learning exchange for `task` on the calling thread: for background jobs
    /// (WorkManager, BGTaskScheduler) only, as it downloads, trains and uploads. Training runs
    /// only when `eligibility` allows it. Failures worth retrying are in the report's
    /// `last_error`, not errors.
    pub fn sync_learning_blocking(
        &self,
        task: &str,
        eligibility: Eligibility,
    ) -> Result<LearningSyncReport> {
        run(&self.inner, task, eligibility)
    }

    /// Starts [`sync_learning_blocking`](Self::sync_learning_blocking) on a background thread
    /// and returns at once: `true` when it started, `false` when a learning job is already
    /// running. The outcome is visible through [`learning_status`](Self::learning_status).
    pub fn sync_learning_in_background(
        &self,
        task: &str,
        eligibility: Eligibility,
    ) -> Result<bool> {
        let busy = Arc::clone(&self.inner.learning.busy);
        if busy.swap(true, Ordering::SeqCst) {
            return Ok(false);
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let task = task.to_owned();
        let spawned = std::thread::Builder::new()
            .name("starling-learning".into())
            .spawn(move || {
                if let Some(inner) = weak.upgrade() {
                    match run(&inner, &task, eligibility) {
                        Ok(report) => {
                            log::debug!("starling: learning sync of {task:?}: {report:?}")
                        }
                        Err(e) => log::warn!("starling: learning sync of {task:?} failed: {e}"),
                    }
                }
                busy.store(false, Ordering::SeqCst);
            });
        match spawned {
            Ok(_) => Ok(true),
            Err(e) => {
                self.inner.learning.busy.store(false, Ordering::SeqCst);
                Err(Error::Storage(format!(
                    "could not start the learning thread: {e}"
                )))
            }
        }
    }
}

fn path(task: &str, tail: &str) -> String {
    format!("/v1/learning/{task}/{tail}")
}

pub(crate) fn run(
    inner: &Arc<Inner>,
    task: &str,
    eligibility: Eligibility,
) -> Result<LearningSyncReport> {
    let _working = inner
        .learning
        .work
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    accounting::require(inner)?;
    let transport = inner.transport.as_ref().ok_or(Error::NoServer)?;
    let mut report = LearningSyncReport::default();

    // Updates built before (perhaps by a process that was killed) go first, as stored.
    let name = task.to_owned();
    let pending: Vec<store::Submission> = with_db(inner, move |conn| {
        Ok(store::submissions(conn, &name)?
            .into_iter()
            .filter(|s| s.state == state::PENDING)
            .collect())
    })?;
    for submission in pending {
        if !send(
            inner,
            transport,
            task,
            submission.round,
            &submission.payload,
            &mut report,
        )? {
            return finish(inner, task, report);
        }
    }

    if let Err(reason) = fetch_model(inner, transport, task, &mut report) {
        report.last_error = Some(reason);
        return finish(inner, task, report);
    }
    let Some(loaded) = inner.learning.get(task) else {
        return finish(inner, task, report);
    };
    if !eligibility.allows_training() {
        report.training = Some(TrainingReport {
            skipped_reason: Some("the device is not charging, unmetered and idle".into()),
            ..Default::default()
        });
        return finish(inner, task, report);
    }
    let round = loaded.release.round;
    let name = task.to_owned();
    let (built, examples) = with_db(inner, move |conn| {
        Ok((
            store::submission(conn, &name, round)?.is_some(),
            store::example_count(conn, &name)?,
        ))
    })?;
    if built {
        return finish(inner, task, report);
    }

    // A device whose budget cannot take the round's update does not ask for a seat.
    let spent = |reason: String| TrainingReport {
        skipped_reason: Some(format!("privacy budget exceeded: {reason}")),
        round,
        base_version: loaded.release.version,
        ..Default::default()
    };
    match accounting::check_affordable(inner, api::task_of(&loaded)) {
        Ok(()) => {}
        Err(Error::BudgetExceeded(reason)) => {
            report.training = Some(spent(reason));
            return finish(inner, task, report);
        }
        Err(e) => return Err(e),
    }

    // Ask to take part before spending the battery on training.
    let check_in = CheckIn {
        device_id: inner.request(crate::storage::writer::Command::DeviceId)?,
        version: loaded.release.version,
        examples: examples.min(u64::from(u32::MAX)) as u32,
    };
    match transport.exchange(&path(task, "checkin"), &check_in.encode_to_vec()) {
        Ok((200, body)) => match CheckInAnswer::decode(body.as_slice()) {
            Ok(answer) => {
                report.admitted = Some(answer.admitted);
                if !answer.admitted {
                    log::debug!("starling: not admitted to task {task:?}: {}", answer.reason);
                    return finish(inner, task, report);
                }
            }
            Err(e) => {
                report.last_error = Some(format!("unreadable check-in answer: {e}"));
                return finish(inner, task, report);
            }
        },
        Ok((status, body)) => {
            report.last_error = Some(format!("check-in answered {status}: {}", reason_of(&body)));
            return finish(inner, task, report);
        }
        Err(reason) => {
            report.last_error = Some(reason);
            return finish(inner, task, report);
        }
    }

    let (training, payload) = match api::train_round(inner, task, eligibility) {
        Ok(built) => built,
        // The budget is spent for now: nothing was stored, and the round goes on without
        // this device. Not an error of the exchange.
        Err(Error::BudgetExceeded(reason)) => (spent(reason), None),
        Err(e) => return Err(e),
    };
    let round = training.round;
    report.training = Some(training);
    if let Some(payload) = payload {
        send(inner, transport, task, round, &payload, &mut report)?;
    }
    finish(inner, task, report)
}

fn finish(inner: &Inner, task: &str, mut report: LearningSyncReport) -> Result<LearningSyncReport> {
    if let Some(loaded) = inner.learning.get(task) {
        report.model_version = Some(loaded.release.version);
        report.round = Some(loaded.release.round);
    }
    Ok(report)
}

/// Downloads the task's model if it changed since the stored one, and stores it.
fn fetch_model(
    inner: &Inner,
    transport: &Transport,
    task: &str,
    report: &mut LearningSyncReport,
) -> std::result::Result<(), String> {
    let etag = inner
        .learning
        .get(task)
        .map(|l| format!("{}.{}", l.release.version, l.release.round));
    match transport.get_if_changed(&path(task, "model"), etag.as_deref())? {
        Fetched::NotModified => Ok(()),
        Fetched::Missing => Err(format!("the server has no task {task:?}")),
        Fetched::Body(body) => {
            let loaded = decode_release(&body).map_err(|e| e.to_string())?;
            let name = task.to_owned();
            with_db(inner, move |conn| store::save_release(conn, &name, &body))
                .map_err(|e| e.to_string())?;
            log::info!(
                "starling: task {task:?} model version {} round {}",
                loaded.release.version,
                loaded.release.round
            );
            inner.learning.install(loaded);
            report.model_changed = true;
            Ok(())
        }
    }
}

/// Sends one stored update and records the answer. Returns `false` when the exchange should
/// stop here (the server could not be reached, or asked to come back later).
fn send(
    inner: &Inner,
    transport: &Transport,
    task: &str,
    round: u64,
    payload: &[u8],
    report: &mut LearningSyncReport,
) -> Result<bool> {
    // Consent may have been withdrawn since the exchange began; the withdrawal deleted the
    // stored updates, and none leaves after it.
    accounting::require(inner)?;
    let (new_state, outcome) = match transport.exchange(&path(task, "updates"), payload) {
        Ok((200, body)) => {
            let status = UpdateReceipt::decode(body.as_slice())
                .map(|r| r.status)
                .unwrap_or_else(|_| "accepted".into());
            report.updates_sent += 1;
            (state::SENT, status)
        }
        Ok((status @ (401 | 403 | 404 | 408 | 429 | 500..=599), body)) => {
            report.last_error = Some(format!("update answered {status}: {}", reason_of(&body)));
            return Ok(false);
        }
        Ok((status, body)) => {
            let reason = reason_of(&body);
            log::warn!(
                "starling: the server refused an update of task {task:?} ({status}): {reason}"
            );
            report.updates_refused += 1;
            (state::REFUSED, reason)
        }
        Err(reason) => {
            report.last_error = Some(reason);
            return Ok(false);
        }
    };
    let name = task.to_owned();
    let release_id = ModelUpdate::decode(payload)
        .map(|u| hex::encode(u.update_id))
        .ok();
    let clock = inner.config.clock.clone();
    with_db(inner, move |conn| {
        let tx = conn.transaction()?;
        store::mark_submission(&tx, &name, round, new_state, &outcome)?;
        if let Some(id) = release_id {
            accounting::mark_answered(&tx, &id, clock.now_ms())?;
        }
        tx.commit()?;
        Ok(())
    })?;
    Ok(true)
}

/// The `code: message` of a protobuf error answer, or a note that there was none.
fn reason_of(body: &[u8]) -> String {
    match ErrorResponse::decode(body) {
        Ok(e) if !e.code.is_empty() => format!("{}: {}", e.code, e.message),
        _ => "no reason given".into(),
    }
}
