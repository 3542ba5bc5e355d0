//! Retrying a run: which steps of an earlier run a new run may reuse.

use serde_json::Value as Json;

use super::event::{Event, Millis};
use super::state::{RunState, StepStatus};

/// The `StepReused` events that start a retry of `previous`: every step
/// that succeeded there, except `from` (a step id to run again from) and
/// everything downstream of it.
pub fn reuse_events(
    previous: &RunState,
    from: Option<&str>,
    at: Millis,
) -> Result<Vec<Event>, String> {
    let dag = &previous.plan.dag;
    let redo = match from {
        Some(id) => Some(
            dag.index_of(id)
                .ok_or_else(|| format!("run {} has no step `{id}`", previous.run_id))?,
        ),
        None => None,
    };
    let mut events = Vec::new();
    let on_exit = previous.plan.workflow.on_exit.as_ref();
    for (i, step) in previous.steps.iter().enumerate() {
        let downstream_of_redo = redo.is_some_and(|r| r == i || dag.is_upstream(r, i));
        // The on-exit step runs again at the end of every run.
        let exit = on_exit.is_some_and(|e| e.value == previous.plan.workflow.steps[i].id);
        if step.status == StepStatus::Succeeded && !downstream_of_redo && !exit {
            events.push(Event::StepReused {
                step: previous.plan.workflow.steps[i].id.clone(),
                from: previous.run_id.clone(),
                outputs: step
                    .outputs
                    .clone()
                    .unwrap_or(Json::Object(Default::default())),
                artifacts: step.artifacts.clone(),
                at,
            });
        }
    }
    Ok(events)
}
