//! Held messages: jobs and reports that are acked (or returned) by their holder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::Acker;
use weft_core::ports::{Delivery, Report, ReportDelivery};
use weft_core::run::Job;
use weft_core::Error;

use crate::link::{amqp_err, answered};

/// Drops a message that does not decode: dead-lettered, never handed out
/// (it would fail the same way every time).
pub(crate) async fn drop_undecodable(acker: &Acker, queue: &str, error: impl std::fmt::Display) {
    tracing::warn!("dropping an undecodable message from {queue}: {error}");
    let _ = acker
        .nack(BasicNackOptions {
            requeue: false,
            multiple: false,
        })
        .await;
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

    async fn settle(&mut self, ack: bool, requeue: bool) -> Result<(), Error> {
        let Some(acker) = self.take_acker() else {
            return Ok(());
        };
        // Bounded like every other call to the broker: an ack on the
        // channel of a connection that died must not hold its attempt (and
        // the attempt's place among those in flight) for ever. Unsettled,
        // the message goes back to its queue with the channel.
        if ack {
            answered("to an ack", async {
                acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(amqp_err("acking"))
            })
            .await
            .map(drop)
        } else {
            answered("to a nack", async {
                acker
                    .nack(BasicNackOptions {
                        requeue,
                        multiple: false,
                    })
                    .await
                    .map_err(amqp_err("returning"))
            })
            .await
            .map(drop)
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
                let _ = acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        multiple: false,
                    })
                    .await;
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
        self.settle(true, false).await
    }

    async fn reject(mut self: Box<Self>, requeue: bool) -> Result<(), Error> {
        self.settle(false, requeue).await
    }
}

#[async_trait]
impl ReportDelivery for Held<Report> {
    fn report(&self) -> &Report {
        &self.body
    }

    async fn ack(mut self: Box<Self>) -> Result<(), Error> {
        self.settle(true, false).await
    }

    fn came_by_mailbox(&self) -> bool {
        self.came_by_mailbox
    }
}
