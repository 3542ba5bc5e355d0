//! The seam for running `run` steps elsewhere than in a local shell: the
//! deterministic simulation's fake steps go through it. Without one, the
//! worker runs them with [`crate::shell`].

use async_trait::async_trait;
use tokio::sync::watch;
use weft_core::ports::LogSink;
use weft_core::run::{Job, Outcome};
use weft_core::spec::Command;

/// Runs the command of a `run` step.
#[async_trait]
pub trait CommandExecutor: Send + Sync {
    /// Runs `command` for `job`, writing its output to `log`; returns when it
    /// ends, or soon after `abort` turns true (cancel, lost claim).
    async fn execute(
        &self,
        job: &Job,
        command: &Command,
        abort: watch::Receiver<bool>,
        log: &dyn LogSink,
    ) -> Outcome;
}
