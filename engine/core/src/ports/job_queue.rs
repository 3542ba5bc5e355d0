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
    /// Executions of the attempt before this one, as its claim remembers
    /// them: their workers may have died before reporting them, and the
    /// server records each it does not show yet (at most
    /// [`CLAIM_HISTORY`](super::CLAIM_HISTORY)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<super::ClaimedExecution>,
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
        /// Where no `Started` was sent (a step that ended quickly: its
        /// claim recorded the start), how many milliseconds before this
        /// report the execution began, so the server can date its start by
        /// its own clock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unreported_start_ms: Option<u64>,
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

/// Where a job waits in its pool: a pool's jobs are taken highest band
/// first, and in publish order within a band. A run's priority
/// (`--priority`, `-1000..=1000`) falls in one of three bands, as a broker
/// keeps a few queues per pool rather than one per priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PriorityBand {
    /// Priority above 0.
    High,
    /// Priority 0, the default.
    Normal,
    /// Priority below 0.
    Low,
}

impl PriorityBand {
    /// Every band, the first taken first.
    pub const ALL: [PriorityBand; 3] = [Self::High, Self::Normal, Self::Low];

    pub fn of(priority: i32) -> Self {
        match priority {
            p if p > 0 => Self::High,
            0 => Self::Normal,
            _ => Self::Low,
        }
    }

    /// Its position in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name of `pool`'s queue of this band: the pool's own name for the
    /// normal band, so a pool's queue of priority-0 jobs keeps the name it
    /// always had; `<pool>.high`, `<pool>.low` (a pool name holds no `.`).
    pub fn queue_of(self, pool: &str) -> String {
        match self {
            Self::High => format!("{pool}.high"),
            Self::Normal => pool.to_string(),
            Self::Low => format!("{pool}.low"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }
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
    /// Whether it came from this server's own mailbox
    /// ([`JobQueue::open_mailbox`]) rather than the queue every server reads.
    fn came_by_mailbox(&self) -> bool {
        false
    }
}

/// The job queue port.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues a job on its pool (`job.pool`).
    ///
    /// # Contract
    /// When this returns `Ok`, the job survives as long as the queue does.
    async fn publish(&self, job: &Job) -> Result<(), Error>;

    /// Waits for the next job of `pool`: the earliest published of the
    /// highest [`PriorityBand`] that has one. Each job goes to one taker at
    /// a time.
    async fn take(&self, pool: &str) -> Result<Box<dyn Delivery>, Error> {
        loop {
            self.wait_for_job(pool).await?;
            if let Some(delivery) = self.try_take(pool).await? {
                return Ok(delivery);
            }
        }
    }

    /// Waits until a job of `pool` is there for this taker to take with
    /// [`try_take`](Self::try_take) (which may still find none: another
    /// taker may have been first). A worker waits here before it holds a
    /// slot, and takes once it does, so the job it runs is the best one
    /// waiting when it has room for one, not when it last looked.
    async fn wait_for_job(&self, pool: &str) -> Result<(), Error>;

    /// The next job of `pool` as [`take`](Self::take) orders them, if one
    /// is there now; `None` without waiting for one otherwise.
    async fn try_take(&self, pool: &str) -> Result<Option<Box<dyn Delivery>>, Error>;

    /// The taker has had no room for a job of `pool` for a while: it gives
    /// back the jobs it holds of `pool` and has not taken, and is sent no
    /// more until it next waits for or takes one, so that a job does not
    /// wait on a busy worker while another could start it. Queues that
    /// hold nothing for a taker do nothing.
    async fn release(&self, _pool: &str) -> Result<(), Error> {
        Ok(())
    }

    /// Sends a report to the orchestrator: to the mailbox `to` (a job's
    /// [`reply_to`](Job::reply_to)) if it is given, else to the queue every
    /// server reads.
    ///
    /// # Contract
    /// When this returns `Ok`, the report reaches a server's
    /// [`next_report`](Self::next_report): the mailbox's if it is read, the
    /// shared queue's if the mailbox is gone, or unread for a while (its
    /// server died). A report is never lost for want of its mailbox.
    async fn report(&self, to: Option<&str>, report: &Report) -> Result<(), Error>;

    /// Opens this server's own mailbox, `name` (its name in leases): from
    /// now on [`next_report`](Self::next_report) returns the reports sent
    /// to it as well as the shared queue's. Returns what to put in jobs'
    /// `reply_to`, or `None` where the queue keeps one report queue for all
    /// (every report then comes to every reader's `next_report` anyway).
    /// Where several servers read one queue, a mailbox spares each the
    /// others' reports.
    async fn open_mailbox(&self, _name: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }

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

    /// How many times the queue takes a job back unacked before it gives up
    /// on it (see [`next_dead_job`](Self::next_dead_job)); `None` where it
    /// never does.
    fn delivery_limit(&self) -> Option<u32> {
        None
    }

    /// Waits for the next job the queue gave up on: one taken back more
    /// than its delivery limit without an ack. That is what a job that
    /// keeps crashing its worker does, and also one whose takers kept
    /// losing their connection while they held it, unstarted: the server
    /// tells the two apart by the executions its claim remembers.
    /// Queues that never give up on a job never return from this.
    async fn next_dead_job(&self) -> Result<Box<dyn Delivery>, Error> {
        std::future::pending().await
    }

    /// Waits for the next report, in the order they were sent.
    async fn next_report(&self) -> Result<Box<dyn ReportDelivery>, Error>;
}

#[cfg(test)]
mod tests {
    use super::PriorityBand;

    #[test]
    fn priorities_fall_in_three_bands_taken_highest_first() {
        assert_eq!(PriorityBand::of(1000), PriorityBand::High);
        assert_eq!(PriorityBand::of(1), PriorityBand::High);
        assert_eq!(PriorityBand::of(0), PriorityBand::Normal);
        assert_eq!(PriorityBand::of(-1), PriorityBand::Low);
        assert_eq!(PriorityBand::of(-1000), PriorityBand::Low);
        let mut sorted = PriorityBand::ALL;
        sorted.sort();
        assert_eq!(sorted, PriorityBand::ALL, "ALL is in taking order");
        for (i, band) in PriorityBand::ALL.into_iter().enumerate() {
            assert_eq!(band.index(), i);
        }
        assert_eq!(
            PriorityBand::Normal.queue_of("gpu"),
            "gpu",
            "the queue it always had"
        );
        assert_eq!(PriorityBand::High.queue_of("gpu"), "gpu.high");
    }
}
