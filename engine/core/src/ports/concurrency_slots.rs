//! The cluster's concurrency keys: which runs hold a key's slots and which
//! wait in line for them (the rule is `crate::concurrency::KeySlots`).

use async_trait::async_trait;

use crate::concurrency::{QueueSpot, SlotAnswer};
use crate::Error;

/// The concurrency slots port.
#[async_trait]
pub trait ConcurrencySlots: Send + Sync {
    /// Asks for a slot of `spot.key` for `run_id` (see `KeySlots::acquire`):
    /// granted, or in line, or refused as the line is full.
    ///
    /// # Contract
    /// Asking again is safe (a holder stays a holder, a waiter keeps its
    /// place); of calls racing for one key, never more than the limit are
    /// granted.
    async fn acquire_slot(&self, run_id: &str, spot: &QueueSpot) -> Result<SlotAnswer, Error>;

    /// Gives up `run_id`'s slot of `key`, or its place in line. Releasing
    /// what is not held is no error.
    async fn release_slot(&self, key: &str, run_id: &str) -> Result<(), Error>;
}
