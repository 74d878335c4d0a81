//! Learning under the privacy contract: consent for federated learning gates every step, and
//! an update noised on the device is charged to the privacy ledger in the same transaction
//! that stores it for sending.
//!
//! Because the charge and the stored update commit together, a process killed at any point
//! either has both (the stored update is sent later, byte for byte, without a new charge) or
//! neither (nothing was spent and nothing can leave).

use std::sync::Arc;

use rusqlite::Connection;

use super::store::{self, Submission};
use crate::error::{Error, Result, StorageError};
use crate::privacy::ledger::{self, NewRelease};
use crate::privacy::{reports, Budget, Cost, Purpose};
use crate::{Inner, Shared};

/// Prefix of the ledger channel of learning updates: `learning:<task>`.
pub(crate) const CHANNEL_PREFIX: &str = "learning:";

/// Whether the device may learn: consent is granted and so is its federated-learning purpose.
pub(crate) fn allowed(shared: &Shared) -> bool {
    shared.consent.load(std::sync::atomic::Ordering::SeqCst)
        && shared.purposes.granted(Purpose::FederatedLearning)
}

/// Fails with [`Error::NoConsent`] unless the device may learn.
pub(crate) fn require(inner: &Inner) -> Result<()> {
    if allowed(&inner.shared) {
        Ok(())
    } else {
        Err(Error::NoConsent)
    }
}

/// Fails with [`Error::BudgetExceeded`] if an update of `task` (with its clip bound and device
/// noise) could not be charged now, so that the device neither checks in nor trains for a round
/// it cannot take part in. The charge when the update is stored still decides.
pub(crate) fn check_affordable(
    inner: &Inner,
    task: &starling_proto::v1::LearningTask,
) -> Result<()> {
    let rho = super::update::device_rho(task.clip_norm, task.device_noise_multiplier)?;
    if rho == 0.0 {
        return Ok(());
    }
    let app_budget = inner.config.privacy.budget;
    let clock = inner.config.clock.clone();
    let refused = super::with_db(inner, move |conn| {
        let budget = reports::effective_budget(conn, app_budget)?;
        ledger::would_refuse(conn, &budget, Cost::Rho(rho), clock.now_ms())
    })?;
    match refused {
        Some(reason) => Err(Error::BudgetExceeded(reason)),
        None => Ok(()),
    }
}

/// What a stored update costs and how the receipt describes it.
pub(crate) struct Charge {
    /// The update's id, also the ledger release's id.
    pub(crate) release_id: String,
    /// zCDP rho of the on-device noise; 0 means no noise and no ledger entry.
    pub(crate) rho: f64,
    /// The receipt's outline.
    pub(crate) outline: String,
}

/// Why an update was not stored.
pub(crate) enum NotStored {
    /// Consent for federated learning was withdrawn while the update was being built.
    NoConsent,
    /// The privacy budget cannot take the update's cost; the ledger's reason.
    Refused(String),
    /// An update for this round was stored meanwhile.
    AlreadyBuilt,
}

/// Charges `charge` to the ledger and stores `submission`, in one transaction on the writer
/// thread. Nothing is written (but the ledger clock) when the update is not stored.
pub(crate) fn store_charged(
    inner: &Inner,
    submission: Submission,
    charge: Charge,
) -> Result<std::result::Result<(), NotStored>> {
    let shared = Arc::clone(&inner.shared);
    let app_budget = inner.config.privacy.budget;
    let clock = inner.config.clock.clone();
    super::with_db(inner, move |conn| {
        // Checked here, on the writer, so that an update built while consent was withdrawn is
        // not stored after the withdrawal deleted the others.
        if !allowed(&shared) {
            return Ok(Err(NotStored::NoConsent));
        }
        let budget = reports::effective_budget(conn, app_budget)?;
        save(conn, &budget, &submission, &charge, clock.now_ms())
    })
}

fn save(
    conn: &mut Connection,
    budget: &Budget,
    submission: &Submission,
    charge: &Charge,
    now_ms: i64,
) -> std::result::Result<std::result::Result<(), NotStored>, StorageError> {
    let tx = conn.transaction()?;
    if store::submission(&tx, &submission.task, submission.round)?.is_some() {
        return Ok(Err(NotStored::AlreadyBuilt));
    }
    if charge.rho > 0.0 {
        let channel = format!("{CHANNEL_PREFIX}{}", submission.task);
        let release = NewRelease {
            id: &charge.release_id,
            channel: &channel,
            outline: &charge.outline,
            cost: Cost::Rho(charge.rho),
            payload: &[],
        };
        if let Err(refusal) = ledger::charge(&tx, budget, &release, now_ms)? {
            // The clock may have moved; keep that, store nothing else.
            tx.commit()?;
            return Ok(Err(NotStored::Refused(refusal.0)));
        }
        // The bytes live in the submission until the server has them; the ledger keeps none.
        tx.execute(
            "UPDATE privacy_releases SET payload = NULL WHERE id = ?1",
            [&charge.release_id],
        )?;
    }
    store::save_submission(&tx, submission)?;
    tx.commit()?;
    Ok(Ok(()))
}

/// Records in the ledger that the server answered for the update `release_id` (it has the
/// bytes, whether it kept them or refused them). Runs inside the caller's transaction; an
/// update without on-device noise has no ledger entry and nothing changes.
pub(crate) fn mark_answered(
    conn: &Connection,
    release_id: &str,
    now_ms: i64,
) -> std::result::Result<(), StorageError> {
    conn.execute(
        "UPDATE privacy_releases SET sent_ms = ?2 WHERE id = ?1 AND sent_ms IS NULL",
        rusqlite::params![release_id, now_ms],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::ledger::DAY_MS;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::storage::schema::migrate(&mut conn).unwrap();
        conn
    }

    const BUDGET: Budget = Budget {
        epsilon_per_day: 1.0,
        epsilon_per_week: 3.0,
        rho_per_day: 0.5,
    };

    fn submission(round: u64, rho: f64) -> (Submission, Charge) {
        (
            Submission {
                task: "t".into(),
                round,
                base_version: 1,
                payload: vec![round as u8; 4],
                device_rho: rho,
                state: store::state::PENDING.into(),
                outcome: String::new(),
                created_ms: 0,
            },
            Charge {
                release_id: format!("r{round}"),
                rho,
                outline: "update".into(),
            },
        )
    }

    #[test]
    fn a_noised_update_is_charged_once_with_its_submission() {
        let mut conn = db();
        let t = 1_000 * DAY_MS;
        let (s, c) = submission(1, 0.2);
        assert!(save(&mut conn, &BUDGET, &s, &c, t).unwrap().is_ok());
        assert!(matches!(
            save(&mut conn, &BUDGET, &s, &c, t + 1).unwrap(),
            Err(NotStored::AlreadyBuilt)
        ));
        let spent = ledger::spent(&conn, t + 2).unwrap();
        assert!((spent.rho_day - 0.2).abs() < 1e-12, "{spent:?}");
        let receipts = ledger::receipts(&conn, 10).unwrap();
        assert_eq!(receipts.len(), 1);
        assert_eq!(receipts[0].channel, "learning:t");
        assert!(ledger::unsent(&conn).unwrap().is_empty(), "no payload kept");
    }

    #[test]
    fn an_update_over_the_budget_is_neither_charged_nor_stored() {
        let mut conn = db();
        let t = 1_000 * DAY_MS;
        let (s, c) = submission(1, 0.4);
        assert!(save(&mut conn, &BUDGET, &s, &c, t).unwrap().is_ok());
        let (s, c) = submission(2, 0.4);
        let Err(NotStored::Refused(reason)) = save(&mut conn, &BUDGET, &s, &c, t + 1).unwrap()
        else {
            panic!("the second update fits no budget");
        };
        assert!(reason.contains("rho per day"), "{reason}");
        assert!(store::submission(&conn, "t", 2).unwrap().is_none());
        assert_eq!(ledger::receipts(&conn, 10).unwrap().len(), 1);
    }

    #[test]
    fn an_update_without_noise_costs_nothing() {
        let mut conn = db();
        let (s, c) = submission(1, 0.0);
        assert!(save(&mut conn, &BUDGET, &s, &c, DAY_MS).unwrap().is_ok());
        assert!(store::submission(&conn, "t", 1).unwrap().is_some());
        assert!(ledger::receipts(&conn, 10).unwrap().is_empty());
    }
}
