//! Configuration of a [`Starling`](crate::Starling) instance.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::signals::SignalSpec;

/// How a Starling instance behaves. Start from [`Config::new`], which fills in defaults suited to
/// a phone, and change what you need.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory that holds Starling's database. Created if missing.
    pub data_dir: PathBuf,
    /// Base URL of the aggregation server, for example `https://starling.example.com`.
    /// Without one, events are stored but never sent.
    pub server_url: Option<String>,
    /// The app's API key for the server, sent as a bearer token.
    pub api_key: String,
    /// The app's own version of its event schema, sent with every batch.
    pub schema_version: u32,

    /// Longest time an acknowledged `track` may stay in memory before it is committed, in ms.
    /// `flush()` commits at once. Default 500 ms.
    pub flush_interval_ms: u64,
    /// Most events committed in one SQLite transaction. Default 1000.
    pub commit_group_events: usize,
    /// Capacity of the queue between the caller's thread and the writer thread, in events.
    /// When full, `track` fails with [`Error::QueueFull`]. Default 20 000.
    pub queue_capacity: usize,

    /// Bound on the bytes of stored events and sealed batches together. The oldest data is
    /// evicted (and counted) beyond it. Default 16 MiB.
    pub max_store_bytes: u64,
    /// Events and batches older than this are evicted (and counted), in ms. Default 30 days.
    pub max_age_ms: u64,

    /// Most events in one batch. Default 500.
    pub batch_max_events: usize,
    /// Most bytes of encoded (uncompressed) events in one batch. Default 256 KiB.
    pub batch_max_bytes: usize,
    /// Bound on one upload, connection to last byte, in ms. Default 20 s.
    pub upload_timeout_ms: u64,
    /// First retry delay after a failed upload, in ms; it doubles with each consecutive
    /// failure, with random jitter. Default 30 s.
    pub backoff_initial_ms: u64,
    /// Longest retry delay, in ms. Default 1 hour.
    pub backoff_max_ms: u64,
    /// If set, a background thread syncs at this interval, in ms. Default: none (the host
    /// schedules `sync`).
    pub background_sync_interval_ms: Option<u64>,

    /// How far in the future an event time may lie, against the device clock, in ms.
    /// Default 1 hour.
    pub max_future_skew_ms: u64,

    /// Signals kept current from the committed events; see `docs/signals.md`. Default: none.
    pub signals: Vec<SignalSpec>,
    /// How far behind the watermark (the largest event time seen) an event may be and still be
    /// applied to the signals, in ms. Older events are stored and sent as usual but counted as
    /// too late for the signals. Default 5 minutes.
    pub signal_allowed_lateness_ms: u64,
    /// Bandits that choose content variants on the device; see `docs/bandits.md`. Default:
    /// none.
    pub bandits: Vec<crate::bandit::BanditSpec>,
    /// Privacy budgets and daily private reports; see `docs/privacy.md`.
    pub privacy: crate::privacy::PrivacyConfig,
    /// Where the core reads "now" from. Default: the system clock. Emulators and tests supply
    /// a simulated clock here; it is not part of the FFI.
    pub clock: Clock,
}

/// The device clock the core reads "now" from, in Unix epoch milliseconds.
///
/// [`Clock::system`] (the default) reads the system clock. [`Clock::new`] takes any function,
/// so that an emulator can drive a device through simulated days, or a test can fix the time.
/// Everything time-dependent follows it: event validation, bandit decision windows, sync
/// backoff, eviction by age, device id rotation, private report days and the privacy ledger's
/// budget windows. The ledger's clock still never goes backwards: a clock that returns an
/// earlier time than the ledger has seen is read as the ledger's time.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<dyn Fn() -> i64 + Send + Sync>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that calls `now_ms` for the current time, in Unix epoch milliseconds.
    pub fn new(now_ms: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Clock(Some(Arc::new(now_ms)))
    }

    /// The current time, in Unix epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Some(f) => f(),
            None => crate::now_ms(),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(supplied)"
        } else {
            "Clock(system)"
        })
    }
}

impl Config {
    /// A configuration with defaults, storing under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            server_url: None,
            api_key: String::new(),
            schema_version: 1,
            flush_interval_ms: 500,
            commit_group_events: 1000,
            queue_capacity: 20_000,
            max_store_bytes: 16 * 1024 * 1024,
            max_age_ms: 30 * 24 * 3600 * 1000,
            batch_max_events: 500,
            batch_max_bytes: 256 * 1024,
            upload_timeout_ms: 20_000,
            backoff_initial_ms: 30_000,
            backoff_max_ms: 3600 * 1000,
            background_sync_interval_ms: None,
            max_future_skew_ms: 3600 * 1000,
            signals: Vec::new(),
            signal_allowed_lateness_ms: 5 * 60 * 1000,
            bandits: Vec::new(),
            privacy: Default::default(),
            clock: Clock::system(),
        }
    }

    /// Sets the server URL and API key.
    pub fn with_server(mut self, url: impl Into<String>, api_key: impl Into<String>) -> Self {
        self.server_url = Some(url.into());
        self.api_key = api_key.into();
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let positive = [
            ("flush_interval_ms", self.flush_interval_ms),
            ("commit_group_events", self.commit_group_events as u64),
            ("queue_capacity", self.queue_capacity as u64),
            ("max_store_bytes", self.max_store_bytes),
            ("max_age_ms", self.max_age_ms),
            ("batch_max_events", self.batch_max_events as u64),
            ("batch_max_bytes", self.batch_max_bytes as u64),
            ("upload_timeout_ms", self.upload_timeout_ms),
            ("backoff_initial_ms", self.backoff_initial_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("{name} must be greater than zero")));
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(Error::Config(
                "backoff_max_ms must be at least backoff_initial_ms".into(),
            ));
        }
        if let Some(url) = &self.server_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Error::Config(format!(
                    "server_url must start with https:// or http://, got {url:?}"
                )));
            }
        }
        if self.background_sync_interval_ms == Some(0) {
            return Err(Error::Config(
                "background_sync_interval_ms must be greater than zero".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for signal in &self.signals {
            signal.validate()?;
            if let crate::signals::SignalKind::Surge { bucket_ms, .. } = &signal.kind {
                // A surge detector keeps one counter per bucket still open to late events.
                if self.signal_allowed_lateness_ms / bucket_ms > 10_000 {
                    return Err(Error::Config(format!(
                        "signal {:?}: bucket_ms must be at least signal_allowed_lateness_ms / 10 000",
                        signal.name
                    )));
                }
            }
            if !names.insert(signal.name.as_str()) {
                return Err(Error::Config(format!(
                    "two signals are called {:?}",
                    signal.name
                )));
            }
        }
        self.privacy.validate()?;
        let mut names = std::collections::HashSet::new();
        for bandit in &self.bandits {
            bandit.validate(&self.signals)?;
            if !names.insert(bandit.name.as_str()) {
                return Err(Error::Config(format!(
                    "two bandits are called {:?}",
                    bandit.name
                )));
            }
        }
        Ok(())
    }

    /// Adds a bandit to [`Config::bandits`].
    pub fn with_bandit(mut self, bandit: crate::bandit::BanditSpec) -> Self {
        self.bandits.push(bandit);
        self
    }
}
