//! Simulated users: seeded habits (when they open the app, how long they stay, what they look
//! at) and preferences (which layout and which content they click), known to the emulator so
//! that what the SDK learns can be checked against the truth. Some users' preferences drift:
//! at a set moment their favourite layout and topics change.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use starling_core::{Event, Value};

/// Content categories a user can prefer; also the arms of the topic bandit.
pub const CATEGORIES: &[&str] = &["news", "sports", "music", "food", "travel", "tech"];
/// Home screen layouts; the arms of the layout bandit.
pub const LAYOUTS: &[&str] = &["list", "grid", "carousel", "stories"];
const SCREENS: &[&str] = &["home", "feed", "article", "search", "profile", "checkout"];

/// A property value of an [`AppEvent`], in a form that crosses a process boundary as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Prop {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

/// An event the simulated app tracks: a name, a simulated time and properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppEvent {
    /// Event name.
    pub name: String,
    /// Simulated event time, Unix ms.
    pub time_ms: i64,
    /// Properties.
    pub props: Vec<(String, Prop)>,
}

impl AppEvent {
    fn new(name: &str, time_ms: i64) -> AppEvent {
        AppEvent {
            name: name.to_owned(),
            time_ms,
            props: Vec::new(),
        }
    }

    /// Adds a property.
    pub fn with(mut self, key: &str, value: Prop) -> AppEvent {
        self.props.push((key.to_owned(), value));
        self
    }

    /// The text property `key`, if there is one.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.props.iter().find_map(|(k, v)| match v {
            Prop::Text(s) if k == key => Some(s.as_str()),
            _ => None,
        })
    }

    /// The SDK event.
    pub fn to_event(&self) -> Event {
        let mut event = Event::new(self.name.clone()).at(self.time_ms);
        for (key, value) in &self.props {
            let value = match value {
                Prop::Text(s) => Value::String(s.clone()),
                Prop::Int(i) => Value::Int(*i),
                Prop::Float(f) => Value::Float(*f),
            };
            event = event.with(key.clone(), value);
        }
        event
    }
}

/// What a user clicks, with which probability: the known truth the bandits are measured
/// against.
#[derive(Debug, Clone, PartialEq)]
pub struct Tastes {
    /// Click probability for each layout in [`LAYOUTS`] at a session start.
    pub layout_click: Vec<f64>,
    /// Click probability for each topic in [`CATEGORIES`] shown on a screen, in the daytime.
    pub topic_click_day: Vec<f64>,
    /// The same in the evening (17:00 to 04:00): many people like other things at night.
    pub topic_click_evening: Vec<f64>,
}

impl Tastes {
    fn draw(rng: &mut StdRng, preferences: &[f64]) -> Tastes {
        let favourite = rng.random_range(0..LAYOUTS.len());
        let layout_click = (0..LAYOUTS.len())
            .map(|i| {
                let base = rng.random_range(0.03..0.10);
                if i == favourite {
                    base + rng.random_range(0.12..0.25)
                } else {
                    base
                }
            })
            .collect();
        let top = preferences.iter().cloned().fold(0.0, f64::max).max(1e-9);
        let day: Vec<f64> = preferences.iter().map(|p| 0.02 + 0.5 * p / top).collect();
        let shift = rng.random_range(0..CATEGORIES.len());
        let evening = (0..day.len())
            .map(|i| day[(i + shift) % day.len()])
            .collect();
        Tastes {
            layout_click,
            topic_click_day: day,
            topic_click_evening: evening,
        }
    }

    /// The same person after a change of taste: another favourite layout, topics rotated.
    fn drifted(&self, rng: &mut StdRng) -> Tastes {
        let n = self.layout_click.len();
        let by = rng.random_range(1..n);
        let m = self.topic_click_day.len();
        let turn = rng.random_range(1..m);
        let rotate = |v: &[f64], k: usize| (0..v.len()).map(|i| v[(i + k) % v.len()]).collect();
        Tastes {
            layout_click: rotate(&self.layout_click, by),
            topic_click_day: rotate(&self.topic_click_day, turn),
            topic_click_evening: rotate(&self.topic_click_evening, turn),
        }
    }

    /// Click probabilities of the topics at an hour of the day.
    pub fn topics_at(&self, hour_of_day: usize) -> &[f64] {
        if is_evening(hour_of_day) {
            &self.topic_click_evening
        } else {
            &self.topic_click_day
        }
    }
}

/// Whether an hour of the day counts as evening for [`Tastes`].
pub fn is_evening(hour_of_day: usize) -> bool {
    !(4..17).contains(&(hour_of_day % 24))
}

/// One simulated person using the app.
#[derive(Debug)]
pub struct User {
    rng: StdRng,
    /// Probability of opening the app in each hour of the day (local time = simulated UTC).
    pub hourly_activity: [f64; 24],
    /// Preference weight per category; sums to 1.
    pub preferences: Vec<f64>,
    /// Mean events per session.
    pub events_per_session: f64,
    /// What the user clicks until `drift_at_ms`.
    pub tastes: Tastes,
    /// What the user clicks after a drift.
    pub drifted: Tastes,
    /// When the user's tastes change, if they do.
    pub drift_at_ms: Option<i64>,
}

impl User {
    /// The user with this seed: the same seed always gives the same person.
    pub fn new(seed: u64) -> User {
        let mut rng = StdRng::seed_from_u64(seed);
        // Two daily peaks (morning, evening) whose height and hour vary by person.
        let morning = rng.random_range(6..10) as f64;
        let evening = rng.random_range(18..23) as f64;
        let engagement = rng.random_range(0.2..0.9);
        let mut hourly_activity = [0.0; 24];
        for (hour, p) in hourly_activity.iter_mut().enumerate() {
            let h = hour as f64;
            let peak = (-(h - morning).powi(2) / 4.0).exp() + (-(h - evening).powi(2) / 6.0).exp();
            *p = (engagement * peak).min(0.95);
        }
        let raw: Vec<f64> = CATEGORIES
            .iter()
            .map(|_| rng.random::<f64>().powi(3))
            .collect();
        let total: f64 = raw.iter().sum();
        let preferences: Vec<f64> = raw.iter().map(|w| w / total).collect();
        let tastes = Tastes::draw(&mut rng, &preferences);
        let drifted = tastes.drifted(&mut rng);
        User {
            hourly_activity,
            preferences,
            events_per_session: rng.random_range(5.0..30.0),
            tastes,
            drifted,
            drift_at_ms: None,
            rng,
        }
    }

    /// What the user clicks at `time_ms`.
    pub fn tastes_at(&self, time_ms: i64) -> &Tastes {
        match self.drift_at_ms {
            Some(at) if time_ms >= at => &self.drifted,
            _ => &self.tastes,
        }
    }

    /// Whether this user opens the app in the given hour of the day.
    pub fn opens_app(&mut self, hour_of_day: usize) -> bool {
        let p = self.hourly_activity[hour_of_day % 24];
        self.rng.random_bool(p)
    }

    /// A uniform draw in [0, 1) from the user's own stream: whether they click is decided by
    /// comparing it with a click probability.
    pub fn uniform(&mut self) -> f64 {
        self.rng.random()
    }

    /// The events of one session starting at `start_ms`.
    pub fn session(&mut self, start_ms: i64) -> Vec<AppEvent> {
        let count = 1 + self.rng.random_range(0.0..2.0 * self.events_per_session) as usize;
        let mut time = start_ms;
        let mut events = Vec::with_capacity(count + 1);
        events.push(AppEvent::new("session_start", time));
        for _ in 0..count {
            time += self.rng.random_range(1_000..45_000);
            let category = self.category();
            let screen = SCREENS[self.rng.random_range(0..SCREENS.len())];
            let roll: f64 = self.rng.random();
            let text = |s: &str| Prop::Text(s.to_owned());
            let event = if roll < 0.35 {
                AppEvent::new("screen_view", time).with("screen", text(screen))
            } else if roll < 0.75 {
                AppEvent::new("click", time)
                    .with("screen", text(screen))
                    .with("category", text(category))
                    .with("position", Prop::Int(self.rng.random_range(0..10i64)))
            } else if roll < 0.95 {
                AppEvent::new("scroll", time)
                    .with("screen", text(screen))
                    .with(
                        "depth",
                        Prop::Float((self.rng.random::<f64>() * 100.0).round() / 100.0),
                    )
            } else {
                AppEvent::new("purchase", time)
                    .with("category", text(category))
                    .with(
                        "amount",
                        Prop::Float((self.rng.random_range(2.0..120.0f64) * 100.0).round() / 100.0),
                    )
            };
            events.push(event);
        }
        events
    }

    /// A category drawn from the user's preferences.
    fn category(&mut self) -> &'static str {
        let mut x: f64 = self.rng.random();
        for (category, weight) in CATEGORIES.iter().zip(&self.preferences) {
            if x < *weight {
                return category;
            }
            x -= weight;
        }
        CATEGORIES[CATEGORIES.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_user() {
        let (mut a, mut b) = (User::new(7), User::new(7));
        assert_eq!(a.preferences, b.preferences);
        assert_eq!(a.tastes, b.tastes);
        assert_eq!(a.session(1_760_000_000_000), b.session(1_760_000_000_000));
        assert_ne!(User::new(8).preferences, a.preferences);
    }

    #[test]
    fn clicks_follow_preferences() {
        let mut user = User::new(3);
        let favourite = (0..CATEGORIES.len())
            .max_by(|&i, &j| user.preferences[i].total_cmp(&user.preferences[j]))
            .unwrap();
        let mut counts = vec![0usize; CATEGORIES.len()];
        for s in 0..400 {
            for event in user.session(1_760_000_000_000 + s * 3_600_000) {
                if let Some(c) = event.text("category") {
                    counts[CATEGORIES.iter().position(|x| *x == c).unwrap()] += 1;
                }
            }
        }
        let most = (0..counts.len()).max_by_key(|&i| counts[i]).unwrap();
        assert_eq!(most, favourite);
        // The topic the user clicks most in the daytime is the one they prefer.
        let day = &user.tastes.topic_click_day;
        let best = (0..day.len()).max_by(|&i, &j| day[i].total_cmp(&day[j]));
        assert_eq!(best, Some(favourite));
    }

    #[test]
    fn a_drift_changes_the_favourite_layout_at_its_time() {
        let mut user = User::new(11);
        let argmax = |v: &[f64]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
        let before = argmax(&user.tastes.layout_click);
        assert_eq!(argmax(&user.tastes_at(5).layout_click), before);
        user.drift_at_ms = Some(1_000);
        assert_eq!(argmax(&user.tastes_at(999).layout_click), before);
        assert_ne!(argmax(&user.tastes_at(1_000).layout_click), before);
    }

    #[test]
    fn events_cross_to_the_sdk_unchanged() {
        let event = AppEvent::new("click", 5)
            .with("screen", Prop::Text("home".into()))
            .with("position", Prop::Int(3))
            .with("depth", Prop::Float(0.5));
        let sdk = event.to_event();
        assert_eq!(sdk.name, "click");
        assert_eq!(sdk.time_ms, Some(5));
        assert_eq!(sdk.properties[1], ("position".to_owned(), Value::Int(3)));
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<AppEvent>(&json).unwrap(), event);
    }
}
