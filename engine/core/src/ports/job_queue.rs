//! Jobs go from the orchestrator to workers; reports come back.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::run::{Job, Millis, Outcome, TaskId};
use crate::Error;

/// What a worker says about an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub run_id: String,
    pub task: TaskId,
    pub attempt: u32,
    pub worker: String,
    pub at: Millis,
    /// The execution of the attempt this is about: its claim's token (0
    /// where none is known, as for a dead-lettered job).
    #[serde(default)]
    pub execution: u64,
    pub kind: ReportKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ReportKind {
    Started,
    Finished {
        outcome: Outcome,
        /// The plugin hooks that ran around the step.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        hooks: Vec<crate::run::HookRun>,
    },
    /// From a server, not a worker: someone asked to cancel the run, and
    /// the server asked does not drive it; whichever does takes this as
    /// the cancel. `task` and `attempt` mean nothing here.
    Cancel {
        reason: String,
    },
    /// From a server: a person approved or rejected the approval step's
    /// attempt `task`/`attempt`.
    Decided {
        by: String,
        approved: bool,
        #[serde(default)]
        inputs: serde_json::Map<String, serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
}

/// A job taken from the queue, held until acknowledged.
///
/// # Contract
/// Dropping a delivery without `ack` returns the job to the queue, as a lost
/// connection would: a job is never lost, only possibly delivered again.
#[async_trait]
pub trait Delivery: Send {
    fn job(&self) -> &Job;
    /// The job is done (its result is recorded); it will not be delivered again.
    async fn ack(self: Box<Self>) -> Result<(), Error>;
    /// Give the job back; `requeue = false` drops it (or dead-letters it).
    async fn reject(self: Box<Self>, requeue: bool) -> Result<(), Error>;
}

/// A report taken from the queue, held until its event is recorded.
///
/// # Contract
/// Dropping it without `ack` returns the report to the queue.
#[async_trait]
pub trait ReportDelivery: Send {
    fn report(&self) -> &Report;
    /// The report's event is durably stored; it will not be delivered again.
    async fn ack(self: Box<Self>) -> Result<(), Error>;
}

/// The job queue port.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues a job on its pool (`job.pool`).
    ///
    /// # Contract
    /// When this returns `Ok`, the job survives as long as the queue does.
    async fn publish(&self, job: &Job) -> Result<(), Error>;

    /// Waits for the next job of `pool`. Jobs of one pool are delivered in
    /// publish order, each to one taker at a time.
    async fn take(&self, pool: &str) -> Result<Box<dyn Delivery>, Error>;

    /// Sends a report to the orchestrator.
    async fn report(&self, report: &Report) -> Result<(), Error>;

    /// Queues several jobs; adapters may pipeline them.
    async fn publish_all(&self, jobs: &[Job]) -> Result<(), Error> {
        for job in jobs {
            self.publish(job).await?;
        }
        Ok(())
    }

    /// Jobs waiting in `pool` (not yet delivered), if the queue can tell.
    async fn depth(&self, _pool: &str) -> Result<Option<u64>, Error> {
        Ok(None)
    }

    /// Waits for the next job the queue gave up on: one delivered more than
    /// its delivery limit without an ack (it keeps crashing its worker).
    /// Queues that never give up on a job never return from this.
    async fn next_dead_job(&self) -> Result<Box<dyn Delivery>, Error> {
        std::future::pending().await
    }

    /// Waits for the next report, in the order they were sent.
    async fn next_report(&self) -> Result<Box<dyn ReportDelivery>, Error>;
}
