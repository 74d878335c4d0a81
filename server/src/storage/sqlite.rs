//! The embedded SQLite backend: zero set-up, one file in the data directory.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use starling_proto::batch::Value;

use super::{
    BanditEvent, IngestBatch, IngestOutcome, Stats, Storage, StorageError, StoredEvent,
    StoredPrivateReport,
};

const SCHEMA: &[&str] = &[
    r#"
    CREATE TABLE api_keys (
        key_hash   TEXT PRIMARY KEY,
        app        TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE batches (
        batch_id       BLOB PRIMARY KEY,
        app            TEXT    NOT NULL,
        device_id      TEXT    NOT NULL,
        sequence       INTEGER NOT NULL,
        events         INTEGER NOT NULL,
        sdk_version    TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        received_ms    INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE events (
        app        TEXT    NOT NULL,
        device_id  TEXT    NOT NULL,
        seq        INTEGER NOT NULL,
        name       TEXT    NOT NULL,
        time_ms    INTEGER NOT NULL,
        properties TEXT    NOT NULL,
        PRIMARY KEY (app, device_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE device_losses (
        app       TEXT NOT NULL,
        device_id TEXT NOT NULL,
        reason    TEXT NOT NULL,
        events    INTEGER NOT NULL,
        PRIMARY KEY (app, device_id, reason)
    ) WITHOUT ROWID;

    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
"#,
    r#"
    -- Bandit evaluation and fleet priors read one app's events of one name.
    CREATE INDEX events_by_name ON events (app, name, time_ms);
"#,
    r#"
    -- Private reports, noised on the devices; one row per release id.
    CREATE TABLE private_reports (
        app         TEXT    NOT NULL,
        release_id  TEXT    NOT NULL,
        report      TEXT    NOT NULL,
        day         INTEGER NOT NULL, -- UTC days since the Unix epoch
        body        BLOB    NOT NULL, -- the encoded PrivateReport
        received_ms INTEGER NOT NULL,
        PRIMARY KEY (app, release_id)
    ) WITHOUT ROWID;
    CREATE INDEX private_reports_by_day ON private_reports (app, report, day);
"#,
];

/// SQLite storage in `<data dir>/server.db`.
pub struct SqliteStorage {
    conn: Connection,
}

impl SqliteStorage {
    /// Opens or creates the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(data_dir)?;
        let mut conn = Connection::open(data_dir.join("server.db"))?;
        // WAL lets the stats page read while batches are written.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        // FULL: a batch acknowledged to a device is on disk, since the device deletes it then.
        // Requests are committed in groups, so one fsync covers many batches.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (index, sql) in SCHEMA.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(SqliteStorage { conn })
    }
}

fn properties_json(properties: &[(String, Value)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = properties
        .iter()
        .map(|(key, value)| {
            let v = match value {
                Value::String(s) => serde_json::Value::from(s.as_str()),
                Value::Int(i) => serde_json::Value::from(*i),
                Value::Float(f) => serde_json::Value::from(*f),
                Value::Bool(b) => serde_json::Value::from(*b),
                Value::TimestampMs(t) => serde_json::json!({ "timestamp_ms": t }),
            };
            (key.clone(), v)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

impl Storage for SqliteStorage {
    fn ingest(&mut self, batches: &[IngestBatch]) -> Result<Vec<IngestOutcome>, StorageError> {
        let tx = self.conn.transaction()?;
        let mut outcomes = Vec::with_capacity(batches.len());
        let (mut duplicate_batches, mut duplicate_events) = (0i64, 0i64);
        {
            let mut insert_batch = tx.prepare_cached(
                "INSERT OR IGNORE INTO batches
                 (batch_id, app, device_id, sequence, events, sdk_version, schema_version, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut insert_event = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (app, device_id, seq, name, time_ms, properties)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut insert_loss = tx.prepare_cached(
                "INSERT INTO device_losses (app, device_id, reason, events) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET events = events + excluded.events",
            )?;
            for batch in batches {
                let new = insert_batch.execute(params![
                    batch.batch_id,
                    batch.app,
                    batch.device_id,
                    batch.sequence as i64,
                    batch.events.len() as i64,
                    batch.sdk_version,
                    batch.schema_version,
                    batch.received_ms
                ])?;
                if new == 0 {
                    duplicate_batches += 1;
                    outcomes.push(IngestOutcome {
                        accepted_events: 0,
                        duplicate: true,
                    });
                    continue;
                }
                let mut accepted = 0u32;
                for event in &batch.events {
                    let stored = insert_event.execute(params![
                        batch.app,
                        batch.device_id,
                        event.seq as i64,
                        event.name,
                        event.time_ms,
                        properties_json(&event.properties)
                    ])?;
                    if stored == 1 {
                        accepted += 1;
                    } else {
                        duplicate_events += 1;
                    }
                }
                for loss in &batch.losses {
                    insert_loss.execute(params![
                        batch.app,
                        batch.device_id,
                        loss.reason,
                        loss.events as i64
                    ])?;
                }
                outcomes.push(IngestOutcome {
                    accepted_events: accepted,
                    duplicate: false,
                });
            }
            let mut count = tx.prepare_cached(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT DO UPDATE SET value = value + excluded.value",
            )?;
            if duplicate_batches > 0 {
                count.execute(params!["duplicate_batches", duplicate_batches])?;
            }
            if duplicate_events > 0 {
                count.execute(params!["duplicate_events", duplicate_events])?;
            }
        }
        tx.commit()?;
        Ok(outcomes)
    }

    fn app_for_key_hash(&mut self, key_hash: &str) -> Result<Option<String>, StorageError> {
        Ok(self
            .conn
            .query_row(
                "SELECT app FROM api_keys WHERE key_hash = ?1",
                [key_hash],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn add_api_key(&mut self, app: &str, key_hash: &str) -> Result<(), StorageError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.conn.execute(
            "INSERT INTO api_keys (key_hash, app, created_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (key_hash) DO UPDATE SET app = excluded.app",
            params![key_hash, app, now],
        )?;
        Ok(())
    }

    fn stats(&mut self) -> Result<Stats, StorageError> {
        let counter = |conn: &Connection, name: &str| -> Result<u64, rusqlite::Error> {
            let v: Option<i64> = conn
                .query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(v.unwrap_or(0) as u64)
        };
        let mut stats = Stats {
            devices: self.conn.query_row(
                "SELECT count(*) FROM (SELECT DISTINCT app, device_id FROM batches)",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64,
            batches: self
                .conn
                .query_row("SELECT count(*) FROM batches", [], |r| r.get::<_, i64>(0))?
                as u64,
            duplicate_batches: counter(&self.conn, "duplicate_batches")?,
            duplicate_events: counter(&self.conn, "duplicate_events")?,
            ..Stats::default()
        };
        let mut by_name = self
            .conn
            .prepare("SELECT name, count(*) FROM events GROUP BY name")?;
        for row in by_name.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (name, count) = row?;
            stats.events += count as u64;
            stats.events_by_name.insert(name, count as u64);
        }
        let mut losses = self
            .conn
            .prepare("SELECT reason, sum(events) FROM device_losses GROUP BY reason")?;
        for row in losses.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (reason, count) = row?;
            stats.device_losses.insert(reason, count as u64);
        }
        Ok(stats)
    }

    fn device_events(
        &mut self,
        app: &str,
        device_id: &str,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, name, time_ms, properties FROM events
             WHERE app = ?1 AND device_id = ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map([app, device_id], |r| {
            let props: String = r.get(3)?;
            Ok(StoredEvent {
                seq: r.get::<_, i64>(0)? as u64,
                name: r.get(1)?,
                time_ms: r.get(2)?,
                properties: serde_json::from_str(&props).unwrap_or(serde_json::Value::Null),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn bandit_events(
        &mut self,
        app: &str,
        name: &str,
        bandit: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<BanditEvent>, StorageError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT device_id, seq, time_ms, properties FROM events
             WHERE app = ?1 AND name = ?2 AND time_ms >= ?4 AND time_ms < ?5
               AND json_extract(properties, '$.bandit') = ?3
             ORDER BY device_id, seq",
        )?;
        let rows = stmt.query_map(params![app, name, bandit, since_ms, until_ms], |r| {
            let props: String = r.get(3)?;
            Ok(BanditEvent {
                device_id: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                time_ms: r.get(2)?,
                properties: serde_json::from_str(&props).unwrap_or(serde_json::Value::Null),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn store_private_reports(
        &mut self,
        app: &str,
        reports: &[StoredPrivateReport],
        received_ms: i64,
    ) -> Result<u32, StorageError> {
        let tx = self.conn.transaction()?;
        let mut stored = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO private_reports (app, release_id, report, day, body, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in reports {
                stored += stmt.execute(params![
                    app,
                    r.release_id,
                    r.report,
                    r.day,
                    r.body,
                    received_ms
                ])? as u32;
            }
        }
        tx.commit()?;
        Ok(stored)
    }

    fn private_reports(
        &mut self,
        app: &str,
        report: &str,
        day: i64,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT body FROM private_reports WHERE app = ?1 AND report = ?2 AND day = ?3",
        )?;
        let rows = stmt.query_map(params![app, report, day], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn private_reports_all_days(
        &mut self,
        app: &str,
        report: &str,
    ) -> Result<Vec<(i64, Vec<u8>)>, StorageError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT day, body FROM private_reports WHERE app = ?1 AND report = ?2 ORDER BY day",
        )?;
        let rows = stmt.query_map(params![app, report], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
