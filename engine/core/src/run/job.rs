//! Building a task's job: the step's action with its templates rendered
//! against params, upstream outputs and the for-each item, its env, inputs
//! and plugin calls.

use serde_json::{json, Map, Value as Json};

use super::event::{Job, TaskId};
use super::machine::Machine;
use crate::plugins::{hook_call, PluginCall, ResolvedPlugin};
use crate::spec::{Command, StepAction};
use crate::template::{render_json, render_str, Path};

impl Machine<'_> {
    pub(super) fn job(
        &self,
        si: usize,
        item: Option<&Json>,
        task: TaskId,
        attempt: u32,
    ) -> Result<Job, String> {
        let spec = &self.state.plan.workflow.steps[si];
        let lookup = |p: &Path| self.lookup(si, item, p);
        let action = match &spec.action {
            StepAction::Run {
                command: Command::Shell(s),
            } => StepAction::Run {
                command: Command::Shell(render_str(s, &lookup)?),
            },
            StepAction::Run {
                command: Command::Argv(v),
            } => StepAction::Run {
                command: Command::Argv(
                    v.iter()
                        .map(|a| render_str(a, &lookup))
                        .collect::<Result<_, _>>()?,
                ),
            },
            StepAction::Container { spec: container } => StepAction::Container {
                spec: render_json(container, &lookup)?,
            },
            StepAction::Wasm { spec: wasm } => {
                let mut wasm = wasm.clone();
                if let Some(input) = wasm.get("input") {
                    let rendered = render_json(input, &lookup)?;
                    wasm["input"] = rendered;
                }
                StepAction::Wasm { spec: wasm }
            }
            other => other.clone(),
        };
        let step_plugin = match &action {
            StepAction::Wasm { spec: wasm } => wasm_call(wasm, &self.state.plugins),
            _ => None,
        };
        let env = spec
            .env
            .iter()
            .map(|(k, v)| Ok((k.clone(), render_str(&v.value, &lookup)?)))
            .collect::<Result<_, String>>()?;
        let mut inputs = self.variables(si, item);
        inputs.remove("workflow");
        Ok(Job {
            run_id: self.state.run_id.clone(),
            workflow: self.state.plan.workflow.name.clone(),
            task,
            attempt,
            action,
            env,
            inputs: Json::Object(inputs),
            timeout: spec.timeout,
            pool: crate::spec::queue_pool(&spec.pool, &spec.resources),
            resources: spec.resources,
            pre_hooks: spec
                .hooks
                .pre
                .iter()
                .map(|h| hook_call(&h.value, &self.state.plugins))
                .collect(),
            post_hooks: spec
                .hooks
                .post
                .iter()
                .map(|h| hook_call(&h.value, &self.state.plugins))
                .collect(),
            step_plugin,
        })
    }

    /// What templates and conditions of step `si` can see: params, run,
    /// workflow, item, and the outputs and status of its direct needs.
    pub(super) fn variables(&self, si: usize, item: Option<&Json>) -> Map<String, Json> {
        let mut steps = Map::new();
        for n in self.state.plan.dag.needs(si) {
            let s = &self.state.steps[n];
            steps.insert(
                self.state.plan.workflow.steps[n].id.clone(),
                json!({"outputs": s.outputs.clone().unwrap_or_else(|| json!({})), "status": s.status.as_str()}),
            );
        }
        let mut vars = Map::new();
        vars.insert("params".into(), Json::Object(self.state.params.clone()));
        vars.insert("steps".into(), Json::Object(steps));
        vars.insert("run".into(), json!({"id": self.state.run_id}));
        vars.insert(
            "workflow".into(),
            json!({"name": self.state.plan.workflow.name}),
        );
        if let Some(item) = item {
            vars.insert("item".into(), item.clone());
        }
        vars
    }

    pub(super) fn lookup(
        &self,
        si: usize,
        item: Option<&Json>,
        path: &Path,
    ) -> Result<Json, String> {
        let not_found = || format!("`{path}` has no value");
        match path.root() {
            "params" => path
                .key(1)
                .and_then(|k| self.state.params.get(k))
                .and_then(|v| path.select(v, 2))
                .cloned()
                .ok_or_else(not_found),
            "steps" => {
                let id = path.key(1).ok_or_else(not_found)?;
                let n = self.state.step_index(id).ok_or_else(not_found)?;
                let s = &self.state.steps[n];
                if !s.status.is_terminal() || !self.state.plan.dag.is_upstream(n, si) {
                    return Err(format!(
                        "`{path}`: step `{id}` is not upstream of this step"
                    ));
                }
                let view = json!({"outputs": s.outputs.clone().unwrap_or_else(|| json!({})), "status": s.status.as_str()});
                path.select(&view, 2)
                    .cloned()
                    .ok_or_else(|| match path.key(2) {
                        Some("outputs") => format!(
                            "`{path}`: step `{id}` wrote no such output (its outputs: {})",
                            view["outputs"]
                        ),
                        _ => not_found(),
                    })
            }
            "run" => path
                .select(&json!({"id": self.state.run_id}), 1)
                .cloned()
                .ok_or_else(not_found),
            "workflow" => path
                .select(&json!({"name": self.state.plan.workflow.name}), 1)
                .cloned()
                .ok_or_else(not_found),
            "item" => item
                .and_then(|i| path.select(i, 1))
                .cloned()
                .ok_or_else(not_found),
            _ => Err(not_found()),
        }
    }
}

/// A `wasm` step's plugin call, from its table (`plugin`, `timeout`, `memory`).
fn wasm_call(
    wasm: &Json,
    resolved: &std::collections::BTreeMap<String, ResolvedPlugin>,
) -> Option<PluginCall> {
    let reference = crate::spec::PluginRef::parse(wasm.get("plugin")?.as_str()?)
        .ok()?
        .to_string();
    let timeout_ms = wasm
        .get("timeout")
        .and_then(Json::as_str)
        .and_then(|t| crate::spec::units::parse_duration(t).ok())
        .map(|d| d.as_millis() as u64);
    let memory = match wasm.get("memory") {
        Some(Json::Number(n)) => n.as_u64(),
        Some(Json::String(t)) => crate::spec::units::parse_bytes(t).ok(),
        _ => None,
    };
    Some(PluginCall {
        resolved: resolved.get(&reference).cloned(),
        reference,
        config: json!({}),
        timeout_ms,
        memory,
    })
}
