//! Held messages: jobs and reports that are acked (or returned) by their holder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use weft_core::ports::{Delivery, Report, ReportDelivery};
use weft_core::run::Job;
use weft_core::Error;

use crate::client::Acker;
use crate::link::answered;

/// What becomes of a message its holder settles.
#[derive(Clone, Copy)]
pub(crate) enum Settle {
    /// Done with: the broker forgets it.
    Ack,
    /// Back to its queue (counted against its delivery limit).
    Return,
    /// Dead-lettered.
    Reject,
}

/// Settles the message `acker` holds. Bounded like every other call to
/// the broker: on the channel of a connection that died, the client may
/// never answer, and the caller (an attempt holding its place among those
/// in flight, a taker giving jobs back) must not wait for ever. A message
/// left unsettled goes back to its queue with its channel.
pub(crate) async fn settle(acker: &Acker, how: Settle) -> Result<(), Error> {
    answered("to an ack or a nack", async {
        match how {
            Settle::Ack => acker.ack().await,
            Settle::Return => acker.nack(true).await,
            Settle::Reject => acker.nack(false).await,
        }
    })
    .await
}

/// Drops a message that does not decode: dead-lettered, never handed out
/// (it would fail the same way every time).
pub(crate) async fn drop_undecodable(acker: &Acker, queue: &str, error: impl std::fmt::Display) {
    tracing::warn!("dropping an undecodable message from {queue}: {error}");
    let _ = settle(acker, Settle::Reject).await;
}

/// An unacked message; returned to its queue if dropped unsettled.
pub(crate) struct Held<T> {
    pub body: T,
    pub acker: Option<Acker>,
    /// The count of its consumer's unsettled deliveries, which this one
    /// leaves when settled (see `feed`); none for the others.
    pub unsettled: Option<Arc<AtomicUsize>>,
    /// Taken from this server's mailbox (see `JobQueue::open_mailbox`).
    pub came_by_mailbox: bool,
}

impl<T> Held<T> {
    pub fn new(body: T, acker: Acker) -> Self {
        Self {
            body,
            acker: Some(acker),
            unsettled: None,
            came_by_mailbox: false,
        }
    }

    /// The acker, once: settling leaves its consumer's count.
    fn take_acker(&mut self) -> Option<Acker> {
        let acker = self.acker.take()?;
        if let Some(count) = self.unsettled.take() {
            count.fetch_sub(1, Ordering::SeqCst);
        }
        Some(acker)
    }

    async fn settle(&mut self, how: Settle) -> Result<(), Error> {
        match self.take_acker() {
            Some(acker) => settle(&acker, how).await,
            None => Ok(()),
        }
    }
}

impl<T> Drop for Held<T> {
    fn drop(&mut self) {
        if let (Some(acker), Ok(handle)) =
            (self.take_acker(), tokio::runtime::Handle::try_current())
        {
            handle.spawn(async move {
                // If the channel is gone the broker requeues it anyway.
                let _ = settle(&acker, Settle::Return).await;
            });
        }
    }
}

#[async_trait]
impl Delivery for Held<Job> {
    fn job(&self) -> &Job {
        &self.body
    }

    async fn ack(mut self: Box<Self>) -> Result<(), Error> {
        self.settle(Settle::Ack).await
    }

    async fn reject(mut self: Box<Self>, requeue: bool) -> Result<(), Error> {
        let how = if requeue {
            Settle::Return
        } else {
            Settle::Reject
        };
        self.settle(how).await
    }
}

#[async_trait]
impl ReportDelivery for Held<Report> {
    fn report(&self) -> &Report {
        &self.body
    }

    async fn ack(mut self: Box<Self>) -> Result<(), Error> {
        self.settle(Settle::Ack).await
    }

    fn came_by_mailbox(&self) -> bool {
        self.came_by_mailbox
    }
}
