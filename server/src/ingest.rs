//! `POST /v1/events`: authentication, size limits, decompression, decoding and validation of
//! an event batch, then storage.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flate2::read::GzDecoder;
use prost::Message;
use starling_proto::batch::decode_events;
use starling_proto::v1::{ErrorResponse, EventBatch, IngestResponse};
use starling_proto::CONTENT_TYPE_PROTOBUF;

use crate::faults::Fault;
use crate::storage::IngestBatch;
use crate::AppState;

/// Longest accepted device id, in bytes.
const MAX_DEVICE_ID_BYTES: usize = 64;
/// Most events in one batch; devices send 500 by default.
const MAX_EVENTS_PER_BATCH: usize = 10_000;

/// An error answer: status plus a protobuf `ErrorResponse`.
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            code: self.code.to_owned(),
            message: self.message,
        }
        .encode_to_vec();
        (
            self.status,
            [(header::CONTENT_TYPE, CONTENT_TYPE_PROTOBUF)],
            body,
        )
            .into_response()
    }
}

pub(crate) async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = match handle(&state, &headers, body).await {
        Ok(response) => response,
        Err(e) => {
            if e.status.is_server_error() {
                log::warn!("POST /v1/events: {} {}", e.status.as_u16(), e.message);
            } else {
                log::debug!("POST /v1/events: {} {}", e.status.as_u16(), e.message);
            }
            e.into_response()
        }
    };
    state
        .metrics
        .request("/v1/events", response.status().as_u16());
    response
}

async fn handle(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    match state.faults.next() {
        Some(Fault::Status {
            status,
            retry_after_s,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut response =
                ApiError::new(status, "injected_fault", "fault injected for testing")
                    .into_response();
            if let Some(seconds) = retry_after_s {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.into());
            }
            return Ok(response);
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }

    let app = authenticate(state, headers).await?;
    let compressed = read_body(state, headers, body).await?;
    state.metrics.bytes_received.inc_by(compressed.len() as u64);
    let raw = decompress(headers, &compressed, state.config.max_decompressed_bytes)?;
    let batch = parse(app, &raw)?;
    let events = batch.events.len();

    let outcome = state
        .storage
        .ingest(batch)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e))?;
    if outcome.duplicate {
        state.metrics.duplicate_batches.inc();
    }
    state
        .metrics
        .events_ingested
        .inc_by(u64::from(outcome.accepted_events));
    log::debug!(
        "POST /v1/events: 200, {events} events, {} new{}",
        outcome.accepted_events,
        if outcome.duplicate {
            ", replayed batch"
        } else {
            ""
        }
    );
    let body = IngestResponse {
        accepted_events: outcome.accepted_events,
        duplicate: outcome.duplicate,
    }
    .encode_to_vec();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE_PROTOBUF)],
        body,
    )
        .into_response())
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let unauthorized = |why: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer)
        .ok_or_else(|| unauthorized("missing bearer token in the Authorization header"))?;
    state
        .app_for_key(token)
        .await?
        .ok_or_else(|| unauthorized("unknown API key"))
}

async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

fn decompress(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match encoding {
        "identity" => Ok(body.to_vec()),
        "gzip" => {
            // Read at most one byte past the limit: a gzip bomb costs `limit` bytes of memory,
            // never more.
            let mut out = Vec::new();
            GzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_gzip",
                        format!("the body is not valid gzip: {e}"),
                    )
                })?;
            if out.len() > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "decompressed_too_large",
                    format!("the decompressed body exceeds {limit} bytes"),
                ));
            }
            Ok(out)
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("content-encoding {other:?} is not supported; use gzip"),
        )),
    }
}

fn parse(app: String, raw: &[u8]) -> Result<IngestBatch, ApiError> {
    let bad =
        |code: &'static str, message: String| ApiError::new(StatusCode::BAD_REQUEST, code, message);
    let batch = EventBatch::decode(raw).map_err(|e| {
        bad(
            "malformed_protobuf",
            format!("the body is not an EventBatch: {e}"),
        )
    })?;
    if batch.batch_id.len() != 16 {
        return Err(bad(
            "invalid_batch",
            format!("batch_id must be 16 bytes, got {}", batch.batch_id.len()),
        ));
    }
    if batch.device_id.is_empty() || batch.device_id.len() > MAX_DEVICE_ID_BYTES {
        return Err(bad(
            "invalid_batch",
            format!("device_id must be 1 to {MAX_DEVICE_ID_BYTES} bytes"),
        ));
    }
    if batch.names.len() > MAX_EVENTS_PER_BATCH {
        return Err(bad(
            "invalid_batch",
            format!("a batch may hold at most {MAX_EVENTS_PER_BATCH} events"),
        ));
    }
    let events = decode_events(&batch).map_err(|e| bad("invalid_batch", e.to_string()))?;
    Ok(IngestBatch {
        app,
        batch_id: batch.batch_id,
        device_id: batch.device_id,
        sequence: batch.sequence,
        sdk_version: batch.sdk_version,
        schema_version: batch.schema_version,
        events,
        losses: batch.losses,
        received_ms: crate::now_ms(),
    })
}
