//! `RedisRunStore`.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use weft_core::ports::{Claim, LogKey, LogSlice, RunRecord, RunStore};
use weft_core::run::Event;
use weft_core::Error;

use crate::Options;

/// Appends events only if the log has the expected length.
/// KEYS[1] = events list; ARGV[1] = expected length; ARGV[2] = ttl (0: none); ARGV[3..] = events.
const APPEND_EVENTS: &str = r"
local len = redis.call('LLEN', KEYS[1])
if len ~= tonumber(ARGV[1]) then return -1 - len end
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return len + #ARGV - 2
";

/// Takes or renews a lease. KEYS[1] = lease key; ARGV[1] = owner; ARGV[2] = ttl ms.
const TAKE_LEASE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Releases a lease held by ARGV[1].
const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// Claims or renews an attempt. KEYS[1] = claim key; ARGV[1] = worker; ARGV[2] = ttl ms.
/// Values: `held:<worker>` (expiring), `done`, `aborted`.
const CLAIM: &str = r"
local v = redis.call('GET', KEYS[1])
if (not v) or v == ('held:' .. ARGV[1]) then
  redis.call('SET', KEYS[1], 'held:' .. ARGV[1], 'PX', ARGV[2])
  return 'held'
end
return v
";

/// Aborts an attempt unless it is done.
const ABORT_CLAIM: &str = r"
if redis.call('GET', KEYS[1]) ~= 'done' then redis.call('SET', KEYS[1], 'aborted', 'EX', 86400) end
return 1
";

/// Appends a chunk to a log stream whose entry IDs are `<start + 1>-0`,
/// `start` being the chunk's first byte in the log as written, so a reader
/// can seek by byte offset even after the oldest chunks were trimmed.
/// KEYS[1] = stream; ARGV[1] = chunk; ARGV[2] = chunks kept (about).
const APPEND_LOG: &str = r"
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local start = 0
if #last > 0 then
  start = tonumber(string.match(last[1][1], '^(%d+)')) - 1 + string.len(last[1][2][2])
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], string.format('%d-0', start + 1), 'd', ARGV[1])
return start
";

/// The chunks of a log stream (see `APPEND_LOG`) from the one holding byte
/// ARGV[1] on. KEYS[1] = stream; ARGV[1] = byte offset.
const READ_LOG_FROM: &str = r"
local at = redis.call('XREVRANGE', KEYS[1], string.format('%d-0', tonumber(ARGV[1]) + 1), '-', 'COUNT', 1)
local from = '-'
if #at > 0 then from = at[1][1] end
return redis.call('XRANGE', KEYS[1], from, '+')
";

/// The Redis store. Cheap to clone; clones share one auto-reconnecting connection.
#[derive(Clone)]
pub struct RedisRunStore {
    conn: ConnectionManager,
    options: Options,
    append: Script,
    take_lease: Script,
    release_lease: Script,
    claim: Script,
    abort_claim: Script,
    append_log: Script,
    read_log_from: Script,
}

pub(crate) fn redis_err(context: &'static str) -> impl Fn(redis::RedisError) -> Error {
    move |e| Error::backend(format!("redis: {context}"), e)
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::backend("encoding", e))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, Error> {
    serde_json::from_str(s).map_err(|e| Error::backend("decoding a stored record", e))
}

impl RedisRunStore {
    pub async fn connect(options: Options) -> Result<Self, Error> {
        let client =
            redis::Client::open(options.url.as_str()).map_err(redis_err("parsing the URL"))?;
        let conn = client.get_connection_manager().await.map_err(|e| {
            Error::backend(
                format!(
                    "redis: connecting to {}",
                    weft_core::ports::redacted_url(&options.url)
                ),
                e,
            )
        })?;
        Ok(Self {
            conn,
            options,
            append: Script::new(APPEND_EVENTS),
            take_lease: Script::new(TAKE_LEASE),
            release_lease: Script::new(RELEASE_LEASE),
            claim: Script::new(CLAIM),
            abort_claim: Script::new(ABORT_CLAIM),
            append_log: Script::new(APPEND_LOG),
            read_log_from: Script::new(READ_LOG_FROM),
        })
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut k = self.options.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    fn ttl(&self) -> u64 {
        self.options.expire_after_secs.unwrap_or(0)
    }

    pub(crate) async fn expire_key(&self, key: &str) -> Result<(), Error> {
        self.expire(key).await
    }

    async fn expire(&self, key: &str) -> Result<(), Error> {
        if let Some(secs) = self.options.expire_after_secs {
            let _: () = self
                .conn
                .clone()
                .expire(key, secs as i64)
                .await
                .map_err(redis_err("setting expiry"))?;
        }
        Ok(())
    }

    fn claim_key(&self, key: &LogKey) -> String {
        self.key(&[
            "claim",
            &key.run_id,
            &key.task.to_string(),
            &key.attempt.to_string(),
        ])
    }

    fn log_key(&self, key: &LogKey) -> String {
        self.key(&[
            "log",
            &key.run_id,
            &key.task.to_string(),
            &key.attempt.to_string(),
        ])
    }
}

#[async_trait]
impl RunStore for RedisRunStore {
    async fn create_run(&self, run: &RunRecord) -> Result<(), Error> {
        let key = self.key(&["run", &run.id]);
        let created: bool = redis::cmd("SET")
            .arg(&key)
            .arg(encode(run)?)
            .arg("NX")
            .query_async::<Option<String>>(&mut self.conn.clone())
            .await
            .map_err(redis_err("creating a run"))?
            .is_some();
        if !created {
            return Err(Error::Conflict(format!("run {} exists", run.id)));
        }
        let index = self.key(&["runs"]);
        let _: () = self
            .conn
            .clone()
            .zadd(&index, &run.id, run.created_at as f64)
            .await
            .map_err(redis_err("indexing a run"))?;
        self.expire(&key).await?;
        self.expire(&index).await
    }

    async fn update_run(&self, run: &RunRecord) -> Result<(), Error> {
        let key = self.key(&["run", &run.id]);
        let updated = redis::cmd("SET")
            .arg(&key)
            .arg(encode(run)?)
            .arg("XX")
            .arg("KEEPTTL")
            .query_async::<Option<String>>(&mut self.conn.clone())
            .await
            .map_err(redis_err("updating a run"))?
            .is_some();
        if updated {
            Ok(())
        } else {
            Err(Error::NotFound(format!("run {}", run.id)))
        }
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        let raw: Option<String> = self
            .conn
            .clone()
            .get(self.key(&["run", id]))
            .await
            .map_err(redis_err("reading a run"))?;
        raw.map(|s| decode(&s)).transpose()
    }

    async fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, Error> {
        let stop = if limit == 0 {
            return Ok(Vec::new());
        } else {
            (limit.min(isize::MAX as usize) - 1) as isize
        };
        let ids: Vec<String> = self
            .conn
            .clone()
            .zrevrange(self.key(&["runs"]), 0, stop)
            .await
            .map_err(redis_err("listing runs"))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(&["run", id])).collect();
        let raws: Vec<Option<String>> = self
            .conn
            .clone()
            .mget(&keys)
            .await
            .map_err(redis_err("reading runs"))?;
        raws.into_iter().flatten().map(|s| decode(&s)).collect()
    }

    async fn append_events(
        &self,
        run_id: &str,
        expected_len: u64,
        events: &[Event],
    ) -> Result<(), Error> {
        let mut invocation = self.append.key(self.key(&["events", run_id]));
        invocation.arg(expected_len).arg(self.ttl());
        for e in events {
            invocation.arg(encode(e)?);
        }
        let result: i64 = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("appending events"))?;
        if result < 0 {
            let len = -1 - result;
            return Err(Error::Conflict(format!(
                "run {run_id} has {len} events, writer expected {expected_len}"
            )));
        }
        Ok(())
    }

    async fn events(&self, run_id: &str) -> Result<Vec<Event>, Error> {
        let raws: Vec<String> = self
            .conn
            .clone()
            .lrange(self.key(&["events", run_id]), 0, -1)
            .await
            .map_err(redis_err("reading events"))?;
        raws.iter().map(|s| decode(s)).collect()
    }

    async fn run_since(
        &self,
        run_id: &str,
        from: u64,
    ) -> Result<Option<(RunRecord, Vec<Event>)>, Error> {
        // One atomic round trip: the record and the events agree.
        let (raw, events): (Option<String>, Vec<String>) = redis::pipe()
            .atomic()
            .get(self.key(&["run", run_id]))
            .lrange(
                self.key(&["events", run_id]),
                from.min(i64::MAX as u64) as isize,
                -1,
            )
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("reading a run and its events"))?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let events = events.iter().map(|s| decode(s)).collect::<Result<_, _>>()?;
        Ok(Some((decode(&raw)?, events)))
    }

    async fn append_log(&self, key: &LogKey, chunk: &[u8]) -> Result<(), Error> {
        let stream = self.log_key(key);
        let _: i64 = self
            .append_log
            .key(&stream)
            .arg(chunk)
            .arg(self.options.log_max_chunks)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("appending a log"))?;
        self.expire(&stream).await
    }

    async fn read_log(&self, key: &LogKey) -> Result<Vec<u8>, Error> {
        let entries: Vec<(String, Vec<(String, Vec<u8>)>)> = redis::cmd("XRANGE")
            .arg(self.log_key(key))
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("reading a log"))?;
        Ok(entries
            .into_iter()
            .flat_map(|(_, fields)| fields.into_iter().flat_map(|(_, v)| v))
            .collect())
    }

    async fn read_log_from(&self, key: &LogKey, offset: u64) -> Result<LogSlice, Error> {
        let entries: Vec<(String, Vec<(String, Vec<u8>)>)> = self
            .read_log_from
            .key(self.log_key(key))
            .arg(offset)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("reading a log"))?;
        // Past the end, the last chunk comes back and gives its end.
        let mut slice = LogSlice::default();
        let mut first = true;
        for (id, fields) in entries {
            let chunk_start = id
                .split_once('-')
                .and_then(|(ms, _)| ms.parse::<u64>().ok())
                .and_then(|ms| ms.checked_sub(1))
                .ok_or_else(|| {
                    Error::Invalid(format!("redis: log entry {id} is not a byte offset"))
                })?;
            for (_, data) in fields {
                if first {
                    // From `offset` within it, or from its start when the
                    // bytes before it were trimmed.
                    let skip = offset.saturating_sub(chunk_start).min(data.len() as u64);
                    slice.start = chunk_start + skip;
                    slice.bytes.extend_from_slice(&data[skip as usize..]);
                    first = false;
                } else {
                    slice.bytes.extend_from_slice(&data);
                }
            }
        }
        Ok(slice)
    }

    async fn lease(
        &self,
        run_id: &str,
        owner: &str,
        _now: u64,
        ttl_ms: u64,
    ) -> Result<bool, Error> {
        // Redis keeps the time: the key's expiry is the lease's.
        let taken: i64 = self
            .take_lease
            .key(self.key(&["lease", run_id]))
            .arg(owner)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("taking a lease"))?;
        Ok(taken == 1)
    }

    async fn release(&self, run_id: &str, owner: &str) -> Result<(), Error> {
        let _: i64 = self
            .release_lease
            .key(self.key(&["lease", run_id]))
            .arg(owner)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("releasing a lease"))?;
        Ok(())
    }

    async fn claim(
        &self,
        key: &LogKey,
        worker: &str,
        _now: u64,
        ttl_ms: u64,
    ) -> Result<Claim, Error> {
        let state: String = self
            .claim
            .key(self.claim_key(key))
            .arg(worker)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("claiming an attempt"))?;
        Ok(match state.as_str() {
            "held" => Claim::Held,
            "done" => Claim::Done,
            "aborted" => Claim::Aborted,
            other => Claim::HeldBy(other.strip_prefix("held:").unwrap_or(other).to_string()),
        })
    }

    async fn finish_claim(&self, key: &LogKey) -> Result<(), Error> {
        let _: () = self
            .conn
            .clone()
            .set_ex(self.claim_key(key), "done", 86_400)
            .await
            .map_err(redis_err("finishing a claim"))?;
        Ok(())
    }

    async fn abort_claim(&self, key: &LogKey) -> Result<(), Error> {
        let _: i64 = self
            .abort_claim
            .key(self.claim_key(key))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("aborting a claim"))?;
        Ok(())
    }
}
