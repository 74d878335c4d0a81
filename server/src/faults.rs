//! Faults injected on purpose into the ingest route, so that tests and the device emulator can
//! watch devices cope with a failing server. Empty unless someone queues a fault.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// One injected fault, consumed by one ingest request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` in seconds, if given) without storing.
    Status {
        /// The HTTP status code.
        status: u16,
        /// `Retry-After` value in seconds.
        retry_after_s: Option<u64>,
    },
    /// Wait this long before handling the request normally.
    Delay(Duration),
}

/// A queue of faults, each consumed by the next ingest request.
#[derive(Debug, Default)]
pub struct Faults {
    queue: Mutex<VecDeque<Fault>>,
}

impl Faults {
    /// Queues `fault` for the next `count` ingest requests.
    pub fn push(&self, fault: Fault, count: usize) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.extend(std::iter::repeat_n(fault, count));
    }

    /// Removes every queued fault.
    pub fn clear(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub(crate) fn next(&self) -> Option<Fault> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}
