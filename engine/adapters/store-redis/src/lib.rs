//! The Redis [`RunStore`](weft_core::ports::RunStore).
//!
//! Keys (all under `Options::prefix`, `weft` by default):
//! - `P:run:<id>`: the run record (JSON); `P:runs`: a sorted set of run ids by creation time;
//! - `P:events:<id>`: the run's event log, a list appended by a Lua script that
//!   checks the writer's fence against `P:lease:<id>` and the expected length
//!   first, so a stale writer is refused, never applied;
//! - `P:lease:<id>`: the run's lease (owner, token, expiry by Redis's clock);
//! - `P:claim:<run>:<task>:<attempt>`: an attempt's claim (state, worker,
//!   token, expiry, and once done the report of how it ended);
//! - `P:log:<run>:<task>:<attempt>`: the attempt's output, a capped stream of
//!   entries of at most 64 KiB keyed by byte offset (`XADD MAXLEN ~`), so it
//!   can be tailed live, read in pages, and appended to exactly once.
//!
//! - `P:slots:<key>:held` and `P:slots:<key>:line`: a concurrency key's
//!   holders and the runs waiting for it, by rank;
//! - `P:secrets`: secrets by name, each sealed under the server's keyring
//!   (never in clear);
//!
//! On a Redis Cluster (`Options::cluster`) a run's keys carry its id as
//! their hash tag (`P:run:{<id>}`, `P:claim:{<run>}:<task>:<attempt>`, ...),
//! so every script on a run touches one slot and runs spread over the
//! primaries; the keys shared by all runs carry the prefix as theirs
//! (`{P}:runs`), so the scripts across them stay in one slot too.
//!
//! Durability is Redis's: run it with AOF (`appendonly yes`,
//! `appendfsync everysec` or `always`); see `docs/operations.md`.
//! Depends on `weft-core` only.

mod audit;
mod changes;
mod claims;
mod concurrency;
mod conn;
mod deliveries;
mod logs;
mod options;
mod plugins;
mod query;
mod registry;
mod removal;
mod retry;
mod scripts;
mod secrets;
mod step_cache;
mod store;
mod tokens;
mod workflows;

pub use changes::RedisChangeBus;
pub use options::Options;
pub use store::RedisRunStore;
