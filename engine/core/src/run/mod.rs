//! The run state machine: `apply(&mut RunState, Event) -> Vec<Action>`.
//!
//! Pure and deterministic: events carry the time, actions carry out the I/O
//! (dispatching jobs, arming timers, aborting tasks). A run's history is its
//! event log; replaying it through `apply` rebuilds the state exactly.

mod approval;
mod backoff;
mod bounded;
mod caching;
mod children;
mod event;
mod executions;
mod exit;
mod job;
mod limits;
mod machine;
mod params;
mod plan;
mod resume;
mod retry;
mod slots;
mod state;
mod stopping;

pub use backoff::retry_delay;
pub use bounded::{bounded_text, MAX_TEXT_BYTES};
pub use event::{Action, ChildStart, Event, FailureKind, HookRun, Job, Millis, Outcome, TaskId};
pub use limits::RunLimits;
pub use machine::apply;
pub use params::{params_digest, resolve_params, shared_params_digest, INLINE_PARAMS_BYTES};
pub use plan::Plan;
pub use resume::resume;
pub use retry::reuse_events;
pub use state::{
    AttemptRecord, Execution, RunState, RunStatus, SkipReason, StepState, StepStatus, TaskState,
    TaskStatus,
};

#[cfg(test)]
pub(crate) mod tests;
