//! What happens to a run (events) and what the machine asks for (actions).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::plugins::PluginCall;
use crate::spec::{JobAction, Resources};

/// Milliseconds since the Unix epoch, as given by the caller's clock.
pub type Millis = u64;

/// One instance of a step: the step itself, or item `index` of a `for-each`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId {
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

impl TaskId {
    pub fn new(step: impl Into<String>, index: Option<u32>) -> Self {
        Self {
            step: step.into(),
            index,
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}[{i}]", self.step),
            None => f.write_str(&self.step),
        }
    }
}

/// How an attempt ended, as reported by whoever ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Outcome {
    Succeeded {
        #[serde(default)]
        outputs: Json,
        /// The artifacts it left, as stored.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        artifacts: crate::artifacts::Artifacts,
    },
    Failed {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// False where trying again cannot help (e.g. the worker lacks a runtime).
        retryable: bool,
        /// What kind of failure it was, beside the words of `reason`.
        #[serde(default, skip_serializing_if = "FailureKind::is_other")]
        kind: FailureKind,
    },
}

/// What kind of failure ended an attempt: for filters, colours and
/// alerting, where the reason's words are for people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The step's command or container ended with a non-zero exit code.
    ExitCode,
    /// The step ran past its `timeout`.
    Timeout,
    /// The step was killed for using too much memory.
    OutOfMemory,
    /// What runs the step failed, not the step: the worker, the queue, the
    /// store, a container or kernel runtime, a job dead-lettered.
    Infrastructure,
    /// A plugin (a hook or a `wasm` step) failed or returned a failure.
    Plugin,
    /// The run was cancelled, or the attempt aborted.
    Cancelled,
    /// Refused by weft's rules: a rendered value, a limit, a resource no
    /// worker has.
    Policy,
    /// Anything else, and failures recorded before kinds existed.
    #[default]
    Other,
}

impl FailureKind {
    pub fn is_other(&self) -> bool {
        *self == FailureKind::Other
    }
}

/// As it is written in events and the API (`exit-code`, `policy`, ...).
impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_value(self) {
            Ok(Json::String(name)) => f.write_str(&name),
            _ => Err(fmt::Error),
        }
    }
}

/// One plugin hook's part in an attempt, as the worker saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRun {
    /// `pre` or `post`.
    pub phase: String,
    /// The plugin as `name@version` (or its local path).
    pub plugin: String,
    /// Wall time of its call, instantiation included.
    pub ms: f64,
    /// Why it failed; `None` when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Something that happened to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum Event {
    /// Before `Started`, in a retry: step `step` succeeded in run `from`
    /// with these outputs; it is not run again.
    StepReused {
        step: String,
        from: String,
        outputs: Json,
        /// The artifacts it left in that run.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        artifacts: crate::artifacts::Artifacts,
        at: Millis,
    },
    /// Before `Started`: what the server's admission plugins decided;
    /// their patches apply to every job of the run.
    Admitted {
        decisions: Vec<crate::admission::AdmissionDecision>,
        at: Millis,
    },
    /// Before `Started`: the run is a sub-workflow of another run's step,
    /// which hears of its end.
    ChildOf {
        parent: crate::spec::sub_workflow::ParentRef,
        at: Millis,
    },
    /// Before `Started`: the run holds a concurrency key, and starts only
    /// once the cluster gives it one of the key's slots.
    Queued {
        spot: crate::concurrency::QueueSpot,
        at: Millis,
    },
    /// Before `Started`: why the run does not start yet (all of its key's
    /// slots are held), as people are told.
    Waiting { reason: String, at: Millis },
    /// The run begins: roots are dispatched.
    Started { at: Millis },
    /// A worker began an execution of an attempt.
    TaskStarted {
        task: TaskId,
        attempt: u32,
        worker: String,
        at: Millis,
        /// Which execution: the attempt's claim token (0 in logs written
        /// before executions were told apart).
        #[serde(default, skip_serializing_if = "is_zero")]
        execution: u64,
    },
    /// An execution of an attempt ended.
    TaskFinished {
        task: TaskId,
        attempt: u32,
        outcome: Outcome,
        at: Millis,
        /// The plugin hooks that ran around it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        hooks: Vec<HookRun>,
        /// Who ran it ("" in logs written before this was kept).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        worker: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        execution: u64,
    },
    /// An attempt was not run: a result of the same step with the same
    /// key, from an earlier run, was reused (`cache`).
    TaskCached {
        task: TaskId,
        attempt: u32,
        from: crate::cache::CachedFrom,
        outputs: Json,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        artifacts: crate::artifacts::Artifacts,
        at: Millis,
    },
    /// The wait before a retry is over.
    RetryDue {
        task: TaskId,
        attempt: u32,
        at: Millis,
    },
    /// An attempt's deadline passed without a result.
    DeadlinePassed {
        task: TaskId,
        attempt: u32,
        at: Millis,
    },
    /// A person approved or rejected an approval step's attempt.
    Decided {
        task: TaskId,
        attempt: u32,
        /// Who decided (their token's name).
        by: String,
        approved: bool,
        /// What they gave: the step's outputs when approved.
        #[serde(default)]
        inputs: serde_json::Map<String, Json>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        at: Millis,
    },
    /// Someone asked to cancel the run.
    CancelRequested { reason: String, at: Millis },
    /// The run's `[workflow] timeout` passed.
    RunTimedOut { at: Millis },
}

impl Event {
    /// The task this event is about, if it is about one.
    pub fn task(&self) -> Option<&TaskId> {
        match self {
            Event::TaskStarted { task, .. }
            | Event::TaskFinished { task, .. }
            | Event::TaskCached { task, .. }
            | Event::RetryDue { task, .. }
            | Event::Decided { task, .. }
            | Event::DeadlinePassed { task, .. } => Some(task),
            Event::StepReused { .. }
            | Event::Admitted { .. }
            | Event::Queued { .. }
            | Event::ChildOf { .. }
            | Event::Waiting { .. }
            | Event::Started { .. }
            | Event::CancelRequested { .. }
            | Event::RunTimedOut { .. } => None,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A job for a worker: everything needed to run one attempt of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub run_id: String,
    pub workflow: String,
    pub task: TaskId,
    pub attempt: u32,
    /// The step's action, rendered: typed values, no templates.
    pub action: JobAction,
    /// Rendered; a secret stays `{{ secrets.NAME }}` until the worker
    /// starts the step.
    pub env: BTreeMap<String, String>,
    /// The secrets the step's `env`, `container.env` and hooks' `config`
    /// name: the only ones its worker resolves.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub secrets: BTreeSet<String>,
    /// What `$WEFT_INPUTS` holds: params, upstream outputs, item, run;
    /// without params when they are shared.
    pub inputs: Json,
    /// Set when the run's params are too big to carry in every job
    /// ([`super::INLINE_PARAMS_BYTES`]): they are not in `inputs`, and the
    /// worker fetches them from the run's record, whose params' JSON has
    /// this SHA-256, once per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_params: Option<crate::artifacts::Digest>,
    pub timeout: Option<Duration>,
    pub pool: String,
    /// Its run's priority: the band of its pool's queue it waits in
    /// ([`crate::ports::PriorityBand`]).
    #[serde(default, skip_serializing_if = "is_zero_priority")]
    pub priority: i32,
    pub resources: Resources,
    /// `[defaults]` hooks first, then the step's own.
    #[serde(default)]
    pub pre_hooks: Vec<PluginCall>,
    #[serde(default)]
    pub post_hooks: Vec<PluginCall>,
    /// For a `wasm` step: the plugin that is the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_plugin: Option<PluginCall>,
    /// Upstream artifacts its action names
    /// (`{{ steps.<id>.artifacts.<name> }}`, kept as written): the only
    /// ones its worker fetches, and where the references point once it has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<crate::artifacts::InputArtifact>,
    /// What the step declares it leaves (`artifacts`), collected by its
    /// worker when the attempt succeeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub produces: Vec<crate::artifacts::DeclaredArtifact>,
    /// The mailbox of the server that queued it (see
    /// [`JobQueue::open_mailbox`](crate::ports::JobQueue::open_mailbox)): its
    /// worker sends the job's reports there, so they reach the run's
    /// driver without passing every other server. Set by the driver as it
    /// publishes; `None` sends them to the queue every server reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// How many times a server queued this job again after its queue had
    /// dead-lettered it for coming back too often while too few executions
    /// had begun to explain it (its takers lost their connections while
    /// they held it, unstarted). Bounds how often that may happen.
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub requeued: u32,
}

fn is_zero_count(n: &u32) -> bool {
    *n == 0
}

fn is_zero_priority(n: &i32) -> bool {
    *n == 0
}

impl Job {
    /// The band of its pool's queue it waits in.
    pub fn band(&self) -> crate::ports::PriorityBand {
        crate::ports::PriorityBand::of(self.priority)
    }
}

/// What the machine asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Hand this job to a worker.
    Dispatch(Box<Job>),
    /// Look this cacheable attempt up: feed `Event::TaskCached` on a hit,
    /// else dispatch its job.
    TryCache(Box<crate::cache::CacheProbe>),
    /// Keep this succeeded attempt's result for later runs.
    SaveToCache(Box<crate::cache::CacheSave>),
    /// After `delay`, feed `Event::RetryDue { task, attempt }`.
    ScheduleRetry {
        task: TaskId,
        attempt: u32,
        delay: Duration,
    },
    /// After `after` (plus the driver's grace), feed `Event::DeadlinePassed`.
    ArmDeadline {
        task: TaskId,
        attempt: u32,
        after: Duration,
    },
    /// Stop this attempt wherever it runs.
    Abort { task: TaskId, attempt: u32 },
    /// At `at` (the clock's milliseconds), feed `Event::RunTimedOut`.
    ArmRunDeadline { at: Millis },
    /// Start (or find started) the child run of a sub-workflow step's
    /// attempt; its end comes back as the attempt's `TaskFinished`.
    StartChild(Box<ChildStart>),
    /// At `at` (the clock's milliseconds), feed `Event::DeadlinePassed`
    /// for this approval's attempt: nobody decided in time.
    ArmApprovalTimeout {
        task: TaskId,
        attempt: u32,
        at: Millis,
    },
    /// The run is over.
    Finished { status: super::RunStatus },
}

/// A sub-workflow step's attempt, as its child run is started.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildStart {
    /// Its parent's priority, which the child keeps.
    pub priority: i32,
    /// The child's run id: the same for one attempt on every server, so it
    /// is started once.
    pub run_id: String,
    /// The saved workflow, its version and params, rendered.
    pub workflow: crate::spec::sub_workflow::SubWorkflow,
    /// Where the child reports its end.
    pub parent: crate::spec::sub_workflow::ParentRef,
}
