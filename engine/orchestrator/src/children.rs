//! The driver's side of sub-workflow steps: starting an attempt's child run
//! (through whatever reads saved workflows: the API), cancelling it when
//! the attempt is stopped, and, in a child run, telling the parent's step
//! how the child ended.

use std::time::Duration;

use weft_core::ports::ReportKind;
use weft_core::run::{ChildStart, FailureKind, Outcome, TaskId};

use crate::driver::Driver;
use crate::service::Service;

/// Starts child runs of sub-workflow steps.
#[async_trait::async_trait]
pub trait ChildRuns: Send + Sync {
    /// Starts the child run `start.run_id`, or finds it started (then, if
    /// it has ended, reports its end to the parent). `Err` says why it
    /// cannot run (no such saved workflow, refused by policy...): the
    /// parent's step fails with it.
    async fn start_child(&self, start: &ChildStart) -> Result<(), String>;
}

impl Driver {
    /// Starts `start`'s child run off the driver's path; a child that
    /// cannot start fails its parent's attempt.
    pub(crate) fn start_child(&self, start: ChildStart) {
        let service = self.service();
        tokio::spawn(async move {
            let started = match service.shared.children.get() {
                Some(children) => children.start_child(&start).await,
                None => Err("this engine cannot start sub-workflows: they run saved workflows, which a server keeps (`weft serve`)".to_string()),
            };
            let Err(reason) = started else {
                return;
            };
            let outcome = Outcome::Failed {
                reason,
                exit_code: None,
                retryable: false,
                kind: FailureKind::Policy,
            };
            let p = &start.parent;
            let told = service
                .signal(
                    &p.run,
                    p.task.clone(),
                    p.attempt,
                    ReportKind::Finished {
                        outcome,
                        hooks: Vec::new(),
                        unreported_start_ms: None,
                    },
                )
                .await;
            if let Err(e) = told {
                tracing::warn!(run = %p.run, "a sub-workflow that could not start: {e}");
            }
        });
    }

    /// Cancels the child run of `task`'s `attempt` if it is a sub-workflow
    /// step's; false if it is not one.
    pub(crate) fn cancel_child(&self, task: &TaskId, attempt: u32) -> bool {
        let Some(child) = self.state.child_run_id(task, attempt) else {
            return false;
        };
        let service = self.service();
        let reason = format!("its parent run {} stopped step {task}", self.record.id);
        tokio::spawn(async move {
            if let Err(e) = service.cancel_because(&child, &reason).await {
                tracing::warn!(run = %child, "cancelling a sub-workflow run: {e}");
            }
        });
        true
    }

    /// In a child run that has ended: tells the parent's step how.
    pub(crate) async fn tell_parent(&self) {
        let service = self.service();
        service.tell_parent(&self.state).await;
    }
}

impl Service {
    /// Tells the parent's step of the ended child run `state` how it ended
    /// (tried for a while; a parent taken over asks for its child again
    /// and then hears of an ended child at once). Nothing for a run that is
    /// no child or has not ended.
    pub async fn tell_parent(&self, state: &weft_core::run::RunState) {
        let Some(p) = state.parent.clone() else {
            return;
        };
        if !state.status.is_terminal() {
            return;
        }
        let outcome = state.child_outcome();
        for tries in 1..=10u64 {
            let kind = ReportKind::Finished {
                outcome: outcome.clone(),
                hooks: Vec::new(),
                unreported_start_ms: None,
            };
            match self.signal(&p.run, p.task.clone(), p.attempt, kind).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(run = %state.run_id, "telling parent run {} that this run ended: {e}", p.run);
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
            }
        }
    }
}
