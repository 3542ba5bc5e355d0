//! The run's `[workflow] on-exit` step: held back until every other step
//! has ended (or the run was cancelled or timed out), then run once,
//! whatever happened; and what a step sees of the run (`run.status`,
//! `run.failed`), which is how an on-exit step knows.

use serde_json::{json, Value as Json};

use super::machine::Machine;
use super::state::{RunStatus, StepStatus};

impl Machine<'_> {
    /// The index of the on-exit step, if the workflow has one.
    pub(super) fn exit_step(&self) -> Option<usize> {
        let exit = self.state.plan.workflow.on_exit.as_ref()?;
        self.state.step_index(&exit.value)
    }

    /// Whether a step other than one allowed to fail has failed.
    pub(super) fn any_failed(&self) -> bool {
        self.state.failed_steps > 0
    }

    /// Starts the on-exit step if it has not started: `stopped` is the
    /// status a cancel or the run's timeout gives the run, `None` when the
    /// other steps are all done. Returns whether it was queued to start.
    pub(super) fn begin_exit(&mut self, stopped: Option<RunStatus>) -> bool {
        let Some(si) = self.exit_step() else {
            return false;
        };
        if self.state.exiting.is_some() || self.state.steps[si].status != StepStatus::Waiting {
            return false;
        }
        self.state.exiting = Some(stopped.unwrap_or(if self.any_failed() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        }));
        self.ready.push_back(si);
        true
    }

    /// `run` as templates and conditions see it: its id, its status
    /// (`running`, or for the on-exit step what the run ended with), and
    /// whether it failed or a step of it has failed so far.
    pub(super) fn run_view(&self) -> Json {
        let status = self.state.exiting.unwrap_or(self.state.status);
        let failed = status == RunStatus::Failed || self.any_failed();
        json!({"id": self.state.run_id, "status": status.as_str(), "failed": failed})
    }
}
