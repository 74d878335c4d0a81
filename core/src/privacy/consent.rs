//! Consent per purpose, and the rotation of the pseudonymous device id.
//!
//! Each purpose is granted or withdrawn on its own; [`Starling::set_consent`] grants or
//! withdraws all of them at once. Events are recorded while at least one purpose is granted.
//! Withdrawing a purpose stops it at once and deletes what it kept:
//!
//! | purpose | stops | deletes |
//! |---|---|---|
//! | raw events | uploading events; new events are no longer queued | queued events and batches |
//! | private reports | tallying and sending reports and private arm statistics | tallies, private bandits' gathered statistics, releases not yet sent (their budget stays spent) |
//! | personalization | bandit decisions | signals, bandit states, pending decisions |
//! | federated learning | adding examples, training, check-in and uploading updates | examples and updates not yet sent (their budget stays spent) |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::api::on_writer;
use super::{ledger, reports};
use crate::error::{Error, Result};
use crate::storage::store::Store;
use crate::storage::writer::Command;
use crate::{Inner, Starling};

/// What a user consents to, one purpose at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Sending the app's events, as recorded, to the server.
    RawEvents,
    /// Sending daily private reports (noised aggregates) about the device's events.
    PrivateReports,
    /// Personalizing on the device: signals and bandit decisions.
    Personalization,
    /// Taking part in federated learning.
    FederatedLearning,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 4] = [
        Purpose::RawEvents,
        Purpose::PrivateReports,
        Purpose::Personalization,
        Purpose::FederatedLearning,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Key in `meta` of the purpose's choice.
    fn meta_key(self) -> &'static str {
        match self {
            Purpose::RawEvents => "consent.raw_events",
            Purpose::PrivateReports => "consent.private_reports",
            Purpose::Personalization => "consent.personalization",
            Purpose::FederatedLearning => "consent.federated_learning",
        }
    }
}

/// The current choice for each purpose, readable without waiting. The raw-events flag is
/// shared with the store (which stops queueing events without it) and the private-reports flag
/// with the tallies.
#[derive(Debug)]
pub(crate) struct Purposes {
    flags: [Arc<AtomicBool>; 4],
}

impl Purposes {
    /// The choices stored in the database; a purpose never chosen on its own follows the
    /// global consent.
    pub(crate) fn load(store: &Store, global: bool) -> Result<Purposes> {
        let mut flags: [Arc<AtomicBool>; 4] = Default::default();
        for purpose in Purpose::ALL {
            let granted = match store.meta(purpose.meta_key())?.as_deref() {
                Some("granted") => true,
                Some("denied") => false,
                _ => global,
            };
            flags[purpose.index()] = Arc::new(AtomicBool::new(granted));
        }
        Ok(Purposes { flags })
    }

    /// Whether `purpose` is granted.
    pub(crate) fn granted(&self, purpose: Purpose) -> bool {
        self.flags[purpose.index()].load(Ordering::SeqCst)
    }

    /// The flag of `purpose`, to share with the part that obeys it.
    pub(crate) fn flag(&self, purpose: Purpose) -> Arc<AtomicBool> {
        Arc::clone(&self.flags[purpose.index()])
    }

    /// Writes every purpose's choice to `store` (a recreated database starts without them).
    pub(crate) fn persist(&self, store: &mut Store) -> Result<(), crate::error::StorageError> {
        for purpose in Purpose::ALL {
            let value = if self.granted(purpose) {
                "granted"
            } else {
                "denied"
            };
            store.set_meta(purpose.meta_key(), value)?;
        }
        Ok(())
    }

    fn set(&self, purpose: Purpose, granted: bool) {
        self.flags[purpose.index()].store(granted, Ordering::SeqCst);
    }

    fn any(&self) -> bool {
        Purpose::ALL.iter().any(|p| self.granted(*p))
    }
}

/// Deletes what `purpose` kept, after it was withdrawn.
fn forget(inner: &Inner, purpose: Purpose) -> Result<()> {
    match purpose {
        Purpose::RawEvents => {
            let deleted = on_writer(inner, |store| Ok(store.clear_queue()?))?;
            log::info!("starling: raw events withdrawn; deleted {deleted} queued events");
        }
        Purpose::PrivateReports => {
            let bandits = inner.config.bandits.clone();
            on_writer(inner, move |store| {
                let conn = store.connection();
                conn.execute("DELETE FROM privacy_tally", [])
                    .map_err(crate::error::StorageError::from)?;
                super::arm_stats::forget(conn, &bandits)?;
                ledger::drop_unsent(conn, super::arm_stats::CHANNEL_PREFIX)?;
                Ok(ledger::drop_unsent(conn, reports::CHANNEL_PREFIX)?)
            })?;
        }
        Purpose::Personalization => inner.request(Command::ClearPersonalization)?,
        Purpose::FederatedLearning => {
            let (examples, updates) = on_writer(inner, |store| {
                Ok(crate::learning::forget(store.connection())?)
            })?;
            log::info!(
                "starling: federated learning withdrawn; deleted {examples} examples and {updates} unsent updates"
            );
        }
    }
    Ok(())
}

/// Records the global choice for every purpose: [`Starling::set_consent`] calls this.
pub(crate) fn set_all(inner: &Inner, granted: bool) -> Result<()> {
    for purpose in Purpose::ALL {
        inner.shared.purposes.set(purpose, granted);
        let value = if granted { "granted" } else { "denied" };
        inner.request(|r| Command::SetMeta(purpose.meta_key(), value.into(), r))?;
    }
    if !granted {
        // The writer deleted the events, signals and bandits; the reports' data goes too.
        forget(inner, Purpose::PrivateReports)?;
    }
    Ok(())
}

/// Key in `meta` of when the device id last changed, Unix epoch ms.
const ROTATED_KEY: &str = "device_id_rotated_ms";

/// Replaces the device id if [`PrivacyConfig::device_id_rotation_ms`](super::PrivacyConfig)
/// has passed since it last changed. Called before each upload, so that batches sealed under
/// the old id leave under it. Returns the new id if it changed.
pub(crate) fn rotate_device_id_if_due(inner: &Inner) -> Result<Option<String>> {
    let Some(every_ms) = inner.config.privacy.device_id_rotation_ms else {
        return Ok(None);
    };
    let now = inner.config.clock.now_ms();
    let since = inner
        .request(|r| Command::GetMeta(ROTATED_KEY, r))?
        .and_then(|v| v.parse::<i64>().ok());
    let Some(since) = since else {
        inner.request(|r| Command::SetMeta(ROTATED_KEY, now.to_string(), r))?;
        return Ok(None);
    };
    // A clock moved backwards past the last change is treated as due: rotating early is safe.
    if now >= since && now - since < every_ms as i64 {
        return Ok(None);
    }
    let id = inner.request(Command::ResetDeviceId)?;
    inner.request(|r| Command::SetMeta(ROTATED_KEY, now.to_string(), r))?;
    log::debug!("starling: the device id rotated");
    Ok(Some(id))
}

impl Starling {
    /// Grants or withdraws consent for one purpose. Withdrawing stops it at once and deletes
    /// what it kept (see the table in `docs/privacy.md`); withdrawing the last granted purpose
    /// is the same as `set_consent(false)`. The choice is persisted.
    pub fn set_purpose_consent(&self, purpose: Purpose, granted: bool) -> Result<()> {
        let purposes = &self.inner.shared.purposes;
        if granted {
            purposes.set(purpose, true);
            self.inner
                .request(|r| Command::SetMeta(purpose.meta_key(), "granted".into(), r))?;
            if !self.consent() {
                // Recording resumes; the other purposes keep their own choice.
                self.inner.request(|r| Command::SetConsent(true, r))?;
            }
            return Ok(());
        }
        purposes.set(purpose, false);
        self.inner
            .request(|r| Command::SetMeta(purpose.meta_key(), "denied".into(), r))?;
        if !purposes.any() {
            self.inner.shared.consent.store(false, Ordering::SeqCst);
            self.inner.request(|r| Command::SetConsent(false, r))?;
            return forget(&self.inner, Purpose::PrivateReports);
        }
        forget(&self.inner, purpose)
    }

    /// Whether `purpose` is granted.
    pub fn purpose_consent(&self, purpose: Purpose) -> bool {
        self.inner.shared.purposes.granted(purpose)
    }

    /// Fails with [`Error::NoConsent`] unless `purpose` is granted.
    pub(crate) fn require(&self, purpose: Purpose) -> Result<()> {
        if self.inner.shared.purposes.granted(purpose) && self.consent() {
            Ok(())
        } else {
            Err(Error::NoConsent)
        }
    }
}
