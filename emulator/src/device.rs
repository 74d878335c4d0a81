//! One simulated device: a user, a real `Starling` with its own database, and the emulator's
//! own books of what it handed to the SDK, which the accounting checks against the SDK's
//! counters and the server.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::Rng;
use starling_core::{Diagnostics, Starling};

use crate::app::{self, Note, Opportunity, Step, LAYOUT_BANDIT, TOPIC_BANDIT};
use crate::regret::Tally;
use crate::user::{is_evening, User};
use crate::worker::{self, Job};

/// One simulated hour, in ms.
pub(crate) const HOUR_MS: i64 = 3_600_000;

/// Where the devices reach the server, and how faults are dosed.
pub(crate) struct Env<'a> {
    pub url: &'a str,
    pub key: &'a str,
    /// The emulator binary, re-executed as a worker for killed sessions.
    pub worker_exe: &'a Path,
    /// Probability that a session runs in a worker process that is killed part-way.
    pub kill_rate: f64,
    /// Probability per hour that the app is closed and reopened.
    pub restart_rate: f64,
    /// Whether the app asks its bandits to choose.
    pub decide: bool,
}

/// The emulator's books for one device.
#[derive(Debug, Default, Clone)]
pub(crate) struct Books {
    /// App events `track` accepted (or that a killed worker was about to hand to it).
    pub app_events: u64,
    /// Decisions rewarded: each becomes one `starling.decision` event.
    pub decision_logs: u64,
    /// Events `track` refused while consent was withdrawn: never the SDK's.
    pub not_collected: u64,
    /// Decisions refused while consent was withdrawn (the app showed its default).
    pub decisions_refused: u64,
    /// Rewards that came too late (ignored by the SDK, no event).
    pub rewards_late: u64,
    /// Events handed to the SDK in a worker that was killed before they were committed.
    pub lost_in_kills: u64,
    /// Worker processes killed.
    pub kills: u64,
    /// Killed workers that finished before the signal came.
    pub kills_missed: u64,
    pub syncs: u64,
    pub syncs_retried: u64,
    pub restarts: u64,
    pub consent_changes: u64,
    /// Learning syncs run, and updates the server accepted or refused.
    pub learning_syncs: u64,
    pub updates_sent: u64,
    pub updates_refused: u64,
    /// Private reports the budget refused (they wait for a later sync).
    pub reports_refused: u64,
}

pub(crate) struct Device {
    pub user: User,
    pub dir: PathBuf,
    pub starling: Option<Starling>,
    /// Simulated hours without network.
    pub offline: Range<i64>,
    /// The hour consent is withdrawn, and the hour it is granted again.
    pub consent_off: Option<(i64, i64)>,
    pub device_ids: Vec<String>,
    pub rng: StdRng,
    pub books: Books,
    /// Per bandit (in [`app::BANDITS`] order), per simulated hour.
    pub tallies: Vec<Vec<Tally>>,
    /// Compressed bytes uploaded by the end of each simulated day (cumulative).
    pub bytes_by_day: Vec<u64>,
    /// The device's clock: simulated time, Unix ms.
    pub clock: Arc<AtomicI64>,
    /// What the device's private reports should hold.
    pub private: crate::private::PrivateBooks,
}

impl Device {
    pub fn new(user: User, dir: PathBuf, rng: StdRng, hours: usize) -> Device {
        Device {
            user,
            dir,
            starling: None,
            offline: 0..0,
            consent_off: None,
            device_ids: Vec::new(),
            rng,
            books: Books::default(),
            tallies: vec![vec![Tally::default(); hours]; app::BANDITS.len()],
            bytes_by_day: Vec::new(),
            clock: Arc::new(AtomicI64::new(0)),
            private: Default::default(),
        }
    }

    fn handle(&self) -> &Starling {
        self.starling.as_ref().expect("the device is open")
    }

    pub fn open(&mut self, env: &Env) -> Result<(), String> {
        let config =
            app::device_config_with_clock(&self.dir, env.url, env.key, Arc::clone(&self.clock));
        let starling = Starling::open(config).map_err(|e| format!("open: {e}"))?;
        if !starling.consent() && self.books.consent_changes == 0 {
            // First launch: the user accepts.
            starling
                .set_consent(true)
                .map_err(|e| format!("consent: {e}"))?;
        }
        self.starling = Some(starling);
        self.note_device_id()
    }

    fn note_device_id(&mut self) -> Result<(), String> {
        let id = self.handle().device_id().map_err(|e| e.to_string())?;
        if !self.device_ids.contains(&id) {
            self.device_ids.push(id);
        }
        Ok(())
    }

    pub fn diagnostics(&self) -> Result<Diagnostics, String> {
        self.handle().diagnostics().map_err(|e| e.to_string())
    }

    /// One simulated hour: maybe a consent change, a restart, a session, a sync.
    pub fn hour(&mut self, hour: i64, hour_start_ms: i64, env: &Env) -> Result<(), String> {
        let hour_of_day = (hour_start_ms / HOUR_MS).rem_euclid(24) as usize;
        // The device's clock shows the end of the hour throughout it: every event of the hour
        // lies in its past (or less than the allowed skew ahead).
        self.set_clock(hour_start_ms + HOUR_MS - 1);
        if let Some((off, on)) = self.consent_off {
            if hour == off || hour == on {
                if hour == off {
                    self.private.withdraw();
                }
                self.handle()
                    .set_consent(hour == on)
                    .map_err(|e| format!("consent: {e}"))?;
                self.books.consent_changes += 1;
                self.note_device_id()?;
            }
        }
        if self.rng.random_bool(env.restart_rate) {
            if let Some(s) = self.starling.take() {
                s.close().map_err(|e| e.to_string())?;
            }
            self.open(env)?;
            self.books.restarts += 1;
        }

        let online = !self.offline.contains(&hour);
        let mut session = false;
        if self.user.opens_app(hour_of_day) {
            let kill = self.rng.random_bool(env.kill_rate) && self.handle().consent();
            let start = hour_start_ms + self.rng.random_range(0..HOUR_MS / 2);
            let steps = self.plan_session(start, hour_of_day, kill && online, env.decide);
            if kill {
                self.run_killed(hour, &steps, env)?;
            } else {
                let mut notes = Vec::new();
                app::execute(self.handle(), &steps, &mut |n| notes.push(n))?;
                self.absorb(hour, &steps, &notes, None);
            }
            session = true;
        }
        if online && ((session && self.rng.random_bool(0.5)) || hour % 6 == 0) {
            match self.handle().sync() {
                Ok(report) => self.absorb(hour, &[], &[app::synced(&report)], None),
                Err(starling_core::Error::NoConsent) => {}
                Err(e) => return Err(format!("sync: {e}")),
            }
        }
        if online && crate::learning::eligible(hour_of_day) && self.handle().consent() {
            let eligibility = starling_core::learning::Eligibility::ELIGIBLE;
            match self
                .handle()
                .sync_learning_blocking(crate::learning::TASK, eligibility)
            {
                Ok(report) => {
                    self.books.learning_syncs += 1;
                    self.books.updates_sent += u64::from(report.updates_sent);
                    self.books.updates_refused += u64::from(report.updates_refused);
                }
                Err(starling_core::Error::NoConsent) => {}
                Err(e) => return Err(format!("learning sync: {e}")),
            }
        }
        if hour % 24 == 23 {
            let bytes = self.diagnostics()?.bytes_sent;
            self.bytes_by_day.push(bytes);
        }
        Ok(())
    }

    /// The steps of one session: its events, layout and topic decisions on its screens, a flush and (in sessions that will be killed) a sync part-way.
    fn plan_session(
        &mut self,
        start_ms: i64,
        hour_of_day: usize,
        with_sync: bool,
        decide: bool,
    ) -> Vec<Step> {
        let events = self.user.session(start_ms);
        let mut steps = Vec::with_capacity(events.len() * 2);
        for event in events {
            // The layout of the list screens is chosen when the session opens on home and on
            // every visit of home or feed; the topic featured on every other screen.
            let choice = match (event.name.as_str(), event.text("screen")) {
                ("session_start", _) => Some((LAYOUT_BANDIT, "home")),
                ("screen_view", Some(s @ ("home" | "feed"))) => Some((LAYOUT_BANDIT, s)),
                ("screen_view", Some(s)) => Some((TOPIC_BANDIT, s)),
                _ => None,
            };
            // Drawn whether or not the app decides, so that a tracking-only run meets the same
            // users doing the same things.
            let draw = choice.map(|_| self.user.uniform());
            let opportunity = choice.filter(|_| decide).map(|(bandit, screen)| {
                let tastes = self.user.tastes_at(event.time_ms);
                let click_probability = if bandit == LAYOUT_BANDIT {
                    tastes.layout_click.clone()
                } else {
                    tastes.topics_at(hour_of_day).to_vec()
                };
                Opportunity {
                    bandit: bandit.to_owned(),
                    time_ms: event.time_ms,
                    evening: is_evening(hour_of_day),
                    click_probability,
                    draw: draw.unwrap_or(0.0),
                    screen: screen.to_owned(),
                }
            });
            steps.push(Step::Track(event));
            if let Some(opportunity) = opportunity {
                steps.push(Step::Decide(opportunity));
            }
        }
        let at = self.rng.random_range(0..=steps.len());
        steps.insert(at, Step::Flush);
        if with_sync {
            let at = self.rng.random_range(0..=steps.len());
            steps.insert(at, Step::Sync);
        }
        steps
    }

    /// Runs a session in a worker process, kills it part-way, reopens the database and checks
    /// that only events handed over after the last durable point were lost.
    fn run_killed(&mut self, hour: i64, steps: &[Step], env: &Env) -> Result<(), String> {
        let starling = self.starling.take().expect("open");
        starling.flush().map_err(|e| format!("flush: {e}"))?;
        let before = starling.diagnostics().map_err(|e| e.to_string())?;
        starling.close().map_err(|e| format!("close: {e}"))?;
        drop(starling);

        let kill_after = self.rng.random_range(1..=steps.len().max(1));
        let job = Job {
            dir: self.dir.clone(),
            url: env.url.to_owned(),
            key: env.key.to_owned(),
            steps: steps.to_vec(),
            now_ms: self.clock.load(Ordering::SeqCst),
        };
        // Half of the sessions that sync are killed up to 20 ms after the sync starts: while
        // it seals the batch, uploads it, or records the server's answer.
        let at_sync = (steps.iter().any(|s| matches!(s, Step::Sync)) && self.rng.random_bool(0.5))
            .then(|| std::time::Duration::from_micros(self.rng.random_range(0..20_000)));
        let outcome = worker::run_and_kill(env.worker_exe, &job, kill_after, at_sync)?;
        self.open(env)?;
        let after = self.diagnostics()?;

        let handed = |notes: &[Note]| -> u64 {
            notes
                .iter()
                .map(|n| match n {
                    Note::Tracking | Note::Rewarding => 1i64,
                    Note::Refused | Note::Late => -1,
                    _ => 0,
                })
                .sum::<i64>()
                .max(0) as u64
        };
        let all = handed(&outcome.notes);
        let last_flush = outcome
            .notes
            .iter()
            .rposition(|n| *n == Note::Flushed)
            .map_or(0, |i| i + 1);
        let undurable = handed(&outcome.notes[last_flush..]);
        let committed = after.events_committed - before.events_committed;
        if committed > all {
            return Err(format!(
                "{}: the database holds {committed} events from a killed worker that handed over only {all}",
                self.dir.display()
            ));
        }
        let lost = all - committed;
        if lost > undurable {
            return Err(format!(
                "{}: {lost} events lost in a kill, but only {undurable} were handed over after the last flush",
                self.dir.display()
            ));
        }
        self.books.lost_in_kills += lost;
        if outcome.killed {
            self.books.kills += 1;
        } else {
            self.books.kills_missed += 1;
        }
        self.absorb(hour, steps, &outcome.notes, Some(committed));
        // A worker killed while it synced may or may not have charged the reports that were
        // due; its ledger says which.
        let synced = outcome.notes.iter().rposition(|n| *n == Note::Syncing);
        let finished = synced.is_some_and(|i| {
            outcome.notes[i..]
                .iter()
                .any(|n| matches!(n, Note::Synced { .. }))
        });
        if synced.is_some()
            && !finished
            && crate::private::charged_on_device(self.handle())? > self.private.charged()
        {
            self.private.prepare(self.clock.load(Ordering::SeqCst));
        }
        Ok(())
    }

    /// Books a sync made outside a session (the final one).
    pub fn note_sync(&mut self, note: Note) {
        self.absorb_private(&[], &[note], None);
    }

    /// Sets the device's clock, Unix ms.
    pub fn set_clock(&self, now_ms: i64) {
        self.clock.store(now_ms, Ordering::SeqCst);
    }

    /// Updates the books from the notes of a session (in this process or a worker). `durable`:
    /// in a killed worker, how many of the handed-over events the database kept (the first
    /// ones: the writer commits in order).
    fn absorb(&mut self, hour: i64, steps: &[Step], notes: &[Note], durable: Option<u64>) {
        self.absorb_private(steps, notes, durable);
        let hour = hour as usize;
        let mut refused_pending = false;
        for note in notes {
            match note {
                Note::Tracking => {
                    self.books.app_events += 1;
                    refused_pending = true;
                }
                Note::Refused if refused_pending => {
                    self.books.app_events -= 1;
                    self.books.not_collected += 1;
                }
                Note::Refused => {}
                Note::Rewarding => self.books.decision_logs += 1,
                Note::Late => {
                    self.books.decision_logs -= 1;
                    self.books.rewards_late += 1;
                }
                Note::Decided { step, arm } => {
                    if let Some(Step::Decide(o)) = steps.get(*step) {
                        let b = usize::from(o.bandit == TOPIC_BANDIT);
                        let clicked = o.draw < o.click_probability[*arm];
                        self.tallies[b][hour].add(&o.click_probability, *arm, clicked);
                    }
                }
                Note::NoDecision { .. } => self.books.decisions_refused += 1,
                Note::Flushed | Note::Syncing => {}
                Note::Synced { retried, .. } => {
                    self.books.syncs += 1;
                    self.books.syncs_retried += u64::from(*retried);
                }
            }
            if !matches!(note, Note::Tracking) {
                refused_pending = false;
            }
        }
    }

    /// The private reports' books: every app event `track` accepted (and the database kept)
    /// is tallied by its day; every sync that prepared the reports charges the days that are
    /// over.
    fn absorb_private(&mut self, steps: &[Step], notes: &[Note], durable: Option<u64>) {
        let mut tracks = steps.iter().filter_map(|s| match s {
            Step::Track(event) => Some(event),
            _ => None,
        });
        let mut handed = 0i64;
        let mut last: Option<&Note> = None;
        let mut pending: Option<&crate::user::AppEvent> = None;
        let keep = |handed: i64| durable.is_none_or(|d| handed <= d as i64);
        for note in notes {
            match note {
                Note::Tracking => {
                    if let Some(event) = pending.take() {
                        if keep(handed) {
                            self.private.record(event);
                        }
                    }
                    handed += 1;
                    // A tracking note right after a decision is the click on the variant
                    // shown, not one of the session's planned events.
                    if !matches!(last, Some(Note::Decided { .. })) {
                        pending = tracks.next();
                    }
                }
                Note::Refused => {
                    pending = None;
                    handed -= 1;
                }
                Note::Rewarding => {
                    if let Some(event) = pending.take() {
                        if keep(handed) {
                            self.private.record(event);
                        }
                    }
                    handed += 1;
                }
                Note::Late => handed -= 1,
                other => {
                    if let Some(event) = pending.take() {
                        if keep(handed) {
                            self.private.record(event);
                        }
                    }
                    if let Note::Synced {
                        reports, refused, ..
                    } = other
                    {
                        self.books.reports_refused += u64::from(*refused);
                        if *reports {
                            self.private.prepare(self.clock.load(Ordering::SeqCst));
                        }
                    }
                }
            }
            last = Some(note);
        }
        if let Some(event) = pending.take() {
            if keep(handed) {
                self.private.record(event);
            }
        }
    }
}
