//! Simulated users: seeded habits (when they open the app, how long they stay) and preferences
//! (which content categories they engage with), known to the emulator so that what the SDK
//! learns can be checked against the truth.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_core::Event;

/// Content categories a user can prefer.
pub const CATEGORIES: &[&str] = &["news", "sports", "music", "food", "travel", "tech"];
const SCREENS: &[&str] = &["home", "feed", "article", "search", "profile", "checkout"];

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
        User {
            hourly_activity,
            preferences: raw.iter().map(|w| w / total).collect(),
            events_per_session: rng.random_range(5.0..30.0),
            rng,
        }
    }

    /// Whether this user opens the app in the given hour of the day.
    pub fn opens_app(&mut self, hour_of_day: usize) -> bool {
        let p = self.hourly_activity[hour_of_day % 24];
        self.rng.random_bool(p)
    }

    /// The events of one session starting at `start_ms`.
    pub fn session(&mut self, start_ms: i64) -> Vec<Event> {
        let count = 1 + self.rng.random_range(0.0..2.0 * self.events_per_session) as usize;
        let mut time = start_ms;
        let mut events = Vec::with_capacity(count + 1);
        events.push(Event::new("session_start").at(time));
        for _ in 0..count {
            time += self.rng.random_range(1_000..45_000);
            let category = self.category();
            let screen = SCREENS[self.rng.random_range(0..SCREENS.len())];
            let roll: f64 = self.rng.random();
            let event = if roll < 0.35 {
                Event::new("screen_view").with("screen", screen)
            } else if roll < 0.75 {
                Event::new("click")
                    .with("screen", screen)
                    .with("category", category)
                    .with("position", self.rng.random_range(0..10i64))
            } else if roll < 0.95 {
                Event::new("scroll")
                    .with("screen", screen)
                    .with("depth", (self.rng.random::<f64>() * 100.0).round() / 100.0)
            } else {
                Event::new("purchase").with("category", category).with(
                    "amount",
                    (self.rng.random_range(2.0..120.0f64) * 100.0).round() / 100.0,
                )
            };
            events.push(event.at(time));
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
                if let Some((_, starling_core::Value::String(c))) =
                    event.properties.iter().find(|(k, _)| k == "category")
                {
                    counts[CATEGORIES.iter().position(|x| x == c).unwrap()] += 1;
                }
            }
        }
        let most = (0..counts.len()).max_by_key(|&i| counts[i]).unwrap();
        assert_eq!(most, favourite);
    }
}
