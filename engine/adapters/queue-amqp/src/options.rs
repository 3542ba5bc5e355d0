//! How to reach RabbitMQ and name things there.

use serde::Deserialize;
use weft_core::ports::PriorityBand;

/// The routing key of `pool`'s jobs of `band` on the jobs exchange.
pub(crate) fn band_key(pool: &str, band: PriorityBand) -> String {
    band.queue_of(pool)
}

/// RabbitMQ settings. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Options {
    /// Broker URL. Default: `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// The other nodes of the same RabbitMQ cluster, tried in turn when the
    /// node in use (first `url`) cannot be reached: a client stays on the
    /// node it reached until it loses it, then tries the next. Default: none.
    pub urls: Vec<String>,
    /// Reports and dead letters in quorum queues, replicated over the
    /// cluster's nodes like the jobs, rather than in classic queues on one
    /// node. On a cluster, a classic queue stops when its node does, and
    /// what workers report meanwhile has nowhere to go. A classic queue
    /// saves a step one replicated write per report on a single node.
    /// Default: true when `urls` names other nodes, else false. The type
    /// of an existing queue cannot change: to switch, drain and delete
    /// `P.reports` and `P.dead` first.
    pub replicated_reports: Option<bool>,
    /// Jobs in quorum queues, replicated over the cluster's nodes, rather
    /// than in classic queues on one node. A quorum queue waits for a Raft
    /// commit (and its fsync) before it hands a job on: about 0.5 ms of
    /// each step on a single node, where it replicates nothing. Either way
    /// a job is persistent and confirmed before the server moves on, and a
    /// job that keeps crashing its workers is dead-lettered after
    /// `delivery_limit` returns: a quorum queue counts them itself, and the
    /// attempt's claim counts the executions that began (a classic queue
    /// has no delivery count). Default: true when `urls` names other
    /// nodes, else false. The type of an existing queue cannot change: to
    /// switch, drain and delete the `P.jobs.*` queues first.
    pub replicated_jobs: Option<bool>,
    /// Prefix of every exchange and queue weft declares. Default: `weft`.
    pub prefix: String,
    /// Unacked jobs one taker may hold per pool and priority band (a
    /// worker sets it to its slots). Default: 1.
    pub prefetch: u16,
    /// Returns of one job unfinished before it is dead-lettered: a job
    /// whose claim shows more executions begun than this fails its
    /// attempt as a poison job. Default: 3.
    pub delivery_limit: u32,
    /// AMQP heartbeat, in seconds. Default: 10.
    pub heartbeat_secs: u16,
    /// Longest wait between reconnection attempts, in milliseconds. Default: 5000.
    pub reconnect_max_delay_ms: u64,
    /// How long a report waits in a server's mailbox for its server before
    /// it goes to `P.reports`, which every server reads, in milliseconds:
    /// the reports of a server that died reach the one that adopts its
    /// runs after this. About the servers' lease time (`[server]
    /// lease-ttl-ms`). Default: 15000.
    pub mailbox_ttl_ms: u64,
    /// A mailbox nobody has read for this many milliseconds is deleted (its
    /// server is gone for good), in milliseconds. A report sent to it in
    /// its last `mailbox_ttl_ms` is deleted with it: keep this far above the
    /// longest step. Default: one week.
    pub mailbox_expires_ms: u64,
    /// Queues expire after this many idle milliseconds and exchanges
    /// auto-delete: for tests on a shared broker. Default: none (durable).
    pub expire_after_ms: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            urls: Vec::new(),
            replicated_reports: None,
            replicated_jobs: None,
            prefix: "weft".into(),
            prefetch: 1,
            delivery_limit: 3,
            heartbeat_secs: 10,
            reconnect_max_delay_ms: 5000,
            mailbox_ttl_ms: 15_000,
            mailbox_expires_ms: 7 * 24 * 3600 * 1000,
            expire_after_ms: None,
        }
    }
}

impl Options {
    pub(crate) fn jobs_exchange(&self) -> String {
        format!("{}.jobs", self.prefix)
    }
    pub(crate) fn dead_exchange(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    pub(crate) fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    pub(crate) fn reports_queue(&self) -> String {
        format!("{}.reports", self.prefix)
    }
    /// Routes a report to the mailbox its routing key names.
    pub(crate) fn mailbox_exchange(&self) -> String {
        format!("{}.mailbox", self.prefix)
    }
    /// Takes what `P.mailbox` cannot route (a mailbox that is gone) to
    /// `P.reports`.
    pub(crate) fn unrouted_exchange(&self) -> String {
        format!("{}.mailbox.rest", self.prefix)
    }
    /// Server `name`'s mailbox.
    pub(crate) fn mailbox_queue(&self, name: &str) -> String {
        format!("{}.mailbox.{name}", self.prefix)
    }
    /// The queue of `pool`'s jobs of `band`: `P.jobs.<pool>` for the
    /// normal band, `P.jobs.<pool>.high` and `.low` for the others.
    pub(crate) fn band_queue(&self, pool: &str, band: PriorityBand) -> String {
        format!("{}.jobs.{}", self.prefix, band_key(pool, band))
    }

    /// Whether reports and dead letters go to quorum queues.
    pub(crate) fn reports_replicated(&self) -> bool {
        self.replicated_reports.unwrap_or(!self.urls.is_empty())
    }

    /// Whether jobs go to quorum queues.
    pub(crate) fn jobs_replicated(&self) -> bool {
        self.replicated_jobs.unwrap_or(!self.urls.is_empty())
    }

    /// Every node's URL: `url`, then `urls`.
    pub(crate) fn nodes(&self) -> Vec<&str> {
        std::iter::once(self.url.as_str())
            .chain(self.urls.iter().map(String::as_str))
            .collect()
    }
}
