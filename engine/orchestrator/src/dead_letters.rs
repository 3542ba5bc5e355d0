//! Jobs the queue gave up on. A queue dead-letters a job it took back
//! unacked more than its delivery limit. Two different things do that:
//! - a job that keeps crashing (or cutting off) its worker: every return
//!   is an execution that began and never finished, and running it again
//!   would only take down one more worker;
//! - a job its takers held without starting it (a worker is sent more jobs
//!   than it has slots) while they lost their broker connection: a broker
//!   node restarting, a network cut, a worker killed. RabbitMQ counts those
//!   returns too, though the step never began.
//!
//! The claim tells them apart: it remembers every execution that began. A
//! job whose claim shows more executions than the delivery limit fails its
//! attempt, as a crashing job; any other is queued again as a new message,
//! so a run is not failed by faults around a step that never ran. Queuing
//! again is itself bounded ([`REQUEUE_LIMIT`], counted in the job), for a
//! job that would kill its worker before its claim.

use std::time::Duration;

use tokio::task::JoinHandle;
use weft_core::ports::{AttemptId, Delivery, Report, ReportDelivery, ReportKind};
use weft_core::run::{FailureKind, Job, Outcome};

use crate::service::Service;
use crate::Error;

/// How many times a server queues one job again after its queue gave up on
/// it with too few executions begun to call it a crashing job.
pub const REQUEUE_LIMIT: u32 = 5;

/// What becomes of a dead-lettered job.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Queued again, as a new message (its delivery count starts over).
    Requeue,
    /// Its attempt fails, with this reason.
    Fail(String),
}

/// The rule: `executions` began (as the job's claim remembers), and the
/// queue gives up after `delivery_limit` returns.
fn verdict(job: &Job, executions: usize, delivery_limit: Option<u32>) -> Verdict {
    let Some(limit) = delivery_limit else {
        return Verdict::Fail(
            "the job was delivered again and again and never finished: it keeps crashing or losing its worker, so the queue dead-lettered it"
                .into(),
        );
    };
    if executions > limit as usize {
        return Verdict::Fail(format!(
            "{executions} executions of this attempt began and none finished: the job keeps crashing or losing its worker, so the queue dead-lettered it after {} returns",
            limit + 1
        ));
    }
    if job.requeued >= REQUEUE_LIMIT {
        return Verdict::Fail(format!(
            "the job kept coming back to its queue unfinished ({} times past its delivery limit of {limit}, with {executions} executions begun): its workers keep dying or losing the broker while they hold it, so the queue dead-lettered it",
            job.requeued + 1
        ));
    }
    Verdict::Requeue
}

/// A dead-lettered job, seen by its run's driver as a failure report; acking
/// it removes the job from the dead-letter queue.
struct DeadLetter {
    report: Report,
    job: Box<dyn Delivery>,
}

#[async_trait::async_trait]
impl ReportDelivery for DeadLetter {
    fn report(&self) -> &Report {
        &self.report
    }

    async fn ack(self: Box<Self>) -> Result<(), weft_core::Error> {
        self.job.ack().await
    }
}

impl Service {
    /// Judges each job the queue gives up on: queued again, or its attempt
    /// failed so its run fails with the reason instead of waiting forever.
    pub fn spawn_dead_letters(&self) -> JoinHandle<Result<(), Error>> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.next_dead_letter().await {
                    tracing::warn!("dead-letter reader: {e}; trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        })
    }

    async fn next_dead_letter(&self) -> Result<(), Error> {
        let dead = self.shared.queue.next_dead_job().await?;
        let job = dead.job().clone();
        let key = AttemptId::of(&job);
        // How many began: the newest token (one per execution), which the
        // claim's bounded history still names when it has forgotten the
        // oldest; the same count a claim refuses a new execution by
        // (`ClaimRecord::claim`).
        let remembered = self.shared.store.claim_executions(&key).await?;
        let executions = remembered.last().map_or(0, |e| e.token as usize);
        let reason = match verdict(&job, executions, self.shared.queue.delivery_limit()) {
            Verdict::Requeue => {
                tracing::info!(
                    run = %job.run_id,
                    task = %job.task,
                    attempt = job.attempt,
                    executions,
                    "the queue gave up on a job that its takers let go of unstarted; queued again"
                );
                let again = Job {
                    requeued: job.requeued + 1,
                    ..job
                };
                self.shared.queue.publish(&again).await?;
                dead.ack().await?;
                return Ok(());
            }
            Verdict::Fail(reason) => reason,
        };
        // No execution may start it now, and those that began (their
        // workers died: that is how a job gets here) are known only to its
        // claim.
        let earlier = self.shared.store.abort_claim(&key).await?;
        let report = Report {
            run_id: job.run_id.clone(),
            task: job.task.clone(),
            attempt: job.attempt,
            // No worker ran this: it is no execution of the attempt.
            worker: String::new(),
            at: self.shared.clock.now(),
            execution: 0,
            earlier,
            kind: ReportKind::Finished {
                outcome: Outcome::Failed {
                    reason,
                    exit_code: None,
                    retryable: false,
                    kind: FailureKind::Infrastructure,
                },
                hooks: Vec::new(),
                unreported_start_ms: None,
            },
        };
        let delivery: Box<dyn ReportDelivery> = Box::new(DeadLetter { report, job: dead });
        match self.route(&job.run_id, delivery) {
            Ok(()) => Ok(()),
            Err(d) => self.deliver_elsewhere(&job.run_id, d).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(requeued: u32) -> Job {
        Job {
            requeued,
            ..weft_testkit::job("r", "s", "default")
        }
    }

    #[test]
    fn a_job_whose_returns_were_all_executions_fails_as_crashing() {
        // Limit 3: the queue gave up at the 4th return; 4 executions began.
        let Verdict::Fail(reason) = verdict(&job(0), 4, Some(3)) else {
            panic!("a crashing job fails");
        };
        assert!(reason.contains("4 executions"), "{reason}");
        assert!(reason.contains("dead-lettered"), "{reason}");
        // Counted across earlier requeues: the claim remembers them all.
        assert!(matches!(verdict(&job(2), 9, Some(3)), Verdict::Fail(_)));
    }

    #[test]
    fn a_job_let_go_of_unstarted_is_queued_again_up_to_the_limit() {
        assert_eq!(verdict(&job(0), 0, Some(3)), Verdict::Requeue);
        assert_eq!(
            verdict(&job(0), 3, Some(3)),
            Verdict::Requeue,
            "one of the four returns was no execution"
        );
        assert_eq!(
            verdict(&job(REQUEUE_LIMIT - 1), 1, Some(3)),
            Verdict::Requeue
        );
        let Verdict::Fail(reason) = verdict(&job(REQUEUE_LIMIT), 1, Some(3)) else {
            panic!("queued again at most REQUEUE_LIMIT times");
        };
        assert!(reason.contains("kept coming back"), "{reason}");
    }

    #[test]
    fn a_queue_that_does_not_say_its_limit_fails_the_job_as_before() {
        assert!(matches!(verdict(&job(0), 0, None), Verdict::Fail(_)));
    }
}
