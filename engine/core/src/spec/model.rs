//! The workflow model: what a parsed, defaults-applied workflow file says.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::actions::{ContainerSpec, WasmStep};
use crate::diagnostic::{Span, Spanned};
use crate::kernel::KernelSpec;
use crate::templated::{Form, Rendered, Written};

/// A parsed workflow. Steps keep file order.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    /// `[workflow] timeout`: the run fails past it, its running steps
    /// stopped, its waiting ones cancelled.
    pub timeout: Option<Duration>,
    /// `[workflow] on-exit`: the step that runs last, once every other step
    /// has ended or the run was cancelled or timed out, whatever happened.
    pub on_exit: Option<Spanned<String>>,
    /// `[workflow] on-finish`: saved workflows a finished run starts.
    pub on_finish: Vec<super::on_finish::OnFinish>,
    /// `[workflow] outputs`: the step whose outputs are the run's (a
    /// sub-workflow's outputs, as its parent's step sees them).
    pub outputs: Option<Spanned<String>>,
    /// `[workflow] concurrency`: how many runs of one key at once.
    pub concurrency: Option<super::concurrency::ConcurrencySpec>,
    /// Parameter defaults, in file order.
    pub params: Vec<Param>,
    pub steps: Vec<Step>,
    /// `[[triggers.schedule]]`: when a saved version of it starts runs.
    pub schedules: Vec<super::triggers::ScheduleSpec>,
    /// `[[triggers.webhook]]`: deliveries that start a saved version of it.
    pub webhooks: Vec<super::triggers::WebhookSpec>,
}

impl Workflow {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Parameter defaults as one JSON object.
    pub fn param_defaults(&self) -> serde_json::Map<String, Json> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.default.clone()))
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub default: Json,
    pub span: Span,
}

/// One `[steps.<id>]` table, with `[defaults]` already applied.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    /// Free text shown instead of the id (dashboard, `weft show`).
    pub name: Option<String>,
    /// Span of the step's key (`[steps.<id>]`).
    pub span: Span,
    pub action: StepAction,
    pub needs: Vec<Spanned<String>>,
    /// Needs whose outcome does not matter (`{ step, status = "any" }`):
    /// this step runs once they end, whether they succeeded, failed or were
    /// skipped.
    pub needs_any: BTreeSet<String>,
    /// `continue-on-error`: its failure neither skips its dependents nor
    /// fails the run by itself.
    pub continue_on_error: bool,
    /// `max-parallel`: at most this many of a `for-each` step's instances
    /// at once (queued, running or waiting to retry).
    pub max_parallel: Option<u32>,
    pub when: Option<Spanned<String>>,
    pub for_each: Option<ForEach>,
    pub timeout: Option<Duration>,
    pub retries: RetryPolicy,
    pub env: BTreeMap<String, Spanned<String>>,
    pub resources: Resources,
    pub hooks: Hooks,
    pub pool: String,
    /// Every string of the step that may hold `{{ }}` templates, with its
    /// span and where it is.
    pub texts: Vec<StepText>,
    /// The secrets its `env`, `container.env` and hooks' `config` name
    /// (`{{ secrets.NAME }}`): all a worker resolves for it.
    pub secrets: BTreeSet<String>,
    /// The files it leaves for later steps (`artifacts`), each spanned by
    /// its name.
    pub artifacts: Vec<Spanned<crate::artifacts::DeclaredArtifact>>,
    /// `cache`: its result may be reused by later runs (`None`: never).
    pub cache: Option<crate::cache::CachePolicy>,
}

impl Step {
    /// The artifact it declares by `name`.
    pub fn artifact(&self, name: &str) -> Option<&crate::artifacts::DeclaredArtifact> {
        self.artifacts
            .iter()
            .map(|a| &a.value)
            .find(|a| a.name == name)
    }
}

/// A string of a step that may hold templates.
#[derive(Debug, Clone, PartialEq)]
pub struct StepText {
    pub text: Spanned<String>,
    pub place: TextPlace,
}

/// Where a step's text is, which decides what it may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPlace {
    /// The action's table (command, image, mounts, ...): rendered at
    /// dispatch; no secrets (a command line shows in `ps` and logs).
    Action,
    /// `env` or `container.env`: rendered at dispatch; secrets allowed.
    Env,
    /// A hook's `config`: not rendered; only `{{ secrets.NAME }}` is
    /// resolved there, by the worker.
    HookConfig,
}

/// What a step does. Exactly one per step; none makes a join step. As
/// written ([`Written`], in a workflow) its values may be templates; a job
/// carries it [`Rendered`], every value concrete and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "", rename_all = "kebab-case", tag = "kind")]
pub enum StepAction<F: Form = Written> {
    /// A shell command: a string run by `sh -c`, or an argv list run directly.
    Run { command: Command },
    /// A container on the worker's container runtime.
    Container { spec: ContainerSpec },
    /// A CUDA kernel.
    Cuda { spec: KernelSpec<F> },
    /// A WebAssembly plugin step.
    Wasm { spec: WasmStep },
    /// Runs a saved workflow as a child run; runs on no worker.
    Workflow {
        spec: super::sub_workflow::SubWorkflow,
    },
    /// Waits for a person to approve or reject it; runs on no worker.
    Approve { spec: super::approval::ApprovalSpec },
    /// No action: completes as soon as its needs do.
    Join,
}

/// An action as a worker runs it.
pub type JobAction = StepAction<Rendered>;

impl<F: Form> StepAction<F> {
    pub fn kind(&self) -> &'static str {
        match self {
            StepAction::Run { .. } => "run",
            StepAction::Container { .. } => "container",
            StepAction::Cuda { .. } => "cuda",
            StepAction::Wasm { .. } => "wasm",
            StepAction::Approve { .. } => "approve",
            StepAction::Workflow { .. } => "workflow",
            StepAction::Join => "join",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    Shell(String),
    Argv(Vec<String>),
}

/// `for-each`: a template that yields a list, or a literal list.
#[derive(Debug, Clone, PartialEq)]
pub enum ForEach {
    Template(Spanned<String>),
    Items(Vec<Json>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backoff {
    Fixed,
    Exponential,
}

/// `retries = { limit, backoff, delay, max-delay, jitter }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 means one attempt in all.
    pub limit: u32,
    pub backoff: Backoff,
    pub delay: Duration,
    pub max_delay: Duration,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            limit: 0,
            backoff: Backoff::Exponential,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            jitter: false,
        }
    }
}

/// `resources = { cpus, memory, gpus }`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Resources {
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub gpus: u32,
}

/// `hooks = { pre = [...], post = [...] }`: plugin references, defaults first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hooks {
    pub pre: Vec<Spanned<HookRef>>,
    pub post: Vec<Spanned<HookRef>>,
}

/// One hook: `"name@^1"`, or `{ plugin = "name@^1", config = {...},
/// timeout = "2s", memory = "64MiB" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRef {
    pub plugin: PluginRef,
    /// Given to the plugin as JSON; `{}` if none.
    pub config: Json,
    /// Deadline of each call; the worker's default if none.
    pub timeout: Option<Duration>,
    /// Memory cap of the plugin's instance, in bytes; the worker's default if none.
    pub memory: Option<u64>,
    /// The strings of `config` that hold `{{`, with their spans.
    pub config_texts: Vec<Spanned<String>>,
}

impl HookRef {
    pub fn new(plugin: PluginRef) -> Self {
        Self {
            plugin,
            config: Json::Object(Default::default()),
            timeout: None,
            memory: None,
            config_texts: Vec::new(),
        }
    }
}

/// `name@version-requirement`, or a local path ending in `.wasm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRef {
    pub name: String,
    /// `None` for "any version"; otherwise a semver requirement as written.
    pub version: Option<String>,
}

impl PluginRef {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.ends_with(".wasm") {
            return Ok(Self {
                name: text.to_string(),
                version: None,
            });
        }
        let (name, version) = match text.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (text, None),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "`{text}` is not a plugin reference: write `name`, `name@1.2.3`, `name@^1` or a path ending in .wasm"
            ));
        }
        if let Some(v) = version {
            let ok = !v.is_empty()
                && v.trim_start_matches(['^', '~', '=', '>', '<'])
                    .split('.')
                    .all(|part| {
                        part == "*"
                            || (!part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
                    });
            if !ok {
                return Err(format!(
                    "`{v}` is not a version requirement: write e.g. `1.2.3`, `^1.2` or `~0.3`"
                ));
            }
        }
        Ok(Self {
            name: name.to_string(),
            version: version.map(str::to_string),
        })
    }
}

impl std::fmt::Display for PluginRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

/// The default worker pool.
pub const DEFAULT_POOL: &str = "default";

/// The queue a step's jobs go to: its pool's, or, for a step that asks for
/// GPUs, the pool's GPU queue, which only workers with GPUs take from.
pub fn queue_pool(pool: &str, resources: &Resources) -> String {
    if resources.gpus > 0 {
        gpu_pool(pool)
    } else {
        pool.to_string()
    }
}

/// The GPU queue of `pool` (`+` cannot appear in a pool name).
pub fn gpu_pool(pool: &str) -> String {
    format!("{pool}+gpu")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_refs_accept_versions_ranges_and_paths() {
        assert_eq!(
            PluginRef::parse("redact@^1").unwrap().version.as_deref(),
            Some("^1")
        );
        assert_eq!(PluginRef::parse("x@1.0.2").unwrap().name, "x");
        assert!(PluginRef::parse("./p/hook.wasm").is_ok());
        assert!(PluginRef::parse("bad name").is_err());
        assert!(PluginRef::parse("x@latest").is_err());
    }
}
