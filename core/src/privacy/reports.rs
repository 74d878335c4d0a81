//! Daily private reports: built from the day's tallies once the day is over, noised, charged to
//! the ledger together with the encoded report, and only then sent to the server.
//!
//! A report that was charged but not acknowledged (the process was killed, the network failed)
//! is resent as it was stored, with the same release id: resending the same noised bytes
//! reveals nothing new and costs nothing, and the server counts the id once.

use std::collections::HashMap;

use prost::Message;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use starling_proto::v1::{
    private_report::Body, NoisyCounts, PrivateReport, PrivateReportUpload, RandomizedCategory,
};

use super::ledger::{self, Budget, NewRelease};
use super::mechanisms::{self, Cost};
use super::tally::{bucket_cell, day_of, event_cell};
use super::{ReportKind, ReportSpec, NO_EVENT};
use crate::error::{Error, Result, StorageError};

/// Path of the server endpoint that takes [`PrivateReportUpload`]s.
pub(crate) const PATH: &str = "/v1/private-reports";

/// Prefix of the ledger channel of every private report.
pub(crate) const CHANNEL_PREFIX: &str = "report:";

/// Most days back a device still reports after being away; older tallies are dropped unsent.
/// Seven matches the weekly budget window: a device back after a long absence cannot spend
/// more than a week's worth of reports at once, and a fleet estimate for a day is complete a
/// week later.
const MAX_CATCH_UP_DAYS: i64 = 7;

fn meta_key(report: &str) -> String {
    format!("privacy_report_day:{report}")
}

fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>, StorageError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn set_meta(tx: &Transaction<'_>, key: &str, value: &str) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// The budget in force: the app's, capped by what the server's configuration asks for.
pub(crate) fn effective_budget(conn: &Connection, app: Budget) -> Result<Budget, StorageError> {
    let served = get_meta(conn, crate::remote::META_KEY)?
        .and_then(|hex| hex::decode(hex).ok())
        .and_then(|bytes| starling_proto::v1::DeviceConfig::decode(bytes.as_slice()).ok())
        .and_then(|config| config.privacy_budget);
    let Some(cap) = served else {
        return Ok(app);
    };
    // A zero (unset) or unusable field leaves the app's value alone.
    let pick = |app: f64, cap: f64| {
        if cap > 0.0 && cap.is_finite() {
            app.min(cap)
        } else {
            app
        }
    };
    Ok(Budget {
        epsilon_per_day: pick(app.epsilon_per_day, cap.epsilon_per_day),
        epsilon_per_week: pick(app.epsilon_per_week, cap.epsilon_per_week),
        rho_per_day: pick(app.rho_per_day, cap.rho_per_day),
    })
}

/// The label of histogram bucket `index`.
fn bucket_label(index: usize, edges: &[f64]) -> String {
    match index {
        0 => format!("(-inf, {})", edges[0]),
        i if i == edges.len() => format!("[{}, +inf)", edges[i - 1]),
        i => format!("[{}, {})", edges[i - 1], edges[i]),
    }
}

/// Noises one day's tallies into a report. Returns the report and an outline for the receipt.
fn build(
    spec: &ReportSpec,
    day: i64,
    cells: &HashMap<String, u64>,
) -> Result<(PrivateReport, String, Cost)> {
    let count = |cell: &str| cells.get(cell).copied().unwrap_or(0);
    let (body, cost, outline) = match &spec.kind {
        ReportKind::EventCounts {
            events,
            max_per_event,
        } => {
            let counts: Vec<u64> = events.iter().map(|e| count(&event_cell(e))).collect();
            let noisy =
                mechanisms::noisy_counts(&counts, *max_per_event as u64, None, spec.epsilon)?;
            let outline = format!(
                "counts of {} events, each at most {max_per_event}, with discrete Laplace noise (scale {:.1})",
                events.len(),
                noisy.scale
            );
            let body = Body::Counts(NoisyCounts {
                cells: events.clone(),
                values: noisy.values,
                scale: noisy.scale,
            });
            (body, noisy.cost, outline)
        }
        ReportKind::Histogram {
            event,
            property,
            edges,
            max_values,
        } => {
            let buckets = edges.len() + 1;
            let counts: Vec<u64> = (0..buckets).map(|i| count(&bucket_cell(i))).collect();
            let max = *max_values as u64;
            let noisy = mechanisms::noisy_counts(&counts, max, Some(max), spec.epsilon)?;
            let outline = format!(
                "histogram of {event}.{property} over {buckets} buckets, at most {max_values} values, with discrete Laplace noise (scale {:.1})",
                noisy.scale
            );
            let body = Body::Counts(NoisyCounts {
                cells: (0..buckets).map(|i| bucket_label(i, edges)).collect(),
                values: noisy.values,
                scale: noisy.scale,
            });
            (body, noisy.cost, outline)
        }
        ReportKind::TopEvent { events } => {
            let mut best: Option<(&String, u64)> = None;
            for event in events {
                let n = count(&event_cell(event));
                if n > 0 && best.is_none_or(|(_, m)| n > m) {
                    best = Some((event, n));
                }
            }
            let truth = best.map_or(NO_EVENT, |(e, _)| e.as_str());
            let mut categories = events.clone();
            categories.push(NO_EVENT.to_owned());
            let rr = mechanisms::randomized_answer(truth, &categories, spec.epsilon)?;
            let outline = format!(
                "most frequent of {} events through randomized response (truthful with probability {:.3})",
                events.len(),
                rr.truth_probability
            );
            let body = Body::Category(RandomizedCategory {
                categories,
                answer: rr.answer,
                truth_probability: rr.truth_probability,
            });
            (body, rr.cost, outline)
        }
    };
    let report = PrivateReport {
        release_id: uuid::Uuid::new_v4().simple().to_string(),
        report: spec.name.clone(),
        day,
        epsilon: cost.amount(),
        body: Some(body),
    };
    Ok((
        report,
        format!("{} for day {day}: {outline}", spec.name),
        cost,
    ))
}

/// What one preparation round did.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    pub(crate) charged: u32,
    pub(crate) refused: Vec<String>,
}

/// Builds, noises and charges every daily report that is due, each in its own transaction with
/// the deletion of its tallies. Runs on the writer thread.
pub(crate) fn prepare(
    conn: &mut Connection,
    specs: &[ReportSpec],
    app_budget: Budget,
    now_ms: i64,
) -> Result<Prepared> {
    let budget = effective_budget(conn, app_budget)?;
    let today = day_of(ledger::spent(conn, now_ms)?.clock_ms);
    let mut prepared = Prepared::default();
    for spec in specs {
        let key = meta_key(&spec.name);
        let last = get_meta(conn, &key)?.and_then(|v| v.parse::<i64>().ok());
        let last = match last {
            Some(last) => last,
            None => {
                // A new report starts with the first day it tallied (today if none yet): days
                // before it was configured have no data to report.
                let first: Option<i64> = conn
                    .query_row(
                        "SELECT min(day) FROM privacy_tally WHERE report = ?1",
                        [&spec.name],
                        |r| r.get(0),
                    )
                    .map_err(StorageError::from)?;
                let last = first.unwrap_or(today).min(today) - 1;
                let tx = conn.transaction().map_err(StorageError::from)?;
                set_meta(&tx, &key, &last.to_string())?;
                tx.commit().map_err(StorageError::from)?;
                last
            }
        };
        let first = (last + 1).max(today - MAX_CATCH_UP_DAYS);
        for day in first..today {
            let cells: HashMap<String, u64> = {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT cell, count FROM privacy_tally WHERE report = ?1 AND day = ?2",
                    )
                    .map_err(StorageError::from)?;
                let rows = stmt
                    .query_map(params![spec.name, day], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                    })
                    .map_err(StorageError::from)?;
                rows.collect::<Result<_, _>>().map_err(StorageError::from)?
            };
            let (report, outline, cost) = build(spec, day, &cells)?;
            let payload = report.encode_to_vec();
            let channel = format!("{CHANNEL_PREFIX}{}", spec.name);
            let release = NewRelease {
                id: &report.release_id,
                channel: &channel,
                outline: &outline,
                cost,
                payload: &payload,
            };
            let tx = conn.transaction().map_err(StorageError::from)?;
            match ledger::charge(&tx, &budget, &release, now_ms)? {
                Ok(_) => {
                    tx.execute(
                        "DELETE FROM privacy_tally WHERE report = ?1 AND day <= ?2",
                        params![spec.name, day],
                    )
                    .map_err(StorageError::from)?;
                    set_meta(&tx, &key, &day.to_string())?;
                    tx.commit().map_err(StorageError::from)?;
                    prepared.charged += 1;
                }
                Err(refusal) => {
                    tx.commit().map_err(StorageError::from)?;
                    log::info!(
                        "starling: private report {:?} for day {day} waits: {}",
                        spec.name,
                        refusal.0
                    );
                    prepared
                        .refused
                        .push(format!("{} for day {day}: {}", spec.name, refusal.0));
                    break;
                }
            }
        }
        // Days beyond the catch-up window are dropped without a report.
        let tx = conn.transaction().map_err(StorageError::from)?;
        let stale = today - MAX_CATCH_UP_DAYS - 1;
        tx.execute(
            "DELETE FROM privacy_tally WHERE report = ?1 AND day <= ?2",
            params![spec.name, stale],
        )
        .map_err(StorageError::from)?;
        if last < stale {
            set_meta(&tx, &key, &stale.to_string())?;
        }
        tx.commit().map_err(StorageError::from)?;
    }
    // Tallies of reports no longer configured go.
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let known: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT DISTINCT report FROM privacy_tally")
            .map_err(StorageError::from)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(StorageError::from)?;
        rows.collect::<Result<_, _>>().map_err(StorageError::from)?
    };
    for gone in known.iter().filter(|k| !names.contains(&k.as_str())) {
        conn.execute("DELETE FROM privacy_tally WHERE report = ?1", [gone])
            .map_err(StorageError::from)?;
    }
    Ok(prepared)
}

/// The charged, unsent reports (daily reports and arm statistics) as one upload body, with their release ids.
pub(crate) fn pending_upload(conn: &Connection) -> Result<Option<(Vec<u8>, Vec<String>)>> {
    let mut reports = Vec::new();
    let mut ids = Vec::new();
    for (id, channel, payload) in ledger::unsent(conn)? {
        if !(channel.starts_with(CHANNEL_PREFIX)
            || channel.starts_with(super::arm_stats::CHANNEL_PREFIX))
        {
            continue;
        }
        match PrivateReport::decode(payload.as_slice()) {
            Ok(report) => reports.push(report),
            Err(e) => {
                return Err(Error::Privacy(format!(
                    "a stored private report is unreadable: {e}"
                )))
            }
        }
        ids.push(id);
    }
    if reports.is_empty() {
        return Ok(None);
    }
    Ok(Some((PrivateReportUpload { reports }.encode_to_vec(), ids)))
}
