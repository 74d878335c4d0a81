//! Starling's aggregation server: receives event batches from devices, deduplicates and stores
//! them, and reports what it holds.
//!
//! Run it with the `starling-server` binary (see `docs/server.md`), or embed it:
//!
//! ```no_run
//! use starling_server::{RunningServer, ServerConfig};
//!
//! let mut config = ServerConfig::new("/var/lib/starling");
//! config.api_keys.push(("demo-app".into(), "sk_demo".into()));
//! let server = RunningServer::start(config, "127.0.0.1:0".parse().unwrap())?;
//! println!("listening on {}", server.url());
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```
#![warn(missing_docs)]

pub mod auth;
pub mod bandits;
mod device_config;
pub mod faults;
mod ingest;
pub mod learning;
pub mod metrics;
pub mod privacy;
pub mod storage;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;

pub use faults::{Fault, Faults};
pub use storage::{BanditEvent, SqliteStorage, Stats, Storage, StoredEvent};
pub use worker::StorageHandle;

use ingest::ApiError;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Directory of the embedded database.
    pub data_dir: PathBuf,
    /// Largest accepted request body (compressed), in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Largest accepted body after decompression, in bytes. Default 8 MiB.
    pub max_decompressed_bytes: usize,
    /// API keys registered at start-up, as (app, key) pairs; stored hashed.
    pub api_keys: Vec<(String, String)>,
    /// Fewest distinct contributing devices before a bandit's fleet prior is published: fewer
    /// would let a prior reveal too much about one device, and say little. Default 5.
    pub prior_min_devices: u32,
    /// Signal and bandit definitions served to every app's devices at `GET /v1/config`, if any.
    pub device_config: Option<starling_proto::v1::DeviceConfig>,
    /// Federated learning tasks the server runs rounds for (`--learning-tasks`).
    pub learning_tasks: Vec<learning::TaskDefinition>,
    /// Fewest contributing devices before a private report's estimate is published. The noise
    /// already protects each device; the floor keeps estimates from being published while the
    /// noise dominates them and while a handful of devices could be singled out by context.
    /// Default 20.
    pub private_min_devices: u32,
}

impl ServerConfig {
    /// Defaults, storing under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            max_body_bytes: 1024 * 1024,
            max_decompressed_bytes: 8 * 1024 * 1024,
            api_keys: Vec::new(),
            prior_min_devices: 5,
            device_config: None,
            learning_tasks: Vec::new(),
            private_min_devices: 20,
        }
    }
}

/// State shared by every request.
#[derive(Clone)]
pub struct AppState {
    config: Arc<ServerConfig>,
    storage: StorageHandle,
    metrics: Arc<metrics::Metrics>,
    faults: Arc<Faults>,
    /// Known key hashes and their app, filled on first use of each key.
    keys: Arc<RwLock<HashMap<String, String>>>,
    /// Federated learning rounds.
    learning: Arc<learning::Coordinator>,
}

impl AppState {
    /// Opens the embedded storage and registers the configured API keys.
    pub fn open(
        config: ServerConfig,
    ) -> Result<AppState, Box<dyn std::error::Error + Send + Sync>> {
        let mut sqlite = SqliteStorage::open(&config.data_dir)?;
        for (app, key) in &config.api_keys {
            sqlite.add_api_key(app, &auth::hash_key(key))?;
        }
        let learning = learning::Coordinator::open(&config.data_dir, &config.learning_tasks)?;
        Ok(AppState {
            learning: Arc::new(learning),
            storage: StorageHandle::start(sqlite)?,
            config: Arc::new(config),
            metrics: Arc::new(metrics::Metrics::new()),
            faults: Arc::new(Faults::default()),
            keys: Arc::default(),
        })
    }

    /// The storage thread, for direct queries.
    pub fn storage(&self) -> &StorageHandle {
        &self.storage
    }

    /// Federated learning rounds, for direct queries.
    pub fn learning(&self) -> &Arc<learning::Coordinator> {
        &self.learning
    }

    /// The fault queue of the ingest route.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    async fn app_for_key(&self, key: &str) -> Result<Option<String>, ApiError> {
        let hash = auth::hash_key(key);
        if let Some(app) = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
        {
            return Ok(Some(app.clone()));
        }
        let lookup = hash.clone();
        let app = self
            .storage
            .query(move |s| s.app_for_key_hash(&lookup))
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e))?;
        if let Some(app) = &app {
            self.keys
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(hash, app.clone());
        }
        Ok(app)
    }
}

pub use device_config::load as load_device_config;

/// The HTTP routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/events", post(ingest::ingest))
        .route("/v1/stats", get(stats))
        .route(
            "/v1/bandits/{bandit}/evaluate",
            post(bandits::evaluate_route),
        )
        .route("/v1/bandits/{bandit}/prior", get(bandits::prior_route))
        .route("/v1/config", get(device_config::config_route))
        .route("/v1/learning/{task}/model", get(learning::model_route))
        .route("/v1/learning/{task}/checkin", post(learning::checkin_route))
        .route("/v1/learning/{task}/updates", post(learning::update_route))
        .route("/v1/learning/{task}/history", get(learning::history_route))
        .route("/v1/private-reports", post(privacy::upload_route))
        .route("/v1/private-reports/{report}", get(privacy::estimate_route))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    let ok = state.storage.query(|s| s.stats().map(drop)).await.is_ok();
    state
        .metrics
        .request("/healthz", if ok { 200 } else { 503 });
    if ok {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n").into_response()
    }
}

async fn stats(State(state): State<AppState>) -> Response {
    let response = match state.storage.query(|s| s.stats()).await {
        Ok(stats) => Json(stats).into_response(),
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e).into_response(),
    };
    state
        .metrics
        .request("/v1/stats", response.status().as_u16());
    response
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    state.metrics.request("/metrics", 200);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Serves `router(state)` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A server running on its own thread and runtime: for tests, benchmarks and the emulator.
/// Stops when dropped.
pub struct RunningServer {
    addr: SocketAddr,
    state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Opens the storage, binds `listen` (port 0 picks a free port) and starts serving.
    pub fn start(
        config: ServerConfig,
        listen: SocketAddr,
    ) -> Result<RunningServer, Box<dyn std::error::Error + Send + Sync>> {
        let state = AppState::open(config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(listen))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let thread = std::thread::Builder::new()
            .name("starling-server".into())
            .spawn(move || {
                let shutdown = async {
                    let _ = stopped.await;
                };
                if let Err(e) = runtime.block_on(serve(listener, serving, shutdown)) {
                    log::error!("server stopped: {e}");
                }
            })?;
        Ok(RunningServer {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's state: storage queries and fault injection.
    pub fn state(&self) -> &AppState {
        &self.state
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
