//! The emulation's results: [`Report`], written as JSON for machines and as a self-contained
//! HTML page (inline SVG charts, no scripts, no external assets) for people.
//!
//! Both have one section per part of Starling. Sections that a run did not exercise are present
//! and say so (`null` in JSON), so that a reader, or a later part of the product, finds the
//! same structure every time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::device::Device;
use crate::regret::BanditSummary;
use crate::svg::{bar_chart, escape, line_chart, Series};
use crate::Options;

/// What became of every event the devices queued.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Accounting {
    /// Events queued on the devices: app events plus the SDK's decision logs.
    pub generated: u64,
    /// Events the app handed to `track` and the SDK accepted.
    pub app_events: u64,
    /// `starling.decision` events: one per settled decision.
    pub decision_logs: u64,
    /// Distinct events stored on the server.
    pub on_server: u64,
    /// Of those, the SDK's own (`starling.*`).
    pub sdk_events_on_server: u64,
    /// Events still queued on a device at the end.
    pub queued: u64,
    /// Events lost with a counted reason, by reason.
    pub lost: BTreeMap<String, u64>,
    /// Events stored on the server more than once (must be 0).
    pub duplicated: u64,
    /// Replayed batches the server recognised and did not store again.
    pub duplicate_batches_refused: u64,
    /// Events the app offered while consent was withdrawn; refused by the SDK, so never queued.
    pub not_collected: u64,
    /// Decisions still waiting for a reward (orphaned by a killed process); not events.
    pub decisions_pending: u64,
    /// True when generated = on server + queued + lost, with no duplicate, and neither app
    /// events nor decision logs are on the server more often than they were generated.
    pub balanced: bool,
}

impl Accounting {
    /// On the server, queued and lost together.
    pub fn accounted(&self) -> u64 {
        self.on_server + self.queued + self.lost.values().sum::<u64>()
    }
}

/// Faults that happened.
#[derive(Debug, Clone, Serialize)]
pub struct Faults {
    /// Devices that were offline for a stretch of hours.
    pub offline_devices: usize,
    /// Users whose tastes changed during the run.
    pub drifting_users: usize,
    /// Consent withdrawals and grants after the first.
    pub consent_changes: u64,
    /// App restarts (close and reopen in the same process).
    pub restarts: u64,
    /// Worker processes killed with SIGKILL while they owned a device's database.
    pub processes_killed: u64,
    /// Workers picked for a kill that finished before the signal came.
    pub kills_missed: u64,
    /// Simulated hours with the server answering 503.
    pub server_error_hours: u32,
    /// Simulated hours with the server answering slowly.
    pub slow_hours: u32,
    /// Syncs run.
    pub syncs: u64,
    /// Syncs that met a failure and scheduled a retry.
    pub syncs_retried: u64,
}

/// Upload volume of one simulated day.
#[derive(Debug, Clone, Serialize)]
pub struct DayBytes {
    /// Day number, from 1.
    pub day: usize,
    /// Mean compressed bytes uploaded per device.
    pub mean: f64,
    /// Median over devices.
    pub median: f64,
    /// 90th percentile over devices.
    pub p90: f64,
}

/// Wire volume.
#[derive(Debug, Clone, Serialize)]
pub struct Bytes {
    /// Compressed bytes uploaded by the fleet.
    pub total: u64,
    /// Per device per simulated day.
    pub per_device_day: f64,
    /// Per event on the server.
    pub per_event: f64,
    /// Day by day.
    pub days: Vec<DayBytes>,
}

/// One device's bandit results.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceBandit {
    /// Decisions.
    pub opportunities: u64,
    /// Expected regret against the best arm.
    pub regret: f64,
    /// Expected regret of random choices on the same opportunities.
    pub random_regret: f64,
    /// Realised click rate.
    pub click_rate: f64,
}

/// One device, in brief.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSummary {
    /// Index in the fleet.
    pub device: usize,
    /// Whether the user's tastes changed during the run.
    pub drifted: bool,
    /// Hours without network.
    pub offline_hours: i64,
    /// Consent changes.
    pub consent_changes: u64,
    /// Worker processes killed.
    pub kills: u64,
    /// Events queued by the device.
    pub events: u64,
    /// Per bandit, in the order of [`Report::bandits`].
    pub bandits: Vec<DeviceBandit>,
}

/// The emulation's results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Devices simulated.
    pub devices: usize,
    /// Simulated days.
    pub days: u32,
    /// The seed used.
    pub seed: u64,
    /// Wall-clock seconds the run took.
    pub elapsed_s: f64,
    /// Simulated device-days per wall-clock minute.
    pub device_days_per_minute: f64,
    /// What became of every event.
    pub accounting: Accounting,
    /// Faults that happened.
    pub faults: Faults,
    /// Each bandit against random and the best arm, fleet-wide, hour by hour.
    pub bandits: Vec<BanditSummary>,
    /// Upload volume.
    pub bytes: Bytes,
    /// Accuracy of the federated model after each round; `null` when the run trains none
    /// (against a remote server, whose rounds the emulator cannot read).
    pub model_accuracy: Option<crate::learning::ModelAccuracy>,
    /// Private (differentially private) estimates beside the truth; `null` when the run
    /// releases none.
    pub private_estimates: Option<crate::private::PrivateEstimates>,
    /// Every device, in brief.
    pub per_device: Vec<DeviceSummary>,
}

impl Report {
    pub(crate) fn new(
        options: &Options,
        fleet: &[Device],
        accounting: Accounting,
        elapsed: Duration,
    ) -> Result<Report, String> {
        let hours = options.days.max(1) as usize * 24;
        let bandits = crate::bandit_summaries(fleet, hours);
        let books = fleet.iter().map(|d| &d.books);
        let faults = Faults {
            offline_devices: fleet.iter().filter(|d| !d.offline.is_empty()).count(),
            drifting_users: fleet
                .iter()
                .filter(|d| d.user.drift_at_ms.is_some())
                .count(),
            consent_changes: books.clone().map(|b| b.consent_changes).sum(),
            restarts: books.clone().map(|b| b.restarts).sum(),
            processes_killed: books.clone().map(|b| b.kills).sum(),
            kills_missed: books.clone().map(|b| b.kills_missed).sum(),
            server_error_hours: options.server_error_hours,
            slow_hours: options.slow_hours,
            syncs: books.clone().map(|b| b.syncs).sum(),
            syncs_retried: books.clone().map(|b| b.syncs_retried).sum(),
        };

        let mut total_bytes = 0;
        let mut per_day: Vec<Vec<f64>> = vec![Vec::new(); options.days.max(1) as usize];
        for device in fleet {
            let last = device.diagnostics()?.bytes_sent;
            total_bytes += last;
            let mut previous = 0;
            for (day, cumulative) in device.bytes_by_day.iter().enumerate() {
                per_day[day].push(cumulative.saturating_sub(previous) as f64);
                previous = *cumulative;
            }
        }
        let days = per_day
            .into_iter()
            .enumerate()
            .map(|(i, mut v)| {
                v.sort_by(f64::total_cmp);
                let at = |q: f64| {
                    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                        .copied()
                };
                DayBytes {
                    day: i + 1,
                    mean: v.iter().sum::<f64>() / v.len().max(1) as f64,
                    median: at(0.5).unwrap_or(0.0),
                    p90: at(0.9).unwrap_or(0.0),
                }
            })
            .collect();
        let device_days = fleet.len() as f64 * f64::from(options.days.max(1));
        let bytes = Bytes {
            total: total_bytes,
            per_device_day: total_bytes as f64 / device_days.max(1.0),
            per_event: total_bytes as f64 / accounting.on_server.max(1) as f64,
            days,
        };

        let per_device = fleet
            .iter()
            .enumerate()
            .map(|(i, d)| DeviceSummary {
                device: i,
                drifted: d.user.drift_at_ms.is_some(),
                offline_hours: d.offline.end - d.offline.start,
                consent_changes: d.books.consent_changes,
                kills: d.books.kills,
                events: d.books.app_events + d.books.decision_logs,
                bandits: d
                    .tallies
                    .iter()
                    .map(|hourly| {
                        let mut t = crate::regret::Tally::default();
                        hourly.iter().for_each(|h| t.merge(h));
                        DeviceBandit {
                            opportunities: t.opportunities,
                            regret: t.regret(),
                            random_regret: t.random_regret(),
                            click_rate: t.clicks as f64 / t.opportunities.max(1) as f64,
                        }
                    })
                    .collect(),
            })
            .collect();

        let elapsed_s = elapsed.as_secs_f64();
        Ok(Report {
            devices: fleet.len(),
            days: options.days,
            seed: options.seed,
            elapsed_s,
            device_days_per_minute: device_days / (elapsed_s / 60.0).max(1e-9),
            accounting,
            faults,
            bandits,
            bytes,
            model_accuracy: None,
            private_estimates: None,
            per_device,
        })
    }

    /// Writes the JSON and HTML reports where `options` says.
    pub fn write(&self, options: &Options) -> Result<(), String> {
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let (json_path, html_path) = (options.json_path(), options.html_path());
        for path in [&json_path, &html_path] {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
        }
        std::fs::write(&json_path, json).map_err(|e| format!("{}: {e}", json_path.display()))?;
        std::fs::write(&html_path, self.html())
            .map_err(|e| format!("{}: {e}", html_path.display()))?;
        Ok(())
    }

    /// The regret chart of bandit `index`: cumulative regret per decision against the best arm,
    /// of the bandit and of random choices on the same opportunities.
    pub fn regret_chart(&self, index: usize) -> String {
        let b = &self.bandits[index];
        let cumulative = b.cumulative_regret_per_decision();
        let point = |h: usize, v: f64, n: u64| (n > 0).then_some((h as f64 + 1.0, v));
        let mut seen = 0;
        let (mut bandit, mut random) = (Vec::new(), Vec::new());
        for (h, (r, rr)) in cumulative.iter().enumerate() {
            seen += b.hourly[h].opportunities;
            bandit.push(point(h, *r, seen));
            random.push(point(h, *rr, seen));
        }
        line_chart(
            &format!("{}: regret per decision vs the best arm", b.bandit),
            "simulated hour",
            "cumulative regret / decision",
            Some(0.0),
            &[
                Series {
                    name: "bandit",
                    colour: "#1f77b4",
                    dashed: false,
                    points: bandit,
                },
                Series {
                    name: "uniform random",
                    colour: "#d62728",
                    dashed: true,
                    points: random,
                },
            ],
        )
    }

    /// The click-rate chart of bandit `index`, over 6-hour windows.
    pub fn click_chart(&self, index: usize) -> String {
        const WINDOW: usize = 6;
        let b = &self.bandits[index];
        let rates = b.click_rates(WINDOW);
        let series = |k: usize| -> Vec<Option<(f64, f64)>> {
            rates
                .iter()
                .enumerate()
                .map(|(w, r)| r.map(|r| (((w + 1) * WINDOW) as f64, r[k])))
                .collect()
        };
        line_chart(
            &format!("{}: click rate per {WINDOW} simulated hours", b.bandit),
            "simulated hour",
            "clicks / decision",
            Some(0.0),
            &[
                Series {
                    name: "best arm",
                    colour: "#2ca02c",
                    dashed: true,
                    points: series(2),
                },
                Series {
                    name: "bandit (expected)",
                    colour: "#1f77b4",
                    dashed: false,
                    points: series(0),
                },
                Series {
                    name: "bandit (clicks)",
                    colour: "#9ecae1",
                    dashed: false,
                    points: series(3),
                },
                Series {
                    name: "uniform random",
                    colour: "#d62728",
                    dashed: true,
                    points: series(1),
                },
            ],
        )
    }

    /// Regret against random's for users whose tastes stayed and users whose tastes drifted.
    fn by_kind_of_user(&self) -> String {
        let mut h = String::from("<table><tr><th>users</th><th>devices</th>");
        for b in &self.bandits {
            let _ = write!(h, "<th>{}: regret / random's</th>", escape(&b.bandit));
        }
        h.push_str("</tr>");
        for (label, drifted) in [("tastes steady", false), ("tastes drifted", true)] {
            let devices: Vec<_> = self
                .per_device
                .iter()
                .filter(|d| d.drifted == drifted)
                .collect();
            let _ = write!(h, "<tr><td>{label}</td><td>{}</td>", devices.len());
            for i in 0..self.bandits.len() {
                let (r, rr) = devices.iter().fold((0.0, 0.0), |(r, rr), d| {
                    (r + d.bandits[i].regret, rr + d.bandits[i].random_regret)
                });
                let _ = write!(h, "<td>{:.2}</td>", if rr > 0.0 { r / rr } else { 0.0 });
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
        h
    }

    /// How many devices reached each level of regret against random's, per bandit.
    fn per_device_chart(&self) -> String {
        const BINS: usize = 7;
        let labels: Vec<String> = (0..BINS)
            .map(|i| {
                if i + 1 == BINS {
                    format!("≥ {:.1}", i as f64 * 0.2)
                } else {
                    format!("{:.1}–{:.1}", i as f64 * 0.2, (i + 1) as f64 * 0.2)
                }
            })
            .collect();
        let colours = ["#1f77b4", "#ff7f0e"];
        let series: Vec<(&str, &str, Vec<f64>)> = self
            .bandits
            .iter()
            .enumerate()
            .map(|(b, summary)| {
                let mut counts = vec![0.0; BINS];
                for d in &self.per_device {
                    let t = &d.bandits[b];
                    if t.opportunities > 0 && t.random_regret > 0.0 {
                        let bin = ((t.regret / t.random_regret) / 0.2).floor().max(0.0) as usize;
                        counts[bin.min(BINS - 1)] += 1.0;
                    }
                }
                (summary.bandit.as_str(), colours[b % colours.len()], counts)
            })
            .collect();
        bar_chart(
            "Devices by their bandits' regret as a fraction of random's",
            "regret / random's regret (below 1: better than random)",
            "devices",
            &labels,
            &series,
        )
    }

    fn bytes_chart(&self) -> String {
        let labels: Vec<String> = self
            .bytes
            .days
            .iter()
            .map(|d| format!("day {}", d.day))
            .collect();
        bar_chart(
            "Compressed bytes uploaded per device per day",
            "simulated day",
            "bytes",
            &labels,
            &[
                (
                    "mean",
                    "#1f77b4",
                    self.bytes.days.iter().map(|d| d.mean).collect(),
                ),
                (
                    "median",
                    "#9ecae1",
                    self.bytes.days.iter().map(|d| d.median).collect(),
                ),
                (
                    "90th percentile",
                    "#ff7f0e",
                    self.bytes.days.iter().map(|d| d.p90).collect(),
                ),
            ],
        )
    }

    /// Federated learning: each round's model, evaluated by the devices, against the baseline.
    fn learning_section(&self) -> String {
        let mut h =
            String::from("<section id=\"model-accuracy\"><h2>Model accuracy per round</h2>");
        let Some(m) = &self.model_accuracy else {
            h.push_str(
                "<p class=\"none\">This run had no federated training rounds.</p></section>",
            );
            return h;
        };
        let _ = write!(
            h,
            "<p>Task <code>{}</code>: will the user click the topic shown, from the time of day, \
             recent activity, their past click rate on the topic and the topic. Devices train at night (charging, idle, Wi-Fi) and send \
             clipped, quantized updates; the server averages them into a new version per round. \
             {} learning syncs, {} updates accepted, {} refused, {} rounds abandoned. Accuracy is \
             the devices' own evaluation of each version on their held-out examples; the baseline \
             always predicts no click ({:.3}).</p>",
            escape(&m.task),
            m.syncs,
            m.updates_sent,
            m.updates_refused,
            m.rounds_abandoned,
            m.majority_baseline
        );
        let evaluated: Vec<Option<(f64, f64)>> = m
            .rounds
            .iter()
            .map(|r| r.accuracy.map(|a| (r.version as f64, a)))
            .collect();
        let baseline: Vec<Option<(f64, f64)>> = m
            .rounds
            .iter()
            .map(|r| Some((r.version as f64, m.majority_baseline)))
            .collect();
        h.push_str(&line_chart(
            "Federated model: accuracy per version",
            "model version (one per round)",
            "held-out accuracy",
            None,
            &[
                Series {
                    name: "federated model",
                    colour: "#1f77b4",
                    dashed: false,
                    points: evaluated,
                },
                Series {
                    name: "always 'no click'",
                    colour: "#d62728",
                    dashed: true,
                    points: baseline,
                },
            ],
        ));
        h.push_str("<table><tr><th>version</th><th>round</th><th>participants</th><th>examples</th><th>accuracy</th><th>loss</th><th>evaluated by</th></tr>");
        // About a dozen rows, evenly spaced, and the latest; the JSON report has every version.
        let step = m.rounds.len().div_ceil(12).max(1);
        let shown = m
            .rounds
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || i + 1 == m.rounds.len())
            .map(|(_, r)| r);
        for r in shown {
            let f = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{v:.3}"));
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.version,
                r.round,
                r.participants,
                r.examples,
                f(r.accuracy),
                f(r.loss),
                r.evaluated_by
            );
        }
        h.push_str("</table>");
        if step > 1 {
            let _ = write!(
                h,
                "<p class=\"none\">One version in {step}, and the latest; report.json lists all {}.</p>",
                m.rounds.len()
            );
        }
        h.push_str("</section>");
        h
    }

    /// The self-contained HTML page.
    pub fn html(&self) -> String {
        let a = &self.accounting;
        let f = &self.faults;
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Starling emulation report</title>\
             <style>body{{font-family:sans-serif;max-width:1320px;margin:2em auto;color:#222}}\
             table{{border-collapse:collapse;margin:0.5em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
             th{{background:#f4f4f4}}td:first-child,th:first-child,td.text{{text-align:left}}.ok{{color:#2a7a2a}}.bad{{color:#b00}}\
             .charts{{display:flex;flex-wrap:wrap;gap:12px}}section{{margin-bottom:2em}}.none{{color:#777}}</style></head><body>"
        );
        let _ = write!(
            h,
            "<h1>Starling emulation report</h1><p>{} devices, {} simulated days, seed {}; {:.1} s wall time, {:.0} device-days per minute.</p>",
            self.devices, self.days, self.seed, self.elapsed_s, self.device_days_per_minute
        );

        // Events accounted for.
        let (class, verdict) = if a.balanced {
            ("ok", "The books balance: every event is on the server exactly once, still queued, or lost with a counted reason.")
        } else {
            ("bad", "The books do NOT balance.")
        };
        let _ = write!(
            h,
            "<section id=\"accounting\"><h2>Events accounted for</h2><p class=\"{class}\"><b>{verdict}</b></p><table>\
             <tr><th>events</th><th>count</th></tr>\
             <tr><td>generated (app events + decision logs)</td><td>{}</td></tr>\
             <tr><td>&nbsp;&nbsp;app events accepted by <code>track</code></td><td>{}</td></tr>\
             <tr><td>&nbsp;&nbsp;decision logs (<code>starling.decision</code>)</td><td>{}</td></tr>\
             <tr><td>on the server, each exactly once</td><td>{}</td></tr>\
             <tr><td>still queued on a device</td><td>{}</td></tr>",
            a.generated, a.app_events, a.decision_logs, a.on_server, a.queued
        );
        for (reason, n) in &a.lost {
            let _ = write!(h, "<tr><td>lost: {}</td><td>{n}</td></tr>", escape(reason));
        }
        let _ = write!(
            h,
            "<tr><td>stored twice on the server</td><td>{}</td></tr>\
             <tr><td>replayed batches the server refused to store again</td><td>{}</td></tr>\
             <tr><td>offered while consent was withdrawn (refused, never queued)</td><td>{}</td></tr>\
             <tr><td>decisions orphaned by a kill, still pending (not events)</td><td>{}</td></tr></table></section>",
            a.duplicated, a.duplicate_batches_refused, a.not_collected, a.decisions_pending
        );

        // Faults.
        let _ = write!(
            h,
            "<section id=\"faults\"><h2>Faults</h2><table><tr><th>fault</th><th>count</th></tr>\
             <tr><td>worker processes killed with SIGKILL while owning a database</td><td>{}</td></tr>\
             <tr><td>kills that came after the worker had finished</td><td>{}</td></tr>\
             <tr><td>app restarts</td><td>{}</td></tr>\
             <tr><td>devices offline for 6 to 36 hours</td><td>{}</td></tr>\
             <tr><td>consent changes</td><td>{}</td></tr>\
             <tr><td>users whose tastes drifted</td><td>{}</td></tr>\
             <tr><td>hours of 503 from the server</td><td>{}</td></tr>\
             <tr><td>hours of slow answers</td><td>{}</td></tr>\
             <tr><td>syncs (that met a failure and retried)</td><td>{} ({})</td></tr></table></section>",
            f.processes_killed,
            f.kills_missed,
            f.restarts,
            f.offline_devices,
            f.consent_changes,
            f.drifting_users,
            f.server_error_hours,
            f.slow_hours,
            f.syncs,
            f.syncs_retried
        );

        // Bandits.
        let _ = write!(
            h,
            "<section id=\"bandits\"><h2>Bandits: decisions against the known truth</h2>\
             <p>Every decision is scored by the user's true click probability of the chosen arm, of a \
             uniformly random arm, and of the best arm for that user at that moment, on the same \
             opportunities.</p><table><tr><th>bandit</th><th>policy</th><th>decisions</th>\
             <th>click rate</th><th>expected</th><th>random</th><th>best arm</th>\
             <th>regret / random's</th><th>last quarter</th></tr>"
        );
        for b in &self.bandits {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                escape(&b.bandit),
                escape(&b.policy),
                b.opportunities,
                b.click_rate,
                b.expected_click_rate,
                b.random_click_rate,
                b.best_click_rate,
                b.regret_vs_random,
                b.regret_vs_random_last_quarter
            );
        }
        h.push_str("</table>");
        h.push_str(&self.by_kind_of_user());
        h.push_str("<div class=\"charts\">");
        for i in 0..self.bandits.len() {
            h.push_str(&self.regret_chart(i));
            h.push_str(&self.click_chart(i));
        }
        h.push_str(&self.per_device_chart());
        h.push_str("</div></section>");

        // Wire.
        let _ = write!(
            h,
            "<section id=\"bytes\"><h2>Bytes uploaded</h2><p>{} compressed bytes in all: {:.0} per device per day, {:.2} per event.</p>{}</section>",
            self.bytes.total,
            self.bytes.per_device_day,
            self.bytes.per_event,
            self.bytes_chart()
        );

        h.push_str(&self.learning_section());
        let body = match &self.private_estimates {
            Some(p) => crate::private::html(p),
            None => "<p class=\"none\">This run had no differentially private reports.</p>".into(),
        };
        let _ = write!(
            h,
            "<section id=\"private-estimates\"><h2>Private estimates vs truth</h2>{body}</section>"
        );
        h.push_str("</body></html>\n");
        h
    }
}
