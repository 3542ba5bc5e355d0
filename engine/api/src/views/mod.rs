//! JSON views of runs, shared by the server (which builds them from the
//! replayed state) and the CLI (which prints them, local or remote).

mod artifacts;
mod cached;
mod failed;
mod secrets;
mod states;
mod submit;
pub use artifacts::ArtifactView;
pub use cached::CachedFromView;
pub use failed::{item_label, running_at, FailedAt};
pub use secrets::{RotatedSecrets, SecretScopeView, SecretView, SetSecret};
use states::{group_status, task_counts};
pub use states::{RunStates, StepState};
pub use submit::{DecisionRequest, SubmitRequest};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use weft_core::plugins::PluginRecord;
use weft_core::ports::RunRecord;
use weft_core::run::{RunState, StepStatus};

/// A run without its workflow text, for lists.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub workflow: String,
    pub file: String,
    pub status: String,
    pub created_at: u64,
    pub finished_at: Option<u64>,
    pub summary: Option<String>,
    /// Who asked for it: the API token's name, or the local user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    /// `--priority` (`-1000` to `1000`, higher first): its place in a
    /// concurrency key's line and its jobs' band in their pools' queues.
    /// Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
}

impl RunSummary {
    /// Whether the run has ended (succeeded, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl From<&RunRecord> for RunSummary {
    fn from(r: &RunRecord) -> Self {
        Self {
            id: r.id.clone(),
            workflow: r.workflow.clone(),
            file: r.file.clone(),
            status: r.status.as_str().into(),
            created_at: r.created_at,
            finished_at: r.finished_at,
            summary: r.summary.clone(),
            submitted_by: r.submitted_by.clone(),
            priority: r.priority,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub number: u32,
    pub queued_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub worker: Option<String>,
    /// `None` while running; `""` on success; else why it failed.
    pub error: Option<String>,
    /// For a failure: what kind it was (`exit-code`, `timeout`,
    /// `out-of-memory`, `infrastructure`, `plugin`, `cancelled`, `policy`,
    /// `other`). Absent while running and on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub error_kind: Option<weft_core::run::FailureKind>,
    pub exit_code: Option<i32>,
    /// The plugin hooks that ran around it: phase, plugin, time, error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookView>,
    /// Every execution of the attempt, when there was more than the one
    /// the fields above describe: at-least-once delivery ran it again (its
    /// worker died after running it and before recording it, or lost its
    /// claim while starved or cut off from the store), or a copy ran after
    /// the attempt had ended. Absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executions: Vec<ExecutionView>,
    /// Not run: an earlier run's result with the same cache key was reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<CachedFromView>,
}

/// One execution of an attempt by a worker.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionView {
    pub worker: String,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// `None` while running (or never heard of); `""` on success; else why it failed.
    pub error: Option<String>,
}

impl ExecutionView {
    /// The executions of `a` worth showing beside it (see `AttemptView::executions`).
    fn of(a: &weft_core::run::AttemptRecord) -> Vec<ExecutionView> {
        let unseen = a.executions.len() == 1 && a.started_at.is_none();
        if a.executions.len() < 2 && !unseen {
            return Vec::new();
        }
        a.executions
            .iter()
            .map(|e| ExecutionView {
                worker: e.worker.clone(),
                started_at: e.started_at,
                finished_at: e.finished_at,
                error: e.error.clone(),
            })
            .collect()
    }
}

/// One plugin hook's part in an attempt.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HookView {
    pub phase: String,
    pub plugin: String,
    pub ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskView {
    pub id: String,
    pub status: String,
    /// A `for-each` task's item, shortened: what it worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepView {
    pub id: String,
    /// The step's display name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: String,
    pub fan_out: bool,
    /// When it became ready (its needs done): from here it waited.
    pub started_at: Option<u64>,
    /// When its first attempt started running on a worker: the time
    /// before it was spent waiting for a slot or a worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at: Option<u64>,
    pub finished_at: Option<u64>,
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<Json>,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// The run whose outputs a retry reused for this step.
    #[serde(default)]
    pub reused_from: Option<String>,
    /// For a step of one task: the cached result it reused instead of running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<CachedFromView>,
    /// What it left for later steps, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactView>,
    /// For an approval step: who may decide and what they give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub approval: Option<weft_core::spec::approval::ApprovalSpec>,
    pub tasks: Vec<TaskView>,
}

/// A run with its steps, tasks and attempts.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunView {
    #[serde(flatten)]
    pub run: RunSummary,
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, Json>,
    pub steps: Vec<StepView>,
    /// The exact plugin each reference of the workflow resolved to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<ResolvedPluginView>,
    /// What the server's admission plugins decided, in the order asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub admission: Vec<weft_core::admission::AdmissionDecision>,
    /// Where the run stands in flow control: its key, why it waits, its parent.
    #[serde(flatten)]
    pub flow: RunFlow,
    /// Its first failed task, while running too (a fan-out's failure shows
    /// before the rest end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedAt>,
}

/// What flow control says of a run, in its view and its states alike.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunFlow {
    /// Its concurrency key's line: key, limit, policy, priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub concurrency: Option<weft_core::concurrency::QueueSpot>,
    /// Why it has not started yet (all its key's slots are held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// The run and step it is a sub-workflow of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parent: Option<weft_core::spec::sub_workflow::ParentRef>,
}

impl RunFlow {
    pub fn of(state: &RunState) -> Self {
        Self {
            concurrency: state.queue.clone(),
            waiting: state.waiting.clone(),
            parent: state.parent.clone(),
        }
    }
}

/// A workflow's plugin reference and what the run resolved it to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResolvedPluginView {
    /// As the workflow wrote it, e.g. `redact@^1`.
    pub reference: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// One version of a plugin in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginView {
    pub name: String,
    pub version: String,
    /// `hook` or `step`.
    pub world: String,
    pub sha256: String,
    pub size: u64,
    /// Exported functions, as `interface#function`.
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    pub uploaded_at: u64,
}

impl From<PluginRecord> for PluginView {
    fn from(r: PluginRecord) -> Self {
        Self {
            name: r.name,
            version: r.version,
            world: r.world.as_str().into(),
            sha256: r.sha256,
            size: r.size,
            exports: r.exports,
            imports: r.imports,
            uploaded_at: r.uploaded_at,
        }
    }
}

impl StepView {
    /// Step `i` of `state`, with its tasks and attempts.
    pub fn new(state: &RunState, i: usize) -> Self {
        let s = &state.steps[i];
        let reason = match s.status {
            StepStatus::Skipped => s.skip.as_ref().map(|r| r.to_string()),
            StepStatus::Failed => s.error.clone().or_else(|| {
                s.tasks
                    .iter()
                    .filter_map(|t| t.attempts.last().and_then(|a| a.error.clone()))
                    .find(|e| !e.is_empty())
            }),
            _ => None,
        };
        StepView {
            id: state.plan.workflow.steps[i].id.clone(),
            name: state.plan.workflow.steps[i].name.clone(),
            status: s.status.as_str().into(),
            fan_out: s.fan_out,
            started_at: s.started_at,
            running_at: running_at(s),
            finished_at: s.finished_at,
            outputs: s.outputs.clone(),
            reason,
            reused_from: s.reused_from.clone(),
            approval: match &state.plan.workflow.steps[i].action {
                weft_core::spec::StepAction::Approve { spec } => Some(spec.clone()),
                _ => None,
            },
            cached_from: match (s.fan_out, s.tasks.first()) {
                (false, Some(t)) => t
                    .attempts
                    .last()
                    .and_then(|a| a.cached_from.as_ref())
                    .map(CachedFromView::from),
                _ => None,
            },
            artifacts: ArtifactView::of_step(state, i),
            tasks: s
                .tasks
                .iter()
                .map(|t| TaskView {
                    id: t.id.to_string(),
                    status: t.status.as_str().into(),
                    item: t.item.as_ref().map(item_label),
                    attempts: t
                        .attempts
                        .iter()
                        .map(|a| AttemptView {
                            number: a.number,
                            queued_at: a.queued_at,
                            started_at: a.started_at,
                            finished_at: a.finished_at,
                            worker: a.worker.clone(),
                            error: a.error.clone(),
                            error_kind: a
                                .error
                                .as_deref()
                                .filter(|e| !e.is_empty())
                                .map(|_| a.error_kind),
                            exit_code: a.exit_code,
                            hooks: a
                                .hooks
                                .iter()
                                .map(|h| HookView {
                                    phase: h.phase.clone(),
                                    plugin: h.plugin.clone(),
                                    ms: h.ms,
                                    error: h.error.clone(),
                                })
                                .collect(),
                            executions: ExecutionView::of(a),
                            cached_from: a.cached_from.as_ref().map(CachedFromView::from),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl RunView {
    pub fn new(record: &RunRecord, state: &RunState) -> Self {
        let steps = (0..state.steps.len())
            .map(|i| StepView::new(state, i))
            .collect();
        let mut run = RunSummary::from(record);
        // The replayed state is the truth while the record catches up: a
        // run whose end is in its events but not yet in its record shows
        // its end, and why, as the record will.
        run.status = state.status.as_str().into();
        if state.status.is_terminal() {
            run.finished_at = run.finished_at.or(state.finished_at);
            if run.summary.is_none() {
                run.summary = state
                    .failure_summary()
                    .or_else(|| state.cancel_reason.clone());
            }
        }
        Self {
            run,
            params: record.params.clone(),
            steps,
            plugins: resolved_plugins(record),
            admission: state.admission.clone(),
            flow: RunFlow::of(state),
            failed: FailedAt::of(state),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.run.is_finished()
    }
}

/// `POST /api/tokens` body.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
}

/// A token as the API shows it; `token` (the secret) only when just created.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A saved workflow version; `source` only when one version is asked for.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavedWorkflowView {
    pub name: String,
    pub version: u32,
    pub saved_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// With `source`: its `[params]` and their defaults, whose types a run
    /// form's inputs take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Map<String, Json>>,
}

/// The step graph laid out for drawing (`weft_core::layout`), with each
/// step's state: the dashboard draws it as given.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GraphView {
    pub width: f64,
    pub height: f64,
    pub node_width: f64,
    pub node_height: f64,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

/// One step, or a group of sibling steps: its box's top-left corner, and
/// for a run its state. A fan-out step is one node, `counts` holding its
/// tasks per state; so is a group (at least 20 steps with the same needs
/// and dependents), `members` listing its steps and `counts` their states.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GraphNode {
    pub id: String,
    /// The step's display name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub layer: usize,
    pub x: f64,
    pub y: f64,
    /// `pending` for a workflow that is not running.
    pub status: String,
    pub fan_out: bool,
    /// Tasks by state (fan-out steps have many); a group's steps by state.
    pub counts: std::collections::BTreeMap<String, usize>,
    /// A group's steps (its `id` is `group:` and the first one's id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// An edge from a need to the step that needs it, as a polyline.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub points: Vec<[f64; 2]>,
}

impl GraphView {
    /// The graph of `plan`, with states from `state` when a run is given.
    pub fn new(plan: &weft_core::run::Plan, state: Option<&RunState>) -> Self {
        let grouped = weft_core::layout::layered_grouped(&plan.dag, weft_core::layout::GROUP_MIN);
        let layout = grouped.layout;
        let steps = &plan.workflow.steps;
        let status_of = |i: usize| state.and_then(|s| s.steps.get(i));
        let nodes: Vec<GraphNode> = layout
            .nodes
            .iter()
            .zip(&grouped.members)
            .map(|(place, members)| match members.as_slice() {
                &[i] => {
                    let step = status_of(i);
                    GraphNode {
                        id: steps[i].id.clone(),
                        name: steps[i].name.clone(),
                        layer: place.layer,
                        x: place.x,
                        y: place.y,
                        status: step.map_or("pending", |s| s.status.as_str()).into(),
                        fan_out: step.map_or(steps[i].for_each.is_some(), |s| s.fan_out),
                        counts: step.map(task_counts).unwrap_or_default(),
                        members: Vec::new(),
                    }
                }
                _ => {
                    let statuses: Vec<&str> = members
                        .iter()
                        .map(|&i| status_of(i).map_or("pending", |s| s.status.as_str()))
                        .collect();
                    let mut counts = std::collections::BTreeMap::new();
                    for s in &statuses {
                        *counts.entry(s.to_string()).or_insert(0) += 1;
                    }
                    let (first, last) =
                        (&steps[members[0]].id, &steps[members[members.len() - 1]].id);
                    GraphNode {
                        id: format!("group:{first}"),
                        name: Some(format!("{first} … {last}")),
                        layer: place.layer,
                        x: place.x,
                        y: place.y,
                        status: group_status(&statuses).into(),
                        fan_out: true,
                        counts,
                        members: members.iter().map(|&i| steps[i].id.clone()).collect(),
                    }
                }
            })
            .collect();
        let edges = layout
            .edges
            .into_iter()
            .map(|e| GraphEdge {
                from: nodes[e.from].id.clone(),
                to: nodes[e.to].id.clone(),
                points: e.points.into_iter().map(|(x, y)| [x, y]).collect(),
            })
            .collect();
        Self {
            width: layout.width,
            height: layout.height,
            node_width: weft_core::layout::NODE_WIDTH,
            node_height: weft_core::layout::NODE_HEIGHT,
            nodes,
            edges,
        }
    }
}

/// `POST /api/check` body.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckRequest {
    /// The workflow file's text.
    pub workflow: String,
    /// Its name, for diagnostics. Default: `workflow.toml`.
    #[serde(default)]
    pub file: Option<String>,
}

/// What `POST /api/check` finds: problems with line and column, and the
/// graph when there are none.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckView {
    pub ok: bool,
    pub diagnostics: Vec<DiagnosticView>,
    /// The whole report as `weft check` prints it.
    pub rendered: String,
    pub graph: Option<GraphView>,
}

/// One problem in a workflow file (line and column from 1).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiagnosticView {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

pub(super) fn resolved_plugins(record: &RunRecord) -> Vec<ResolvedPluginView> {
    record
        .plugins
        .iter()
        .map(|(reference, p)| ResolvedPluginView {
            reference: reference.clone(),
            name: p.name.clone(),
            version: p.version.clone(),
            sha256: p.sha256.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
