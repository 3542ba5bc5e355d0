//! A taker's wait for a free slot (or a free GPU): while it waits, it
//! tells its queue it has no room (`JobQueue::release`), so jobs wait at
//! the broker for a worker that can start them, not on one that cannot.
//! And how many jobs a worker is sent ahead of its slots, and how a job
//! taken ahead of one waits for it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use weft_core::ports::JobQueue;

use crate::gpus::Gpus;
use crate::Error;

/// How many unacked jobs a worker with `concurrency` slots is sent per
/// priority band: twice its slots, so that when a step ends the next job
/// is already here instead of a broker round trip away (the ack of one
/// job is what lets the broker send the next). What it holds and cannot
/// start soon goes back ([`room`]). Also the most attempts a worker has in
/// flight, running or reporting their ends: each holds its job unacked.
pub fn prefetch(concurrency: usize) -> u16 {
    concurrency
        .max(1)
        .saturating_mul(2)
        .min(usize::from(u16::MAX)) as u16
}

/// How many attempts a worker with `concurrency` slots has in flight at
/// most, and how many of those may wait, claimed and prepared, for a slot
/// (`Options::prepare_ahead`). An attempt frees its slot when its step
/// ends, and records and reports its end after (`Worker::execute`): as
/// many in flight as jobs the worker is sent, so a slow store holds up
/// takes, not memory. A worker that prepares ahead has as many again for
/// the jobs that wait for a slot. With fewer waiting, a slot freed while
/// the claim of the job for it still waited on the store's fsync (a claim
/// records its execution durably before the step starts); with more,
/// their claims share fsyncs (`docs/performance.md`, "How many wait").
pub(crate) fn in_flight(concurrency: usize, prepare_ahead: bool) -> (usize, usize) {
    let sent = usize::from(prefetch(concurrency));
    match prepare_ahead {
        true => (sent * 2, sent),
        false => (sent, 0),
    }
}

/// How long a taker waits for a slot before it gives back what its queue
/// holds for it (`JobQueue::release`): short, so that a job sent to a busy
/// worker soon goes to one that can start it; long enough that a worker
/// busy with short steps never gives anything back.
const HOLD: Duration = Duration::from_millis(250);

/// Waits for `room`; each [`HOLD`] spent waiting, the queue is told this
/// taker has no room for jobs of `pool`.
async fn releasing<T>(
    queue: &dyn JobQueue,
    pool: &str,
    room: impl std::future::Future<Output = T>,
) -> Result<T, Error> {
    tokio::pin!(room);
    loop {
        tokio::select! {
            got = &mut room => return Ok(got),
            _ = tokio::time::sleep(HOLD) => queue.release(pool).await?,
        }
    }
}

/// A free slot, once there is one (none once the worker stops), releasing
/// `pool` while it waits.
pub(crate) async fn room(
    queue: &dyn JobQueue,
    slots: &Arc<Semaphore>,
    pool: &str,
) -> Result<Option<OwnedSemaphorePermit>, Error> {
    let permit = releasing(queue, pool, slots.clone().acquire_owned()).await?;
    Ok(permit.ok())
}

/// Waits until one of the worker's GPUs is free, releasing `pool` (its GPU
/// pool) while it waits, so another worker's free GPU runs its jobs.
pub(crate) async fn gpu_room(queue: &dyn JobQueue, gpus: &Gpus, pool: &str) -> Result<(), Error> {
    releasing(queue, pool, gpus.any_free()).await
}

/// The slot an attempt's step runs in: taken before its job, or, for a job
/// claimed and prepared ahead (`Options::prepare_ahead`), once one frees.
pub(crate) enum Slot {
    Held(OwnedSemaphorePermit),
    /// The worker's slots, whether the worker is stopping, and the job's
    /// place among those waiting for a slot.
    Later(Arc<Semaphore>, watch::Receiver<bool>, OwnedSemaphorePermit),
}

/// What became of an attempt's wait for its slot.
pub(crate) enum Free {
    /// Its slot, and its abort signal.
    Slot(OwnedSemaphorePermit, watch::Receiver<bool>),
    Aborted,
    /// The worker stops: a job taken ahead of its slot does not start.
    Stopping,
}

impl Slot {
    /// The slot, once free, with the attempt's abort signal.
    pub(crate) async fn when_free(self, mut abort: watch::Receiver<bool>) -> Free {
        // The place among the waiting is held (named, not `_`) until this
        // returns: with the slot, or never to start.
        let (slots, mut stopping, _waiting) = match self {
            Self::Held(slot) => return Free::Slot(slot, abort),
            Self::Later(slots, stopping, waiting) => (slots, stopping, waiting),
        };
        let slot = tokio::select! {
            // The worker's slots are never closed; a stopping worker's
            // slots go to the steps it started.
            biased;
            Ok(_) = stopping.wait_for(|s| *s) => return Free::Stopping,
            Ok(_) = abort.wait_for(|a| *a) => return Free::Aborted,
            Ok(slot) = slots.acquire_owned() => slot,
            else => return Free::Aborted,
        };
        Free::Slot(slot, abort)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_prepares_ahead_has_twice_its_slots_waiting_in_four_times_in_flight() {
        assert_eq!(in_flight(2, true), (8, 4));
        assert_eq!(in_flight(2, false), (4, 0));
        assert_eq!(in_flight(0, true), (4, 2));
    }

    #[test]
    fn a_worker_is_sent_twice_its_slots() {
        assert_eq!(prefetch(0), 2);
        assert_eq!(prefetch(2), 4);
        assert_eq!(prefetch(usize::MAX), u16::MAX);
    }
}
