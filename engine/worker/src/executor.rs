//! The executor seam: one [`Executor`] trait, generic over the rendered,
//! typed action it runs, with an implementation per step kind (shell,
//! container, CUDA kernel, WebAssembly plugin) and one dispatch,
//! [`Executors::run`]. The deterministic simulation plugs its fake steps
//! in here as a `run` executor.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use weft_core::kernel::KernelSpec;
use weft_core::ports::{ContainerRuntime, KernelRuntime, LogSink};
use weft_core::run::{FailureKind, Job, Outcome};
use weft_core::spec::{Command, ContainerSpec, JobAction, StepAction, WasmStep};

use crate::gate::StartGate;
use crate::steplog::StepLog;
use crate::users::StepUsers;
use crate::{container, cuda, plugins, shell, Options, Plugins};

/// One attempt, as every executor gets it: the job (after its pre hooks),
/// where its output goes, how it is stopped, and the GPUs it holds.
pub struct Attempt<'a> {
    pub(crate) job: &'a Job,
    pub(crate) options: &'a Options,
    /// The attempt's step log (capped, filtered by its post hooks).
    pub(crate) log: Arc<StepLog>,
    /// The GPUs this worker gave the attempt (none for most steps), as
    /// `CUDA_VISIBLE_DEVICES` names them.
    pub(crate) gpus: &'a [String],
    /// The text of its `$WEFT_INPUTS`: its inputs, with its run's params
    /// spliced in when the job carries them by reference.
    pub(crate) inputs: crate::params::InputsText,
    /// Closed while the attempt's claim is asked: nothing of the step may
    /// start until it opens (see [`crate::gate`]). It holds what stops the
    /// attempt (cancel, lost claim).
    pub(crate) gate: StartGate,
    /// Emptied scratch directories a shell step may take for its own.
    pub(crate) spares: &'a crate::spare::SpareDirs,
    /// A line for the step log once the gate has opened (a step prepared
    /// while its claim is asked writes nothing to its log before that).
    pub(crate) note: Option<String>,
}

impl Attempt<'_> {
    /// The job, after the pre-process hooks.
    pub fn job(&self) -> &Job {
        self.job
    }

    /// Turns `true` when the attempt must stop.
    pub fn abort_signal(&self) -> watch::Receiver<bool> {
        self.gate.abort()
    }

    /// Where the attempt's output goes.
    pub fn log_sink(&self) -> &dyn LogSink {
        self.log.as_ref()
    }

    /// Runs `work` with the log stored as it is written, and wholly
    /// stored before this returns.
    pub async fn logged<T>(&self, work: impl Future<Output = T>) -> T {
        let flusher = self.log.spawn_flusher();
        let result = work.await;
        flusher.abort();
        self.log.finish().await;
        result
    }

    /// The attempt's step log.
    pub(crate) fn log(&self) -> Arc<StepLog> {
        self.log.clone()
    }
}

/// Runs one kind of action.
#[async_trait]
pub trait Executor<A: Sync + ?Sized>: Send + Sync {
    /// Runs `action` for `attempt`, writing its output to the attempt's
    /// log; returns when it ends, or soon after the attempt is aborted.
    async fn execute(&self, attempt: Attempt<'_>, action: &A) -> Outcome;
}

/// `run` steps in a local shell (or an argv without one), as a step user
/// of their own where the worker has them.
#[derive(Default)]
pub(crate) struct ShellExecutor {
    pub(crate) users: Option<Arc<StepUsers>>,
}

#[async_trait]
impl Executor<Command> for ShellExecutor {
    async fn execute(&self, attempt: Attempt<'_>, command: &Command) -> Outcome {
        let user = match &self.users {
            Some(users) => match users.take() {
                Some(user) => Some(user),
                None => {
                    return Outcome::Failed {
                        reason: "no step uid is free (more steps run than `step-uids` holds)"
                            .into(),
                        exit_code: None,
                        retryable: true,
                        kind: FailureKind::Infrastructure,
                    }
                }
            },
            None => None,
        };
        shell::run(attempt, command, user.as_ref().map(|u| (u.uid, u.gid))).await
    }
}

/// Container steps on a [`ContainerRuntime`].
pub(crate) struct ContainerExecutor(pub(crate) Arc<dyn ContainerRuntime>);

#[async_trait]
impl Executor<ContainerSpec> for ContainerExecutor {
    async fn execute(&self, attempt: Attempt<'_>, spec: &ContainerSpec) -> Outcome {
        container::run(attempt, spec, &self.0).await
    }
}

/// CUDA steps on a [`KernelRuntime`].
pub(crate) struct KernelExecutor(pub(crate) Arc<dyn KernelRuntime>);

#[async_trait]
impl Executor<KernelSpec> for KernelExecutor {
    async fn execute(&self, attempt: Attempt<'_>, spec: &KernelSpec) -> Outcome {
        cuda::run(attempt, spec, &self.0).await
    }
}

/// `wasm` steps on the worker's plugin host.
pub(crate) struct WasmExecutor(pub(crate) Plugins);

#[async_trait]
impl Executor<WasmStep> for WasmExecutor {
    async fn execute(&self, attempt: Attempt<'_>, spec: &WasmStep) -> Outcome {
        plugins::run_step(&self.0, &attempt.log, attempt.job, spec).await
    }
}

/// The executors a worker has; a kind without one fails its steps, saying
/// what this worker lacks.
pub(crate) struct Executors {
    pub(crate) shell: Arc<dyn Executor<Command>>,
    pub(crate) containers: Option<Arc<dyn Executor<ContainerSpec>>>,
    pub(crate) kernels: Option<Arc<dyn Executor<KernelSpec>>>,
    pub(crate) wasm: Option<Arc<dyn Executor<WasmStep>>>,
    /// The shell executor was given (a test's, an embedder's): it keeps
    /// its own idea of users.
    pub(crate) custom_shell: bool,
    /// Which steps' logs said their inputs are not in the environment.
    pub(crate) inputs_notes: crate::outputs::InputsNotes,
}

impl Default for Executors {
    fn default() -> Self {
        Self {
            shell: Arc::new(ShellExecutor::default()),
            containers: None,
            kernels: None,
            wasm: None,
            custom_shell: false,
            inputs_notes: Default::default(),
        }
    }
}

impl Executors {
    /// Runs `action` with the executor of its kind.
    pub(crate) async fn run(&self, attempt: Attempt<'_>, action: &JobAction) -> Outcome {
        let worker = &attempt.options.name;
        // What this worker lacks is not the step's fault, and trying again here cannot help.
        let cannot = |reason: String| Outcome::Failed {
            reason,
            exit_code: None,
            retryable: false,
            kind: FailureKind::Infrastructure,
        };
        let mut attempt = attempt;
        // Only the worker's own shell prepares a step while its claim is
        // asked; every other executor starts once it is held.
        let prepares_early = matches!(action, StepAction::Run { .. }) && !self.custom_shell;
        if !prepares_early && !attempt.gate.pass().await {
            return crate::gate::not_started();
        }
        if matches!(
            action,
            StepAction::Run { .. } | StepAction::Container { .. }
        ) {
            // Their `$WEFT_INPUTS` is unset when too big (see
            // `InputsText::for_env`). The shell says so once its gate opens
            // (were this copy of the job never to start, the step would
            // go without the line on this worker).
            if let Some(note) = self.inputs_notes.note(attempt.job, attempt.inputs.len()) {
                if prepares_early {
                    attempt.note = Some(note);
                } else {
                    attempt.log.push(note.as_bytes()).await;
                }
            }
        }
        match action {
            StepAction::Run { command } => self.shell.execute(attempt, command).await,
            StepAction::Container { spec } => match &self.containers {
                Some(e) => e.execute(attempt, spec).await,
                None => cannot(format!(
                    "worker {worker} has no container runtime (no Docker engine was reachable when it started)"
                )),
            },
            StepAction::Cuda { spec } => match &self.kernels {
                Some(e) => e.execute(attempt, spec).await,
                None => cannot(format!(
                    "worker {worker} cannot run CUDA kernels: no CUDA driver (libcuda.so) was found when it started"
                )),
            },
            StepAction::Wasm { spec } => match &self.wasm {
                Some(e) => e.execute(attempt, spec).await,
                None => cannot(format!("worker {worker} has no plugin host")),
            },
            // Never sent to a worker; a job built by hand is refused.
            StepAction::Approve { .. } | StepAction::Workflow { .. } => Outcome::Failed {
                reason: "approval and sub-workflow steps are carried out by the server, not run by a worker"
                    .into(),
                exit_code: None,
                retryable: false,
                kind: FailureKind::Policy,
            },
            StepAction::Join => Outcome::Succeeded {
                outputs: serde_json::json!({}),
                artifacts: Default::default(),
            },
        }
    }
}
