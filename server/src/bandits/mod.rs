//! Bandits on the server: off-policy evaluation of a policy an operator describes, from the
//! decisions devices logged, and fleet priors for new devices, from the arm statistics devices
//! contributed.
//!
//! Both read the raw events the ingest stores (`starling.decision` and `starling.arm_stats`,
//! scoped to the app of the API key) when asked; nothing is precomputed, so a result always
//! reflects every acknowledged event.
//!
//! * `POST /v1/bandits/{bandit}/evaluate`: JSON in and out (an operator's tool).
//! * `GET /v1/bandits/{bandit}/prior`: a protobuf [`BanditPrior`], or JSON when the request's
//!   `Accept` header asks for `application/json`.

pub mod evaluate;
pub mod prior;

use std::collections::{BTreeMap, HashSet};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde::Deserialize;
use starling_proto::v1::{BanditPrior, ErrorResponse};
use starling_proto::CONTENT_TYPE_PROTOBUF;

use crate::storage::BanditEvent;
use crate::AppState;
use evaluate::{LoggedDecision, TargetPolicy};

/// The name of the events devices log settled decisions in.
pub const DECISION_EVENT: &str = "starling.decision";

/// Longest accepted bandit name, in bytes (the devices' limit on property values is larger;
/// names are identifiers).
const MAX_BANDIT_NAME_BYTES: usize = 128;

/// An error answer, as JSON or as a protobuf `ErrorResponse`.
pub(crate) struct BanditApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl BanditApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        BanditApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn render(self, json: bool) -> Response {
        if json {
            let body = serde_json::json!({ "code": self.code, "message": self.message });
            (self.status, axum::Json(body)).into_response()
        } else {
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
}

fn storage_error(e: String) -> BanditApiError {
    BanditApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e)
}

pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<String, BanditApiError> {
    let unauthorized =
        |why: &str| BanditApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer)
        .ok_or_else(|| unauthorized("missing bearer token in the Authorization header"))?;
    match state.app_for_key(token).await {
        Ok(Some(app)) => Ok(app),
        Ok(None) => Err(unauthorized("unknown API key")),
        Err(_) => Err(storage_error("the key store is unavailable".into())),
    }
}

fn check_bandit_name(bandit: &str) -> Result<(), BanditApiError> {
    if bandit.is_empty() || bandit.len() > MAX_BANDIT_NAME_BYTES {
        return Err(BanditApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_bandit",
            format!("a bandit name is 1 to {MAX_BANDIT_NAME_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// Logs and counts one answer.
pub(crate) fn finish(state: &AppState, route: &str, response: Response) -> Response {
    let status = response.status();
    if status.is_server_error() {
        log::warn!("{route}: {}", status.as_u16());
    } else {
        log::debug!("{route}: {}", status.as_u16());
    }
    state.metrics.request(route, status.as_u16());
    response
}

/// The body of `POST /v1/bandits/{bandit}/evaluate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluateRequest {
    /// The policy to evaluate.
    policy: TargetPolicy,
    /// Only decisions made at or after this time, Unix epoch ms.
    since_ms: Option<i64>,
    /// Only decisions made before this time, Unix epoch ms.
    until_ms: Option<i64>,
}

pub(crate) async fn evaluate_route(
    State(state): State<AppState>,
    Path(bandit): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = match evaluate_handler(&state, bandit, &headers, body).await {
        Ok(response) => response,
        Err(e) => e.render(true),
    };
    finish(&state, "/v1/bandits/{bandit}/evaluate", response)
}

async fn evaluate_handler(
    state: &AppState,
    bandit: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, BanditApiError> {
    let app = authenticate(state, headers).await?;
    check_bandit_name(&bandit)?;
    let limit = state.config.max_body_bytes;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        BanditApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {limit} bytes"),
        )
    })?;
    let request: EvaluateRequest = serde_json::from_slice(&body).map_err(|e| {
        BanditApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the body is not a valid evaluation request: {e}"),
        )
    })?;
    let bad_policy = |e: evaluate::EvaluationError| {
        BanditApiError::new(StatusCode::BAD_REQUEST, "invalid_policy", e.to_string())
    };
    request.policy.validate().map_err(bad_policy)?;

    let since_ms = request.since_ms.unwrap_or(i64::MIN);
    let until_ms = request.until_ms.unwrap_or(i64::MAX);
    let query_bandit = bandit.clone();
    let events = state
        .storage
        .query(move |s| s.bandit_events(&app, DECISION_EVENT, &query_bandit, since_ms, until_ms))
        .await
        .map_err(storage_error)?;
    let (decisions, skipped) = decisions_from_events(&events);
    if decisions.is_empty() {
        return Err(BanditApiError::new(
            StatusCode::NOT_FOUND,
            "no_decisions",
            format!("no usable decisions logged for bandit {bandit:?} in this time range"),
        ));
    }

    let result = evaluate::evaluate(&decisions, &request.policy).map_err(|e| match e {
        evaluate::EvaluationError::TooFew(_) => BanditApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_few_decisions",
            e.to_string(),
        ),
        other => bad_policy(other),
    })?;
    let body = serde_json::json!({
        "bandit": bandit,
        "policy": request.policy,
        "decisions": result.n,
        "skipped": skipped,
        "confidence": 0.95,
        "intervals": { "ips": "central limit theorem", "snips": "delta method" },
        "ips": result.ips,
        "snips": result.snips,
        "effective_sample_size": result.effective_sample_size,
        "max_weight": result.max_weight,
        "matching": result.matching,
        "logged": result.logged,
    });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Reads logged decisions from stored events. A decision settled twice (the same device and
/// decision id) counts once. Returns the decisions and, by reason, the events skipped.
fn decisions_from_events(
    events: &[BanditEvent],
) -> (Vec<LoggedDecision>, BTreeMap<&'static str, u64>) {
    let mut seen = HashSet::new();
    let mut decisions = Vec::with_capacity(events.len());
    let mut skipped: BTreeMap<&'static str, u64> = BTreeMap::new();
    for event in events {
        match parse_decision(&event.properties) {
            Ok((id, decision)) => {
                if seen.insert((event.device_id.as_str(), id)) {
                    decisions.push(decision);
                } else {
                    *skipped.entry("duplicate_decision").or_default() += 1;
                }
            }
            Err(reason) => *skipped.entry(reason).or_default() += 1,
        }
    }
    (decisions, skipped)
}

/// One `starling.decision` event's properties; the error is a short reason, counted in the
/// answer's `skipped`.
fn parse_decision(p: &serde_json::Value) -> Result<(&str, LoggedDecision), &'static str> {
    let text = |key: &str| p.get(key).and_then(serde_json::Value::as_str);
    let id = text("decision").ok_or("missing_decision_id")?;
    let arm = text("arm").ok_or("missing_arm")?;
    let propensity = p
        .get("propensity")
        .and_then(serde_json::Value::as_f64)
        .ok_or("missing_propensity")?;
    if !(propensity > 0.0 && propensity <= 1.0) {
        return Err("propensity_out_of_range");
    }
    let reward = p
        .get("reward")
        .and_then(serde_json::Value::as_f64)
        .filter(|r| r.is_finite())
        .ok_or("missing_reward")?;
    let context = match text("context").ok_or("missing_context")?.trim() {
        "" => Vec::new(),
        list => list
            .split(',')
            .map(|x| x.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
            .collect::<Option<Vec<f64>>>()
            .ok_or("bad_context")?,
    };
    let arms: Vec<String> = text("arms")
        .ok_or("missing_arms")?
        .split(',')
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    if !arms.iter().any(|a| a == arm) {
        return Err("arm_not_among_arms");
    }
    Ok((
        id,
        LoggedDecision {
            context,
            arm: arm.to_owned(),
            propensity,
            reward,
            arms,
        },
    ))
}

pub(crate) async fn prior_route(
    State(state): State<AppState>,
    Path(bandit): Path<String>,
    headers: HeaderMap,
) -> Response {
    let json = wants_json(&headers);
    let response = match prior_handler(&state, bandit, &headers).await {
        Ok(prior) if json => (StatusCode::OK, axum::Json(prior_json(&prior))).into_response(),
        Ok(prior) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, CONTENT_TYPE_PROTOBUF)],
            prior.encode_to_vec(),
        )
            .into_response(),
        Err(e) => e.render(json),
    };
    finish(&state, "/v1/bandits/{bandit}/prior", response)
}

async fn prior_handler(
    state: &AppState,
    bandit: String,
    headers: &HeaderMap,
) -> Result<BanditPrior, BanditApiError> {
    let app = authenticate(state, headers).await?;
    check_bandit_name(&bandit)?;
    let query_bandit = bandit.clone();
    let app_of_private = app.clone();
    let events = state
        .storage
        .query(move |s| {
            s.bandit_events(
                &app,
                prior::ARM_STATS_EVENT,
                &query_bandit,
                i64::MIN,
                i64::MAX,
            )
        })
        .await
        .map_err(storage_error)?;
    let report = format!("{}{bandit}", prior::PRIVATE_REPORT_PREFIX);
    let bodies = state
        .storage
        .query(move |s| s.private_reports_all_days(&app_of_private, &report))
        .await
        .map_err(storage_error)?;
    let private: Vec<(i64, starling_proto::v1::NoisyArmStats)> = bodies
        .iter()
        .filter_map(|(day, body)| {
            match starling_proto::v1::PrivateReport::decode(body.as_slice())
                .ok()?
                .body?
            {
                starling_proto::v1::private_report::Body::ArmStats(stats) => Some((*day, stats)),
                _ => None,
            }
        })
        .collect();
    let aggregate = prior::aggregate(&bandit, &events, &private, crate::now_ms());
    if aggregate.malformed > 0 {
        log::debug!(
            "prior for a bandit: {} malformed arm statistics skipped",
            aggregate.malformed
        );
    }
    let minimum = state.config.prior_min_devices;
    if aggregate.prior.devices < minimum {
        return Err(BanditApiError::new(
            StatusCode::NOT_FOUND,
            "not_enough_devices",
            format!(
                "{} devices contributed to bandit {bandit:?}; a prior is published from {minimum}",
                aggregate.prior.devices
            ),
        ));
    }
    Ok(aggregate.prior)
}

fn prior_json(prior: &BanditPrior) -> serde_json::Value {
    let arms: Vec<serde_json::Value> = prior
        .arms
        .iter()
        .map(|a| {
            serde_json::json!({
                "arm": a.arm, "pulls": a.pulls, "mean": a.mean, "variance": a.variance
            })
        })
        .collect();
    serde_json::json!({
        "bandit": prior.bandit,
        "devices": prior.devices,
        "arms": arms,
        "contributions": prior.contributions,
        "noised_contributions": prior.noised_contributions,
        "computed_at_ms": prior.computed_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decision_events_are_read_checked_and_deduplicated() {
        let good = json!({"bandit": "feed", "decision": "d1", "arm": "b", "propensity": 0.25,
            "reward": 1.0, "outcome": "reported", "decided_ms": 1, "policy": "linucb",
            "context": "1, 0.5,-2", "arms": "a,b,c"});
        let event = |device: &str, properties: serde_json::Value| BanditEvent {
            device_id: device.into(),
            seq: 0,
            time_ms: 0,
            properties,
        };
        let mut zero = good.clone();
        zero["propensity"] = json!(0.0);
        let mut stranger = good.clone();
        stranger["arm"] = json!("z");
        let mut context = good.clone();
        context["context"] = json!("1,x");
        let mut free = good.clone();
        free["context"] = json!("");
        free["decision"] = json!("d2");
        let events = [
            event("dev1", good.clone()),
            event("dev1", good.clone()),
            event("dev2", good),
            event("dev1", zero),
            event("dev1", stranger),
            event("dev1", context),
            event("dev1", free),
        ];
        let (decisions, skipped) = decisions_from_events(&events);
        assert_eq!(decisions.len(), 3);
        assert_eq!(decisions[0].context, vec![1.0, 0.5, -2.0]);
        assert_eq!(decisions[0].arms, vec!["a", "b", "c"]);
        assert!(decisions[2].context.is_empty());
        assert_eq!(
            skipped,
            BTreeMap::from([
                ("duplicate_decision", 1),
                ("propensity_out_of_range", 1),
                ("arm_not_among_arms", 1),
                ("bad_context", 1)
            ])
        );
    }
}
