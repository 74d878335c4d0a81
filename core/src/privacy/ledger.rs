//! The privacy ledger: every private release, charged to the device's budget in the same
//! SQLite transaction that stores the release, before anything is sent.
//!
//! Budgets are rolling windows measured on the ledger clock, the largest device time the ledger
//! has seen. A clock moved backwards therefore never brings a spent release back inside the
//! budget, and nothing is ever refunded: a release that was charged stays charged, whether it
//! was sent, is still waiting, or was deleted with consent.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::mechanisms::Cost;
use crate::error::StorageError;

/// Key in `meta` of the ledger clock, Unix epoch ms.
const CLOCK_KEY: &str = "privacy_clock_ms";

/// One day, in ms.
pub(crate) const DAY_MS: i64 = 24 * 3600 * 1000;

/// Floating-point slack when comparing a charge with a budget: opendp rounds privacy maps
/// upwards, so a release sized to fill the budget exactly may come out a few ulps above it.
const SLACK: f64 = 1e-9;

/// The budgets that bound what this device releases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Most epsilon (pure DP) spent in any rolling 24 hours.
    pub epsilon_per_day: f64,
    /// Most epsilon spent in any rolling 7 days.
    pub epsilon_per_week: f64,
    /// Most rho (zero-concentrated DP) spent in any rolling 24 hours.
    pub rho_per_day: f64,
}

impl Budget {
    /// The tighter of two budgets, window by window.
    pub fn min(self, other: Budget) -> Budget {
        Budget {
            epsilon_per_day: self.epsilon_per_day.min(other.epsilon_per_day),
            epsilon_per_week: self.epsilon_per_week.min(other.epsilon_per_week),
            rho_per_day: self.rho_per_day.min(other.rho_per_day),
        }
    }
}

/// What has been spent in each window, as of the ledger clock.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    /// Epsilon charged in the last 24 hours.
    pub epsilon_day: f64,
    /// Epsilon charged in the last 7 days.
    pub epsilon_week: f64,
    /// Rho charged in the last 24 hours.
    pub rho_day: f64,
    /// The ledger clock these windows end at, Unix epoch ms.
    pub clock_ms: i64,
}

/// A charge the budget could not take.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal(pub(crate) String);

/// A release to charge and store.
pub(crate) struct NewRelease<'a> {
    /// Random id, also sent to the server so that a resend is recognised.
    pub(crate) id: &'a str,
    /// Where it goes, for example `report:daily_usage`.
    pub(crate) channel: &'a str,
    /// A readable outline of what it contains, never the values.
    pub(crate) outline: &'a str,
    /// What opendp's privacy map says it costs.
    pub(crate) cost: Cost,
    /// The encoded release, kept until the server acknowledges it.
    pub(crate) payload: &'a [u8],
}

/// Advances the ledger clock to `now_ms` if it is later, and returns the clock.
fn advance_clock(tx: &Transaction<'_>, now_ms: i64) -> Result<i64, StorageError> {
    let stored: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [CLOCK_KEY], |r| {
            r.get(0)
        })
        .optional()?;
    let stored = stored
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(i64::MIN);
    let clock = stored.max(now_ms);
    if clock != stored {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![CLOCK_KEY, clock.to_string()],
        )?;
    }
    Ok(clock)
}

fn spent_since(conn: &Connection, measure: &str, since_ms: i64) -> Result<f64, StorageError> {
    Ok(conn.query_row(
        "SELECT coalesce(sum(amount), 0.0) FROM privacy_releases
         WHERE measure = ?1 AND charged_ms > ?2",
        params![measure, since_ms],
        |r| r.get(0),
    )?)
}

fn spent_at(conn: &Connection, clock: i64) -> Result<Spent, StorageError> {
    Ok(Spent {
        epsilon_day: spent_since(conn, "epsilon", clock - DAY_MS)?,
        epsilon_week: spent_since(conn, "epsilon", clock - 7 * DAY_MS)?,
        rho_day: spent_since(conn, "rho", clock - DAY_MS)?,
        clock_ms: clock,
    })
}

/// What has been spent, as of `now_ms` or the ledger clock if that is later. Read-only.
pub(crate) fn spent(conn: &Connection, now_ms: i64) -> Result<Spent, StorageError> {
    let stored: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [CLOCK_KEY], |r| {
            r.get(0)
        })
        .optional()?;
    let clock = stored
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(now_ms, |c| c.max(now_ms));
    spent_at(conn, clock)
}

/// Why `cost` does not fit in `budget` given `spent`, if it does not.
fn refusal(budget: &Budget, spent: &Spent, cost: Cost) -> Option<String> {
    let amount = cost.amount();
    if !(amount.is_finite() && amount >= 0.0) {
        return Some(format!(
            "the release would cost {amount}, which no budget covers"
        ));
    }
    let windows: &[(&str, f64, f64)] = match cost {
        Cost::Epsilon(_) => &[
            ("epsilon per day", spent.epsilon_day, budget.epsilon_per_day),
            (
                "epsilon per 7 days",
                spent.epsilon_week,
                budget.epsilon_per_week,
            ),
        ],
        Cost::Rho(_) => &[("rho per day", spent.rho_day, budget.rho_per_day)],
    };
    windows.iter().find_map(|&(name, used, cap)| {
        (used + amount > cap + SLACK).then(|| {
            format!(
                "the release would cost {amount:.6} but only {:.6} of the {name} budget ({cap}) is left",
                (cap - used).max(0.0)
            )
        })
    })
}

/// Why a release costing `cost` would be refused now, if it would; writes nothing. The charge
/// itself ([`charge`]) decides: this only lets a caller skip work whose release cannot fit.
pub(crate) fn would_refuse(
    conn: &Connection,
    budget: &Budget,
    cost: Cost,
    now_ms: i64,
) -> Result<Option<String>, StorageError> {
    Ok(refusal(budget, &spent(conn, now_ms)?, cost))
}

/// Charges `release` against `budget` and stores it, inside `tx`; the caller commits, and sends
/// the release only after the commit. A release that does not fit is refused and nothing is
/// written but the clock.
pub(crate) fn charge(
    tx: &Transaction<'_>,
    budget: &Budget,
    release: &NewRelease<'_>,
    now_ms: i64,
) -> Result<Result<Spent, Refusal>, StorageError> {
    let clock = advance_clock(tx, now_ms)?;
    let spent = spent_at(tx, clock)?;
    if let Some(reason) = refusal(budget, &spent, release.cost) {
        return Ok(Err(Refusal(reason)));
    }
    tx.execute(
        "INSERT INTO privacy_releases (id, charged_ms, channel, measure, amount, outline, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            release.id,
            clock,
            release.channel,
            release.cost.measure(),
            release.cost.amount(),
            release.outline,
            release.payload
        ],
    )?;
    Ok(Ok(spent_at(tx, clock)?))
}

/// Charges the whole of every budget at once: the database holding the ledger was damaged and
/// recreated, so what was spent before is unknown and must be assumed spent. Private releases
/// resume when the windows have passed (7 days for epsilon, 1 day for rho).
pub(crate) fn assume_spent(
    conn: &mut Connection,
    budget: &Budget,
    now_ms: i64,
) -> Result<(), StorageError> {
    let tx = conn.transaction()?;
    let clock = advance_clock(&tx, now_ms)?;
    for (measure, amount) in [
        (
            "epsilon",
            budget.epsilon_per_week.max(budget.epsilon_per_day),
        ),
        ("rho", budget.rho_per_day),
    ] {
        tx.execute(
            "INSERT INTO privacy_releases (id, charged_ms, channel, measure, amount, outline)
             VALUES (?1, ?2, 'ledger:recovered', ?3, ?4, ?5)",
            params![
                uuid::Uuid::new_v4().simple().to_string(),
                clock,
                measure,
                amount,
                "nothing was sent: the ledger was lost with a damaged database, so its budget is treated as spent"
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Releases charged but not yet acknowledged by the server: `(id, channel, payload)`, oldest
/// first.
pub(crate) fn unsent(conn: &Connection) -> Result<Vec<(String, String, Vec<u8>)>, StorageError> {
    let mut stmt = conn.prepare(
        "SELECT id, channel, payload FROM privacy_releases
         WHERE sent_ms IS NULL AND payload IS NOT NULL ORDER BY charged_ms, id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The server acknowledged these releases: record when, and drop their payloads.
pub(crate) fn mark_sent(
    conn: &mut Connection,
    ids: &[String],
    now_ms: i64,
) -> Result<(), StorageError> {
    let tx = conn.transaction()?;
    for id in ids {
        tx.execute(
            "UPDATE privacy_releases SET sent_ms = ?2, payload = NULL WHERE id = ?1",
            params![id, now_ms],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The server refused these releases for good: drop their payloads; their charges stay.
pub(crate) fn abandon(conn: &mut Connection, ids: &[String]) -> Result<(), StorageError> {
    let tx = conn.transaction()?;
    for id in ids {
        tx.execute(
            "UPDATE privacy_releases SET payload = NULL WHERE id = ?1 AND sent_ms IS NULL",
            [id],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Drops the payloads of unsent releases on `channel_prefix` channels (consent was withdrawn).
/// Their charges stay. Returns how many were dropped.
pub(crate) fn drop_unsent(conn: &Connection, channel_prefix: &str) -> Result<u64, StorageError> {
    Ok(conn.execute(
        "UPDATE privacy_releases SET payload = NULL
         WHERE sent_ms IS NULL AND payload IS NOT NULL AND substr(channel, 1, length(?1)) = ?1",
        [channel_prefix],
    )? as u64)
}

/// One release as the ledger records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The release's id.
    pub id: String,
    /// When it was charged (ledger clock), Unix epoch ms.
    pub charged_ms: i64,
    /// When the server acknowledged it, Unix epoch ms; `None` while it waits (or if it was
    /// deleted unsent after consent was withdrawn).
    pub sent_ms: Option<i64>,
    /// Where it went, for example `report:daily_usage`.
    pub channel: String,
    /// An outline of its contents, never the values.
    pub outline: String,
    /// What it cost.
    pub cost: Cost,
}

/// Every release in the ledger, newest first, at most `limit`.
pub(crate) fn receipts(conn: &Connection, limit: u32) -> Result<Vec<Receipt>, StorageError> {
    let mut stmt = conn.prepare(
        "SELECT id, charged_ms, sent_ms, channel, outline, measure, amount FROM privacy_releases
         ORDER BY charged_ms DESC, id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        let measure: String = r.get(5)?;
        let amount: f64 = r.get(6)?;
        Ok(Receipt {
            id: r.get(0)?,
            charged_ms: r.get(1)?,
            sent_ms: r.get(2)?,
            channel: r.get(3)?,
            outline: r.get(4)?,
            cost: if measure == "rho" {
                Cost::Rho(amount)
            } else {
                Cost::Epsilon(amount)
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn release(conn: &mut Connection, id: &str, cost: Cost, now_ms: i64) -> Result<Spent, Refusal> {
        let release = NewRelease {
            id,
            channel: "report:test",
            outline: "test release",
            cost,
            payload: b"bytes",
        };
        let tx = conn.transaction().unwrap();
        let result = charge(&tx, &BUDGET, &release, now_ms).unwrap();
        tx.commit().unwrap();
        result
    }

    #[test]
    fn a_charge_that_exceeds_the_daily_budget_is_refused() {
        let mut conn = db();
        let t = 1_000 * DAY_MS;
        release(&mut conn, "a", Cost::Epsilon(0.6), t).unwrap();
        let refused = release(&mut conn, "b", Cost::Epsilon(0.6), t + 1).unwrap_err();
        assert!(refused.0.contains("epsilon per day"), "{}", refused.0);
        assert_eq!(
            unsent(&conn).unwrap().len(),
            1,
            "the refused release is not stored"
        );
        // A day later the first charge has left the daily window.
        let spent = release(&mut conn, "c", Cost::Epsilon(0.6), t + DAY_MS + 1).unwrap();
        assert!((spent.epsilon_day - 0.6).abs() < 1e-12);
        assert!((spent.epsilon_week - 1.2).abs() < 1e-12);
    }

    #[test]
    fn the_weekly_budget_binds_across_days() {
        let mut conn = db();
        let t = 1_000 * DAY_MS;
        for day in 0..3 {
            release(
                &mut conn,
                &format!("d{day}"),
                Cost::Epsilon(1.0),
                t + day * DAY_MS + 1,
            )
            .unwrap();
        }
        let refused = release(&mut conn, "d3", Cost::Epsilon(0.5), t + 3 * DAY_MS + 2).unwrap_err();
        assert!(refused.0.contains("7 days"), "{}", refused.0);
        release(&mut conn, "d7", Cost::Epsilon(0.5), t + 7 * DAY_MS + 2).unwrap();
    }

    #[test]
    fn rho_and_epsilon_are_separate_budgets() {
        let mut conn = db();
        let t = 1_000 * DAY_MS;
        release(&mut conn, "e", Cost::Epsilon(1.0), t).unwrap();
        release(&mut conn, "r", Cost::Rho(0.5), t).unwrap();
        let refused = release(&mut conn, "r2", Cost::Rho(0.01), t).unwrap_err();
        assert!(refused.0.contains("rho per day"), "{}", refused.0);
    }

    #[test]
    fn a_clock_moved_backwards_refunds_nothing() {
        let mut conn = db();
        let t = 1_000 * DAY_MS;
        release(&mut conn, "a", Cost::Epsilon(1.0), t).unwrap();
        // The device clock jumps two days back: the charge must still count.
        let refused = release(&mut conn, "b", Cost::Epsilon(0.5), t - 2 * DAY_MS).unwrap_err();
        assert!(refused.0.contains("epsilon per day"), "{}", refused.0);
        let spent = spent(&conn, t - 2 * DAY_MS).unwrap();
        assert_eq!(spent.clock_ms, t);
        assert!((spent.epsilon_day - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_lost_ledger_is_assumed_spent_for_a_week() {
        let mut conn = db();
        let t = 1_000 * DAY_MS;
        assume_spent(&mut conn, &BUDGET, t).unwrap();
        let refused = release(&mut conn, "a", Cost::Epsilon(0.1), t + DAY_MS + 1).unwrap_err();
        assert!(refused.0.contains("7 days"), "{}", refused.0);
        release(&mut conn, "r", Cost::Rho(0.1), t + DAY_MS + 1).unwrap();
        release(&mut conn, "b", Cost::Epsilon(0.1), t + 7 * DAY_MS + 1).unwrap();
    }

    #[test]
    fn sent_releases_keep_their_charge_and_lose_their_payload() {
        let mut conn = db();
        let t = 1_000 * DAY_MS;
        release(&mut conn, "a", Cost::Epsilon(0.25), t).unwrap();
        release(&mut conn, "b", Cost::Epsilon(0.25), t + 1).unwrap();
        mark_sent(&mut conn, &["a".to_owned()], t + 5).unwrap();
        let waiting = unsent(&conn).unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].0, "b");
        let all = receipts(&conn, 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].sent_ms, Some(t + 5));
        assert_eq!(all[0].sent_ms, None);
        assert!((spent(&conn, t + 2).unwrap().epsilon_day - 0.5).abs() < 1e-12);
        assert_eq!(drop_unsent(&conn, "report:").unwrap(), 1);
        assert!(unsent(&conn).unwrap().is_empty());
        assert!((spent(&conn, t + 2).unwrap().epsilon_day - 0.5).abs() < 1e-12);
    }
}
