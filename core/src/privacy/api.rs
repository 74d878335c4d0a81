//! The handle's privacy methods: budgets, receipts, and sending the private reports.

use std::sync::{Arc, Mutex};

use super::ledger::{self, Budget, NewRelease, Receipt, Spent};
use super::mechanisms;
use super::{reports, ReportsOutcome};
use crate::error::{Error, Result};
use crate::storage::store::Store;
use crate::storage::writer::Command;
use crate::sync::transport::{Transport, UploadOutcome};
use crate::{Inner, Starling};

/// Runs `task` on the writer thread, after it has committed what it buffered, and returns its
/// result. A damaged database shows as a storage error here; the writer's next commit sets it
/// aside and starts anew, as for any other write.
pub(crate) fn on_writer<T: Send + 'static>(
    inner: &Inner,
    mut task: impl FnMut(&mut Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    let slot: Arc<Mutex<Option<Result<T>>>> = Arc::new(Mutex::new(None));
    let out = Arc::clone(&slot);
    inner.request(|reply| {
        Command::Task(
            Box::new(move |store: &mut Store| {
                let result = task(store);
                *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                Ok(())
            }),
            reply,
        )
    })?;
    let result = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    result.unwrap_or(Err(Error::Closed))
}

/// Prepares the due reports and sends every charged, unsent one. Called by `sync` and by
/// [`Starling::send_private_reports`].
pub(crate) fn run(inner: &Inner, transport: &Transport) -> Result<ReportsOutcome> {
    if !inner
        .shared
        .purposes
        .granted(super::Purpose::PrivateReports)
    {
        return Ok(ReportsOutcome::default());
    }
    let specs = inner.config.privacy.reports.clone();
    let budget = inner.config.privacy.budget;
    let clock = inner.config.clock.clone();
    let mut outcome = ReportsOutcome::default();
    if !specs.is_empty() {
        let prepared = on_writer(inner, move |store| {
            reports::prepare(store.connection(), &specs, budget, clock.now_ms())
        })?;
        outcome.charged = prepared.charged;
        outcome.refused = prepared.refused;
    }
    let bandits = inner.config.bandits.clone();
    if bandits.iter().any(super::arm_stats::is_private) {
        let clock = inner.config.clock.clone();
        let prepared = on_writer(inner, move |store| {
            super::arm_stats::prepare(store.connection(), &bandits, budget, clock.now_ms())
        })?;
        outcome.charged += prepared.charged;
        outcome.refused.extend(prepared.refused);
    }

    let Some((body, ids)) = on_writer(inner, |store| reports::pending_upload(store.connection()))?
    else {
        return Ok(outcome);
    };
    match transport.post(reports::PATH, &body) {
        UploadOutcome::Delivered => {
            outcome.sent = ids.len() as u32;
            let clock = inner.config.clock.clone();
            on_writer(inner, move |store| {
                Ok(ledger::mark_sent(store.connection(), &ids, clock.now_ms())?)
            })?;
        }
        UploadOutcome::Rejected { status } => {
            log::error!(
                "starling: the server refused {} private reports with status {status}; dropped (their budget stays spent)",
                ids.len()
            );
            outcome.send_error = Some(format!("server refused the reports ({status})"));
            on_writer(inner, move |store| {
                Ok(ledger::abandon(store.connection(), &ids)?)
            })?;
        }
        UploadOutcome::Retry { reason, .. } => {
            log::warn!("starling: private reports not sent ({reason}); they are resent later");
            outcome.send_error = Some(reason);
        }
    }
    Ok(outcome)
}

impl Starling {
    /// The privacy budget in force: the app's [`PrivacyConfig::budget`](super::PrivacyConfig),
    /// capped by what the server's configuration asks for.
    pub fn privacy_budget(&self) -> Result<Budget> {
        let app = self.inner.config.privacy.budget;
        on_writer(&self.inner, move |store| {
            Ok(reports::effective_budget(store.connection(), app)?)
        })
    }

    /// What has been spent in each budget window, as of now (or of the latest time the ledger
    /// has seen, if the clock was moved back).
    pub fn privacy_spent(&self) -> Result<Spent> {
        let clock = self.inner.config.clock.clone();
        on_writer(&self.inner, move |store| {
            Ok(ledger::spent(store.connection(), clock.now_ms())?)
        })
    }

    /// Every private release this device made, newest first, at most `limit`: when it was
    /// charged and sent, where it went, an outline of what it held, and what it cost.
    pub fn privacy_receipts(&self, limit: u32) -> Result<Vec<Receipt>> {
        on_writer(&self.inner, move |store| {
            Ok(ledger::receipts(store.connection(), limit)?)
        })
    }

    /// Noises and charges the private reports that are due and sends every charged report the
    /// server has not acknowledged yet. `sync` does this too; this call does only this.
    pub fn send_private_reports(&self) -> Result<ReportsOutcome> {
        self.require(super::Purpose::PrivateReports)?;
        let transport = self.inner.transport.as_ref().ok_or(Error::NoServer)?;
        let _running = self
            .inner
            .sync_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        run(&self.inner, transport)
    }

    /// Releases `values` with Gaussian noise under zero-concentrated DP, for a part of the app
    /// that sends it itself (a model update, for example): the vector is clipped to L2 norm
    /// `max_norm`, noised for a cost of `rho`, charged to the rho budget and recorded as
    /// released on `channel` before it is returned. Needs consent for federated learning.
    ///
    /// A release the budget cannot take fails with [`Error::BudgetExceeded`], whose reason says
    /// which budget and how much is left; nothing is charged then.
    pub fn release_private_vector(
        &self,
        channel: &str,
        values: &[f64],
        max_norm: f64,
        rho: f64,
    ) -> Result<Vec<f64>> {
        self.require(super::Purpose::FederatedLearning)?;
        let channel_ok = !channel.is_empty()
            && channel.len() <= 64
            && channel
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !channel_ok {
            return Err(Error::Privacy(format!(
                "channel {channel:?} must be 1 to 64 letters, digits, '_', '-' or '.'"
            )));
        }
        // Noised here, on the caller's thread: the measurement lives only for this call.
        let noisy = mechanisms::gaussian_vector(values, max_norm, rho)?;
        let outline = format!(
            "vector of {} values clipped to L2 norm {max_norm} with Gaussian noise (sigma {:.3})",
            values.len(),
            noisy.sigma
        );
        let channel = format!("vector:{channel}");
        let cost = noisy.cost;
        let budget = self.inner.config.privacy.budget;
        let clock = self.inner.config.clock.clone();
        let refused = on_writer(&self.inner, move |store| {
            let conn = store.connection();
            let budget = reports::effective_budget(conn, budget)?;
            let id = uuid::Uuid::new_v4().simple().to_string();
            let release = NewRelease {
                id: &id,
                channel: &channel,
                outline: &outline,
                cost,
                payload: &[],
            };
            let now = clock.now_ms();
            let tx = conn
                .transaction()
                .map_err(crate::error::StorageError::from)?;
            let result = ledger::charge(&tx, &budget, &release, now)?;
            if result.is_ok() {
                // It leaves through the caller: released from this moment.
                tx.execute(
                    "UPDATE privacy_releases SET sent_ms = ?2, payload = NULL WHERE id = ?1",
                    rusqlite::params![id, now],
                )
                .map_err(crate::error::StorageError::from)?;
            }
            tx.commit().map_err(crate::error::StorageError::from)?;
            Ok(result.err())
        })?;
        match refused {
            Some(refusal) => Err(Error::BudgetExceeded(refusal.0)),
            None => Ok(noisy.values),
        }
    }
}
