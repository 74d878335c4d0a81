use starling_proto::batch::Value;

/// An engagement event: a name, an optional time, and typed properties.
///
/// ```
/// use starling_core::{Event, Value};
/// let event = Event::new("screen_view")
///     .with("screen", "home")
///     .with("scroll_depth", 0.75)
///     .with("first_visit", true);
/// assert_eq!(event.properties.len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Lower-case name such as `screen_view` or `checkout.purchase`.
    pub name: String,
    /// When it happened, Unix epoch milliseconds; `None` means now.
    pub time_ms: Option<i64>,
    /// Properties in the order given. Keys follow the same rules as names.
    pub properties: Vec<(String, Value)>,
}

impl Event {
    /// An event with this name, happening now, with no properties.
    pub fn new(name: impl Into<String>) -> Self {
        Event {
            name: name.into(),
            time_ms: None,
            properties: Vec::new(),
        }
    }

    /// Adds a property.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<PropertyValue>) -> Self {
        self.properties.push((key.into(), value.into().0));
        self
    }

    /// Sets the event time, Unix epoch milliseconds.
    pub fn at(mut self, time_ms: i64) -> Self {
        self.time_ms = Some(time_ms);
        self
    }
}

/// Conversion helper for [`Event::with`]: lets plain Rust values stand for property values.
#[derive(Debug)]
pub struct PropertyValue(pub Value);

impl From<Value> for PropertyValue {
    fn from(v: Value) -> Self {
        PropertyValue(v)
    }
}
impl From<&str> for PropertyValue {
    fn from(v: &str) -> Self {
        PropertyValue(Value::String(v.to_owned()))
    }
}
impl From<String> for PropertyValue {
    fn from(v: String) -> Self {
        PropertyValue(Value::String(v))
    }
}
impl From<i64> for PropertyValue {
    fn from(v: i64) -> Self {
        PropertyValue(Value::Int(v))
    }
}
impl From<i32> for PropertyValue {
    fn from(v: i32) -> Self {
        PropertyValue(Value::Int(v.into()))
    }
}
impl From<f64> for PropertyValue {
    fn from(v: f64) -> Self {
        PropertyValue(Value::Float(v))
    }
}
impl From<bool> for PropertyValue {
    fn from(v: bool) -> Self {
        PropertyValue(Value::Bool(v))
    }
}
