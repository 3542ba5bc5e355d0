//! An attempt's claim while this worker runs it: renewed with the
//! execution's token until its end is recorded, and finished with the
//! report of how it ended, durably, before the job is acknowledged, so a
//! copy of the job delivered again finds it done and re-sends the report
//! instead of running the step again.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use weft_core::ports::{AttemptClaims, AttemptId, Claim, Clock, Report};

use crate::Aborts;

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
    /// aborted; if it is aborted or lost to another execution, stops the
    /// attempt. A renewal the store fails is tried again at the next tick:
    /// the claim is only lost if another execution takes it.
    pub(crate) fn spawn_renewal(self: &Arc<Self>, aborts: Aborts) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(this.ttl / 3).await;
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
                        aborts.abort(&this.key.run_id, &this.key.task, this.key.attempt);
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
