//! `ConcurrencySlots` on Redis: per key, a sorted set of holders and a
//! sorted set of the line by rank, changed by one script that mirrors
//! `KeySlots::acquire`, so racing servers never pass a key's limit.

use async_trait::async_trait;
use weft_core::concurrency::{QueueSpot, SlotAnswer, MAX_HOLDERS_SHOWN, MAX_WAITING_PER_KEY};
use weft_core::ports::ConcurrencySlots;
use weft_core::Error;

use crate::store::redis_err;
use crate::RedisRunStore;

/// KEYS[1] = holders (score 0, so in name order), KEYS[2] = the line (by
/// rank, then name); ARGV[1] = run, ARGV[2] = limit, ARGV[3] = rank,
/// ARGV[4] = most waiting, ARGV[5] = most holders returned.
/// Returns {'granted'}, {'full'} or {'waiting', ahead, holder...}.
const ACQUIRE: &str = r#"
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {'granted'} end
local mine = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not mine then
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return {'full'} end
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local ahead = redis.call('ZRANK', KEYS[2], ARGV[1])
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
if ahead < free then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
  return {'granted'}
end
local out = {'waiting', tostring(ahead)}
for _, h in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)) do
  table.insert(out, h)
end
return out
"#;

impl RedisRunStore {
    fn slot_keys(&self, key: &str) -> (String, String) {
        (
            self.key(&["slots", key, "held"]),
            self.key(&["slots", key, "line"]),
        )
    }
}

#[async_trait]
impl ConcurrencySlots for RedisRunStore {
    async fn acquire_slot(&self, run_id: &str, spot: &QueueSpot) -> Result<SlotAnswer, Error> {
        let (held, line) = self.slot_keys(&spot.key);
        let answer: Vec<String> = redis::Script::new(ACQUIRE)
            .key(&held)
            .key(&line)
            .arg(run_id)
            .arg(spot.limit)
            .arg(spot.rank())
            .arg(MAX_WAITING_PER_KEY)
            .arg(MAX_HOLDERS_SHOWN)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err("asking for a concurrency slot"))?;
        match answer.first().map(String::as_str) {
            Some("granted") => Ok(SlotAnswer::Granted),
            Some("full") => Ok(SlotAnswer::Full),
            Some("waiting") => Ok(SlotAnswer::Waiting {
                ahead: answer
                    .get(1)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_default(),
                holders: answer[2..].to_vec(),
            }),
            _ => Err(Error::Invalid(format!(
                "asking for a concurrency slot: an unexpected answer {answer:?}"
            ))),
        }
    }

    async fn release_slot(&self, key: &str, run_id: &str) -> Result<(), Error> {
        let (held, line) = self.slot_keys(key);
        redis::pipe()
            .atomic()
            .zrem(&held, run_id)
            .ignore()
            .zrem(&line, run_id)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(redis_err("giving up a concurrency slot"))
    }
}
