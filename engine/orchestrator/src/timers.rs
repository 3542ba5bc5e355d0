//! Pending retry and deadline timers of one run.

use std::collections::BTreeMap;

use tokio::time::Instant;
use weft_core::run::Event;

/// Events boxed: a map node holds eleven values, and one run waiting on a
/// single timer (an approval's) should not carry eleven events' room.
#[derive(Default)]
pub(crate) struct Timers {
    due: BTreeMap<(Instant, u64), Box<Event>>,
    seq: u64,
}

impl Timers {
    pub fn arm(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.due.insert((at, self.seq), Box::new(event));
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.due.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer if it is due.
    pub fn pop_due(&mut self, now: Instant) -> Option<Event> {
        let key = *self.due.keys().next()?;
        (key.0 <= now)
            .then(|| self.due.remove(&key))
            .flatten()
            .map(|e| *e)
    }
}
