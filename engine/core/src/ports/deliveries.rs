//! Webhook deliveries already acted on: the id a sender gives each delivery
//! (`X-Weft-Delivery`, `X-GitHub-Delivery`), kept with the run it started
//! for a while, so the same delivery sent again starts nothing.

use async_trait::async_trait;

use crate::run::Millis;
use crate::Error;

/// Most deliveries remembered at once; past it, those that expire soonest
/// are forgotten first.
pub const MAX_DELIVERIES: usize = 100_000;

/// The delivery record port.
#[async_trait]
pub trait Deliveries: Send + Sync {
    /// Records that delivery `key` starts run `run_id`, until `expires_at`,
    /// unless a live record of `key` exists: then the run it names, and
    /// nothing changes.
    ///
    /// # Contract
    /// Of calls racing with one key, exactly one records it (gets `None`);
    /// an expired record counts as none.
    async fn record_delivery(
        &self,
        key: &str,
        run_id: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<Option<String>, Error>;
}
