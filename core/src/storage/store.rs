//! The on-device event store: committed events, sealed batches waiting for upload, counters and
//! metadata, all in one SQLite database owned by the writer thread.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use flate2::{write::GzEncoder, Compression};
use prost::Message;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use starling_proto::batch::{BatchBuilder, BatchHeader, Value};
use starling_proto::v1::StoredProperties;

use super::db::{self, OpenReport};
use crate::bandit::runtime::{decode_context, encode_context, Pending, StateRow};
use crate::error::StorageError;
use crate::signals::engine::SignalRows;

/// Bytes counted for each event row besides its name and properties (sequence number, times,
/// size, and SQLite's own row overhead, roughly).
const ROW_OVERHEAD_BYTES: u64 = 32;

/// Names of the cumulative counters kept in the `counters` table.
pub(crate) mod counter {
    pub const COMMITTED: &str = "events_committed";
    pub const SENT: &str = "events_sent";
    pub const BATCHES_SENT: &str = "batches_sent";
    pub const BYTES_SENT: &str = "bytes_sent";
    pub const EVICTED_SIZE: &str = "evicted_size";
    pub const EVICTED_AGE: &str = "evicted_age";
    pub const DROPPED_REJECTED: &str = "dropped_rejected";
    pub const BATCHES_DROPPED: &str = "batches_dropped";
    pub const DB_RECOVERED: &str = "db_recovered";
    pub const CONSENT_DELETED: &str = "consent_deleted";
    pub const DECISIONS: &str = "decisions";
    pub const REWARDS_REPORTED: &str = "rewards_reported";
    pub const REWARDS_ATTRIBUTED: &str = "rewards_attributed";
    pub const DECISIONS_EXPIRED: &str = "decisions_expired";
    pub const REWARDS_LATE: &str = "rewards_late";
}

/// Key in `meta` of the signal engine's progress (watermark and counts), as JSON.
const SIGNALS_META_KEY: &str = "signals";

/// The persisted signal progress and the `(name, fingerprint, state)` rows.
pub(crate) type SignalStates = (Option<String>, Vec<(String, String, Vec<u8>)>);

/// An event ready to be committed.
#[derive(Debug)]
pub(crate) struct NewEvent {
    pub(crate) name: String,
    pub(crate) time_ms: i64,
    pub(crate) recorded_ms: i64,
    /// Properties encoded with [`encode_properties`]; empty when there are none.
    pub(crate) props: Vec<u8>,
}

impl NewEvent {
    /// Bytes this event counts against the store's size bound.
    pub(crate) fn size(&self) -> u64 {
        ROW_OVERHEAD_BYTES + self.name.len() as u64 + self.props.len() as u64
    }
}

/// A sealed batch as stored, ready to upload.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingBatch {
    pub(crate) id: Vec<u8>,
    pub(crate) payload: Vec<u8>,
    pub(crate) events: u64,
}

/// How a sealed batch should be sealed: header fields and size limits.
#[derive(Debug, Clone)]
pub(crate) struct SealParams {
    pub(crate) schema_version: u32,
    pub(crate) max_events: usize,
    pub(crate) max_bytes: usize,
    pub(crate) now_ms: i64,
}

/// Sizes of what is queued on the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QueueStats {
    pub(crate) unsealed_events: u64,
    pub(crate) batches: u64,
    pub(crate) batched_events: u64,
    pub(crate) stored_bytes: u64,
}

pub(crate) struct Store {
    conn: Connection,
    /// Bytes of stored events plus sealed batch payloads, kept in step with every write so the
    /// size bound is checked without a query.
    stored_bytes: u64,
    /// What the private reports tally from each committed event.
    pub(crate) tally: crate::privacy::tally::Tally,
    /// Off while consent for raw events is withdrawn: committed events feed the signals,
    /// bandits and tallies but are not queued for upload.
    pub(crate) keep_events: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Store {
    /// Opens the store in `dir`, recovering from a damaged file.
    pub(crate) fn open(dir: &Path) -> Result<(Store, OpenReport), StorageError> {
        let (conn, report) = db::open(dir)?;
        let mut store = Store {
            conn,
            stored_bytes: 0,
            tally: Default::default(),
            keep_events: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        store.stored_bytes = store.measure_bytes()?;
        if report.moved_aside.is_some() {
            store.count_recovery();
        }
        Ok((store, report))
    }

    /// The connection, for the modules that keep their own tables in this database (they run
    /// on the writer thread too).
    pub(crate) fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Replaces a database found corrupt while in use with a fresh one.
    pub(crate) fn reopen_after_corruption(dir: &Path) -> Result<(Store, OpenReport), StorageError> {
        db::move_aside(&dir.join(db::DB_FILE))?;
        Store::open(dir).map(|(mut store, report)| {
            store.count_recovery();
            (store, report)
        })
    }

    fn count_recovery(&mut self) {
        let result = self
            .conn
            .transaction()
            .map_err(StorageError::from)
            .and_then(|tx| {
                add_counter(&tx, counter::DB_RECOVERED, 1)?;
                Ok(tx.commit()?)
            });
        if let Err(e) = result {
            log::warn!("starling: could not count a database recovery: {e}");
        }
    }

    /// Bytes of stored events and sealed batches.
    pub(crate) fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    fn measure_bytes(&self) -> Result<u64, StorageError> {
        let events: i64 =
            self.conn
                .query_row("SELECT coalesce(sum(size), 0) FROM events", [], |r| {
                    r.get(0)
                })?;
        let batches: i64 = self.conn.query_row(
            "SELECT coalesce(sum(length(payload)), 0) FROM batches",
            [],
            |r| r.get(0),
        )?;
        Ok((events + batches) as u64)
    }

    /// Commits a group of events in one transaction, with the signal states they produced, so
    /// that states and events never disagree. On error nothing is written.
    pub(crate) fn insert_events(
        &mut self,
        events: &[NewEvent],
        signals: Option<&SignalRows>,
        bandits: &BanditRows,
    ) -> Result<(), StorageError> {
        let tx = self.conn.transaction()?;
        let mut added = 0u64;
        let keep = self.keep_events.load(std::sync::atomic::Ordering::SeqCst);
        if !keep {
            add_counter(&tx, counter::CONSENT_DELETED, events.len() as u64)?;
        }
        if keep {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (name, time_ms, recorded_ms, props, size) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for event in events {
                let size = event.size();
                let blob: Option<&[u8]> = if event.props.is_empty() {
                    None
                } else {
                    Some(&event.props)
                };
                stmt.execute(params![
                    event.name,
                    event.time_ms,
                    event.recorded_ms,
                    blob,
                    size as i64
                ])?;
                added += size;
            }
        }
        add_counter(&tx, counter::COMMITTED, events.len() as u64)?;
        self.tally.record(&tx, events)?;
        if let Some(rows) = signals {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO signal_state (name, spec, state) VALUES (?1, ?2, ?3)",
            )?;
            for (name, spec, state) in &rows.states {
                stmt.execute(params![name, spec, state])?;
            }
            set_meta(&tx, SIGNALS_META_KEY, &rows.progress)?;
        }
        if !bandits.is_empty() {
            write_bandit_rows(&tx, bandits)?;
        }
        tx.commit()?;
        self.stored_bytes += added;
        Ok(())
    }

    /// The persisted bandit states.
    pub(crate) fn bandit_states(&self) -> Result<Vec<StateRow>, StorageError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, spec, state FROM bandit_state")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The decisions still waiting for a reward.
    pub(crate) fn pending_decisions(&self) -> Result<Vec<Pending>, StorageError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, bandit, arm, propensity, context, arms, decided_ms FROM decisions",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Pending {
                id: r.get(0)?,
                bandit: r.get(1)?,
                arm: r.get(2)?,
                propensity: r.get(3)?,
                context: decode_context(&r.get::<_, Vec<u8>>(4)?),
                arms: r.get(5)?,
                decided_ms: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Turns the per-arm statistics gathered since the last call into events for the fleet
    /// priors, and resets them, in one transaction. Returns the number of events added. The
    /// bandits in `private` are left alone: their statistics go through the private channel.
    pub(crate) fn emit_arm_stats(
        &mut self,
        now_ms: i64,
        private: &[String],
    ) -> Result<u64, StorageError> {
        let tx = self.conn.transaction()?;
        let rows: Vec<(String, String, i64, f64, f64)> = {
            let mut stmt = tx.prepare(
                "SELECT bandit, arm, pulls, reward_sum, reward_sq_sum FROM bandit_contrib
                 WHERE pulls > 0 ORDER BY bandit, arm",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.filter(|row| row.as_ref().map_or(true, |(b, ..)| !private.contains(b)))
                .collect::<Result<_, _>>()?
        };
        if rows.is_empty() {
            return Ok(0);
        }
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (name, time_ms, recorded_ms, props, size) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (bandit, arm, pulls, sum, sq) in &rows {
                let event = crate::bandit::runtime::event(
                    crate::bandit::ARM_STATS_EVENT,
                    now_ms,
                    &[
                        ("bandit".to_owned(), Value::String(bandit.clone())),
                        ("arm".to_owned(), Value::String(arm.clone())),
                        ("pulls".to_owned(), Value::Float(*pulls as f64)),
                        ("reward_sum".to_owned(), Value::Float(*sum)),
                        ("reward_sq_sum".to_owned(), Value::Float(*sq)),
                        ("noised".to_owned(), Value::Bool(false)),
                        ("epsilon".to_owned(), Value::Float(0.0)),
                    ],
                );
                stmt.execute(params![
                    event.name,
                    event.time_ms,
                    event.recorded_ms,
                    event.props,
                    event.size() as i64
                ])?;
                added += event.size();
            }
        }
        {
            let mut delete =
                tx.prepare_cached("DELETE FROM bandit_contrib WHERE bandit = ?1 AND arm = ?2")?;
            for (bandit, arm, ..) in &rows {
                delete.execute(params![bandit, arm])?;
            }
        }
        add_counter(&tx, counter::COMMITTED, rows.len() as u64)?;
        tx.commit()?;
        self.stored_bytes += added;
        Ok(rows.len() as u64)
    }

    /// Enforces the age and size bounds, oldest data first. Returns the number of events
    /// evicted. Evicted events are counted and reported to the server with the next batch.
    pub(crate) fn evict(
        &mut self,
        now_ms: i64,
        max_bytes: u64,
        max_age_ms: u64,
    ) -> Result<u64, StorageError> {
        let cutoff = now_ms.saturating_sub(max_age_ms as i64);
        let mut evicted = 0;

        let old_batches: Vec<Vec<u8>> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM batches WHERE sealed_ms < ?1")?;
            let ids = stmt.query_map([cutoff], |r| r.get(0))?;
            ids.collect::<Result<_, _>>()?
        };
        for id in old_batches {
            evicted += self.drop_batch(&id, counter::EVICTED_AGE)?;
        }
        evicted += self.delete_events_where("recorded_ms < ?1", cutoff, counter::EVICTED_AGE)?;

        if self.stored_bytes > max_bytes {
            // Free a tenth more than needed, so that a full store is not trimmed on every commit.
            let target = max_bytes - max_bytes / 10;
            loop {
                if self.stored_bytes <= target {
                    break;
                }
                let oldest: Option<Vec<u8>> = self
                    .conn
                    .query_row(
                        "SELECT id FROM batches ORDER BY sealed_ms, sequence LIMIT 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = oldest {
                    evicted += self.drop_batch(&id, counter::EVICTED_SIZE)?;
                    continue;
                }
                // The oldest events whose sizes add up to the excess.
                let excess = (self.stored_bytes - target) as i64;
                let last: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT seq FROM (SELECT seq, sum(size) OVER (ORDER BY seq) AS running
                           FROM events) WHERE running >= ?1 ORDER BY seq LIMIT 1",
                        [excess],
                        |r| r.get(0),
                    )
                    .optional()?;
                let last = match last {
                    Some(seq) => seq,
                    None => self.conn.query_row(
                        "SELECT coalesce(max(seq), -1) FROM events",
                        [],
                        |r| r.get(0),
                    )?,
                };
                if last < 0 {
                    break;
                }
                let freed = self.delete_events_where("seq <= ?1", last, counter::EVICTED_SIZE)?;
                evicted += freed;
                if freed == 0 {
                    break;
                }
            }
        }
        if evicted > 0 {
            log::warn!("starling: evicted {evicted} events to stay within the store's bounds");
        }
        Ok(evicted)
    }

    fn delete_events_where(
        &mut self,
        condition: &str,
        arg: i64,
        reason: &str,
    ) -> Result<u64, StorageError> {
        let tx = self.conn.transaction()?;
        let (count, bytes): (i64, i64) = tx.query_row(
            &format!("SELECT count(*), coalesce(sum(size), 0) FROM events WHERE {condition}"),
            [arg],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if count == 0 {
            return Ok(0);
        }
        tx.execute(&format!("DELETE FROM events WHERE {condition}"), [arg])?;
        add_counter(&tx, reason, count as u64)?;
        add_loss(&tx, reason, count as u64)?;
        tx.commit()?;
        self.stored_bytes = self.stored_bytes.saturating_sub(bytes as u64);
        Ok(count as u64)
    }

    /// Deletes a sealed batch that will never be delivered, counting its events under
    /// `reason`. The losses it carried go back into the pending report.
    pub(crate) fn drop_batch(&mut self, id: &[u8], reason: &str) -> Result<u64, StorageError> {
        let tx = self.conn.transaction()?;
        let row: Option<(i64, String, i64)> = tx
            .query_row(
                "SELECT events, losses, length(payload) FROM batches WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((events, losses, bytes)) = row else {
            return Ok(0);
        };
        tx.execute("DELETE FROM batches WHERE id = ?1", [id])?;
        for (carried_reason, count) in parse_losses(&losses) {
            add_loss(&tx, &carried_reason, count)?;
        }
        add_counter(&tx, reason, events as u64)?;
        add_counter(&tx, counter::BATCHES_DROPPED, 1)?;
        add_loss(&tx, reason, events as u64)?;
        tx.commit()?;
        self.stored_bytes = self.stored_bytes.saturating_sub(bytes as u64);
        Ok(events as u64)
    }

    /// Cuts every committed event into sealed batches: encoded, compressed and stored, so that
    /// each retry sends the same bytes. Returns the number of batches sealed.
    pub(crate) fn seal(&mut self, params: &SealParams) -> Result<usize, StorageError> {
        let mut sealed = 0;
        loop {
            let rows = self.unsealed(params.max_events)?;
            if rows.is_empty() {
                return Ok(sealed);
            }

            let device_id = self.device_id()?;
            let sequence = self.meta_i64("batch_sequence")?.unwrap_or(0) + 1;
            let batch_id = uuid::Uuid::new_v4().as_bytes().to_vec();
            let mut builder = BatchBuilder::new(BatchHeader {
                batch_id: batch_id.clone(),
                device_id: device_id.clone(),
                sequence: sequence as u64,
                schema_version: params.schema_version,
                sdk_version: crate::SDK_VERSION.to_owned(),
                sealed_at_ms: params.now_ms,
            });
            let mut bytes = 0usize;
            let mut event_bytes = 0u64;
            let mut last_seq = 0;
            for row in &rows {
                if !builder.is_empty() && bytes + row.size as usize > params.max_bytes {
                    break;
                }
                builder.push(row.seq as u64, row.time_ms, &row.name, &row.properties);
                bytes += row.size as usize;
                event_bytes += row.size as u64;
                last_seq = row.seq;
            }
            let events = builder.len() as u64;

            let tx = self.conn.transaction()?;
            let losses = take_losses(&tx)?;
            for (reason, count) in &losses {
                builder.add_loss(reason, *count);
            }
            let payload = gzip(&builder.finish().encode_to_vec())?;
            tx.execute(
                "INSERT INTO batches (id, device_id, sequence, payload, events, losses, sealed_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    batch_id,
                    device_id,
                    sequence,
                    payload,
                    events as i64,
                    format_losses(&losses),
                    params.now_ms
                ],
            )?;
            tx.execute("DELETE FROM events WHERE seq <= ?1", [last_seq])?;
            set_meta(&tx, "batch_sequence", &sequence.to_string())?;
            tx.commit()?;

            self.stored_bytes =
                self.stored_bytes.saturating_sub(event_bytes) + payload.len() as u64;
            sealed += 1;
        }
    }

    fn unsealed(&self, limit: usize) -> Result<Vec<StoredRow>, StorageError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, name, time_ms, props, size FROM events ORDER BY seq LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            let props: Option<Vec<u8>> = r.get(3)?;
            Ok(StoredRow {
                seq: r.get(0)?,
                name: r.get(1)?,
                time_ms: r.get(2)?,
                properties: decode_properties(props.as_deref().unwrap_or_default()),
                size: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sealed batches in the order they should be sent.
    pub(crate) fn outgoing(&self) -> Result<Vec<OutgoingBatch>, StorageError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, payload, events FROM batches ORDER BY sealed_ms, sequence",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(OutgoingBatch {
                id: r.get(0)?,
                payload: r.get(1)?,
                events: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The server acknowledged a batch: it is gone from the device.
    pub(crate) fn delivered(&mut self, id: &[u8]) -> Result<(), StorageError> {
        let tx = self.conn.transaction()?;
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT events, length(payload) FROM batches WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((events, bytes)) = row {
            tx.execute("DELETE FROM batches WHERE id = ?1", [id])?;
            add_counter(&tx, counter::SENT, events as u64)?;
            add_counter(&tx, counter::BATCHES_SENT, 1)?;
            add_counter(&tx, counter::BYTES_SENT, bytes as u64)?;
            tx.commit()?;
            self.stored_bytes = self.stored_bytes.saturating_sub(bytes as u64);
        }
        Ok(())
    }

    /// Counts one more upload attempt of a batch.
    pub(crate) fn attempted(&mut self, id: &[u8]) -> Result<(), StorageError> {
        self.conn.execute(
            "UPDATE batches SET attempts = attempts + 1 WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// Deletes the queued events and batches and the unreported losses: consent for raw events
    /// was withdrawn. Returns how many events went.
    pub(crate) fn clear_queue(&mut self) -> Result<u64, StorageError> {
        let tx = self.conn.transaction()?;
        let unsealed: i64 = tx.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let batched: i64 =
            tx.query_row("SELECT coalesce(sum(events), 0) FROM batches", [], |r| {
                r.get(0)
            })?;
        tx.execute_batch("DELETE FROM events; DELETE FROM batches; DELETE FROM pending_losses;")?;
        let deleted = (unsealed + batched) as u64;
        add_counter(&tx, counter::CONSENT_DELETED, deleted)?;
        tx.commit()?;
        self.stored_bytes = 0;
        Ok(deleted)
    }

    /// Deletes the signal and bandit states and the pending decisions: consent for
    /// personalization was withdrawn.
    pub(crate) fn clear_personalization(&mut self) -> Result<(), StorageError> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "DELETE FROM signal_state; DELETE FROM bandit_state; DELETE FROM decisions;
             DELETE FROM bandit_contrib;",
        )?;
        tx.execute("DELETE FROM meta WHERE key = ?1", [SIGNALS_META_KEY])?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes every event, batch and unreported loss: consent was withdrawn.
    pub(crate) fn clear(&mut self) -> Result<u64, StorageError> {
        let tx = self.conn.transaction()?;
        let unsealed: i64 = tx.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let batched: i64 =
            tx.query_row("SELECT coalesce(sum(events), 0) FROM batches", [], |r| {
                r.get(0)
            })?;
        tx.execute_batch(
            "DELETE FROM events; DELETE FROM batches; DELETE FROM pending_losses;
             DELETE FROM signal_state; DELETE FROM bandit_state; DELETE FROM decisions;
             DELETE FROM bandit_contrib;",
        )?;
        crate::learning::forget(&tx)?;
        tx.execute("DELETE FROM meta WHERE key = ?1", [SIGNALS_META_KEY])?;
        let deleted = (unsealed + batched) as u64;
        add_counter(&tx, counter::CONSENT_DELETED, deleted)?;
        tx.commit()?;
        self.stored_bytes = 0;
        Ok(deleted)
    }

    /// The persisted signal progress and states, after deleting the states of signals that
    /// are no longer configured.
    pub(crate) fn signal_states(
        &mut self,
        configured: &[&str],
    ) -> Result<SignalStates, StorageError> {
        let rows: Vec<(String, String, Vec<u8>)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT name, spec, state FROM signal_state")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (name, _, _) in &rows {
            if !configured.contains(&name.as_str()) {
                self.conn
                    .execute("DELETE FROM signal_state WHERE name = ?1", [name])?;
            }
        }
        Ok((self.meta(SIGNALS_META_KEY)?, rows))
    }

    pub(crate) fn queue_stats(&self) -> Result<QueueStats, StorageError> {
        let unsealed: i64 = self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let (batches, batched): (i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(events), 0) FROM batches",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(QueueStats {
            unsealed_events: unsealed as u64,
            batches: batches as u64,
            batched_events: batched as u64,
            stored_bytes: self.stored_bytes,
        })
    }

    pub(crate) fn counters(&self) -> Result<BTreeMap<String, u64>, StorageError> {
        let mut stmt = self.conn.prepare("SELECT name, value FROM counters")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The pseudonymous device id, created on first use.
    pub(crate) fn device_id(&mut self) -> Result<String, StorageError> {
        if let Some(id) = self.meta("device_id")? {
            return Ok(id);
        }
        self.new_device_id()
    }

    /// Replaces the device id with a fresh random one; batch numbering restarts.
    pub(crate) fn new_device_id(&mut self) -> Result<String, StorageError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tx = self.conn.transaction()?;
        set_meta(&tx, "device_id", &id)?;
        set_meta(&tx, "batch_sequence", "0")?;
        tx.commit()?;
        Ok(id)
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub(crate) fn meta_i64(&self, key: &str) -> Result<Option<i64>, StorageError> {
        Ok(self.meta(key)?.and_then(|v| v.parse().ok()))
    }

    pub(crate) fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        let tx = self.conn.transaction()?;
        set_meta(&tx, key, value)?;
        tx.commit()?;
        Ok(())
    }
}

struct StoredRow {
    seq: i64,
    name: String,
    time_ms: i64,
    properties: Vec<(String, Value)>,
    size: i64,
}

fn set_meta(tx: &Transaction<'_>, key: &str, value: &str) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// Decisions made and settled, and learned states, since the last commit.
#[derive(Debug, Default)]
pub(crate) struct BanditRows {
    /// New pending decisions.
    pub(crate) decided: Vec<Pending>,
    /// Ids of decisions settled (after `decided`, so one can be both).
    pub(crate) settled: Vec<String>,
    /// (bandit, arm, reward) of settled decisions whose bandit shares statistics.
    pub(crate) contributions: Vec<(String, String, f64)>,
    /// Changed states.
    pub(crate) states: Vec<StateRow>,
    /// Counter increments.
    pub(crate) counters: Vec<(&'static str, u64)>,
    /// Learning examples produced by settled decisions (bandits with a learning task).
    pub(crate) examples: Vec<crate::learning::DecisionExample>,
}

impl BanditRows {
    pub(crate) fn is_empty(&self) -> bool {
        self.decided.is_empty()
            && self.settled.is_empty()
            && self.contributions.is_empty()
            && self.states.is_empty()
            && self.counters.is_empty()
            && self.examples.is_empty()
    }
}

fn write_bandit_rows(tx: &Transaction<'_>, rows: &BanditRows) -> Result<(), StorageError> {
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO decisions (id, bandit, arm, propensity, context, arms, decided_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for p in &rows.decided {
        insert.execute(params![
            p.id,
            p.bandit,
            p.arm,
            p.propensity,
            encode_context(&p.context),
            p.arms,
            p.decided_ms
        ])?;
    }
    let mut delete = tx.prepare_cached("DELETE FROM decisions WHERE id = ?1")?;
    for id in &rows.settled {
        delete.execute([id])?;
    }
    let mut contribute = tx.prepare_cached(
        "INSERT INTO bandit_contrib (bandit, arm, pulls, reward_sum, reward_sq_sum)
         VALUES (?1, ?2, 1, ?3, ?3 * ?3)
         ON CONFLICT (bandit, arm) DO UPDATE SET pulls = pulls + 1,
             reward_sum = reward_sum + excluded.reward_sum,
             reward_sq_sum = reward_sq_sum + excluded.reward_sq_sum",
    )?;
    for (bandit, arm, reward) in &rows.contributions {
        contribute.execute(params![bandit, arm, reward])?;
    }
    let mut state = tx.prepare_cached(
        "INSERT OR REPLACE INTO bandit_state (name, spec, state) VALUES (?1, ?2, ?3)",
    )?;
    for (name, spec, blob) in &rows.states {
        state.execute(params![name, spec, blob])?;
    }
    for (name, n) in &rows.counters {
        add_counter(tx, name, *n)?;
    }
    crate::learning::store_all(tx, &rows.examples)?;
    Ok(())
}

fn add_counter(tx: &Transaction<'_>, name: &str, n: u64) -> Result<(), StorageError> {
    tx.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
    )?
    .execute(params![name, n as i64])?;
    Ok(())
}

fn add_loss(tx: &Transaction<'_>, reason: &str, n: u64) -> Result<(), StorageError> {
    if n > 0 {
        tx.execute(
            "INSERT INTO pending_losses (reason, events) VALUES (?1, ?2)
             ON CONFLICT (reason) DO UPDATE SET events = events + excluded.events",
            params![reason, n as i64],
        )?;
    }
    Ok(())
}

fn take_losses(tx: &Transaction<'_>) -> Result<Vec<(String, u64)>, StorageError> {
    let losses: Vec<(String, u64)> = {
        let mut stmt = tx.prepare("SELECT reason, events FROM pending_losses ORDER BY reason")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        rows.collect::<Result<_, _>>()?
    };
    tx.execute("DELETE FROM pending_losses", [])?;
    Ok(losses)
}

/// Losses carried by a batch, stored as `reason=count` pairs separated by commas.
fn format_losses(losses: &[(String, u64)]) -> String {
    losses
        .iter()
        .map(|(reason, count)| format!("{reason}={count}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_losses(text: &str) -> Vec<(String, u64)> {
    text.split(',')
        .filter_map(|pair| {
            let (reason, count) = pair.split_once('=')?;
            Some((reason.to_owned(), count.parse().ok()?))
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, StorageError> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// Encodes properties as a `StoredProperties` message, written field by field so that no
/// string is copied on the way (this runs once per tracked event).
pub(crate) fn encode_properties(properties: &[(String, Value)], out: &mut Vec<u8>) {
    use prost::encoding::{self, encode_key, encode_varint, WireType};

    for (key, value) in properties {
        let value_len = match value {
            Value::String(s) => encoding::string::encoded_len(2, s),
            Value::Int(i) => encoding::sint64::encoded_len(3, i),
            Value::Float(f) => encoding::double::encoded_len(4, f),
            Value::Bool(b) => encoding::bool::encoded_len(5, b),
            Value::TimestampMs(t) => encoding::sint64::encoded_len(6, t),
        };
        let len = encoding::string::encoded_len(1, key) + value_len;
        encode_key(1, WireType::LengthDelimited, out);
        encode_varint(len as u64, out);
        encoding::string::encode(1, key, out);
        // Oneof members are written even when they hold the default value, as prost does.
        match value {
            Value::String(s) => encoding::string::encode(2, s, out),
            Value::Int(i) => encoding::sint64::encode(3, i, out),
            Value::Float(f) => encoding::double::encode(4, f, out),
            Value::Bool(b) => encoding::bool::encode(5, b, out),
            Value::TimestampMs(t) => encoding::sint64::encode(6, t, out),
        }
    }
}

/// Decodes properties written by [`encode_properties`].
pub(crate) fn decode_properties(bytes: &[u8]) -> Vec<(String, Value)> {
    let Ok(stored) = StoredProperties::decode(bytes) else {
        // Only this SDK writes the column; a row it cannot read is kept without properties
        // rather than blocking every later batch.
        log::warn!("starling: skipped unreadable stored properties");
        return Vec::new();
    };
    stored
        .properties
        .into_iter()
        .filter_map(|p| Some((p.key, Value::from(p.value?))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_property_encoding_matches_prost() {
        let properties = vec![
            ("screen".to_owned(), Value::String("home".into())),
            ("empty".to_owned(), Value::String(String::new())),
            ("n".to_owned(), Value::Int(-42)),
            ("zero".to_owned(), Value::Int(0)),
            ("depth".to_owned(), Value::Float(0.75)),
            ("ok".to_owned(), Value::Bool(false)),
            ("at".to_owned(), Value::TimestampMs(1_760_000_000_000)),
        ];
        let mut ours = Vec::new();
        encode_properties(&properties, &mut ours);
        assert_eq!(decode_properties(&ours), properties);

        let via_prost = StoredProperties {
            properties: properties
                .iter()
                .map(|(k, v)| starling_proto::v1::StoredProperty {
                    key: k.clone(),
                    value: Some(v.into()),
                })
                .collect(),
        }
        .encode_to_vec();
        assert_eq!(ours, via_prost, "byte for byte what prost writes");
    }
}
