//! The worker: takes jobs from the [`JobQueue`](weft_core::ports::JobQueue)
//! for its pools, runs each attempt (shell commands, WASM plugin steps, and
//! containers and CUDA kernels through their runtimes, with pre and post
//! plugin hooks around them), streams output into the
//! [`RunStore`](weft_core::ports::RunStore)'s step log, records the outcome
//! durably in the attempt's claim, reports it, and only then acknowledges
//! the job. Depends on `weft-core` and `weft-wasm-host`.

mod abort;
mod artifact_cache;
mod artifact_refs;
mod artifacts;
mod attempt;
mod cgroup;
mod claim;
mod container;
mod cuda;
mod error;
mod executor;
mod gate;
mod gpus;
mod heartbeat;
mod launch;
mod options;
mod outputs;
mod params;
mod plugins;
mod room;
mod running;
mod scratch;
mod secrets;
mod shell;
mod spare;
mod stats;
mod steplog;
mod users;
mod worker;

pub use abort::Aborts;
pub use error::Error;
pub use executor::{Attempt, Executor};
pub use options::Options;
pub use plugins::Plugins;
pub use room::prefetch;
pub use secrets::Secrets;
pub use stats::Stats;
pub use users::{default_step_uids, RunAs, StepUids};
pub use worker::Worker;

/// The variables of the worker's environment every shell step gets (with
/// `LC_*`): what programs expect to find. Nothing else of the worker's
/// environment reaches a step unless `[worker] pass-env` names it.
pub const STEP_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
];
