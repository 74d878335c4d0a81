//! Differentially private daily reports in the emulator: the reports the simulated app
//! configures, each device's books of what its reports should contain (the truth, from the
//! events the emulator handed to the SDK while the device consented to private reports), and
//! the comparison of the server's published estimates with that truth.

use std::collections::BTreeMap;

use serde::Serialize;
use starling_core::{Budget, PrivacyConfig, ReportKind, ReportSpec, Starling};

use crate::user::AppEvent;

/// One UTC day, in ms.
pub(crate) const DAY_MS: i64 = 24 * 3_600_000;

/// Daily counts of a few event names.
pub const ACTIVITY_REPORT: &str = "daily_activity";
/// Daily histogram of scroll depth.
pub const SCROLL_REPORT: &str = "scroll_depth";
/// The user's most frequent kind of interaction that day, through randomized response.
pub const FAVOURITE_REPORT: &str = "favourite_interaction";

const ACTIVITY_EVENTS: &[&str] = &["screen_view", "purchase"];
const MAX_PER_EVENT: u32 = 40;
const SCROLL_EDGES: &[f64] = &[0.25, 0.5, 0.75];
const MAX_SCROLLS: u32 = 30;
const FAVOURITE_EVENTS: &[&str] = &["click", "scroll", "purchase"];
/// Epsilon of each report per day.
const EPSILON: f64 = 0.5;

/// The reports in report order.
pub const REPORTS: &[&str] = &[ACTIVITY_REPORT, SCROLL_REPORT, FAVOURITE_REPORT];

/// The app's privacy configuration: three daily reports of epsilon 0.5 each, and a budget that
/// lets a device back from days offline catch up at once (6 per day, 12 per week; a week holds
/// at most eight days of reports, 12 in all).
pub fn privacy_config() -> PrivacyConfig {
    let names = |e: &[&str]| e.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    PrivacyConfig {
        budget: Budget {
            epsilon_per_day: 6.0,
            epsilon_per_week: 12.0,
            rho_per_day: 0.5,
        },
        reports: vec![
            ReportSpec {
                name: ACTIVITY_REPORT.into(),
                kind: ReportKind::EventCounts {
                    events: names(ACTIVITY_EVENTS),
                    max_per_event: MAX_PER_EVENT,
                },
                epsilon: EPSILON,
            },
            ReportSpec {
                name: SCROLL_REPORT.into(),
                kind: ReportKind::Histogram {
                    event: "scroll".into(),
                    property: "depth".into(),
                    edges: SCROLL_EDGES.to_vec(),
                    max_values: MAX_SCROLLS,
                },
                epsilon: EPSILON,
            },
            ReportSpec {
                name: FAVOURITE_REPORT.into(),
                kind: ReportKind::TopEvent {
                    events: names(FAVOURITE_EVENTS),
                },
                epsilon: EPSILON,
            },
        ],
        device_id_rotation_ms: None,
    }
}

/// The cells of report `index`, in the order the device sends them.
fn cells_of(report: usize) -> Vec<String> {
    match report {
        0 => ACTIVITY_EVENTS.iter().map(|s| (*s).to_owned()).collect(),
        1 => {
            let e = SCROLL_EDGES;
            (0..=e.len())
                .map(|i| match i {
                    0 => format!("(-inf, {})", e[0]),
                    i if i == e.len() => format!("[{}, +inf)", e[i - 1]),
                    i => format!("[{}, {})", e[i - 1], e[i]),
                })
                .collect()
        }
        _ => FAVOURITE_EVENTS
            .iter()
            .map(|s| (*s).to_owned())
            .chain(std::iter::once(starling_core::privacy::NO_EVENT.to_owned()))
            .collect(),
    }
}

/// One device-day's raw tallies, as the SDK keeps them: event counts and scroll buckets.
#[derive(Debug, Default, Clone)]
struct DayTally {
    events: BTreeMap<String, u64>,
    buckets: [u64; 4],
}

impl DayTally {
    /// What report `report` sends for this day, before noise: one value per cell.
    fn report(&self, report: usize) -> Vec<f64> {
        let count = |e: &str| self.events.get(e).copied().unwrap_or(0);
        match report {
            0 => ACTIVITY_EVENTS
                .iter()
                .map(|e| count(e).min(u64::from(MAX_PER_EVENT)) as f64)
                .collect(),
            1 => {
                // The first `MAX_SCROLLS` values, bucket by bucket.
                let mut left = u64::from(MAX_SCROLLS);
                self.buckets
                    .iter()
                    .map(|&b| {
                        let kept = b.min(left);
                        left -= kept;
                        kept as f64
                    })
                    .collect()
            }
            _ => {
                let mut best: Option<(usize, u64)> = None;
                for (i, e) in FAVOURITE_EVENTS.iter().enumerate() {
                    let n = count(e);
                    if n > 0 && best.is_none_or(|(_, m)| n > m) {
                        best = Some((i, n));
                    }
                }
                let answer = best.map_or(FAVOURITE_EVENTS.len(), |(i, _)| i);
                (0..=FAVOURITE_EVENTS.len())
                    .map(|i| f64::from(u8::from(i == answer)))
                    .collect()
            }
        }
    }

    fn has(&self, report: usize) -> bool {
        match report {
            1 => self.buckets.iter().any(|&b| b > 0),
            _ => (if report == 0 {
                ACTIVITY_EVENTS
            } else {
                FAVOURITE_EVENTS
            })
            .iter()
            .any(|e| self.events.contains_key(*e)),
        }
    }
}

/// A device's books of its private reports, kept the way the SDK keeps its tallies: per day
/// while the day is open, frozen into a report when the SDK charges it (at a sync after the
/// day ended), forgotten when consent is withdrawn before that.
#[derive(Debug, Default, Clone)]
pub(crate) struct PrivateBooks {
    /// Tallies of days not yet reported.
    open: BTreeMap<i64, DayTally>,
    /// Per report: the last day reported (or skipped), once the report started.
    last: [Option<i64>; 3],
    /// Per report: the days charged, in order, with the values sent.
    charged: [Vec<(i64, Vec<f64>)>; 3],
}

impl PrivateBooks {
    /// An event `track` accepted and committed while the device consented.
    pub fn record(&mut self, event: &AppEvent) {
        let tally = self
            .open
            .entry(event.time_ms.div_euclid(DAY_MS))
            .or_default();
        *tally.events.entry(event.name.clone()).or_default() += 1;
        if event.name == "scroll" {
            let depth = event.props.iter().find_map(|(k, v)| match v {
                crate::user::Prop::Float(f) if k == "depth" => Some(*f),
                _ => None,
            });
            if let Some(depth) = depth {
                let bucket = SCROLL_EDGES.partition_point(|&e| e <= depth);
                tally.buckets[bucket] += 1;
            }
        }
    }

    /// Reports charged so far, all reports together.
    pub fn charged(&self) -> usize {
        self.charged.iter().map(Vec::len).sum()
    }

    /// Consent for private reports was withdrawn: the open tallies are deleted.
    pub fn withdraw(&mut self) {
        self.open.clear();
    }

    /// The SDK prepared its reports at `now_ms` (every sync with consent does): each report
    /// charges the days after its last one up to yesterday, at most seven days back.
    pub fn prepare(&mut self, now_ms: i64) {
        let today = now_ms.div_euclid(DAY_MS);
        for report in 0..REPORTS.len() {
            let last = match self.last[report] {
                Some(last) => last,
                None => {
                    let first = self
                        .open
                        .iter()
                        .find(|(_, t)| t.has(report))
                        .map(|(d, _)| *d);
                    first.unwrap_or(today).min(today) - 1
                }
            };
            let first = (last + 1).max(today - 7);
            for day in first..today {
                let values = self
                    .open
                    .get(&day)
                    .cloned()
                    .unwrap_or_default()
                    .report(report);
                self.charged[report].push((day, values));
            }
            self.last[report] = Some(last.max(today - 1).max(today - 8));
        }
        self.open.retain(|day, _| *day >= today);
    }
}

/// What one device's reports were, as the server should have them: per report, day, the
/// values sent (only reports the server acknowledged), and what the device spent.
#[derive(Debug, Clone)]
pub(crate) struct Delivered {
    /// Per report: day to values.
    pub days: [BTreeMap<i64, Vec<f64>>; 3],
    /// Reports whose receipts did not line up with the books (a report charged in a process
    /// that was killed before it said so).
    pub unmatched: u64,
    /// Epsilon charged for the reports.
    pub epsilon_spent: f64,
    /// Reports the server acknowledged.
    pub reports_sent: u64,
}

/// Lines the books up with the device's privacy receipts: the n-th charge of a report's
/// channel is the n-th day the books charged; only those the server acknowledged count.
pub(crate) fn delivered(books: &PrivateBooks, starling: &Starling) -> Result<Delivered, String> {
    let mut receipts = starling
        .privacy_receipts(100_000)
        .map_err(|e| format!("privacy_receipts: {e}"))?;
    receipts.reverse(); // oldest first
    let mut out = Delivered {
        days: Default::default(),
        unmatched: 0,
        epsilon_spent: 0.0,
        reports_sent: 0,
    };
    for (r, name) in REPORTS.iter().enumerate() {
        let channel = format!("report:{name}");
        let mine: Vec<_> = receipts.iter().filter(|x| x.channel == channel).collect();
        if mine.len() != books.charged[r].len() {
            out.unmatched += 1;
        }
        for (receipt, (day, values)) in mine.iter().zip(&books.charged[r]) {
            if let starling_core::privacy::Cost::Epsilon(e) = receipt.cost {
                out.epsilon_spent += e;
            }
            if receipt.sent_ms.is_some() {
                out.days[r].insert(*day, values.clone());
                out.reports_sent += 1;
            }
        }
    }
    Ok(out)
}

/// Private reports the device's ledger has charged.
pub(crate) fn charged_on_device(starling: &Starling) -> Result<usize, String> {
    Ok(starling
        .privacy_receipts(100_000)
        .map_err(|e| format!("privacy_receipts: {e}"))?
        .iter()
        .filter(|r| r.channel.starts_with("report:"))
        .count())
}

/// One cell of one day's estimate beside the truth.
#[derive(Debug, Clone, Serialize)]
pub struct CellComparison {
    /// The cell: an event name, a bucket, or an answer.
    pub cell: String,
    /// The fleet total the devices' reports held before noise.
    pub truth: f64,
    /// The server's estimate.
    pub estimate: f64,
    /// Its 95% interval.
    pub lower: f64,
    /// Its 95% interval.
    pub upper: f64,
    /// Whether the interval covers the truth.
    pub covered: bool,
}

/// One report's published days.
#[derive(Debug, Clone, Serialize)]
pub struct ReportComparison {
    /// The report's name.
    pub report: String,
    /// Its published days.
    pub days: Vec<DayComparison>,
}

/// One published day of a report.
#[derive(Debug, Clone, Serialize)]
pub struct DayComparison {
    /// UTC day, days since the Unix epoch.
    pub day: i64,
    /// Simulated day of the run it falls on (1 is the first).
    pub run_day: i64,
    /// Devices whose reports the server combined.
    pub devices: u32,
    /// Devices the emulator expected.
    pub expected_devices: u32,
    /// Every cell.
    pub cells: Vec<CellComparison>,
}

/// The private estimates of a run against the truth.
#[derive(Debug, Clone, Serialize)]
pub struct PrivateEstimates {
    /// Every report.
    pub reports: Vec<ReportComparison>,
    /// Intervals compared.
    pub intervals: u64,
    /// Intervals that covered the truth.
    pub covered: u64,
    /// `covered / intervals`.
    pub coverage: f64,
    /// Mean over cells with a truth of at least 1 of |estimate - truth| / truth.
    pub mean_relative_error: f64,
    /// Days not published because too few devices reported them.
    pub days_withheld: u64,
    /// Epsilon each device spent on its reports, on average.
    pub epsilon_per_device_mean: f64,
    /// The most epsilon a device spent on its reports.
    pub epsilon_per_device_max: f64,
    /// Reports the server acknowledged, fleet-wide.
    pub reports_sent: u64,
    /// Devices whose receipts did not line up with the emulator's books.
    pub devices_unmatched: u64,
    /// Epsilon each device spent on its reports, in fleet order.
    pub epsilon_per_device: Vec<f64>,
}

#[derive(serde::Deserialize)]
struct Estimate {
    devices: u32,
    cells: Vec<EstimateCell>,
}

#[derive(serde::Deserialize)]
struct EstimateCell {
    cell: String,
    estimate: f64,
    lower: f64,
    upper: f64,
}

/// Fetches every day's estimate of every report from the server and compares it with the
/// truth summed over what the devices delivered.
pub(crate) fn compare(
    url: &str,
    key: &str,
    fleet: &[Delivered],
    first_day: i64,
    last_day: i64,
) -> Result<PrivateEstimates, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut reports = Vec::new();
    let (mut intervals, mut covered, mut withheld) = (0u64, 0u64, 0u64);
    let mut errors = Vec::new();
    for (r, name) in REPORTS.iter().enumerate() {
        let cells = cells_of(r);
        let mut days = Vec::new();
        for day in first_day..=last_day {
            let mut truth = vec![0.0; cells.len()];
            let mut expected = 0;
            for d in fleet {
                if let Some(values) = d.days[r].get(&day) {
                    expected += 1;
                    for (t, v) in truth.iter_mut().zip(values) {
                        *t += v;
                    }
                }
            }
            let mut response = agent
                .get(format!("{url}/v1/private-reports/{name}?day={day}"))
                .header("authorization", format!("Bearer {key}"))
                .header("accept", "application/json")
                .call()
                .map_err(|e| format!("private estimate {name} day {day}: {e}"))?;
            let status = response.status().as_u16();
            if status == 404 {
                withheld += 1;
                continue;
            }
            if status != 200 {
                return Err(format!(
                    "private estimate {name} day {day}: status {status}"
                ));
            }
            let text = response
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("private estimate {name} day {day}: {e}"))?;
            let estimate: Estimate = serde_json::from_str(&text)
                .map_err(|e| format!("private estimate {name} day {day}: {e}"))?;
            let mut compared = Vec::new();
            for (cell, truth) in cells.iter().zip(&truth) {
                let Some(e) = estimate.cells.iter().find(|c| &c.cell == cell) else {
                    errors.push(format!("{name} day {day}: no cell {cell:?}"));
                    continue;
                };
                let hit = e.lower <= *truth && *truth <= e.upper;
                intervals += 1;
                covered += u64::from(hit);
                compared.push(CellComparison {
                    cell: cell.clone(),
                    truth: *truth,
                    estimate: e.estimate,
                    lower: e.lower,
                    upper: e.upper,
                    covered: hit,
                });
            }
            days.push(DayComparison {
                day,
                run_day: day - first_day + 1,
                devices: estimate.devices,
                expected_devices: expected,
                cells: compared,
            });
        }
        reports.push(ReportComparison {
            report: (*name).to_owned(),
            days,
        });
    }
    if let Some(e) = errors.first() {
        return Err(format!("private estimates: {e}"));
    }
    let relative: Vec<f64> = reports
        .iter()
        .flat_map(|r| r.days.iter().flat_map(|d| d.cells.iter()))
        .filter(|c| c.truth >= 1.0)
        .map(|c| (c.estimate - c.truth).abs() / c.truth)
        .collect();
    let spent: Vec<f64> = fleet.iter().map(|d| d.epsilon_spent).collect();
    let spent_sum = spent.iter().sum::<f64>();
    let spent_max = spent.iter().copied().fold(0.0, f64::max);
    Ok(PrivateEstimates {
        reports,
        intervals,
        covered,
        coverage: covered as f64 / intervals.max(1) as f64,
        mean_relative_error: relative.iter().sum::<f64>() / relative.len().max(1) as f64,
        days_withheld: withheld,
        epsilon_per_device_mean: spent_sum / spent.len().max(1) as f64,
        epsilon_per_device_max: spent_max,
        reports_sent: fleet.iter().map(|d| d.reports_sent).sum(),
        devices_unmatched: fleet.iter().filter(|d| d.unmatched > 0).count() as u64,
        epsilon_per_device: spent,
    })
}

/// The HTML report's section body: a chart per report, estimate and 95% interval against the
/// truth for every published day and cell.
pub(crate) fn html(p: &PrivateEstimates) -> String {
    use crate::svg::{escape, interval_chart, Interval};
    use std::fmt::Write;
    const COLOURS: &[&str] = &["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"];
    let mut h = String::new();
    let _ = write!(
        h,
        "<p>Each device noises its own daily reports (epsilon {EPSILON} per report and day) and \
         charges them to its budget before sending; the server adds them up. {} of {} 95% \
         intervals cover the truth ({:.1}%); mean relative error {:.2} on cells with a true \
         value of at least 1. {} reports sent; epsilon spent per device {:.2} on average, {:.2} \
         at most. {} report-days withheld (too few devices); {} devices whose receipts did not \
         line up with the emulator's books.</p>",
        p.covered,
        p.intervals,
        100.0 * p.coverage,
        p.mean_relative_error,
        p.reports_sent,
        p.epsilon_per_device_mean,
        p.epsilon_per_device_max,
        p.days_withheld,
        p.devices_unmatched
    );
    h.push_str("<div class=\"grid\">");
    for r in &p.reports {
        let names: Vec<String> = r
            .days
            .first()
            .map(|d| d.cells.iter().map(|c| c.cell.clone()).collect())
            .unwrap_or_default();
        let series: Vec<(&str, &str)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), COLOURS[i % COLOURS.len()]))
            .collect();
        let n = names.len().max(1) as f64;
        let points: Vec<Interval> = r
            .days
            .iter()
            .flat_map(|d| {
                d.cells.iter().enumerate().map(move |(i, c)| Interval {
                    x: d.run_day as f64 + (i as f64 - (n - 1.0) / 2.0) * 0.7 / n,
                    estimate: c.estimate,
                    lower: c.lower,
                    upper: c.upper,
                    truth: c.truth,
                    series: i,
                })
            })
            .collect();
        if points.is_empty() {
            let _ = write!(
                h,
                "<p class=\"none\">{}: no day published.</p>",
                escape(&r.report)
            );
            continue;
        }
        h.push_str(&interval_chart(
            &format!("{}: estimate \u{b1} 95% interval vs truth", r.report),
            "simulated day",
            "fleet total",
            &series,
            &points,
        ));
    }
    h.push_str("</div>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::Prop;

    fn event(name: &str, day: i64, depth: Option<f64>) -> AppEvent {
        AppEvent {
            name: name.into(),
            time_ms: day * DAY_MS + 3_600_000,
            props: depth
                .map(|d| vec![("depth".to_owned(), Prop::Float(d))])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn the_books_report_finished_days_clamped_and_forget_them_on_withdrawal() {
        let mut books = PrivateBooks::default();
        for _ in 0..45 {
            books.record(&event("screen_view", 10, None));
        }
        books.record(&event("scroll", 10, Some(0.8)));
        books.record(&event("scroll", 10, Some(0.1)));
        books.record(&event("purchase", 11, None));
        // Day 11 is not over yet: only day 10 is charged, by every report.
        books.prepare(11 * DAY_MS + 5);
        assert_eq!(books.charged(), 3);
        assert_eq!(books.charged[0], vec![(10, vec![40.0, 0.0])]);
        assert_eq!(books.charged[1], vec![(10, vec![1.0, 0.0, 0.0, 1.0])]);
        // Two scrolls, no click or purchase: the favourite is "scroll".
        assert_eq!(books.charged[2], vec![(10, vec![0.0, 1.0, 0.0, 0.0])]);

        // Withdrawn on day 11: its purchase is forgotten, and day 11 reports nothing.
        books.withdraw();
        books.record(&event("click", 12, None));
        books.prepare(13 * DAY_MS);
        assert_eq!(
            books.charged[0][1..],
            [(11, vec![0.0, 0.0]), (12, vec![0.0, 0.0])]
        );
        assert_eq!(books.charged[2][2], (12, vec![1.0, 0.0, 0.0, 0.0]));
        // Preparing again the same day charges nothing new.
        let before = books.charged();
        books.prepare(13 * DAY_MS + 1);
        assert_eq!(books.charged(), before);
    }
}
