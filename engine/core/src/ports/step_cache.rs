//! Where results kept for later runs live (`cache = true`): entries by key,
//! each used until it expires, at most [`MAX_CACHE_ENTRIES`] of them.

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::artifacts::Digest;
use crate::cache::CacheEntry;
use crate::run::Millis;
use crate::Error;

/// Most entries a store keeps; past it, the one that expires soonest goes.
pub const MAX_CACHE_ENTRIES: usize = 100_000;

/// The step cache port.
#[async_trait]
pub trait StepCache: Send + Sync {
    /// The entry under `key` if it is live at `now`.
    async fn cached(&self, key: &Digest, now: Millis) -> Result<Option<CacheEntry>, Error>;

    /// Keeps `entry` under `key` until its `expires_at`, replacing one
    /// there.
    ///
    /// # Contract
    /// Past [`MAX_CACHE_ENTRIES`] entries the one that expires soonest is
    /// removed: saving never fails for want of room.
    async fn save_cached(&self, key: &Digest, entry: &CacheEntry) -> Result<(), Error>;

    /// Removes the entries expired at `now`; how many it removed.
    async fn prune_cached(&self, now: Millis) -> Result<u64, Error>;

    /// The artifacts live entries at `now` refer to: retention keeps them.
    async fn cached_artifacts(&self, now: Millis) -> Result<BTreeSet<Digest>, Error>;
}
