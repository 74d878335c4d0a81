//! Sync: sealing batches, uploading them, and remembering when to retry.

pub(crate) mod backoff;
pub(crate) mod transport;

use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::storage::writer::Command;
use crate::Inner;
use transport::UploadOutcome;

/// Metadata keys of the persisted retry state.
const META_FAILURES: &str = "sync_failures";
const META_RETRY_AT: &str = "sync_retry_at_ms";
const META_RETRY_DELAY: &str = "sync_retry_delay_ms";

/// Longest `Retry-After` honoured, in ms: a day. A server asking for more is treated as asking
/// for a day, so a misconfigured server cannot silence devices for weeks.
const MAX_RETRY_AFTER_MS: u64 = 24 * 3600 * 1000;

/// What one call to [`Starling::sync`](crate::Starling::sync) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Batches the server acknowledged.
    pub batches_sent: u32,
    /// Events in those batches.
    pub events_sent: u64,
    /// Batches the server refused for good (dropped and counted).
    pub batches_dropped: u32,
    /// Events in those batches.
    pub events_dropped: u64,
    /// Batches still queued on the device after this sync.
    pub batches_pending: u64,
    /// Events still queued on the device (batched or not) after this sync.
    pub events_pending: u64,
    /// When the next upload attempt is due, Unix epoch ms, if uploads are backing off.
    pub retry_at_ms: Option<i64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// What the private reports did, if any are configured or waiting.
    pub private_reports: crate::privacy::ReportsOutcome,
}

/// Seals pending events into batches and uploads every sealed batch, stopping at the first
/// failure that is worth retrying. Runs on the calling thread.
pub(crate) fn run(inner: &Inner) -> Result<SyncReport> {
    if !inner.shared.consent.load(Ordering::SeqCst) {
        return Err(Error::NoConsent);
    }
    let transport = inner.transport.as_ref().ok_or(Error::NoServer)?;
    // One sync at a time per instance; a second caller waits and then finds less to do.
    let _running = inner.sync_lock.lock().unwrap_or_else(|p| p.into_inner());

    let mut report = SyncReport::default();
    let now = inner.config.clock.now_ms();
    let retry_at = meta_i64(inner, META_RETRY_AT)?;
    let backing_off = retry_at > now
        // A clock moved backwards must not postpone uploads beyond the delay that was chosen.
        && retry_at - now <= meta_i64(inner, META_RETRY_DELAY)?;
    let raw_events = inner
        .shared
        .purposes
        .granted(crate::privacy::Purpose::RawEvents);
    if !backing_off && raw_events {
        crate::privacy::consent::rotate_device_id_if_due(inner)?;
        let batches = inner.request(Command::PrepareUpload)?;
        let mut failed = false;
        for batch in batches {
            if !inner.shared.consent.load(Ordering::SeqCst) {
                break;
            }
            match transport.upload(&batch.payload) {
                UploadOutcome::Delivered => {
                    inner.request(|r| Command::Delivered(batch.id, r))?;
                    report.batches_sent += 1;
                    report.events_sent += batch.events;
                }
                UploadOutcome::Rejected { status } => {
                    log::error!(
                        "starling: the server refused a batch of {} events with status {status}; dropped",
                        batch.events
                    );
                    inner.request(|r| Command::Rejected(batch.id, r))?;
                    report.batches_dropped += 1;
                    report.events_dropped += batch.events;
                }
                UploadOutcome::Retry {
                    reason,
                    retry_after_ms,
                } => {
                    inner.request(|r| Command::Attempted(batch.id, r))?;
                    let failures = meta_i64(inner, META_FAILURES)?.max(0) as u32 + 1;
                    let delay = backoff::delay_ms(
                        failures,
                        inner.config.backoff_initial_ms,
                        inner.config.backoff_max_ms,
                        &mut rand::rng(),
                    )
                    .max(retry_after_ms.unwrap_or(0).min(MAX_RETRY_AFTER_MS));
                    let next = inner.config.clock.now_ms() + delay as i64;
                    set_meta(inner, META_FAILURES, failures.to_string())?;
                    set_meta(inner, META_RETRY_DELAY, delay.to_string())?;
                    set_meta(inner, META_RETRY_AT, next.to_string())?;
                    log::warn!("starling: upload failed ({reason}); retry in {delay} ms");
                    report.retry_at_ms = Some(next);
                    report.last_error = Some(reason);
                    failed = true;
                    break;
                }
            }
        }
        if !failed && (retry_at != 0 || meta_i64(inner, META_FAILURES)? != 0) {
            set_meta(inner, META_FAILURES, "0".into())?;
            set_meta(inner, META_RETRY_AT, "0".into())?;
        }
    } else if backing_off {
        report.retry_at_ms = Some(retry_at);
    }

    if report.last_error.is_none() && !backing_off {
        fetch_fleet_priors(inner, transport);
        fetch_device_config(inner, transport);
        // Best effort like the downloads: a failure leaves the reports charged and queued.
        report.private_reports = crate::privacy::api::run(inner, transport).unwrap_or_else(|e| {
            log::warn!("starling: private reports not prepared or sent: {e}");
            crate::privacy::ReportsOutcome {
                send_error: Some(e.to_string()),
                ..Default::default()
            }
        });
    }

    let diagnostics = inner.request(Command::Diagnostics)?;
    report.batches_pending = diagnostics.batches_queued;
    report.events_pending =
        diagnostics.events_batched + diagnostics.events_unsealed + diagnostics.events_uncommitted;
    Ok(report)
}

/// Gives bandits that have learned nothing yet a head start from the fleet. Best effort: a
/// bandit without a published prior, or a failed download, simply starts cold and asks again at
/// the next sync.
fn fetch_fleet_priors(inner: &Inner, transport: &transport::Transport) {
    use prost::Message;
    for name in inner.shared.bandits.wanting_priors() {
        let path = format!("/v1/bandits/{name}/prior");
        let prior = match transport.get(&path) {
            Ok(Some(body)) => match starling_proto::v1::BanditPrior::decode(body.as_slice()) {
                Ok(prior) => prior,
                Err(e) => {
                    log::warn!("starling: the fleet prior of bandit {name:?} is unreadable: {e}");
                    continue;
                }
            },
            Ok(None) => continue,
            Err(reason) => {
                log::debug!("starling: no fleet prior for bandit {name:?}: {reason}");
                continue;
            }
        };
        match inner.request(|r| Command::ApplyPrior(name.clone(), prior, r)) {
            Ok(arms) if arms > 0 => {
                log::info!("starling: bandit {name:?} starts from the fleet's prior ({arms} arms)")
            }
            Ok(_) => {}
            Err(e) => {
                log::warn!("starling: could not apply the fleet prior of bandit {name:?}: {e}")
            }
        }
    }
}

/// Downloads the server's signal and bandit definitions when they changed, and stores them for
/// the next open. Best effort, like the priors.
fn fetch_device_config(inner: &Inner, transport: &transport::Transport) {
    use prost::Message;
    let stored = inner
        .request(|r| Command::GetMeta(crate::remote::META_KEY, r))
        .ok()
        .flatten()
        .and_then(|hex| hex::decode(hex).ok())
        .and_then(|bytes| starling_proto::v1::DeviceConfig::decode(bytes.as_slice()).ok());
    let version = stored.as_ref().map(|c| c.version.as_str());
    match transport.get_if_changed(crate::remote::PATH, version) {
        Ok(transport::Fetched::Body(body)) => {
            match starling_proto::v1::DeviceConfig::decode(body.as_slice()) {
                Ok(config) => {
                    let value = hex::encode(&body);
                    if let Err(e) =
                        inner.request(|r| Command::SetMeta(crate::remote::META_KEY, value, r))
                    {
                        log::warn!("starling: could not store the server's configuration: {e}");
                    } else {
                        log::info!(
                            "starling: server configuration {:?} stored ({} signals, {} bandits); it applies at the next open",
                            config.version,
                            config.signals.len(),
                            config.bandits.len()
                        );
                    }
                }
                Err(e) => log::warn!("starling: the server's configuration is unreadable: {e}"),
            }
        }
        Ok(transport::Fetched::NotModified) => {}
        Ok(transport::Fetched::Missing) => {
            // The operator removed it: forget the stored one.
            if stored.is_some() {
                let _ =
                    inner.request(|r| Command::SetMeta(crate::remote::META_KEY, String::new(), r));
            }
        }
        Err(reason) => log::debug!("starling: no server configuration: {reason}"),
    }
}

fn meta_i64(inner: &Inner, key: &'static str) -> Result<i64> {
    Ok(inner
        .request(|r| Command::GetMeta(key, r))?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

fn set_meta(inner: &Inner, key: &'static str, value: String) -> Result<()> {
    inner.request(|r| Command::SetMeta(key, value, r))
}
