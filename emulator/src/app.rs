//! The simulated app: how it configures Starling (signals and two bandits), and the work of one
//! session as a list of [`Step`]s that the app carries out against its `Starling` handle,
//! in this process or in a worker process that may be killed part-way.
//!
//! Every step that can add an event to the device's queue announces itself with a [`Note`]
//! before it starts, so whoever watches the notes knows every event the app handed to the SDK,
//! even when the process dies right after.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use starling_core::bandit::{BanditSpec, PolicyKind};
use starling_core::{Clock, Config, SignalSpec, Starling};

use crate::user::{AppEvent, Prop, CATEGORIES, LAYOUTS};

/// The context-free bandit choosing the layout of the list screens (home, feed).
pub const LAYOUT_BANDIT: &str = "home_layout";
/// The contextual bandit choosing the topic featured on the other screens.
pub const TOPIC_BANDIT: &str = "screen_topic";
/// The bandits, in report order.
pub const BANDITS: &[&str] = &[LAYOUT_BANDIT, TOPIC_BANDIT];

/// Signal read by the app into the topic bandit's context: screens viewed in the last hour.
pub const VIEWS_1H: &str = "views_1h";
/// Signal: clicks in the last hour (reported, not used as a feature).
pub const CLICKS_1H: &str = "clicks_1h";

/// Rewards here are reported by the app as soon as the user clicks or moves on, so the
/// window only bounds how long a decision orphaned by a killed process stays pending: a day.
const ATTRIBUTION_WINDOW_MS: u64 = 24 * 3_600_000;

/// The arms of bandit `name`.
pub fn arms(bandit: &str) -> &'static [&'static str] {
    if bandit == LAYOUT_BANDIT {
        LAYOUTS
    } else {
        CATEGORIES
    }
}

/// The configuration every simulated device opens Starling with.
pub fn device_config(dir: &Path, url: &str, key: &str, now_ms: i64) -> Config {
    device_config_with_clock(dir, url, key, Arc::new(AtomicI64::new(now_ms)))
}

/// [`device_config`] on a simulated clock that the emulator moves on: the SDK reads the
/// time from it, so report days and budget windows follow simulated time.
pub fn device_config_with_clock(dir: &Path, url: &str, key: &str, clock: Arc<AtomicI64>) -> Config {
    let mut config = Config::new(dir).with_server(url, key);
    config.clock = Clock::new(move || clock.load(Ordering::SeqCst));
    config.privacy = crate::private::privacy_config();
    // Real seconds stand for simulated hours here, so retry delays are scaled down.
    config.backoff_initial_ms = 200;
    config.backoff_max_ms = 2_000;
    config.upload_timeout_ms = 5_000;
    config.signals = vec![
        SignalSpec::windowed_count(VIEWS_1H, "screen_view", 3_600_000),
        SignalSpec::windowed_count(CLICKS_1H, "click", 3_600_000),
    ];
    // Per-arm statistics for fleet priors are not shared here: the emulator's books count
    // every event the device queues, and those are generated at sync time, out of its sight.
    let mut layout = BanditSpec::new(
        LAYOUT_BANDIT,
        PolicyKind::ThompsonBeta {
            prior_alpha: 1.0,
            prior_beta: 1.0,
        },
        LAYOUTS,
    )
    // Forgets slowly, so that users whose taste changes are followed (weight halves after
    // about 140 later observations).
    .with_discount(0.995)
    .with_window_ms(ATTRIBUTION_WINDOW_MS);
    layout.share_statistics = false;
    layout.use_fleet_prior = false;
    let mut topic = BanditSpec::new(
        TOPIC_BANDIT,
        PolicyKind::LinUcb {
            dims: CONTEXT_DIMS,
            alpha: 0.5,
            ridge: 1.0,
        },
        CATEGORIES,
    )
    .with_discount(0.995)
    .with_window_ms(ATTRIBUTION_WINDOW_MS);
    topic.share_statistics = false;
    topic.use_fleet_prior = false;
    config.bandits = vec![layout, topic];
    config
}

/// Length of the topic bandit's context: bias, evening, recent activity.
const CONTEXT_DIMS: usize = 3;

/// One moment where the app asks a bandit to choose, with everything needed to play the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Opportunity {
    /// Which bandit decides.
    pub bandit: String,
    /// Simulated time, Unix ms.
    pub time_ms: i64,
    /// Whether it is evening for the user (part of the context).
    pub evening: bool,
    /// The user's true click probability for each arm, in the bandit's arm order.
    pub click_probability: Vec<f64>,
    /// A uniform draw: the user clicks the shown arm when it is below that arm's probability.
    pub draw: f64,
    /// The screen the choice is shown on.
    pub screen: String,
}

/// One thing the app does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Step {
    /// Track an event.
    Track(AppEvent),
    /// Ask a bandit, show the variant, track the click if the user clicks, report the reward.
    Decide(Opportunity),
    /// Make everything tracked so far durable.
    Flush,
    /// Upload what is queued.
    Sync,
}

/// What the app reports as it goes; a worker process prints one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Note {
    /// About to hand one event to `track`.
    Tracking,
    /// `track` refused the event (no consent, queue full): it is not the SDK's.
    Refused,
    /// About to report a reward: the SDK logs the settled decision as one event.
    Rewarding,
    /// The reward came too late and was ignored: no event.
    Late,
    /// Step `step` (an [`Opportunity`]) was decided: arm index `arm`.
    Decided {
        /// Index of the step.
        step: usize,
        /// Index of the arm in [`arms`].
        arm: usize,
    },
    /// The bandit refused to choose (no consent): the default variant was shown.
    NoDecision {
        /// Index of the step.
        step: usize,
    },
    /// `flush` returned: everything before it is durable.
    Flushed,
    /// About to sync: seal what is queued and upload it.
    Syncing,
    /// A sync finished; `retried` when it met a failure and scheduled a retry.
    Synced {
        /// The sync met a failure.
        retried: bool,
        /// The sync prepared the private reports (it does when it met no failure and was not
        /// backing off).
        #[serde(default)]
        reports: bool,
        /// Private reports the budget refused.
        #[serde(default)]
        refused: u32,
    },
}

/// Carries out `steps` against `starling`, reporting each through `note`. Errors are the SDK's
/// unexpected failures (refusals are notes).
pub fn execute(
    starling: &Starling,
    steps: &[Step],
    note: &mut dyn FnMut(Note),
) -> Result<(), String> {
    for (index, step) in steps.iter().enumerate() {
        match step {
            Step::Track(event) => track(starling, event, note),
            Step::Decide(opportunity) => decide(starling, index, opportunity, note)?,
            Step::Flush => {
                starling.flush().map_err(|e| format!("flush: {e}"))?;
                note(Note::Flushed);
            }
            Step::Sync => {
                note(Note::Syncing);
                match starling.sync() {
                    Ok(report) => note(synced(&report)),
                    Err(starling_core::Error::NoConsent) => {}
                    Err(e) => return Err(format!("sync: {e}")),
                }
            }
        }
    }
    Ok(())
}

/// The note of a finished sync.
pub fn synced(report: &starling_core::SyncReport) -> Note {
    Note::Synced {
        retried: report.last_error.is_some(),
        reports: report.last_error.is_none() && report.retry_at_ms.is_none(),
        refused: report.private_reports.refused.len() as u32,
    }
}

fn track(starling: &Starling, event: &AppEvent, note: &mut dyn FnMut(Note)) {
    note(Note::Tracking);
    if starling.track(event.to_event()).is_err() {
        note(Note::Refused);
    }
}

fn decide(
    starling: &Starling,
    index: usize,
    opportunity: &Opportunity,
    note: &mut dyn FnMut(Note),
) -> Result<(), String> {
    let mut activity = 0.0;
    let context = if opportunity.bandit == TOPIC_BANDIT {
        // The app's features: a bias, the time of day, and how busy the user has been in the
        // last hour, read from the signals the SDK keeps.
        let views = starling
            .feature_vector(&[VIEWS_1H])
            .map_err(|e| format!("feature_vector: {e}"))?;
        activity = (views[0] / 20.0).min(1.0);
        vec![1.0, f64::from(u8::from(opportunity.evening)), activity]
    } else {
        Vec::new()
    };
    let decision = match starling.choose(&opportunity.bandit, &context) {
        Ok(decision) => decision,
        Err(starling_core::Error::NoConsent) => {
            note(Note::NoDecision { step: index });
            return Ok(());
        }
        Err(e) => return Err(format!("choose {}: {e}", opportunity.bandit)),
    };
    let arms = arms(&opportunity.bandit);
    let arm = arms
        .iter()
        .position(|a| *a == decision.arm)
        .ok_or_else(|| format!("bandit chose an unknown arm {:?}", decision.arm))?;
    note(Note::Decided { step: index, arm });

    let clicked = opportunity.draw < opportunity.click_probability[arm];
    if clicked {
        let click = AppEvent {
            name: "variant_click".into(),
            time_ms: opportunity.time_ms + 2_000,
            props: vec![
                ("bandit".into(), Prop::Text(opportunity.bandit.clone())),
                ("variant".into(), Prop::Text(decision.arm.clone())),
                ("screen".into(), Prop::Text(opportunity.screen.clone())),
            ],
        };
        track(starling, &click, note);
    }
    note(Note::Rewarding);
    match starling.reward(&decision.id, if clicked { 1.0 } else { 0.0 }) {
        Ok(true) => {}
        Ok(false) => note(Note::Late),
        Err(e) => return Err(format!("reward: {e}")),
    }
    if opportunity.bandit == TOPIC_BANDIT {
        // The same moment is a training example for the fleet's click model, with what the
        // device's bandit knew of this user and topic before the click (smoothed towards 0.3).
        let stats = starling
            .bandit_arms(TOPIC_BANDIT)
            .map_err(|e| format!("bandit_arms: {e}"))?;
        let past_rate = stats
            .iter()
            .find(|s| s.name == decision.arm)
            .map_or(0.3, |s| (s.reward_sum + 0.3) / (s.pulls + 1.0));
        let features = crate::learning::features(opportunity.evening, activity, past_rate, arm);
        match starling.add_example(crate::learning::TASK, &features, u32::from(clicked)) {
            Ok(()) | Err(starling_core::Error::NoConsent) => {}
            Err(e) => return Err(format!("add_example: {e}")),
        }
    }
    Ok(())
}
