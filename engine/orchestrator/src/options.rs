//! The orchestrator's settings.

use serde::Deserialize;
use weft_core::run::RunLimits;

/// How the orchestrator drives runs. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Options {
    /// This orchestrator's name in leases. Default: `<hostname>-<pid>`.
    pub owner: String,
    /// How long a run's lease lasts without renewal, in milliseconds; a run
    /// whose orchestrator died is taken over after this. Default: 15000.
    pub lease_ttl_ms: u64,
    /// Extra time past a step's timeout for its worker to report before the
    /// orchestrator gives up on the attempt, in milliseconds. Default: 5000.
    pub deadline_grace_ms: u64,
    /// Most steps a submitted workflow may have. Default: 10000.
    pub max_steps_per_run: u32,
    /// Most tasks one step may have (its `for-each` items). Default: 10000.
    pub max_tasks_per_step: u32,
    /// Most tasks a run's steps may have together. Default: 100000.
    pub max_tasks_per_run: u32,
    /// Most bytes of artifacts a run's steps may leave together (each
    /// distinct file once); the step whose artifacts would pass it fails,
    /// naming the setting. Default: 100 GiB.
    pub max_artifact_bytes_per_run: u64,
    /// Most jobs of one run waiting in the queue at once (dispatched, not
    /// yet started): the rest wait in the orchestrator, so one run's huge
    /// fan-out does not hold back other runs' steps, and a cancel has
    /// little to take back. 0: no window. Default: 1000.
    pub dispatch_window: u32,
    /// How long, at most, a run waiting for a concurrency key waits before
    /// asking again when no run here gives a slot back (a run ending on
    /// another server frees one without telling this one), in
    /// milliseconds. Default: 2000 (the embedded server, the only one,
    /// hears of every slot freed: 30000 there).
    pub slot_poll_ms: u64,
    /// Whether dispatched jobs are lost when the orchestrator's process
    /// ends (an in-process queue): a run taken over then has its running
    /// attempts dispatched again. Set by the binary, not by configuration.
    #[serde(skip)]
    pub jobs_lost_on_restart: bool,
}

impl Default for Options {
    fn default() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "weft".into());
        Self {
            owner: format!("{host}-{}", std::process::id()),
            lease_ttl_ms: 15_000,
            deadline_grace_ms: 5_000,
            max_steps_per_run: 10_000,
            max_tasks_per_step: 10_000,
            max_tasks_per_run: 100_000,
            max_artifact_bytes_per_run: 100 << 30,
            dispatch_window: 1_000,
            slot_poll_ms: 2_000,
            jobs_lost_on_restart: false,
        }
    }
}

impl Options {
    /// The limits a run submitted now runs under.
    pub fn run_limits(&self) -> RunLimits {
        RunLimits {
            max_tasks_per_step: self.max_tasks_per_step,
            max_tasks_per_run: self.max_tasks_per_run,
            max_artifact_bytes_per_run: self.max_artifact_bytes_per_run,
        }
    }

    /// Whether `workflow` fits the limits, as far as its text tells; why
    /// not, naming the setting, if it does not.
    pub fn check_size(&self, workflow: &weft_core::spec::Workflow) -> Result<(), String> {
        let steps = workflow.steps.len();
        if steps > self.max_steps_per_run as usize {
            return Err(format!(
                "the workflow has {steps} steps; this server runs at most {} per run (`[orchestrator] max-steps-per-run`)",
                self.max_steps_per_run
            ));
        }
        let mut tasks = 0usize;
        for step in &workflow.steps {
            let n = match &step.for_each {
                Some(weft_core::spec::ForEach::Items(items)) => items.len(),
                // Known only as it runs: checked then.
                Some(weft_core::spec::ForEach::Template(_)) => 0,
                None => 1,
            };
            if n > self.max_tasks_per_step as usize {
                return Err(format!(
                    "step `{}` has {n} `for-each` items; a step may have at most {} tasks (`[orchestrator] max-tasks-per-step`)",
                    step.id, self.max_tasks_per_step
                ));
            }
            tasks += n;
        }
        if tasks > self.max_tasks_per_run as usize {
            return Err(format!(
                "the workflow has {tasks} tasks; a run may have at most {} (`[orchestrator] max-tasks-per-run`)",
                self.max_tasks_per_run
            ));
        }
        Ok(())
    }
}
