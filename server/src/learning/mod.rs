//! Federated learning on the server: tasks an operator defines (`--learning-tasks`), rounds
//! (synchronous FedAvg with over-selection and deadlines, or buffered asynchronous
//! aggregation), server optimizers, central differential privacy with its zCDP cost recorded
//! per version, federated evaluation, and the routes devices use.
//!
//! * `GET /v1/learning/{task}/model`: the current [`ModelRelease`](starling_proto::v1::ModelRelease),
//!   with `ETag: "<version>.<round>"` and `If-None-Match` revalidation.
//! * `POST /v1/learning/{task}/checkin`: [`CheckIn`] in, [`CheckInAnswer`] out.
//! * `POST /v1/learning/{task}/updates`: [`ModelUpdate`] in, [`UpdateReceipt`] out, or an
//!   `ErrorResponse` with the reason (409 for a closed round, a stale version or a second
//!   update of a device in a round; 422 for a malformed update).
//! * `GET /v1/learning/{task}/history`: versions, their privacy cost and evaluation (JSON).

pub mod aggregate;
pub mod coordinator;
pub mod task;
mod validate;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use starling_proto::v1::{CheckIn, ModelUpdate, UpdateReceipt};
use starling_proto::CONTENT_TYPE_PROTOBUF;

use crate::bandits::{authenticate, finish, wants_json, BanditApiError};
use crate::AppState;
pub use coordinator::{Coordinator, History, Refusal, Submitted};
pub use task::{load as load_tasks, TaskDefinition};

fn storage(e: String) -> BanditApiError {
    BanditApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e)
}

fn no_task(task: &str) -> BanditApiError {
    BanditApiError::new(
        StatusCode::NOT_FOUND,
        "no_task",
        format!("no learning task {task:?} is defined"),
    )
}

fn protobuf(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE_PROTOBUF)],
        body,
    )
        .into_response()
}

/// `GET /v1/learning/{task}/model`.
pub(crate) async fn model_route(
    State(state): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
) -> Response {
    let json = wants_json(&headers);
    let response = match authenticate(&state, &headers).await {
        Err(e) => e.render(json),
        Ok(_app) => match state.learning.release(&task, crate::now_ms()) {
            Err(e) => storage(e).render(json),
            Ok(None) => no_task(&task).render(json),
            Ok(Some(release)) => {
                let etag = format!("\"{}.{}\"", release.version, release.round);
                let unchanged = headers
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
                if unchanged {
                    (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response()
                } else {
                    (
                        StatusCode::OK,
                        [
                            (header::ETAG, etag),
                            (header::CONTENT_TYPE, CONTENT_TYPE_PROTOBUF.to_owned()),
                        ],
                        release.encode_to_vec(),
                    )
                        .into_response()
                }
            }
        },
    };
    finish(&state, "/v1/learning/model", response)
}

/// `POST /v1/learning/{task}/checkin`.
pub(crate) async fn checkin_route(
    State(state): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = wants_json(&headers);
    let response = match authenticate(&state, &headers).await {
        Err(e) => e.render(json),
        Ok(_app) => match CheckIn::decode(body) {
            Err(e) => BanditApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string())
                .render(json),
            Ok(check_in) => match state.learning.check_in(&task, &check_in, crate::now_ms()) {
                Err(e) => storage(e).render(json),
                Ok(None) => no_task(&task).render(json),
                Ok(Some(answer)) => protobuf(StatusCode::OK, answer.encode_to_vec()),
            },
        },
    };
    finish(&state, "/v1/learning/checkin", response)
}

/// `POST /v1/learning/{task}/updates`.
pub(crate) async fn update_route(
    State(state): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = wants_json(&headers);
    let response = match authenticate(&state, &headers).await {
        Err(e) => e.render(json),
        Ok(_app) => match ModelUpdate::decode(body) {
            Err(e) => BanditApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string())
                .render(json),
            Ok(update) if update.task != task => BanditApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong_task",
                format!("the update is for task {:?}", update.task),
            )
            .render(json),
            Ok(update) => {
                let learning = state.learning.clone();
                // Aggregation (and its noise) runs off the async workers.
                let outcome = tokio::task::spawn_blocking(move || {
                    learning
                        .submit(&task, &update, crate::now_ms())
                        .map(|r| (task, r))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
                match outcome {
                    Err(e) => storage(e).render(json),
                    Ok((task, None)) => no_task(&task).render(json),
                    Ok((_, Some(Err(refusal)))) => {
                        log::debug!(
                            "learning update refused: {}: {}",
                            refusal.code,
                            refusal.message
                        );
                        BanditApiError::new(
                            StatusCode::from_u16(refusal.status)
                                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                            refusal.code,
                            refusal.message,
                        )
                        .render(json)
                    }
                    Ok((_, Some(Ok(submitted)))) => {
                        let receipt = match submitted {
                            Submitted::Accepted {
                                staleness_weight,
                                version,
                            } => UpdateReceipt {
                                status: if staleness_weight < 1.0 {
                                    "accepted_stale".into()
                                } else {
                                    "accepted".into()
                                },
                                staleness_weight,
                                model_version: version,
                            },
                            Submitted::Duplicate { version } => UpdateReceipt {
                                status: "duplicate".into(),
                                staleness_weight: 0.0,
                                model_version: version,
                            },
                        };
                        protobuf(StatusCode::OK, receipt.encode_to_vec())
                    }
                }
            }
        },
    };
    finish(&state, "/v1/learning/updates", response)
}

/// `GET /v1/learning/{task}/history`.
pub(crate) async fn history_route(
    State(state): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
) -> Response {
    let response = match authenticate(&state, &headers).await {
        Err(e) => e.render(true),
        Ok(_app) => match state.learning.history(&task, crate::now_ms()) {
            Err(e) => storage(e).render(true),
            Ok(None) => no_task(&task).render(true),
            Ok(Some(history)) => axum::Json(history).into_response(),
        },
    };
    finish(&state, "/v1/learning/history", response)
}
