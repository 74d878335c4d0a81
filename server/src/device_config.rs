//! `GET /v1/config`: the signal and bandit definitions an operator serves to devices, so that a
//! new signal or bandit reaches the fleet without a new app version. Devices revalidate with
//! `If-None-Match` and apply what changed the next time the app opens Starling.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use sha2::{Digest, Sha256};
use starling_proto::v1::DeviceConfig;
use starling_proto::CONTENT_TYPE_PROTOBUF;

use crate::bandits::{authenticate, finish, wants_json, BanditApiError};
use crate::AppState;

/// Reads an operator's configuration file (JSON, the wire messages' field names). A missing
/// `version` is filled with a digest of the content, so devices revalidate correctly.
pub fn load(path: &std::path::Path) -> Result<DeviceConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut config: DeviceConfig =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if config.version.is_empty() {
        config.version = hex::encode(&Sha256::digest(config.encode_to_vec())[..8]);
    }
    Ok(config)
}

pub(crate) async fn config_route(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let json = wants_json(&headers);
    let response = match authenticate(&state, &headers).await {
        Err(e) => e.render(json),
        Ok(_app) => match &state.config.device_config {
            None => BanditApiError::new(
                StatusCode::NOT_FOUND,
                "no_device_config",
                "this server serves no device configuration",
            )
            .render(json),
            Some(config) => {
                let etag = format!("\"{}\"", config.version);
                let unchanged = headers
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
                if unchanged {
                    (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response()
                } else if json {
                    (
                        StatusCode::OK,
                        [(header::ETAG, etag)],
                        axum::Json(config.clone()),
                    )
                        .into_response()
                } else {
                    (
                        StatusCode::OK,
                        [
                            (header::ETAG, etag),
                            (header::CONTENT_TYPE, CONTENT_TYPE_PROTOBUF.to_owned()),
                        ],
                        config.encode_to_vec(),
                    )
                        .into_response()
                }
            }
        },
    };
    finish(&state, "/v1/config", response)
}
