//! `max-parallel`: how many of a `for-each` step's instances may be under
//! way at once, and starting waiting ones as slots free. A freed slot is
//! filled from `drain` (`Machine::freed`), never by recursion, so a long
//! run of instances that fail as they start cannot deepen the stack.

use super::event::Millis;
use super::machine::Machine;
use super::state::TaskStatus;
use crate::spec::StepAction;

impl Machine<'_> {
    /// How many of step `si`'s instances may be under way at once.
    pub(super) fn slots(&self, si: usize) -> usize {
        let spec = &self.state.plan.workflow.steps[si];
        match spec.max_parallel {
            // A join instance ends as it starts: it holds no slot.
            Some(n) if spec.action != StepAction::Join => n as usize,
            _ => usize::MAX,
        }
    }

    /// Starts step `si`'s waiting instances, in order, while it has slots.
    pub(super) fn fill_slots(&mut self, si: usize, at: Millis) {
        let slots = self.slots(si);
        let tasks = &self.state.steps[si].tasks;
        let busy = tasks
            .iter()
            .filter(|t| {
                matches!(
                    t.status,
                    TaskStatus::Queued | TaskStatus::Running | TaskStatus::RetryWaiting
                )
            })
            .count();
        let starting: Vec<usize> = (0..tasks.len())
            .filter(|&ti| tasks[ti].status == TaskStatus::Waiting)
            .take(slots.saturating_sub(busy))
            .collect();
        for ti in starting {
            self.dispatch(si, ti, at);
        }
    }
}
