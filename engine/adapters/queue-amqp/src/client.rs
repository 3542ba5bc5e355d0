//! The AMQP client as this adapter uses it: amqprs's connections,
//! channels and consumers, with what amqprs leaves to its user.
//!
//! amqprs does its I/O on the tokio runtime (a reader and a writer task per
//! connection, a dispatcher task per channel), so a message crosses no
//! thread of the client's own (`docs/performance.md`). What it leaves to
//! its user is done here:
//! - **Confirms.** amqprs hands a channel's acks, nacks and returns to a
//!   callback; [`Channel::publish`] numbers each publish as the broker does
//!   and answers it from them. A return names its message by the
//!   `message-id` set here, and comes before that message's ack.
//! - **One request of a kind at a time.** amqprs matches a synchronous
//!   answer to its request by the answer's method alone, so two requests
//!   of one kind on one channel would take each other's answers: a
//!   channel's requests go one at a time.
//! - **Nothing sent on a closed channel.** RabbitMQ answers a frame on a
//!   channel that is not open by closing the whole connection (and every
//!   job this process holds goes back): once the broker has closed a
//!   channel, its requests and publishes are errors here.
//! - **Why a channel closed.** A request the broker refused (a queue
//!   declared with other arguments) ends with the channel's close, whose
//!   reason the callback keeps for the request's error.
//! - **Names.** A name over 255 bytes is an error here; amqprs would panic.
//! - **URLs** are read in [`address`] (percent-decoded, their `heartbeat` read).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::{
    BasicAckArguments, BasicCancelArguments, BasicConsumeArguments, BasicGetArguments,
    BasicNackArguments, BasicPublishArguments, BasicQosArguments, ConfirmSelectArguments,
    ConsumerMessage, ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::OpenConnectionArguments;
use amqprs::{Ack, BasicProperties, Cancel, Close, CloseChannel, FieldTable, Nack, Return};
use tokio::sync::{mpsc, oneshot};
use weft_core::Error;

use address::Address;

/// The longest name AMQP carries (a short string).
const NAME_MAX: usize = 255;

fn short<'a>(name: &'a str, what: &str) -> Result<&'a str, Error> {
    if name.len() > NAME_MAX {
        return Err(Error::Invalid(format!(
            "rabbitmq: {what} `{}…` is {} bytes; AMQP allows at most {NAME_MAX}",
            name.chars().take(40).collect::<String>(),
            name.len()
        )));
    }
    Ok(name)
}

fn failed(context: &str, e: amqprs::error::Error) -> Error {
    Error::backend(format!("rabbitmq: {context}"), e)
}

/// Logs what the broker says of a connection.
struct ConnectionEvents;

#[async_trait::async_trait]
impl ConnectionCallback for ConnectionEvents {
    async fn close(
        &mut self,
        _connection: &amqprs::connection::Connection,
        close: Close,
    ) -> Result<(), amqprs::error::Error> {
        tracing::warn!(
            "rabbitmq closed the connection: {} {}",
            close.reply_code(),
            close.reply_text()
        );
        Ok(())
    }

    async fn blocked(&mut self, _connection: &amqprs::connection::Connection, reason: String) {
        tracing::warn!("rabbitmq blocked the connection: {reason}");
    }

    async fn unblocked(&mut self, _connection: &amqprs::connection::Connection) {
        tracing::info!("rabbitmq unblocked the connection");
    }

    async fn secret_updated(&mut self, _connection: &amqprs::connection::Connection) {}
}

/// A connection to one broker node; closed when the last clone goes.
#[derive(Clone)]
pub(crate) struct Connection {
    inner: amqprs::connection::Connection,
}

impl Connection {
    /// Opens a connection to `url`, with `heartbeat` unless the URL names one.
    pub async fn open(url: &str, heartbeat: u16) -> Result<Self, Error> {
        let address = Address::parse(url)?;
        let mut args = OpenConnectionArguments::new(
            &address.host,
            address.port,
            &address.user,
            &address.password,
        );
        args.virtual_host(&address.vhost)
            .heartbeat(address.heartbeat.unwrap_or(heartbeat))
            .connection_name("weft");
        let inner = amqprs::connection::Connection::open(&args)
            .await
            .map_err(|e| failed("connecting", e))?;
        inner
            .register_callback(ConnectionEvents)
            .await
            .map_err(|e| failed("connecting", e))?;
        Ok(Self { inner })
    }

    pub fn is_open(&self) -> bool {
        self.inner.is_open()
    }

    /// A new channel.
    pub async fn channel(&self) -> Result<Channel, Error> {
        let inner = self
            .inner
            .open_channel(None)
            .await
            .map_err(|e| failed("opening a channel", e))?;
        let state = Arc::new(ChannelState::default());
        inner
            .register_callback(ChannelEvents(state.clone()))
            .await
            .map_err(|e| failed("opening a channel", e))?;
        Ok(Channel { inner, state })
    }
}

/// What the broker answered a publish.
#[derive(Debug)]
pub(crate) enum Confirmation {
    Ack,
    /// Refused: it was not taken.
    Nack,
    /// Unroutable (mandatory): returned, with the broker's reason.
    Returned(String),
}

#[derive(Default)]
struct Confirms {
    /// The number the broker gives the next publish (from 1, once in
    /// confirm mode).
    next: u64,
    waiting: BTreeMap<u64, oneshot::Sender<Confirmation>>,
    /// Returned, their acks not yet heard: by number, the broker's reason.
    returned: HashMap<u64, String>,
}

#[derive(Default)]
struct ChannelState {
    /// Held across each synchronous request (see the module's doc).
    requests: tokio::sync::Mutex<()>,
    /// Held while a publish is numbered and sent, so numbers go in order.
    publishing: tokio::sync::Mutex<()>,
    confirms: std::sync::Mutex<Confirms>,
    /// Why the broker closed the channel.
    closed: std::sync::Mutex<Option<String>>,
    /// The channel's dispatcher is gone (its connection, or itself).
    gone: AtomicBool,
}

impl ChannelState {
    /// Ends every publish waiting for an answer: a channel that closes
    /// answers none (dropping their senders fails their waits).
    fn end_waits(&self) {
        let mut confirms = self.confirms.lock().expect("confirms lock");
        confirms.waiting.clear();
        confirms.returned.clear();
    }

    fn answer(&self, tag: u64, multiple: bool, nack: bool) {
        let mut confirms = self.confirms.lock().expect("confirms lock");
        let tags: Vec<u64> = if multiple {
            confirms.waiting.range(..=tag).map(|(t, _)| *t).collect()
        } else {
            vec![tag]
        };
        for tag in tags {
            let returned = confirms.returned.remove(&tag);
            if let Some(waiter) = confirms.waiting.remove(&tag) {
                let answer = match (nack, returned) {
                    (true, _) => Confirmation::Nack,
                    (false, Some(reason)) => Confirmation::Returned(reason),
                    (false, None) => Confirmation::Ack,
                };
                let _ = waiter.send(answer);
            }
        }
    }

    /// An error unless the channel can still be used: requests on a
    /// closed channel would cost the connection (see `ChannelEvents::close`).
    fn usable(&self, context: &str) -> Result<(), Error> {
        if let Some(reason) = self.closed.lock().expect("closed lock").clone() {
            return Err(Error::Closed(format!(
                "rabbitmq: {context}: the channel was closed ({reason})"
            )));
        }
        if self.gone.load(Ordering::SeqCst) {
            return Err(Error::Closed(format!(
                "rabbitmq: {context}: the channel's connection is gone"
            )));
        }
        Ok(())
    }

    fn error(&self, context: &str, e: amqprs::error::Error) -> Error {
        match self.closed.lock().expect("closed lock").clone() {
            Some(reason) => Error::Closed(format!("rabbitmq: {context}: {reason}")),
            None => failed(context, e),
        }
    }
}

/// A channel's asynchronous news, from its dispatcher task.
struct ChannelEvents(Arc<ChannelState>);

impl Drop for ChannelEvents {
    fn drop(&mut self) {
        // The dispatcher is gone, whether its channel closed, its
        // connection broke, or it failed: nothing more will be answered.
        self.0.gone.store(true, Ordering::SeqCst);
        self.0.end_waits();
    }
}

#[async_trait::async_trait]
impl ChannelCallback for ChannelEvents {
    async fn close(
        &mut self,
        _channel: &amqprs::channel::Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let reason = format!("{} {}", close.reply_code(), close.reply_text());
        tracing::debug!("rabbitmq closed a channel: {reason}");
        // amqprs answers the close once this returns, and the channel's
        // number is then free: a publish sent after that answer would be
        // on a channel that is not open, which RabbitMQ answers by closing
        // the whole connection. So no publish is being sent while the
        // channel is marked closed, and none is sent after.
        let _no_publish = self.0.publishing.lock().await;
        *self.0.closed.lock().expect("closed lock") = Some(reason);
        self.0.end_waits();
        Ok(())
    }

    async fn cancel(
        &mut self,
        _channel: &amqprs::channel::Channel,
        cancel: Cancel,
    ) -> Result<(), amqprs::error::Error> {
        // amqprs then drops the consumer, whose stream ends.
        tracing::debug!(
            "rabbitmq cancelled consumer {} (its queue deleted?)",
            cancel.consumer_tag()
        );
        Ok(())
    }

    async fn flow(
        &mut self,
        _channel: &amqprs::channel::Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }

    async fn publish_ack(&mut self, _channel: &amqprs::channel::Channel, ack: Ack) {
        self.0.answer(ack.delivery_tag(), ack.mutiple(), false);
    }

    async fn publish_nack(&mut self, _channel: &amqprs::channel::Channel, nack: Nack) {
        self.0.answer(nack.delivery_tag(), nack.multiple(), true);
    }

    async fn publish_return(
        &mut self,
        _channel: &amqprs::channel::Channel,
        ret: Return,
        properties: BasicProperties,
        _content: Vec<u8>,
    ) {
        let tag = properties
            .message_id()
            .and_then(|id| id.parse::<u64>().ok());
        if let Some(tag) = tag {
            let reason = format!("{} {}", ret.reply_code(), ret.reply_text());
            let mut confirms = self.0.confirms.lock().expect("confirms lock");
            confirms.returned.insert(tag, reason);
        }
    }
}

/// A channel; closed when the last clone (and every [`Acker`] of it) goes.
#[derive(Clone)]
pub(crate) struct Channel {
    inner: amqprs::channel::Channel,
    state: Arc<ChannelState>,
}

/// A publish's answer, to wait for.
pub(crate) struct Confirm(oneshot::Receiver<Confirmation>);

impl Confirm {
    pub async fn answer(self) -> Result<Confirmation, Error> {
        self.0
            .await
            .map_err(|_| Error::Closed("rabbitmq: the channel closed before confirming".into()))
    }
}

impl Channel {
    /// Sends a synchronous request and waits for its answer, alone on the
    /// channel (see the module's doc), and only on a channel still open.
    async fn request<T>(
        &self,
        context: &str,
        request: impl std::future::Future<Output = Result<T, amqprs::error::Error>>,
    ) -> Result<T, Error> {
        let _alone = self.state.requests.lock().await;
        self.state.usable(context)?;
        request.await.map_err(|e| self.state.error(context, e))
    }

    pub fn id(&self) -> u16 {
        self.inner.channel_id()
    }

    /// Open, on an open connection, its dispatcher alive.
    pub fn is_open(&self) -> bool {
        self.inner.is_open()
            && self.inner.is_connection_open()
            && !self.state.gone.load(Ordering::SeqCst)
    }

    /// Puts the channel in confirm mode: each publish is then answered.
    pub async fn confirm_select(&self) -> Result<(), Error> {
        self.request(
            "enabling confirms",
            self.inner.confirm_select(ConfirmSelectArguments::default()),
        )
        .await?;
        self.state.confirms.lock().expect("confirms lock").next = 1;
        Ok(())
    }

    /// Each consumer on this channel is sent at most `prefetch` unacked messages.
    pub async fn qos(&self, prefetch: u16) -> Result<(), Error> {
        self.request(
            "setting prefetch",
            self.inner
                .basic_qos(BasicQosArguments::new(0, prefetch, false)),
        )
        .await
    }

    pub async fn exchange_declare(
        &self,
        name: &str,
        kind: &str,
        durable: bool,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Result<(), Error> {
        let mut args = ExchangeDeclareArguments::new(short(name, "exchange")?, kind);
        args.durable = durable;
        args.auto_delete = auto_delete;
        args.arguments = arguments;
        self.request(
            &format!("declaring exchange {name}"),
            self.inner.exchange_declare(args),
        )
        .await
    }

    /// Declares a durable queue (or, `passive`, looks it up); its messages.
    pub async fn queue_declare(
        &self,
        name: &str,
        passive: bool,
        arguments: FieldTable,
    ) -> Result<u32, Error> {
        let args = QueueDeclareArguments::new(short(name, "queue")?)
            .durable(true)
            .passive(passive)
            .arguments(arguments)
            .finish();
        let declared = self
            .request(
                &format!("declaring queue {name}"),
                self.inner.queue_declare(args),
            )
            .await?;
        Ok(declared.map_or(0, |(_, messages, _)| messages))
    }

    pub async fn queue_bind(&self, queue: &str, exchange: &str, key: &str) -> Result<(), Error> {
        let args = QueueBindArguments::new(
            short(queue, "queue")?,
            short(exchange, "exchange")?,
            short(key, "routing key")?,
        );
        self.request(
            &format!("binding queue {queue}"),
            self.inner.queue_bind(args),
        )
        .await
    }

    /// A consumer of `queue`, with manual acks.
    pub async fn consume(&self, queue: &str) -> Result<Consumer, Error> {
        let args = BasicConsumeArguments::new(short(queue, "queue")?, "")
            .manual_ack(true)
            .finish();
        let (tag, rx) = self
            .request(
                &format!("consuming {queue}"),
                self.inner.basic_consume_rx(args),
            )
            .await?;
        Ok(Consumer {
            tag,
            rx,
            channel: self.inner.clone(),
        })
    }

    /// Stops consumer `tag`: once this returns, what it was sent is in its stream.
    pub async fn cancel(&self, tag: &str) -> Result<(), Error> {
        self.request(
            "cancelling a consumer",
            self.inner.basic_cancel(BasicCancelArguments::new(tag)),
        )
        .await
        .map(drop)
    }

    /// The next message of `queue`, if it has one (manual ack).
    pub async fn get(&self, queue: &str) -> Result<Option<Delivery>, Error> {
        // Acked by hand (`no_ack` false, the default).
        let args = BasicGetArguments::new(short(queue, "queue")?);
        let got = self
            .request(&format!("basic.get on {queue}"), self.inner.basic_get(args))
            .await?;
        Ok(got.map(|(get_ok, _, data)| Delivery {
            data,
            acker: Acker {
                channel: self.inner.clone(),
                tag: get_ok.delivery_tag(),
            },
        }))
    }

    /// Publishes a persistent JSON message, mandatory (an unroutable one
    /// comes back); its answer is waited for apart, so publishes pipeline.
    /// The channel must be in confirm mode.
    pub async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<Confirm, Error> {
        let mut args =
            BasicPublishArguments::new(short(exchange, "exchange")?, short(key, "routing key")?);
        args.mandatory = true;
        let _in_order = self.state.publishing.lock().await;
        self.state.usable("publishing")?;
        let (tag, answer) = {
            let mut confirms = self.state.confirms.lock().expect("confirms lock");
            if confirms.next == 0 {
                return Err(Error::Invalid(
                    "rabbitmq: publishing on a channel not in confirm mode".into(),
                ));
            }
            let tag = confirms.next;
            confirms.next += 1;
            let (tx, rx) = oneshot::channel();
            confirms.waiting.insert(tag, tx);
            (tag, rx)
        };
        let mut properties = BasicProperties::default();
        properties
            .with_delivery_mode(amqprs::DELIVERY_MODE_PERSISTENT)
            .with_content_type("application/json")
            .with_message_id(&tag.to_string());
        if let Err(e) = self.inner.basic_publish(properties, body, args).await {
            self.state
                .confirms
                .lock()
                .expect("confirms lock")
                .waiting
                .remove(&tag);
            return Err(self.state.error("publishing", e));
        }
        Ok(Confirm(answer))
    }

    /// Closes the channel: what its consumers hold unacked goes back.
    pub async fn close(&self) {
        let _ = self.inner.clone().close().await;
    }
}

/// A message taken from a queue, to settle with its acker.
pub(crate) struct Delivery {
    pub data: Vec<u8>,
    pub acker: Acker,
}

/// Settles one delivery; keeps its channel open until then.
#[derive(Clone)]
pub(crate) struct Acker {
    channel: amqprs::channel::Channel,
    tag: u64,
}

impl Acker {
    pub async fn ack(&self) -> Result<(), Error> {
        self.channel
            .basic_ack(BasicAckArguments::new(self.tag, false))
            .await
            .map_err(|e| failed("acking", e))
    }

    pub async fn nack(&self, requeue: bool) -> Result<(), Error> {
        self.channel
            .basic_nack(BasicNackArguments::new(self.tag, false, requeue))
            .await
            .map_err(|e| failed(if requeue { "returning" } else { "rejecting" }, e))
    }
}

/// A consumer's deliveries. Its stream ends when its channel closes or
/// the broker cancels it.
pub(crate) struct Consumer {
    tag: String,
    rx: mpsc::UnboundedReceiver<ConsumerMessage>,
    channel: amqprs::channel::Channel,
}

impl Consumer {
    pub fn tag(&self) -> &str {
        &self.tag
    }

    fn delivery(&self, message: ConsumerMessage) -> Option<Delivery> {
        let (Some(deliver), Some(data)) = (message.deliver, message.content) else {
            return None;
        };
        Some(Delivery {
            data,
            acker: Acker {
                channel: self.channel.clone(),
                tag: deliver.delivery_tag(),
            },
        })
    }

    /// The next delivery; none once the stream has ended.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            let message = self.rx.recv().await?;
            if let Some(delivery) = self.delivery(message) {
                return Some(delivery);
            }
        }
    }

    /// What has arrived, without waiting: `None` if nothing has, `Some(None)`
    /// if the stream has ended.
    pub fn try_next(&mut self) -> Option<Option<Delivery>> {
        loop {
            match self.rx.try_recv() {
                Ok(message) => {
                    if let Some(delivery) = self.delivery(message) {
                        return Some(Some(delivery));
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => return None,
                Err(mpsc::error::TryRecvError::Disconnected) => return Some(None),
            }
        }
    }
}

mod address;
#[cfg(test)]
mod tests;
