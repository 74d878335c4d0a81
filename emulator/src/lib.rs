//! The device emulator: a fleet of simulated users, each driving a real [`Starling`] instance
//! with its own database, against the real aggregation server (embedded on loopback by default).
//!
//! Simulated time advances an hour at a time; in each hour some users open the app and produce a
//! session of events with simulated timestamps, and devices sync on a schedule. Faults can be
//! switched on: devices that go offline for hours, app restarts, and hours during which the
//! server answers 503. At the end every device comes back online and syncs, and the emulator
//! checks that the books balance: each event a device accepted is on the server exactly once,
//! still queued on the device, or lost with a counted reason.
#![warn(missing_docs)]

pub mod user;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use starling_core::{Config, Starling};
use starling_server::{Fault, RunningServer, ServerConfig};
use user::User;

/// API key of the embedded server's app.
const EMBEDDED_KEY: &str = "sk_emulator";
const HOUR_MS: i64 = 3_600_000;

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
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    /// Seed: the same seed gives the same fleet and the same faults.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Use this server instead of an embedded one (needs --api-key).
    #[arg(long)]
    pub server: Option<String>,
    /// API key for --server.
    #[arg(long, default_value = "")]
    pub api_key: String,
    /// Fraction of devices that go offline for 6 to 36 hours at some point.
    #[arg(long, default_value_t = 0.2)]
    pub offline_fraction: f64,
    /// Probability per device and simulated hour that the app is restarted.
    #[arg(long, default_value_t = 0.01)]
    pub restart_rate: f64,
    /// Number of simulated hours during which the server answers 503.
    #[arg(long, default_value_t = 2)]
    pub server_error_hours: u32,
    /// Directory for the report and the devices' databases.
    #[arg(long, default_value = "starling-emulation")]
    pub out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The emulation's results, written as `report.json`.
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
    /// Events the devices accepted from their simulated users.
    pub events_generated: u64,
    /// Of those, events stored on the server.
    pub events_on_server: u64,
    /// Of those, events still queued on a device at the end.
    pub events_queued: u64,
    /// Of those, events lost on a device, by reason.
    pub events_lost: std::collections::BTreeMap<String, u64>,
    /// Events stored on the server more than once (must be 0).
    pub events_duplicated: u64,
    /// Replayed batches the server recognised and did not store again.
    pub duplicate_batches_refused: u64,
    /// True when generated = on server + queued + lost, with no duplicate.
    pub balanced: bool,
    /// Compressed bytes uploaded, per device per simulated day.
    pub bytes_per_device_day: f64,
    /// Compressed bytes uploaded per event.
    pub bytes_per_event: f64,
    /// Syncs attempted, and how many met a failure that was retried.
    pub syncs: u64,
    /// Syncs that met a failure and scheduled a retry.
    pub syncs_retried: u64,
    /// App restarts simulated.
    pub restarts: u64,
    /// Simulated device-days per wall-clock minute.
    pub device_days_per_minute: f64,
}

struct Device {
    user: User,
    dir: PathBuf,
    starling: Option<Starling>,
    offline: std::ops::Range<i64>,
    generated: u64,
    device_ids: Vec<String>,
    rng: StdRng,
    syncs: u64,
    syncs_retried: u64,
    restarts: u64,
    restart_probability: f64,
}

impl Device {
    fn config(&self, url: &str, key: &str) -> Config {
        let mut config = Config::new(&self.dir).with_server(url, key);
        // Real seconds stand for simulated hours here, so retry delays are scaled down.
        config.backoff_initial_ms = 200;
        config.backoff_max_ms = 2_000;
        config.upload_timeout_ms = 5_000;
        config
    }

    fn open(&mut self, url: &str, key: &str) -> Result<(), String> {
        let starling = Starling::open(self.config(url, key)).map_err(|e| e.to_string())?;
        if !starling.consent() {
            starling.set_consent(true).map_err(|e| e.to_string())?;
        }
        let id = starling.device_id().map_err(|e| e.to_string())?;
        if !self.device_ids.contains(&id) {
            self.device_ids.push(id);
        }
        self.starling = Some(starling);
        Ok(())
    }

    /// One simulated hour: maybe a session, maybe a restart, maybe a sync.
    fn hour(&mut self, hour: i64, start_ms: i64, url: &str, key: &str) -> Result<(), String> {
        let hour_of_day = (start_ms / HOUR_MS).rem_euclid(24) as usize;
        if self.rng.random_bool(self.restart_probability) {
            if let Some(s) = self.starling.take() {
                s.close().map_err(|e| e.to_string())?;
            }
            self.open(url, key)?;
            self.restarts += 1;
        }
        let starling = self.starling.as_ref().expect("open");
        let mut tracked = false;
        if self.user.opens_app(hour_of_day) {
            let offset = self.rng.random_range(0..HOUR_MS / 2);
            for event in self.user.session(start_ms + offset) {
                starling.track(event).map_err(|e| e.to_string())?;
                self.generated += 1;
            }
            tracked = true;
        }
        let online = !self.offline.contains(&hour);
        if online && ((tracked && self.rng.random_bool(0.5)) || hour % 6 == 0) {
            let report = starling.sync().map_err(|e| e.to_string())?;
            self.syncs += 1;
            if report.last_error.is_some() {
                self.syncs_retried += 1;
            }
        }
        Ok(())
    }
}

/// Runs the emulation and returns its report (also written to `out/report.json`).
pub fn run(options: &Options) -> Result<Report, String> {
    let started = Instant::now();
    std::fs::create_dir_all(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    let devices_dir = options.out.join("devices");
    let _ = std::fs::remove_dir_all(&devices_dir);

    let embedded = match &options.server {
        Some(_) => None,
        None => {
            let data = options.out.join("server");
            let _ = std::fs::remove_dir_all(&data);
            let mut config = ServerConfig::new(&data);
            config
                .api_keys
                .push(("emulator".into(), EMBEDDED_KEY.into()));
            Some(
                RunningServer::start(config, "127.0.0.1:0".parse().unwrap())
                    .map_err(|e| format!("embedded server: {e}"))?,
            )
        }
    };
    let (url, key) = match (&embedded, &options.server) {
        (Some(server), _) => (server.url(), EMBEDDED_KEY.to_owned()),
        (None, Some(url)) => (url.clone(), options.api_key.clone()),
        (None, None) => unreachable!(),
    };

    let hours = i64::from(options.days) * 24;
    let end_ms = now_ms() / HOUR_MS * HOUR_MS;
    let start_ms = end_ms - hours * HOUR_MS;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut fleet: Vec<Device> = (0..options.devices)
        .map(|i| {
            let offline = if rng.random_bool(options.offline_fraction.clamp(0.0, 1.0)) {
                let from = rng.random_range(0..hours.max(1));
                from..from + rng.random_range(6..=36)
            } else {
                0..0
            };
            Device {
                user: User::new(options.seed.wrapping_mul(1_000_003).wrapping_add(i as u64)),
                dir: devices_dir.join(format!("device-{i:05}")),
                starling: None,
                offline,
                generated: 0,
                device_ids: Vec::new(),
                rng: StdRng::seed_from_u64(rng.random()),
                syncs: 0,
                syncs_retried: 0,
                restarts: 0,
                restart_probability: options.restart_rate.clamp(0.0, 1.0),
            }
        })
        .collect();
    for device in &mut fleet {
        device.open(&url, &key)?;
    }
    let error_hours: Vec<i64> = (0..options.server_error_hours)
        .map(|_| rng.random_range(0..hours.max(1)))
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
        .unwrap(),
    );
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    for hour in 0..hours {
        if let Some(server) = &embedded {
            if error_hours.contains(&hour) {
                server.state().faults().push(
                    Fault::Status {
                        status: 503,
                        retry_after_s: None,
                    },
                    options.devices,
                );
            } else {
                server.state().faults().clear();
            }
        }
        let hour_start = start_ms + hour * HOUR_MS;
        let chunk = fleet.len().div_ceil(workers).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = fleet
                .chunks_mut(chunk)
                .map(|devices| {
                    let (url, key) = (&url, &key);
                    scope.spawn(move || {
                        devices
                            .iter_mut()
                            .try_for_each(|d| d.hour(hour, hour_start, url, key))
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("device thread"))
        })?;
        progress.inc(1);
    }
    if let Some(server) = &embedded {
        server.state().faults().clear();
    }
    progress.set_message("final sync");

    // Everyone comes back online and syncs what is left.
    let deadline = Instant::now() + Duration::from_secs(120);
    for device in &mut fleet {
        let starling = device.starling.as_ref().expect("open");
        loop {
            let report = starling.sync().map_err(|e| e.to_string())?;
            device.syncs += 1;
            if report.events_pending == 0 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    progress.finish_and_clear();

    let report = account(options, &fleet, embedded.as_ref(), started)?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(options.out.join("report.json"), json).map_err(|e| e.to_string())?;
    Ok(report)
}

fn account(
    options: &Options,
    fleet: &[Device],
    server: Option<&RunningServer>,
    started: Instant,
) -> Result<Report, String> {
    let mut report = Report {
        devices: fleet.len(),
        days: options.days,
        seed: options.seed,
        elapsed_s: 0.0,
        events_generated: 0,
        events_on_server: 0,
        events_queued: 0,
        events_lost: Default::default(),
        events_duplicated: 0,
        duplicate_batches_refused: 0,
        balanced: false,
        bytes_per_device_day: 0.0,
        bytes_per_event: 0.0,
        syncs: 0,
        syncs_retried: 0,
        restarts: 0,
        device_days_per_minute: 0.0,
    };
    let mut bytes = 0u64;
    for device in fleet {
        let d = device
            .starling
            .as_ref()
            .expect("open")
            .diagnostics()
            .map_err(|e| e.to_string())?;
        report.events_generated += device.generated;
        report.events_queued += d.events_uncommitted + d.events_unsealed + d.events_batched;
        for (reason, n) in [
            ("evicted_size", d.events_evicted_size),
            ("evicted_age", d.events_evicted_age),
            ("dropped_rejected", d.events_dropped_rejected),
            ("deleted_by_consent", d.events_deleted_by_consent),
            ("dropped_unwritable", d.events_dropped_unwritable),
        ] {
            if n > 0 {
                *report.events_lost.entry(reason.into()).or_default() += n;
            }
        }
        bytes += d.bytes_sent;
        report.syncs += device.syncs;
        report.syncs_retried += device.syncs_retried;
        report.restarts += device.restarts;

        if let Some(server) = server {
            for id in &device.device_ids {
                let id = id.clone();
                let events = server
                    .state()
                    .storage()
                    .query_blocking(move |s| s.device_events("emulator", &id))?;
                let distinct: std::collections::BTreeSet<u64> =
                    events.iter().map(|e| e.seq).collect();
                report.events_on_server += distinct.len() as u64;
                report.events_duplicated += (events.len() - distinct.len()) as u64;
            }
        } else {
            // Against a remote server the device's own count of acknowledged events stands in.
            report.events_on_server += d.events_sent;
        }
    }
    if let Some(server) = server {
        report.duplicate_batches_refused = server
            .state()
            .storage()
            .query_blocking(|s| s.stats())?
            .duplicate_batches;
    }
    let lost: u64 = report.events_lost.values().sum();
    report.balanced = report.events_duplicated == 0
        && report.events_generated == report.events_on_server + report.events_queued + lost;
    let device_days = (fleet.len() as f64) * f64::from(options.days);
    report.bytes_per_device_day = bytes as f64 / device_days.max(1.0);
    report.bytes_per_event = bytes as f64 / (report.events_on_server.max(1) as f64);
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.device_days_per_minute = device_days / (report.elapsed_s / 60.0);
    Ok(report)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
