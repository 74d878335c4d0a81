//! Private reports on the server: devices post reports they noised themselves, and the server
//! publishes fleet estimates once enough devices contributed.
//!
//! * `POST /v1/private-reports`: a protobuf `PrivateReportUpload`. Each report is stored once
//!   per release id, so a resend is harmless.
//! * `GET /v1/private-reports/{report}?day=N`: a protobuf `PrivateEstimate`, or JSON when the
//!   request's `Accept` header asks for `application/json`. Refused with 404
//!   `too_few_devices` while fewer than `ServerConfig::private_min_devices` contributed.

pub mod estimate;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde::Deserialize;
use starling_proto::v1::{PrivateReport, PrivateReportUpload};
use starling_proto::CONTENT_TYPE_PROTOBUF;

use crate::bandits::{authenticate, finish, wants_json, BanditApiError};
use crate::storage::StoredPrivateReport;
use crate::AppState;

/// Most reports in one upload.
const MAX_REPORTS_PER_UPLOAD: usize = 1000;

pub(crate) async fn upload_route(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = match upload(&state, &headers, body).await {
        Ok(stored) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "stored": stored })),
        )
            .into_response(),
        Err(e) => e.render(wants_json(&headers)),
    };
    finish(&state, "/v1/private-reports", response)
}

async fn upload(state: &AppState, headers: &HeaderMap, body: Body) -> Result<u32, BanditApiError> {
    let app = authenticate(state, headers).await?;
    let limit = state.config.max_body_bytes;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        BanditApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {limit} bytes"),
        )
    })?;
    let bad = |why: String| BanditApiError::new(StatusCode::BAD_REQUEST, "invalid_report", why);
    let upload = PrivateReportUpload::decode(body)
        .map_err(|e| bad(format!("the body is not a PrivateReportUpload: {e}")))?;
    if upload.reports.len() > MAX_REPORTS_PER_UPLOAD {
        return Err(bad(format!(
            "at most {MAX_REPORTS_PER_UPLOAD} reports per upload"
        )));
    }
    let mut rows = Vec::with_capacity(upload.reports.len());
    for report in upload.reports {
        estimate::check(&report).map_err(|why| bad(format!("{}: {why}", report.release_id)))?;
        rows.push(StoredPrivateReport {
            release_id: report.release_id.clone(),
            report: report.report.clone(),
            day: report.day,
            body: report.encode_to_vec(),
        });
    }
    let received_ms = crate::now_ms();
    state
        .storage
        .query(move |s| s.store_private_reports(&app, &rows, received_ms))
        .await
        .map_err(|e| BanditApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e))
}

/// The query of `GET /v1/private-reports/{report}`.
#[derive(Debug, Deserialize)]
pub(crate) struct DayQuery {
    /// UTC day, days since the Unix epoch.
    day: i64,
}

pub(crate) async fn estimate_route(
    State(state): State<AppState>,
    Path(report): Path<String>,
    Query(query): Query<DayQuery>,
    headers: HeaderMap,
) -> Response {
    let json = wants_json(&headers);
    let response = match estimate_handler(&state, report, query.day, &headers).await {
        Ok(estimate) if json => (StatusCode::OK, axum::Json(estimate)).into_response(),
        Ok(estimate) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, CONTENT_TYPE_PROTOBUF)],
            estimate.encode_to_vec(),
        )
            .into_response(),
        Err(e) => e.render(json),
    };
    finish(&state, "/v1/private-reports/{report}", response)
}

async fn estimate_handler(
    state: &AppState,
    report: String,
    day: i64,
    headers: &HeaderMap,
) -> Result<starling_proto::v1::PrivateEstimate, BanditApiError> {
    let app = authenticate(state, headers).await?;
    let name = report.clone();
    let bodies = state
        .storage
        .query(move |s| s.private_reports(&app, &name, day))
        .await
        .map_err(|e| BanditApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e))?;
    let reports: Vec<PrivateReport> = bodies
        .iter()
        .filter_map(|b| PrivateReport::decode(b.as_slice()).ok())
        .collect();
    // TODO: contributors are counted by release id, one per device, report and day; without
    // device attestation a device that resets its data can contribute twice to one day, which
    // lets it count double in the estimate and toward the minimum.
    let min = state.config.private_min_devices as usize;
    if reports.len() < min {
        return Err(BanditApiError::new(
            StatusCode::NOT_FOUND,
            "too_few_devices",
            format!(
                "{} devices reported {report:?} for day {day}; estimates are published from {min}",
                reports.len()
            ),
        ));
    }
    Ok(estimate::estimate(&report, day, &reports))
}
