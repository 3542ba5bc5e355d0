//! An approval step's decision: approved, its outputs are the inputs the
//! approver gave; rejected, it fails (no retry: a person said no).

use serde_json::{Map, Value as Json};

use super::event::{FailureKind, Millis, Outcome, TaskId};
use super::machine::Machine;
use crate::spec::StepAction;

impl Machine<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decide(
        &mut self,
        task: &TaskId,
        attempt: u32,
        by: String,
        approved: bool,
        inputs: &Map<String, Json>,
        comment: Option<String>,
        at: Millis,
    ) {
        let Some((si, ti)) = self.locate(task) else {
            return;
        };
        let t = &self.state.steps[si].tasks[ti];
        if t.status != super::TaskStatus::AwaitingApproval || t.attempt() != attempt {
            return;
        }
        let plan = self.state.plan.clone();
        let StepAction::Approve { spec } = &plan.workflow.steps[si].action else {
            return;
        };
        let said = comment
            .filter(|c| !c.trim().is_empty())
            .map(|c| format!(": {}", super::bounded_text(&c, 1_000)))
            .unwrap_or_default();
        let outcome = match (approved, spec.outputs(inputs)) {
            (true, Ok(outputs)) => Outcome::Succeeded {
                outputs,
                artifacts: Default::default(),
            },
            (true, Err(e)) => failed(format!("approved by {by} with inputs it cannot take: {e}")),
            (false, _) => failed(format!("rejected by {by}{said}")),
        };
        if let Some(a) = self.state.steps[si].tasks[ti].attempts.last_mut() {
            // Who decided stands where a worker's name would.
            a.worker = Some(by);
        }
        self.finish_attempt((si, ti), outcome, at);
        self.drain(at);
    }
}

fn failed(reason: String) -> Outcome {
    Outcome::Failed {
        reason,
        exit_code: None,
        retryable: false,
        kind: FailureKind::Other,
    }
}

/// When an approval's attempt stops waiting: its `approve.timeout` after it
/// began waiting (the same instant for a driver that takes the run over).
pub(super) fn approval_deadline(
    spec: &crate::spec::Step,
    task: &super::state::TaskState,
) -> Option<Millis> {
    let StepAction::Approve { spec } = &spec.action else {
        return None;
    };
    let began = task.attempts.last()?.queued_at;
    Some(began.saturating_add(spec.timeout?.as_millis() as u64))
}
