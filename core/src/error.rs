//! Errors: a small public [`Error`] with readable reasons, and the internal [`StorageError`]
//! that the storage layer raises and that is mapped onto it in one place.

use crate::capture::InvalidEvent;

/// Everything that can go wrong when calling Starling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event was rejected by validation and was not recorded.
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] InvalidEvent),
    /// Consent for recording or sending events has not been granted.
    #[error("consent has not been granted; nothing was recorded or sent")]
    NoConsent,
    /// The in-memory queue between the caller and the writer thread is full; the event was not
    /// recorded. This means events arrive faster than the device can store them.
    #[error("the event queue is full ({capacity} events); the event was not recorded")]
    QueueFull {
        /// The configured queue capacity, in events.
        capacity: usize,
    },
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The on-device store failed (for example a full disk). Events not yet flushed stay in
    /// memory and are retried.
    #[error("storage error: {0}")]
    Storage(String),
    /// The instance was closed, or its writer thread stopped.
    #[error("this Starling instance is closed")]
    Closed,
    /// A signal name was asked for that no [`SignalSpec`](crate::SignalSpec) in the
    /// configuration defines.
    #[error("no signal called {0:?} is defined")]
    UnknownSignal(String),
    /// A bandit name was passed that no [`BanditSpec`](crate::bandit::BanditSpec) in the
    /// configuration defines.
    #[error("no bandit called {0:?} is defined")]
    UnknownBandit(String),
    /// A decision id that this SDK did not make was passed to `reward`.
    #[error("{0:?} is not a decision id made by Starling")]
    UnknownDecision(String),
    /// A bandit refused a context or a reward; the reason says which and why.
    #[error("{0}")]
    Bandit(String),
    /// Federated learning refused a call: an unknown task, a bad example or label, or a model
    /// this SDK cannot use; the reason says which.
    #[error("learning: {0}")]
    Learning(String),
    /// `sync` was called but no server URL is configured.
    #[error("no server URL is configured, so there is nothing to sync with")]
    NoServer,
    /// A private release could not be built (bad parameters, or the mechanism failed); nothing
    /// was charged or sent.
    #[error("private release: {0}")]
    Privacy(String),
    /// A private release would exceed a privacy budget; it was refused and nothing was sent.
    #[error("privacy budget exceeded: {0}")]
    BudgetExceeded(String),
}

/// Errors inside the storage layer, before they are reported to the app.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StorageError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
    #[error("database schema version {found} is newer than this SDK supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("database integrity check failed: {0}")]
    Integrity(String),
}

impl StorageError {
    /// True when the database file itself is damaged or unreadable, so that the only way forward
    /// is to move it aside and start a new one.
    pub(crate) fn is_corruption(&self) -> bool {
        match self {
            StorageError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ),
            StorageError::SchemaTooNew { .. } | StorageError::Integrity(_) => true,
            _ => false,
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Storage(e.to_string())
    }
}

/// Result with Starling's public error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
