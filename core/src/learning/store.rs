//! The learning tables of the device database: examples, the latest model release of each
//! task, and the updates built for each round with their delivery state.
//!
//! These functions run on the writer thread, which owns the connection (see
//! [`super::with_db`]).

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::StorageError;

/// Counter of examples evicted because a task reached its bound.
pub(crate) const COUNTER_EVICTED: &str = "learning_examples_evicted";
/// Counter of updates the server refused for good.
pub(crate) const COUNTER_REFUSED: &str = "learning_updates_refused";

/// Delivery state of a submission.
pub(crate) mod state {
    /// Built and stored, not yet acknowledged: every sync sends the same bytes again.
    pub const PENDING: &str = "pending";
    /// The server acknowledged it (accepted, or recognised it as a replay).
    pub const SENT: &str = "sent";
    /// The server refused it for good (a closed round, a stale version); not sent again.
    pub const REFUSED: &str = "refused";
}

/// One stored update and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Submission {
    pub(crate) task: String,
    pub(crate) round: u64,
    pub(crate) base_version: u64,
    /// The encoded `ModelUpdate`, exactly as sent.
    pub(crate) payload: Vec<u8>,
    pub(crate) device_rho: f64,
    pub(crate) state: String,
    pub(crate) outcome: String,
    pub(crate) created_ms: i64,
}

/// Stores one example and evicts the oldest ones of the task beyond `max_examples`. Returns how
/// many were evicted.
pub(crate) fn add_example(
    conn: &mut Connection,
    task: &str,
    example: &[u8],
    label: u32,
    now_ms: i64,
    max_examples: u32,
) -> Result<u64, StorageError> {
    let tx = conn.transaction()?;
    let evicted = insert_example(&tx, task, example, label, now_ms, max_examples)?;
    tx.commit()?;
    Ok(evicted)
}

/// [`add_example`] inside the caller's transaction.
pub(crate) fn insert_example(
    tx: &Connection,
    task: &str,
    example: &[u8],
    label: u32,
    now_ms: i64,
    max_examples: u32,
) -> Result<u64, StorageError> {
    tx.prepare_cached(
        "INSERT INTO learning_examples (task, example, label, added_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![task, example, label, now_ms])?;
    let evicted = tx
        .prepare_cached(
            "DELETE FROM learning_examples WHERE task = ?1 AND id NOT IN
                 (SELECT id FROM learning_examples WHERE task = ?1 ORDER BY id DESC LIMIT ?2)",
        )?
        .execute(params![task, max_examples])? as u64;
    if evicted > 0 {
        add_counter(tx, COUNTER_EVICTED, evicted)?;
    }
    Ok(evicted)
}

/// The stored release of `task`, encoded, if one was downloaded.
pub(crate) fn release(conn: &Connection, task: &str) -> Result<Option<Vec<u8>>, StorageError> {
    Ok(conn
        .query_row(
            "SELECT release FROM learning_models WHERE task = ?1",
            [task],
            |r| r.get(0),
        )
        .optional()?)
}

/// Every example of `task` as `(id, encoded StoredExample, label)`, oldest first.
pub(crate) fn examples(
    conn: &Connection,
    task: &str,
) -> Result<Vec<(i64, Vec<u8>, u32)>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, example, label FROM learning_examples WHERE task = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([task], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// How many examples `task` holds.
pub(crate) fn example_count(conn: &Connection, task: &str) -> Result<u64, StorageError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM learning_examples WHERE task = ?1",
        [task],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Stores the latest release of a task (an encoded `ModelRelease`).
pub(crate) fn save_release(
    conn: &Connection,
    task: &str,
    release: &[u8],
) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO learning_models (task, release) VALUES (?1, ?2)
         ON CONFLICT (task) DO UPDATE SET release = excluded.release",
        params![task, release],
    )?;
    Ok(())
}

/// Every stored release, as `(task, encoded ModelRelease)`.
pub(crate) fn releases(conn: &Connection) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
    let mut stmt = conn.prepare("SELECT task, release FROM learning_models")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Stores a submission built for a round. Fails if one exists for the round already: a device
/// submits once per round, whatever happens to the process.
pub(crate) fn save_submission(conn: &Connection, s: &Submission) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO learning_submissions
             (task, round, base_version, payload, device_rho, state, outcome, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            s.task,
            s.round as i64,
            s.base_version as i64,
            s.payload,
            s.device_rho,
            s.state,
            s.outcome,
            s.created_ms
        ],
    )?;
    Ok(())
}

/// Records what became of a submission; a refusal is counted.
/// Runs inside the caller's transaction.
pub(crate) fn mark_submission(
    tx: &Connection,
    task: &str,
    round: u64,
    new_state: &str,
    outcome: &str,
) -> Result<(), StorageError> {
    tx.execute(
        "UPDATE learning_submissions SET state = ?3, outcome = ?4 WHERE task = ?1 AND round = ?2",
        params![task, round as i64, new_state, outcome],
    )?;
    if new_state == state::REFUSED {
        add_counter(tx, COUNTER_REFUSED, 1)?;
    }
    Ok(())
}

/// The submission of `task` for `round`, if one was built.
pub(crate) fn submission(
    conn: &Connection,
    task: &str,
    round: u64,
) -> Result<Option<Submission>, StorageError> {
    Ok(submissions_where(
        conn,
        "task = ?1 AND round = ?2",
        params![task, round as i64],
    )?
    .into_iter()
    .next())
}

/// Every submission of `task`, oldest round first.
pub(crate) fn submissions(conn: &Connection, task: &str) -> Result<Vec<Submission>, StorageError> {
    submissions_where(conn, "task = ?1", params![task])
}

fn submissions_where(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Submission>, StorageError> {
    let sql = format!(
        "SELECT task, round, base_version, payload, device_rho, state, outcome, created_ms
         FROM learning_submissions WHERE {filter} ORDER BY round"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(args, |r| {
            Ok(Submission {
                task: r.get(0)?,
                round: r.get::<_, i64>(1)? as u64,
                base_version: r.get::<_, i64>(2)? as u64,
                payload: r.get(3)?,
                device_rho: r.get(4)?,
                state: r.get(5)?,
                outcome: r.get(6)?,
                created_ms: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Deletes every example and every pending submission; see [`super::forget`].
pub(crate) fn forget(conn: &Connection) -> Result<(u64, u64), StorageError> {
    let examples = conn.execute("DELETE FROM learning_examples", [])? as u64;
    let updates = conn.execute(
        "DELETE FROM learning_submissions WHERE state = ?1",
        [state::PENDING],
    )? as u64;
    Ok((examples, updates))
}

/// A cumulative counter's value.
pub(crate) fn counter(conn: &Connection, name: &str) -> Result<u64, StorageError> {
    Ok(conn
        .query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .unwrap_or(0) as u64)
}

fn add_counter(conn: &Connection, name: &str, by: u64) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        params![name, by as i64],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::storage::schema::migrate(&mut conn).unwrap();
        conn
    }

    #[test]
    fn examples_are_bounded_per_task_and_evictions_counted() {
        let mut conn = db();
        for i in 0..7 {
            add_example(&mut conn, "a", &[i], 1, i64::from(i), 5).unwrap();
        }
        add_example(&mut conn, "b", &[9], 0, 0, 5).unwrap();
        let kept = examples(&conn, "a").unwrap();
        assert_eq!(kept.len(), 5);
        assert_eq!(kept[0].1, vec![2], "the oldest went first");
        assert_eq!(example_count(&conn, "b").unwrap(), 1);
        assert_eq!(counter(&conn, COUNTER_EVICTED).unwrap(), 2);
    }

    #[test]
    fn one_submission_per_round() {
        let conn = db();
        let s = Submission {
            task: "a".into(),
            round: 3,
            base_version: 2,
            payload: vec![1, 2],
            device_rho: 0.0,
            state: state::PENDING.into(),
            outcome: String::new(),
            created_ms: 0,
        };
        save_submission(&conn, &s).unwrap();
        assert!(save_submission(&conn, &s).is_err());
        mark_submission(&conn, "a", 3, state::REFUSED, "stale").unwrap();
        let back = submission(&conn, "a", 3).unwrap().unwrap();
        assert_eq!(
            (back.state.as_str(), back.outcome.as_str()),
            ("refused", "stale")
        );
        assert_eq!(counter(&conn, COUNTER_REFUSED).unwrap(), 1);
    }
}
