//! Plugins on the worker: fetching a run's resolved plugins from the store,
//! running pre hooks before a step, post hooks (log filter and outcome)
//! after it, and `wasm` steps. Every call runs on the blocking pool: a
//! plugin holds its thread until it returns or hits its deadline.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value as Json};
use weft_core::artifacts::ArtifactRef;
use weft_core::plugins::PluginCall;
use weft_core::ports::{ArtifactStore, PluginStore};
use weft_core::run::{FailureKind, HookRun, Job, Outcome};
use weft_core::spec::{JobAction, StepAction, WasmStep};
use weft_wasm_host::{
    ArtifactReader, CallArtifacts, CallContext, HookInstance, Host, Limits, LogLine, Plugin,
};

use crate::steplog::StepLog;

/// A worker's plugin host and where it fetches plugins from.
#[derive(Clone)]
pub struct Plugins {
    store: Arc<dyn PluginStore>,
    host: Arc<Host>,
}

impl Plugins {
    pub fn new(store: Arc<dyn PluginStore>, host: Arc<Host>) -> Self {
        Self { store, host }
    }

    /// A host set up from the worker's options, fetching from `store`.
    pub fn from_options(
        store: Arc<dyn PluginStore>,
        options: &crate::Options,
    ) -> Result<Self, crate::Error> {
        let mut host_options = options.plugins.clone();
        if host_options.cache_dir.is_none() {
            host_options.cache_dir = Some(options.work_dir.join("plugin-cache"));
        }
        let host = Host::new(host_options).map_err(|e| crate::Error::Plugins(e.to_string()))?;
        Ok(Self::new(store, Arc::new(host)))
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// The compiled plugin a call names: from memory, or fetched by hash
    /// and compiled (or read from the host's disk cache).
    async fn load(&self, call: &PluginCall) -> Result<Arc<Plugin>, String> {
        let Some(resolved) = &call.resolved else {
            return Err(format!(
                "plugin `{}` was not resolved when the run was submitted",
                call.reference
            ));
        };
        if let Some(p) = self.host.loaded(&resolved.sha256) {
            return Ok(p);
        }
        let wasm = self
            .store
            .wasm(&resolved.sha256)
            .await
            .map_err(|e| format!("fetching plugin {resolved}: {e}"))?
            .ok_or_else(|| {
                format!(
                    "plugin {resolved} ({}) is not in the store",
                    resolved.sha256
                )
            })?;
        let host = self.host.clone();
        let plugin = tokio::task::spawn_blocking(move || host.load(&wasm))
            .await
            .map_err(|e| format!("loading plugin {resolved}: {e}"))?
            .map_err(|e| format!("loading plugin {resolved}: {e}"))?;
        if plugin.sha256 != resolved.sha256 {
            return Err(format!(
                "plugin {resolved}: stored bytes do not match their hash"
            ));
        }
        Ok(plugin)
    }
}

/// What a hook's `read-artifact` reads: the artifacts the step uses (as
/// `<step>/<name>`) and, once it has succeeded, those it left (`<name>`),
/// from the artifact store, in bounded ranges.
#[derive(Clone)]
pub(crate) struct HookArtifacts {
    store: Option<Arc<dyn ArtifactStore>>,
    known: Arc<Mutex<BTreeMap<String, ArtifactRef>>>,
    runtime: tokio::runtime::Handle,
}

impl HookArtifacts {
    pub(crate) fn new(store: Option<Arc<dyn ArtifactStore>>, job: &Job) -> Self {
        let known = job
            .artifacts
            .iter()
            .map(|a| (format!("{}/{}", a.step, a.name), a.artifact.clone()))
            .collect();
        Self {
            store,
            known: Arc::new(Mutex::new(known)),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Adds what the step left, for its post hooks.
    fn left(&self, artifacts: &weft_core::artifacts::Artifacts) {
        let mut known = self.known.lock().expect("hook artifacts");
        for (name, artifact) in artifacts {
            known.insert(name.clone(), artifact.clone());
        }
    }

    fn for_call(&self) -> CallArtifacts {
        CallArtifacts(Some(Arc::new(self.clone())))
    }
}

impl ArtifactReader for HookArtifacts {
    fn read(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, String> {
        let artifact = {
            let known = self.known.lock().expect("hook artifacts");
            known.get(name).cloned().ok_or_else(|| {
                let names: Vec<&str> = known.keys().map(String::as_str).collect();
                match names.is_empty() {
                    true => format!("no artifact `{name}`: this step has none to read"),
                    false => format!("no artifact `{name}`; here: {}", names.join(", ")),
                }
            })?
        };
        let Some(store) = &self.store else {
            return Err("this worker has no artifact store".into());
        };
        if offset >= artifact.size || length == 0 {
            return Ok(Vec::new());
        }
        // Called on the blocking pool, where a plugin runs.
        self.runtime
            .block_on(store.read_range(&artifact.digest, offset, length))
            .map_err(|e| format!("reading artifact `{name}`: {e}"))
    }
}

fn context(job: &Job, call: &PluginCall, artifacts: &HookArtifacts) -> CallContext {
    CallContext {
        run_id: job.run_id.clone(),
        workflow: job.workflow.clone(),
        step: job.task.step.clone(),
        task: job.task.to_string(),
        attempt: job.attempt,
        plugin: call.label(),
        config: call.config.clone(),
        artifacts: artifacts.for_call(),
    }
}

fn limits(call: &PluginCall) -> Limits {
    Limits {
        timeout: call.timeout_ms.map(Duration::from_millis),
        memory_bytes: call.memory,
    }
}

/// A plugin failure fails the attempt; its retry policy decides what next.
fn failed(reason: String) -> Outcome {
    Outcome::Failed {
        reason,
        exit_code: None,
        retryable: true,
        kind: FailureKind::Plugin,
    }
}

async fn write_logs(log: &StepLog, plugin: &str, lines: Vec<LogLine>) {
    if lines.is_empty() {
        return;
    }
    let mut text = String::new();
    for l in lines {
        text.push_str(&format!("[{plugin}] {}: {}\n", l.level.as_str(), l.message));
    }
    log.push(text.as_bytes()).await;
}

/// Runs the pre hooks in order over `job`; returns the job to run, or the
/// outcome that ends the attempt.
pub(crate) async fn pre_process(
    plugins: &Plugins,
    log: &StepLog,
    mut job: Job,
    runs: &mut Vec<HookRun>,
    artifacts: &HookArtifacts,
) -> Result<Job, Outcome> {
    let calls = job.pre_hooks.clone();
    for call in &calls {
        let started = Instant::now();
        let result = pre_one(plugins, log, &mut job, call, artifacts).await;
        runs.push(HookRun {
            phase: "pre".into(),
            plugin: call.label(),
            ms: started.elapsed().as_secs_f64() * 1000.0,
            error: result.as_ref().err().map(reason_of),
        });
        result?;
    }
    Ok(job)
}

async fn pre_one(
    plugins: &Plugins,
    log: &StepLog,
    job: &mut Job,
    call: &PluginCall,
    artifacts: &HookArtifacts,
) -> Result<(), Outcome> {
    let plugin = plugins.load(call).await.map_err(failed)?;
    let payload = json!({"inputs": job.inputs, "env": job.env, "action": job.action});
    let (host, ctx, limits) = (
        plugins.host.clone(),
        context(job, call, artifacts),
        limits(call),
    );
    let (result, lines) =
        tokio::task::spawn_blocking(move || match host.hook(&plugin, &ctx, limits) {
            Ok(mut hook) => {
                let r = hook.pre_process(&payload);
                (r, hook.take_logs())
            }
            Err(e) => (Err(e), Vec::new()),
        })
        .await
        .map_err(|e| failed(format!("pre hook {}: {e}", call.label())))?;
    write_logs(log, &call.label(), lines).await;
    let changed = result.map_err(|e| failed(e.to_string()))?;
    apply_pre(job, changed).map_err(|e| {
        failed(format!(
            "pre hook {} returned a bad input: {e}",
            call.label()
        ))
    })
}

fn reason_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed { reason, .. } => reason.clone(),
        Outcome::Succeeded { .. } => String::new(),
    }
}

fn apply_pre(job: &mut Job, changed: Json) -> Result<(), String> {
    let Json::Object(mut map) = changed else {
        return Err("expected a JSON object with `inputs`, `env` and `action`".into());
    };
    if let Some(inputs) = map.remove("inputs") {
        job.inputs = inputs;
    }
    if let Some(env) = map.remove("env") {
        job.env = serde_json::from_value(env).map_err(|e| format!("`env`: {e}"))?;
    }
    if let Some(action) = map.remove("action") {
        let action: JobAction =
            serde_json::from_value(action).map_err(|e| format!("`action`: {e}"))?;
        // A hook may change how the step runs, not what kind of step it
        // is, and what it returns is held to the rules the rendered step was.
        if std::mem::discriminant(&action) != std::mem::discriminant(&job.action) {
            return Err(format!(
                "`action`: a pre hook may not turn a `{}` step into a `{}` step",
                job.action.kind(),
                action.kind()
            ));
        }
        action.check().map_err(|e| format!("`action`: {e}"))?;
        job.action = action;
    }
    Ok(())
}

/// The post hooks of one attempt, instantiated before the step runs so they
/// can filter its log as it is written.
pub(crate) struct PostHooks {
    hooks: Arc<Mutex<Vec<(String, HookInstance)>>>,
    artifacts: HookArtifacts,
}

impl PostHooks {
    pub(crate) async fn start(
        plugins: &Plugins,
        job: &Job,
        artifacts: &HookArtifacts,
    ) -> Result<Option<Self>, Outcome> {
        if job.post_hooks.is_empty() {
            return Ok(None);
        }
        let mut hooks = Vec::new();
        for call in &job.post_hooks {
            let plugin = plugins.load(call).await.map_err(failed)?;
            let (host, ctx, limits) = (
                plugins.host.clone(),
                context(job, call, artifacts),
                limits(call),
            );
            let hook = tokio::task::spawn_blocking(move || host.hook(&plugin, &ctx, limits))
                .await
                .map_err(|e| failed(format!("post hook {}: {e}", call.label())))?
                .map_err(|e| failed(e.to_string()))?;
            hooks.push((call.label(), hook));
        }
        Ok(Some(Self {
            hooks: Arc::new(Mutex::new(hooks)),
            artifacts: artifacts.clone(),
        }))
    }

    /// Passes a chunk of whole log lines through every post hook. A hook
    /// that fails here drops the chunk (it may hold what it was to hide)
    /// and fails the attempt at post-processing.
    pub(crate) async fn filter_log(&self, chunk: Vec<u8>) -> Vec<u8> {
        let hooks = self.hooks.clone();
        let text = String::from_utf8_lossy(&chunk).into_owned();
        tokio::task::spawn_blocking(move || {
            let mut hooks = hooks.lock().expect("post hooks");
            let mut text = text;
            for (label, hook) in hooks.iter_mut() {
                match hook.filter_log(&text) {
                    Ok(t) => text = t,
                    Err(e) => {
                        return format!("[weft: log chunk withheld: {label}: {e}]\n").into_bytes()
                    }
                }
            }
            text.into_bytes()
        })
        .await
        .unwrap_or_default()
    }

    /// Runs `post-process` of every hook in order over the outcome.
    pub(crate) async fn finish(
        &self,
        outcome: Outcome,
        runs: &mut Vec<HookRun>,
        log: &StepLog,
    ) -> Outcome {
        log.finish().await;
        let tail = String::from_utf8_lossy(&log.tail().await).into_owned();
        let mut payload = outcome_json(&outcome, tail);
        // What the step left stays its own: a hook decides success, not files.
        let artifacts = match &outcome {
            Outcome::Succeeded { artifacts, .. } => artifacts.clone(),
            Outcome::Failed { .. } => Default::default(),
        };
        self.artifacts.left(&artifacts);
        let hooks = self.hooks.clone();
        let (result, logs, timed) = tokio::task::spawn_blocking(move || {
            let mut hooks = hooks.lock().expect("post hooks");
            let mut logs = Vec::new();
            let mut timed = Vec::new();
            for (label, hook) in hooks.iter_mut() {
                let started = Instant::now();
                let r = hook.post_process(&payload);
                timed.push(HookRun {
                    phase: "post".into(),
                    plugin: label.clone(),
                    ms: started.elapsed().as_secs_f64() * 1000.0,
                    error: r.as_ref().err().map(ToString::to_string),
                });
                logs.push((label.clone(), hook.take_logs()));
                match r {
                    Ok(p) => payload = p,
                    Err(e) => return (Err(e.to_string()), logs, timed),
                }
            }
            (Ok(payload), logs, timed)
        })
        .await
        .unwrap_or_else(|e| (Err(format!("post hooks: {e}")), Vec::new(), Vec::new()));
        runs.extend(timed);
        for (label, lines) in logs {
            write_logs(log, &label, lines).await;
        }
        match result {
            Ok(payload) => match outcome_from(payload) {
                Ok(Outcome::Succeeded { outputs, .. }) => Outcome::Succeeded { outputs, artifacts },
                Ok(other) => other,
                Err(e) => failed(format!("a post hook returned a bad outcome: {e}")),
            },
            Err(e) => failed(e),
        }
    }
}

fn outcome_json(outcome: &Outcome, log_tail: String) -> Json {
    match outcome {
        Outcome::Succeeded { outputs, .. } => json!({
            "status": "succeeded", "exit-code": 0, "reason": null, "retryable": false,
            "outputs": outputs, "log-tail": log_tail,
        }),
        Outcome::Failed {
            reason,
            exit_code,
            retryable,
            ..
        } => json!({
            "status": "failed", "exit-code": exit_code, "reason": reason, "retryable": retryable,
            "outputs": {}, "log-tail": log_tail,
        }),
    }
}

fn outcome_from(payload: Json) -> Result<Outcome, String> {
    let map: Map<String, Json> = match payload {
        Json::Object(m) => m,
        _ => return Err("expected a JSON object".into()),
    };
    match map.get("status").and_then(Json::as_str) {
        Some("succeeded") => {
            let outputs = map.get("outputs").cloned().unwrap_or_else(|| json!({}));
            if !outputs.is_object() {
                return Err("`outputs` must be an object".into());
            }
            Ok(Outcome::Succeeded {
                outputs,
                artifacts: Default::default(),
            })
        }
        Some("failed") => Ok(Outcome::Failed {
            reason: map
                .get("reason")
                .and_then(Json::as_str)
                .unwrap_or("failed in a post hook")
                .to_string(),
            exit_code: map
                .get("exit-code")
                .and_then(Json::as_i64)
                .map(|c| c as i32),
            retryable: map.get("retryable").and_then(Json::as_bool).unwrap_or(true),
            kind: FailureKind::Plugin,
        }),
        other => Err(format!(
            "`status` must be \"succeeded\" or \"failed\", not {other:?}"
        )),
    }
}

/// A `wasm` step: the plugin's `run` on the step's rendered `input`.
pub(crate) async fn run_step(
    plugins: &Plugins,
    log: &StepLog,
    job: &Job,
    spec: &WasmStep,
) -> Outcome {
    let Some(call) = &job.step_plugin else {
        return Outcome::Failed {
            reason: "the wasm step names no plugin".into(),
            exit_code: None,
            retryable: false,
            kind: FailureKind::Policy,
        };
    };
    let plugin = match plugins.load(call).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let input = spec.input.clone();
    let mut limits = limits(call);
    // The step's own timeout bounds the call when the plugin sets none.
    limits.timeout = limits.timeout.or(job.timeout);
    // A wasm step is given no artifacts (`weft check` refuses references).
    let none = HookArtifacts::new(None, job);
    let (host, ctx) = (plugins.host.clone(), context(job, call, &none));
    let joined =
        tokio::task::spawn_blocking(move || host.run_step(&plugin, &ctx, limits, &input)).await;
    let (result, lines) = match joined {
        Ok(r) => r,
        Err(e) => return failed(format!("wasm step {}: {e}", call.label())),
    };
    write_logs(log, &call.label(), lines).await;
    match result {
        Ok(outputs @ Json::Object(_)) => Outcome::Succeeded {
            outputs,
            artifacts: Default::default(),
        },
        Ok(_) => Outcome::Failed {
            reason: format!(
                "plugin {} returned outputs that are not a JSON object",
                call.label()
            ),
            exit_code: None,
            retryable: false,
            kind: FailureKind::Plugin,
        },
        Err(e) => failed(e.to_string()),
    }
}

/// Why a job with plugins cannot run on a worker without a plugin host.
pub(crate) fn needs_plugins(job: &Job) -> bool {
    !job.pre_hooks.is_empty()
        || !job.post_hooks.is_empty()
        || matches!(job.action, StepAction::Wasm { .. })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weft_core::spec::{Command, ContainerSpec, JobAction, StepAction};

    use super::apply_pre;

    #[test]
    fn a_pre_hook_may_change_a_step_but_not_past_the_rules() {
        let mut job = weft_testkit::job("r", "s", "default");
        let spec = |v: serde_json::Value| ContainerSpec::parse(v.as_object().unwrap()).unwrap();
        job.action = StepAction::Container {
            spec: spec(json!({"image": "busybox", "command": "ls /x", "mounts": ["/data:/x"]})),
        };
        // What the hook gets back is the typed action, as it was given.
        let container =
            |v: serde_json::Value| json!({ "action": {"kind": "container", "spec": v} });
        let ls_y = || Some(vec!["sh".to_string(), "-c".into(), "ls /y".into()]);
        // Another command: fine.
        let changed = container(json!({"image": "busybox", "command": ["sh", "-c", "ls /y"]}));
        apply_pre(&mut job, changed).unwrap();
        assert!(matches!(&job.action, StepAction::Container { spec } if spec.command == ls_y()));
        // The Docker socket, however spelled: refused, the job unchanged.
        let sneaky = container(json!({"image": "busybox",
            "mounts": [{"source": "/run/../var/run/docker.sock", "target": "/s", "read-only": false}]}));
        let e = apply_pre(&mut job, sneaky).unwrap_err();
        assert!(e.contains("is refused"), "{e}");
        assert!(matches!(&job.action, StepAction::Container { spec } if spec.command == ls_y()));
        // A key the table does not have: refused, named.
        let e = apply_pre(
            &mut job,
            container(json!({"image": "b", "privileged": true})),
        )
        .unwrap_err();
        assert!(e.contains("privileged"), "{e}");
        // Another kind of step: refused.
        let shell = serde_json::to_value(JobAction::Run {
            command: Command::Shell("cat /etc/shadow".into()),
        })
        .unwrap();
        let e = apply_pre(&mut job, json!({ "action": shell })).unwrap_err();
        assert!(
            e.contains("may not turn a `container` step into a `run` step"),
            "{e}"
        );
    }
}
