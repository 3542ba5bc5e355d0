//! `AmqpJobQueue`: publishing with confirms, consuming with manual acks.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use weft_core::ports::{Delivery, JobQueue, PriorityBand, Report, ReportDelivery};
use weft_core::run::Job;
use weft_core::Error;

use crate::client::{Channel, Confirm, Confirmation, Consumer};
use crate::delivery::{drop_undecodable, settle, Held, Settle};
use crate::feed::Feed;
use crate::link::{answered, consume, consuming_channel, Link, Session, RPC_TIMEOUT};
use crate::options::band_key;
use crate::Options;

/// Consumers, one per queue read together, on one channel of the session
/// they were opened on.
struct Subscription {
    generation: u64,
    channel: Channel,
    queues: Vec<String>,
    consumers: Vec<Consumer>,
}

type Slot = Arc<Mutex<Option<Subscription>>>;
type FeedSlot = Arc<Mutex<Option<Feed>>>;

/// How often a waiting consumer checks that its connection still stands.
const STALE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The RabbitMQ job queue. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct AmqpJobQueue {
    link: Arc<Link>,
    /// Consumers by the first queue they read (reports, dead letters).
    subscriptions: Arc<std::sync::Mutex<HashMap<String, Slot>>>,
    /// One feed per pool (its consumers, one per priority band).
    feeds: Arc<std::sync::Mutex<HashMap<String, FeedSlot>>>,
}

impl AmqpJobQueue {
    /// Connects (retrying until the broker answers) and declares the topology.
    pub async fn connect(options: Options) -> Result<Self, Error> {
        let link = Arc::new(Link::new(options));
        link.first_session().await?;
        Ok(Self {
            link,
            subscriptions: Default::default(),
            feeds: Default::default(),
        })
    }

    pub fn options(&self) -> &Options {
        &self.link.options
    }

    /// Publishes without waiting for the confirm.
    async fn start_publish(
        &self,
        publisher: &Channel,
        exchange: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Confirm, Error> {
        answered(
            "to basic.publish",
            publisher.publish(exchange, key, body.to_vec()),
        )
        .await
    }

    /// Publishes `(exchange, key, body)` messages with confirms, pipelined;
    /// a refused batch goes again on a new channel, and after a broken
    /// connection starts over on a new one (at-least-once either way).
    async fn publish_confirmed(&self, messages: &[Message]) -> Result<(), Error> {
        let mut refusals: u32 = 0;
        loop {
            let session = self.link.session().await;
            let publisher = session.publisher();
            match self.try_publish(&session, &publisher, messages).await {
                Ok(Answer::Confirmed) => return Ok(()),
                // Refused, on a connection that stands: publish again on a
                // new channel of it (see `Session::renew_publisher`), which
                // keeps what this process holds.
                Ok(Answer::Refused) => {
                    refusals += 1;
                    if refusals == 1 || refusals % 50 == 0 {
                        tracing::warn!(
                            refusals,
                            "rabbitmq refused a message (nack); publishing it again on a new channel"
                        );
                    }
                    if let Err(e) = session.renew_publisher(&publisher).await {
                        tracing::warn!("opening a publishing channel failed ({e}); reconnecting");
                        self.link.drop_session(session.generation).await;
                    }
                    let pause = 100 * u64::from(refusals.min(10));
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Err(e @ Error::Invalid(_)) => return Err(e),
                // Any other failure is the broker's: start over on a fresh
                // connection (a message may then arrive twice, never zero times).
                Err(e) => {
                    tracing::warn!("publishing to rabbitmq failed ({e}); reconnecting");
                    self.link.drop_session(session.generation).await;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn try_publish(
        &self,
        session: &Session,
        publisher: &Channel,
        messages: &[Message],
    ) -> Result<Answer, Error> {
        let mut confirms = Vec::with_capacity(messages.len());
        for (exchange, key, body, pool) in messages {
            if let Some((pool, band)) = pool {
                self.link.ensure_band(session, pool, *band).await?;
            }
            confirms.push(self.start_publish(publisher, exchange, key, body).await?);
        }
        let mut answer = Answer::Confirmed;
        for confirm in confirms {
            match answered("to a publish", confirm.answer()).await? {
                Confirmation::Ack => {}
                Confirmation::Returned(reason) => {
                    return Err(Error::Invalid(format!(
                        "rabbitmq returned a message as unroutable: {reason}"
                    )))
                }
                Confirmation::Nack => answer = Answer::Refused,
            }
        }
        Ok(answer)
    }

    fn feed_slot(&self, pool: &str) -> FeedSlot {
        self.feeds
            .lock()
            .expect("feeds lock")
            .entry(pool.to_string())
            .or_default()
            .clone()
    }

    fn slot(&self, queue: &str) -> Slot {
        self.subscriptions
            .lock()
            .expect("subscriptions lock")
            .entry(queue.to_string())
            .or_default()
            .clone()
    }

    /// The next message of any of `queues`, decoded, with the position of
    /// its queue in `queues`; undecodable messages are dead-lettered.
    async fn next<T: DeserializeOwned>(
        &self,
        queues: &[String],
        prefetch: u16,
    ) -> Result<(Held<T>, usize), Error> {
        let slot = self.slot(&queues[0]);
        let mut guard = slot.lock().await;
        loop {
            let session = self.link.session().await;
            if guard
                .as_ref()
                .is_none_or(|s| s.generation != session.generation || s.queues != queues)
            {
                if let Some(old) = guard.take().filter(|o| o.generation == session.generation) {
                    // Other queues on a live session (a mailbox opened since):
                    // what it holds unacked goes back to its queues. One of
                    // a lost session went with it.
                    let _ = answered("to channel.close", async {
                        old.channel.close().await;
                        Ok(())
                    })
                    .await;
                }
                match self.subscribe(&session, queues, prefetch).await {
                    Ok(sub) => *guard = Some(sub),
                    Err(_) => {
                        self.link.drop_session(session.generation).await;
                        continue;
                    }
                }
            }
            let sub = guard.as_mut().expect("subscribed above");
            let next = loop {
                let nexts = sub.consumers.iter_mut().map(|c| Box::pin(c.next()));
                tokio::select! {
                    // Any consumer that ends (its queue deleted, its
                    // channel closed) starts them all over.
                    (next, at, _) = futures_util::future::select_all(nexts) => {
                        break next.map(|d| (d, at));
                    }
                    // A consumer on a connection that died may wait forever
                    // instead of ending: start over once its channel is down
                    // or a newer session has replaced its own.
                    _ = tokio::time::sleep(STALE_CHECK) => {
                        if !sub.channel.is_open()
                            || self.link.latest_generation() != sub.generation
                        {
                            break None;
                        }
                    }
                }
            };
            match next {
                Some((delivery, at)) => match serde_json::from_slice::<T>(&delivery.data) {
                    Ok(body) => return Ok((Held::new(body, delivery.acker), at)),
                    Err(e) => drop_undecodable(&delivery.acker, &queues[at], e).await,
                },
                // The channel or connection broke: start over on a new one.
                None => {
                    *guard = None;
                    self.link.drop_session(session.generation).await;
                }
            }
        }
    }

    async fn subscribe(
        &self,
        session: &Session,
        queues: &[String],
        prefetch: u16,
    ) -> Result<Subscription, Error> {
        let channel = consuming_channel(session, prefetch).await?;
        let mut consumers = Vec::with_capacity(queues.len());
        for queue in queues {
            consumers.push(consume(&channel, queue.clone()).await?);
        }
        Ok(Subscription {
            generation: session.generation,
            channel,
            queues: queues.to_vec(),
            consumers,
        })
    }
}

/// `(exchange, routing key, body, the pool and band whose queue it goes to)`.
type Message = (String, String, Vec<u8>, Option<(String, PriorityBand)>);

/// What the broker answered a batch of publishes.
enum Answer {
    Confirmed,
    /// At least one message was refused (nacked): all are published again.
    Refused,
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::backend("encoding a message", e))
}

#[async_trait]
impl JobQueue for AmqpJobQueue {
    async fn publish(&self, job: &Job) -> Result<(), Error> {
        self.publish_all(std::slice::from_ref(job)).await
    }

    async fn publish_all(&self, jobs: &[Job]) -> Result<(), Error> {
        let exchange = self.link.options.jobs_exchange();
        let messages = jobs
            .iter()
            .map(|j| {
                Ok((
                    exchange.clone(),
                    band_key(&j.pool, j.band()),
                    encode(j)?,
                    Some((j.pool.clone(), j.band())),
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.publish_confirmed(&messages).await
    }

    async fn wait_for_job(&self, pool: &str) -> Result<(), Error> {
        let slot = self.feed_slot(pool);
        let mut guard = slot.lock().await;
        loop {
            let session = self.link.session().await;
            if guard.as_ref().is_none_or(|f| !f.is_live(&self.link)) {
                // A feed of a lost session: what it held comes back from
                // the broker (and is given back as it goes).
                *guard = None;
                tracing::debug!(
                    pool,
                    generation = session.generation,
                    "consuming a pool's bands"
                );
                match answered(
                    "opening a pool's consumers",
                    Feed::open(&self.link, &session, pool),
                )
                .await
                {
                    Ok(feed) => *guard = Some(feed),
                    Err(e) => {
                        tracing::warn!("consuming pool {pool}: {e}; reconnecting");
                        self.link.drop_session(session.generation).await;
                        continue;
                    }
                }
            }
            let feed = guard.as_mut().expect("opened above");
            feed.drain();
            // A paused band's queue is asked by the take.
            if feed.has_buffered() || feed.any_paused() {
                return Ok(());
            }
            if !feed.broken && feed.wait(&self.link, STALE_CHECK).await {
                return Ok(());
            }
            *guard = None;
            self.link.drop_session(session.generation).await;
        }
    }

    async fn try_take(&self, pool: &str) -> Result<Option<Box<dyn Delivery>>, Error> {
        let slot = self.feed_slot(pool);
        let mut guard = slot.lock().await;
        let Some(feed) = guard.as_mut().filter(|f| f.is_live(&self.link)) else {
            // `wait_for_job` opens it again.
            return Ok(None);
        };
        match feed.take(&self.link).await {
            Ok(held) => Ok(held.map(|held| Box::new(held) as Box<dyn Delivery>)),
            Err(e) => {
                // `wait_for_job` opens it again.
                tracing::debug!("taking from pool {pool}: {e}");
                feed.broken = true;
                Ok(None)
            }
        }
    }

    async fn release(&self, pool: &str) -> Result<(), Error> {
        let slot = self.feed_slot(pool);
        let mut guard = slot.lock().await;
        let Some(feed) = guard.as_mut().filter(|f| f.is_live(&self.link)) else {
            return Ok(());
        };
        let held = match answered("pausing consumers", feed.release()).await {
            Ok(held) => held,
            Err(e) => {
                // Its deliveries go back with the channel.
                tracing::debug!("pausing pool {pool}: {e}");
                feed.broken = true;
                return Ok(());
            }
        };
        drop(guard);
        if !held.is_empty() {
            tracing::debug!(
                "giving back {} job(s) of pool {pool} this worker has no room for",
                held.len()
            );
        }
        let exchange = self.link.options.jobs_exchange();
        for (band, delivery) in held {
            // Published again before the original is acked: a crash between
            // leaves two copies (claims run it once), never none. Unlike a
            // requeue, this counts no delivery against the job's limit.
            let again = (
                exchange.clone(),
                band_key(pool, band),
                delivery.data,
                Some((pool.to_string(), band)),
            );
            let how = match self.publish_confirmed(std::slice::from_ref(&again)).await {
                Ok(()) => Settle::Ack,
                Err(_) => Settle::Return,
            };
            let settled = settle(&delivery.acker, how).await;
            if let Err(e) = settled {
                tracing::debug!("settling a job given back: {e}");
            }
        }
        Ok(())
    }

    async fn report(&self, to: Option<&str>, report: &Report) -> Result<(), Error> {
        let o = &self.link.options;
        let (exchange, key) = match to {
            Some(mailbox) => (o.mailbox_exchange(), mailbox.to_string()),
            None => (String::new(), o.reports_queue()),
        };
        let message = (exchange, key, encode(report)?, None);
        self.publish_confirmed(std::slice::from_ref(&message)).await
    }

    async fn open_mailbox(&self, name: &str) -> Result<Option<String>, Error> {
        if name.is_empty() || name.len() > 200 {
            return Err(Error::Invalid(format!(
                "a server's mailbox is named by its owner name, of 1 to 200 bytes: {name:?}"
            )));
        }
        *self.link.mailbox.lock().expect("mailbox lock") = Some(name.to_string());
        loop {
            let session = self.link.session().await;
            match crate::link::declare_mailbox(&session.publisher(), &self.link.options, name).await
            {
                Ok(()) => return Ok(Some(name.to_string())),
                Err(e @ Error::Invalid(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!("declaring this server's mailbox: {e}; reconnecting");
                    self.link.drop_session(session.generation).await;
                }
            }
        }
    }

    async fn depth(&self, pool: &str) -> Result<Option<u64>, Error> {
        let session = self.link.session().await;
        let mut depth = 0;
        for band in PriorityBand::ALL {
            // A passive declare of a missing queue closes its channel: use
            // a throwaway one per queue. Each request is bounded: a broker
            // that stopped answering must not hold up who asked (a page
            // of the API).
            let channel = answered("to channel.open", session.connection.channel()).await?;
            let queue = self.link.options.band_queue(pool, band);
            let declare = channel.queue_declare(&queue, true, amqprs::FieldTable::new());
            match tokio::time::timeout(RPC_TIMEOUT, declare).await {
                Ok(Ok(messages)) => depth += u64::from(messages),
                Ok(Err(_)) => {} // no such queue: nothing waits in it
                Err(_) => {
                    return Err(Error::Closed(format!(
                        "rabbitmq: no answer to a passive queue.declare of {queue}"
                    )))
                }
            }
            let _ = tokio::time::timeout(RPC_TIMEOUT, channel.close()).await;
        }
        Ok(Some(depth))
    }

    fn delivery_limit(&self) -> Option<u32> {
        Some(self.link.options.delivery_limit)
    }

    async fn next_dead_job(&self) -> Result<Box<dyn Delivery>, Error> {
        let queue = self.link.options.dead_queue();
        let (held, _): (Held<Job>, _) = self.next(&[queue], 16).await?;
        Ok(Box::new(held))
    }

    async fn next_report(&self) -> Result<Box<dyn ReportDelivery>, Error> {
        let o = &self.link.options;
        let mut queues = vec![o.reports_queue()];
        let mailbox = self.link.mailbox.lock().expect("mailbox lock").clone();
        queues.extend(mailbox.map(|name| o.mailbox_queue(&name)));
        let (mut held, at): (Held<Report>, _) = self.next(&queues, 256).await?;
        held.came_by_mailbox = at == 1;
        Ok(Box::new(held))
    }
}
