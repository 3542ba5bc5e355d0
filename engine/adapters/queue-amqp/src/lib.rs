//! The RabbitMQ [`JobQueue`](weft_core::ports::JobQueue), built on lapin.
//!
//! Topology (every name starts with `Options::prefix`, `weft` by default):
//! - exchange `P.jobs` (direct) routes a job to its pool's queue of its
//!   priority band: `P.jobs.<pool>` (priority 0), `P.jobs.<pool>.high`
//!   (above 0), `P.jobs.<pool>.low` (below 0); a worker takes the highest
//!   band first (see [`feed`]);
//! - pool queues are durable quorum queues with a delivery limit: a job that
//!   keeps coming back (its worker keeps dying) goes to exchange `P.dead`
//!   and queue `P.dead`;
//! - reports go to the durable queue `P.reports`: classic on a single
//!   node, quorum (replicated) on a cluster (`Options::replicated_reports`).
//!
//! Jobs and reports are persistent, published `mandatory` with publisher
//! confirms, and consumed with manual acks. A lost connection is re-opened
//! with capped exponential backoff (see [`link`]); consumers are re-created
//! on the new connection and unacked messages come back from the broker.
//! Depends on `weft-core` only.

mod delivery;
mod feed;
mod link;
mod options;
mod queue;

pub use options::Options;
pub use queue::AmqpJobQueue;
