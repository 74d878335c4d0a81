//! HTTP upload of sealed batches with ureq, and the classification of every answer into
//! delivered, rejected for good, or worth retrying.

use std::time::Duration;

use super::backoff::parse_retry_after;
use crate::config::Clock;
use crate::error::{Error, Result};
use crate::Config;

/// Path of the ingest endpoint under the server URL.
pub(crate) const EVENTS_PATH: &str = "/v1/events";

/// What became of one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UploadOutcome {
    /// 2xx: the server has the batch (stored now, or recognised as a replay).
    Delivered,
    /// The server refuses this batch's content (400, 413, 415, 422 and other 4xx not listed
    /// under `Retry`); sending the same bytes again cannot succeed.
    Rejected { status: u16 },
    /// The batch is fine but could not be delivered now: a network error, a timeout, 5xx, 408,
    /// 429, or a credentials or address problem (401, 403, 404) that a configuration change
    /// will fix. `retry_after_ms` is the server's `Retry-After`, if it sent one.
    Retry {
        reason: String,
        retry_after_ms: Option<u64>,
    },
}

pub(crate) struct Transport {
    agent: ureq::Agent,
    /// The server URL without a trailing slash.
    base: String,
    url: String,
    authorization: String,
    clock: Clock,
}

impl Transport {
    pub(crate) fn new(config: &Config) -> Result<Option<Transport>> {
        let Some(base) = &config.server_url else {
            return Ok(None);
        };
        let timeout = Duration::from_millis(config.upload_timeout_ms);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Statuses are classified here, not turned into errors by ureq.
            .http_status_as_error(false)
            .user_agent(format!("starling/{}", crate::SDK_VERSION))
            .build()
            .into();
        if config.api_key.is_empty() {
            return Err(Error::Config("a server URL needs an api_key".into()));
        }
        let base = base.trim_end_matches('/').to_owned();
        Ok(Some(Transport {
            agent,
            url: format!("{base}{EVENTS_PATH}"),
            base,
            authorization: format!("Bearer {}", config.api_key),
            clock: config.clock.clone(),
        }))
    }

    /// Sends one gzip'd batch and classifies the answer.
    pub(crate) fn upload(&self, payload: &[u8]) -> UploadOutcome {
        let result = self
            .agent
            .post(&self.url)
            .header("content-type", starling_proto::CONTENT_TYPE_PROTOBUF)
            .header("content-encoding", "gzip")
            .header("authorization", &self.authorization)
            .send(payload);
        self.outcome(result)
    }

    /// Classifies the answer to an upload: the status, and the server's `Retry-After`.
    fn outcome(
        &self,
        result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> UploadOutcome {
        let mut response = match result {
            Ok(response) => response,
            Err(e) => {
                log::debug!("starling: upload failed: {e}");
                return UploadOutcome::Retry {
                    reason: format!("network: {e}"),
                    retry_after_ms: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after_ms = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.clock.now_ms()));
        // Read the (small) answer so the connection can be reused.
        let _ = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec();
        classify(status, retry_after_ms)
    }
}

impl Transport {
    /// Downloads a protobuf resource at `path` under the server URL: `Ok(None)` when the server
    /// has none (404), an error with the reason for anything else that is not a 2xx.
    pub(crate) fn get(&self, path: &str) -> std::result::Result<Option<Vec<u8>>, String> {
        match self.get_if_changed(path, None)? {
            Fetched::Body(body) => Ok(Some(body)),
            Fetched::Missing | Fetched::NotModified => Ok(None),
        }
    }

    /// Like [`Transport::get`], but sends `If-None-Match: version` when one is given.
    pub(crate) fn get_if_changed(
        &self,
        path: &str,
        version: Option<&str>,
    ) -> std::result::Result<Fetched, String> {
        let mut request = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("accept", starling_proto::CONTENT_TYPE_PROTOBUF)
            .header("authorization", &self.authorization);
        if let Some(version) = version {
            request = request.header("if-none-match", format!("\"{version}\""));
        }
        let mut response = request.call().map_err(|e| format!("network: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| format!("reading the answer: {e}"))?;
        match status {
            200..=299 => Ok(Fetched::Body(body)),
            304 => Ok(Fetched::NotModified),
            404 => Ok(Fetched::Missing),
            _ => Err(format!("server answered {status}")),
        }
    }
}

impl Transport {
    /// Posts a protobuf `body` to `path` under the server URL and returns the status and the
    /// answer's body; an error with the reason when no answer came.
    pub(crate) fn exchange(
        &self,
        path: &str,
        body: &[u8],
    ) -> std::result::Result<(u16, Vec<u8>), String> {
        let mut response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", starling_proto::CONTENT_TYPE_PROTOBUF)
            .header("accept", starling_proto::CONTENT_TYPE_PROTOBUF)
            .header("authorization", &self.authorization)
            .send(body)
            .map_err(|e| format!("network: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok((status, body))
    }

    /// Sends a protobuf body to `path` under the server URL and classifies the answer like an
    /// upload of events.
    pub(crate) fn post(&self, path: &str, body: &[u8]) -> UploadOutcome {
        let result = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", starling_proto::CONTENT_TYPE_PROTOBUF)
            .header("authorization", &self.authorization)
            .send(body);
        self.outcome(result)
    }
}

/// What a conditional download found.
pub(crate) enum Fetched {
    /// The resource, new or changed.
    Body(Vec<u8>),
    /// Unchanged since the version the device has.
    NotModified,
    /// The server has none.
    Missing,
}

fn classify(status: u16, retry_after_ms: Option<u64>) -> UploadOutcome {
    match status {
        200..=299 => UploadOutcome::Delivered,
        401 | 403 | 404 | 408 | 429 | 500..=599 => UploadOutcome::Retry {
            reason: format!("server answered {status}"),
            retry_after_ms,
        },
        400..=499 => UploadOutcome::Rejected { status },
        // 1xx and 3xx are not expected from the ingest endpoint; treat them as a passing fault.
        _ => UploadOutcome::Retry {
            reason: format!("unexpected status {status}"),
            retry_after_ms,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(200, None), UploadOutcome::Delivered);
        assert_eq!(classify(204, None), UploadOutcome::Delivered);
        for status in [400, 413, 415, 422] {
            assert_eq!(classify(status, None), UploadOutcome::Rejected { status });
        }
        for status in [401, 403, 404, 408, 429, 500, 503] {
            assert!(
                matches!(
                    classify(status, Some(5)),
                    UploadOutcome::Retry {
                        retry_after_ms: Some(5),
                        ..
                    }
                ),
                "{status}"
            );
        }
    }
}
