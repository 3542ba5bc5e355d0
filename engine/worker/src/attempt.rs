//! How an executor bounds an attempt's work: by the step's timeout and the
//! attempt's abort signal.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

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

pub(crate) use crate::executor::Attempt;
