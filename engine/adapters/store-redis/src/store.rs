//! `RedisRunStore`.

use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};
use weft_core::ports::{
    AttemptId, EventLog, Fence, Leases, LogSlice, RunIndex, RunQuery, RunRecord, StepLogs,
};
use weft_core::run::Event;
use weft_core::Error;

use crate::conn::Conn;
use crate::retry::retrying;
use crate::{scripts, Options};

/// The Redis store. Cheap to clone; clones share one auto-reconnecting connection.
#[derive(Clone)]
pub struct RedisRunStore {
    pub(crate) conn: Conn,
    pub(crate) options: Options,
    append: Script,
    take_lease: Script,
    release_lease: Script,
    pub(crate) claim: Script,
    pub(crate) renew_claim: Script,
    pub(crate) finish_claim: Script,
    pub(crate) abort_claim: Script,
    pub(crate) claim_executions: Script,
    pub(crate) append_log: Script,
    pub(crate) read_log_from: Script,
    /// When a write last fell short of `wait-for-replicas`, said.
    replica_warning: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
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
        let conn = Conn::open(&options).await?;
        let store = Self {
            conn,
            options,
            append: Script::new(&scripts::append_events()),
            take_lease: Script::new(&scripts::take_lease()),
            release_lease: Script::new(scripts::RELEASE_LEASE),
            claim: Script::new(&scripts::claim()),
            renew_claim: Script::new(&scripts::renew_claim()),
            finish_claim: Script::new(&scripts::finish_claim()),
            abort_claim: Script::new(&scripts::abort_claim()),
            claim_executions: Script::new(&scripts::claim_executions()),
            append_log: Script::new(&scripts::append_log()),
            read_log_from: Script::new(&scripts::read_log_from()),
            replica_warning: Default::default(),
        };
        store.index_unfinished().await?;
        Ok(store)
    }

    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// A key shared by all runs (an index, a worker, a token...). On a
    /// cluster they all carry the prefix as their hash tag: one slot, so
    /// the scripts and transactions across them stay atomic.
    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut k = if self.options.cluster {
            format!("{{{}}}", self.options.prefix)
        } else {
            self.options.prefix.clone()
        };
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    /// A key of one run: `P:<kind>:<run>:<rest>`. On a cluster the run's id
    /// is its hash tag (`P:<kind>:{<run>}:...`), so a run's keys share a
    /// slot (the event append checks the lease in one script) and runs
    /// spread over the primaries.
    pub(crate) fn run_key(&self, kind: &str, run_id: &str, rest: &[&str]) -> String {
        let mut k = format!("{}:{kind}:", self.options.prefix);
        if self.options.cluster {
            k.push('{');
            k.push_str(run_id);
            k.push('}');
        } else {
            k.push_str(run_id);
        }
        for p in rest {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    /// `[redis] expire-after-secs`, 0 for none: what the scripts that set
    /// a key's expiry themselves are given (`scripts::expiring`).
    pub(crate) fn ttl(&self) -> u64 {
        self.options.expire_after_secs.unwrap_or(0)
    }

    /// How long idempotent calls are tried again.
    pub(crate) fn retry_for(&self) -> Duration {
        Duration::from_millis(self.options.retry_for_ms)
    }

    pub(crate) async fn expire_key(&self, key: &str) -> Result<(), Error> {
        self.expire(key).await
    }

    /// With `[redis] wait-for-replicas`, waits until that many replicas
    /// hold the write of `key` just made (and every earlier one on its
    /// connection). Best effort: the write stands either way; a shortfall
    /// is said once a minute at most.
    pub(crate) async fn replicated(&self, key: &str) {
        let wanted = self.options.wait_for_replicas;
        if wanted == 0 {
            return;
        }
        let timeout = self.options.wait_timeout_ms;
        let told = match self.conn.wait_for_replicas(key, wanted, timeout).await {
            Ok(held) if held >= wanted => return,
            Ok(held) => format!(
                "a write reached {held} of the {wanted} replica(s) [redis] wait-for-replicas asks \
                 for within {timeout} ms: a failover now could lose it"
            ),
            Err(e) => format!("waiting for replicas: {e}"),
        };
        let mut last = self.replica_warning.lock().expect("warning lock");
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            *last = Some(std::time::Instant::now());
            tracing::warn!("redis: {told}");
        }
    }

    pub(crate) async fn expire(&self, key: &str) -> Result<(), Error> {
        if let Some(secs) = self.options.expire_after_secs {
            let _: () = retrying(self.retry_for(), "setting expiry", || {
                let mut conn = self.conn.clone();
                async move { conn.expire(key, secs as i64).await }
            })
            .await?;
        }
        Ok(())
    }

    /// Puts `run` in the index of unfinished runs (oldest first).
    async fn mark_unfinished(&self, run: &RunRecord) -> Result<(), Error> {
        let unfinished = self.key(&["unfinished"]);
        let _: () = retrying(self.retry_for(), "indexing a run", || {
            let (mut conn, unfinished) = (self.conn.clone(), unfinished.clone());
            let (id, at) = (run.id.clone(), run.created_at as f64);
            async move { conn.zadd(unfinished, id, at).await }
        })
        .await?;
        self.expire(&unfinished).await
    }

    /// Builds the index of unfinished runs for runs stored before it
    /// existed: once per store, marked done by a key.
    async fn index_unfinished(&self) -> Result<(), Error> {
        let marker = self.key(&["unfinished-indexed"]);
        let indexed: bool = retrying(self.retry_for(), "reading the run index", || {
            let (mut conn, marker) = (self.conn.clone(), marker.clone());
            async move { conn.exists(marker).await }
        })
        .await?;
        if indexed {
            return Ok(());
        }
        for run in self.list_runs(usize::MAX).await? {
            if !run.status.is_terminal() {
                self.mark_unfinished(&run).await?;
            }
        }
        let _: () = retrying(self.retry_for(), "marking the run index", || {
            let (mut conn, marker) = (self.conn.clone(), marker.clone());
            async move { conn.set(marker, 1).await }
        })
        .await?;
        self.expire(&marker).await
    }

    pub(crate) fn lease_key(&self, run_id: &str) -> String {
        self.run_key("lease", run_id, &[])
    }

    pub(crate) fn claim_key(&self, key: &AttemptId) -> String {
        let (task, attempt) = (key.task.to_string(), key.attempt.to_string());
        self.run_key("claim", &key.run_id, &[&task, &attempt])
    }

    pub(crate) fn log_key(&self, key: &AttemptId) -> String {
        let (task, attempt) = (key.task.to_string(), key.attempt.to_string());
        self.run_key("log", &key.run_id, &[&task, &attempt])
    }
}

#[async_trait]
impl RunIndex for RedisRunStore {
    async fn create_run(&self, run: &RunRecord) -> Result<(), Error> {
        let key = self.run_key("run", &run.id, &[]);
        let body = encode(run)?;
        // Tried again through timeouts; when a try that landed lost its
        // reply, the next finds the very same record there.
        let tries = std::sync::atomic::AtomicU32::new(0);
        // Indexed as unfinished first: a run that is stored is always found
        // by the orchestrators' adopters, even if this process dies now.
        if !run.status.is_terminal() {
            self.mark_unfinished(run).await?;
        }
        let created: bool = retrying(self.retry_for(), "creating a run", || {
            tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(&body).arg("NX");
            let mut conn = self.conn.clone();
            async move {
                cmd.query_async::<Option<String>>(&mut conn)
                    .await
                    .map(|r| r.is_some())
            }
        })
        .await?;
        self.replicated(&key).await;
        let retried = tries.load(std::sync::atomic::Ordering::Relaxed) > 1;
        let ours = created || (retried && self.get_run(&run.id).await?.as_ref() == Some(run));
        if !ours {
            return Err(Error::Conflict(format!("run {} exists", run.id)));
        }
        let index = self.key(&["runs"]);
        let _: () = retrying(self.retry_for(), "indexing a run", || {
            let mut conn = self.conn.clone();
            let (index, id, at) = (index.clone(), run.id.clone(), run.created_at as f64);
            async move { conn.zadd(index, id, at).await }
        })
        .await?;
        self.expire(&key).await?;
        self.expire(&index).await
    }

    async fn update_run(&self, run: &RunRecord) -> Result<(), Error> {
        let key = self.run_key("run", &run.id, &[]);
        let body = encode(run)?;
        let updated: bool = retrying(self.retry_for(), "updating a run", || {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(&body).arg("XX").arg("KEEPTTL");
            let mut conn = self.conn.clone();
            async move {
                cmd.query_async::<Option<String>>(&mut conn)
                    .await
                    .map(|r| r.is_some())
            }
        })
        .await?;
        if !updated {
            return Err(Error::NotFound(format!("run {}", run.id)));
        }
        if run.status.is_terminal() {
            let unfinished = self.key(&["unfinished"]);
            let _: () = retrying(self.retry_for(), "indexing a run", || {
                let (mut conn, unfinished) = (self.conn.clone(), unfinished.clone());
                let id = run.id.clone();
                async move { conn.zrem(unfinished, id).await }
            })
            .await?;
        } else {
            self.mark_unfinished(run).await?;
        }
        Ok(())
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        let key = self.run_key("run", id, &[]);
        let raw: Option<String> = retrying(self.retry_for(), "reading a run", || {
            let (mut conn, key) = (self.conn.clone(), key.clone());
            async move { conn.get(key).await }
        })
        .await?;
        raw.map(|s| decode(&s)).transpose()
    }

    async fn unfinished_runs(&self, limit: usize) -> Result<Vec<String>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = (limit.min(isize::MAX as usize) - 1) as isize;
        let unfinished = self.key(&["unfinished"]);
        retrying(self.retry_for(), "listing unfinished runs", || {
            let (mut conn, unfinished) = (self.conn.clone(), unfinished.clone());
            async move { conn.zrange(unfinished, 0, stop).await }
        })
        .await
    }

    async fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, Error> {
        let stop = if limit == 0 {
            return Ok(Vec::new());
        } else {
            (limit.min(isize::MAX as usize) - 1) as isize
        };
        let index = self.key(&["runs"]);
        let ids: Vec<String> = retrying(self.retry_for(), "listing runs", || {
            let (mut conn, index) = (self.conn.clone(), index.clone());
            async move { conn.zrevrange(index, 0, stop).await }
        })
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.run_key("run", id, &[])).collect();
        let raws: Vec<Option<String>> = retrying(self.retry_for(), "reading runs", || {
            let (mut conn, keys) = (self.conn.clone(), keys.clone());
            async move { conn.mget(keys).await }
        })
        .await?;
        raws.into_iter().flatten().map(|s| decode(&s)).collect()
    }

    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        if let Some(prefix) = &query.id_prefix {
            return self.runs_by_prefix(prefix, query).await;
        }
        Ok(query.pick(self.list_runs(usize::MAX).await?))
    }
}

#[async_trait]
impl EventLog for RedisRunStore {
    async fn append_events(
        &self,
        run_id: &str,
        fence: &Fence,
        expected_len: u64,
        events: &[Event],
    ) -> Result<(), Error> {
        let encoded = events.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let (events_key, lease_key) = (self.run_key("events", run_id, &[]), self.lease_key(run_id));
        // Safe to repeat: an append that landed before its reply was lost
        // is found by its length (`LogMoved`), never written twice.
        let result: i64 = retrying(self.retry_for(), "appending events", || {
            let mut invocation = self.append.key(&events_key);
            invocation
                .key(&lease_key)
                .arg(expected_len)
                .arg(&fence.owner)
                .arg(fence.token);
            for e in &encoded {
                invocation.arg(e);
            }
            invocation.arg(self.ttl());
            let mut conn = self.conn.clone();
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?;
        self.replicated(&events_key).await;
        match result {
            -1 => Err(fence.lost(run_id)),
            r if r < -1 => Err(Error::LogMoved {
                log: format!("run {run_id} events"),
                expected: expected_len,
                actual: (-2 - r) as u64,
            }),
            _ => Ok(()),
        }
    }

    async fn events(&self, run_id: &str) -> Result<Vec<Event>, Error> {
        let key = self.run_key("events", run_id, &[]);
        let raws: Vec<String> = retrying(self.retry_for(), "reading events", || {
            let (mut conn, key) = (self.conn.clone(), key.clone());
            async move { conn.lrange(key, 0, -1).await }
        })
        .await?;
        raws.iter().map(|s| decode(s)).collect()
    }

    async fn run_since(
        &self,
        run_id: &str,
        from: u64,
    ) -> Result<Option<(RunRecord, Vec<Event>)>, Error> {
        // One atomic round trip: the record and the events agree.
        let (run_key, events_key) = (
            self.run_key("run", run_id, &[]),
            self.run_key("events", run_id, &[]),
        );
        let (raw, events): (Option<String>, Vec<String>) =
            retrying(self.retry_for(), "reading a run and its events", || {
                let mut pipe = redis::pipe();
                pipe.atomic().get(&run_key).lrange(
                    &events_key,
                    from.min(i64::MAX as u64) as isize,
                    -1,
                );
                let mut conn = self.conn.clone();
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let events = events.iter().map(|s| decode(s)).collect::<Result<_, _>>()?;
        Ok(Some((decode(&raw)?, events)))
    }
}

#[async_trait]
impl StepLogs for RedisRunStore {
    async fn append_log(&self, key: &AttemptId, offset: u64, chunk: &[u8]) -> Result<(), Error> {
        self.append_log_at(key, offset, chunk).await
    }

    async fn read_log_from(
        &self,
        key: &AttemptId,
        offset: u64,
        max_bytes: u64,
    ) -> Result<LogSlice, Error> {
        self.read_log_page(key, offset, max_bytes).await
    }
}

#[async_trait]
impl Leases for RedisRunStore {
    async fn lease(
        &self,
        run_id: &str,
        owner: &str,
        _now: u64,
        ttl_ms: u64,
    ) -> Result<Option<Fence>, Error> {
        // Redis keeps the time: its clock, not the caller's, runs the lease.
        let key = self.lease_key(run_id);
        let token: Option<u64> = retrying(self.retry_for(), "taking a lease", || {
            let mut invocation = self.take_lease.key(&key);
            invocation.arg(owner).arg(ttl_ms.max(1)).arg(self.ttl());
            let mut conn = self.conn.clone();
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?;
        if token.is_some() {
            self.replicated(&key).await;
        }
        Ok(token.map(|token| Fence {
            owner: owner.to_string(),
            token,
        }))
    }

    async fn release(&self, run_id: &str, fence: &Fence) -> Result<(), Error> {
        let key = self.lease_key(run_id);
        let _: i64 = retrying(self.retry_for(), "releasing a lease", || {
            let mut invocation = self.release_lease.key(&key);
            invocation.arg(&fence.owner).arg(fence.token);
            let mut conn = self.conn.clone();
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?;
        Ok(())
    }

    async fn holder(&self, run_id: &str) -> Result<Option<String>, Error> {
        let key = self.lease_key(run_id);
        retrying(self.retry_for(), "reading a lease", || {
            let mut conn = self.conn.clone();
            let key = key.clone();
            async move {
                redis::cmd("HGET")
                    .arg(&key)
                    .arg("owner")
                    .query_async(&mut conn)
                    .await
            }
        })
        .await
    }
}
