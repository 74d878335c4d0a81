//! The device database's schema, as an ordered list of migrations. The database's
//! `user_version` is the number of migrations applied; opening a database applies the rest.

use rusqlite::Connection;

use crate::error::StorageError;

/// Each entry moves the schema from version `i` to `i + 1`. Append only: never edit a migration
/// that has shipped.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: events, sealed batches, metadata and counters.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    -- AUTOINCREMENT so that a sequence number is never reused after the newest event is
    -- deleted: the server deduplicates on (device id, seq).
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT    NOT NULL,
        time_ms     INTEGER NOT NULL,
        recorded_ms INTEGER NOT NULL,
        props       BLOB,
        size        INTEGER NOT NULL
    );

    -- A batch is stored, encoded and compressed, before its first upload so that every retry
    -- sends the same bytes.
    CREATE TABLE batches (
        id        BLOB    PRIMARY KEY,
        device_id TEXT    NOT NULL,
        sequence  INTEGER NOT NULL,
        payload   BLOB    NOT NULL,
        events    INTEGER NOT NULL,
        losses    TEXT    NOT NULL DEFAULT '',
        sealed_ms INTEGER NOT NULL,
        attempts  INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX batches_by_age ON batches (sealed_ms);

    -- Cumulative diagnostics, for the app and for tests.
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Events lost on the device and not yet reported to the server in a batch.
    CREATE TABLE pending_losses (
        reason TEXT PRIMARY KEY,
        events INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 2: signal states, written in the same transaction as the events they reflect. The
    // engine's progress (watermark, counts) lives in meta under the key 'signals'.
    r#"
    CREATE TABLE signal_state (
        name  TEXT PRIMARY KEY,
        spec  TEXT NOT NULL, -- fingerprint of the definition that built the state
        state BLOB NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 3: bandits: learned state, decisions waiting for their reward, and per-arm statistics
    // not yet shared with the fleet. Written in the same transactions as the events.
    r#"
    CREATE TABLE bandit_state (
        name  TEXT PRIMARY KEY,
        spec  TEXT NOT NULL, -- fingerprint of the policy that learned the state
        state BLOB NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE decisions (
        id         TEXT    PRIMARY KEY,
        bandit     TEXT    NOT NULL,
        arm        TEXT    NOT NULL,
        propensity REAL    NOT NULL,
        context    BLOB    NOT NULL, -- little-endian f64s
        arms       TEXT    NOT NULL, -- the arms active at decision time, comma-separated
        decided_ms INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE bandit_contrib (
        bandit        TEXT    NOT NULL,
        arm           TEXT    NOT NULL,
        pulls         INTEGER NOT NULL,
        reward_sum    REAL    NOT NULL,
        reward_sq_sum REAL    NOT NULL,
        PRIMARY KEY (bandit, arm)
    ) WITHOUT ROWID;
    "#,
    // 4: federated learning: the app's examples, the latest model release of each task, and
    // the update built for each round, stored before it is first sent.
    r#"
    CREATE TABLE learning_examples (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        task     TEXT    NOT NULL,
        example  BLOB    NOT NULL, -- starling.v1.StoredExample
        label    INTEGER NOT NULL,
        added_ms INTEGER NOT NULL
    );
    CREATE INDEX learning_examples_by_task ON learning_examples (task, id);

    CREATE TABLE learning_models (
        task    TEXT PRIMARY KEY,
        release BLOB NOT NULL -- starling.v1.ModelRelease
    ) WITHOUT ROWID;

    -- One row per task and round: a device never submits twice for a round, even if it is
    -- killed between building the update and hearing back from the server.
    CREATE TABLE learning_submissions (
        task         TEXT    NOT NULL,
        round        INTEGER NOT NULL,
        base_version INTEGER NOT NULL,
        payload      BLOB    NOT NULL, -- starling.v1.ModelUpdate, the bytes every retry sends
        device_rho   REAL    NOT NULL, -- zCDP cost of the noise added on the device
        state        TEXT    NOT NULL, -- pending, sent, refused
        outcome      TEXT    NOT NULL DEFAULT '',
        created_ms   INTEGER NOT NULL,
        PRIMARY KEY (task, round)
    ) WITHOUT ROWID;
    "#,
    // 5: the privacy ledger (every private release, charged before it is sent, never
    // refunded) and the per-day tallies the private reports are built from. The ledger clock
    // lives in meta under 'privacy_clock_ms'.
    r#"
    CREATE TABLE privacy_releases (
        id         TEXT    PRIMARY KEY, -- random; also the server's deduplication key
        charged_ms INTEGER NOT NULL,    -- ledger clock at the charge, Unix epoch ms
        channel    TEXT    NOT NULL,    -- where it goes, e.g. 'report:daily_usage'
        measure    TEXT    NOT NULL,    -- 'epsilon' (pure DP) or 'rho' (zCDP)
        amount     REAL    NOT NULL,    -- from opendp's privacy map
        outline    TEXT    NOT NULL,    -- what it holds, in words, never the values
        payload    BLOB,                -- the encoded release until the server has it
        sent_ms    INTEGER              -- when the server acknowledged it
    ) WITHOUT ROWID;
    CREATE INDEX privacy_releases_by_time ON privacy_releases (measure, charged_ms);

    CREATE TABLE privacy_tally (
        report TEXT    NOT NULL,
        day    INTEGER NOT NULL, -- UTC days since the Unix epoch
        cell   TEXT    NOT NULL, -- 'e:<event>' or 'b:<bucket index>'
        count  INTEGER NOT NULL,
        PRIMARY KEY (report, day, cell)
    ) WITHOUT ROWID;
    "#,
];

/// The schema version this SDK writes.
pub(crate) const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`CURRENT_VERSION`], one migration per transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > CURRENT_VERSION {
        return Err(StorageError::SchemaTooNew {
            found,
            supported: CURRENT_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        log::debug!(
            "starling: database migrated to schema version {}",
            index + 1
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn at_version(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for (index, sql) in MIGRATIONS.iter().take(version).enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", index as i64 + 1)
                .unwrap();
        }
        conn
    }

    #[test]
    fn upgrading_from_every_older_version_equals_a_fresh_schema() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        let expected = schema_of(&fresh);
        assert!(expected.iter().any(|(name, _)| name == "events"));

        for version in 0..MIGRATIONS.len() {
            let mut old = at_version(version);
            migrate(&mut old).unwrap();
            assert_eq!(schema_of(&old), expected, "upgrade from version {version}");
            let v: i64 = old
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(v, CURRENT_VERSION);
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(matches!(err, StorageError::SchemaTooNew { .. }));
        assert!(err.is_corruption(), "an unreadable schema is set aside");
    }
}
