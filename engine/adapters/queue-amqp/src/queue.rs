//! `AmqpJobQueue`: publishing with confirms, consuming with manual acks.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Consumer, PublisherConfirm};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use weft_core::ports::{Delivery, JobQueue, Report, ReportDelivery};
use weft_core::run::Job;
use weft_core::Error;

use crate::delivery::Held;
use crate::link::{amqp_err, Link, Session};
use crate::Options;

/// A consumer bound to the session it was opened on.
struct Subscription {
    generation: u64,
    channel: Channel,
    consumer: Consumer,
}

type Slot = Arc<Mutex<Option<Subscription>>>;

/// How often a waiting consumer checks that its connection still stands.
const STALE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The RabbitMQ job queue. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct AmqpJobQueue {
    link: Arc<Link>,
    /// One consumer per queue name.
    subscriptions: Arc<std::sync::Mutex<HashMap<String, Slot>>>,
}

impl AmqpJobQueue {
    /// Connects (retrying until the broker answers) and declares the topology.
    pub async fn connect(options: Options) -> Result<Self, Error> {
        let link = Arc::new(Link::new(options));
        link.session().await;
        Ok(Self {
            link,
            subscriptions: Default::default(),
        })
    }

    pub fn options(&self) -> &Options {
        &self.link.options
    }

    fn persistent() -> BasicProperties {
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
    }

    /// Publishes without waiting for the confirm.
    async fn start_publish(
        &self,
        session: &Session,
        exchange: &str,
        key: &str,
        body: &[u8],
    ) -> Result<PublisherConfirm, Error> {
        session
            .publisher
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                Self::persistent(),
            )
            .await
            .map_err(amqp_err("publishing"))
    }

    /// Publishes `(exchange, key, body)` messages with confirms, pipelined;
    /// after a broken connection, starts over on a new one (at-least-once).
    async fn publish_confirmed(
        &self,
        messages: &[(String, String, Vec<u8>, Option<String>)],
    ) -> Result<(), Error> {
        loop {
            let session = self.link.session().await;
            match self.try_publish(&session, messages).await {
                Ok(()) => return Ok(()),
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
        messages: &[(String, String, Vec<u8>, Option<String>)],
    ) -> Result<(), Error> {
        let mut confirms = Vec::with_capacity(messages.len());
        for (exchange, key, body, pool) in messages {
            if let Some(pool) = pool {
                self.link.ensure_pool(session, pool).await?;
            }
            confirms.push(self.start_publish(session, exchange, key, body).await?);
        }
        for confirm in confirms {
            match confirm.await.map_err(amqp_err("awaiting a confirm"))? {
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(Error::Invalid(format!(
                        "rabbitmq returned a message as unroutable: {}",
                        returned.reply_text
                    )))
                }
                Confirmation::Nack(_) => {
                    return Err(Error::Closed("rabbitmq refused a message (nack)".into()))
                }
            }
        }
        Ok(())
    }

    fn slot(&self, queue: &str) -> Slot {
        self.subscriptions
            .lock()
            .expect("subscriptions lock")
            .entry(queue.to_string())
            .or_default()
            .clone()
    }

    /// The next message of `queue`, decoded; undecodable messages are dead-lettered.
    async fn next<T: DeserializeOwned>(
        &self,
        queue: &str,
        prefetch: u16,
        pool: Option<&str>,
    ) -> Result<Held<T>, Error> {
        let slot = self.slot(queue);
        let mut guard = slot.lock().await;
        loop {
            let session = self.link.session().await;
            if guard
                .as_ref()
                .is_none_or(|s| s.generation != session.generation)
            {
                match self.subscribe(&session, queue, prefetch, pool).await {
                    Ok(sub) => *guard = Some(sub),
                    Err(_) => {
                        self.link.drop_session(session.generation).await;
                        continue;
                    }
                }
            }
            let sub = guard.as_mut().expect("subscribed above");
            let next = loop {
                tokio::select! {
                    next = sub.consumer.next() => break next,
                    // A consumer on a connection that died may wait forever
                    // instead of ending: start over once its channel is down
                    // or a newer session has replaced its own.
                    _ = tokio::time::sleep(STALE_CHECK) => {
                        if !sub.channel.status().connected()
                            || self.link.latest_generation() != sub.generation
                        {
                            break None;
                        }
                    }
                }
            };
            match next {
                Some(Ok(delivery)) => match serde_json::from_slice::<T>(&delivery.data) {
                    Ok(body) => {
                        return Ok(Held {
                            body,
                            acker: Some(delivery.acker),
                        })
                    }
                    Err(e) => {
                        tracing::warn!("dropping an undecodable message from {queue}: {e}");
                        let _ = delivery
                            .acker
                            .nack(BasicNackOptions {
                                requeue: false,
                                multiple: false,
                            })
                            .await;
                    }
                },
                // The channel or connection broke: start over on a new one.
                Some(Err(_)) | None => {
                    *guard = None;
                    self.link.drop_session(session.generation).await;
                }
            }
        }
    }

    async fn subscribe(
        &self,
        session: &Session,
        queue: &str,
        prefetch: u16,
        pool: Option<&str>,
    ) -> Result<Subscription, Error> {
        if let Some(pool) = pool {
            self.link.ensure_pool(session, pool).await?;
        }
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(amqp_err("opening a channel"))?;
        channel
            .basic_qos(prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(amqp_err("setting prefetch"))?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err("consuming"))?;
        Ok(Subscription {
            generation: session.generation,
            channel,
            consumer,
        })
    }
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
                    j.pool.clone(),
                    encode(j)?,
                    Some(j.pool.clone()),
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.publish_confirmed(&messages).await
    }

    async fn take(&self, pool: &str) -> Result<Box<dyn Delivery>, Error> {
        let queue = self.link.options.pool_queue(pool);
        let held: Held<Job> = self
            .next(&queue, self.link.options.prefetch, Some(pool))
            .await?;
        Ok(Box::new(held))
    }

    async fn report(&self, report: &Report) -> Result<(), Error> {
        let message = (
            String::new(),
            self.link.options.reports_queue(),
            encode(report)?,
            None,
        );
        self.publish_confirmed(std::slice::from_ref(&message)).await
    }

    async fn depth(&self, pool: &str) -> Result<Option<u64>, Error> {
        // A passive declare of a missing queue closes its channel: use a throwaway one.
        let session = self.link.session().await;
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(amqp_err("opening a channel"))?;
        let options = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let depth = match channel
            .queue_declare(
                self.link.options.pool_queue(pool).into(),
                options,
                FieldTable::default(),
            )
            .await
        {
            Ok(queue) => Some(u64::from(queue.message_count())),
            Err(_) => Some(0),
        };
        let _ = channel.close(200, "".into()).await;
        Ok(depth)
    }

    async fn next_dead_job(&self) -> Result<Box<dyn Delivery>, Error> {
        let queue = self.link.options.dead_queue();
        let held: Held<Job> = self.next(&queue, 16, None).await?;
        Ok(Box::new(held))
    }

    async fn next_report(&self) -> Result<Box<dyn ReportDelivery>, Error> {
        let queue = self.link.options.reports_queue();
        let held: Held<Report> = self.next(&queue, 256, None).await?;
        Ok(Box::new(held))
    }
}
