//! Checking one device update before it counts: shape, finiteness, norm, round and version.
//! Every refusal carries an HTTP status, a stable code and a reason.

use std::collections::BTreeSet;

use starling_proto::v1::ModelUpdate;

use super::aggregate::{self, Contribution};
use super::task::{Aggregation, TaskDefinition};

/// What the checks need to know of the task's current round.
pub(crate) struct RoundState<'a> {
    /// The current version.
    pub(crate) version: u64,
    /// The current round.
    pub(crate) round: u64,
    /// Devices admitted to it (synchronous rounds).
    pub(crate) admitted: &'a BTreeSet<String>,
}

/// Why an update or a check-in was refused: an HTTP status, a stable code and a reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// 404, 409 or 422.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable reason.
    pub message: String,
}

pub(crate) fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

/// The largest L2 norm an honest update can have, and the sensitivity the central noise is
/// calibrated to: the clip bound, plus the device's noise (a chi-distributed norm, bounded at
/// `sigma * (sqrt(d) + 6)`, beyond which an honest update falls with negligible probability).
pub(crate) fn sensitivity(definition: &TaskDefinition) -> f64 {
    let c = definition.clip_norm;
    let sigma = definition.device_noise_multiplier * c;
    c + sigma * ((definition.weight_count() as f64).sqrt() + 6.0)
}

/// Checks one update against the task and its current round; the dequantized update, clipped
/// to the sensitivity bound, when it passes.
pub(crate) fn check(
    d: &TaskDefinition,
    s: &RoundState<'_>,
    u: &ModelUpdate,
) -> Result<Contribution, Refusal> {
    if u.update_id.len() != 16 {
        return Err(refuse(422, "malformed", "update_id must be 16 bytes"));
    }
    if u.device_id.is_empty() || u.device_id.len() > 128 {
        return Err(refuse(422, "malformed", "device_id must be 1 to 128 bytes"));
    }
    if u.quantized.len() != d.weight_count() {
        return Err(refuse(
            422,
            "wrong_shape",
            format!(
                "{} values for a model of {}",
                u.quantized.len(),
                d.weight_count()
            ),
        ));
    }
    if u.examples == 0 {
        return Err(refuse(
            422,
            "malformed",
            "an update needs at least one example",
        ));
    }
    let metrics_ok = u.holdout_examples == 0
        || (u.holdout_loss.is_finite()
            && u.holdout_loss >= 0.0
            && (0.0..=1.0).contains(&u.holdout_accuracy));
    if !(u.scale.is_finite()
        && u.scale >= 0.0
        && metrics_ok
        && u.device_rho.is_finite()
        && u.device_rho >= 0.0)
    {
        return Err(refuse(
            422,
            "not_finite",
            "the scale or the evaluation is not a finite number in range",
        ));
    }
    let mut delta = starling_proto::quantize::dequantize(u.scale, &u.quantized);
    // Quantization moves each value by at most half a step.
    let slack = f64::from(u.scale) / 2.0 * (delta.len() as f64).sqrt();
    let bound = sensitivity(d);
    let norm = aggregate::norm(&delta);
    if norm > bound + slack {
        return Err(refuse(
            422,
            "norm_out_of_bound",
            format!("the update's L2 norm {norm:.4} exceeds the bound {bound:.4}"),
        ));
    }
    aggregate::clip(&mut delta, bound);

    let staleness_weight = match d.aggregation {
        Aggregation::Synchronous { .. } => {
            if u.round < s.round {
                return Err(refuse(
                    409,
                    "round_closed",
                    format!(
                        "round {} is closed; the current round is {}",
                        u.round, s.round
                    ),
                ));
            }
            if u.round > s.round || u.base_version > s.version {
                return Err(refuse(
                    422,
                    "unknown_round",
                    format!("the current round is {} on version {}", s.round, s.version),
                ));
            }
            if u.base_version != s.version {
                return Err(refuse(
                    409,
                    "stale_version",
                    format!(
                        "the round trains version {}, not {}",
                        s.version, u.base_version
                    ),
                ));
            }
            if !s.admitted.contains(&u.device_id) {
                return Err(refuse(
                    409,
                    "not_admitted",
                    "the device did not check in to this round",
                ));
            }
            1.0
        }
        Aggregation::Asynchronous { max_staleness, .. } => {
            if u.base_version > s.version || u.round > s.round {
                return Err(refuse(
                    422,
                    "unknown_round",
                    format!("the current version is {}", s.version),
                ));
            }
            let staleness = s.version - u.base_version;
            if staleness > u64::from(max_staleness) {
                return Err(refuse(409, "too_stale", format!("version {} is {staleness} versions old; at most {max_staleness} are accepted", u.base_version)));
            }
            1.0 / (1.0 + staleness as f64).sqrt()
        }
    };
    Ok(Contribution {
        device_id: u.device_id.clone(),
        update_id: hex::encode(&u.update_id),
        examples: u.examples,
        staleness_weight,
        delta,
    })
}
