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
        // Ended by its own limit, as a step's timeout fails it: failed.
        self.stop(reason, RunStatus::Failed, at);
    }

    pub(super) fn cancel(&mut self, reason: String, at: Millis) {
        self.stop(reason, RunStatus::Cancelled, at);
    }

    /// Stops every unfinished task but the on-exit step's, which then
    /// starts (once: stopping again while it runs stops it too); the run
    /// ends `status` when it is done.
    fn stop(&mut self, reason: String, status: RunStatus, at: Millis) {
        let exit = self.exit_step().filter(|&si| {
            self.state.started_at.is_some()
                && self.state.exiting.is_none()
                && self.state.steps[si].status == StepStatus::Waiting
        });
        for (si, step) in self.state.steps.iter_mut().enumerate() {
            if Some(si) == exit {
                continue;
            }
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
                    TaskStatus::AwaitingApproval => {
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
        self.state.cancel_reason = Some(reason);
        self.freed.clear();
        self.ready.clear();
        if exit.is_some() {
            self.state.open_steps = 1;
            self.begin_exit(Some(status));
            self.drain(at);
            return;
        }
        self.state.open_steps = 0;
        self.state.status = status;
        self.state.finished_at = Some(at);
        self.actions.push(Action::Finished { status });
    }
}
