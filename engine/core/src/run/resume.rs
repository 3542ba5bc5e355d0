//! Putting a replayed run back in motion when a new driver takes it over.

use std::collections::VecDeque;

use super::backoff::retry_delay;
use super::event::Action;
use super::machine::Machine;
use super::state::{RunState, RunStatus, TaskStatus};
use crate::spec::StepAction;

/// Actions that put a replayed run back in motion when a new driver takes
/// it over (after a crash or restart): queued attempts are dispatched again,
/// deadlines re-armed, pending retries rescheduled. Succeeded work is never
/// redone. A job that was already in the queue may then be delivered twice;
/// the second result of one attempt is ignored.
///
/// With `jobs_lost` (the queue did not outlive the driver, as in the
/// embedded engine), running attempts are dispatched again too: nothing
/// else would ever finish them.
pub fn resume(state: &mut RunState, jobs_lost: bool) -> Vec<Action> {
    let mut m = Machine {
        state,
        actions: Vec::new(),
        ready: VecDeque::new(),
        freed: VecDeque::new(),
    };
    if m.state.status != RunStatus::Running {
        return m.actions;
    }
    m.arm_run_deadline();
    let plan = m.state.plan.clone();
    for si in 0..m.state.steps.len() {
        let spec = &plan.workflow.steps[si];
        for ti in 0..m.state.steps[si].tasks.len() {
            let task = &m.state.steps[si].tasks[ti];
            let (id, attempt, item, status) = (
                task.id.clone(),
                task.attempt(),
                task.item.clone(),
                task.status,
            );
            match status {
                TaskStatus::Queued | TaskStatus::Running => {
                    if let Some(after) = spec.timeout {
                        m.actions.push(Action::ArmDeadline {
                            task: id.clone(),
                            attempt,
                            after,
                        });
                    }
                    if let StepAction::Workflow { .. } = &spec.action {
                        super::children::restart_children(&mut m, si, ti);
                    } else if status == TaskStatus::Queued || jobs_lost {
                        // Straight to a worker, never to the cache: the job
                        // may be in the queue already, and a hit recorded
                        // now would let that copy run after the success.
                        if let Ok(job) = m.job(si, item.as_ref(), id, attempt) {
                            m.actions.push(Action::Dispatch(Box::new(job)));
                        }
                    }
                }
                TaskStatus::AwaitingApproval => {
                    if let Some(at) = super::approval::approval_deadline(spec, task) {
                        m.actions.push(Action::ArmApprovalTimeout {
                            task: id,
                            attempt,
                            at,
                        });
                    }
                }
                TaskStatus::RetryWaiting => {
                    let delay = retry_delay(
                        &spec.retries,
                        attempt + 1,
                        &format!("{}/{}", m.state.run_id, id),
                    );
                    m.actions.push(Action::ScheduleRetry {
                        task: id,
                        attempt: attempt + 1,
                        delay,
                    });
                }
                _ => {}
            }
        }
    }
    m.actions
}
