//! A run's state: per step and per task (step instance), with attempts.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::event::{Millis, TaskId};
use super::plan::Plan;
use crate::plugins::ResolvedPlugin;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Some needs are not finished.
    Waiting,
    /// Tasks are queued, running or waiting to retry.
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, StepStatus::Waiting | StepStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Waiting => "waiting",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// `when` was false.
    Condition(String),
    /// A need failed, was skipped or was cancelled.
    Upstream(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Condition(c) => write!(f, "`when` is false: {c}"),
            SkipReason::Upstream(s) => write!(f, "upstream step `{s}` did not succeed"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Not handed on yet: its step runs at most `max-parallel` instances
    /// at once, and this one waits for a slot.
    Waiting,
    /// Handed to the queue, not yet started by a worker.
    Queued,
    /// An approval step's attempt: waiting for a person's decision, on no
    /// worker.
    AwaitingApproval,
    Running,
    /// Failed; the next attempt waits for its backoff.
    RetryWaiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Waiting => "waiting",
            TaskStatus::Queued => "queued",
            TaskStatus::AwaitingApproval => "awaiting-approval",
            TaskStatus::Running => "running",
            TaskStatus::RetryWaiting => "retry-waiting",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

/// One execution of an attempt by a worker. An attempt normally has one;
/// it has more when at-least-once delivery ran it again (its worker died
/// after running it and before recording it, or lost its claim while the
/// store was unreachable), and each is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub worker: String,
    /// The claim token that told it apart (0 when unknown).
    pub token: u64,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// `None` until it ends; `""` when it succeeded, else why it failed.
    pub error: Option<String>,
}

/// One attempt of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub number: u32,
    pub queued_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub worker: Option<String>,
    /// `None` while running; the failure reason, or `""` on success.
    pub error: Option<String>,
    /// What kind of failure `error` is (`Other` while running or on success).
    pub error_kind: super::FailureKind,
    pub exit_code: Option<i32>,
    /// The plugin hooks that ran around it.
    pub hooks: Vec<super::HookRun>,
    /// Every execution a worker reported, in the order first heard of.
    pub executions: Vec<Execution>,
    /// Not run: the result was reused from an earlier run.
    pub cached_from: Option<crate::cache::CachedFrom>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub id: TaskId,
    pub item: Option<Json>,
    pub status: TaskStatus,
    pub attempts: Vec<AttemptRecord>,
    pub outputs: Option<Json>,
    /// What its succeeded attempt left.
    pub artifacts: crate::artifacts::Artifacts,
}

impl TaskState {
    pub fn attempt(&self) -> u32 {
        self.attempts.last().map_or(0, |a| a.number)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepState {
    pub status: StepStatus,
    /// Needs not yet finished.
    pub(super) waiting_on: usize,
    /// The first need that did not succeed, if any.
    pub(super) blocked_by: Option<String>,
    pub tasks: Vec<TaskState>,
    /// Tasks not yet finished.
    pub(super) open_tasks: usize,
    pub skip: Option<SkipReason>,
    /// Why the step failed before any task ran (bad `when`, bad `for-each`).
    pub error: Option<String>,
    /// For a `for-each` step, the list of instance outputs; else the task's outputs.
    pub outputs: Option<Json>,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub fan_out: bool,
    /// Set when a retry took this step's outputs from an earlier run.
    pub reused_from: Option<String>,
    /// What it left for later steps (a step that is not `for-each`).
    pub artifacts: crate::artifacts::Artifacts,
}

/// Everything known about one run.
#[derive(Debug, Clone)]
pub struct RunState {
    pub run_id: String,
    pub plan: Arc<Plan>,
    pub params: Map<String, Json>,
    /// Set when the params are too big to carry in every job: their
    /// digest, which the jobs carry instead (see [`super::INLINE_PARAMS_BYTES`]).
    pub shared_params: Option<crate::artifacts::Digest>,
    pub status: RunStatus,
    pub steps: Vec<StepState>,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// Steps not yet finished.
    pub(super) open_steps: usize,
    /// Steps that failed and may not (`continue-on-error` apart): what
    /// `run.failed` and the run's end read, counted as steps close rather
    /// than by a scan of every step for every job built.
    pub(super) failed_steps: usize,
    pub cancel_reason: Option<String>,
    /// Set once the run's `on-exit` step is started: the status the run
    /// ended with before it (`Succeeded` or `Failed` when its other steps
    /// are done, `Cancelled`, or `Failed` by its timeout).
    pub exiting: Option<RunStatus>,
    /// The exact plugin each reference of the workflow resolved to at submit.
    pub plugins: BTreeMap<String, ResolvedPlugin>,
    /// What the run may grow to; set before any event is applied.
    pub limits: super::RunLimits,
    /// The policy the run was admitted under, if the server has one.
    pub policy: Option<Arc<crate::policy::RunPolicy>>,
    /// What the run chose about the cache (`--no-cache`, `--refresh`).
    pub cache: crate::cache::RunCacheChoice,
    /// Its priority (from its record): its jobs' band in their pools' queues.
    pub priority: i32,
    /// What admission plugins decided (from the `Admitted` event); their
    /// patches change every job built.
    pub admission: Vec<crate::admission::AdmissionDecision>,
    /// Its concurrency key's line (from the `Queued` event): it starts
    /// only once it holds a slot.
    pub queue: Option<crate::concurrency::QueueSpot>,
    /// Why it has not started yet, while it waits for a slot.
    pub waiting: Option<String>,
    /// The run and step it is a sub-workflow of (from `ChildOf`).
    pub parent: Option<crate::spec::sub_workflow::ParentRef>,
    /// Tasks its steps have so far.
    pub(super) tasks: u32,
}

impl RunState {
    pub fn new(run_id: impl Into<String>, plan: Arc<Plan>, params: Map<String, Json>) -> Self {
        let steps = (0..plan.workflow.steps.len())
            .map(|i| StepState {
                status: StepStatus::Waiting,
                waiting_on: plan.dag.needs(i).count(),
                blocked_by: None,
                tasks: Vec::new(),
                open_tasks: 0,
                skip: None,
                error: None,
                outputs: None,
                started_at: None,
                finished_at: None,
                fan_out: plan.workflow.steps[i].for_each.is_some(),
                reused_from: None,
                artifacts: Default::default(),
            })
            .collect::<Vec<_>>();
        Self {
            run_id: run_id.into(),
            open_steps: steps.len(),
            failed_steps: 0,
            plan,
            shared_params: super::shared_params_digest(&params),
            params,
            status: RunStatus::Pending,
            steps,
            started_at: None,
            finished_at: None,
            cancel_reason: None,
            exiting: None,
            plugins: BTreeMap::new(),
            limits: super::RunLimits::default(),
            policy: None,
            cache: Default::default(),
            priority: 0,
            admission: Vec::new(),
            queue: None,
            waiting: None,
            parent: None,
            tasks: 0,
        }
    }

    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.plan.dag.index_of(id)
    }

    pub fn task(&self, id: &TaskId) -> Option<&TaskState> {
        let step = &self.steps[self.step_index(&id.step)?];
        // An instance index is required exactly for for-each steps.
        match (step.fan_out, id.index) {
            (true, Some(i)) => step.tasks.get(i as usize),
            (false, None) => step.tasks.first(),
            _ => None,
        }
    }

    /// Why the run failed, in one line, if it did.
    pub fn failure_summary(&self) -> Option<String> {
        if self.status != RunStatus::Failed {
            return None;
        }
        let failed: Vec<String> = self
            .steps
            .iter()
            .enumerate()
            // A step that may fail did not fail the run.
            .filter(|(i, s)| {
                s.status == StepStatus::Failed && !self.plan.workflow.steps[*i].continue_on_error
            })
            .map(|(i, s)| {
                let id = &self.plan.workflow.steps[i].id;
                let reason = s.error.clone().or_else(|| {
                    s.tasks
                        .iter()
                        .find(|t| t.status == TaskStatus::Failed)
                        .and_then(|t| t.attempts.last())
                        .and_then(|a| a.error.clone())
                });
                format!("{id}: {}", reason.unwrap_or_else(|| "failed".into()))
            })
            .collect();
        if failed.is_empty() {
            // Failed by a limit of its own (`[workflow] timeout`).
            return self.cancel_reason.clone();
        }
        Some(super::bounded_text(
            &failed.join("; "),
            super::MAX_TEXT_BYTES,
        ))
    }
}

impl RunState {
    /// Rebuilds a run's state from its event log, under the limits it ran with.
    /// A run's state from its record and its events, under the limits,
    /// policy and plugins it was recorded with (as its first driver had them).
    pub fn of_record(
        record: &crate::ports::RunRecord,
        plan: Arc<Plan>,
        events: impl IntoIterator<Item = super::Event>,
    ) -> Self {
        let mut state = Self::new(record.id.clone(), plan, record.params.clone());
        state.limits = record.limits;
        state.policy = record.policy.clone().map(Arc::new);
        state.plugins = record.plugins.clone();
        state.cache = record.cache.clone();
        state.priority = record.priority;
        for event in events {
            super::apply(&mut state, event);
        }
        state
    }

    pub fn replay(
        run_id: impl Into<String>,
        plan: Arc<Plan>,
        params: Map<String, Json>,
        limits: super::RunLimits,
        events: impl IntoIterator<Item = super::Event>,
    ) -> Self {
        let mut state = Self::new(run_id, plan, params);
        state.limits = limits;
        for event in events {
            super::apply(&mut state, event);
        }
        state
    }
}
