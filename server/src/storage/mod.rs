//! The server's storage, behind one narrow interface so that another database can take the
//! place of the embedded SQLite one.

mod sqlite;

use std::collections::BTreeMap;

use serde::Serialize;
use starling_proto::batch::WireEvent;
use starling_proto::v1::LossCount;

pub use sqlite::SqliteStorage;

/// A validated batch, ready to store.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    /// The app the API key belongs to.
    pub app: String,
    /// The batch's 16-byte id.
    pub batch_id: Vec<u8>,
    /// The device's pseudonymous id.
    pub device_id: String,
    /// Per-device batch sequence number.
    pub sequence: u64,
    /// SDK version that sealed it.
    pub sdk_version: String,
    /// The app's event schema version.
    pub schema_version: u32,
    /// The decoded events.
    pub events: Vec<WireEvent>,
    /// Losses the device reported with this batch.
    pub losses: Vec<LossCount>,
    /// Server time of receipt, Unix epoch ms.
    pub received_ms: i64,
}

/// What storing one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Events newly stored.
    pub accepted_events: u32,
    /// The batch id had been stored before; nothing was stored this time.
    pub duplicate: bool,
}

/// An event as stored on the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    /// Per-device event sequence number.
    pub seq: u64,
    /// Event name.
    pub name: String,
    /// Event time, Unix epoch ms.
    pub time_ms: i64,
    /// Properties as a JSON object.
    pub properties: serde_json::Value,
}

/// An event of one bandit (its `bandit` property), with the device that sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct BanditEvent {
    /// The device's pseudonymous id.
    pub device_id: String,
    /// Per-device event sequence number.
    pub seq: u64,
    /// Event time, Unix epoch ms.
    pub time_ms: i64,
    /// Properties as a JSON object.
    pub properties: serde_json::Value,
}

/// Totals for `GET /v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Distinct device ids seen.
    pub devices: u64,
    /// Batches stored.
    pub batches: u64,
    /// Events stored.
    pub events: u64,
    /// Replayed batches acknowledged without storing.
    pub duplicate_batches: u64,
    /// Events skipped because an event with the same device id and sequence number was stored.
    pub duplicate_events: u64,
    /// Events stored, by name.
    pub events_by_name: BTreeMap<String, u64>,
    /// Events that devices reported lost before sending, by reason.
    pub device_losses: BTreeMap<String, u64>,
}

/// A private report as stored: its keys, and the encoded `PrivateReport`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPrivateReport {
    /// The device's random release id; stored once.
    pub release_id: String,
    /// The report's name.
    pub report: String,
    /// The UTC day it covers.
    pub day: i64,
    /// The encoded `PrivateReport`.
    pub body: Vec<u8>,
}

/// Errors from a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The SQLite backend failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be used.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything the server needs from a database.
pub trait Storage: Send + 'static {
    /// Stores several batches in one transaction, skipping batch ids seen before and events
    /// whose (app, device id, sequence number) is already stored. Returns one outcome per batch.
    fn ingest(&mut self, batches: &[IngestBatch]) -> Result<Vec<IngestOutcome>, StorageError>;
    /// The app that owns an API key, given the key's SHA-256 hash in hex.
    fn app_for_key_hash(&mut self, key_hash: &str) -> Result<Option<String>, StorageError>;
    /// Registers an API key hash for an app.
    fn add_api_key(&mut self, app: &str, key_hash: &str) -> Result<(), StorageError>;
    /// Totals across all apps.
    fn stats(&mut self) -> Result<Stats, StorageError>;
    /// Every stored event of one device, by sequence number.
    fn device_events(
        &mut self,
        app: &str,
        device_id: &str,
    ) -> Result<Vec<StoredEvent>, StorageError>;
    /// Every stored event of one app named `name` whose `bandit` property is `bandit`, with
    /// time in `[since_ms, until_ms)`, ordered by device and sequence number.
    fn bandit_events(
        &mut self,
        app: &str,
        name: &str,
        bandit: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<BanditEvent>, StorageError>;
    /// Stores private reports of one app in one transaction, skipping release ids stored
    /// before. Returns how many were new.
    fn store_private_reports(
        &mut self,
        app: &str,
        reports: &[StoredPrivateReport],
        received_ms: i64,
    ) -> Result<u32, StorageError>;
    /// The encoded private reports of one app, report and day.
    fn private_reports(
        &mut self,
        app: &str,
        report: &str,
        day: i64,
    ) -> Result<Vec<Vec<u8>>, StorageError>;
    /// The encoded private reports of one app and report, every day, with their days.
    fn private_reports_all_days(
        &mut self,
        app: &str,
        report: &str,
    ) -> Result<Vec<(i64, Vec<u8>)>, StorageError>;
}
