//! One connection to RabbitMQ that comes back after it breaks.
//!
//! The client does not reconnect on its own: `Link::session` hands out the live
//! session, or opens a new one with capped exponential backoff, declaring
//! the topology again. Each session has a generation so holders of an old
//! channel know to start over.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use amqprs::{FieldTable, FieldValue};
use tokio::sync::Mutex;
use weft_core::ports::PriorityBand;
use weft_core::Error;

use crate::client::{Channel, Connection, Consumer};
use crate::options::band_key;
use crate::Options;

pub(crate) struct Session {
    pub connection: Connection,
    /// In confirm mode; shared by every publisher of this process, and
    /// replaced on its own when the broker keeps refusing what it sends
    /// (see [`Session::renew_publisher`]).
    publisher: std::sync::Mutex<Channel>,
    pub generation: u64,
    declared_pools: std::sync::Mutex<HashSet<String>>,
}

impl Session {
    pub fn is_open(&self) -> bool {
        self.connection.is_open() && self.publisher().is_open()
    }

    /// The channel publishes go on.
    pub fn publisher(&self) -> Channel {
        self.publisher.lock().expect("publisher lock").clone()
    }

    /// A new publishing channel on the same connection, in place of
    /// `refused` (unless another caller replaced it already). After a
    /// broker node dies, RabbitMQ 3.x can go on refusing every publish a
    /// channel makes to a quorum queue that had its leader there, while a
    /// new channel publishes fine. Only the channel is replaced: a new
    /// connection would hand back every job this process holds, and
    /// RabbitMQ counts each such return against the job's delivery limit.
    pub async fn renew_publisher(&self, refused: &Channel) -> Result<(), Error> {
        let fresh = publishing_channel(&self.connection).await?;
        // The refused channel, or the fresh one if another caller already
        // replaced it: either way one channel is left over.
        let spare = {
            let mut current = self.publisher.lock().expect("publisher lock");
            if current.id() == refused.id() {
                std::mem::replace(&mut *current, fresh)
            } else {
                fresh
            }
        };
        spare.close().await;
        Ok(())
    }
}

/// A new channel of `connection`, in confirm mode, to publish on.
async fn publishing_channel(connection: &Connection) -> Result<Channel, Error> {
    let channel = connection.channel().await?;
    channel.confirm_select().await?;
    Ok(channel)
}

pub(crate) struct Link {
    pub options: Options,
    current: Mutex<Option<Arc<Session>>>,
    generation: std::sync::atomic::AtomicU64,
    /// The node tried first (`Options::nodes`): the one last reached.
    node: std::sync::atomic::AtomicUsize,
    /// This server's mailbox, once opened: declared again on each session.
    pub mailbox: std::sync::Mutex<Option<String>>,
}

/// How long weft waits for the broker's answer to one request (a
/// connection's opening takes two): a broker that is starting, or a
/// connection that died unnoticed, may never answer, and a wait without end
/// would stall every user of the connection.
pub(crate) const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// `fut`, or an error once the broker has not answered for [`RPC_TIMEOUT`].
pub(crate) async fn answered<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(RPC_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(Error::Closed(format!("rabbitmq: no answer {what}"))))
}

impl Link {
    pub fn new(options: Options) -> Self {
        Self {
            options,
            current: Mutex::new(None),
            generation: Default::default(),
            node: Default::default(),
            mailbox: Default::default(),
        }
    }

    /// The live session, reconnecting (and waiting as long as it takes) if needed.
    pub async fn session(&self) -> Arc<Session> {
        match self.session_unless_refused(false).await {
            Ok(session) => session,
            Err(_) => unreachable!("only a first session gives up"),
        }
    }

    /// The first session: as [`session`](Self::session), but a broker that
    /// refuses the configuration (a queue of the other type) is an error
    /// at once, where waiting would never end.
    pub async fn first_session(&self) -> Result<Arc<Session>, Error> {
        self.session_unless_refused(true).await
    }

    async fn session_unless_refused(&self, first: bool) -> Result<Arc<Session>, Error> {
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref().filter(|s| s.is_open()) {
            return Ok(s.clone());
        }
        let mut delay = Duration::from_millis(100);
        let max = Duration::from_millis(self.options.reconnect_max_delay_ms.max(100));
        let mut failures = 0u32;
        loop {
            let opened = tokio::time::timeout(RPC_TIMEOUT * 2, self.open())
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Closed("rabbitmq: no answer while connecting".into()))
                });
            match opened {
                Ok(session) => {
                    if failures > 0 {
                        tracing::info!(
                            "reconnected to rabbitmq after {failures} failed attempt(s)"
                        );
                    }
                    let session = Arc::new(session);
                    *current = Some(session.clone());
                    return Ok(session);
                }
                Err(e @ Error::Invalid(_)) if first => return Err(e),
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        let nodes: Vec<String> = self
                            .options
                            .nodes()
                            .into_iter()
                            .map(weft_core::ports::redacted_url)
                            .collect();
                        tracing::warn!(
                            "rabbitmq at {} unavailable ({e}); trying again in {delay:?}",
                            nodes.join(", ")
                        );
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(max);
                }
            }
        }
    }

    /// The generation of the newest session opened: a holder of an older
    /// one is on a connection that has been replaced.
    pub fn latest_generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets `session` if it is still the current one (after an error on it).
    pub async fn drop_session(&self, generation: u64) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|s| s.generation == generation) {
            *current = None;
        }
    }

    /// A connection to the first node that answers, starting with the one
    /// last reached.
    async fn connect_any(&self) -> Result<Connection, Error> {
        use std::sync::atomic::Ordering;
        let o = &self.options;
        let nodes = o.nodes();
        let first = self.node.load(Ordering::SeqCst) % nodes.len();
        let mut last = None;
        for i in (0..nodes.len()).map(|k| (first + k) % nodes.len()) {
            // The URL's own `heartbeat`, if it names one, wins.
            let connect = Connection::open(nodes[i], o.heartbeat_secs);
            // A node that takes no connection must not hold up the others.
            let per_node = RPC_TIMEOUT * 2 / nodes.len().max(1) as u32;
            match tokio::time::timeout(per_node, connect).await {
                Ok(Ok(connection)) => {
                    if i != first {
                        tracing::info!(
                            "rabbitmq: connected to {}",
                            weft_core::ports::redacted_url(nodes[i])
                        );
                    }
                    self.node.store(i, Ordering::SeqCst);
                    return Ok(connection);
                }
                // A URL that cannot be read never will be.
                Ok(Err(e @ Error::Invalid(_))) => return Err(e),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(Error::Closed("rabbitmq: no answer while connecting".into())),
            }
        }
        Err(last.unwrap_or_else(|| Error::Closed("rabbitmq: no broker URL".into())))
    }

    async fn open(&self) -> Result<Session, Error> {
        let o = &self.options;
        let connection = self.connect_any().await?;
        let publisher = publishing_channel(&connection).await?;
        let x = Durability::of(o);
        publisher
            .exchange_declare(
                &o.jobs_exchange(),
                "direct",
                x.durable,
                x.auto_delete,
                FieldTable::new(),
            )
            .await?;
        publisher
            .exchange_declare(
                &o.dead_exchange(),
                "fanout",
                x.durable,
                x.auto_delete,
                FieldTable::new(),
            )
            .await?;
        declare_queue(&publisher, o, &o.dead_queue(), QueueKind::Dead).await?;
        publisher
            .queue_bind(&o.dead_queue(), &o.dead_exchange(), "")
            .await?;
        declare_queue(&publisher, o, &o.reports_queue(), QueueKind::Reports).await?;
        declare_mailbox_exchanges(&publisher, o, x).await?;
        let mailbox = self.mailbox.lock().expect("mailbox lock").clone();
        if let Some(name) = mailbox {
            declare_mailbox(&publisher, o, &name).await?;
        }
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        Ok(Session {
            connection,
            publisher: std::sync::Mutex::new(publisher),
            generation,
            declared_pools: Default::default(),
        })
    }

    /// Declares the queue of a pool's band once per session.
    pub async fn ensure_band(
        &self,
        session: &Session,
        pool: &str,
        band: PriorityBand,
    ) -> Result<(), Error> {
        let key = band_key(pool, band);
        if session
            .declared_pools
            .lock()
            .expect("pools lock")
            .contains(&key)
        {
            return Ok(());
        }
        let o = &self.options;
        let queue = o.band_queue(pool, band);
        let publisher = session.publisher();
        declare_queue(&publisher, o, &queue, QueueKind::Jobs).await?;
        publisher
            .queue_bind(&queue, &o.jobs_exchange(), &key)
            .await?;
        session
            .declared_pools
            .lock()
            .expect("pools lock")
            .insert(key);
        Ok(())
    }
}

/// A channel to consume on: each consumer on it is sent at most
/// `prefetch` unacked messages. Each request has [`answered`]'s limit: a
/// connection left half-open by a broker restart can leave a request
/// unanswered forever, and a consumer (the server's of reports, say) that
/// waited on it would never hear a message again.
pub(crate) async fn consuming_channel(session: &Session, prefetch: u16) -> Result<Channel, Error> {
    let channel = answered("to channel.open", session.connection.channel()).await?;
    answered("to basic.qos", channel.qos(prefetch.max(1))).await?;
    Ok(channel)
}

/// A consumer of `queue` on `channel`, with manual acks (within
/// [`answered`]'s limit, as above).
pub(crate) async fn consume(channel: &Channel, queue: String) -> Result<Consumer, Error> {
    answered("to basic.consume", channel.consume(&queue)).await
}

/// Whether exchanges outlive their last binding (`Options::expire_after_ms`
/// makes everything go once unused, for tests on a shared broker).
#[derive(Clone, Copy)]
struct Durability {
    durable: bool,
    auto_delete: bool,
}

impl Durability {
    fn of(o: &Options) -> Self {
        let ephemeral = o.expire_after_ms.is_some();
        Self {
            durable: !ephemeral,
            auto_delete: ephemeral,
        }
    }
}

/// A queue's or exchange's arguments: `(name, value)`.
fn arguments(pairs: Vec<(&'static str, FieldValue)>) -> FieldTable {
    let mut table = FieldTable::new();
    for (name, value) in pairs {
        table.insert(name.try_into().expect("an argument's name is short"), value);
    }
    table
}

fn text(value: String) -> FieldValue {
    // Names here are at most a few hundred bytes, far below a long string's 4 GiB.
    FieldValue::S(value.try_into().expect("a name fits a long string"))
}

fn number(value: u64) -> FieldValue {
    FieldValue::I(value.clamp(1, i32::MAX as u64) as i32)
}

/// `P.mailbox`, which routes reports to servers' mailboxes, and its alternate
/// exchange `P.mailbox.rest`, bound to `P.reports`: a report for a mailbox
/// that is gone goes to the queue every server reads.
async fn declare_mailbox_exchanges(
    channel: &Channel,
    o: &Options,
    x: Durability,
) -> Result<(), Error> {
    let unrouted = o.unrouted_exchange();
    channel
        .exchange_declare(
            &unrouted,
            "fanout",
            x.durable,
            x.auto_delete,
            FieldTable::new(),
        )
        .await?;
    channel
        .queue_bind(&o.reports_queue(), &unrouted, "")
        .await?;
    let args = arguments(vec![("alternate-exchange", text(unrouted))]);
    channel
        .exchange_declare(
            &o.mailbox_exchange(),
            "direct",
            x.durable,
            x.auto_delete,
            args,
        )
        .await
}

/// Server `name`'s mailbox, bound to `P.mailbox` by its name: of the type of
/// `P.reports`; what waits in it longer than `mailbox_ttl_ms` is
/// dead-lettered to `P.reports`.
pub(crate) async fn declare_mailbox(
    channel: &Channel,
    o: &Options,
    name: &str,
) -> Result<(), Error> {
    let queue = o.mailbox_queue(name);
    declare_queue(channel, o, &queue, QueueKind::Mailbox).await?;
    channel
        .queue_bind(&queue, &o.mailbox_exchange(), name)
        .await
}

/// What a queue holds, which decides its type.
#[derive(Clone, Copy, PartialEq)]
enum QueueKind {
    /// Pool queues (one per priority band). On a cluster, quorum queues
    /// (replicated, delivery-counted) that dead-letter a job after
    /// `delivery_limit` returns. On a single node, durable classic queues
    /// of persistent messages (`Options::replicated_jobs`): a classic queue
    /// hands a job on before its fsync, and counts no deliveries, so the
    /// attempt's claim catches a job that keeps crashing its workers (a
    /// worker dead-letters a copy whose claim shows more executions than
    /// the limit).
    Jobs,
    /// Reports: a durable classic queue of persistent messages. It needs no
    /// delivery count, and a classic queue hands a message on before its
    /// fsync. On a cluster, a quorum queue (`Options::replicated_reports`):
    /// a classic one lives on one node and stops with it.
    Reports,
    /// Dead letters: a durable classic queue, or a quorum one like reports.
    Dead,
    /// A server's reports: like `Reports`, with a message TTL that hands
    /// them on to `Reports` when the server is gone.
    Mailbox,
}

impl QueueKind {
    /// Whether `o` puts this kind in quorum queues, and the option that says so.
    fn replicated(self, o: &Options) -> (bool, &'static str) {
        match self {
            Self::Jobs => (o.jobs_replicated(), "replicated-jobs"),
            _ => (o.reports_replicated(), "replicated-reports"),
        }
    }
}

async fn declare_queue(
    channel: &Channel,
    o: &Options,
    name: &str,
    kind: QueueKind,
) -> Result<(), Error> {
    let mut args = Vec::new();
    let (quorum, option) = kind.replicated(o);
    if quorum {
        args.push(("x-queue-type", text("quorum".into())));
    }
    if kind == QueueKind::Jobs {
        if quorum {
            let limit = o.delivery_limit.min(i32::MAX as u32) as i32;
            args.push(("x-delivery-limit", FieldValue::I(limit)));
        }
        args.push(("x-dead-letter-exchange", text(o.dead_exchange())));
    }
    if kind == QueueKind::Mailbox {
        args.push(("x-message-ttl", number(o.mailbox_ttl_ms)));
        args.push(("x-dead-letter-exchange", text(String::new())));
        args.push(("x-dead-letter-routing-key", text(o.reports_queue())));
        if quorum {
            // The default, at-most-once, drops a report the target does
            // not confirm; at-least-once needs publishes refused when full.
            args.push(("x-dead-letter-strategy", text("at-least-once".into())));
            args.push(("x-overflow", text("reject-publish".into())));
        }
    }
    let expires = match kind {
        QueueKind::Mailbox => Some(
            o.expire_after_ms
                .unwrap_or(o.mailbox_expires_ms)
                .max(o.mailbox_ttl_ms.saturating_mul(2)),
        ),
        _ => o.expire_after_ms,
    };
    if let Some(ms) = expires {
        args.push(("x-expires", number(ms)));
    }
    channel
        .queue_declare(name, false, arguments(args))
        .await
        .map(drop)
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("x-queue-type") {
                // It exists with the other type: say what to do about it.
                let (is, want) = if quorum {
                    ("classic", "true")
                } else {
                    ("quorum", "false")
                };
                return Error::Invalid(format!(
                    "rabbitmq: queue {name} exists as a {is} queue, but [broker] \
                     {option} is {want}: set it to match, or stop the servers \
                     and workers once the queue is empty and delete it \
                     (rabbitmqctl delete_queue {name})"
                ));
            }
            if kind == QueueKind::Mailbox && text.contains("PRECONDITION_FAILED") {
                return Error::Invalid(format!(
                    "rabbitmq: mailbox {name} exists with other settings ({text}): \
                     a server of this name ran with another [broker] mailbox-ttl-ms \
                     or mailbox-expires-ms: with every server of this name stopped, \
                     what the mailbox holds moves to the shared report queue within \
                     its old mailbox-ttl-ms; then delete it \
                     (rabbitmqctl delete_queue {name})"
                ));
            }
            e
        })
}
