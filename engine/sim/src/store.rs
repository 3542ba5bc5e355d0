//! The store as one process sees it: the world's in-memory store behind
//! the faults of a networked one. Calls take time; while the store is down
//! they fail, as Redis's client does when the server is stopped; a write
//! may be applied and its reply lost; a call that its process is killed
//! during is applied, or not, by chance, and never returns. Time for leases
//! and claims is the store's own (as Redis keeps it), not the caller's.

use std::time::Duration;

use async_trait::async_trait;
use weft_core::ports::{
    AttemptClaims, AttemptId, Claim, ClaimedExecution, EventLog, Fence, Leases, LogSlice, Report,
    RunIndex, RunRecord, StepLogs,
};
use weft_core::run::Event;
use weft_core::Error;

use crate::world::Proc;

/// One process's handle on the world's store.
pub struct SimStore {
    pub process: Proc,
}

#[derive(Debug)]
struct Unavailable(&'static str);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Unavailable {}

impl SimStore {
    pub fn new(process: Proc) -> Self {
        Self { process }
    }

    /// Runs one store call `op` (named `what` in the trace) through the
    /// faults. `write`: whether a lost reply can hide that it was applied.
    async fn call<T>(
        &self,
        what: &'static str,
        write: bool,
        op: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let world = &self.process.world;
        self.process.gate().await;
        let latency = {
            let max = world
                .store_faults
                .lock()
                .expect("faults lock")
                .max_latency
                .as_millis() as u64;
            world.rng(|r| r.range(0, max))
        };
        tokio::time::sleep(Duration::from_millis(latency)).await;
        if world.store_down() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            return Err(Error::backend(
                format!("sim store: {what}"),
                Unavailable("connection refused"),
            ));
        }
        if !self.process.is_alive() {
            // Killed while the call was on its way: it may have landed.
            if write && world.rng(|r| r.chance(0.5)) {
                let _ = op.await;
            }
            return std::future::pending().await;
        }
        let result = op.await;
        let lost = world.store_faults.lock().expect("faults lock").lost_reply;
        if write && world.rng(|r| r.chance(lost)) {
            world.trace(format!(
                "{}: store {what}: applied, reply lost",
                self.process.name
            ));
            return Err(Error::backend(
                format!("sim store: {what}"),
                Unavailable("reply lost"),
            ));
        }
        self.process.gate().await;
        result
    }

    fn now(&self) -> u64 {
        self.process.world.now()
    }
}

#[async_trait]
impl RunIndex for SimStore {
    async fn create_run(&self, run: &RunRecord) -> Result<(), Error> {
        let store = &self.process.world.store;
        self.call("create run", true, store.create_run(run)).await
    }

    async fn update_run(&self, run: &RunRecord) -> Result<(), Error> {
        let store = &self.process.world.store;
        self.call("update run", true, store.update_run(run)).await
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        let store = &self.process.world.store;
        self.call("get run", false, store.get_run(id)).await
    }

    async fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, Error> {
        let store = &self.process.world.store;
        self.call("list runs", false, store.list_runs(limit)).await
    }

    async fn unfinished_runs(&self, limit: usize) -> Result<Vec<String>, Error> {
        let store = &self.process.world.store;
        self.call("list unfinished runs", false, store.unfinished_runs(limit))
            .await
    }
}

#[async_trait]
impl EventLog for SimStore {
    async fn append_events(
        &self,
        run_id: &str,
        fence: &Fence,
        expected_len: u64,
        events: &[Event],
    ) -> Result<(), Error> {
        let store = &self.process.world.store;
        let result = self
            .call(
                "append events",
                true,
                store.append_events(run_id, fence, expected_len, events),
            )
            .await;
        if result.is_ok() {
            for e in events {
                self.process.world.trace(format!(
                    "{}: + {run_id} {}",
                    self.process.name,
                    crate::check::brief(e)
                ));
            }
        }
        result
    }

    async fn events(&self, run_id: &str) -> Result<Vec<Event>, Error> {
        let store = &self.process.world.store;
        self.call("read events", false, store.events(run_id)).await
    }

    async fn run_since(
        &self,
        run_id: &str,
        from: u64,
    ) -> Result<Option<(RunRecord, Vec<Event>)>, Error> {
        weft_core::ports::run_since_in_parts(self, run_id, from).await
    }
}

#[async_trait]
impl StepLogs for SimStore {
    async fn append_log(&self, key: &AttemptId, offset: u64, chunk: &[u8]) -> Result<(), Error> {
        let store = &self.process.world.store;
        self.call("append log", true, store.append_log(key, offset, chunk))
            .await
    }

    async fn read_log_from(
        &self,
        key: &AttemptId,
        offset: u64,
        max_bytes: u64,
    ) -> Result<LogSlice, Error> {
        let store = &self.process.world.store;
        self.call(
            "read log",
            false,
            store.read_log_from(key, offset, max_bytes),
        )
        .await
    }
}

#[async_trait]
impl Leases for SimStore {
    async fn lease(
        &self,
        run_id: &str,
        owner: &str,
        _now: u64,
        ttl_ms: u64,
    ) -> Result<Option<Fence>, Error> {
        let store = &self.process.world.store;
        let now = self.now();
        self.call("lease", true, store.lease(run_id, owner, now, ttl_ms))
            .await
    }

    async fn release(&self, run_id: &str, fence: &Fence) -> Result<(), Error> {
        let store = &self.process.world.store;
        self.call("release", true, store.release(run_id, fence))
            .await
    }
}

#[async_trait]
impl AttemptClaims for SimStore {
    async fn claim(
        &self,
        key: &AttemptId,
        worker: &str,
        _now: u64,
        ttl_ms: u64,
        delivery_limit: Option<u32>,
    ) -> Result<Claim, Error> {
        let world = &self.process.world;
        let now = self.now();
        let claimed = async {
            let claimed = world
                .store
                .claim(key, worker, now, ttl_ms, delivery_limit)
                .await;
            if let Ok(Claim::Held { token, .. }) = &claimed {
                // The moment an execution begins.
                crate::check::execution_starts(world, key, worker, *token);
            }
            claimed
        };
        self.call("claim", true, claimed).await
    }

    async fn renew_claim(
        &self,
        key: &AttemptId,
        worker: &str,
        token: u64,
        _now: u64,
        ttl_ms: u64,
    ) -> Result<Claim, Error> {
        let store = &self.process.world.store;
        let now = self.now();
        self.call(
            "renew claim",
            true,
            store.renew_claim(key, worker, token, now, ttl_ms),
        )
        .await
    }

    async fn finish_claim(
        &self,
        key: &AttemptId,
        worker: &str,
        token: u64,
        report: &Report,
    ) -> Result<(), Error> {
        let store = &self.process.world.store;
        self.call(
            "finish claim",
            true,
            store.finish_claim(key, worker, token, report),
        )
        .await
    }

    async fn abort_claim(&self, key: &AttemptId) -> Result<Vec<ClaimedExecution>, Error> {
        let store = &self.process.world.store;
        self.call("abort claim", true, store.abort_claim(key)).await
    }

    async fn claim_executions(&self, key: &AttemptId) -> Result<Vec<ClaimedExecution>, Error> {
        let store = &self.process.world.store;
        self.call("claim executions", false, store.claim_executions(key))
            .await
    }
}
