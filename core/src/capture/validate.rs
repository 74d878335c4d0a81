//! Validation of events before they are accepted. Each rule has its own error so that an app
//! developer sees exactly what to fix.

use starling_proto::batch::Value;

use super::Event;

/// Fixed bounds on the shape of an event.
#[derive(Debug, Clone, Copy)]
pub struct Limits;

impl Limits {
    /// Longest event name or property key, in bytes.
    pub const MAX_NAME_BYTES: usize = 64;
    /// Most properties on one event.
    pub const MAX_PROPERTIES: usize = 32;
    /// Longest string property value, in bytes.
    pub const MAX_STRING_BYTES: usize = 1024;
    /// Earliest accepted event time: 2000-01-01T00:00:00Z, in Unix epoch ms. Earlier times
    /// are almost always a unit mistake (seconds instead of milliseconds).
    pub const MIN_TIME_MS: i64 = 946_684_800_000;
}

/// Why an event was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEvent {
    /// The event name is empty.
    #[error("the event name is empty")]
    EmptyName,
    /// A name or key is longer than [`Limits::MAX_NAME_BYTES`].
    #[error("{what} {name:?} is {len} bytes long; the limit is {max}")]
    NameTooLong {
        /// "event name" or "property key".
        what: &'static str,
        /// The offending name, cut to the limit.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A name or key does not match `[a-z][a-z0-9_]*` segments joined by dots.
    #[error(
        "{what} {name:?} is not allowed: use lower-case letters, digits and '_' in segments \
         joined by '.', each starting with a letter (problem at byte {position})"
    )]
    BadName {
        /// "event name" or "property key".
        what: &'static str,
        /// The offending name.
        name: String,
        /// Byte offset of the first character that breaks the rule.
        position: usize,
    },
    /// The event has more than [`Limits::MAX_PROPERTIES`] properties.
    #[error("the event has {count} properties; the limit is {max}")]
    TooManyProperties {
        /// Number of properties given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The same key appears twice.
    #[error("property key {0:?} appears more than once")]
    DuplicateKey(String),
    /// A string value is longer than [`Limits::MAX_STRING_BYTES`].
    #[error("the value of property {key:?} is {len} bytes long; the limit is {max}")]
    StringTooLong {
        /// The property key.
        key: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A float value is NaN or infinite.
    #[error("the value of property {key:?} is {value}, which is not a finite number")]
    NotFinite {
        /// The property key.
        key: String,
        /// The value, for the message.
        value: f64,
    },
    /// The event time (or a timestamp property) lies too far in the future.
    #[error("{what} is {ahead_ms} ms ahead of the device clock; at most {max_ms} ms is allowed")]
    TimeInFuture {
        /// "the event time" or "property <key>".
        what: String,
        /// How far ahead, in ms.
        ahead_ms: i64,
        /// The configured skew allowance, in ms.
        max_ms: u64,
    },
    /// The event time lies before 2000-01-01, usually seconds passed instead of milliseconds.
    #[error("the event time {0} ms is before the year 2000; times are Unix epoch milliseconds")]
    TimeTooEarly(i64),
}

/// Checks an event against every rule; `now_ms` is the device clock.
pub(crate) fn validate(
    event: &Event,
    now_ms: i64,
    max_future_skew_ms: u64,
) -> Result<(), InvalidEvent> {
    check_name("event name", &event.name)?;
    if let Some(time_ms) = event.time_ms {
        check_time("the event time".into(), time_ms, now_ms, max_future_skew_ms)?;
    }

    if event.properties.len() > Limits::MAX_PROPERTIES {
        return Err(InvalidEvent::TooManyProperties {
            count: event.properties.len(),
            max: Limits::MAX_PROPERTIES,
        });
    }
    for (i, (key, value)) in event.properties.iter().enumerate() {
        check_name("property key", key)?;
        if event.properties[..i].iter().any(|(k, _)| k == key) {
            return Err(InvalidEvent::DuplicateKey(key.clone()));
        }
        match value {
            Value::String(s) if s.len() > Limits::MAX_STRING_BYTES => {
                return Err(InvalidEvent::StringTooLong {
                    key: key.clone(),
                    len: s.len(),
                    max: Limits::MAX_STRING_BYTES,
                })
            }
            Value::Float(f) if !f.is_finite() => {
                return Err(InvalidEvent::NotFinite {
                    key: key.clone(),
                    value: *f,
                })
            }
            Value::TimestampMs(t) => {
                check_time(format!("property {key:?}"), *t, now_ms, max_future_skew_ms)?
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_name(what: &'static str, name: &str) -> Result<(), InvalidEvent> {
    if name.is_empty() {
        return Err(if what == "event name" {
            InvalidEvent::EmptyName
        } else {
            InvalidEvent::BadName {
                what,
                name: String::new(),
                position: 0,
            }
        });
    }
    if name.len() > Limits::MAX_NAME_BYTES {
        let mut cut = Limits::MAX_NAME_BYTES;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        return Err(InvalidEvent::NameTooLong {
            what,
            name: name[..cut].to_owned(),
            len: name.len(),
            max: Limits::MAX_NAME_BYTES,
        });
    }

    // Segments of [a-z][a-z0-9_]* joined by single dots.
    let mut segment_start = true;
    for (position, byte) in name.bytes().enumerate() {
        let ok = match byte {
            b'a'..=b'z' => true,
            b'0'..=b'9' | b'_' => !segment_start,
            b'.' => !segment_start && position + 1 < name.len(),
            _ => false,
        };
        if !ok {
            return Err(InvalidEvent::BadName {
                what,
                name: name.to_owned(),
                position,
            });
        }
        segment_start = byte == b'.';
    }
    Ok(())
}

fn check_time(
    what: String,
    time_ms: i64,
    now_ms: i64,
    max_future_skew_ms: u64,
) -> Result<(), InvalidEvent> {
    if time_ms < Limits::MIN_TIME_MS {
        return Err(InvalidEvent::TimeTooEarly(time_ms));
    }
    let ahead_ms = time_ms.saturating_sub(now_ms);
    if ahead_ms > max_future_skew_ms as i64 {
        return Err(InvalidEvent::TimeInFuture {
            what,
            ahead_ms,
            max_ms: max_future_skew_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000_000;

    fn check(event: Event) -> Result<(), InvalidEvent> {
        validate(&event, NOW, 3_600_000)
    }

    #[test]
    fn accepts_well_formed_events() {
        let event = Event::new("checkout.purchase_done")
            .with("amount", 12.5)
            .with("items", 3)
            .with("currency", "EUR")
            .with("gift", false)
            .with("ordered_at", Value::TimestampMs(NOW - 1000))
            .at(NOW);
        assert_eq!(check(event), Ok(()));
    }

    #[test]
    fn names_follow_the_pattern() {
        assert_eq!(check(Event::new("")), Err(InvalidEvent::EmptyName));
        for (name, position) in [
            ("Click", 0),
            ("1click", 0),
            ("click-now", 5),
            ("click.", 5),
            (".click", 0),
            ("a..b", 2),
            ("a._b", 2),
            ("café", 3),
        ] {
            match check(Event::new(name)) {
                Err(InvalidEvent::BadName { position: p, .. }) => {
                    assert_eq!(p, position, "{name}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let long = "a".repeat(65);
        assert!(matches!(
            check(Event::new(long)),
            Err(InvalidEvent::NameTooLong {
                len: 65,
                max: 64,
                ..
            })
        ));
        assert_eq!(check(Event::new("a".repeat(64))), Ok(()));
    }

    #[test]
    fn properties_are_checked() {
        let mut event = Event::new("e");
        for i in 0..33 {
            event = event.with(format!("k{i}"), i);
        }
        assert!(matches!(
            check(event),
            Err(InvalidEvent::TooManyProperties { count: 33, max: 32 })
        ));
        assert_eq!(
            check(Event::new("e").with("k", 1).with("k", 2)),
            Err(InvalidEvent::DuplicateKey("k".into()))
        );
        assert!(matches!(
            check(Event::new("e").with("Bad", 1)),
            Err(InvalidEvent::BadName {
                what: "property key",
                ..
            })
        ));
        assert!(matches!(
            check(Event::new("e").with("s", "x".repeat(1025))),
            Err(InvalidEvent::StringTooLong { len: 1025, .. })
        ));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                check(Event::new("e").with("f", bad)),
                Err(InvalidEvent::NotFinite { .. })
            ));
        }
    }

    #[test]
    fn times_must_be_plausible() {
        assert!(matches!(
            check(Event::new("e").at(NOW + 3_600_001)),
            Err(InvalidEvent::TimeInFuture {
                ahead_ms: 3_600_001,
                ..
            })
        ));
        assert_eq!(check(Event::new("e").at(NOW + 3_600_000)), Ok(()));
        assert_eq!(
            check(Event::new("e").at(1_750_000_000)),
            Err(InvalidEvent::TimeTooEarly(1_750_000_000))
        );
        assert!(matches!(
            check(Event::new("e").with("t", Value::TimestampMs(NOW + 10_000_000))),
            Err(InvalidEvent::TimeInFuture { .. })
        ));
    }

    #[test]
    fn messages_name_the_problem() {
        let err = check(Event::new("e").with("depth", f64::NAN)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the value of property \"depth\" is NaN, which is not a finite number"
        );
    }
}
