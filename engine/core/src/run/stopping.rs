//! How a run stops before its steps are done: cancelled by someone, or
//! past its `[workflow] timeout` (then it fails).

use super::event::{Action, Millis};
use super::machine::Machine;
use super::state::{RunStatus, StepStatus, TaskStatus};
use crate::run::FailureKind;

impl Machine<'_> {
    /// Asks for `RunTimedOut` when the run's `timeout` passes (from its
    /// start, so a driver taking the run over arms the same instant).
    pub(super) fn arm_run_deadline(&mut self) {
        if let (Some(timeout), Some(started)) =
            (self.state.plan.workflow.timeout, self.state.started_at)
        {
            self.actions.push(Action::ArmRunDeadline {
                at: started.saturating_add(timeout.as_millis() as u64),
            });
        }
    }

    /// The run's `timeout` passed: stopped as a cancel is, but failed.
    pub(super) fn time_out(&mut self, at: Millis) {
        let timeout = self.state.plan.workflow.timeout.unwrap_or_default();
        let reason = format!(
            "the run timed out after {} (`[workflow] timeout`)",
            crate::spec::units::format_duration(timeout)
        );
        self.cancel(reason, at);
        // Ended by its own limit, as a step's timeout fails it: failed.
        self.state.status = RunStatus::Failed;
        if let Some(Action::Finished { status }) = self.actions.last_mut() {
            *status = RunStatus::Failed;
        }
    }

    pub(super) fn cancel(&mut self, reason: String, at: Millis) {
        for step in &mut self.state.steps {
            for task in &mut step.tasks {
                match task.status {
                    TaskStatus::Queued | TaskStatus::Running => {
                        self.actions.push(Action::Abort {
                            task: task.id.clone(),
                            attempt: task.attempt(),
                        });
                        if let Some(a) = task.attempts.last_mut() {
                            a.finished_at = Some(at);
                            a.error = Some(format!("cancelled: {reason}"));
                            a.error_kind = FailureKind::Cancelled;
                        }
                        task.status = TaskStatus::Cancelled;
                    }
                    TaskStatus::RetryWaiting | TaskStatus::Waiting => {
                        task.status = TaskStatus::Cancelled
                    }
                    _ => {}
                }
            }
            if !step.status.is_terminal() {
                step.status = StepStatus::Cancelled;
                step.finished_at = Some(at);
            }
        }
        self.state.open_steps = 0;
        self.state.status = RunStatus::Cancelled;
        self.state.cancel_reason = Some(reason);
        self.state.finished_at = Some(at);
        self.actions.push(Action::Finished {
            status: RunStatus::Cancelled,
        });
    }
}
