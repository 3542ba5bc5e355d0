//! Time as a port, so the core and tests never read the wall clock.

use crate::run::Millis;

/// Where the engine gets "now" from.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch; never goes backwards within a process.
    fn now(&self) -> Millis;
}
