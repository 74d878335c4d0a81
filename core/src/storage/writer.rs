//! The writer thread: the only owner of the SQLite connection.
//!
//! Callers send [`Command`]s through one bounded channel. Tracked events are buffered and
//! committed in groups: when the group is full, when the oldest buffered event has waited
//! `flush_interval_ms`, or when someone asks for a flush. Everything else (sealing batches,
//! recording upload outcomes, consent changes) is a command too, so the order of operations is
//! the order of the channel and no lock is ever held across I/O.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::store::{
    counter, decode_properties, BanditRows, NewEvent, OutgoingBatch, QueueStats, SealParams, Store,
};
use crate::bandit::runtime::{Outcome, Pending, Settled};
use crate::error::{Error, Result, StorageError};
use crate::signals::engine::{Engine, EventRef};
use crate::{Config, Diagnostics, Shared};

/// The session events an engine has to record, encoded like tracked events.
fn session_events(engine: &mut Engine, recorded_ms: i64) -> Vec<NewEvent> {
    engine
        .take_session_events()
        .into_iter()
        .map(|(name, time_ms, properties)| {
            let mut event = crate::bandit::runtime::event(name, time_ms, &properties);
            event.recorded_ms = recorded_ms;
            event
        })
        .collect()
}

/// A reply channel for one command.
pub(crate) type Reply<T> = Sender<Result<T>>;

/// Work of another part of the core (the privacy ledger) that must run on the writer thread,
/// which owns the connection. It sends its own result; the reply says it ran.
pub(crate) type StoreTask = Box<dyn FnMut(&mut Store) -> Result<(), StorageError> + Send>;

/// Most events kept in memory while the store refuses writes (for example a full disk), beyond
/// the ones the channel holds. Older ones are dropped and counted past this bound.
const MAX_UNCOMMITTED_EVENTS: usize = 100_000;

/// Longest wait between commit attempts while the store refuses writes.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// What the writer thread can be asked to do.
pub(crate) enum Command {
    /// Record one validated, timestamped event.
    Track(NewEvent),
    /// Log a decision a bandit made (it is already pending in memory).
    Decided(Pending),
    /// Learn from a decision the app rewarded (already removed from the pending ones).
    Rewarded(Pending, f64),
    /// A reward came for a decision that was already settled: count it.
    LateReward,
    /// The fleet's prior for a bandit that has learned nothing yet: apply and persist it, and
    /// reply with the number of arms it covered.
    ApplyPrior(String, starling_proto::v1::BanditPrior, Reply<usize>),
    /// Commit everything buffered; reply once it is durable.
    Flush(Reply<()>),
    /// Commit, enforce the bounds, seal batches, and hand back what should be uploaded.
    PrepareUpload(Reply<Vec<OutgoingBatch>>),
    /// The server acknowledged this batch.
    Delivered(Vec<u8>, Reply<()>),
    /// The server refused this batch for good; drop it and count its events.
    Rejected(Vec<u8>, Reply<()>),
    /// An upload of this batch was tried and will be retried.
    Attempted(Vec<u8>, Reply<()>),
    /// Read a metadata value.
    GetMeta(&'static str, Reply<Option<String>>),
    /// Write a metadata value.
    SetMeta(&'static str, String, Reply<()>),
    /// Grant or withdraw consent; withdrawing deletes all queued data.
    SetConsent(bool, Reply<()>),
    /// The current pseudonymous device id.
    DeviceId(Reply<String>),
    /// Seal what is pending under the old id, then switch to a new id.
    ResetDeviceId(Reply<String>),
    /// Counters and queue sizes.
    Diagnostics(Reply<Diagnostics>),
    /// Commit and stop.
    Shutdown(Reply<()>),
    /// Run a job on the store (federated learning's tables); the job replies itself.
    Learning(StoreJob),
    /// Commit what is buffered, then run a task on the store.
    Task(StoreTask, Reply<()>),
    /// Forget the signals, what the bandits learned and the pending decisions (consent for
    /// personalization was withdrawn).
    ClearPersonalization(Reply<()>),
}

/// A job that runs on the writer thread with the store.
pub(crate) type StoreJob = Box<dyn FnOnce(&mut Store) + Send>;

pub(crate) struct Writer {
    store: Store,
    config: Config,
    shared: Arc<Shared>,
    buffer: Vec<NewEvent>,
    /// When the buffered events must be committed: `flush_interval_ms` after the oldest one
    /// arrived, or after a retry delay while the store refuses writes.
    deadline: Option<Instant>,
    /// Set while the store refuses writes (a full disk): the delay before the next attempt,
    /// doubling up to [`MAX_RETRY_DELAY`]. Explicit flushes still try at once.
    retry_delay: Option<Duration>,
    /// Events dropped because the store refused writes for too long.
    dropped_unwritable: u64,
    last_eviction: Instant,
    /// The signals as of the last commit.
    signals: Engine,
    /// Set after the database was recreated: the next commit writes every signal's state, not
    /// only the changed ones.
    signals_rewrite: bool,
    /// Bandit rows waiting for the next commit.
    bandit_rows: BanditRows,
    /// How many of the buffered events were already looked at for reward attribution.
    attributed_upto: usize,
}

impl Writer {
    pub(crate) fn new(store: Store, config: Config, shared: Arc<Shared>, signals: Engine) -> Self {
        Writer {
            signals,
            signals_rewrite: false,
            bandit_rows: BanditRows::default(),
            attributed_upto: 0,
            store,
            config,
            shared,
            buffer: Vec::new(),
            deadline: None,
            retry_delay: None,
            dropped_unwritable: 0,
            last_eviction: Instant::now(),
        }
    }

    /// Runs until a `Shutdown` command or until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Command>) {
        loop {
            let command = match self.wake_at() {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match command {
                Ok(Command::Track(event)) => {
                    self.buffer_event(event);
                    // Take whatever else is already waiting, up to a group, before committing.
                    while self.buffer.len() < self.config.commit_group_events {
                        match rx.try_recv() {
                            Ok(Command::Track(event)) => self.buffer_event(event),
                            Ok(other) => {
                                if self.handle(other) {
                                    return;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    // A full group is committed at once, unless the store is refusing writes: then
                    // only the retry deadline or an explicit flush tries again.
                    if self.buffer.len() >= self.config.commit_group_events
                        && self.retry_delay.is_none()
                    {
                        let _ = self.commit();
                    }
                }
                Ok(other) => {
                    if self.handle(other) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.commit();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.commit();
                    return;
                }
            }
        }
    }

    fn buffer_event(&mut self, event: NewEvent) {
        self.start_deadline();
        self.buffer.push(event);
    }

    /// Something waits for a commit: make sure one happens within the flush interval.
    fn start_deadline(&mut self) {
        if self.deadline.is_none() {
            self.deadline =
                Some(Instant::now() + Duration::from_millis(self.config.flush_interval_ms));
        }
    }

    /// When the loop must wake up without a command: the commit deadline, or the moment the
    /// next pending decision's attribution window closes.
    fn wake_at(&self) -> Option<Instant> {
        let expiry = self.shared.bandits.next_expiry_ms().map(|at| {
            let wait = at.saturating_sub(self.config.clock.now_ms()).max(0) as u64;
            Instant::now() + Duration::from_millis(wait)
        });
        match (self.deadline, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Learns from a settled decision and logs it: the decision row goes, the bandit's new
    /// state and the decision event are written with the next commit.
    fn settle(&mut self, settled: Settled) {
        let bandits = Arc::clone(&self.shared);
        let bandits = &bandits.bandits;
        bandits.learn(&settled);
        let counter = match settled.outcome {
            Outcome::Reported => counter::REWARDS_REPORTED,
            Outcome::Attributed => counter::REWARDS_ATTRIBUTED,
            Outcome::Expired => counter::DECISIONS_EXPIRED,
        };
        self.bandit_rows.counters.push((counter, 1));
        self.bandit_rows.settled.push(settled.pending.id.clone());
        if bandits.shares_statistics(&settled.pending.bandit) {
            self.bandit_rows.contributions.push((
                settled.pending.bandit.clone(),
                settled.pending.arm.clone(),
                settled.reward,
            ));
        }
        if let Some(task) = bandits.learning_task(&settled.pending.bandit) {
            if crate::learning::may_learn(&self.shared) {
                self.bandit_rows.examples.push(crate::learning::of_settled(
                    task,
                    &settled,
                    self.config.clock.now_ms(),
                ));
            }
        }
        let event = bandits.decision_event(&settled, self.config.clock.now_ms());
        // Appended after the events already looked at for attribution, which it never
        // rewards (its name is reserved).
        self.buffer_event(event);
    }

    /// Settles the decisions whose window closed and the ones rewarded by buffered events.
    fn settle_due(&mut self) {
        let shared = Arc::clone(&self.shared);
        let bandits = &shared.bandits;
        if bandits.is_empty() {
            return;
        }
        for settled in bandits.expire(self.config.clock.now_ms()) {
            self.settle(settled);
        }
        let end = self.buffer.len();
        let mut found = Vec::new();
        for event in &self.buffer[self.attributed_upto.min(end)..end] {
            if bandits.rewards(&event.name) {
                let props = decode_properties(&event.props);
                found.extend(bandits.attribute(&event.name, event.time_ms, &props));
            }
        }
        self.attributed_upto = end;
        for settled in found {
            self.settle(settled);
        }
    }

    /// Handles one non-track command; returns true when the writer should stop.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Track(event) => self.buffer_event(event),
            Command::Decided(pending) => {
                self.bandit_rows.decided.push(pending);
                self.bandit_rows.counters.push((counter::DECISIONS, 1));
                self.start_deadline();
            }
            Command::Rewarded(pending, reward) => {
                self.settle(Settled {
                    pending,
                    reward,
                    outcome: Outcome::Reported,
                });
            }
            Command::ApplyPrior(name, prior, reply) => {
                let result = self.shared.bandits.apply_prior(&name, &prior);
                let result = match result {
                    Ok(n) if n > 0 => self.commit().map(|()| n),
                    other => other,
                };
                let _ = reply.send(result);
            }
            Command::LateReward => {
                self.bandit_rows.counters.push((counter::REWARDS_LATE, 1));
                self.start_deadline();
            }
            Command::Flush(reply) => {
                let _ = reply.send(self.commit());
            }
            Command::PrepareUpload(reply) => {
                let _ = reply.send(self.prepare_upload());
            }
            Command::Delivered(id, reply) => {
                let _ = reply.send(self.with_store(|s| s.delivered(&id)));
            }
            Command::Rejected(id, reply) => {
                let _ = reply.send(
                    self.with_store(|s| s.drop_batch(&id, counter::DROPPED_REJECTED).map(drop)),
                );
            }
            Command::Attempted(id, reply) => {
                let _ = reply.send(self.with_store(|s| s.attempted(&id)));
            }
            Command::GetMeta(key, reply) => {
                let _ = reply.send(self.with_store(|s| s.meta(key)));
            }
            Command::SetMeta(key, value, reply) => {
                let _ = reply.send(self.with_store(|s| s.set_meta(key, &value)));
            }
            Command::SetConsent(granted, reply) => {
                let _ = reply.send(self.set_consent(granted));
            }
            Command::DeviceId(reply) => {
                let _ = reply.send(self.with_store(|s| s.device_id()));
            }
            Command::ResetDeviceId(reply) => {
                let _ = reply.send(self.reset_device_id());
            }
            Command::Diagnostics(reply) => {
                let _ = reply.send(self.diagnostics());
            }
            Command::Learning(job) => job(&mut self.store),
            Command::Shutdown(reply) => {
                let _ = reply.send(self.commit());
                return true;
            }
            Command::ClearPersonalization(reply) => {
                let _ = reply.send(self.clear_personalization());
            }
            Command::Task(mut task, reply) => {
                let result = self.commit().and_then(|()| self.with_store(|s| task(s)));
                let _ = reply.send(result);
            }
        }
        false
    }

    /// Commits the buffered events in one transaction. On failure the events stay buffered and
    /// are retried at the next deadline; the error goes back to whoever asked for a flush.
    fn commit(&mut self) -> Result<()> {
        self.settle_due();
        let shared = Arc::clone(&self.shared);
        self.bandit_rows.states.extend(shared.bandits.take_dirty());
        if self.buffer.is_empty() && self.bandit_rows.is_empty() {
            self.deadline = None;
            return Ok(());
        }
        let mut events = std::mem::take(&mut self.buffer);
        let mut next = self.next_signals(&events);
        // Session boundaries the group crossed are recorded with it, in the same transaction
        // as the states that crossed them: each is recorded exactly once.
        let tracked = events.len();
        if let Some((engine, _)) = &mut next {
            events.extend(session_events(engine, self.config.clock.now_ms()));
        }
        let rows = next.as_ref().map(|(_, rows)| rows);
        let rewrite_requested = self.signals_rewrite;
        let mut bandit_rows = std::mem::take(&mut self.bandit_rows);
        // Consent for federated learning withdrawn since these examples were made: they go.
        if !bandit_rows.examples.is_empty() && !crate::learning::may_learn(&shared) {
            bandit_rows.examples.clear();
        }
        match self.with_store(|store| store.insert_events(&events, rows, &bandit_rows)) {
            Ok(()) => {
                self.attributed_upto = 0;
                if !bandit_rows.states.is_empty() {
                    shared.bandits.prepare();
                }
                if let Some((engine, _)) = next {
                    // Every state was written if a rewrite was asked for before this commit
                    // (one asked for by a recovery during it stays pending).
                    if rewrite_requested {
                        self.signals_rewrite = false;
                    }
                    self.signals = engine;
                    self.publish_signals();
                }
                self.deadline = None;
                self.retry_delay = None;
                if self.store_over_bounds() {
                    let _ = self.evict();
                }
                Ok(())
            }
            Err(e) => {
                // Keep the events and the bandit rows and try again later, backing off. The
                // states are encoded afresh at the next attempt, and the session events with
                // them.
                events.truncate(tracked);
                self.buffer = events;
                let names: Vec<String> = bandit_rows
                    .states
                    .iter()
                    .map(|(n, _, _)| n.clone())
                    .collect();
                shared.bandits.mark_dirty(&names);
                self.bandit_rows = BanditRows {
                    states: Vec::new(),
                    ..bandit_rows
                };
                let delay = self
                    .retry_delay
                    .map_or(Duration::from_millis(self.config.flush_interval_ms), |d| {
                        d * 2
                    })
                    .min(MAX_RETRY_DELAY);
                self.retry_delay = Some(delay);
                self.deadline = Some(Instant::now() + delay);
                if self.buffer.len() > MAX_UNCOMMITTED_EVENTS {
                    let excess = self.buffer.len() - MAX_UNCOMMITTED_EVENTS;
                    self.buffer.drain(..excess);
                    self.attributed_upto = self.attributed_upto.saturating_sub(excess);
                    self.dropped_unwritable += excess as u64;
                    log::error!("starling: dropped {excess} events the store could not take");
                }
                Err(e)
            }
        }
    }

    /// The signals after `events`, and the rows to persist with them; `None` when no signal is
    /// defined. The current engine is left alone until the events are committed.
    fn next_signals(
        &mut self,
        events: &[NewEvent],
    ) -> Option<(Engine, crate::signals::engine::SignalRows)> {
        if self.signals.is_empty() {
            return None;
        }
        let mut next = self.signals.clone();
        if self.signals_rewrite {
            next.mark_all_dirty();
        }
        let mut props = Vec::new();
        for event in events {
            props.clear();
            if !event.props.is_empty() && next.needs_props(&event.name) {
                props = decode_properties(&event.props);
            }
            next.apply(EventRef {
                name: &event.name,
                time_ms: event.time_ms,
                props: &props,
            });
        }
        let rows = next.take_rows();
        Some((next, rows))
    }

    /// Publishes a snapshot of the current signals; the lock is held for a pointer swap.
    fn publish_signals(&self) {
        let snapshot = Arc::new(self.signals.snapshot());
        *self
            .shared
            .signals
            .write()
            .unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    fn store_over_bounds(&self) -> bool {
        // The age bound is checked at most once a minute; the size bound after every commit,
        // from the in-memory byte count.
        self.last_eviction.elapsed() > Duration::from_secs(60)
            || self.store.stored_bytes() > self.config.max_store_bytes
    }

    fn evict(&mut self) -> Result<u64> {
        self.last_eviction = Instant::now();
        let (max_bytes, max_age) = (self.config.max_store_bytes, self.config.max_age_ms);
        let now = self.config.clock.now_ms();
        self.with_store(|s| s.evict(now, max_bytes, max_age))
    }

    fn prepare_upload(&mut self) -> Result<Vec<OutgoingBatch>> {
        self.commit()?;
        if !self.shared.bandits.is_empty() {
            let now = self.config.clock.now_ms();
            let private = self.shared.bandits.private_statistics();
            self.with_store(|s| s.emit_arm_stats(now, &private))?;
        }
        self.evict()?;
        let params = SealParams {
            schema_version: self.config.schema_version,
            max_events: self.config.batch_max_events,
            max_bytes: self.config.batch_max_bytes,
            now_ms: self.config.clock.now_ms(),
        };
        self.with_store(|s| {
            s.seal(&params)?;
            s.outgoing()
        })
    }

    fn set_consent(&mut self, granted: bool) -> Result<()> {
        if !granted {
            // Everything tracked before the withdrawal, even if not yet committed, goes. It is
            // committed first so that the deletion below counts it with the rest; if the store
            // refuses the commit, it is counted as dropped.
            if self.commit().is_err() {
                self.dropped_unwritable += self.buffer.len() as u64;
            }
            self.buffer.clear();
            self.attributed_upto = 0;
            self.bandit_rows = BanditRows::default();
            self.deadline = None;
            self.retry_delay = None;
            let deleted = self.with_store(|s| s.clear())?;
            // Signals and what the bandits learned are derived from the deleted events: they go
            // too.
            self.signals = self.signals.cleared();
            self.publish_signals();
            self.shared.bandits.reset();
            log::info!("starling: consent withdrawn; deleted {deleted} queued events");
        }
        self.with_store(|s| s.set_meta("consent", if granted { "granted" } else { "denied" }))?;
        self.shared.consent.store(granted, Ordering::SeqCst);
        Ok(())
    }

    fn clear_personalization(&mut self) -> Result<()> {
        // Decisions and states not yet committed go with the committed ones.
        self.commit()?;
        self.bandit_rows = BanditRows::default();
        self.with_store(|s| s.clear_personalization())?;
        self.signals = self.signals.cleared();
        self.publish_signals();
        self.shared.bandits.reset();
        log::info!("starling: personalization withdrawn; signals and bandit states deleted");
        Ok(())
    }

    fn reset_device_id(&mut self) -> Result<String> {
        // Events tracked under the old id leave under the old id: seal them first, so the new
        // id is never linked to earlier activity.
        self.prepare_upload()?;
        self.with_store(|s| s.new_device_id())
    }

    fn diagnostics(&mut self) -> Result<Diagnostics> {
        let (counters, queue): (_, QueueStats) =
            self.with_store(|s| Ok((s.counters()?, s.queue_stats()?)))?;
        // Committed counts, plus the bandit counts waiting for the next commit.
        let get = |name: &str| {
            counters.get(name).copied().unwrap_or(0)
                + self
                    .bandit_rows
                    .counters
                    .iter()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, v)| v)
                    .sum::<u64>()
        };
        Ok(Diagnostics {
            events_committed: get(counter::COMMITTED),
            events_sent: get(counter::SENT),
            batches_sent: get(counter::BATCHES_SENT),
            bytes_sent: get(counter::BYTES_SENT),
            events_evicted_size: get(counter::EVICTED_SIZE),
            events_evicted_age: get(counter::EVICTED_AGE),
            events_dropped_rejected: get(counter::DROPPED_REJECTED),
            batches_dropped: get(counter::BATCHES_DROPPED),
            events_deleted_by_consent: get(counter::CONSENT_DELETED),
            database_recoveries: get(counter::DB_RECOVERED),
            events_dropped_unwritable: self.dropped_unwritable,
            events_rejected_invalid: self.shared.rejected_invalid.load(Ordering::Relaxed),
            events_dropped_queue_full: self.shared.dropped_queue_full.load(Ordering::Relaxed),
            decisions_made: get(counter::DECISIONS),
            decisions_pending: self.shared.bandits.pending_count() as u64,
            rewards_reported: get(counter::REWARDS_REPORTED),
            rewards_attributed: get(counter::REWARDS_ATTRIBUTED),
            decisions_expired: get(counter::DECISIONS_EXPIRED),
            rewards_late: get(counter::REWARDS_LATE),
            events_uncommitted: self.buffer.len() as u64,
            events_unsealed: queue.unsealed_events,
            batches_queued: queue.batches,
            events_batched: queue.batched_events,
            stored_bytes: queue.stored_bytes,
        })
    }

    /// Runs a store operation. If the database turns out to be corrupt, it is moved aside and
    /// recreated, and the operation is tried once more on the fresh database.
    fn with_store<T>(
        &mut self,
        mut op: impl FnMut(&mut Store) -> Result<T, StorageError>,
    ) -> Result<T> {
        match op(&mut self.store) {
            Ok(value) => Ok(value),
            Err(e) if e.is_corruption() => {
                log::error!("starling: database corrupt while in use ({e}); recreating it");
                let (mut store, _) = Store::reopen_after_corruption(&self.config.data_dir)?;
                store.tally = std::mem::take(&mut self.store.tally);
                store.keep_events = std::sync::Arc::clone(&self.store.keep_events);
                self.store = store;
                self.signals_rewrite = true;
                if self.shared.consent.load(Ordering::SeqCst) {
                    self.store.set_meta("consent", "granted")?;
                }
                self.shared.purposes.persist(&mut self.store)?;
                crate::privacy::ledger::assume_spent(
                    self.store.connection(),
                    &self.config.privacy.budget,
                    self.config.clock.now_ms(),
                )?;
                Ok(op(&mut self.store)?)
            }
            Err(e) => {
                log::warn!("starling: storage operation failed: {e}");
                Err(Error::from(e))
            }
        }
    }
}
