//! Sub-workflow steps on a server: starting a step's child run from the
//! saved workflow it names (through the checks a submit has), and refusing
//! at submit a workflow whose saved sub-workflows lead back to it.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use weft_core::ports::Role;
use weft_core::run::ChildStart;
use weft_core::spec::sub_workflow::MAX_DEPTH;
use weft_core::spec::{StepAction, Workflow};

use crate::auth::Caller;
use crate::routes::ApiState;
use crate::Error;

/// What a sub-workflow's run is submitted as.
const SUBMITTER: &str = "sub-workflow of ";

/// Starts child runs for the orchestrator (`weft_orchestrator::ChildRuns`).
pub struct Children {
    api: ApiState,
}

impl Children {
    pub fn new(api: ApiState) -> Self {
        Self { api }
    }
}

#[async_trait::async_trait]
impl weft_orchestrator::ChildRuns for Children {
    async fn start_child(&self, start: &ChildStart) -> Result<(), String> {
        let api = &self.api;
        // Asked again (the parent was taken over): started already; if it
        // has ended, its parent hears of it now.
        if let Ok(Some(record)) = api.store.get_run(&start.run_id).await {
            if record.status.is_terminal() {
                if let Ok(Some((_, state))) =
                    weft_orchestrator::load_run(api.store.as_ref(), &start.run_id).await
                {
                    api.service.tell_parent(&state).await;
                }
            }
            return Ok(());
        }
        let w = &start.workflow;
        let saved = match api.workflows.workflow(&w.name, w.version).await {
            Ok(Some(saved)) => saved,
            Ok(None) => {
                return Err(match w.version {
                    Some(v) => format!("there is no saved workflow {} at version {v}", w.name),
                    None => format!(
                        "there is no saved workflow {} (`weft workflows save`)",
                        w.name
                    ),
                })
            }
            Err(e) => return Err(format!("reading saved workflow {}: {e}", w.name)),
        };
        let caller = Caller {
            role: Role::Operator,
            token_id: None,
            name: Some(format!("{SUBMITTER}{}", start.parent.run)),
        };
        let choices = crate::routes::RunChoices {
            parent: Some(start.parent.clone()),
            // A child goes with its parent's priority.
            priority: start.priority,
            ..Default::default()
        };
        let params = w.params.clone();
        match crate::routes::start_saved(
            api,
            &saved,
            params,
            start.run_id.clone(),
            choices,
            &caller,
        )
        .await
        {
            Ok(_) => Ok(()),
            // Started meanwhile by another server.
            Err(_) if matches!(api.store.get_run(&start.run_id).await, Ok(Some(_))) => Ok(()),
            Err(e) => Err(format!("starting sub-workflow {}: {e}", w.name)),
        }
    }
}

/// 422 if `workflow`'s sub-workflow steps (those naming a workflow, not a
/// template) lead, through the latest saved versions, back to it.
pub async fn refuse_sub_workflow_cycles(api: &ApiState, workflow: &Workflow) -> Result<(), Error> {
    let mut path = vec![workflow.name.clone()];
    let mut seen = BTreeSet::new();
    let mut stack: Vec<(Vec<String>, String)> = named_children(workflow)
        .map(|c| (path.clone(), c))
        .collect();
    while let Some((via, name)) = stack.pop() {
        if name == workflow.name {
            path = via;
            path.push(name);
            return Err(Error::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("a sub-workflow cycle: {}", path.join(" → ")),
            ));
        }
        if via.len() > MAX_DEPTH as usize || !seen.insert(name.clone()) {
            continue;
        }
        let Ok(Some(saved)) = api.workflows.workflow(&name, None).await else {
            continue;
        };
        let Ok(child) = weft_core::spec::load(&saved.source) else {
            continue;
        };
        let mut next = via.clone();
        next.push(name);
        stack.extend(named_children(&child).map(|c| (next.clone(), c)));
    }
    Ok(())
}

/// The workflows `workflow`'s sub-workflow steps name plainly.
fn named_children(workflow: &Workflow) -> impl Iterator<Item = String> + '_ {
    workflow.steps.iter().filter_map(|s| match &s.action {
        StepAction::Workflow { spec } if !spec.name.contains("{{") => Some(spec.name.clone()),
        _ => None,
    })
}
