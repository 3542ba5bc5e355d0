//! The transition function. Every rule of scheduling lives here.

use std::collections::VecDeque;

use serde_json::{json, Value as Json};

use super::backoff::retry_delay;
use super::event::{Action, Event, FailureKind, Millis, Outcome, TaskId};
use super::state::{
    AttemptRecord, RunState, RunStatus, SkipReason, StepStatus, TaskState, TaskStatus,
};
use crate::expr::Condition;
use crate::spec::{ForEach, StepAction};
use crate::template::Template;

/// Applies one event; returns what the driver must do. Events that no longer
/// matter (a late result for an attempt that was already settled, anything
/// after the run finished) change nothing and return no actions.
pub fn apply(state: &mut RunState, event: Event) -> Vec<Action> {
    let mut m = Machine {
        state,
        actions: Vec::new(),
        ready: VecDeque::new(),
        freed: VecDeque::new(),
    };
    m.handle(event);
    m.actions
}

pub(super) struct Machine<'s> {
    pub(super) state: &'s mut RunState,
    pub(super) actions: Vec<Action>,
    /// Steps whose needs have all finished, to activate in order.
    pub(super) ready: VecDeque<usize>,
    /// Steps limited by `max-parallel` where an instance ended: their
    /// waiting instances may start (in `drain`, not by recursion).
    pub(super) freed: VecDeque<usize>,
}

impl Machine<'_> {
    fn handle(&mut self, event: Event) {
        // Every execution is recorded, even one of an attempt that has
        // ended or of a run that has (a duplicate delivery, a late
        // report): the run shows what ran. Only the live attempt of a live
        // run changes state.
        self.note_execution(&event);
        if self.state.status.is_terminal() {
            return;
        }
        match event {
            Event::Admitted { decisions, .. } => {
                if self.state.status == RunStatus::Pending {
                    self.state.admission.extend(decisions);
                }
            }
            Event::ChildOf { parent, .. } => {
                if self.state.status == RunStatus::Pending {
                    self.state.parent = Some(parent);
                }
            }
            Event::Queued { spot, .. } => {
                if self.state.status == RunStatus::Pending {
                    self.state.queue = Some(spot);
                }
            }
            Event::Waiting { reason, .. } => {
                if self.state.status == RunStatus::Pending {
                    self.state.waiting = Some(super::bounded_text(&reason, super::MAX_TEXT_BYTES));
                }
            }
            Event::Started { at } => {
                if self.state.status != RunStatus::Pending {
                    return;
                }
                self.state.waiting = None;
                self.state.status = RunStatus::Running;
                self.state.started_at = Some(at);
                self.arm_run_deadline();
                let exit = self.exit_step();
                self.ready.extend((0..self.state.steps.len()).filter(|&i| {
                    self.state.steps[i].waiting_on == 0
                        && !self.state.steps[i].status.is_terminal()
                        && Some(i) != exit
                }));
                self.drain(at);
            }
            Event::StepReused {
                step,
                from,
                outputs,
                artifacts,
                at,
            } => {
                let Some(si) = self.state.step_index(&step) else {
                    return;
                };
                if self.state.status != RunStatus::Pending
                    || self.state.steps[si].status.is_terminal()
                {
                    return;
                }
                self.state.steps[si].outputs = Some(outputs);
                self.state.steps[si].artifacts = artifacts;
                self.state.steps[si].started_at = Some(at);
                self.state.steps[si].reused_from = Some(from);
                self.close_step(si, StepStatus::Succeeded, at);
                // Dependents start with `Started`, not now.
                self.ready.clear();
            }
            Event::TaskStarted {
                task,
                attempt,
                worker,
                at,
                ..
            } => {
                if let Some((_, (si, ti))) = self.current(&task, attempt) {
                    let t = &mut self.state.steps[si].tasks[ti];
                    if t.status == TaskStatus::Queued {
                        t.status = TaskStatus::Running;
                    }
                    if let Some(a) = t.attempts.last_mut() {
                        a.started_at.get_or_insert(at);
                        a.worker = Some(worker);
                    }
                }
            }
            Event::TaskFinished {
                task,
                attempt,
                outcome,
                at,
                hooks,
                worker,
                ..
            } => {
                if let Some((_, at_idx)) = self.current(&task, attempt) {
                    if let Some(a) = self.state.steps[at_idx.0].tasks[at_idx.1]
                        .attempts
                        .last_mut()
                    {
                        a.hooks = hooks;
                        if !worker.is_empty() {
                            a.worker = Some(worker);
                        }
                    }
                    self.finish_attempt(at_idx, outcome, at);
                    self.drain(at);
                }
            }
            Event::TaskCached {
                task,
                attempt,
                from,
                outputs,
                artifacts,
                at,
            } => {
                if let Some((_, idx)) = self.current(&task, attempt) {
                    if let Some(a) = self.state.steps[idx.0].tasks[idx.1].attempts.last_mut() {
                        a.started_at.get_or_insert(at);
                        a.cached_from = Some(from);
                    }
                    self.finish_attempt(idx, Outcome::Succeeded { outputs, artifacts }, at);
                    self.drain(at);
                }
            }
            Event::Decided {
                task,
                attempt,
                by,
                approved,
                inputs,
                comment,
                at,
            } => self.decide(&task, attempt, by, approved, &inputs, comment, at),
            Event::DeadlinePassed { task, attempt, at } => {
                if let Some((_, idx)) = self.current(&task, attempt) {
                    let spec = &self.state.plan.workflow.steps[idx.0];
                    // A wait nobody ended is not tried again.
                    let retryable = !matches!(spec.action, StepAction::Approve { .. });
                    let reason = if let StepAction::Approve { spec } = &spec.action {
                        format!(
                            "nobody approved or rejected it within {} (`approve.timeout`)",
                            crate::spec::units::format_duration(spec.timeout.unwrap_or_default())
                        )
                    } else {
                        let timeout = spec.timeout.unwrap_or_default();
                        self.actions.push(Action::Abort { task, attempt });
                        format!(
                            "timed out after {}",
                            crate::spec::units::format_duration(timeout)
                        )
                    };
                    self.finish_attempt(
                        idx,
                        Outcome::Failed {
                            reason,
                            exit_code: None,
                            retryable,
                            kind: FailureKind::Timeout,
                        },
                        at,
                    );
                    self.drain(at);
                }
            }
            Event::RetryDue { task, attempt, at } => {
                let Some(si) = self.state.step_index(&task.step) else {
                    return;
                };
                let ti = task.index.unwrap_or(0) as usize;
                let ok = self.state.steps[si].tasks.get(ti).is_some_and(|t| {
                    t.status == TaskStatus::RetryWaiting && t.attempt() + 1 == attempt
                });
                if ok {
                    self.dispatch(si, ti, at);
                    self.drain(at);
                }
            }
            Event::CancelRequested { reason, at } => self.cancel(reason, at),
            Event::RunTimedOut { at } => self.time_out(at),
        }
    }

    /// Where a task is, whatever its state.
    pub(super) fn locate(&self, task: &TaskId) -> Option<(usize, usize)> {
        let si = self.state.step_index(&task.step)?;
        let step = &self.state.steps[si];
        let ti = match (step.fan_out, task.index) {
            (true, Some(i)) => i as usize,
            (false, None) => 0,
            _ => return None,
        };
        (ti < step.tasks.len()).then_some((si, ti))
    }

    /// The task's indices if `attempt` is its live attempt (queued or running).
    fn current(&self, task: &TaskId, attempt: u32) -> Option<((), (usize, usize))> {
        let si = self.state.step_index(&task.step)?;
        let ti = task.index.unwrap_or(0) as usize;
        let t = self.state.steps[si].tasks.get(ti)?;
        (matches!(
            t.status,
            TaskStatus::Queued | TaskStatus::Running | TaskStatus::AwaitingApproval
        ) && t.attempt() == attempt)
            .then_some(((), (si, ti)))
    }

    pub(super) fn finish_attempt(
        &mut self,
        (si, ti): (usize, usize),
        outcome: Outcome,
        at: Millis,
    ) {
        let outcome = self.within_artifact_limit(outcome);
        let policy = self.state.plan.workflow.steps[si].retries;
        let task = &mut self.state.steps[si].tasks[ti];
        let record = task
            .attempts
            .last_mut()
            .expect("a live task has an attempt");
        record.finished_at = Some(at);
        match outcome {
            Outcome::Succeeded { outputs, artifacts } => {
                record.error = Some(String::new());
                let ran = record.cached_from.is_none();
                task.status = TaskStatus::Succeeded;
                task.artifacts = artifacts;
                task.outputs = Some(if outputs.is_null() {
                    json!({})
                } else {
                    outputs
                });
                if ran {
                    self.save_to_cache(si, ti);
                }
            }
            Outcome::Failed {
                reason,
                exit_code,
                retryable,
                kind,
            } => {
                record.error = Some(reason);
                record.error_kind = kind;
                record.exit_code = exit_code;
                let attempt = record.number;
                if retryable && attempt <= policy.limit {
                    task.status = TaskStatus::RetryWaiting;
                    let id = task.id.clone();
                    let seed = format!("{}/{}", self.state.run_id, id);
                    let delay = retry_delay(&policy, attempt + 1, &seed);
                    self.actions.push(Action::ScheduleRetry {
                        task: id,
                        attempt: attempt + 1,
                        delay,
                    });
                    return;
                }
                task.status = TaskStatus::Failed;
            }
        }
        if self.slots(si) != usize::MAX {
            self.freed.push_back(si);
        }
        let step = &mut self.state.steps[si];
        step.open_tasks -= 1;
        if step.open_tasks == 0 {
            let failed = step.tasks.iter().any(|t| t.status == TaskStatus::Failed);
            let outputs = if step.fan_out {
                Json::Array(
                    step.tasks
                        .iter()
                        .map(|t| t.outputs.clone().unwrap_or(Json::Null))
                        .collect(),
                )
            } else {
                step.artifacts = step.tasks[0].artifacts.clone();
                step.tasks[0].outputs.clone().unwrap_or_else(|| json!({}))
            };
            step.outputs = Some(outputs);
            self.close_step(
                si,
                if failed {
                    StepStatus::Failed
                } else {
                    StepStatus::Succeeded
                },
                at,
            );
        }
    }

    /// Marks a step finished and releases its dependents.
    fn close_step(&mut self, si: usize, status: StepStatus, at: Millis) {
        let step = &mut self.state.steps[si];
        step.status = status;
        step.finished_at = Some(at);
        self.state.open_steps -= 1;
        if status == StepStatus::Failed && !self.state.plan.workflow.steps[si].continue_on_error {
            self.state.failed_steps += 1;
        }
        let id = self.state.plan.workflow.steps[si].id.clone();
        let plan = self.state.plan.clone();
        let mut dependents: Vec<usize> = plan.dag.dependents(si).collect();
        // File order, so siblings start in the order they are written.
        dependents.sort_unstable();
        let tolerated = status == StepStatus::Failed && plan.workflow.steps[si].continue_on_error;
        for d in dependents {
            let any = plan.workflow.steps[d].needs_any.contains(&id);
            let dep = &mut self.state.steps[d];
            if status != StepStatus::Succeeded && !tolerated && !any && dep.blocked_by.is_none() {
                dep.blocked_by = Some(id.clone());
            }
            dep.waiting_on -= 1;
            if dep.waiting_on == 0 {
                self.ready.push_back(d);
            }
        }
    }

    /// Activates ready steps and fills freed slots until none is left;
    /// joins cascade without recursion.
    pub(super) fn drain(&mut self, at: Millis) {
        loop {
            if let Some(si) = self.ready.pop_front() {
                self.activate(si, at);
            } else if let Some(si) = self.freed.pop_front() {
                self.fill_slots(si, at);
            } else if self.state.status == RunStatus::Running && self.state.open_steps == 1 {
                // Only the on-exit step, if any, is left: its turn.
                if !self.begin_exit(None) {
                    break;
                }
            } else {
                break;
            }
        }
        if self.state.open_steps == 0 && !self.state.status.is_terminal() {
            self.state.status = match self.state.exiting {
                Some(stopped @ (RunStatus::Cancelled | RunStatus::Failed)) => stopped,
                _ if self.any_failed() => RunStatus::Failed,
                _ => RunStatus::Succeeded,
            };
            self.state.finished_at = Some(at);
            self.actions.push(Action::Finished {
                status: self.state.status,
            });
        }
    }

    fn activate(&mut self, si: usize, at: Millis) {
        let plan = self.state.plan.clone();
        let spec = &plan.workflow.steps[si];
        self.state.steps[si].started_at = Some(at);
        if let Some(up) = self.state.steps[si].blocked_by.clone() {
            self.state.steps[si].skip = Some(SkipReason::Upstream(up));
            return self.close_step(si, StepStatus::Skipped, at);
        }
        if let Some(when) = &spec.when {
            let vars = self.variables(si, None);
            match Condition::compile(&when.value)
                .map_err(|e| e.message)
                .and_then(|c| c.evaluate(&vars))
            {
                Ok(true) => {}
                Ok(false) => {
                    self.state.steps[si].skip = Some(SkipReason::Condition(when.value.clone()));
                    return self.close_step(si, StepStatus::Skipped, at);
                }
                Err(e) => {
                    return self.fail_step(si, format!("`when` could not be evaluated: {e}"), at)
                }
            }
        }
        let items: Vec<Option<Json>> = match &spec.for_each {
            None => vec![None],
            Some(ForEach::Items(items)) => items.iter().cloned().map(Some).collect(),
            Some(ForEach::Template(t)) => {
                let value = Template::parse(&t.value)
                    .map_err(|e| e.message)
                    .and_then(|tpl| tpl.evaluate(&|p| self.lookup(si, None, p)));
                match value {
                    Ok(Json::Array(items)) => items.into_iter().map(Some).collect(),
                    Ok(other) => {
                        return self.fail_step(
                            si,
                            format!("`for-each` must give a list, but `{}` is {other}", t.value),
                            at,
                        )
                    }
                    Err(e) => return self.fail_step(si, format!("`for-each`: {e}"), at),
                }
            }
        };
        let limits = self.state.limits;
        if items.len() > limits.max_tasks_per_step as usize {
            return self.fail_step(
                si,
                format!(
                    "`for-each` gave {} items; a step may have at most {} tasks (`[orchestrator] max-tasks-per-step`)",
                    items.len(),
                    limits.max_tasks_per_step
                ),
                at,
            );
        }
        if self.state.tasks as usize + items.len() > limits.max_tasks_per_run as usize {
            return self.fail_step(
                si,
                format!(
                    "its {} tasks would take the run past {} tasks (`[orchestrator] max-tasks-per-run`)",
                    items.len(),
                    limits.max_tasks_per_run
                ),
                at,
            );
        }
        self.state.tasks += items.len() as u32;
        let step = &mut self.state.steps[si];
        step.status = StepStatus::Running;
        step.open_tasks = items.len();
        step.tasks = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| TaskState {
                id: TaskId::new(&spec.id, spec.for_each.as_ref().map(|_| i as u32)),
                item,
                status: TaskStatus::Waiting,
                attempts: Vec::new(),
                outputs: None,
                artifacts: Default::default(),
            })
            .collect();
        if step.tasks.is_empty() {
            step.outputs = Some(Json::Array(Vec::new()));
            return self.close_step(si, StepStatus::Succeeded, at);
        }
        self.fill_slots(si, at);
    }
    fn fail_step(&mut self, si: usize, error: String, at: Millis) {
        // It can quote a value (a `for-each` that is not a list): bounded.
        self.state.steps[si].error = Some(super::bounded_text(&error, super::MAX_TEXT_BYTES));
        self.close_step(si, StepStatus::Failed, at);
    }

    /// Starts the next attempt of a task: joins finish at once, others become jobs.
    pub(super) fn dispatch(&mut self, si: usize, ti: usize, at: Millis) {
        let plan = self.state.plan.clone();
        let spec = &plan.workflow.steps[si];
        let task = &mut self.state.steps[si].tasks[ti];
        let attempt = task.attempt() + 1;
        task.status = TaskStatus::Queued;
        task.attempts.push(AttemptRecord {
            number: attempt,
            queued_at: at,
            started_at: None,
            finished_at: None,
            worker: None,
            error: None,
            error_kind: FailureKind::Other,
            exit_code: None,
            hooks: Vec::new(),
            executions: Vec::new(),
            cached_from: None,
        });
        if spec.action == StepAction::Join {
            task.attempts[0].started_at = Some(at);
            return self.finish_attempt(
                (si, ti),
                Outcome::Succeeded {
                    outputs: json!({}),
                    artifacts: Default::default(),
                },
                at,
            );
        }
        if let StepAction::Approve { .. } = &spec.action {
            // Handed to people, not to a worker: it waits, holding nothing.
            task.status = TaskStatus::AwaitingApproval;
            if let Some(a) = task.attempts.last_mut() {
                a.started_at = Some(at);
            }
            if let Some(deadline) = super::approval::approval_deadline(spec, task) {
                self.actions.push(Action::ArmApprovalTimeout {
                    task: task.id.clone(),
                    attempt,
                    at: deadline,
                });
            }
            return;
        }
        let task_id = task.id.clone();
        let item = task.item.clone();
        match self.job(si, item.as_ref(), task_id.clone(), attempt) {
            Ok(job) => {
                if let Some(after) = spec.timeout {
                    self.actions.push(Action::ArmDeadline {
                        task: task_id,
                        attempt,
                        after,
                    });
                }
                if let StepAction::Workflow { .. } = &job.action {
                    return self.start_child((si, ti), job, at);
                }
                self.send(si, item.as_ref(), job);
            }
            Err(reason) => self.finish_attempt(
                (si, ti),
                Outcome::Failed {
                    reason,
                    exit_code: None,
                    retryable: false,
                    kind: FailureKind::Policy,
                },
                at,
            ),
        }
    }
}
