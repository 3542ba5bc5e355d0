//! The worker: takes jobs from the [`JobQueue`](weft_core::ports::JobQueue)
//! for its pools, runs each attempt (shell commands now; containers, CUDA and
//! WASM come with their executors), streams output into the
//! [`RunStore`](weft_core::ports::RunStore)'s step log, reports the outcome,
//! and only then acknowledges the job. Depends on `weft-core` only.

mod abort;
mod error;
mod heartbeat;
mod options;
mod outputs;
mod shell;
mod stats;
mod worker;

pub use abort::Aborts;
pub use error::Error;
pub use options::Options;
pub use stats::Stats;
pub use worker::Worker;
