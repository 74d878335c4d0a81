//! Starling's on-device core: capture, storage, signals and sync of engagement events.
//!
//! The public type is one handle, [`Starling`], opened from a [`Config`]:
//!
//! ```no_run
//! use starling_core::{Config, Event, Starling};
//!
//! let config = Config::new("/data/app/starling").with_server("https://starling.example.com", "key");
//! let starling = Starling::open(config)?;
//! starling.set_consent(true)?;
//! starling.track(Event::new("screen_view").with("screen", "home"))?;
//! starling.flush()?; // durable from here on
//! let report = starling.sync()?; // usually from a background job
//! println!("sent {} events", report.events_sent);
//! # Ok::<(), starling_core::Error>(())
//! ```
//!
//! `track` validates the event and hands it to a writer thread that owns the SQLite database; it
//! never waits on I/O. `docs/architecture.md` describes the threads and the durability contract.
//!
//! Signals declared in [`Config::signals`] (windowed counts, moving averages, sessions, surge
//! detection, distinct counts, heavy hitters) are kept current by the writer thread and read
//! without waiting through [`Starling::signals`] and [`Starling::feature_vector`];
//! `docs/signals.md` describes them.
#![warn(missing_docs)]

pub mod bandit;
mod capture;
mod config;
mod error;
pub mod learning;
pub mod privacy;
mod remote;
mod signals;
mod storage;
mod sync;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender, TrySendError};

pub use capture::{Event, InvalidEvent, Limits, Value};
pub use config::{Clock, Config};
pub use error::{Error, Result};
pub use privacy::{
    Budget, PrivacyConfig, Purpose, Receipt, ReportKind, ReportSpec, ReportsOutcome, Spent,
};
pub use signals::{PropertyFilter, SessionMeasure, SignalKind, SignalSpec, Signals, Trend};
pub use signals::{SessionState, DEFAULT_SESSION_MAX_LENGTH_MS, DEFAULT_SESSION_TIMEOUT_MS};
pub use sync::SyncReport;

use storage::store::{NewEvent, Store};
use storage::writer::{Command, Reply, Writer};

/// Version of this SDK, sent with every batch.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// File name of the database inside [`Config::data_dir`].
pub const DATABASE_FILE: &str = storage::DB_FILE;

/// Counters and queue sizes: what happened to every event this device has seen.
///
/// Every event accepted by `track` is, at any moment, in exactly one of: uncommitted,
/// unsealed, batched, sent, evicted, dropped, or deleted by consent withdrawal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Events committed to the database since it was created.
    pub events_committed: u64,
    /// Events the server acknowledged.
    pub events_sent: u64,
    /// Batches the server acknowledged.
    pub batches_sent: u64,
    /// Compressed bytes of the batches the server acknowledged (request bodies).
    pub bytes_sent: u64,
    /// Events evicted because the store reached its size bound.
    pub events_evicted_size: u64,
    /// Events evicted because they reached the age bound.
    pub events_evicted_age: u64,
    /// Events in batches the server refused for good.
    pub events_dropped_rejected: u64,
    /// Batches dropped for any reason (refused, evicted).
    pub batches_dropped: u64,
    /// Events deleted because consent was withdrawn.
    pub events_deleted_by_consent: u64,
    /// Times a damaged database was moved aside and recreated.
    pub database_recoveries: u64,
    /// Events dropped from memory because the store refused writes for too long (this process).
    pub events_dropped_unwritable: u64,
    /// Events rejected by validation (this process).
    pub events_rejected_invalid: u64,
    /// Events refused because the in-memory queue was full (this process).
    pub events_dropped_queue_full: u64,
    /// Events accepted but not yet committed.
    pub events_uncommitted: u64,
    /// Committed events not yet sealed into a batch.
    pub events_unsealed: u64,
    /// Sealed batches waiting for upload.
    pub batches_queued: u64,
    /// Events in those batches.
    pub events_batched: u64,
    /// Bytes the store holds (events and batches), as counted against `max_store_bytes`.
    pub stored_bytes: u64,
    /// Decisions the bandits made and logged.
    pub decisions_made: u64,
    /// Decisions waiting for their reward.
    pub decisions_pending: u64,
    /// Decisions rewarded by the app through [`Starling::reward`].
    pub rewards_reported: u64,
    /// Decisions rewarded by a reward event inside their window.
    pub rewards_attributed: u64,
    /// Decisions whose window closed without a reward (learned as reward 0).
    pub decisions_expired: u64,
    /// Rewards that came after their decision was settled, counted and ignored.
    pub rewards_late: u64,
}

/// State shared between the handle and the writer thread.
pub(crate) struct Shared {
    pub(crate) consent: AtomicBool,
    pub(crate) rejected_invalid: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    /// The latest signal snapshot; the writer swaps the pointer after each commit.
    pub(crate) signals: RwLock<Arc<Signals>>,
    /// The configured bandits: read by deciding threads, changed by the writer.
    pub(crate) bandits: bandit::runtime::Runtime,
    /// Consent per purpose.
    pub(crate) purposes: privacy::consent::Purposes,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) shared: Arc<Shared>,
    tx: Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    pub(crate) transport: Option<sync::transport::Transport>,
    pub(crate) sync_lock: Mutex<()>,
    background: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
    /// Federated learning: the latest model of each task.
    pub(crate) learning: learning::State,
}

impl Inner {
    /// Sends a command to the writer thread and waits for its reply.
    pub(crate) fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, answer) = bounded(1);
        self.tx.send(make(reply)).map_err(|_| Error::Closed)?;
        answer.recv().map_err(|_| Error::Closed)?
    }

    fn shutdown(&self) -> Result<()> {
        if let Some((stop, handle)) = self
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            drop(stop);
            let _ = handle.join();
        }
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(handle) = handle else {
            return Ok(());
        };
        let result = self.request(Command::Shutdown);
        let _ = handle.join();
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::warn!("starling: final commit failed on close: {e}");
        }
    }
}

/// A Starling instance: one per app process and data directory.
///
/// Cheap to clone; all clones share one writer thread. Dropping the last clone commits what is
/// buffered and stops the threads.
#[derive(Clone)]
pub struct Starling {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Starling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Starling")
            .field("data_dir", &self.inner.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl Starling {
    /// Opens (or creates) the store in `config.data_dir` and starts the writer thread.
    ///
    /// Opening reads the database, so call it off the UI thread. A damaged database is moved
    /// aside and replaced; see [`Diagnostics::database_recoveries`].
    pub fn open(config: Config) -> Result<Starling> {
        config.validate()?;
        let transport = sync::transport::Transport::new(&config)?;
        let (mut store, report) = Store::open(&config.data_dir)?;
        if report.moved_aside.is_some() {
            // The privacy ledger went with the damaged file: what it recorded counts as spent.
            privacy::ledger::assume_spent(
                store.connection(),
                &config.privacy.budget,
                config.clock.now_ms(),
            )?;
        }
        let mut config = config;
        if let Some(remote) = store
            .meta(remote::META_KEY)?
            .and_then(|hex| hex::decode(hex).ok())
            .and_then(|bytes| {
                <starling_proto::v1::DeviceConfig as prost::Message>::decode(bytes.as_slice()).ok()
            })
        {
            let added = remote::merge(&mut config, &remote);
            if !added.is_empty() {
                log::info!(
                    "starling: definitions from the server: {}",
                    added.join(", ")
                );
            }
        }
        let consent = store.meta("consent")?.as_deref() == Some("granted");
        let purposes = privacy::consent::Purposes::load(&store, consent)?;
        store.tally = privacy::tally::Tally::new(
            &config.privacy.reports,
            purposes.flag(Purpose::PrivateReports),
        );
        store.keep_events = purposes.flag(Purpose::RawEvents);
        store.device_id()?;
        let names: Vec<&str> = config.signals.iter().map(|s| s.name.as_str()).collect();
        let (progress, rows) = store.signal_states(&names)?;
        let engine = signals::engine::Engine::restore(
            config.signals.clone(),
            config.signal_allowed_lateness_ms,
            progress.as_deref(),
            &rows,
        );

        let bandits = bandit::runtime::Runtime::restore(
            &config.bandits,
            &store.bandit_states()?,
            store.pending_decisions()?,
        )?;

        let learning = learning::State::restore(&mut store)?;

        let shared = Arc::new(Shared {
            purposes,
            bandits,
            consent: AtomicBool::new(consent),
            rejected_invalid: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            signals: RwLock::new(Arc::new(engine.snapshot())),
        });
        let (tx, rx) = bounded(config.queue_capacity);
        let writer = Writer::new(store, config.clone(), Arc::clone(&shared), engine);
        let handle = std::thread::Builder::new()
            .name("starling-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Storage(format!("could not start the writer thread: {e}")))?;

        let starling = Starling {
            inner: Arc::new(Inner {
                config,
                shared,
                tx,
                writer: Mutex::new(Some(handle)),
                transport,
                sync_lock: Mutex::new(()),
                background: Mutex::new(None),
                learning,
            }),
        };
        if let Some(interval_ms) = starling.inner.config.background_sync_interval_ms {
            starling.start_background_sync(interval_ms)?;
        }
        Ok(starling)
    }

    /// Records an event. Validates it on the calling thread and queues it for the writer
    /// thread; returns in microseconds and never waits on I/O.
    ///
    /// The event is durable once [`flush`](Self::flush) returns, or at the latest
    /// `flush_interval_ms` after this call.
    pub fn track(&self, event: Event) -> Result<()> {
        if !self.inner.shared.consent.load(Ordering::Relaxed) {
            return Err(Error::NoConsent);
        }
        let now = self.inner.config.clock.now_ms();
        if let Err(e) = capture::validate(&event, now, self.inner.config.max_future_skew_ms) {
            self.inner
                .shared
                .rejected_invalid
                .fetch_add(1, Ordering::Relaxed);
            log::debug!("starling: rejected an event: {e}");
            return Err(e.into());
        }
        // Encoding here, on the caller's core, keeps the writer thread free for SQLite.
        let mut props = Vec::new();
        storage::store::encode_properties(&event.properties, &mut props);
        let event = NewEvent {
            name: event.name,
            time_ms: event.time_ms.unwrap_or(now),
            recorded_ms: now,
            props,
        };
        match self.inner.tx.try_send(Command::Track(event)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.inner
                    .shared
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                Err(Error::QueueFull {
                    capacity: self.inner.config.queue_capacity,
                })
            }
            Err(TrySendError::Disconnected(_)) => Err(Error::Closed),
        }
    }

    /// Commits every event tracked so far; when it returns `Ok`, they survive a crash or a
    /// killed process. Waits on disk I/O: call it off the UI thread.
    pub fn flush(&self) -> Result<()> {
        self.inner.request(Command::Flush)
    }

    /// Seals pending events into batches and uploads them, on the calling thread. Returns what
    /// happened; failures worth retrying are reported in the [`SyncReport`], not as errors.
    pub fn sync(&self) -> Result<SyncReport> {
        sync::run(&self.inner)
    }

    /// Grants or withdraws consent. Without consent nothing is recorded or sent; withdrawing it
    /// deletes every queued event and batch. The choice is persisted.
    pub fn set_consent(&self, granted: bool) -> Result<()> {
        if !granted {
            // Refuse new events at once, before the writer has deleted the old ones.
            self.inner.shared.consent.store(false, Ordering::SeqCst);
        }
        self.inner.request(|r| Command::SetConsent(granted, r))?;
        privacy::consent::set_all(&self.inner, granted)
    }

    /// Whether consent is currently granted.
    pub fn consent(&self) -> bool {
        self.inner.shared.consent.load(Ordering::SeqCst)
    }

    /// The pseudonymous device id: random, stored on the device, never derived from hardware.
    pub fn device_id(&self) -> Result<String> {
        self.inner.request(Command::DeviceId)
    }

    /// Replaces the device id with a new random one. Events tracked before the reset are sent
    /// under the old id; later ones under the new id.
    pub fn reset_device_id(&self) -> Result<String> {
        self.inner.request(Command::ResetDeviceId)
    }

    /// The latest snapshot of the signals declared in [`Config::signals`], as of the last
    /// commit. Never waits on the database: it clones a pointer.
    pub fn signals(&self) -> Arc<Signals> {
        Arc::clone(
            &self
                .inner
                .shared
                .signals
                .read()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// The values of the signals called `names`, in that order, from the latest snapshot.
    /// A name no signal has is an [`Error::UnknownSignal`].
    pub fn feature_vector(&self, names: &[&str]) -> Result<Vec<f64>> {
        self.signals().feature_vector(names)
    }

    /// Chooses an arm of the bandit called `bandit` for `context` (the app's features; the
    /// bandit's context signals are appended). Decides from memory, without waiting on the
    /// database, and logs the decision with its context and propensity for the writer thread.
    ///
    /// Reward the decision with [`reward`](Self::reward), or let the bandit's reward event do
    /// it; when its attribution window closes without a reward, it is learned as 0.
    pub fn choose(&self, bandit: &str, context: &[f64]) -> Result<bandit::Decision> {
        if !self.inner.shared.consent.load(Ordering::Relaxed) {
            return Err(Error::NoConsent);
        }
        self.require(Purpose::Personalization)?;
        let bandits = &self.inner.shared.bandits;
        let signals = self.signals();
        let (decision, pending) =
            bandits.choose(bandit, context, &signals, self.inner.config.clock.now_ms())?;
        match self.inner.tx.try_send(Command::Decided(pending)) {
            Ok(()) => Ok(decision),
            Err(e) => {
                // Unlogged, the decision could never be evaluated or learned from: undo it.
                bandits.take(&decision.id);
                Err(match e {
                    TrySendError::Full(_) => Error::QueueFull {
                        capacity: self.inner.config.queue_capacity,
                    },
                    TrySendError::Disconnected(_) => Error::Closed,
                })
            }
        }
    }

    /// Rewards the decision `decision_id` with `value` (for a Beta-Bernoulli bandit, in [0, 1]).
    /// Returns `true` when the bandit learns from it, `false` when the decision was already
    /// settled (rewarded before, or its window closed): such late rewards are counted in
    /// [`Diagnostics::rewards_late`] and ignored. Never waits on I/O.
    pub fn reward(&self, decision_id: &str, value: f64) -> Result<bool> {
        let bandits = &self.inner.shared.bandits;
        if bandit::runtime::decided_ms_of(decision_id).is_none() {
            return Err(Error::UnknownDecision(decision_id.to_owned()));
        }
        let Some(pending) = bandits.take(decision_id) else {
            self.inner.tx.try_send(Command::LateReward).ok();
            return Ok(false);
        };
        if let Err(e) = bandits.check_reward(&pending.bandit, value) {
            bandits.restore_pending(pending);
            return Err(e);
        }
        match self.inner.tx.try_send(Command::Rewarded(pending, value)) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(Command::Rewarded(pending, _))) => {
                bandits.restore_pending(pending);
                Err(Error::QueueFull {
                    capacity: self.inner.config.queue_capacity,
                })
            }
            Err(_) => Err(Error::Closed),
        }
    }

    /// What the bandit called `bandit` has learned about each of its arms.
    pub fn bandit_arms(&self, bandit: &str) -> Result<Vec<bandit::ArmStats>> {
        self.inner.shared.bandits.arm_stats(bandit)
    }

    /// Counters and queue sizes.
    pub fn diagnostics(&self) -> Result<Diagnostics> {
        self.inner.request(Command::Diagnostics)
    }

    /// Commits what is buffered and stops the threads. Later calls fail with
    /// [`Error::Closed`]. Dropping the last handle does the same.
    pub fn close(&self) -> Result<()> {
        self.inner.shutdown()
    }

    fn start_background_sync(&self, interval_ms: u64) -> Result<()> {
        let (stop, stopped) = bounded::<()>(0);
        let weak = Arc::downgrade(&self.inner);
        let handle = std::thread::Builder::new()
            .name("starling-sync".into())
            .spawn(move || {
                // Wakes every interval until the handle is closed (the sender is dropped).
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_millis(interval_ms))
                {
                    let Some(inner) = weak.upgrade() else { return };
                    match sync::run(&inner) {
                        Ok(_) | Err(Error::NoConsent) => {}
                        Err(e) => log::warn!("starling: background sync failed: {e}"),
                    }
                }
            })
            .map_err(|e| Error::Storage(format!("could not start the sync thread: {e}")))?;
        *self
            .inner
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((stop, handle));
        Ok(())
    }
}

/// The system clock, Unix epoch milliseconds. The core reads "now" through [`Clock`]; this
/// is its default, and the time stamp of a damaged database moved aside.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
