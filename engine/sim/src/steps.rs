//! The simulation's steps: a `run` step's command, in place of a shell,
//! waits a drawn while, performs its side effect (an entry in the world's
//! ledger) and succeeds or fails by chance. A step that its worker is killed
//! during stops where it was: before its effect, or after it and before
//! its result reached anyone.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::watch;
use weft_core::ports::LogSink;
use weft_core::run::{FailureKind, Job, Outcome};
use weft_core::spec::Command;
use weft_worker::{Attempt, Executor};

use crate::world::{Effect, Proc};

/// How long steps take and how often they fail.
#[derive(Debug, Clone, Copy)]
pub struct StepsSpec {
    pub min_ms: u64,
    pub max_ms: u64,
    /// A step fails (exit 1, retryable), this often.
    pub fail: f64,
}

/// One worker process's executor of simulated steps.
pub struct SimSteps {
    pub process: Proc,
    pub spec: StepsSpec,
}

#[async_trait]
impl Executor<Command> for SimSteps {
    async fn execute(&self, attempt: Attempt<'_>, command: &Command) -> Outcome {
        attempt
            .logged(self.step(
                attempt.job(),
                command,
                attempt.abort_signal(),
                attempt.log_sink(),
            ))
            .await
    }
}

impl SimSteps {
    async fn step(
        &self,
        job: &Job,
        _command: &Command,
        mut abort: watch::Receiver<bool>,
        log: &dyn LogSink,
    ) -> Outcome {
        let world = &self.process.world;
        self.process.gate().await;
        let ms = world.rng(|r| r.range(self.spec.min_ms, self.spec.max_ms));
        let limit = job.timeout.unwrap_or(Duration::from_secs(86_400));
        let work = Duration::from_millis(ms);
        tokio::select! {
            _ = tokio::time::sleep(work.min(limit)) => {}
            _ = abort.wait_for(|a| *a) => {
                return Outcome::Failed {
                    reason: "aborted".into(),
                    exit_code: None,
                    retryable: false,
                    kind: FailureKind::Cancelled,
                };
            }
        }
        self.process.gate().await;
        if work > limit {
            return Outcome::Failed {
                reason: format!("timed out after {limit:?}"),
                exit_code: None,
                retryable: true,
                kind: FailureKind::Timeout,
            };
        }
        let effect = Effect {
            run_id: job.run_id.clone(),
            task: job.task.clone(),
            attempt: job.attempt,
            worker: self.process.name.clone(),
            at: world.now(),
        };
        world.trace(format!(
            "{}: EFFECT {}/{}#{}",
            self.process.name, job.run_id, job.task, job.attempt
        ));
        world.effects.lock().expect("effects lock").push(effect);
        let line = format!(
            "effect of {}#{} on {}\n",
            job.task, job.attempt, self.process.name
        );
        log.write(line.as_bytes()).await;
        if world.rng(|r| r.chance(self.spec.fail)) {
            return Outcome::Failed {
                reason: "exited with code 1".into(),
                exit_code: Some(1),
                retryable: true,
                kind: FailureKind::ExitCode,
            };
        }
        Outcome::Succeeded {
            outputs: json!({ "task": job.task.to_string(), "by": self.process.name }),
            artifacts: Default::default(),
        }
    }
}
