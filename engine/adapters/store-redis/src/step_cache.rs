//! `StepCache` on Redis: one hash of entries by key, and a sorted set of
//! the keys by expiry, changed together by scripts so the bound holds with
//! several servers.

use std::collections::BTreeSet;

use async_trait::async_trait;
use weft_core::artifacts::Digest;
use weft_core::cache::CacheEntry;
use weft_core::ports::{StepCache, MAX_CACHE_ENTRIES};
use weft_core::Error;

use crate::store::{decode, encode, redis_err};
use crate::RedisRunStore;

/// Saves ARGV[2] under field ARGV[1] expiring at ARGV[3]; past ARGV[4]
/// entries, drops the ones that expire soonest.
const SAVE_BOUNDED: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  for _, k in ipairs(redis.call('ZPOPMIN', KEYS[2], over)) do
    redis.call('HDEL', KEYS[1], k)
  end
end
return 1
"#;

/// Removes up to ARGV[2] entries that expired by ARGV[1]; how many.
const PRUNE: &str = r#"
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, k in ipairs(gone) do
  redis.call('HDEL', KEYS[1], k)
  redis.call('ZREM', KEYS[2], k)
end
return #gone
"#;

impl RedisRunStore {
    fn cache_keys(&self) -> (String, String) {
        (self.key(&["cache"]), self.key(&["cache", "expiry"]))
    }
}

#[async_trait]
impl StepCache for RedisRunStore {
    async fn cached(&self, key: &Digest, now: u64) -> Result<Option<CacheEntry>, Error> {
        let (entries, _) = self.cache_keys();
        let raw: Option<String> =
            crate::retry::retrying(self.retry_for(), "reading the step cache", || {
                let (mut conn, entries) = (self.conn(), entries.clone());
                async move {
                    redis::cmd("HGET")
                        .arg(entries)
                        .arg(key.as_str())
                        .query_async(&mut conn)
                        .await
                }
            })
            .await?;
        Ok(raw
            .map(|r| decode::<CacheEntry>(&r))
            .transpose()?
            .filter(|e| e.is_live(now)))
    }

    async fn save_cached(&self, key: &Digest, entry: &CacheEntry) -> Result<(), Error> {
        let (entries, expiry) = self.cache_keys();
        let _: i64 = redis::Script::new(SAVE_BOUNDED)
            .key(&entries)
            .key(&expiry)
            .arg(key.as_str())
            .arg(encode(entry)?)
            .arg(entry.expires_at)
            .arg(MAX_CACHE_ENTRIES)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err("saving to the step cache"))?;
        self.expire_key(&entries).await?;
        self.expire_key(&expiry).await
    }

    async fn prune_cached(&self, now: u64) -> Result<u64, Error> {
        let (entries, expiry) = self.cache_keys();
        let mut total = 0;
        loop {
            // In slices, so no one script holds the server for long.
            let n: u64 = redis::Script::new(PRUNE)
                .key(&entries)
                .key(&expiry)
                .arg(now)
                .arg(1000)
                .invoke_async(&mut self.conn())
                .await
                .map_err(redis_err("pruning the step cache"))?;
            total += n;
            if n < 1000 {
                return Ok(total);
            }
        }
    }

    async fn cached_artifacts(&self, now: u64) -> Result<BTreeSet<Digest>, Error> {
        let (entries, _) = self.cache_keys();
        let mut conn = self.conn();
        let mut kept = BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                .arg(&entries)
                .arg(cursor)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .map_err(redis_err("reading the step cache"))?;
            for (_, raw) in page {
                let entry: CacheEntry = decode(&raw)?;
                if entry.is_live(now) {
                    kept.extend(entry.artifacts.values().map(|a| a.digest.clone()));
                }
            }
            if next == 0 {
                return Ok(kept);
            }
            cursor = next;
        }
    }
}
