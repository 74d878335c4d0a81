//! Capture: the event model and its validation.

mod event;
mod validate;

pub use event::Event;
pub use starling_proto::batch::Value;
pub(crate) use validate::validate;
pub use validate::{InvalidEvent, Limits};
