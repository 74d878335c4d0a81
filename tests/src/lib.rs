//! Shared helpers for Starling's end-to-end tests and benchmarks: a real server on loopback,
//! device configurations suited to tests, and a realistic workload of app events.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_core::{Config, Event, Starling, Value};
use starling_server::{RunningServer, ServerConfig, StoredEvent};

pub mod bench;
pub mod contextual;
pub mod learning;
pub mod proxy;

/// The app name and API key every test server accepts.
pub const APP: &str = "test-app";
/// The API key of [`APP`].
pub const API_KEY: &str = "sk_test_key";

/// A real server on a free loopback port, storing into its own temporary directory.
pub struct TestServer {
    pub server: RunningServer,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server that accepts [`API_KEY`].
    pub fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    /// Starts a server after letting the caller adjust its configuration.
    pub fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig::new(dir.path());
        config.api_keys.push((APP.into(), API_KEY.into()));
        adjust(&mut config);
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = RunningServer::start(config, listen).expect("server starts");
        TestServer { server, _dir: dir }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every event the server stored for one device.
    pub fn device_events(&self, device_id: &str) -> Vec<StoredEvent> {
        let device_id = device_id.to_owned();
        self.server
            .state()
            .storage()
            .query_blocking(move |s| s.device_events(APP, &device_id))
            .expect("query")
    }

    pub fn stats(&self) -> starling_server::Stats {
        self.server
            .state()
            .storage()
            .query_blocking(|s| s.stats())
            .expect("stats")
    }
}

/// A device configuration for tests: talks to `url` with short timeouts and backoff so that
/// retry paths run in milliseconds.
pub fn device_config(dir: &Path, url: &str) -> Config {
    let mut config = Config::new(dir).with_server(url, API_KEY);
    config.upload_timeout_ms = 2_000;
    config.backoff_initial_ms = 20;
    config.backoff_max_ms = 200;
    config.flush_interval_ms = 50;
    config
}

/// Opens a device with consent granted.
pub fn open_device(config: Config) -> Starling {
    let device = Starling::open(config).expect("device opens");
    device.set_consent(true).expect("consent");
    device
}

/// Syncs until nothing is pending, waiting out backoff, for at most `limit`.
pub fn sync_until_drained(device: &Starling, limit: Duration) -> starling_core::SyncReport {
    let start = Instant::now();
    let mut sent = starling_core::SyncReport::default();
    loop {
        let report = device.sync().expect("sync");
        sent.batches_sent += report.batches_sent;
        sent.events_sent += report.events_sent;
        sent.batches_dropped += report.batches_dropped;
        sent.events_dropped += report.events_dropped;
        sent.batches_pending = report.batches_pending;
        sent.events_pending = report.events_pending;
        if report.events_pending == 0 && report.batches_pending == 0 {
            return sent;
        }
        assert!(
            start.elapsed() < limit,
            "still pending after {limit:?}: {report:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The integer property `key` of a stored event.
pub fn int_property(event: &StoredEvent, key: &str) -> Option<i64> {
    event.properties.get(key)?.as_i64()
}

/// A realistic stream of app events: screens, clicks, scrolls, searches and purchases over a
/// few sessions, with the property mix a shopping app sends.
pub struct Workload {
    rng: StdRng,
    time_ms: i64,
    screen: usize,
}

const SCREENS: &[&str] = &[
    "home", "search", "product", "cart", "checkout", "profile", "feed",
];
const ITEMS: &[&str] = &[
    "sku_10442",
    "sku_20931",
    "sku_31177",
    "sku_44820",
    "sku_52001",
    "sku_60934",
    "sku_71285",
    "sku_80412",
    "sku_91850",
    "sku_10077",
    "sku_11923",
    "sku_12844",
];
const QUERIES: &[&str] = &[
    "running shoes",
    "rain jacket",
    "headphones",
    "coffee",
    "desk lamp",
];

impl Workload {
    /// A workload from a seed, starting at `start_ms`.
    pub fn new(seed: u64, start_ms: i64) -> Workload {
        Workload {
            rng: StdRng::seed_from_u64(seed),
            time_ms: start_ms,
            screen: 0,
        }
    }

    /// The next event.
    pub fn next_event(&mut self) -> Event {
        // Most events follow within seconds; now and then a new session starts hours later.
        self.time_ms += if self.rng.random_bool(0.01) {
            self.rng.random_range(600_000..7_200_000)
        } else {
            self.rng.random_range(200..8_000)
        };
        let roll: f64 = self.rng.random();
        let event = if roll < 0.30 {
            self.screen = self.rng.random_range(0..SCREENS.len());
            Event::new("screen_view")
                .with("screen", SCREENS[self.screen])
                .with("previous", SCREENS[(self.screen + 1) % SCREENS.len()])
        } else if roll < 0.65 {
            Event::new("click")
                .with("screen", SCREENS[self.screen])
                .with("target", ITEMS[self.rng.random_range(0..ITEMS.len())])
                .with("position", self.rng.random_range(0..20i64))
        } else if roll < 0.85 {
            Event::new("scroll")
                .with("screen", SCREENS[self.screen])
                .with("depth", (self.rng.random::<f64>() * 100.0).round() / 100.0)
        } else if roll < 0.95 {
            Event::new("search")
                .with("query", QUERIES[self.rng.random_range(0..QUERIES.len())])
                .with("results", self.rng.random_range(0..200i64))
        } else {
            Event::new("purchase")
                .with("item", ITEMS[self.rng.random_range(0..ITEMS.len())])
                .with(
                    "amount",
                    (self.rng.random_range(5.0..250.0f64) * 100.0).round() / 100.0,
                )
                .with("currency", "EUR")
                .with("first_purchase", self.rng.random_bool(0.1))
                .with("ordered_at", Value::TimestampMs(self.time_ms - 1500))
        };
        event.at(self.time_ms)
    }
}

/// A test of the current test binary running in a child process (for crash tests: the child
/// works on a database, the parent kills it with SIGKILL at a chosen moment and checks what
/// survived). Its standard output is read by a thread, line by line.
pub struct ChildTest {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ChildTest {
    /// Starts the test `name` of the current test binary with `env` set.
    pub fn spawn(name: &str, env: &[(&str, &std::ffi::OsStr)]) -> ChildTest {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = Command::new(exe);
        command
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the child starts");
        let stdout = child.stdout.take().expect("the child's stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildTest {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Waits (at most `within`) for a line containing `marker`; panics if the child ends or
    /// the time runs out first. libtest prints the test's name on the same line before the
    /// child's first output, so a marker is matched anywhere in the line.
    pub fn wait_for(&self, marker: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("the child never printed {marker:?}: {e}"));
            if line.contains(marker) {
                return;
            }
        }
    }

    /// Kills the child with SIGKILL and returns the lines it printed since the last
    /// [`wait_for`](Self::wait_for).
    pub fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("SIGKILL the child");
        self.child.wait().expect("reap the child");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the reader thread");
        }
        self.lines.try_iter().collect()
    }
}

/// Runs the test `name` in a child process with `env` set, waits (at most `ready_within`)
/// until it prints `READY`, lets it run for `run_for`, kills it with SIGKILL and returns the
/// lines it printed after `READY`.
pub fn run_child_then_kill(
    name: &str,
    env: &[(&str, &std::ffi::OsStr)],
    ready_within: Duration,
    run_for: Duration,
) -> Vec<String> {
    let child = ChildTest::spawn(name, env);
    child.wait_for("READY", ready_within);
    std::thread::sleep(run_for);
    child.kill()
}
