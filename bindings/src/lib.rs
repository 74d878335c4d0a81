//! Starling's native library: the one `cdylib`/`staticlib` that Android and iOS apps link.
//!
//! This crate only translates: records and enums that uniffi can carry, one object that wraps
//! [`starling_core::Starling`], and one error type. It has no logic of its own. Every exported
//! call runs inside [`guard`], so a panic in the core becomes [`StarlingError::Internal`]
//! instead of unwinding into the app.
#![warn(missing_docs)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

uniffi::setup_scaffolding!();

mod learning;
mod personalization;
pub use personalization::*;
mod privacy;
pub use privacy::*;

/// Settings for [`Starling::open`]. Use [`default_config`] for sensible values.
#[derive(Debug, Clone, uniffi::Record)]
pub struct StarlingConfig {
    /// Directory for Starling's database (for example `filesDir/starling` on Android).
    pub data_dir: String,
    /// Base URL of the aggregation server, or none to keep events on the device.
    pub server_url: Option<String>,
    /// The app's API key for the server.
    pub api_key: String,
    /// The app's own version of its event schema.
    pub schema_version: u32,
    /// Longest time a tracked event stays in memory before it is committed, in ms.
    pub flush_interval_ms: u64,
    /// Bound on stored events and batches, in bytes.
    pub max_store_bytes: u64,
    /// Events older than this are evicted, in ms.
    pub max_age_ms: u64,
    /// Most events per uploaded batch.
    pub batch_max_events: u32,
    /// Bound on one upload, in ms.
    pub upload_timeout_ms: u64,
    /// First retry delay after a failed upload, in ms.
    pub backoff_initial_ms: u64,
    /// Longest retry delay, in ms.
    pub backoff_max_ms: u64,
    /// Sync from a background thread at this interval, in ms, if set.
    pub background_sync_interval_ms: Option<u64>,
    /// Signals kept current on the device.
    pub signals: Vec<SignalDefinition>,
    /// Events older than the newest one by more than this are too late for the signals, in ms.
    pub signal_allowed_lateness_ms: u64,
    /// Bandits that choose content variants on the device.
    pub bandits: Vec<BanditDefinition>,
}

/// Defaults suited to a phone, storing under `data_dir`.
#[uniffi::export]
pub fn default_config(data_dir: String) -> StarlingConfig {
    let core = starling_core::Config::new(&data_dir);
    StarlingConfig {
        data_dir,
        server_url: None,
        api_key: String::new(),
        schema_version: core.schema_version,
        flush_interval_ms: core.flush_interval_ms,
        max_store_bytes: core.max_store_bytes,
        max_age_ms: core.max_age_ms,
        batch_max_events: core.batch_max_events as u32,
        upload_timeout_ms: core.upload_timeout_ms,
        backoff_initial_ms: core.backoff_initial_ms,
        backoff_max_ms: core.backoff_max_ms,
        background_sync_interval_ms: core.background_sync_interval_ms,
        signals: Vec::new(),
        signal_allowed_lateness_ms: core.signal_allowed_lateness_ms,
        bandits: Vec::new(),
    }
}

impl From<StarlingConfig> for starling_core::Config {
    fn from(c: StarlingConfig) -> Self {
        let mut config = starling_core::Config::new(c.data_dir);
        config.server_url = c.server_url;
        config.api_key = c.api_key;
        config.schema_version = c.schema_version;
        config.flush_interval_ms = c.flush_interval_ms;
        config.max_store_bytes = c.max_store_bytes;
        config.max_age_ms = c.max_age_ms;
        config.batch_max_events = c.batch_max_events as usize;
        config.upload_timeout_ms = c.upload_timeout_ms;
        config.backoff_initial_ms = c.backoff_initial_ms;
        config.backoff_max_ms = c.backoff_max_ms;
        config.background_sync_interval_ms = c.background_sync_interval_ms;
        config.signals = c.signals.into_iter().map(Into::into).collect();
        config.signal_allowed_lateness_ms = c.signal_allowed_lateness_ms;
        config.bandits = c.bandits.into_iter().map(Into::into).collect();
        config
    }
}

/// A typed property value.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum PropertyValue {
    /// Text.
    Text {
        /// The value.
        value: String,
    },
    /// A 64-bit integer.
    Integer {
        /// The value.
        value: i64,
    },
    /// A finite 64-bit float.
    Real {
        /// The value.
        value: f64,
    },
    /// A boolean.
    Flag {
        /// The value.
        value: bool,
    },
    /// A point in time, Unix epoch milliseconds.
    Timestamp {
        /// Unix epoch milliseconds.
        epoch_ms: i64,
    },
}

/// One named property of an event.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Property {
    /// Lower-case key, such as `screen`.
    pub key: String,
    /// The value.
    pub value: PropertyValue,
}

/// An engagement event.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrackEvent {
    /// Lower-case name, such as `screen_view`.
    pub name: String,
    /// When it happened, Unix epoch ms; none means now.
    pub time_ms: Option<i64>,
    /// Properties, in order.
    pub properties: Vec<Property>,
}

impl From<TrackEvent> for starling_core::Event {
    fn from(e: TrackEvent) -> Self {
        starling_core::Event {
            name: e.name,
            time_ms: e.time_ms,
            properties: e
                .properties
                .into_iter()
                .map(|p| (p.key, p.value.into()))
                .collect(),
        }
    }
}

impl From<PropertyValue> for starling_core::Value {
    fn from(v: PropertyValue) -> Self {
        use starling_core::Value;
        match v {
            PropertyValue::Text { value } => Value::String(value),
            PropertyValue::Integer { value } => Value::Int(value),
            PropertyValue::Real { value } => Value::Float(value),
            PropertyValue::Flag { value } => Value::Bool(value),
            PropertyValue::Timestamp { epoch_ms } => Value::TimestampMs(epoch_ms),
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SyncReport {
    /// Batches the server acknowledged.
    pub batches_sent: u32,
    /// Events in them.
    pub events_sent: u64,
    /// Batches the server refused for good.
    pub batches_dropped: u32,
    /// Events in them.
    pub events_dropped: u64,
    /// Batches still queued.
    pub batches_pending: u64,
    /// Events still queued.
    pub events_pending: u64,
    /// When the next attempt is due (Unix epoch ms), if uploads are backing off.
    pub retry_at_ms: Option<i64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

impl From<starling_core::SyncReport> for SyncReport {
    fn from(r: starling_core::SyncReport) -> Self {
        SyncReport {
            batches_sent: r.batches_sent,
            events_sent: r.events_sent,
            batches_dropped: r.batches_dropped,
            events_dropped: r.events_dropped,
            batches_pending: r.batches_pending,
            events_pending: r.events_pending,
            retry_at_ms: r.retry_at_ms,
            last_error: r.last_error,
        }
    }
}

/// Counters and queue sizes; see `starling_core::Diagnostics`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[allow(missing_docs)]
pub struct Diagnostics {
    pub events_committed: u64,
    pub events_sent: u64,
    pub batches_sent: u64,
    pub bytes_sent: u64,
    pub events_evicted_size: u64,
    pub events_evicted_age: u64,
    pub events_dropped_rejected: u64,
    pub batches_dropped: u64,
    pub events_deleted_by_consent: u64,
    pub database_recoveries: u64,
    pub events_dropped_unwritable: u64,
    pub events_rejected_invalid: u64,
    pub events_dropped_queue_full: u64,
    pub events_uncommitted: u64,
    pub events_unsealed: u64,
    pub batches_queued: u64,
    pub events_batched: u64,
    pub stored_bytes: u64,
    pub decisions_made: u64,
    pub decisions_pending: u64,
    pub rewards_reported: u64,
    pub rewards_attributed: u64,
    pub decisions_expired: u64,
    pub rewards_late: u64,
}

impl From<starling_core::Diagnostics> for Diagnostics {
    fn from(d: starling_core::Diagnostics) -> Self {
        Diagnostics {
            events_committed: d.events_committed,
            events_sent: d.events_sent,
            batches_sent: d.batches_sent,
            bytes_sent: d.bytes_sent,
            events_evicted_size: d.events_evicted_size,
            events_evicted_age: d.events_evicted_age,
            events_dropped_rejected: d.events_dropped_rejected,
            batches_dropped: d.batches_dropped,
            events_deleted_by_consent: d.events_deleted_by_consent,
            database_recoveries: d.database_recoveries,
            events_dropped_unwritable: d.events_dropped_unwritable,
            events_rejected_invalid: d.events_rejected_invalid,
            events_dropped_queue_full: d.events_dropped_queue_full,
            events_uncommitted: d.events_uncommitted,
            events_unsealed: d.events_unsealed,
            batches_queued: d.batches_queued,
            events_batched: d.events_batched,
            stored_bytes: d.stored_bytes,
            decisions_made: d.decisions_made,
            decisions_pending: d.decisions_pending,
            rewards_reported: d.rewards_reported,
            rewards_attributed: d.rewards_attributed,
            decisions_expired: d.decisions_expired,
            rewards_late: d.rewards_late,
        }
    }
}

/// Everything a call into Starling can fail with. Each variant carries a readable reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error, uniffi::Error)]
pub enum StarlingError {
    /// The event was rejected by validation and not recorded.
    #[error("{reason}")]
    InvalidEvent {
        /// What is wrong with it.
        reason: String,
    },
    /// Consent has not been granted; nothing was recorded or sent.
    #[error("{reason}")]
    NoConsent {
        /// Explanation.
        reason: String,
    },
    /// The in-memory queue is full; the event was not recorded.
    #[error("{reason}")]
    QueueFull {
        /// Explanation.
        reason: String,
    },
    /// The configuration is not usable.
    #[error("{reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: String,
    },
    /// The on-device store failed (for example a full disk).
    #[error("{reason}")]
    Storage {
        /// Explanation.
        reason: String,
    },
    /// Sync was asked for, but no server URL is configured.
    #[error("{reason}")]
    NoServer {
        /// Explanation.
        reason: String,
    },
    /// The instance was closed.
    #[error("{reason}")]
    Closed {
        /// Explanation.
        reason: String,
    },
    /// No signal, bandit or decision by that name or id exists.
    #[error("{reason}")]
    NotFound {
        /// Which name or id.
        reason: String,
    },
    /// A bandit refused a context or a reward.
    #[error("{reason}")]
    InvalidArgument {
        /// What is wrong with it.
        reason: String,
    },
    /// A bug inside Starling, caught before it could reach the app.
    #[error("{reason}")]
    Internal {
        /// Explanation.
        reason: String,
    },
}

impl From<starling_core::Error> for StarlingError {
    fn from(e: starling_core::Error) -> Self {
        use starling_core::Error as E;
        let reason = e.to_string();
        match e {
            E::InvalidEvent(_) => StarlingError::InvalidEvent { reason },
            E::NoConsent => StarlingError::NoConsent { reason },
            E::QueueFull { .. } => StarlingError::QueueFull { reason },
            E::Config(_) => StarlingError::InvalidConfig { reason },
            E::Storage(_) => StarlingError::Storage { reason },
            E::NoServer => StarlingError::NoServer { reason },
            E::Closed => StarlingError::Closed { reason },
            E::UnknownSignal(_) | E::UnknownBandit(_) | E::UnknownDecision(_) => {
                StarlingError::NotFound { reason }
            }
            E::Bandit(_) | E::Learning(_) | E::Privacy(_) | E::BudgetExceeded(_) => {
                StarlingError::InvalidArgument { reason }
            }
            _ => StarlingError::Internal { reason },
        }
    }
}

/// Runs `f`, turning a panic into [`StarlingError::Internal`] so that it never unwinds into the
/// host app. (The release profile keeps `panic = "unwind"` for this.)
fn guard<T>(f: impl FnOnce() -> Result<T, starling_core::Error>) -> Result<T, StarlingError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(StarlingError::from),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            log::error!("starling: internal error caught at the FFI boundary: {what}");
            Err(StarlingError::Internal {
                reason: format!("internal error: {what}"),
            })
        }
    }
}

/// A Starling instance. Open one per process and data directory, and keep it for the app's
/// lifetime.
#[derive(uniffi::Object)]
pub struct Starling {
    inner: starling_core::Starling,
}

#[uniffi::export]
impl Starling {
    /// Opens the store and starts the writer thread. Reads the disk: call it off the UI thread.
    #[uniffi::constructor]
    pub fn open(config: StarlingConfig) -> Result<Arc<Starling>, StarlingError> {
        guard(|| starling_core::Starling::open(config.into()))
            .map(|inner| Arc::new(Starling { inner }))
    }

    /// Records an event; returns in microseconds and never waits on I/O.
    pub fn track(&self, event: TrackEvent) -> Result<(), StarlingError> {
        guard(|| self.inner.track(event.into()))
    }

    /// Makes every event tracked so far durable. Waits on disk I/O.
    pub fn flush(&self) -> Result<(), StarlingError> {
        guard(|| self.inner.flush())
    }

    /// Uploads what is queued, on the calling thread. Waits on the network.
    pub fn sync(&self) -> Result<SyncReport, StarlingError> {
        guard(|| self.inner.sync()).map(SyncReport::from)
    }

    /// Grants or withdraws consent; withdrawing deletes everything queued.
    pub fn set_consent(&self, granted: bool) -> Result<(), StarlingError> {
        guard(|| self.inner.set_consent(granted))
    }

    /// Whether consent is granted.
    pub fn consent(&self) -> bool {
        self.inner.consent()
    }

    /// The pseudonymous device id.
    pub fn device_id(&self) -> Result<String, StarlingError> {
        guard(|| self.inner.device_id())
    }

    /// Replaces the device id with a new random one.
    pub fn reset_device_id(&self) -> Result<String, StarlingError> {
        guard(|| self.inner.reset_device_id())
    }

    /// Counters and queue sizes.
    pub fn diagnostics(&self) -> Result<Diagnostics, StarlingError> {
        guard(|| self.inner.diagnostics()).map(Diagnostics::from)
    }

    /// Commits and stops; later calls fail with `Closed`.
    pub fn close(&self) -> Result<(), StarlingError> {
        guard(|| self.inner.close())
    }
}

/// The SDK version.
#[uniffi::export]
pub fn sdk_version() -> String {
    starling_core::SDK_VERSION.to_owned()
}

/// Severity of a log line from the native library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    /// Data was lost (for example events dropped because the disk stayed full).
    Error,
    /// Recoverable trouble (a failed upload that will be retried, an eviction).
    Warn,
    /// Notable events (consent withdrawn).
    Info,
    /// Detail for debugging an integration.
    Debug,
    /// Everything, including per-event detail.
    Trace,
}

impl LogLevel {
    fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// Receives the native library's log lines; the Kotlin and Swift SDKs forward them to the
/// platform's log (Logcat, os.Logger). Called from Starling's own threads.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    /// One log line. Lines never contain event payloads.
    fn log(&self, level: LogLevel, target: String, message: String);
}

/// Where log lines go, and the most detailed level forwarded.
static LOG_SINK: std::sync::RwLock<Option<Arc<dyn LogSink>>> = std::sync::RwLock::new(None);

struct ForwardingLogger;

impl log::Log for ForwardingLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let sink = LOG_SINK.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(sink) = sink {
            let level = match record.level() {
                log::Level::Error => LogLevel::Error,
                log::Level::Warn => LogLevel::Warn,
                log::Level::Info => LogLevel::Info,
                log::Level::Debug => LogLevel::Debug,
                log::Level::Trace => LogLevel::Trace,
            };
            sink.log(level, record.target().to_owned(), record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Sends the native library's log lines at `max_level` and above to `sink`, replacing any sink
/// set before. Without a sink, nothing is logged.
#[uniffi::export]
pub fn set_log_sink(sink: Arc<dyn LogSink>, max_level: LogLevel) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // Fails only if the host process installed another `log` logger first; then that one
        // keeps receiving the lines.
        let _ = log::set_logger(&ForwardingLogger);
    });
    *LOG_SINK.write().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    log::set_max_level(max_level.filter());
}

/// Stops forwarding log lines.
#[uniffi::export]
pub fn clear_log_sink() {
    *LOG_SINK.write().unwrap_or_else(|p| p.into_inner()) = None;
    log::set_max_level(log::LevelFilter::Off);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(std::sync::Mutex<Vec<(LogLevel, String)>>);

    impl LogSink for Collect {
        fn log(&self, level: LogLevel, _target: String, message: String) {
            self.0.lock().unwrap().push((level, message));
        }
    }

    #[test]
    fn log_lines_reach_the_sink_at_or_above_its_level() {
        let sink = Arc::new(Collect(Default::default()));
        set_log_sink(sink.clone(), LogLevel::Warn);
        log::warn!("kept");
        log::info!("filtered out");
        clear_log_sink();
        log::warn!("after clearing");
        let lines = sink.0.lock().unwrap().clone();
        assert!(
            lines.contains(&(LogLevel::Warn, "kept".to_owned())),
            "{lines:?}"
        );
        assert!(!lines
            .iter()
            .any(|(_, m)| m == "filtered out" || m == "after clearing"));
    }

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let result: Result<(), StarlingError> = guard(|| panic!("boom"));
        assert_eq!(
            result,
            Err(StarlingError::Internal {
                reason: "internal error: boom".into()
            })
        );
    }

    #[test]
    fn core_errors_keep_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let starling = Starling::open(default_config(dir.path().display().to_string())).unwrap();
        let err = starling
            .track(TrackEvent {
                name: "Bad".into(),
                time_ms: None,
                properties: vec![],
            })
            .unwrap_err();
        assert!(matches!(err, StarlingError::NoConsent { .. }), "{err:?}");
        starling.set_consent(true).unwrap();
        let err = starling
            .track(TrackEvent {
                name: "e".into(),
                time_ms: None,
                properties: vec![Property {
                    key: "depth".into(),
                    value: PropertyValue::Real { value: f64::NAN },
                }],
            })
            .unwrap_err();
        match err {
            StarlingError::InvalidEvent { reason } => {
                assert!(reason.contains("not a finite number"))
            }
            other => panic!("{other:?}"),
        }
        starling.close().unwrap();
        assert!(matches!(
            starling.flush(),
            Err(StarlingError::Closed { .. })
        ));
    }
}
