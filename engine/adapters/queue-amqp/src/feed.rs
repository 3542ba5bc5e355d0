//! A pool's jobs as a taker takes them: one consumer per priority band on
//! one channel, and the deliveries they brought, taken highest band first.
//!
//! RabbitMQ 3.x quorum queues have no message priorities, so each band is a
//! queue of its own (`P.jobs.<pool>`, `.high`, `.low`), and a consumer's
//! credit (its prefetch) is its own: it cannot be shared across the three.
//! Three rules keep the choice right across a pool's workers:
//! - **Best first.** A take looks at the bands in order and takes from the
//!   first that has a job: what its consumer brought, or, where the broker
//!   may hold jobs it has not sent (the consumer is at its prefetch, its
//!   jobs running, unacked), the one the broker is likely sending (a job of
//!   the band just ended) or else the queue's next, asked (`basic.get`).
//! - **Hold nothing without room.** A worker with no free slot still has
//!   credit on the bands it is not running, and the broker would send it
//!   jobs that another worker could start now; and its prefetch is above
//!   its slots (so the next job is there when a slot frees, not one round
//!   trip later), so it may hold a few it cannot start yet. When the worker
//!   has waited a moment for a slot, it *releases* the pool: the consumers
//!   that still have credit or hold jobs not started are cancelled, and
//!   those jobs go back to their queues (published again, then acked, so no
//!   delivery is counted against the job's delivery limit). Cancelled, not
//!   only emptied: with credit again, a consumer would be sent the same
//!   jobs back, to give them back again a moment later.
//! - **Ask while paused.** With room again, a take asks the paused bands'
//!   queues in order, one job at a time, so a busy pool's jobs stay at the
//!   broker in their order; a paused band found empty consumes again.
//!
//! A worker busy with short steps never waits a moment for a slot, so it
//! never releases, and takes from its consumers' deliveries alone.
//! Deliveries a taker holds stay unacked: they go back to their queue if
//! its connection goes, and are never lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use weft_core::ports::PriorityBand;
use weft_core::run::Job;
use weft_core::Error;

use crate::client::{Channel, Consumer, Delivery as AmqpDelivery};
use crate::delivery::{drop_undecodable, settle, Held, Settle};
use crate::link::{answered, consume, consuming_channel, Link, Session};

const BANDS: usize = PriorityBand::ALL.len();

/// How long a take waits for a job the broker is likely sending before it
/// asks the queue instead. The wait ends as soon as the job comes, and is
/// paid in full only when the band's queue has run dry (once: the ask
/// finds it empty), by a lower band's job that waits that much longer. A
/// busy broker can take tens of milliseconds to send: too short a wait
/// lets the ask overtake the job on its way (the band's order breaks) or a
/// lower band's job go first.
const SENDING: std::time::Duration = std::time::Duration::from_millis(250);

/// One pool's consumers on one session.
pub(crate) struct Feed {
    pub generation: u64,
    pool: String,
    channel: Channel,
    /// One per band; none while the band is paused (see [`Feed::release`]).
    consumers: [Option<Consumer>; BANDS],
    /// Delivered, not yet taken, per band in arrival order.
    buffered: [VecDeque<AmqpDelivery>; BANDS],
    /// Deliveries of each band's consumer not yet settled (buffered, or
    /// taken and not yet acked).
    unsettled: [Arc<AtomicUsize>; BANDS],
    /// The band's consumer reached its prefetch since its queue was last
    /// found empty: the broker may hold jobs of it it has not sent.
    maybe_more: [bool; BANDS],
    prefetch: usize,
    /// A consumer's stream ended or failed: the feed must be opened again.
    pub broken: bool,
}

/// The job `delivery` carries; none (and dead-lettered) if it does not decode.
async fn decode(delivery: &AmqpDelivery, queue: &str) -> Option<Job> {
    match serde_json::from_slice::<Job>(&delivery.data) {
        Ok(job) => Some(job),
        Err(e) => {
            drop_undecodable(&delivery.acker, queue, e).await;
            None
        }
    }
}

/// The next delivery of a consumer; never, for a paused band.
async fn next_of(consumer: Option<&mut Consumer>) -> Option<AmqpDelivery> {
    match consumer {
        Some(consumer) => consumer.next().await,
        None => std::future::pending().await,
    }
}

impl Feed {
    /// Declares `pool`'s band queues and consumes from each.
    pub async fn open(link: &Link, session: &Session, pool: &str) -> Result<Self, Error> {
        for band in PriorityBand::ALL {
            link.ensure_band(session, pool, band).await?;
        }
        let prefetch = link.options.prefetch.max(1);
        let channel = consuming_channel(session, prefetch).await?;
        let mut consumers: [Option<Consumer>; BANDS] = Default::default();
        for band in PriorityBand::ALL {
            consumers[band.index()] =
                Some(consume(&channel, link.options.band_queue(pool, band)).await?);
        }
        Ok(Self {
            generation: session.generation,
            pool: pool.to_string(),
            channel,
            consumers,
            buffered: Default::default(),
            unsettled: Default::default(),
            maybe_more: [false; BANDS],
            prefetch: usize::from(prefetch),
            broken: false,
        })
    }

    pub fn is_live(&self, link: &Link) -> bool {
        !self.broken && self.channel.is_open() && link.latest_generation() == self.generation
    }

    pub fn has_buffered(&self) -> bool {
        self.buffered.iter().any(|b| !b.is_empty())
    }

    fn queue(&self, link: &Link, band: usize) -> String {
        link.options.band_queue(&self.pool, PriorityBand::ALL[band])
    }

    fn arrived(&mut self, band: usize, next: Option<AmqpDelivery>) {
        match next {
            Some(delivery) => {
                self.buffered[band].push_back(delivery);
                let unsettled = self.unsettled[band].fetch_add(1, Ordering::SeqCst) + 1;
                if unsettled >= self.prefetch {
                    self.maybe_more[band] = true;
                }
            }
            None => self.broken = true,
        }
    }

    /// Moves what the consumers have received into `buffered`, without waiting.
    pub fn drain(&mut self) {
        for band in 0..BANDS {
            while !self.broken {
                let Some(consumer) = self.consumers[band].as_mut() else {
                    break;
                };
                match consumer.try_next() {
                    Some(next) => self.arrived(band, next),
                    None => break,
                }
            }
        }
    }

    /// Consumes again from `band`, paused by [`release`](Self::release).
    async fn resume(&mut self, link: &Link, band: usize) -> Result<(), Error> {
        let consumer = consume(&self.channel, self.queue(link, band));
        self.consumers[band] = Some(consumer.await?);
        // A fresh consumer has its whole prefetch again; the jobs the old
        // one delivered leave the old count.
        self.unsettled[band] = Arc::default();
        self.maybe_more[band] = false;
        Ok(())
    }

    /// Waits for the next delivery of any band, checking every `stale`
    /// that the feed still stands; false once it does not.
    pub async fn wait(&mut self, link: &Link, stale: std::time::Duration) -> bool {
        loop {
            let [high, normal, low] = &mut self.consumers;
            let arrived = tokio::select! {
                next = next_of(high.as_mut()) => Some((0, next)),
                next = next_of(normal.as_mut()) => Some((1, next)),
                next = next_of(low.as_mut()) => Some((2, next)),
                _ = tokio::time::sleep(stale) => None,
            };
            match arrived {
                Some((band, next)) => {
                    self.arrived(band, next);
                    return !self.broken;
                }
                None if !self.is_live(link) => return false,
                None => {}
            }
        }
    }

    /// Asks `band`'s queue for its next job.
    async fn ask(&mut self, link: &Link, band: usize) -> Option<Held<Job>> {
        let queue = self.queue(link, band);
        match answered("to basic.get", self.channel.get(&queue)).await {
            Ok(Some(delivery)) => {
                let job = decode(&delivery, &queue).await;
                job.map(|job| Held::new(job, delivery.acker))
            }
            Ok(None) => {
                self.maybe_more[band] = false;
                None
            }
            // This take takes what it has; the feed opens anew (its
            // channel, with any answer still on the way, closes).
            Err(e) => {
                tracing::debug!("basic.get on {queue}: {e}");
                self.broken = true;
                None
            }
        }
    }

    /// Whether a band is paused: a take asks its queue before anything else.
    pub fn any_paused(&self) -> bool {
        self.consumers.iter().any(Option::is_none)
    }

    /// The best job there is now: of the highest band that has one, the
    /// earliest. Bands are looked at in order; for each, what its consumer
    /// brought, else (paused, or at its prefetch) its queue, asked. A
    /// paused band found empty consumes again.
    pub async fn take(&mut self, link: &Link) -> Result<Option<Held<Job>>, Error> {
        'again: loop {
            self.drain();
            for band in 0..BANDS {
                if let Some(delivery) = self.buffered[band].pop_front() {
                    let Some(job) = decode(&delivery, &self.queue(link, band)).await else {
                        self.unsettled[band].fetch_sub(1, Ordering::SeqCst);
                        continue 'again;
                    };
                    let mut held = Held::new(job, delivery.acker);
                    held.unsettled = Some(self.unsettled[band].clone());
                    return Ok(Some(held));
                }
                let paused = self.consumers[band].is_none();
                if !paused && !self.maybe_more[band] {
                    // Its consumer has credit and brought nothing: its
                    // queue has nothing for this taker now.
                    continue;
                }
                let unsettled = self.unsettled[band].load(Ordering::SeqCst);
                if !paused && unsettled < self.prefetch {
                    // A job of it ended since it was at its prefetch: the
                    // broker is likely sending the next one now. Taking it
                    // as sent keeps the band's order; asking would
                    // overtake it.
                    let consumer = self.consumers[band].as_mut().expect("not paused");
                    if let Ok(next) = tokio::time::timeout(SENDING, consumer.next()).await {
                        self.arrived(band, next);
                        continue 'again;
                    }
                }
                if let Some(held) = self.ask(link, band).await {
                    return Ok(Some(held));
                }
                if paused {
                    // Found empty: its consumer tells of the next one.
                    self.resume(link, band).await?;
                }
            }
            return Ok(None);
        }
    }

    /// The taker has no room: pauses every consumer that could still be
    /// sent jobs or holds some not started, and hands back what it holds
    /// and has not started, as `(band, delivery)`, for the caller to
    /// publish again and ack.
    pub async fn release(&mut self) -> Result<Vec<(PriorityBand, AmqpDelivery)>, Error> {
        self.drain();
        for band in 0..BANDS {
            let has_credit = self.unsettled[band].load(Ordering::SeqCst) < self.prefetch;
            let holds = !self.buffered[band].is_empty();
            let Some(consumer) = self.consumers[band]
                .as_ref()
                .filter(|_| has_credit || holds)
            else {
                continue;
            };
            self.channel.cancel(consumer.tag()).await?;
            // What it was sent before the cancel was confirmed.
            let mut consumer = self.consumers[band].take().expect("checked above");
            while let Some(Some(delivery)) = consumer.try_next() {
                self.buffered[band].push_back(delivery);
                self.unsettled[band].fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut held = Vec::new();
        for band in 0..BANDS {
            for delivery in self.buffered[band].drain(..) {
                self.unsettled[band].fetch_sub(1, Ordering::SeqCst);
                held.push((PriorityBand::ALL[band], delivery));
            }
        }
        Ok(held)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        // Held but never taken: back to their queues now, rather than when
        // the channel closes (the jobs taken from it, still running, keep
        // it open). Its consumers are cancelled first: after that, all
        // they were sent is in their streams, to go back too.
        let mut ackers: Vec<_> = self
            .buffered
            .iter_mut()
            .flat_map(|b| b.drain(..))
            .map(|d| d.acker)
            .collect();
        let consumers: Vec<Consumer> = self.consumers.iter_mut().filter_map(Option::take).collect();
        if ackers.is_empty() && consumers.is_empty() {
            return;
        }
        let channel = self.channel.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                for mut consumer in consumers {
                    if channel.is_open() {
                        let tag = consumer.tag().to_string();
                        let _ = answered("to basic.cancel", channel.cancel(&tag)).await;
                    }
                    while let Some(Some(delivery)) = consumer.try_next() {
                        ackers.push(delivery.acker);
                    }
                }
                for acker in ackers {
                    let _ = settle(&acker, Settle::Return).await;
                }
            });
        }
    }
}
