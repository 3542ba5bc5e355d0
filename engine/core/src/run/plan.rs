//! A workflow prepared for running: the parsed spec plus its DAG.

use std::sync::Arc;

use crate::dag::Dag;
use crate::spec::Workflow;

/// Immutable, shared by every state of runs of one workflow.
#[derive(Debug)]
pub struct Plan {
    pub workflow: Workflow,
    pub dag: Dag,
}

impl Plan {
    pub fn new(workflow: Workflow) -> Arc<Self> {
        let dag = Dag::new(workflow.steps.iter().map(|s| {
            (
                s.id.as_str(),
                s.needs.iter().map(|n| n.value.as_str()).collect(),
            )
        }));
        Arc::new(Self { workflow, dag })
    }
}
