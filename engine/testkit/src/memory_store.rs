//! An in-memory [`RunStore`]: the store of unit tests and of the
//! deterministic simulation. It keeps time as Redis does for leases and
//! claims (by the `now` it is given), passes the same contract as the real
//! stores, and its whole state can be copied and put back, so a simulated
//! store restart can lose exactly what was not yet durable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use weft_core::ports::{
    run_since_in_parts, AttemptClaims, AttemptId, Claim, ClaimRecord, ClaimedExecution, EventLog,
    Fence, LeaseRecord, Leases, LogSlice, Report, RunIndex, RunRecord, StepLogs, LOG_CHUNK_BYTES,
};
use weft_core::run::Event;
use weft_core::Error;

/// Everything the store holds; `Clone` is a snapshot.
#[derive(Debug, Clone, Default)]
pub struct MemoryState {
    pub runs: BTreeMap<String, RunRecord>,
    /// The ids of the runs that have not ended.
    pub unfinished: BTreeSet<String>,
    pub events: BTreeMap<String, Vec<Event>>,
    /// Each attempt's log as entries of at most `LOG_CHUNK_BYTES`, each
    /// with the byte offset it starts at.
    pub logs: BTreeMap<String, Vec<(u64, Vec<u8>)>>,
    pub leases: BTreeMap<String, LeaseRecord>,
    /// By `run/task/attempt`.
    pub claims: BTreeMap<String, ClaimRecord>,
    /// Sealed, by name.
    pub secrets: BTreeMap<String, weft_core::secrets::StoredSecret>,
    /// The step cache, by key.
    pub cached: BTreeMap<weft_core::artifacts::Digest, weft_core::cache::CacheEntry>,
    /// Webhook deliveries: key → (run id, expires at).
    pub deliveries: BTreeMap<String, (String, u64)>,
    /// Concurrency keys' holders and lines, by key.
    pub concurrency: BTreeMap<String, weft_core::concurrency::KeySlots>,
}

/// The in-memory store. Cheap to clone; clones share the state.
#[derive(Debug, Clone, Default)]
pub struct MemoryRunStore {
    state: Arc<Mutex<MemoryState>>,
}

fn attempt_id(key: &AttemptId) -> String {
    format!("{}/{}/{}", key.run_id, key.task, key.attempt)
}

impl MemoryRunStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything stored now.
    pub fn snapshot(&self) -> MemoryState {
        self.lock().clone()
    }

    /// Puts back an earlier snapshot, losing every write since.
    pub fn restore(&self, state: MemoryState) {
        *self.lock() = state;
    }

    /// Reads the state in place.
    pub fn with<T>(&self, f: impl FnOnce(&MemoryState) -> T) -> T {
        f(&self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().expect("memory store lock")
    }
}

#[async_trait]
impl RunIndex for MemoryRunStore {
    async fn create_run(&self, run: &RunRecord) -> Result<(), Error> {
        let mut s = self.lock();
        if s.runs.contains_key(&run.id) {
            return Err(Error::Conflict(format!("run {} exists", run.id)));
        }
        s.runs.insert(run.id.clone(), run.clone());
        if !run.status.is_terminal() {
            s.unfinished.insert(run.id.clone());
        }
        Ok(())
    }

    async fn update_run(&self, run: &RunRecord) -> Result<(), Error> {
        let mut s = self.lock();
        match s.runs.get_mut(&run.id) {
            Some(r) => {
                *r = run.clone();
                if run.status.is_terminal() {
                    s.unfinished.remove(&run.id);
                } else {
                    s.unfinished.insert(run.id.clone());
                }
                Ok(())
            }
            None => Err(Error::NotFound(format!("run {}", run.id))),
        }
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        Ok(self.lock().runs.get(id).cloned())
    }

    async fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, Error> {
        let mut runs: Vec<RunRecord> = self.lock().runs.values().cloned().collect();
        runs.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        runs.truncate(limit);
        Ok(runs)
    }

    async fn unfinished_runs(&self, limit: usize) -> Result<Vec<String>, Error> {
        Ok(self.lock().unfinished.iter().take(limit).cloned().collect())
    }
}

#[async_trait]
impl EventLog for MemoryRunStore {
    async fn append_events(
        &self,
        run_id: &str,
        fence: &Fence,
        expected_len: u64,
        events: &[Event],
    ) -> Result<(), Error> {
        let mut s = self.lock();
        if !LeaseRecord::admits(s.leases.get(run_id), fence) {
            return Err(fence.lost(run_id));
        }
        let log = s.events.entry(run_id.to_string()).or_default();
        if log.len() as u64 != expected_len {
            return Err(Error::LogMoved {
                log: format!("run {run_id} events"),
                expected: expected_len,
                actual: log.len() as u64,
            });
        }
        log.extend_from_slice(events);
        Ok(())
    }

    async fn events(&self, run_id: &str) -> Result<Vec<Event>, Error> {
        Ok(self.lock().events.get(run_id).cloned().unwrap_or_default())
    }

    async fn run_since(
        &self,
        run_id: &str,
        from: u64,
    ) -> Result<Option<(RunRecord, Vec<Event>)>, Error> {
        run_since_in_parts(self, run_id, from).await
    }
}

#[async_trait]
impl StepLogs for MemoryRunStore {
    async fn append_log(&self, key: &AttemptId, offset: u64, chunk: &[u8]) -> Result<(), Error> {
        let mut s = self.lock();
        let log = s.logs.entry(attempt_id(key)).or_default();
        let end = log.last().map_or(0, |(at, c)| at + c.len() as u64);
        if end != offset {
            return Err(Error::LogMoved {
                log: format!("log of {}", attempt_id(key)),
                expected: offset,
                actual: end,
            });
        }
        let mut at = end;
        for piece in chunk.chunks(LOG_CHUNK_BYTES) {
            log.push((at, piece.to_vec()));
            at += piece.len() as u64;
        }
        Ok(())
    }

    async fn read_log_from(
        &self,
        key: &AttemptId,
        offset: u64,
        max_bytes: u64,
    ) -> Result<LogSlice, Error> {
        let s = self.lock();
        let Some(log) = s.logs.get(&attempt_id(key)) else {
            return Ok(LogSlice::default());
        };
        let end = log.last().map_or(0, |(at, c)| at + c.len() as u64);
        let start = offset.min(end);
        let mut bytes = Vec::new();
        for (at, chunk) in log {
            let chunk_end = at + chunk.len() as u64;
            if chunk_end > start && (bytes.len() as u64) < max_bytes {
                let skip = start.saturating_sub(*at) as usize;
                let room = (max_bytes - bytes.len() as u64) as usize;
                let piece = &chunk[skip..];
                bytes.extend_from_slice(&piece[..piece.len().min(room)]);
            }
        }
        Ok(LogSlice {
            start,
            bytes,
            log_end: end,
        })
    }
}

#[async_trait]
impl Leases for MemoryRunStore {
    async fn lease(
        &self,
        run_id: &str,
        owner: &str,
        now: u64,
        ttl_ms: u64,
    ) -> Result<Option<Fence>, Error> {
        let mut s = self.lock();
        let Some(taken) = LeaseRecord::take(s.leases.get(run_id), owner, now, ttl_ms) else {
            return Ok(None);
        };
        let fence = taken.fence();
        s.leases.insert(run_id.to_string(), taken);
        Ok(Some(fence))
    }

    async fn release(&self, run_id: &str, fence: &Fence) -> Result<(), Error> {
        let mut s = self.lock();
        if let Some(released) = LeaseRecord::release(s.leases.get(run_id), fence) {
            s.leases.insert(run_id.to_string(), released);
        }
        Ok(())
    }

    async fn holder(&self, run_id: &str) -> Result<Option<String>, Error> {
        Ok(self.lock().leases.get(run_id).map(|l| l.owner.clone()))
    }
}

#[async_trait]
impl AttemptClaims for MemoryRunStore {
    async fn claim(
        &self,
        key: &AttemptId,
        worker: &str,
        now: u64,
        ttl_ms: u64,
        delivery_limit: Option<u32>,
    ) -> Result<Claim, Error> {
        let mut s = self.lock();
        let id = attempt_id(key);
        let (claim, record) =
            ClaimRecord::claim(s.claims.get(&id), worker, now, ttl_ms, delivery_limit);
        if let Some(r) = record {
            s.claims.insert(id, r);
        }
        Ok(claim)
    }

    async fn renew_claim(
        &self,
        key: &AttemptId,
        worker: &str,
        token: u64,
        now: u64,
        ttl_ms: u64,
    ) -> Result<Claim, Error> {
        let mut s = self.lock();
        let id = attempt_id(key);
        let (claim, record) = ClaimRecord::renew(s.claims.get(&id), worker, token, now, ttl_ms);
        if let Some(r) = record {
            s.claims.insert(id, r);
        }
        Ok(claim)
    }

    async fn finish_claim(
        &self,
        key: &AttemptId,
        worker: &str,
        token: u64,
        report: &Report,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        let id = attempt_id(key);
        match ClaimRecord::finish(s.claims.get(&id), worker, token, report) {
            Ok(Some(r)) => {
                s.claims.insert(id, r);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(now) => Err(Error::Fenced(format!("attempt {id}: the claim is {now:?}"))),
        }
    }

    async fn abort_claim(&self, key: &AttemptId) -> Result<Vec<ClaimedExecution>, Error> {
        let mut s = self.lock();
        let id = attempt_id(key);
        let executions = ClaimRecord::executions(s.claims.get(&id));
        if let Some(r) = ClaimRecord::abort(s.claims.get(&id)) {
            s.claims.insert(id, r);
        }
        Ok(executions)
    }

    async fn claim_executions(&self, key: &AttemptId) -> Result<Vec<ClaimedExecution>, Error> {
        let s = self.lock();
        Ok(ClaimRecord::executions(s.claims.get(&attempt_id(key))))
    }
}

#[async_trait]
impl weft_core::ports::SecretStore for MemoryRunStore {
    async fn put_secret(&self, secret: &weft_core::secrets::StoredSecret) -> Result<(), Error> {
        let mut s = self.lock();
        if !s.secrets.contains_key(&secret.name)
            && s.secrets.len() >= weft_core::secrets::MAX_SECRETS
        {
            return Err(Error::Invalid(format!(
                "{} secrets are set already: remove one first",
                weft_core::secrets::MAX_SECRETS
            )));
        }
        s.secrets.insert(secret.name.clone(), secret.clone());
        Ok(())
    }

    async fn secret(&self, name: &str) -> Result<Option<weft_core::secrets::StoredSecret>, Error> {
        Ok(self.lock().secrets.get(name).cloned())
    }

    async fn secrets(&self) -> Result<Vec<weft_core::secrets::StoredSecret>, Error> {
        Ok(self.lock().secrets.values().cloned().collect())
    }

    async fn remove_secret(&self, name: &str) -> Result<bool, Error> {
        Ok(self.lock().secrets.remove(name).is_some())
    }
}

#[async_trait]
impl weft_core::ports::StepCache for MemoryRunStore {
    async fn cached(
        &self,
        key: &weft_core::artifacts::Digest,
        now: u64,
    ) -> Result<Option<weft_core::cache::CacheEntry>, Error> {
        Ok(self
            .lock()
            .cached
            .get(key)
            .filter(|e| e.is_live(now))
            .cloned())
    }

    async fn save_cached(
        &self,
        key: &weft_core::artifacts::Digest,
        entry: &weft_core::cache::CacheEntry,
    ) -> Result<(), Error> {
        let mut s = self.lock();
        s.cached.insert(key.clone(), entry.clone());
        while s.cached.len() > weft_core::ports::MAX_CACHE_ENTRIES {
            let soonest = s
                .cached
                .iter()
                .min_by_key(|(_, e)| e.expires_at)
                .map(|(k, _)| k.clone());
            if let Some(k) = soonest {
                s.cached.remove(&k);
            }
        }
        Ok(())
    }

    async fn prune_cached(&self, now: u64) -> Result<u64, Error> {
        let mut s = self.lock();
        let before = s.cached.len();
        s.cached.retain(|_, e| e.is_live(now));
        Ok((before - s.cached.len()) as u64)
    }

    async fn cached_artifacts(
        &self,
        now: u64,
    ) -> Result<BTreeSet<weft_core::artifacts::Digest>, Error> {
        Ok(self
            .lock()
            .cached
            .values()
            .filter(|e| e.is_live(now))
            .flat_map(|e| e.artifacts.values().map(|a| a.digest.clone()))
            .collect())
    }
}

#[async_trait]
impl weft_core::ports::RunRemoval for MemoryRunStore {
    async fn remove_run(&self, run_id: &str, attempts: &[AttemptId]) -> Result<bool, Error> {
        let mut s = self.lock();
        match s.runs.get(run_id) {
            None => return Ok(false),
            Some(r) if !r.status.is_terminal() => {
                return Err(Error::Conflict(format!(
                    "run {run_id} is {}: only a finished run is removed",
                    r.status.as_str()
                )))
            }
            Some(_) => {}
        }
        s.runs.remove(run_id);
        s.unfinished.remove(run_id);
        s.events.remove(run_id);
        s.leases.remove(run_id);
        for a in attempts {
            s.claims.remove(&attempt_id(a));
            s.logs.remove(&attempt_id(a));
        }
        Ok(true)
    }

    async fn remove_logs(&self, attempts: &[AttemptId]) -> Result<(), Error> {
        let mut s = self.lock();
        for a in attempts {
            s.logs.remove(&attempt_id(a));
        }
        Ok(())
    }
}

#[async_trait]
impl weft_core::ports::ConcurrencySlots for MemoryRunStore {
    async fn acquire_slot(
        &self,
        run_id: &str,
        spot: &weft_core::concurrency::QueueSpot,
    ) -> Result<weft_core::concurrency::SlotAnswer, Error> {
        let mut s = self.lock();
        let slots = s.concurrency.entry(spot.key.clone()).or_default();
        Ok(slots.acquire(run_id, spot.limit, spot.rank()))
    }

    async fn release_slot(&self, key: &str, run_id: &str) -> Result<(), Error> {
        let mut s = self.lock();
        if let Some(slots) = s.concurrency.get_mut(key) {
            slots.release(run_id);
            if slots.is_empty() {
                s.concurrency.remove(key);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl weft_core::ports::Deliveries for MemoryRunStore {
    async fn record_delivery(
        &self,
        key: &str,
        run_id: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<String>, Error> {
        let mut s = self.lock();
        if let Some((run, until)) = s.deliveries.get(key) {
            if *until > now {
                return Ok(Some(run.clone()));
            }
        }
        s.deliveries
            .insert(key.to_string(), (run_id.to_string(), expires_at));
        if s.deliveries.len() > weft_core::ports::MAX_DELIVERIES {
            s.deliveries.retain(|_, (_, until)| *until > now);
            while s.deliveries.len() > weft_core::ports::MAX_DELIVERIES {
                let soonest = s
                    .deliveries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| k.clone());
                match soonest {
                    Some(k) => s.deliveries.remove(&k),
                    None => break,
                };
            }
        }
        Ok(None)
    }
}
