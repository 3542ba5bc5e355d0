//! `workflow = { name, version, params }`: a step that runs a saved
//! workflow as a child run. The child's outputs (its `[workflow] outputs`
//! step's, or every step's by id) become the step's; it fails when the
//! child does not succeed; cancelling the parent cancels the child.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::parse::{is_name, Parser, Value};

const KEYS: &[&str] = &["name", "version", "params"];
/// Most sub-workflows deep a run may be started: A runs B runs A… stops.
pub const MAX_DEPTH: u32 = 8;

/// A sub-workflow step's action. Its `params` are templates as written,
/// rendered (over the parent's params and upstream outputs) in a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubWorkflow {
    /// The saved workflow to run.
    pub name: String,
    /// Which saved version; the latest when the step starts, if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Parameter overrides for the child, as `--param` gives them.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// Where a child run reports its end: its parent's task and attempt, and
/// how deep it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    pub run: String,
    pub task: crate::run::TaskId,
    pub attempt: u32,
    /// 1 for a child of a top-level run.
    pub depth: u32,
}

/// `[workflow] outputs` names a step; no step runs the workflow itself.
pub(super) fn check(workflow: &super::Workflow) -> Vec<crate::diagnostic::Diagnostic> {
    use crate::diagnostic::Diagnostic;
    let mut diags = Vec::new();
    if let Some(outputs) = &workflow.outputs {
        if workflow.step(&outputs.value).is_none() {
            diags.push(
                Diagnostic::at(
                    outputs.span.clone(),
                    format!("`outputs` names `{}`, which is not a step", outputs.value),
                )
                .with_label("no such step"),
            );
        }
    }
    for step in &workflow.steps {
        if let super::StepAction::Workflow { spec } = &step.action {
            if spec.name == workflow.name {
                diags.push(
                    Diagnostic::at(
                        step.span.clone(),
                        format!(
                            "step `{}` runs workflow `{}`, which is this workflow: it would start itself for ever",
                            step.id, spec.name
                        ),
                    )
                    .with_label("a sub-workflow cycle"),
                );
            }
        }
    }
    diags
}

impl Parser {
    /// The step's `workflow` table (its strings are checked as templates
    /// with the step's other action texts).
    pub(super) fn sub_workflow(&mut self, v: &Value) -> Option<SubWorkflow> {
        let t = self.table(v, "`workflow`")?;
        self.check_keys(t, KEYS, "a step's `workflow`");
        let Some(name) = t.get("name") else {
            self.error(
                v.span(),
                "a step's `workflow` needs `name`",
                "no `name` here",
            );
            return None;
        };
        let name = self.string(name, "`workflow.name`")?;
        if !is_name(&name.value) {
            self.error(
                name.span,
                format!("`{}` is not a workflow name", name.value),
                "bad name",
            );
            return None;
        }
        let version = match t.get("version") {
            Some(n) => Some(self.integer_in(n, "`workflow.version`", 1, u32::MAX.into())? as u32),
            None => None,
        };
        let mut params = BTreeMap::new();
        if let Some(p) = t.get("params") {
            let table = self.table(p, "`workflow.params`")?;
            for (key, value) in table.iter() {
                let text = match self.json(value, "a parameter")? {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                params.insert(key.get_ref().to_string(), text);
            }
        }
        Some(SubWorkflow {
            name: name.value,
            version,
            params,
        })
    }
}
