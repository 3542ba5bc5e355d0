//! Where a run failed and how a step's time splits: the first failed task,
//! named (so a page opens on it and a summary can say which of 2,000 tasks
//! it was), a `for-each` item as a short label, and when a step's first
//! attempt started running (its wait for a worker shown apart from its run).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use weft_core::run::{RunState, StepStatus, TaskStatus};

/// The longest item label, in characters.
const ITEM_LABEL_CHARS: usize = 60;

/// The first task that failed (by when it ended), preferring those that
/// failed the run over steps that may fail (`continue-on-error`); or a
/// step that failed before any task ran (a bad `for-each`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailedAt {
    pub step: String,
    /// `step`, or `step[250]` for a task of a fan-out.
    pub task: String,
    /// Its last attempt; absent when the step failed before any task ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The `for-each` item, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FailedAt {
    pub fn of(state: &RunState) -> Option<Self> {
        let specs = &state.plan.workflow.steps;
        let mut best: Option<((bool, u64), FailedAt)> = None;
        let mut consider = |rank: (bool, u64), at: FailedAt| {
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                best = Some((rank, at));
            }
        };
        for (step, spec) in state.steps.iter().zip(specs) {
            let may_fail = spec.continue_on_error;
            let mut any_task = false;
            for task in step.tasks.iter().filter(|t| t.status == TaskStatus::Failed) {
                any_task = true;
                let last = task.attempts.last();
                consider(
                    (
                        may_fail,
                        last.and_then(|a| a.finished_at).unwrap_or(u64::MAX),
                    ),
                    FailedAt {
                        step: spec.id.clone(),
                        task: task.id.to_string(),
                        attempt: last.map(|a| a.number),
                        item: task.item.as_ref().map(item_label),
                        error: last.and_then(|a| a.error.clone()).filter(|e| !e.is_empty()),
                    },
                );
            }
            if !any_task && step.status == StepStatus::Failed {
                consider(
                    (may_fail, step.finished_at.unwrap_or(u64::MAX)),
                    FailedAt {
                        step: spec.id.clone(),
                        task: spec.id.clone(),
                        attempt: None,
                        item: None,
                        error: step.error.clone(),
                    },
                );
            }
        }
        best.map(|(_, at)| at)
    }
}

/// A `for-each` item as a short label: a string as it is, anything else as
/// compact JSON, cut at [`ITEM_LABEL_CHARS`].
pub fn item_label(item: &Json) -> String {
    let text = match item {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() <= ITEM_LABEL_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(ITEM_LABEL_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// When the step's first attempt started running: from the step becoming
/// ready (`started_at`) to this it waited for a slot or a worker.
pub fn running_at(step: &weft_core::run::StepState) -> Option<u64> {
    step.tasks
        .iter()
        .filter_map(|t| t.attempts.iter().filter_map(|a| a.started_at).min())
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_items_label_is_short_and_plain() {
        assert_eq!(item_label(&json!("eu-west")), "eu-west");
        assert_eq!(item_label(&json!({"a": 1})), r#"{"a":1}"#);
        let long = item_label(&json!("x".repeat(500)));
        assert_eq!(long.chars().count(), ITEM_LABEL_CHARS);
        assert!(long.ends_with('…'));
    }
}
