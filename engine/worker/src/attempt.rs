//! What every executor gets for one attempt: the job, where and how to run
//! it, where its log goes, how it is stopped, and the GPUs it holds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weft_core::run::Job;

use crate::steplog::StepLog;
use crate::Options;

/// One attempt, as handed to the shell, container and CUDA executors.
pub(crate) struct Attempt<'a> {
    /// The job, after the pre-process hooks.
    pub(crate) job: &'a Job,
    pub(crate) options: &'a Options,
    /// The attempt's step log (capped, filtered by its post hooks).
    pub(crate) log: Arc<StepLog>,
    /// Turns `true` when the attempt must stop (cancel, lost claim).
    pub(crate) abort: watch::Receiver<bool>,
    /// The GPUs this worker gave the attempt (none for most steps), as
    /// `CUDA_VISIBLE_DEVICES` names them.
    pub(crate) gpus: &'a [String],
}

impl Attempt<'_> {
    /// The attempt's step log.
    pub(crate) fn log(&self) -> Arc<StepLog> {
        self.log.clone()
    }
}

/// How an attempt's work ended.
pub(crate) enum Ended<T> {
    /// On its own, with this result.
    Finished(T),
    /// Stopped at the step's timeout, this long after it began.
    TimedOut(Duration),
    /// Stopped because the attempt was aborted (cancel, lost claim).
    Aborted,
}

/// Runs `work` until it finishes, `timeout` passes, or `abort` turns `true`;
/// the loser is dropped, and the caller stops what dropping does not.
pub(crate) async fn bounded<T>(
    work: impl Future<Output = T>,
    timeout: Option<Duration>,
    abort: &mut watch::Receiver<bool>,
) -> Ended<T> {
    // tokio's timer cannot take Duration::MAX; 136 years will do.
    let limit = timeout.map_or(Duration::from_secs(u32::MAX as u64), |t| {
        t.min(Duration::from_secs(u32::MAX as u64))
    });
    tokio::select! {
        r = work => Ended::Finished(r),
        _ = tokio::time::sleep(limit) => Ended::TimedOut(limit),
        _ = abort.wait_for(|a| *a) => Ended::Aborted,
    }
}
