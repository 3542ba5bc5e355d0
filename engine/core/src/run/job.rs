//! Building a task's job: the step's action with its templates rendered
//! against params, upstream outputs and the for-each item, its env, inputs
//! and plugin calls.

use serde_json::{json, Map, Value as Json};

use super::event::{Job, TaskId};
use super::machine::Machine;
use crate::artifacts::{artifact_placeholder, artifact_refs, InputArtifact, ARTIFACTS_FIELD};
use crate::plugins::{hook_call, PluginCall, ResolvedPlugin};
use crate::secrets::{placeholder, SECRETS_ROOT};
use crate::spec::{StepAction, WasmStep};
use crate::template::{render_str, Path};

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
        // Rendering checks what the templates rendered to, as `weft check`
        // checked the file's own values: a bad value fails the attempt with
        // its reason, and never reaches a worker.
        let mut action = spec.action.render(&lookup)?;
        // The server's policy, on what will run: a parameter cannot carry a
        // refused image, kind or size past the review at submit.
        if let Some(policy) = &self.state.policy {
            policy.admit(spec, &mut action)?;
        }
        let step_plugin = match &action {
            StepAction::Wasm { spec: wasm } => Some(wasm_call(wasm, &self.state.plugins)),
            _ => None,
        };
        let env = spec
            .env
            .iter()
            .map(|(k, v)| Ok((k.clone(), render_str(&v.value, &lookup)?)))
            .collect::<Result<_, String>>()?;
        let mut inputs = self.task_variables(si, item);
        if self.state.shared_params.is_none() {
            inputs.insert("params".into(), Json::Object(self.state.params.clone()));
        }
        let artifacts = self.input_artifacts(si)?;
        let mut job = Job {
            run_id: self.state.run_id.clone(),
            workflow: self.state.plan.workflow.name.clone(),
            task,
            attempt,
            action,
            env,
            secrets: spec.secrets.clone(),
            inputs: Json::Object(inputs),
            shared_params: self.state.shared_params.clone(),
            timeout: spec.timeout,
            pool: crate::spec::queue_pool(&spec.pool, &spec.resources),
            priority: self.state.priority,
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
            artifacts,
            produces: spec.artifacts.iter().map(|a| a.value.clone()).collect(),
            reply_to: None,
            requeued: 0,
        };
        if !self.state.admission.is_empty() {
            crate::admission::patch_job(&mut job, &spec.id, &self.state.admission);
            job.pool = crate::spec::queue_pool(&spec.pool, &job.resources);
        }
        Ok(job)
    }

    /// The upstream artifacts step `si`'s action and env name, as stored.
    fn input_artifacts(&self, si: usize) -> Result<Vec<InputArtifact>, String> {
        let spec = &self.state.plan.workflow.steps[si];
        let mut wanted: Vec<(String, String)> = spec
            .texts
            .iter()
            .filter(|t| t.place != crate::spec::TextPlace::HookConfig)
            .flat_map(|t| artifact_refs(&t.text.value))
            .collect();
        wanted.sort();
        wanted.dedup();
        wanted
            .into_iter()
            .map(|(step, name)| {
                let artifact = self
                    .state
                    .step_index(&step)
                    .and_then(|n| self.state.steps[n].artifacts.get(&name))
                    .ok_or_else(|| {
                        format!("step `{step}` left no artifact `{name}` for this step to use")
                    })?;
                Ok(InputArtifact {
                    step,
                    name,
                    artifact: artifact.clone(),
                })
            })
            .collect()
    }

    /// What templates and conditions of step `si` can see: params, run,
    /// workflow, item, and the outputs and status of its direct needs.
    pub(super) fn variables(&self, si: usize, item: Option<&Json>) -> Map<String, Json> {
        let mut vars = self.task_variables(si, item);
        vars.insert("params".into(), Json::Object(self.state.params.clone()));
        vars.insert(
            "workflow".into(),
            json!({"name": self.state.plan.workflow.name}),
        );
        vars
    }

    /// The variables of step `si` that are its own, as its job's inputs
    /// carry them: the outputs and status of its direct needs, the run,
    /// its item; not params (a task's job may carry them by reference)
    /// nor the workflow's name.
    fn task_variables(&self, si: usize, item: Option<&Json>) -> Map<String, Json> {
        let mut steps = Map::new();
        for n in self.state.plan.dag.needs(si) {
            let s = &self.state.steps[n];
            steps.insert(
                self.state.plan.workflow.steps[n].id.clone(),
                json!({"outputs": s.outputs.clone().unwrap_or_else(|| json!({})), "status": s.status.as_str()}),
            );
        }
        let mut vars = Map::new();
        vars.insert("steps".into(), Json::Object(steps));
        vars.insert("run".into(), self.run_view());
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
                // Stays a reference, as a secret does: only the worker
                // knows the path it will have.
                if path.key(2) == Some(ARTIFACTS_FIELD) {
                    return match (path.0.len(), path.key(3)) {
                        (4, Some(name)) if s.artifacts.contains_key(name) => {
                            Ok(Json::String(artifact_placeholder(id, name)))
                        }
                        (4, Some(name)) => Err(format!(
                            "`{path}`: step `{id}` left no artifact `{name}` (it is optional, \
                             and was not there when the step ended)"
                        )),
                        _ => Err(not_found()),
                    };
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
                .select(&self.run_view(), 1)
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
            // Stays a reference: the worker fills it in as the step starts,
            // so the value is in no job, event or view.
            SECRETS_ROOT => match (path.0.len(), path.key(1)) {
                (2, Some(name)) => Ok(Json::String(placeholder(name))),
                _ => Err(not_found()),
            },
            _ => Err(not_found()),
        }
    }
}

/// A `wasm` step's plugin call, from its typed table.
fn wasm_call(
    wasm: &WasmStep,
    resolved: &std::collections::BTreeMap<String, ResolvedPlugin>,
) -> PluginCall {
    let reference = wasm.plugin.to_string();
    PluginCall {
        resolved: resolved.get(&reference).cloned(),
        reference,
        config: json!({}),
        timeout_ms: wasm.timeout.map(|d| d.as_millis() as u64),
        memory: wasm.memory,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::run::tests::dispatched;
    use crate::run::{apply, Action, Event, Outcome, Plan, RunState, RunStatus};
    use crate::spec::{self, StepAction};

    const SAXPY: &str = r#"
[workflow]
name = "k"
[params]
n = 3
[steps.xs]
run = "x"
[steps.k.cuda]
source = "saxpy.cu"
entry = "saxpy"
args = [
  { scalar = 2.0, type = "f32" },
  { buffer = "x", type = "f32", values = "{{ steps.xs.outputs.x }}" },
  { buffer = "y", type = "f32", len = "{{ params.n }}", output = true },
  { scalar = "{{ params.n }}", type = "u32" },
]
[steps.k]
needs = ["xs"]
"#;

    fn run(params: serde_json::Value, x: serde_json::Value) -> (RunState, Vec<Action>) {
        let workflow = spec::load(SAXPY).unwrap_or_else(|d| panic!("{d:?}"));
        let mut params_map = workflow.param_defaults();
        params_map.extend(params.as_object().unwrap().clone());
        let mut s = RunState::new("run-1", Plan::new(workflow), params_map);
        let job = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
        let finished = Event::TaskFinished {
            task: job.task.clone(),
            attempt: job.attempt,
            outcome: Outcome::Succeeded {
                outputs: json!({ "x": x }),
                artifacts: Default::default(),
            },
            at: 1,
            hooks: Vec::new(),
            worker: "w".into(),
            execution: 1,
        };
        let actions = apply(&mut s, finished);
        (s, actions)
    }

    #[test]
    fn a_cuda_table_is_rendered_before_it_is_dispatched() {
        let (_, actions) = run(json!({}), json!([1.0, 2.0, 3.0]));
        let job = dispatched(&actions).remove(0);
        let StepAction::Cuda { spec } = &job.action else {
            panic!("{:?}", job.action)
        };
        use crate::kernel::{BufferArg, BufferInit, KernelArg};
        let numbers = |v: &[f64]| -> Vec<serde_json::Number> {
            v.iter()
                .map(|f| serde_json::Number::from_f64(*f).unwrap())
                .collect()
        };
        assert!(
            matches!(&spec.args[1], KernelArg::Buffer(BufferArg { init: BufferInit::Values(v), .. }) if *v == numbers(&[1.0, 2.0, 3.0]))
        );
        assert!(matches!(
            &spec.args[2],
            KernelArg::Buffer(BufferArg {
                init: BufferInit::Len { len: 3, fill: None },
                ..
            })
        ));
        assert!(
            matches!(&spec.args[3], KernelArg::Scalar { value, .. } if value.as_u64() == Some(3))
        );
    }

    #[test]
    fn a_cuda_value_that_renders_wrong_fails_the_attempt_naming_it() {
        for (params, x, says) in [
            (json!({"n": "lots"}), json!([1.0]), "len"),
            (
                json!({}),
                json!(["a", "b"]),
                "buffer `x`: value 0: `a` is not a number",
            ),
            (json!({"n": -1}), json!([1.0]), "argument"),
        ] {
            let (s, actions) = run(params.clone(), x.clone());
            assert!(dispatched(&actions).is_empty(), "{params} {x}: {actions:?}");
            assert_eq!(s.status, RunStatus::Failed, "{params} {x}");
            let summary = s.failure_summary().unwrap();
            assert!(
                summary.contains("the `cuda` table as rendered") && summary.contains(says),
                "{params} {x}: {summary}"
            );
        }
    }
}

#[cfg(test)]
mod container_tests {
    use serde_json::json;

    use crate::run::{apply, Action, Event, Plan, RunState, RunStatus};
    use crate::spec::{self, StepAction};

    const MOUNTING: &str = r#"
[workflow]
name = "m"
[params]
src = "/data"
[steps.c.container]
image = "busybox"
command = ["ls", "/x"]
mounts = ["{{ params.src }}:/x:ro"]
"#;

    fn start(src: &str) -> (RunState, Vec<Action>) {
        let workflow = spec::load(MOUNTING).unwrap_or_else(|d| panic!("{d:?}"));
        let mut params = workflow.param_defaults();
        params.insert("src".into(), json!(src));
        let mut s = RunState::new("run-1", Plan::new(workflow), params);
        let actions = apply(&mut s, Event::Started { at: 0 });
        (s, actions)
    }

    #[test]
    fn a_templated_mount_is_checked_as_rendered() {
        let (_, actions) = start("/data");
        let job = actions
            .iter()
            .find_map(|a| match a {
                Action::Dispatch(j) => Some(j.clone()),
                _ => None,
            })
            .expect("dispatched");
        let StepAction::Container { spec } = &job.action else {
            panic!("{:?}", job.action)
        };
        assert_eq!(
            spec.mounts,
            [crate::ports::ContainerMount {
                source: "/data".into(),
                target: "/x".into(),
                read_only: true
            }]
        );
        for refused in [
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/var/run/../run/docker.sock",
            "//var//run",
            "/",
        ] {
            let (s, actions) = start(refused);
            assert!(
                !actions.iter().any(|a| matches!(a, Action::Dispatch(_))),
                "{refused}: {actions:?}"
            );
            assert_eq!(s.status, RunStatus::Failed, "{refused}");
            let summary = s.failure_summary().unwrap();
            assert!(
                summary.contains("the `container` table as rendered")
                    && summary.contains("is refused"),
                "{refused}: {summary}"
            );
            let attempt = &s.steps[0].tasks[0].attempts[0];
            assert_eq!(attempt.error_kind, crate::run::FailureKind::Policy);
        }
    }

    const PASSING: &str = r#"
[workflow]
name = "files"
[steps.make]
run = "x"
artifacts = { model = "out/m.pt", logs = { path = "logs/", optional = true } }
[steps.use]
needs = ["make"]
run = "cp {{ steps.make.artifacts.model }} here"
env = { M = "{{ steps.make.artifacts.model }}" }
[steps.late]
needs = ["make"]
run = "cat {{ steps.make.artifacts.logs }}"
"#;

    #[test]
    fn a_step_s_artifacts_reach_the_jobs_that_name_them_as_references() {
        use crate::artifacts::{ArtifactRef, Digest};
        use crate::run::tests::dispatched;
        use crate::run::Outcome;
        let workflow = spec::load(PASSING).unwrap_or_else(|d| panic!("{d:?}"));
        let mut s = RunState::new("run-1", Plan::new(workflow), Default::default());
        let make = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
        assert_eq!(make.produces.len(), 2);
        assert_eq!(make.produces[0].path, "out/m.pt");
        let model = ArtifactRef {
            digest: Digest::parse(&"ab".repeat(32)).unwrap(),
            size: 9,
            dir: false,
        };
        let finished = Event::TaskFinished {
            task: make.task.clone(),
            attempt: 1,
            outcome: Outcome::Succeeded {
                outputs: json!({}),
                // The optional `logs` was not made.
                artifacts: [("model".to_string(), model.clone())].into(),
            },
            at: 1,
            hooks: Vec::new(),
            worker: "w".into(),
            execution: 1,
        };
        let jobs = dispatched(&apply(&mut s, finished));
        let using = jobs.iter().find(|j| j.task.step == "use").unwrap();
        // The reference stays as written; the worker fills in its path.
        let StepAction::Run { command } = &using.action else {
            panic!()
        };
        assert_eq!(
            *command,
            spec::Command::Shell("cp {{ steps.make.artifacts.model }} here".into())
        );
        assert_eq!(using.env["M"], "{{ steps.make.artifacts.model }}");
        assert_eq!(using.artifacts.len(), 1);
        assert_eq!(
            (
                using.artifacts[0].step.as_str(),
                using.artifacts[0].name.as_str()
            ),
            ("make", "model")
        );
        assert_eq!(using.artifacts[0].artifact, model);
        assert_eq!(s.steps[0].artifacts["model"], model);
        // The step naming the one that was not made fails, saying so.
        assert!(jobs.iter().all(|j| j.task.step != "late"));
        let late = &s.steps[2].tasks[0].attempts[0];
        assert!(
            late.error
                .as_deref()
                .unwrap_or_default()
                .contains("left no artifact `logs`"),
            "{late:?}"
        );
    }

    #[test]
    fn big_params_travel_by_reference_and_small_ones_in_each_job() {
        let src = |items: usize| {
            let list: Vec<String> = (0..items).map(|i| format!("\"item-{i:05}\"")).collect();
            format!(
                "[workflow]\nname = \"p\"\n[params]\nitems = [{}]\nlabel = \"x\"\n\
                 [steps.each]\nfor-each = \"{{{{ params.items }}}}\"\nrun = \"echo {{{{ item }}}} {{{{ params.label }}}}\"\n",
                list.join(", ")
            )
        };
        let jobs = |items: usize| {
            let workflow = spec::load(&src(items)).unwrap_or_else(|d| panic!("{d:?}"));
            let params = workflow.param_defaults();
            let mut s = RunState::new("run-1", Plan::new(workflow), params);
            let jobs = crate::run::tests::dispatched(&apply(&mut s, Event::Started { at: 0 }));
            (s, jobs)
        };
        let (small, small_jobs) = jobs(3);
        assert_eq!(small.shared_params, None);
        assert_eq!(
            small_jobs[0].inputs["params"]["items"][2],
            json!("item-00002")
        );
        assert_eq!(small_jobs[0].shared_params, None);

        let (big, big_jobs) = jobs(1000);
        let digest = big.shared_params.clone().expect("over the inline bound");
        assert_eq!(big_jobs.len(), 1000);
        for (i, job) in big_jobs.iter().enumerate() {
            assert_eq!(job.shared_params.as_ref(), Some(&digest));
            assert!(job.inputs.get("params").is_none(), "{}", job.inputs);
            assert_eq!(job.inputs["item"], json!(format!("item-{i:05}")));
            // Templates still read params on the orchestrator.
            let StepAction::Run { command } = &job.action else {
                panic!()
            };
            assert_eq!(
                *command,
                spec::Command::Shell(format!("echo item-{i:05} x"))
            );
            assert!(
                serde_json::to_vec(job).unwrap().len() < 1024,
                "a job is its own size"
            );
        }
        let params = serde_json::to_vec(&big.params).unwrap();
        assert_eq!(crate::run::params_digest(&params), digest);
        // The cache key stands for the params by their digest.
        let key = |job: &crate::run::Job| crate::cache::cache_key(job, None, &Default::default());
        let mut other = big_jobs[0].clone();
        other.shared_params = Some(crate::run::params_digest(b"{}"));
        assert_ne!(key(&big_jobs[0]), key(&other));
    }
}
