//! Riding out a slow or restarting Redis: idempotent calls are tried again
//! on a timeout or a lost connection, with backoff, until a deadline, so one
//! slow command does not fail a request or a step.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use weft_core::Error;

use crate::store::redis_err;

/// Whether trying the same command again may succeed.
pub(crate) fn transient(e: &redis::RedisError) -> bool {
    e.is_timeout()
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading | redis::ServerErrorKind::TryAgain
            )
        )
}

/// Runs `call` until it succeeds, fails for good, or `retry_for` has passed.
pub(crate) async fn retrying<T, F, Fut>(
    retry_for: Duration,
    context: &'static str,
    mut call: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, redis::RedisError>>,
{
    let deadline = Instant::now() + retry_for;
    let mut delay = Duration::from_millis(50);
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if transient(&e) && Instant::now() + delay < deadline => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(redis_err(context)(e)),
        }
    }
}
