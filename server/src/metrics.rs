//! Prometheus metrics for `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route, for example `/v1/events`.
    pub route: String,
    /// The HTTP status code answered.
    pub status: u16,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Events newly stored.
    pub events_ingested: Counter,
    /// Batches acknowledged as replays.
    pub duplicate_batches: Counter,
    /// Compressed request bytes received on the ingest route.
    pub bytes_received: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("starling");
        let requests = Family::<RequestLabels, Counter>::default();
        let events_ingested = Counter::default();
        let duplicate_batches = Counter::default();
        let bytes_received = Counter::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "events_ingested",
            "Events newly stored",
            events_ingested.clone(),
        );
        registry.register(
            "duplicate_batches",
            "Replayed batches acknowledged without storing",
            duplicate_batches.clone(),
        );
        registry.register(
            "ingest_bytes_received",
            "Compressed bytes received on the ingest route",
            bytes_received.clone(),
        );
        Metrics {
            registry,
            requests,
            events_ingested,
            duplicate_batches,
            bytes_received,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            log::warn!("metrics encoding failed: {e}");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
