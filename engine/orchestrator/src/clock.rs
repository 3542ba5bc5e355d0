//! The wall clock, as the `Clock` port.

use std::time::{SystemTime, UNIX_EPOCH};

use weft_core::ports::Clock;
use weft_core::run::Millis;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis)
    }
}
