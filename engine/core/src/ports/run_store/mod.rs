//! The run store: runs, their event logs, step logs, leases and attempt
//! claims, as five focused ports ([`RunIndex`], [`EventLog`], [`StepLogs`],
//! [`Leases`], [`AttemptClaims`]) that one store implements together as a
//! [`RunStore`]. Each port has its own contract in `weft-testkit`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::{Claim, ClaimedExecution, Fence, Report};
use crate::plugins::ResolvedPlugin;
use crate::run::{Event, Millis, RunLimits, RunStatus, TaskId};
use crate::Error;

/// What is stored about a run besides its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub workflow: String,
    /// Where the workflow was read from, for display.
    pub file: String,
    /// The workflow file's text: a run replays against exactly what it ran.
    pub source: String,
    pub params: Map<String, Json>,
    pub status: RunStatus,
    pub created_at: Millis,
    pub finished_at: Option<Millis>,
    /// Why it failed or was cancelled, in one line.
    #[serde(default)]
    pub summary: Option<String>,
    /// The exact plugin (version and hash) each reference resolved to at submit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugins: BTreeMap<String, ResolvedPlugin>,
    /// Who asked for it: the API token's name, or the local user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    /// The limits it runs under (the server's when it was submitted).
    #[serde(default, skip_serializing_if = "RunLimits::is_default")]
    pub limits: RunLimits,
    /// The server's policy for the submitter's role, as the run was
    /// admitted under it; every job is held to it as rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::RunPolicy>,
    /// `--no-cache`, `--refresh STEP`.
    #[serde(
        default,
        skip_serializing_if = "crate::cache::RunCacheChoice::is_default"
    )]
    pub cache: crate::cache::RunCacheChoice,
    /// `--priority`: its place in a concurrency key's line, and its jobs'
    /// band in their pools' queues (`-1000..=1000`, higher first).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// A page of runs: filters, newest first, after a cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunQuery {
    pub status: Option<RunStatus>,
    pub workflow: Option<String>,
    /// Only runs older than this `(created_at, id)`: the last run of the previous page.
    pub before: Option<(Millis, String)>,
    /// Only runs whose id starts with this.
    pub id_prefix: Option<String>,
    pub limit: usize,
}

impl RunQuery {
    /// The runs of `runs` this query asks for: matching, newest first, at
    /// most `limit`.
    pub fn pick(&self, runs: impl IntoIterator<Item = RunRecord>) -> Vec<RunRecord> {
        let mut picked: Vec<RunRecord> = runs.into_iter().filter(|r| self.matches(r)).collect();
        picked.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        picked.truncate(self.limit);
        picked
    }

    pub fn matches(&self, run: &RunRecord) -> bool {
        self.status.is_none_or(|s| s == run.status)
            // A person types the name: its case does not matter.
            && self
                .workflow
                .as_ref()
                .is_none_or(|w| w.eq_ignore_ascii_case(&run.workflow))
            && self
                .id_prefix
                .as_ref()
                .is_none_or(|p| run.id.starts_with(p.as_str()))
            && self
                .before
                .as_ref()
                .is_none_or(|(at, id)| (run.created_at, &run.id) < (*at, id))
    }
}

/// One attempt of one task of a run: what its claim, its log and its
/// executions are keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptId {
    pub run_id: String,
    pub task: TaskId,
    pub attempt: u32,
}

impl AttemptId {
    /// The attempt a job is for.
    pub fn of(job: &crate::run::Job) -> Self {
        Self {
            run_id: job.run_id.clone(),
            task: job.task.clone(),
            attempt: job.attempt,
        }
    }
}

impl std::fmt::Display for AttemptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}#{}", self.run_id, self.task, self.attempt)
    }
}

/// Largest piece of a log a store keeps as one entry: a step that prints
/// 200 MB at once is stored as many bounded entries, never one huge one.
pub const LOG_CHUNK_BYTES: usize = 64 * 1024;

/// Largest page of a log one read returns, by default.
pub const LOG_PAGE_BYTES: u64 = 1 << 20;

/// Part of an attempt's log: `bytes` begin at byte `start` of the log as
/// written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSlice {
    /// The asked-for offset, or later where a store has dropped the log's
    /// oldest bytes (it keeps a bounded log), or the log's end when the
    /// offset lies past it.
    pub start: u64,
    pub bytes: Vec<u8>,
    /// Where the log ends as stored now: more follows this page while
    /// [`LogSlice::end`] is short of it.
    pub log_end: u64,
}

impl LogSlice {
    /// Whether the log goes on past this page (as stored now).
    pub fn more(&self) -> bool {
        self.end() < self.log_end
    }

    /// Where the next read of the log carries on.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

/// The runs: their records, and the queries that find them.
#[async_trait]
pub trait RunIndex: Send + Sync {
    /// Stores a new run. Fails with `Conflict` if the id exists.
    async fn create_run(&self, run: &RunRecord) -> Result<(), Error>;

    /// Updates status, finish time and summary.
    async fn update_run(&self, run: &RunRecord) -> Result<(), Error>;

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>, Error>;

    /// Newest first, at most `limit`.
    async fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, Error>;

    /// The ids of the runs that have not ended, at most `limit`: what an
    /// orchestrator looks through for runs whose driver is gone. A store
    /// keeps them apart, so finding them reads no finished run.
    async fn unfinished_runs(&self, limit: usize) -> Result<Vec<String>, Error>;

    /// Runs matching `query`, newest first. The default scans every run;
    /// stores with an index may do better.
    async fn query_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, Error> {
        Ok(query.pick(self.list_runs(usize::MAX).await?))
    }
}

/// Each run's event log: the truth its state is replayed from.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends events at position `expected_len` of the run's log, for the
    /// driver holding the run's lease as `fence`.
    ///
    /// # Contract
    /// Fenced and version-checked, atomically: if another owner has taken
    /// the run's lease since `fence` was given, nothing is written and
    /// `Fenced` is returned; if the log does not have exactly
    /// `expected_len` events, nothing is written and `LogMoved` (with the
    /// log's length) is returned. All of `events` are written, or none.
    async fn append_events(
        &self,
        run_id: &str,
        fence: &Fence,
        expected_len: u64,
        events: &[Event],
    ) -> Result<(), Error>;

    /// The run's whole event log, in order.
    async fn events(&self, run_id: &str) -> Result<Vec<Event>, Error>;

    /// The run's record with its events from position `from` (0-based) on,
    /// read together (`None` if there is no such run): what a reader that
    /// has seen `from` events needs to bring its state up to date. A store
    /// reads it in one round trip, and only the new events, where it can
    /// ([`run_since_in_parts`] is the plain way).
    async fn run_since(
        &self,
        run_id: &str,
        from: u64,
    ) -> Result<Option<(RunRecord, Vec<Event>)>, Error>;
}

/// Each attempt's output, stored in bounded chunks and read in pages.
#[async_trait]
pub trait StepLogs: Send + Sync {
    /// Appends `chunk` to an attempt's log at byte `offset` (where its
    /// writer believes the log ends), stored in entries of at most
    /// [`LOG_CHUNK_BYTES`].
    ///
    /// # Contract
    /// Written, all of it, only if the log ends at `offset`; else nothing
    /// is written and `LogMoved` says where it ends. So a writer that tries
    /// again after a lost reply finds its bytes there (the log ends at
    /// `offset + chunk.len()`) instead of writing them twice.
    async fn append_log(&self, key: &AttemptId, offset: u64, chunk: &[u8]) -> Result<(), Error>;

    /// A page of an attempt's log: at most `max_bytes` from byte `offset`
    /// on (a reader following the log reads from where it stopped), with
    /// where the log ends now. Empty, at 0, if none was written.
    async fn read_log_from(
        &self,
        key: &AttemptId,
        offset: u64,
        max_bytes: u64,
    ) -> Result<LogSlice, Error>;

    /// An attempt's whole log, page by page: for logs known to be small
    /// (tests, a post hook's tail); readers of any log page instead.
    async fn read_log(&self, key: &AttemptId) -> Result<Vec<u8>, Error> {
        let mut log = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.read_log_from(key, offset, LOG_PAGE_BYTES).await?;
            log.extend_from_slice(&page.bytes);
            if !page.more() || page.bytes.is_empty() {
                return Ok(log);
            }
            offset = page.end();
        }
    }
}

/// Who drives a run: one orchestrator at a time, by lease.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes, or renews, the right to drive `run_id` for `owner`, until
    /// `ttl_ms` after `now` (stores that keep their own time, as Redis
    /// does, use theirs).
    ///
    /// # Contract
    /// Returns the fence to write with if `owner` holds the lease
    /// afterwards, `None` if another owner holds one that has not expired.
    /// Two owners never hold the same run's lease at once. The fence's
    /// token changes exactly when the lease changes hands (see
    /// [`LeaseRecord::take`](super::LeaseRecord::take)).
    async fn lease(
        &self,
        run_id: &str,
        owner: &str,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<Option<Fence>, Error>;

    /// Gives the lease up if `fence` still holds it.
    async fn release(&self, run_id: &str, fence: &Fence) -> Result<(), Error>;

    /// The owner who last took `run_id`'s lease, expired or not, where the
    /// store can tell: a server that is handed another's report forwards
    /// it to that owner's mailbox. Stores of one server say `None`.
    async fn holder(&self, _run_id: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }
}

/// Who runs an attempt: one execution at a time, by claim.
#[async_trait]
pub trait AttemptClaims: Send + Sync {
    /// A fresh claim of attempt `key` by claimant `worker`, until `ttl_ms`
    /// after `now`: `Held` with a new execution token if the attempt is
    /// free. A claimant is one copy of the job on one worker (a worker
    /// names each copy it takes apart), so that asking again after a lost
    /// answer is safe.
    ///
    /// # Contract
    /// At most one execution holds a claim at a time; a claim not renewed
    /// in time expires and may be taken by another, as a new execution.
    /// The claimant holding it that asks again gets the same token back.
    /// `Done` and `Aborted` are final: no one can hold the claim after
    /// them. With a `delivery_limit`, a claim that more than that many
    /// executions took, none finishing, is given to no new one
    /// (`Exhausted`). (Rules: [`ClaimRecord::claim`](super::ClaimRecord::claim).)
    async fn claim(
        &self,
        key: &AttemptId,
        worker: &str,
        now: Millis,
        ttl_ms: u64,
        delivery_limit: Option<u32>,
    ) -> Result<Claim, Error>;

    /// Execution `token` of `worker` renews its claim: `Held` if it still
    /// has it, else what became of it.
    async fn renew_claim(
        &self,
        key: &AttemptId,
        worker: &str,
        token: u64,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<Claim, Error>;

    /// Execution `token` of `worker` marks attempt `key` finished, keeping
    /// `report` for redelivered copies of the job.
    ///
    /// # Errors
    /// `Fenced` if another execution took the claim over.
    async fn finish_claim(
        &self,
        key: &AttemptId,
        worker: &str,
        token: u64,
        report: &Report,
    ) -> Result<(), Error>;

    /// Asks whoever runs attempt `key` to stop; a finished attempt stays
    /// finished. Returns the executions the claim remembers (oldest first),
    /// for the caller to record those no report told it of.
    async fn abort_claim(&self, key: &AttemptId) -> Result<Vec<ClaimedExecution>, Error>;

    /// The executions attempt `key`'s claim remembers (oldest first),
    /// changing nothing: how many began, for a server that must tell a job
    /// that crashed its workers from one its takers merely let go of.
    async fn claim_executions(&self, key: &AttemptId) -> Result<Vec<ClaimedExecution>, Error>;
}

/// [`EventLog::run_since`] from the run's record and its whole event log,
/// read one after the other: for stores where that costs nothing more.
pub async fn run_since_in_parts<S: RunIndex + EventLog + ?Sized>(
    store: &S,
    run_id: &str,
    from: u64,
) -> Result<Option<(RunRecord, Vec<Event>)>, Error> {
    let Some(record) = store.get_run(run_id).await? else {
        return Ok(None);
    };
    let mut events = store.events(run_id).await?;
    Ok(Some((
        record,
        events.split_off((from as usize).min(events.len())),
    )))
}

/// The run store port: every part a run's data is kept in. Callers that
/// need one part take that part's port; a store implements them all.
pub trait RunStore: RunIndex + EventLog + StepLogs + Leases + AttemptClaims {}

impl<T: RunIndex + EventLog + StepLogs + Leases + AttemptClaims + ?Sized> RunStore for T {}
