//! Building and reading the columnar [`EventBatch`](crate::v1::EventBatch).
//!
//! The device and the server agree on one event model, [`WireEvent`]; [`BatchBuilder`] turns a
//! sequence of them into the compact columnar message, and [`decode_events`] turns a message back
//! into events, checking every index and column length on the way (the server runs it on
//! untrusted input).

use std::collections::HashMap;

use crate::v1::{EventBatch, LossCount, PropertyKind};

/// A typed property value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// UTF-8 text.
    String(String),
    /// A signed 64-bit integer.
    Int(i64),
    /// A finite 64-bit float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A point in time, Unix epoch milliseconds.
    TimestampMs(i64),
}

impl From<&Value> for crate::v1::stored_property::Value {
    /// The device-local storage form of a value (`storage.proto`).
    fn from(value: &Value) -> Self {
        use crate::v1::stored_property::Value as Stored;
        match value {
            Value::String(s) => Stored::StringValue(s.clone()),
            Value::Int(i) => Stored::IntValue(*i),
            Value::Float(f) => Stored::FloatValue(*f),
            Value::Bool(b) => Stored::BoolValue(*b),
            Value::TimestampMs(t) => Stored::TimestampMs(*t),
        }
    }
}

impl From<crate::v1::stored_property::Value> for Value {
    fn from(stored: crate::v1::stored_property::Value) -> Self {
        use crate::v1::stored_property::Value as Stored;
        match stored {
            Stored::StringValue(s) => Value::String(s),
            Stored::IntValue(i) => Value::Int(i),
            Stored::FloatValue(f) => Value::Float(f),
            Stored::BoolValue(b) => Value::Bool(b),
            Stored::TimestampMs(t) => Value::TimestampMs(t),
        }
    }
}

/// One event as it travels on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct WireEvent {
    /// Per-device event sequence number: the event's id for deduplication.
    pub seq: u64,
    /// Event time, Unix epoch milliseconds.
    pub time_ms: i64,
    /// Event name.
    pub name: String,
    /// Properties, in the order the app gave them.
    pub properties: Vec<(String, Value)>,
}

/// The header fields of a batch, chosen when the device seals it.
#[derive(Debug, Clone)]
pub struct BatchHeader {
    /// 16 random bytes.
    pub batch_id: Vec<u8>,
    /// The device's pseudonymous id.
    pub device_id: String,
    /// Per-device batch sequence number.
    pub sequence: u64,
    /// The app's event schema version.
    pub schema_version: u32,
    /// The SDK version sealing the batch.
    pub sdk_version: String,
    /// Device wall-clock time at sealing, Unix epoch milliseconds.
    pub sealed_at_ms: i64,
}

/// Accumulates events into a columnar [`EventBatch`].
#[derive(Debug)]
pub struct BatchBuilder {
    batch: EventBatch,
    string_index: HashMap<String, u32>,
    last_time_ms: i64,
    last_seq: u64,
    events: usize,
}

impl BatchBuilder {
    /// Starts an empty batch with the given header.
    pub fn new(header: BatchHeader) -> Self {
        let batch = EventBatch {
            batch_id: header.batch_id,
            device_id: header.device_id,
            sequence: header.sequence,
            schema_version: header.schema_version,
            sdk_version: header.sdk_version,
            sealed_at_ms: header.sealed_at_ms,
            ..Default::default()
        };
        BatchBuilder {
            batch,
            string_index: HashMap::new(),
            last_time_ms: 0,
            last_seq: 0,
            events: 0,
        }
    }

    /// Number of events added so far.
    pub fn len(&self) -> usize {
        self.events
    }

    /// True when no event has been added.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Adds one event. Sequence numbers must be increasing within a batch.
    pub fn push(&mut self, seq: u64, time_ms: i64, name: &str, properties: &[(String, Value)]) {
        let name_index = self.intern(name);
        self.batch.names.push(name_index);
        self.batch
            .time_deltas_ms
            .push(time_ms.wrapping_sub(self.last_time_ms));
        self.batch.seq_deltas.push(seq.wrapping_sub(self.last_seq));
        self.batch.property_counts.push(properties.len() as u32);
        self.last_time_ms = time_ms;
        self.last_seq = seq;

        for (key, value) in properties {
            let key_index = self.intern(key);
            let kind = match value {
                Value::String(s) => {
                    let index = self.intern(s);
                    self.batch.string_values.push(index);
                    PropertyKind::String
                }
                Value::Int(i) => {
                    self.batch.int_values.push(*i);
                    PropertyKind::Int
                }
                Value::Float(f) => {
                    self.batch.float_values.push(*f);
                    PropertyKind::Float
                }
                Value::Bool(b) => {
                    self.batch.bool_values.push(*b);
                    PropertyKind::Bool
                }
                Value::TimestampMs(t) => {
                    self.batch.timestamp_values.push(t.wrapping_sub(time_ms));
                    PropertyKind::Timestamp
                }
            };
            self.batch.property_keys.push(key_index << 3 | kind as u32);
        }
        self.events += 1;
    }

    /// Records events lost on the device, reported with this batch.
    pub fn add_loss(&mut self, reason: &str, events: u64) {
        if events > 0 {
            self.batch.losses.push(LossCount {
                reason: reason.to_owned(),
                events,
            });
        }
    }

    /// Returns the finished message.
    pub fn finish(self) -> EventBatch {
        self.batch
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&index) = self.string_index.get(s) {
            return index;
        }
        let index = self.batch.strings.len() as u32;
        self.batch.strings.push(s.to_owned());
        self.string_index.insert(s.to_owned(), index);
        index
    }
}

/// Why a batch could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The event columns do not all have one entry per event.
    ColumnLength(&'static str),
    /// A string index points outside the string table.
    StringIndex(u32),
    /// A property kind is not one this version knows.
    UnknownKind(u32),
    /// Event sequence numbers are not strictly increasing.
    SequenceOrder,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::ColumnLength(column) => {
                write!(
                    f,
                    "column `{column}` does not match the number of events or properties"
                )
            }
            DecodeError::StringIndex(index) => {
                write!(f, "string index {index} is outside the string table")
            }
            DecodeError::UnknownKind(kind) => write!(f, "unknown property kind {kind}"),
            DecodeError::SequenceOrder => {
                f.write_str("event sequence numbers are not strictly increasing")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes every event of a batch, checking that all columns and indices are consistent.
pub fn decode_events(batch: &EventBatch) -> Result<Vec<WireEvent>, DecodeError> {
    let n = batch.names.len();
    if batch.time_deltas_ms.len() != n {
        return Err(DecodeError::ColumnLength("time_deltas_ms"));
    }
    if batch.seq_deltas.len() != n {
        return Err(DecodeError::ColumnLength("seq_deltas"));
    }
    if batch.property_counts.len() != n {
        return Err(DecodeError::ColumnLength("property_counts"));
    }
    let total_properties: u64 = batch.property_counts.iter().map(|&c| u64::from(c)).sum();
    if total_properties != batch.property_keys.len() as u64 {
        return Err(DecodeError::ColumnLength("property_keys"));
    }

    let string = |index: u32| -> Result<&String, DecodeError> {
        batch
            .strings
            .get(index as usize)
            .ok_or(DecodeError::StringIndex(index))
    };
    let mut strings = batch.string_values.iter();
    let mut ints = batch.int_values.iter();
    let mut floats = batch.float_values.iter();
    let mut bools = batch.bool_values.iter();
    let mut timestamps = batch.timestamp_values.iter();
    let mut keys = batch.property_keys.iter();

    let mut events = Vec::with_capacity(n);
    let mut time_ms: i64 = 0;
    let mut seq: u64 = 0;
    for i in 0..n {
        time_ms = time_ms.wrapping_add(batch.time_deltas_ms[i]);
        let delta = batch.seq_deltas[i];
        if delta == 0 && i > 0 {
            return Err(DecodeError::SequenceOrder);
        }
        seq = seq.checked_add(delta).ok_or(DecodeError::SequenceOrder)?;

        let count = batch.property_counts[i] as usize;
        let mut properties = Vec::with_capacity(count);
        for _ in 0..count {
            let packed = *keys
                .next()
                .ok_or(DecodeError::ColumnLength("property_keys"))?;
            let key = string(packed >> 3)?.clone();
            let value = match PropertyKind::try_from((packed & 7) as i32) {
                Ok(PropertyKind::String) => {
                    let index = *strings
                        .next()
                        .ok_or(DecodeError::ColumnLength("string_values"))?;
                    Value::String(string(index)?.clone())
                }
                Ok(PropertyKind::Int) => {
                    Value::Int(*ints.next().ok_or(DecodeError::ColumnLength("int_values"))?)
                }
                Ok(PropertyKind::Float) => Value::Float(
                    *floats
                        .next()
                        .ok_or(DecodeError::ColumnLength("float_values"))?,
                ),
                Ok(PropertyKind::Bool) => Value::Bool(
                    *bools
                        .next()
                        .ok_or(DecodeError::ColumnLength("bool_values"))?,
                ),
                Ok(PropertyKind::Timestamp) => {
                    let offset = *timestamps
                        .next()
                        .ok_or(DecodeError::ColumnLength("timestamp_values"))?;
                    Value::TimestampMs(time_ms.wrapping_add(offset))
                }
                Err(_) => return Err(DecodeError::UnknownKind(packed & 7)),
            };
            properties.push((key, value));
        }

        events.push(WireEvent {
            seq,
            time_ms,
            name: string(batch.names[i])?.clone(),
            properties,
        });
    }

    let leftovers = [
        ("string_values", strings.next().is_some()),
        ("int_values", ints.next().is_some()),
        ("float_values", floats.next().is_some()),
        ("bool_values", bools.next().is_some()),
        ("timestamp_values", timestamps.next().is_some()),
    ];
    if let Some((column, _)) = leftovers.iter().find(|(_, extra)| *extra) {
        return Err(DecodeError::ColumnLength(column));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> BatchHeader {
        BatchHeader {
            batch_id: vec![7; 16],
            device_id: "d1".into(),
            sequence: 3,
            schema_version: 1,
            sdk_version: "0.1.0".into(),
            sealed_at_ms: 1_700_000_000_000,
        }
    }

    fn sample() -> Vec<WireEvent> {
        vec![
            WireEvent {
                seq: 10,
                time_ms: 1_700_000_000_000,
                name: "screen_view".into(),
                properties: vec![
                    ("screen".into(), Value::String("home".into())),
                    ("depth".into(), Value::Float(0.5)),
                ],
            },
            WireEvent {
                seq: 11,
                time_ms: 1_699_999_999_000,
                name: "click".into(),
                properties: vec![
                    ("screen".into(), Value::String("home".into())),
                    ("n".into(), Value::Int(-4)),
                    ("ok".into(), Value::Bool(true)),
                    ("at".into(), Value::TimestampMs(1_600_000_000_000)),
                ],
            },
            WireEvent {
                seq: 15,
                time_ms: 1_700_000_000_100,
                name: "click".into(),
                properties: vec![],
            },
        ]
    }

    #[test]
    fn round_trip_preserves_every_field() {
        let mut builder = BatchBuilder::new(header());
        for e in sample() {
            builder.push(e.seq, e.time_ms, &e.name, &e.properties);
        }
        builder.add_loss("evicted_size", 4);
        let batch = builder.finish();
        assert_eq!(
            batch.strings.len(),
            8,
            "each distinct string is stored once"
        );
        assert_eq!(decode_events(&batch).unwrap(), sample());
        assert_eq!(batch.losses[0].events, 4);
    }

    #[test]
    fn inconsistent_columns_are_rejected() {
        let mut builder = BatchBuilder::new(header());
        for e in sample() {
            builder.push(e.seq, e.time_ms, &e.name, &e.properties);
        }
        let good = builder.finish();

        let mut b = good.clone();
        b.time_deltas_ms.pop();
        assert_eq!(
            decode_events(&b),
            Err(DecodeError::ColumnLength("time_deltas_ms"))
        );

        let mut b = good.clone();
        b.names[0] = 99;
        assert_eq!(decode_events(&b), Err(DecodeError::StringIndex(99)));

        let mut b = good.clone();
        b.property_keys[0] |= 7;
        assert_eq!(decode_events(&b), Err(DecodeError::UnknownKind(7)));

        let mut b = good.clone();
        b.seq_deltas[1] = 0;
        assert_eq!(decode_events(&b), Err(DecodeError::SequenceOrder));

        let mut b = good.clone();
        b.int_values.push(1);
        assert_eq!(
            decode_events(&b),
            Err(DecodeError::ColumnLength("int_values"))
        );

        let mut b = good;
        b.property_counts[2] = 1;
        assert_eq!(
            decode_events(&b),
            Err(DecodeError::ColumnLength("property_keys"))
        );
    }
}
