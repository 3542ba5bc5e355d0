//! Executions of an attempt: every run of it a worker reported (at-least-
//! once delivery can run one attempt more than once), recorded whatever
//! state the attempt is in, so the run shows each honestly.

use super::event::{Event, Outcome};
use super::machine::Machine;
use super::state::{AttemptRecord, Execution};

impl Machine<'_> {
    /// Adds the execution an event reports to its attempt.
    pub(super) fn note_execution(&mut self, event: &Event) {
        let (task, attempt, worker, execution, started, ended) = match event {
            Event::TaskStarted {
                task,
                attempt,
                worker,
                at,
                execution,
            } => (task, *attempt, worker, *execution, Some(*at), None),
            Event::TaskFinished {
                task,
                attempt,
                outcome,
                at,
                worker,
                execution,
                ..
            } => {
                let error = match outcome {
                    Outcome::Succeeded { .. } => String::new(),
                    Outcome::Failed { reason, .. } => reason.clone(),
                };
                (task, *attempt, worker, *execution, None, Some((*at, error)))
            }
            _ => return,
        };
        let Some((si, ti)) = self.locate(task) else {
            return;
        };
        let t = &mut self.state.steps[si].tasks[ti];
        let Some(a) = t.attempts.iter_mut().find(|a| a.number == attempt) else {
            return;
        };
        if let Some(e) = record_execution(a, worker, execution) {
            if let Some(at) = started {
                e.started_at.get_or_insert(at);
            }
            if let Some((at, error)) = ended {
                e.finished_at.get_or_insert(at);
                e.error.get_or_insert(error);
            }
        }
    }
}

/// The execution `token` of `worker` in attempt `a`, added if new; `None`
/// where the worker is unknown (logs from before executions were kept).
fn record_execution<'a>(
    a: &'a mut AttemptRecord,
    worker: &str,
    token: u64,
) -> Option<&'a mut Execution> {
    if worker.is_empty() {
        return None;
    }
    let i = match a
        .executions
        .iter()
        .position(|e| e.worker == worker && e.token == token)
    {
        Some(i) => i,
        None => {
            a.executions.push(Execution {
                worker: worker.to_string(),
                token,
                started_at: None,
                finished_at: None,
                error: None,
            });
            a.executions.len() - 1
        }
    };
    a.executions.get_mut(i)
}
