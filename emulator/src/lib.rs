//! The device emulator: a fleet of simulated users, each driving a real [`Starling`] instance
//! with its own database, against the real aggregation server (embedded on loopback by default).
//!
//! Simulated time advances an hour at a time. In each hour some users open the app: a session
//! of events with simulated timestamps, a bandit choosing the home layout at its start and a
//! contextual bandit choosing the topic shown on every screen, each rewarded by whether the
//! user clicked (with a probability the emulator knows, so it can score every decision against
//! a random and the best choice). Devices sync on a schedule.
//!
//! Faults can be switched on: devices offline for hours, app restarts, users who withdraw and
//! later restore consent, sessions run in a worker process that is killed with SIGKILL
//! part-way, and hours during which the server answers 503 or answers slowly. At the end every
//! device comes back online and syncs, and the emulator checks that the books balance: each
//! event a device queued is on the server exactly once, still queued on the device, or lost
//! with a counted reason. [`run`] fails when they do not.
#![warn(missing_docs)]

pub mod app;
mod device;
pub mod learning;
pub mod private;
pub mod regret;
pub mod report;
mod svg;
pub mod user;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_server::{Fault, RunningServer, ServerConfig};

use device::{Device, Env, HOUR_MS};
use regret::{BanditSummary, Tally};
pub use report::{Accounting, Report};
use user::User;

/// API key of the embedded server's app.
const EMBEDDED_KEY: &str = "sk_emulator";
/// The embedded server's app.
const EMBEDDED_APP: &str = "emulator";

/// What to simulate.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "starling-emulate",
    version,
    about = "Drive a fleet of simulated devices through the real Starling SDK"
)]
pub struct Options {
    /// Number of simulated devices.
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Simulated days, ending now.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Seed: the same seed gives the same fleet and the same faults.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Use this server instead of an embedded one (needs --api-key; server faults are then
    /// not injected, and events are counted as the devices' acknowledgements).
    #[arg(long)]
    pub server: Option<String>,
    /// API key for --server.
    #[arg(long, default_value = "")]
    pub api_key: String,
    /// Fraction of users whose tastes change at some point of the run.
    #[arg(long, default_value_t = 0.3)]
    pub drift_fraction: f64,
    /// Fraction of devices that go offline for 6 to 36 hours at some point.
    #[arg(long, default_value_t = 0.2)]
    pub offline_fraction: f64,
    /// Fraction of users who withdraw consent at some point (most grant it again 6 to 48
    /// hours later; the others stay out).
    #[arg(long, default_value_t = 0.1)]
    pub consent_fraction: f64,
    /// Probability per device and simulated hour that the app is closed and reopened.
    #[arg(long, default_value_t = 0.01)]
    pub restart_rate: f64,
    /// Probability that a session runs in a worker process that owns the device's database
    /// and is killed with SIGKILL part-way through.
    #[arg(long, default_value_t = 0.02)]
    pub kill_rate: f64,
    /// Number of simulated hours during which the server answers 503.
    #[arg(long, default_value_t = 2)]
    pub server_error_hours: u32,
    /// Number of simulated hours during which the server takes 250 ms more per upload.
    #[arg(long, default_value_t = 2)]
    pub slow_hours: u32,
    /// Track events only: no bandit decisions (a baseline for the benchmark).
    #[arg(long)]
    pub tracking_only: bool,
    /// Directory for the devices' databases and the embedded server's.
    #[arg(long, default_value = "starling-emulation")]
    pub out: PathBuf,
    /// Where to write the JSON report (default: OUT/report.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where to write the HTML report (default: OUT/report.html).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// The emulator binary to re-execute as a worker for killed sessions (default: this one).
    #[arg(long, hide = true)]
    pub worker_exe: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Devices the embedded server needs for a day before it publishes a private estimate.
    #[arg(long, default_value_t = 20)]
    pub private_min_devices: u32,
}

impl Options {
    /// The defaults, as on the command line, for `devices` over `days` with `seed`.
    pub fn new(devices: usize, days: u32, seed: u64, out: PathBuf) -> Options {
        let mut options = <Options as clap::Parser>::parse_from(["starling-emulate"]);
        options.devices = devices;
        options.days = days;
        options.seed = seed;
        options.out = out;
        options
    }

    /// Path of the JSON report.
    pub fn json_path(&self) -> PathBuf {
        self.json
            .clone()
            .unwrap_or_else(|| self.out.join("report.json"))
    }

    /// Path of the HTML report.
    pub fn html_path(&self) -> PathBuf {
        self.html
            .clone()
            .unwrap_or_else(|| self.out.join("report.html"))
    }
}

/// Runs the emulation, writes its reports, and returns the report. Fails on any SDK error and
/// when the books do not balance.
pub fn run(options: &Options) -> Result<Report, String> {
    let started = Instant::now();
    std::fs::create_dir_all(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    let devices_dir = options.out.join("devices");
    let _ = std::fs::remove_dir_all(&devices_dir);
    let worker_exe = match &options.worker_exe {
        Some(path) => path.clone(),
        None => std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?,
    };

    let embedded = match &options.server {
        Some(_) => None,
        None => {
            let data = options.out.join("server");
            let _ = std::fs::remove_dir_all(&data);
            let mut config = ServerConfig::new(&data);
            config
                .api_keys
                .push((EMBEDDED_APP.into(), EMBEDDED_KEY.into()));
            config.learning_tasks = vec![learning::task_definition()?];
            config.private_min_devices = options.private_min_devices;
            Some(
                RunningServer::start(config, "127.0.0.1:0".parse().expect("address"))
                    .map_err(|e| format!("embedded server: {e}"))?,
            )
        }
    };
    let (url, key) = match (&embedded, &options.server) {
        (Some(server), _) => (server.url(), EMBEDDED_KEY.to_owned()),
        (None, Some(url)) => (url.clone(), options.api_key.clone()),
        (None, None) => unreachable!("one of the two is set"),
    };
    let env = Env {
        url: &url,
        key: &key,
        worker_exe: &worker_exe,
        kill_rate: options.kill_rate.clamp(0.0, 1.0),
        restart_rate: options.restart_rate.clamp(0.0, 1.0),
        decide: !options.tracking_only,
    };

    let hours = i64::from(options.days.max(1)) * 24;
    let end_ms = now_ms() / HOUR_MS * HOUR_MS;
    let start_ms = end_ms - hours * HOUR_MS;
    let mut fleet = build_fleet(options, &devices_dir, hours, start_ms);
    for device in &mut fleet {
        device.open(&env)?;
    }
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x5eed_fa17);
    let error_hours: BTreeSet<i64> = (0..options.server_error_hours)
        .map(|_| rng.random_range(0..hours))
        .collect();
    let slow_hours: BTreeSet<i64> = (0..options.slow_hours)
        .map(|_| rng.random_range(0..hours))
        .collect();

    let progress = if options.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(hours as u64)
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} simulated hour {pos}/{len} {bar:40} {elapsed} {msg}",
        )
        .expect("template"),
    );
    // Devices wait on the network and on their writer threads as much as on the CPU.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) * 4;
    for hour in 0..hours {
        if let Some(server) = &embedded {
            server.state().faults().clear();
            if error_hours.contains(&hour) {
                let fault = Fault::Status {
                    status: 503,
                    retry_after_s: None,
                };
                server.state().faults().push(fault, options.devices);
            } else if slow_hours.contains(&hour) {
                let fault = Fault::Delay(Duration::from_millis(250));
                server.state().faults().push(fault, options.devices);
            }
        }
        let hour_start = start_ms + hour * HOUR_MS;
        let chunk = fleet.len().div_ceil(workers).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = fleet
                .chunks_mut(chunk)
                .map(|devices| {
                    let env = &env;
                    scope.spawn(move || {
                        devices
                            .iter_mut()
                            .try_for_each(|d| d.hour(hour, hour_start, env))
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("device thread"))
        })?;
        let kills: u64 = fleet.iter().map(|d| d.books.kills).sum();
        progress.set_message(format!("{kills} workers killed"));
        progress.inc(1);
    }
    if let Some(server) = &embedded {
        server.state().faults().clear();
    }
    progress.set_message("final sync");

    // Everyone comes back online and syncs what is left.
    // Their clocks move on by seconds between attempts, past any retry delay, so that the
    // private reports of the days that are over are charged and sent too.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut final_ms = end_ms - 1;
    for device in &mut fleet {
        if !device.starling.as_ref().expect("open").consent() {
            continue;
        }
        loop {
            final_ms += 10_000;
            device.set_clock(final_ms);
            let starling = device.starling.as_ref().expect("open");
            let report = starling.sync().map_err(|e| format!("final sync: {e}"))?;
            device.books.syncs += 1;
            let note = app::synced(&report);
            let reports_done = matches!(note, app::Note::Synced { reports: true, .. });
            device.note_sync(note);
            if (report.events_pending == 0 && reports_done) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    progress.finish_and_clear();

    let delivered = fleet
        .iter()
        .map(|d| private::delivered(&d.private, d.starling.as_ref().expect("open")))
        .collect::<Result<Vec<_>, _>>()?;
    let last_day = final_ms.div_euclid(private::DAY_MS) - 1;
    let first_day = start_ms.div_euclid(private::DAY_MS);
    let private_estimates = private::compare(&url, &key, &delivered, first_day, last_day)?;

    let accounting = account(&fleet, embedded.as_ref())?;
    let mut report = Report::new(options, &fleet, accounting, started.elapsed())?;
    report.private_estimates = Some(private_estimates);
    if let Some(server) = &embedded {
        let books = fleet.iter().map(|d| &d.books);
        let counts = (
            books.clone().map(|b| b.learning_syncs).sum(),
            books.clone().map(|b| b.updates_sent).sum(),
            books.map(|b| b.updates_refused).sum(),
        );
        let click_rate = report.bandits[1].click_rate;
        report.model_accuracy = Some(learning::history(server, click_rate, counts)?);
    }
    report.write(options)?;
    if !report.accounting.balanced {
        return Err(format!(
            "the books do not balance: {} events generated, {} accounted for ({} on the server, {} queued, {} lost), {} duplicated",
            report.accounting.generated,
            report.accounting.accounted(),
            report.accounting.on_server,
            report.accounting.queued,
            report.accounting.lost.values().sum::<u64>(),
            report.accounting.duplicated,
        ));
    }
    Ok(report)
}

/// The fleet for `options`: the same seed always gives the same users, drifts, outages and
/// consent changes.
fn build_fleet(
    options: &Options,
    devices_dir: &std::path::Path,
    hours: i64,
    start_ms: i64,
) -> Vec<Device> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    (0..options.devices)
        .map(|i| {
            let mut user = User::new(options.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
            if rng.random_bool(options.drift_fraction.clamp(0.0, 1.0)) {
                // Somewhere in the middle half of the run, so there is a before and an after.
                let at = rng.random_range(hours / 4..=(hours * 3 / 4).max(hours / 4));
                user.drift_at_ms = Some(start_ms + at * HOUR_MS);
            }
            let dir = devices_dir.join(format!("device-{i:05}"));
            let device_rng = StdRng::seed_from_u64(rng.random());
            let mut device = Device::new(user, dir, device_rng, hours as usize);
            if rng.random_bool(options.offline_fraction.clamp(0.0, 1.0)) {
                let from = rng.random_range(0..hours);
                device.offline = from..from + rng.random_range(6..=36);
            }
            if rng.random_bool(options.consent_fraction.clamp(0.0, 1.0)) {
                let off = rng.random_range(1..hours);
                // A quarter never come back within the run.
                let on = if rng.random_bool(0.75) {
                    off + rng.random_range(6..=48)
                } else {
                    i64::MAX
                };
                device.consent_off = Some((off, on));
            }
            device
        })
        .collect()
}

/// Counts what became of every event, device by device, and checks the books.
fn account(fleet: &[Device], server: Option<&RunningServer>) -> Result<Accounting, String> {
    let mut a = Accounting::default();
    for device in fleet {
        let d = device.diagnostics()?;
        let b = &device.books;
        a.app_events += b.app_events;
        a.decision_logs += b.decision_logs + d.decisions_expired;
        a.not_collected += b.not_collected;
        a.queued += d.events_uncommitted + d.events_unsealed + d.events_batched;
        for (reason, n) in [
            ("evicted_size", d.events_evicted_size),
            ("evicted_age", d.events_evicted_age),
            ("dropped_rejected", d.events_dropped_rejected),
            ("deleted_by_consent", d.events_deleted_by_consent),
            ("dropped_unwritable", d.events_dropped_unwritable),
            ("lost_in_killed_process", b.lost_in_kills),
        ] {
            if n > 0 {
                *a.lost.entry(reason.into()).or_default() += n;
            }
        }
        a.decisions_pending += d.decisions_pending;

        match server {
            Some(server) => {
                for id in &device.device_ids {
                    let id = id.clone();
                    let events = server
                        .state()
                        .storage()
                        .query_blocking(move |s| s.device_events(EMBEDDED_APP, &id))?;
                    let mut seen: BTreeMap<u64, &str> = BTreeMap::new();
                    for e in &events {
                        if seen.insert(e.seq, e.name.as_str()).is_some() {
                            a.duplicated += 1;
                        }
                    }
                    for name in seen.values() {
                        a.on_server += 1;
                        if name.starts_with("starling.") {
                            a.sdk_events_on_server += 1;
                        }
                    }
                }
            }
            // Against a remote server the device's own count of acknowledged events stands in.
            None => a.on_server += d.events_sent,
        }
    }
    if let Some(server) = server {
        a.duplicate_batches_refused = server
            .state()
            .storage()
            .query_blocking(|s| s.stats())?
            .duplicate_batches;
    }
    a.generated = a.app_events + a.decision_logs;
    // The totals must balance, and (where the server's rows can be read) neither kind of event
    // may be on the server more often than the devices generated it.
    let by_kind = server.is_none()
        || (a.sdk_events_on_server <= a.decision_logs
            && a.on_server - a.sdk_events_on_server <= a.app_events);
    a.balanced = a.duplicated == 0 && a.generated == a.accounted() && by_kind;
    Ok(a)
}

/// Merges the devices' hourly tallies per bandit.
pub(crate) fn fleet_tallies(fleet: &[Device], hours: usize) -> Vec<Vec<Tally>> {
    let mut out = vec![vec![Tally::default(); hours]; app::BANDITS.len()];
    for device in fleet {
        for (b, tallies) in device.tallies.iter().enumerate() {
            for (h, t) in tallies.iter().enumerate() {
                out[b][h].merge(t);
            }
        }
    }
    out
}

/// Summaries of both bandits over the fleet.
pub(crate) fn bandit_summaries(fleet: &[Device], hours: usize) -> Vec<BanditSummary> {
    let policies = [
        "Thompson sampling (Beta-Bernoulli), no context",
        "LinUCB over time of day and recent activity",
    ];
    fleet_tallies(fleet, hours)
        .into_iter()
        .zip(app::BANDITS)
        .zip(policies)
        .map(|((hourly, name), policy)| BanditSummary::new(name, policy, hourly))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_fleet() {
        let options = Options::new(40, 3, 9, PathBuf::from("unused"));
        let dir = std::path::Path::new("unused");
        let describe = |fleet: &[Device]| -> Vec<String> {
            fleet
                .iter()
                .map(|d| {
                    format!(
                        "{:?} {:?} {:?} {:?} {:?}",
                        d.user.tastes, d.user.drift_at_ms, d.offline, d.consent_off, d.dir
                    )
                })
                .collect()
        };
        let a = build_fleet(&options, dir, 72, 0);
        let b = build_fleet(&options, dir, 72, 0);
        assert_eq!(describe(&a), describe(&b));
        let other = build_fleet(&Options::new(40, 3, 10, PathBuf::new()), dir, 72, 0);
        assert_ne!(describe(&a), describe(&other));
        // Some users drift, some go offline, some change their mind about consent.
        assert!(a.iter().any(|d| d.user.drift_at_ms.is_some()));
        assert!(a.iter().any(|d| !d.offline.is_empty()));
        assert!(a.iter().any(|d| d.consent_off.is_some()));
        assert!(a.iter().any(|d| d.user.drift_at_ms.is_none()));
    }
}
