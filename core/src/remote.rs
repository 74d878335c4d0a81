//! Definitions from the server: signals and bandits an operator declares without shipping a
//! new app version.
//!
//! `sync` downloads the server's [`DeviceConfig`] (`GET /v1/config`, revalidated with its
//! version) and stores it; the next [`Starling::open`](crate::Starling::open) adds its
//! definitions to the app's. The app's own definitions win on a name clash, and a server
//! definition that is not valid on this SDK is skipped with a log line, never failing `open`:
//! the server cannot break an app.

use starling_proto::v1::{
    bandit_definition::Policy, signal_definition::Kind, BanditDefinition, DeviceConfig,
    SignalDefinition,
};

use crate::bandit::{BanditSpec, PolicyKind, RewardEvent};
use crate::capture::Value;
use crate::signals::{PropertyFilter, SessionMeasure, SignalKind, SignalSpec};
use crate::Config;

/// Key in `meta` of the last downloaded configuration (protobuf, hex-encoded).
pub(crate) const META_KEY: &str = "remote_config";
/// Path of the configuration endpoint under the server URL.
pub(crate) const PATH: &str = "/v1/config";

/// Adds the server's definitions to `config`, skipping clashes and invalid ones. Returns the
/// names of the definitions added.
pub(crate) fn merge(config: &mut Config, remote: &DeviceConfig) -> Vec<String> {
    let mut added = Vec::new();
    for definition in &remote.signals {
        if config.signals.iter().any(|s| s.name == definition.name) {
            continue;
        }
        match signal(definition) {
            Ok(spec) => {
                let mut candidate = config.clone();
                candidate.signals.push(spec.clone());
                match candidate.validate() {
                    Ok(()) => {
                        added.push(spec.name.clone());
                        config.signals.push(spec);
                    }
                    Err(e) => log::warn!("starling: server signal skipped: {e}"),
                }
            }
            Err(why) => log::warn!(
                "starling: server signal {:?} skipped: {why}",
                definition.name
            ),
        }
    }
    for definition in &remote.bandits {
        if config.bandits.iter().any(|b| b.name == definition.name) {
            continue;
        }
        match bandit(definition) {
            Ok(spec) => {
                let mut candidate = config.clone();
                candidate.bandits.push(spec.clone());
                match candidate.validate() {
                    Ok(()) => {
                        added.push(spec.name.clone());
                        config.bandits.push(spec);
                    }
                    Err(e) => log::warn!("starling: server bandit skipped: {e}"),
                }
            }
            Err(why) => log::warn!(
                "starling: server bandit {:?} skipped: {why}",
                definition.name
            ),
        }
    }
    added
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn signal(d: &SignalDefinition) -> Result<SignalSpec, String> {
    let kind = match d.kind.as_ref().ok_or("it has no kind")? {
        Kind::WindowedCount(w) => SignalKind::WindowedCount {
            event: w.event.clone(),
            filter: non_empty(&w.filter_key).map(|key| PropertyFilter {
                key,
                value: Value::String(w.filter_value.clone()),
            }),
            window_ms: w.window_ms,
            granularity_ms: (w.granularity_ms > 0).then_some(w.granularity_ms),
        },
        Kind::MovingAverage(m) => SignalKind::Ema {
            event: m.event.clone(),
            property: non_empty(&m.property),
            half_life_ms: m.half_life_ms,
        },
        Kind::Session(s) => SignalKind::Session {
            event: non_empty(&s.event),
            timeout_ms: s.timeout_ms,
            max_length_ms: s.max_length_ms,
            measure: match s.measure.as_str() {
                "" | "count" => SessionMeasure::Count,
                "current_length_ms" => SessionMeasure::CurrentLengthMs,
                "current_events" => SessionMeasure::CurrentEvents,
                other => return Err(format!("unknown session measure {other:?}")),
            },
        },
        Kind::Surge(s) => SignalKind::Surge {
            event: s.event.clone(),
            bucket_ms: s.bucket_ms,
            baseline_half_life_buckets: s.baseline_half_life_buckets,
            warmup_buckets: s.warmup_buckets,
            threshold_z: s.threshold_z,
        },
        Kind::DistinctCount(c) => SignalKind::DistinctCount {
            event: c.event.clone(),
            property: c.property.clone(),
        },
        Kind::HeavyHitters(h) => SignalKind::HeavyHitters {
            event: h.event.clone(),
            property: h.property.clone(),
            k: h.k as usize,
        },
    };
    Ok(SignalSpec::new(d.name.clone(), kind))
}

fn bandit(d: &BanditDefinition) -> Result<BanditSpec, String> {
    let policy = match d.policy.as_ref().ok_or("it has no policy")? {
        Policy::EpsilonGreedy(p) => PolicyKind::EpsilonGreedy { epsilon: p.epsilon },
        Policy::Ucb1(p) => PolicyKind::Ucb1 {
            exploration: p.exploration,
        },
        Policy::ThompsonBeta(p) => PolicyKind::ThompsonBeta {
            prior_alpha: p.prior_alpha,
            prior_beta: p.prior_beta,
        },
        Policy::ThompsonGaussian(p) => PolicyKind::ThompsonGaussian {
            prior_mean: p.prior_mean,
            prior_variance: p.prior_variance,
            noise_variance: p.noise_variance,
        },
        Policy::LinUcb(p) => PolicyKind::LinUcb {
            dims: p.dims as usize,
            alpha: p.alpha,
            ridge: p.ridge,
        },
    };
    let mut spec = BanditSpec::new(d.name.clone(), policy, &[]);
    spec.arms = d.arms.clone();
    if d.discount != 0.0 {
        spec.discount = d.discount;
    }
    spec.context_signals = d.context_signals.clone();
    spec.reward_event = non_empty(&d.reward_event).map(|event| RewardEvent {
        event,
        value_property: non_empty(&d.reward_property),
    });
    if d.attribution_window_ms != 0 {
        spec.attribution_window_ms = d.attribution_window_ms;
    }
    spec.share_statistics = d.share_statistics;
    spec.use_fleet_prior = d.use_fleet_prior;
    if d.max_prior_pulls != 0.0 {
        spec.max_prior_pulls = d.max_prior_pulls;
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::v1::{Session, ThompsonBeta, WindowedCount};

    fn remote() -> DeviceConfig {
        DeviceConfig {
            version: "v1".into(),
            signals: vec![
                SignalDefinition {
                    name: "views_1h".into(),
                    kind: Some(Kind::WindowedCount(WindowedCount {
                        event: "screen_view".into(),
                        window_ms: 3_600_000,
                        ..Default::default()
                    })),
                },
                SignalDefinition {
                    name: "bad_session".into(),
                    kind: Some(Kind::Session(Session {
                        measure: "sideways".into(),
                        timeout_ms: 1,
                        max_length_ms: 2,
                        ..Default::default()
                    })),
                },
                SignalDefinition {
                    name: "zero_window".into(),
                    kind: Some(Kind::WindowedCount(WindowedCount {
                        event: "x".into(),
                        ..Default::default()
                    })),
                },
                SignalDefinition {
                    name: "mine".into(),
                    kind: None,
                },
            ],
            bandits: vec![
                BanditDefinition {
                    name: "layout".into(),
                    policy: Some(Policy::ThompsonBeta(ThompsonBeta {
                        prior_alpha: 1.0,
                        prior_beta: 1.0,
                    })),
                    arms: vec!["a".into(), "b".into()],
                    reward_event: "click".into(),
                    context_signals: vec!["views_1h".into()],
                    ..Default::default()
                },
                BanditDefinition {
                    name: "no_arms".into(),
                    policy: Some(Policy::ThompsonBeta(ThompsonBeta {
                        prior_alpha: 1.0,
                        prior_beta: 1.0,
                    })),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn valid_server_definitions_are_added_and_the_rest_skipped() {
        let mut config = Config::new("/tmp/unused");
        config
            .signals
            .push(SignalSpec::windowed_count("mine", "click", 60_000));
        let added = merge(&mut config, &remote());
        assert_eq!(added, ["views_1h", "layout"]);
        assert_eq!(config.signals.len(), 2);
        assert_eq!(
            config.signals[0].kind,
            SignalKind::WindowedCount {
                event: "click".into(),
                filter: None,
                window_ms: 60_000,
                granularity_ms: None
            },
            "the app's own definition is kept"
        );
        let layout = &config.bandits[0];
        assert_eq!(layout.discount, 1.0);
        assert_eq!(
            layout.attribution_window_ms,
            crate::bandit::DEFAULT_ATTRIBUTION_WINDOW_MS
        );
        assert_eq!(layout.reward_event.as_ref().unwrap().event, "click");
        assert!(config.validate().is_ok());
    }

    #[test]
    fn the_operator_json_reads_into_the_wire_messages() {
        let json = r#"{
            "version": "7",
            "signals": [{"name": "views_1h", "kind": {"windowed_count": {"event": "screen_view", "window_ms": 3600000}}}],
            "bandits": [{"name": "layout", "policy": {"ucb1": {"exploration": 1.4}}, "arms": ["a", "b"]}]
        }"#;
        let parsed: DeviceConfig = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.signals[0].name, "views_1h");
        assert!(
            matches!(parsed.bandits[0].policy, Some(Policy::Ucb1(ref p)) if p.exploration == 1.4)
        );
        let typo = r#"{"signals": [{"name": "x", "knd": {}}]}"#;
        assert!(serde_json::from_str::<DeviceConfig>(typo).is_err());
    }
}
