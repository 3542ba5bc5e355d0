//! Stopping attempts on remote workers: through the attempt's claim, which
//! the worker holding it renews and so learns of the abort; a worker that
//! claims it later finds it aborted and never starts it. The write is tried
//! again while the store fails, or a cancelled step could run on.
//!
//! The executions the claim remembers are not told from here: a server
//! that dies after the abort would take them with it. Whichever worker gets
//! the job's copy back next tells of them (`Worker::settle`), and the copy
//! stays in the queue until one has.

use std::sync::Arc;
use std::time::Duration;

use weft_core::ports::{AttemptClaims, AttemptId};

use crate::AbortFn;

/// How long an abort is tried before it is given up (the run has ended by
/// then; a worker that finishes the step anyway has its report recorded as
/// late, and nothing else changes).
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// An [`AbortFn`] that aborts attempts through their claims in `store`.
pub fn abort_through_claims(store: Arc<dyn AttemptClaims>) -> AbortFn {
    Arc::new(move |run: &str, task, attempt| {
        let store = store.clone();
        let key = AttemptId {
            run_id: run.to_string(),
            task: task.clone(),
            attempt,
        };
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut delay = Duration::from_millis(100);
            while let Err(e) = store.abort_claim(&key).await.map(drop) {
                if started.elapsed() > GIVE_UP_AFTER {
                    tracing::warn!(attempt = %key, "aborting: {e}; giving up");
                    return;
                }
                tracing::warn!(attempt = %key, "aborting: {e}; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
            }
        });
    })
}
