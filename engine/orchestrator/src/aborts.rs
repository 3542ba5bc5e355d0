//! Stopping attempts on remote workers: through the attempt's claim, which
//! the worker holding it renews and so learns of the abort; a worker that
//! claims it later finds it aborted and never starts it. The write is tried
//! again while the store fails, or a cancelled step could run on.
//!
//! The claim also says which executions of the attempt began. An execution
//! reports its start only once it has run a while (or with its end), so one
//! whose worker died early is known only to the claim: each is sent on as a
//! `Started` report, and the run's driver (or, once the run has ended, the
//! late-report path) records those it does not show yet.

use std::sync::Arc;
use std::time::Duration;

use weft_core::ports::{AttemptClaims, AttemptId, Clock, JobQueue, Report, ReportKind};

use crate::AbortFn;

/// How long an abort is tried before it is given up (the run has ended by
/// then; a worker that finishes the step anyway has its report recorded as
/// late, and nothing else changes).
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// An [`AbortFn`] that aborts attempts through their claims in `store`,
/// and reports the executions the claims say began through `queue`.
pub fn abort_through_claims(
    store: Arc<dyn AttemptClaims>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
) -> AbortFn {
    Arc::new(move |run: &str, task, attempt| {
        let (store, queue, clock) = (store.clone(), queue.clone(), clock.clone());
        let key = AttemptId {
            run_id: run.to_string(),
            task: task.clone(),
            attempt,
        };
        tokio::spawn(async move {
            let label = format!("{}/{}#{}", key.run_id, key.task, key.attempt);
            let started = tokio::time::Instant::now();
            let mut delay = Duration::from_millis(100);
            let executions = loop {
                match store.abort_claim(&key).await {
                    Ok(executions) => break executions,
                    Err(e) if started.elapsed() > GIVE_UP_AFTER => {
                        tracing::warn!(attempt = %label, "aborting: {e}; giving up");
                        return;
                    }
                    Err(e) => tracing::warn!(attempt = %label, "aborting: {e}; trying again"),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
            };
            for execution in executions {
                let report = Report {
                    run_id: key.run_id.clone(),
                    task: key.task.clone(),
                    attempt: key.attempt,
                    worker: execution.worker,
                    at: clock.now(),
                    execution: execution.token,
                    earlier: Vec::new(),
                    kind: ReportKind::Started,
                };
                let mut delay = Duration::from_millis(100);
                while let Err(e) = queue.report(None, &report).await {
                    if started.elapsed() > GIVE_UP_AFTER {
                        tracing::warn!(attempt = %label, "reporting execution {}: {e}; giving up", report.execution);
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(3));
                }
            }
        });
    })
}
