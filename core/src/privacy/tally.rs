//! Per-day tallies of the device's own events, kept for its private reports. They are written
//! in the same transaction as the events, so a report never disagrees with what was committed,
//! and deleted once the day's report is charged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::{params, Transaction};
use starling_proto::batch::Value;

use super::ledger::DAY_MS;
use super::{ReportKind, ReportSpec};
use crate::error::StorageError;
use crate::storage::store::{decode_properties, NewEvent};

/// Tally cell of an event count: `e:<event name>`.
pub(crate) fn event_cell(name: &str) -> String {
    format!("e:{name}")
}

/// Tally cell of a histogram bucket: `b:<bucket index>`.
pub(crate) fn bucket_cell(index: usize) -> String {
    format!("b:{index}")
}

/// The bucket of `value` among `edges`: 0 below the first edge, `edges.len()` at or above
/// the last.
pub(crate) fn bucket_of(value: f64, edges: &[f64]) -> usize {
    edges.partition_point(|&edge| edge <= value)
}

/// The UTC day of a time, days since the Unix epoch.
pub(crate) fn day_of(time_ms: i64) -> i64 {
    time_ms.div_euclid(DAY_MS)
}

/// What to tally from each committed event.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    /// Event name to the reports that count it.
    counted: HashMap<String, Vec<String>>,
    /// Event name to the (report, property, edges) histograms of it.
    bucketed: HashMap<String, Vec<(String, String, Vec<f64>)>>,
    /// Off while consent for private reports is withdrawn: nothing is tallied.
    enabled: Arc<AtomicBool>,
}

impl Tally {
    /// The tallies the configured reports need; `enabled` is shared with the handle.
    pub(crate) fn new(specs: &[ReportSpec], enabled: Arc<AtomicBool>) -> Tally {
        let mut tally = Tally {
            enabled,
            ..Tally::default()
        };
        for spec in specs {
            match &spec.kind {
                ReportKind::EventCounts { events, .. } | ReportKind::TopEvent { events } => {
                    for event in events {
                        tally
                            .counted
                            .entry(event.clone())
                            .or_default()
                            .push(spec.name.clone());
                    }
                }
                ReportKind::Histogram {
                    event,
                    property,
                    edges,
                    ..
                } => tally.bucketed.entry(event.clone()).or_default().push((
                    spec.name.clone(),
                    property.clone(),
                    edges.clone(),
                )),
            }
        }
        tally
    }

    /// Adds `events` to the tallies, inside the transaction that commits them.
    pub(crate) fn record(
        &self,
        tx: &Transaction<'_>,
        events: &[NewEvent],
    ) -> Result<(), StorageError> {
        if (self.counted.is_empty() && self.bucketed.is_empty())
            || !self.enabled.load(Ordering::SeqCst)
        {
            return Ok(());
        }
        let mut adds: HashMap<(String, i64, String), i64> = HashMap::new();
        for event in events {
            let day = day_of(event.time_ms);
            if let Some(reports) = self.counted.get(&event.name) {
                for report in reports {
                    *adds
                        .entry((report.clone(), day, event_cell(&event.name)))
                        .or_default() += 1;
                }
            }
            if let Some(histograms) = self.bucketed.get(&event.name) {
                let props = decode_properties(&event.props);
                for (report, property, edges) in histograms {
                    let value =
                        props
                            .iter()
                            .find(|(k, _)| k == property)
                            .and_then(|(_, v)| match v {
                                Value::Int(i) => Some(*i as f64),
                                Value::Float(f) => Some(*f),
                                _ => None,
                            });
                    if let Some(value) = value {
                        *adds
                            .entry((report.clone(), day, bucket_cell(bucket_of(value, edges))))
                            .or_default() += 1;
                    }
                }
            }
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO privacy_tally (report, day, cell, count) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (report, day, cell) DO UPDATE SET count = count + excluded.count",
        )?;
        for ((report, day, cell), n) in adds {
            stmt.execute(params![report, day, cell, n])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_half_open_intervals() {
        let edges = [10.0, 20.0];
        assert_eq!(bucket_of(-5.0, &edges), 0);
        assert_eq!(bucket_of(10.0, &edges), 1);
        assert_eq!(bucket_of(19.9, &edges), 1);
        assert_eq!(bucket_of(20.0, &edges), 2);
        assert_eq!(bucket_of(1e9, &edges), 2);
    }

    #[test]
    fn days_are_utc_and_floor_before_the_epoch() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(day_of(-1), -1);
    }
}
