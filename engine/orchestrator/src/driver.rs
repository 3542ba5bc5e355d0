//! Driving one run from start to finish.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json};
use tokio::sync::watch;
use tokio::time::Instant;
use weft_core::ports::{Clock, JobQueue, ReportDelivery, ReportKind, RunRecord, RunStore};
use weft_core::run::{apply, Action, Event, Plan, RunState, RunStatus, TaskId};
use weft_core::spec::Workflow;

use crate::timers::Timers;
use crate::Error;

/// Extra time a worker gets past a step's timeout to report it before the
/// orchestrator gives up on the attempt.
const DEADLINE_GRACE: Duration = Duration::from_secs(5);

/// Stops an attempt wherever it runs: `(run_id, task, attempt)`.
pub type AbortFn = Arc<dyn Fn(&str, &TaskId, u32) + Send + Sync>;

/// Called after every event with the state and the event.
pub trait Progress: Send {
    fn on_event(&mut self, state: &RunState, event: &Event);
}

impl<F: FnMut(&RunState, &Event) + Send> Progress for F {
    fn on_event(&mut self, state: &RunState, event: &Event) {
        self(state, event)
    }
}

/// A run to start.
pub struct NewRun {
    pub workflow: Workflow,
    pub source: String,
    pub file: String,
    pub params: Map<String, Json>,
}

pub struct Orchestrator {
    queue: Arc<dyn JobQueue>,
    store: Arc<dyn RunStore>,
    clock: Arc<dyn Clock>,
    abort: AbortFn,
}

impl Orchestrator {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        store: Arc<dyn RunStore>,
        clock: Arc<dyn Clock>,
        abort: AbortFn,
    ) -> Self {
        Self {
            queue,
            store,
            clock,
            abort,
        }
    }

    /// Records a new run and returns its id.
    pub async fn create(&self, run: &NewRun) -> Result<RunRecord, Error> {
        let record = RunRecord {
            id: ulid::Ulid::new().to_string().to_lowercase(),
            workflow: run.workflow.name.clone(),
            file: run.file.clone(),
            source: run.source.clone(),
            params: run.params.clone(),
            status: RunStatus::Running,
            created_at: self.clock.now(),
            finished_at: None,
            summary: None,
        };
        self.store.create_run(&record).await?;
        Ok(record)
    }

    /// Drives the run until it finishes. `cancel` turning true cancels it.
    /// Every event is stored before its actions are carried out, so the
    /// event log is the run's truth.
    pub async fn drive(
        &self,
        mut record: RunRecord,
        workflow: Workflow,
        mut cancel: watch::Receiver<bool>,
        progress: &mut dyn Progress,
    ) -> Result<RunState, Error> {
        let mut state = RunState::new(
            record.id.clone(),
            Plan::new(workflow),
            record.params.clone(),
        );
        let mut logged = 0u64;
        let mut timers = Timers::default();
        let mut event = Event::Started {
            at: self.clock.now(),
        };
        let mut cancel_sent = false;
        let mut pending_ack: Option<Box<dyn ReportDelivery>> = None;
        loop {
            self.store
                .append_events(&record.id, logged, std::slice::from_ref(&event))
                .await?;
            logged += 1;
            // Stored: the report behind this event may go.
            if let Some(delivery) = pending_ack.take() {
                delivery.ack().await?;
            }
            let actions = apply(&mut state, event.clone());
            progress.on_event(&state, &event);
            for action in actions {
                self.carry_out(&record.id, action, &mut timers).await?;
            }
            if state.status.is_terminal() {
                break;
            }
            event = loop {
                let sleep_until = timers
                    .next_due()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    delivery = self.queue.next_report() => {
                        let delivery = delivery?;
                        let report = delivery.report().clone();
                        if report.run_id != record.id {
                            continue;
                        }
                        pending_ack = Some(delivery);
                        break match report.kind {
                            ReportKind::Started => Event::TaskStarted { task: report.task, attempt: report.attempt, worker: report.worker, at: self.clock.now() },
                            ReportKind::Finished { outcome } => Event::TaskFinished { task: report.task, attempt: report.attempt, outcome, at: self.clock.now() },
                        };
                    }
                    _ = tokio::time::sleep_until(sleep_until) => {
                        if let Some(e) = timers.pop_due(Instant::now()) {
                            break with_time(e, self.clock.now());
                        }
                    }
                    _ = cancel.wait_for(|c| *c), if !cancel_sent => {
                        cancel_sent = true;
                        break Event::CancelRequested { reason: "cancelled by user".into(), at: self.clock.now() };
                    }
                }
            };
        }
        record.status = state.status;
        record.finished_at = state.finished_at;
        record.summary = state
            .failure_summary()
            .or_else(|| state.cancel_reason.clone());
        self.store.update_run(&record).await?;
        Ok(state)
    }

    async fn carry_out(
        &self,
        run_id: &str,
        action: Action,
        timers: &mut Timers,
    ) -> Result<(), Error> {
        match action {
            Action::Dispatch(job) => self.queue.publish(&job).await?,
            Action::ScheduleRetry {
                task,
                attempt,
                delay,
            } => {
                timers.arm(
                    Instant::now() + delay,
                    Event::RetryDue {
                        task,
                        attempt,
                        at: 0,
                    },
                );
            }
            Action::ArmDeadline {
                task,
                attempt,
                after,
            } => {
                let at = Instant::now()
                    .checked_add(after + DEADLINE_GRACE)
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
                timers.arm(
                    at,
                    Event::DeadlinePassed {
                        task,
                        attempt,
                        at: 0,
                    },
                );
            }
            Action::Abort { task, attempt } => (self.abort)(run_id, &task, attempt),
            Action::Finished { .. } => {}
        }
        Ok(())
    }
}

/// Stamps a timer's event with the time it fired.
fn with_time(event: Event, now: u64) -> Event {
    match event {
        Event::RetryDue { task, attempt, .. } => Event::RetryDue {
            task,
            attempt,
            at: now,
        },
        Event::DeadlinePassed { task, attempt, .. } => Event::DeadlinePassed {
            task,
            attempt,
            at: now,
        },
        other => other,
    }
}
