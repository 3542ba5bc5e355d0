//! An attempt's claim while this worker runs it: renewed with the
//! execution's token until its end is recorded, and finished with the
//! report of how it ended, durably, before the job is acknowledged, so a
//! copy of the job delivered again finds it done and re-sends the report
//! instead of running the step again. And before that, the claim asked
//! for a copy of a job as it comes: held, refused (settled), or waited for.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use weft_core::ports::{
    AttemptClaims, AttemptId, Claim, ClaimedExecution, Clock, Delivery, Report, ReportKind,
};

use crate::worker::Worker;

impl Worker {
    /// How long a claim on a running attempt lasts without renewal.
    pub(crate) fn claim_ttl(&self) -> Duration {
        Duration::from_millis(self.options.heartbeat_ms.saturating_mul(3).max(300))
    }

    /// Claims the attempt as a new execution: its token and the executions
    /// before it, to run it; `None` if it finished or was aborted (the
    /// delivery is then settled: see [`Worker::settle`]) or more executions
    /// began than the queue's delivery limit (it is dead-lettered). While another execution holds
    /// it (the broker delivered a job again that is still running, e.g.
    /// past its consumer timeout), waits holding the delivery; while the
    /// store fails, tries again.
    pub(crate) async fn claim(
        &self,
        key: &AttemptId,
        claimant: &str,
        delivery: &mut Option<Box<dyn Delivery>>,
    ) -> Option<(u64, Vec<ClaimedExecution>)> {
        let ttl = self.claim_ttl();
        let mut deferred = false;
        let mut tries = 0;
        loop {
            let claimed = self
                .store
                .claim(
                    key,
                    claimant,
                    self.clock.now(),
                    ttl.as_millis() as u64,
                    self.queue.delivery_limit(),
                )
                .await;
            match claimed {
                Ok(Claim::Held { token, earlier }) => return Some((token, earlier)),
                Ok(Claim::Exhausted { began }) => {
                    // Every execution before crashed or lost its worker: a
                    // poison job. Dead-lettered unrun; its server fails the
                    // attempt by the same count (`dead_letters::verdict`).
                    tracing::warn!(
                        attempt = %label(key),
                        began,
                        "this job's executions all ended without finishing, past its delivery limit: dead-lettered, not run again"
                    );
                    let _ = delivery.take()?.reject(false).await;
                    return None;
                }
                Ok(Claim::Done(report)) => {
                    self.settle(key, delivery.take()?, report).await;
                    return None;
                }
                Ok(Claim::Aborted) => {
                    self.settle(key, delivery.take()?, None).await;
                    return None;
                }
                Ok(Claim::HeldBy(_)) => {
                    if !std::mem::replace(&mut deferred, true) {
                        self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(ttl / 3).await;
                }
                Err(e) => {
                    tries += 1;
                    tracing::warn!(attempt = %label(key), "claiming: {e}; trying again");
                    tokio::time::sleep(backoff(tries)).await;
                }
            }
        }
    }

    /// Settles a copy of a job whose attempt finished (`done`: the report
    /// its execution recorded) or was aborted. Every execution its claim
    /// remembers is told to the server, with the report or as starts: one
    /// may have died before it could report (that is often why this copy
    /// came back), and after this copy is acked nothing would tell of it.
    /// The job is acked once they are sent, else given back to try again.
    async fn settle(
        &self,
        key: &AttemptId,
        delivery: Box<dyn Delivery>,
        done: Option<Box<Report>>,
    ) {
        // On a settled claim an abort changes nothing: it reads what the
        // claim remembers.
        let Ok(executions) = self.store.abort_claim(key).await else {
            let _ = delivery.reject(true).await;
            return;
        };
        let reports = match done {
            Some(mut report) => {
                report.earlier = executions
                    .into_iter()
                    .filter(|e| e.token != report.execution)
                    .collect();
                vec![*report]
            }
            None => self.starts(key, executions),
        };
        self.tell_then_ack(delivery, &reports).await;
    }

    /// Settles a copy of a job that held its claim but was aborted (a
    /// cancel, a timeout, its claim taken by another copy) before its step
    /// started, say while it waited for a slot. Its own execution never
    /// ran; those before it that its claim remembered (`earlier`) may
    /// have, their worker killed before it could tell, and once this copy
    /// is acked nothing would tell of them either.
    pub(crate) async fn settle_unstarted(
        &self,
        key: &AttemptId,
        delivery: Box<dyn Delivery>,
        earlier: Vec<ClaimedExecution>,
    ) {
        let reports = self.starts(key, earlier);
        self.tell_then_ack(delivery, &reports).await;
    }

    /// `Started` reports of `executions` of `key`, dated now.
    fn starts(&self, key: &AttemptId, executions: Vec<ClaimedExecution>) -> Vec<Report> {
        executions
            .into_iter()
            .map(|e| Report {
                run_id: key.run_id.clone(),
                task: key.task.clone(),
                attempt: key.attempt,
                worker: e.worker,
                at: self.clock.now(),
                execution: e.token,
                earlier: Vec::new(),
                kind: ReportKind::Started,
            })
            .collect()
    }

    /// Sends `reports`, then acks `delivery`; gives it back if one could
    /// not be sent.
    async fn tell_then_ack(&self, delivery: Box<dyn Delivery>, reports: &[Report]) {
        let to = delivery.job().reply_to.clone();
        for report in reports {
            if self.queue.report(to.as_deref(), report).await.is_err() {
                // Not sent: the job comes back, and with it this chance.
                let _ = delivery.reject(true).await;
                return;
            }
        }
        let _ = delivery.ack().await;
    }
}

/// How long to wait before trying the store again, after `tries` failures.
pub(crate) fn backoff(tries: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << tries.min(5))).min(Duration::from_secs(3))
}

/// The claim of one execution of an attempt.
pub(crate) struct HeldClaim {
    pub(crate) store: Arc<dyn AttemptClaims>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The claimant (`weft_core::ports::Claimants`) this execution holds it as.
    pub(crate) claimant: String,
    pub(crate) key: AttemptId,
    /// This execution's token.
    pub(crate) token: u64,
    pub(crate) ttl: Duration,
}

/// How recording an attempt's end went.
pub(crate) enum Recorded {
    /// Durable: the claim is done with this report.
    Done,
    /// Another execution, which took the claim over while this one could
    /// not renew it (starved, or cut off from the store for longer than
    /// the claim lasts), finished first: the step ran twice, and both
    /// executions get reported. Says what the store found.
    FinishedElsewhere(String),
}

impl HeldClaim {
    /// Renews the claim every third of its lifetime until the task is
    /// aborted, and sets `stop` (this execution's own stop signal) when the
    /// attempt is aborted (`attempt_abort`: a cancel, which stops every
    /// execution of it here) or when this execution's claim is lost to
    /// another, which stops this one alone: a later execution of the same
    /// attempt on this worker (its job delivered again) holds the claim
    /// now. A renewal the store fails is tried again at the next tick: the
    /// claim is only lost if another execution takes it.
    pub(crate) fn spawn_renewal(
        self: &Arc<Self>,
        mut attempt_abort: watch::Receiver<bool>,
        stop: watch::Sender<bool>,
    ) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut told = false;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(this.ttl / 3) => {}
                    Ok(_) = attempt_abort.wait_for(|a| *a), if !told => {
                        told = true;
                        stop.send_replace(true);
                        continue;
                    }
                }
                let renewed = this
                    .store
                    .renew_claim(
                        &this.key,
                        &this.claimant,
                        this.token,
                        this.clock.now(),
                        this.ttl.as_millis() as u64,
                    )
                    .await;
                match renewed {
                    Ok(Claim::Held { .. }) => {}
                    Err(e) => tracing::warn!(
                        attempt = %label(&this.key),
                        "renewing the claim: {e}; trying again"
                    ),
                    Ok(other) => {
                        tracing::warn!(
                            attempt = %label(&this.key),
                            "the claim is now {other:?}: stopping the step"
                        );
                        stop.send_replace(true);
                        return;
                    }
                }
            }
        })
    }

    /// Records the end of the attempt with `report`, trying again for as
    /// long as the store fails: the job is not acknowledged before this
    /// returns, and the claim is renewed meanwhile.
    pub(crate) async fn finish(&self, report: &Report) -> Recorded {
        let mut tries = 0;
        loop {
            match self
                .store
                .finish_claim(&self.key, &self.claimant, self.token, report)
                .await
            {
                Ok(()) => return Recorded::Done,
                Err(weft_core::Error::Fenced(why)) => return Recorded::FinishedElsewhere(why),
                Err(e) => {
                    tries += 1;
                    tracing::warn!(
                        attempt = %label(&self.key),
                        "recording the end of the attempt: {e}; trying again"
                    );
                    tokio::time::sleep(backoff(tries)).await;
                }
            }
        }
    }
}

/// `run/task#attempt`, as logs name an attempt.
pub(crate) fn label(key: &AttemptId) -> String {
    key.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_testkit::{ManualClock, MemoryRunStore};

    /// Execution `token` of `claimant`, renewed every 30 ms.
    fn held(
        store: &Arc<MemoryRunStore>,
        clock: &Arc<ManualClock>,
        claimant: &str,
        token: u64,
    ) -> Arc<HeldClaim> {
        Arc::new(HeldClaim {
            store: store.clone(),
            clock: clock.clone(),
            claimant: claimant.into(),
            key: AttemptId::of(&weft_testkit::job("r", "t", "default")),
            token,
            ttl: Duration::from_millis(90),
        })
    }

    async fn claim(store: &MemoryRunStore, clock: &ManualClock, claimant: &str) -> u64 {
        let key = AttemptId::of(&weft_testkit::job("r", "t", "default"));
        match store
            .claim(&key, claimant, clock.now(), 90, None)
            .await
            .unwrap()
        {
            Claim::Held { token, .. } => token,
            other => panic!("{other:?}"),
        }
    }

    /// Two executions of one attempt on one worker (its job delivered
    /// again while the first could not renew): the one whose claim was
    /// taken over stops, the one holding it now does not; a cancel stops
    /// both.
    #[tokio::test]
    async fn a_lost_claim_stops_its_own_execution_and_a_cancel_stops_every_one() {
        let store = Arc::new(MemoryRunStore::new());
        let clock = Arc::new(ManualClock::new(1_000));
        let first = claim(&store, &clock, "w#1").await;
        clock.advance(1_000); // its claim lapsed unrenewed
        let second = claim(&store, &clock, "w#2").await;
        assert_ne!(first, second);

        let (cancel, attempt_abort) = watch::channel(false);
        let (stop_first, mut first_stopped) = watch::channel(false);
        let (stop_second, mut second_stopped) = watch::channel(false);
        let renewals = [
            held(&store, &clock, "w#1", first).spawn_renewal(attempt_abort.clone(), stop_first),
            held(&store, &clock, "w#2", second).spawn_renewal(attempt_abort, stop_second),
        ];
        tokio::time::timeout(Duration::from_secs(5), first_stopped.wait_for(|s| *s))
            .await
            .expect("the execution that lost its claim stops")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !*second_stopped.borrow(),
            "the one holding the claim goes on"
        );

        cancel.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), second_stopped.wait_for(|s| *s))
            .await
            .expect("a cancel stops it too")
            .unwrap();
        renewals.iter().for_each(JoinHandle::abort);
    }
}
