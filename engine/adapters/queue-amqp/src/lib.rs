//! The RabbitMQ [`JobQueue`](weft_core::ports::JobQueue), built on amqprs
//! (see [`client`]).
//!
//! Topology (every name starts with `Options::prefix`, `weft` by default):
//! - exchange `P.jobs` (direct) routes a job to its pool's queue of its
//!   priority band: `P.jobs.<pool>` (priority 0), `P.jobs.<pool>.high`
//!   (above 0), `P.jobs.<pool>.low` (below 0); a worker takes the highest
//!   band first (see [`feed`]);
//! - pool queues are durable: classic on a single node, quorum (replicated,
//!   with a delivery limit) on a cluster (`Options::replicated_jobs`). A
//!   job that keeps coming back (its worker keeps dying) goes to exchange
//!   `P.dead` and queue `P.dead`: the quorum queue sends it after its
//!   delivery limit, and a worker sends a copy whose claim shows more
//!   executions begun than that limit (`Claim::Exhausted`);
//! - reports go to the durable queue `P.reports`: classic on a single
//!   node, quorum (replicated) on a cluster (`Options::replicated_reports`);
//! - a server's mailbox: a job carries its server's name (`reply_to`), and
//!   its reports go to exchange `P.mailbox` (direct) with that name as key,
//!   to the server's queue `P.mailbox.<name>`. A report nobody takes from an
//!   mailbox within `Options::mailbox_ttl_ms` (its server died) is
//!   dead-lettered to `P.reports`; one sent to a mailbox that is gone goes
//!   there through `P.mailbox`'s alternate exchange, `P.mailbox.rest`. So a
//!   server reads its own runs' reports, not every server's, and a report
//!   always has somewhere to go.
//!
//! Jobs and reports are persistent, published `mandatory` with publisher
//! confirms, and consumed with manual acks. A lost connection is re-opened
//! with capped exponential backoff (see [`link`]); consumers are re-created
//! on the new connection and unacked messages come back from the broker.
//! Depends on `weft-core` only.

mod client;
mod delivery;
mod feed;
mod link;
mod options;
mod queue;

pub use options::Options;
pub use queue::AmqpJobQueue;
