//! A taker's wait for a free slot: while it waits, it tells its queue it
//! has no room (`JobQueue::release`), so jobs wait at the broker for a
//! worker that can start them, not on one that cannot.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use weft_core::ports::JobQueue;

use crate::Error;

/// How long a taker waits for a slot before it gives back what its queue
/// holds for it (`JobQueue::release`): short, so that a job sent to a busy
/// worker soon goes to one that can start it; long enough that a worker
/// busy with short steps never gives anything back.
const HOLD: Duration = Duration::from_millis(250);

/// A free slot, once there is one (none once the worker stops); each
/// [`HOLD`] spent waiting, the queue is told this taker has no room for
/// jobs of `pool`.
pub(crate) async fn room(
    queue: &dyn JobQueue,
    slots: &Arc<Semaphore>,
    pool: &str,
) -> Result<Option<OwnedSemaphorePermit>, Error> {
    let acquire = slots.clone().acquire_owned();
    tokio::pin!(acquire);
    loop {
        tokio::select! {
            permit = &mut acquire => return Ok(permit.ok()),
            _ = tokio::time::sleep(HOLD) => queue.release(pool).await?,
        }
    }
}
