//! `Deliveries` on Redis: one key per delivery (expiring with it) and a
//! sorted set of them by expiry, changed together by one script so racing
//! servers record a delivery once and the bound holds.

use async_trait::async_trait;
use weft_core::ports::{Deliveries, MAX_DELIVERIES};
use weft_core::Error;

use crate::store::redis_err;
use crate::RedisRunStore;

/// KEYS[1] = the delivery's key, KEYS[2] = the index by expiry; ARGV[1] =
/// run id, ARGV[2] = now, ARGV[3] = expires at, ARGV[4] = the bound,
/// The record is `<expires at> <run id>`, read against the caller's `now`
/// (Redis expires it too). Returns the run a live record names, or false
/// once it recorded this one.
const RECORD: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, ' ', 1, true)
  if tonumber(string.sub(cur, 1, sep - 1)) > tonumber(ARGV[2]) then return string.sub(cur, sep + 1) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
redis.call('SET', KEYS[1], ARGV[3] .. ' ' .. ARGV[1], 'PX', math.max(1, tonumber(ARGV[3]) - tonumber(ARGV[2])))
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  local gone = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  for _, k in ipairs(gone) do
    redis.call('DEL', k)
    redis.call('ZREM', KEYS[2], k)
  end
end
return false
"#;

#[async_trait]
impl Deliveries for RedisRunStore {
    async fn record_delivery(
        &self,
        key: &str,
        run_id: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<String>, Error> {
        let (record, index) = (self.key(&["delivery", key]), self.key(&["deliveries"]));
        redis::Script::new(RECORD)
            .key(&record)
            .key(&index)
            .arg(run_id)
            .arg(now)
            .arg(expires_at)
            .arg(MAX_DELIVERIES)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err("recording a webhook delivery"))
    }
}
