//! A run's states without tasks and attempts: what a live page needs on
//! every change (`GET /api/runs/{id}/states`).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use weft_core::ports::RunRecord;
use weft_core::run::RunState;

use super::{resolved_plugins, running_at, FailedAt, ResolvedPluginView, RunFlow, RunSummary};

/// A run's states without tasks and attempts: what a live page needs on
/// every change (`GET /api/runs/{id}/states`), small even for 5,000 steps.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunStates {
    #[serde(flatten)]
    pub run: RunSummary,
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, Json>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<ResolvedPluginView>,
    /// What the server's admission plugins decided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub admission: Vec<weft_core::admission::AdmissionDecision>,
    /// Where the run stands in flow control: its key, why it waits, its parent.
    #[serde(flatten)]
    pub flow: RunFlow,
    /// Its first failed task (see `RunView::failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedAt>,
    pub steps: Vec<StepState>,
}

/// One step's state, timings and task counts.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepState {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: String,
    pub fan_out: bool,
    /// When it became ready (its needs done).
    pub started_at: Option<u64>,
    /// When its first attempt started running: before it, it waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// Tasks by state.
    pub counts: std::collections::BTreeMap<String, usize>,
}

impl RunStates {
    pub fn new(record: &RunRecord, state: &RunState) -> Self {
        let specs = &state.plan.workflow.steps;
        let steps = state
            .steps
            .iter()
            .zip(specs)
            .map(|(s, spec)| StepState {
                id: spec.id.clone(),
                name: spec.name.clone(),
                status: s.status.as_str().into(),
                fan_out: s.fan_out,
                started_at: s.started_at,
                running_at: running_at(s),
                finished_at: s.finished_at,
                counts: task_counts(s),
            })
            .collect();
        let mut run = RunSummary::from(record);
        run.status = state.status.as_str().into();
        Self {
            run,
            params: record.params.clone(),
            plugins: resolved_plugins(record),
            admission: state.admission.clone(),
            flow: RunFlow::of(state),
            failed: FailedAt::of(state),
            steps,
        }
    }
}

/// One word for a group of steps (the dashboard's `groupStatus` says the
/// same): their status if they share one; `running` while any runs; then
/// `failed`, `cancelled`; `running` while some are done and others wait;
/// `succeeded` for succeeded and skipped ones.
pub(super) fn group_status<'a>(statuses: &[&'a str]) -> &'a str {
    let any = |wanted: &[&str]| statuses.iter().any(|s| wanted.contains(s));
    match statuses {
        [first, rest @ ..] if rest.iter().all(|s| s == first) => first,
        _ if any(&["running"]) => "running",
        _ if any(&["failed"]) => "failed",
        _ if any(&["cancelled"]) => "cancelled",
        _ if any(&["pending", "waiting"]) => "running",
        _ => "succeeded",
    }
}

pub(super) fn task_counts(
    step: &weft_core::run::StepState,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for t in &step.tasks {
        *counts.entry(t.status.as_str().to_string()).or_insert(0) += 1;
    }
    counts
}
