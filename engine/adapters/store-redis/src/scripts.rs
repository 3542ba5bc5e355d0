//! The Lua scripts that make the store's writes atomic. The lease and claim
//! scripts apply the same rules as `weft_core::ports::{LeaseRecord,
//! ClaimRecord}` (the contract tests hold them to it), with Redis's own
//! clock (`TIME`), so a process whose clock is off cannot stretch them.

use weft_core::ports::CLAIM_HISTORY;

/// `now` in milliseconds, from the server's clock.
const NOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// `body`, a script whose first key may be given an expiry, made to set
/// it itself: its last argument is `[redis] expire-after-secs` (0: none),
/// and the key gets it after `body` ran, in the same round trip as the
/// write instead of an `EXPIRE` of its own after it. `body` reads its own
/// arguments as before; it must not read `ARGV[#ARGV]`.
pub(crate) fn expiring(body: &str) -> String {
    format!(
        "local function body()\n{body}\nend\n{}",
        r"
local answer = body()
local secs = tonumber(ARGV[#ARGV])
if secs > 0 then redis.call('EXPIRE', KEYS[1], secs) end
return answer
"
    )
}

/// Appends events if the lease was last taken by the writer's fence and the
/// log has the expected length. KEYS[1] = events list, KEYS[2] = lease
/// hash; ARGV[1] = expected length, ARGV[2] = owner, ARGV[3] = token,
/// ARGV[4..#ARGV - 1] = events, the last = key expiry ([`expiring`]).
/// Returns the new length; -1 when fenced off; -2 - length when the log
/// has another length.
pub(crate) fn append_events() -> String {
    expiring(
        r"
local holder = redis.call('HMGET', KEYS[2], 'owner', 'token')
if holder[1] ~= ARGV[2] or tonumber(holder[2]) ~= tonumber(ARGV[3]) then return -1 end
local len = redis.call('LLEN', KEYS[1])
if len ~= tonumber(ARGV[1]) then return -2 - len end
for i = 4, #ARGV - 1 do redis.call('RPUSH', KEYS[1], ARGV[i]) end
return len + #ARGV - 4
",
    )
}

/// Takes or renews a lease (a hash: owner, token, expires). KEYS[1] = lease
/// hash; ARGV[1] = owner, ARGV[2] = ttl ms, ARGV[3] = key expiry
/// ([`expiring`]). Returns the token, or nil while another owner holds it.
pub(crate) fn take_lease() -> String {
    expiring(&format!(
        "{NOW}{}",
        r"
local cur = redis.call('HMGET', KEYS[1], 'owner', 'token', 'expires')
local token
if not cur[1] then token = 1
elseif cur[1] == ARGV[1] then token = tonumber(cur[2])
elseif tonumber(cur[3]) > now then return false
else token = tonumber(cur[2]) + 1 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token, 'expires', now + tonumber(ARGV[2]))
return token
"
    ))
}

/// Gives a lease up (expired, token kept for a day) if ARGV[1] = owner and
/// ARGV[2] = token still hold it.
pub(crate) const RELEASE_LEASE: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'owner', 'token')
if cur[1] == ARGV[1] and tonumber(cur[2]) == tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'expires', 0)
  redis.call('EXPIRE', KEYS[1], 86400)
end
return 1
";

/// A claim is a hash: state (`held`, `done`, `aborted`), worker, token,
/// expires, report. What every claim script answers: `{'held', token}`,
/// `{'held-by', worker}`, `{'done', report or ''}` or `{'aborted'}`.
const SETTLED: &str = r"
local c = redis.call('HMGET', KEYS[1], 'state', 'worker', 'token', 'expires', 'report')
if c[1] == 'done' then return {'done', c[5] or ''} end
if c[1] == 'aborted' then return {'aborted'} end
local function hold(token)
  redis.call('HSET', KEYS[1], 'state', 'held', 'worker', ARGV[1], 'token', token, 'expires', now + tonumber(ARGV[2]))
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 86400000)
  return {'held', tostring(token)}
end
";

/// An attempt's remembered executions (`ClaimRecord::history`): field
/// `h<token>` = the worker's name, for the newest `CLAIM_HISTORY` tokens,
/// and `last` = the newest token given. `remember(token)` adds one;
/// `executions(out)` appends `token, worker` pairs, oldest first.
fn history() -> String {
    format!(
        r"
local HISTORY = {CLAIM_HISTORY}
local function remember(token)
  if tonumber(redis.call('HGET', KEYS[1], 'last') or 0) >= token then return end
  local worker = string.match(ARGV[1], '^(.*)@[^@]*$') or ARGV[1]
  redis.call('HSET', KEYS[1], 'h' .. token, worker, 'last', token)
  if token > HISTORY then redis.call('HDEL', KEYS[1], 'h' .. (token - HISTORY)) end
end
local function executions(out, before)
  local last = tonumber(redis.call('HGET', KEYS[1], 'last') or 0)
  for t = math.max(1, last - HISTORY + 1), math.min(last, before - 1) do
    local w = redis.call('HGET', KEYS[1], 'h' .. t)
    if w then
      out[#out + 1] = tostring(t)
      out[#out + 1] = w
    end
  end
  return out
end
"
    )
}

/// A fresh claim. KEYS[1] = claim hash; ARGV[1] = claimant, ARGV[2] = ttl
/// ms, ARGV[3] = delivery limit (-1: none), ARGV[4] = key expiry
/// ([`expiring`]). The same claimant asking again
/// gets its execution back. Held, the answer goes on with the earlier
/// executions remembered: `token, worker` pairs. Past the limit (more
/// executions began than it, none finished): `{'exhausted', began}`.
pub(crate) fn claim() -> String {
    expiring(&format!(
        "{NOW}{SETTLED}{}{}",
        history(),
        r"
local token = 1
if c[1] == 'held' and c[2] == ARGV[1] then token = tonumber(c[3])
elseif c[1] == 'held' and tonumber(c[4]) > now then return {'held-by', c[2]}
elseif c[3] then
  local limit = tonumber(ARGV[3])
  if limit >= 0 and tonumber(c[3]) > limit then return {'exhausted', c[3]} end
  token = tonumber(c[3]) + 1
end
remember(token)
return executions(hold(token), token)
"
    ))
}

/// The holder renews. KEYS[1] = claim hash; ARGV[1] = worker, ARGV[2] = ttl
/// ms, ARGV[3] = token, ARGV[4] = key expiry ([`expiring`]).
pub(crate) fn renew_claim() -> String {
    expiring(&format!(
        "{NOW}{SETTLED}{}{}",
        history(),
        r"
if (not c[1]) or (c[2] == ARGV[1] and tonumber(c[3]) == tonumber(ARGV[3])) then
  local token = tonumber(ARGV[3])
  remember(token)
  return hold(token)
end
return {'held-by', c[2]}
"
    ))
}

/// Execution ARGV[3] of worker ARGV[1] finishes the attempt with report
/// ARGV[2]; the first execution to finish wins; ARGV[4] = key expiry
/// ([`expiring`]). Returns `{'ok'}`, or `{'done', report}` when another
/// execution finished first.
pub(crate) fn finish_claim() -> String {
    expiring(FINISH_CLAIM)
}

const FINISH_CLAIM: &str = r"
local c = redis.call('HMGET', KEYS[1], 'state', 'worker', 'token', 'report')
if (not c[1]) or c[1] == 'held' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'worker', ARGV[1], 'token', ARGV[3], 'report', ARGV[2])
  redis.call('HDEL', KEYS[1], 'expires')
  redis.call('EXPIRE', KEYS[1], 86400)
  return {'ok'}
end
if (c[1] == 'done' and tonumber(c[3]) == tonumber(ARGV[3])) or c[1] == 'aborted' then return {'ok'} end
return {'done', c[4] or ''}
";

/// Aborts an attempt unless it finished. Answers the executions
/// remembered: `token, worker` pairs, oldest first.
pub(crate) fn abort_claim() -> String {
    format!(
        "{}{}",
        history(),
        r"
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'done' and state ~= 'aborted' then
  redis.call('HSET', KEYS[1], 'state', 'aborted')
  redis.call('EXPIRE', KEYS[1], 86400)
end
return executions({}, math.huge)
"
    )
}

/// The executions a claim remembers, as `abort_claim` answers them,
/// changing nothing. KEYS[1] = claim hash.
pub(crate) fn claim_executions() -> String {
    format!("{}return executions({{}}, math.huge)\n", history())
}

/// A log stream's entry IDs are `<start + 1>-0`, `start` being the entry's
/// first byte in the log as written, so a reader can seek by byte offset
/// even after the oldest entries were trimmed. Sets `at` to where the
/// stream ends.
const LOG_END: &str = r"
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local at = 0
if #last > 0 then
  at = tonumber(string.match(last[1][1], '^(%d+)')) - 1 + string.len(last[1][2][2])
end
";

/// Appends entries ARGV[3..#ARGV - 1] to a log stream if it ends at byte
/// ARGV[1]; ARGV[2] = entries kept (about), the last = key expiry
/// ([`expiring`]). Returns where it ends after, or -1 - where it ends when
/// that is not ARGV[1].
pub(crate) fn append_log() -> String {
    expiring(&format!(
        "{LOG_END}{}",
        r"
if at ~= tonumber(ARGV[1]) then return -1 - at end
for i = 3, #ARGV - 1 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], string.format('%d-0', at + 1), 'd', ARGV[i])
  at = at + string.len(ARGV[i])
end
return at
"
    ))
}

/// Where a log stream ends, and its entries from the one holding byte
/// ARGV[1] on, until they hold ARGV[2] bytes: `{end, entries}`.
pub(crate) fn read_log_from() -> String {
    format!(
        "{LOG_END}{}",
        r"
local holding = redis.call('XREVRANGE', KEYS[1], string.format('%d-0', tonumber(ARGV[1]) + 1), '-', 'COUNT', 1)
local from = '-'
if #holding > 0 then from = holding[1][1] end
local out, bytes, max = {}, 0, tonumber(ARGV[2])
while bytes < max do
  local batch = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 64)
  for _, e in ipairs(batch) do
    out[#out + 1] = e
    bytes = bytes + string.len(e[2][2])
    if bytes >= max then break end
  end
  if #batch < 64 then break end
  from = '(' .. batch[#batch][1]
end
return {at, out}
"
    )
}
