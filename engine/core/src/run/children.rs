//! Sub-workflow steps: an attempt starts a child run (`Action::StartChild`)
//! instead of a job, and ends when the child's end comes back as its
//! `TaskFinished`. The child's id comes from the parent, the task and the
//! attempt, so a driver taking the run over starts the same child (found,
//! not started twice). Runs nest at most `MAX_DEPTH` deep.

use serde_json::{json, Map, Value as Json};

use super::event::{Action, ChildStart, FailureKind, Job, Millis, Outcome, TaskId};
use super::machine::Machine;
use super::state::{RunState, RunStatus, TaskStatus};
use crate::spec::sub_workflow::{ParentRef, MAX_DEPTH};
use crate::spec::StepAction;

impl Machine<'_> {
    /// Starts the child run of `job` (a sub-workflow step's attempt).
    pub(super) fn start_child(&mut self, (si, ti): (usize, usize), job: Job, at: Millis) {
        let Some(start) = self.state.child_start(&job) else {
            return;
        };
        if start.parent.depth > MAX_DEPTH {
            let reason = format!(
                "sub-workflows nest more than {MAX_DEPTH} deep here (a workflow that runs itself through others?)"
            );
            let outcome = Outcome::Failed {
                reason,
                exit_code: None,
                retryable: false,
                kind: FailureKind::Policy,
            };
            return self.finish_attempt((si, ti), outcome, at);
        }
        let task = &mut self.state.steps[si].tasks[ti];
        task.status = TaskStatus::Running;
        if let Some(a) = task.attempts.last_mut() {
            a.started_at = Some(at);
            a.worker = Some(format!("run {}", start.run_id));
        }
        self.actions.push(Action::StartChild(Box::new(start)));
    }
}

impl RunState {
    /// What starting `job`'s child run takes, if `job` is a sub-workflow
    /// step's attempt.
    pub fn child_start(&self, job: &Job) -> Option<ChildStart> {
        let StepAction::Workflow { spec } = &job.action else {
            return None;
        };
        Some(ChildStart {
            priority: self.priority,
            run_id: self.child_run_id(&job.task, job.attempt)?,
            workflow: spec.clone(),
            parent: ParentRef {
                run: self.run_id.clone(),
                task: job.task.clone(),
                attempt: job.attempt,
                depth: self.parent.as_ref().map_or(1, |p| p.depth + 1),
            },
        })
    }

    /// The id of the child run of `task`'s `attempt`, if its step is a
    /// sub-workflow and the attempt exists.
    pub fn child_run_id(&self, task: &TaskId, attempt: u32) -> Option<String> {
        let si = self.step_index(&task.step)?;
        if !matches!(
            self.plan.workflow.steps[si].action,
            StepAction::Workflow { .. }
        ) {
            return None;
        }
        let queued = self
            .task(task)?
            .attempts
            .iter()
            .find(|a| a.number == attempt)?
            .queued_at;
        Some(crate::schedule::child_run_id(
            &self.run_id,
            &task.to_string(),
            attempt,
            queued,
        ))
    }

    /// The run's outputs: its `[workflow] outputs` step's, or every step's
    /// that has some, by id.
    pub fn outputs(&self) -> Json {
        if let Some(step) = &self.plan.workflow.outputs {
            return self
                .step_index(&step.value)
                .and_then(|i| self.steps[i].outputs.clone())
                .unwrap_or_else(|| json!({}));
        }
        let by_step: Map<String, Json> = self
            .plan
            .workflow
            .steps
            .iter()
            .zip(&self.steps)
            .filter_map(|(spec, s)| Some((spec.id.clone(), s.outputs.clone()?)))
            .collect();
        Json::Object(by_step)
    }

    /// How the parent's step ends, now that this child run has.
    pub fn child_outcome(&self) -> Outcome {
        match self.status {
            RunStatus::Succeeded => Outcome::Succeeded {
                outputs: self.outputs(),
                artifacts: Default::default(),
            },
            status => Outcome::Failed {
                reason: format!(
                    "sub-workflow run {} {}{}",
                    self.run_id,
                    status.as_str(),
                    self.failure_summary()
                        .or_else(|| self.cancel_reason.clone())
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default()
                ),
                exit_code: None,
                retryable: true,
                kind: FailureKind::Other,
            },
        }
    }
}

/// Actions that put a taken-over run's sub-workflow attempts back in
/// motion: their children asked for again (started, or found started).
pub(super) fn restart_children(m: &mut Machine<'_>, si: usize, ti: usize) {
    let task = &m.state.steps[si].tasks[ti];
    if task.status != TaskStatus::Running {
        return;
    }
    let (id, attempt, item) = (task.id.clone(), task.attempt(), task.item.clone());
    if let Ok(job) = m.job(si, item.as_ref(), id, attempt) {
        if let Some(start) = m.state.child_start(&job) {
            m.actions.push(Action::StartChild(Box::new(start)));
        }
    }
}
