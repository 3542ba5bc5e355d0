//! Driving one run: events in, stored, applied, actions out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use weft_core::ports::{ReportDelivery, ReportKind, RunRecord};
use weft_core::run::{apply, resume, Action, Event, RunState};

use crate::service::{RunChange, Shared};
use crate::timers::Timers;
use crate::Error;

/// Called after every event with the state and the event.
pub trait Progress: Send {
    fn on_event(&mut self, state: &RunState, event: &Event);
}

impl<F: FnMut(&RunState, &Event) + Send> Progress for F {
    fn on_event(&mut self, state: &RunState, event: &Event) {
        self(state, event)
    }
}

/// Most events stored and applied in one go.
const MAX_BATCH: usize = 512;

pub(crate) struct Driver {
    pub shared: Arc<Shared>,
    pub record: RunRecord,
    pub state: RunState,
    /// Events already in the store.
    pub logged: u64,
    pub inbox: mpsc::UnboundedReceiver<Box<dyn ReportDelivery>>,
    pub cancel: watch::Receiver<bool>,
    /// `StepReused` events that open a retry, before `Started`.
    pub reuse: Vec<Event>,
}

/// Resolves when `cancel` turns true (holding no borrow across awaits).
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    let _ = cancel.wait_for(|c| *c).await;
}

impl Driver {
    /// Runs until the run finishes (or the lease is lost: `NotOwner`).
    ///
    /// Reports that arrive together are handled as one batch: one store
    /// append, then their acks, then one apply pass whose jobs go out as one
    /// pipelined publish.
    pub async fn drive(mut self, mut progress: Box<dyn Progress>) -> Result<RunState, Error> {
        let shared = self.shared.clone();
        let mut timers = Timers::default();
        let renew_every = Duration::from_millis((shared.options.lease_ttl_ms / 3).max(50));
        let mut next_renewal = Instant::now() + renew_every;
        let mut cancel_sent = false;
        let mut events: Vec<Event> = Vec::new();
        let mut acks: Vec<Box<dyn ReportDelivery>> = Vec::new();

        if self.logged == 0 {
            events.append(&mut self.reuse);
            events.push(Event::Started {
                at: shared.clock.now(),
            });
        } else {
            // Taken over: put the replayed run back in motion.
            let actions = resume(&mut self.state, shared.options.jobs_lost_on_restart);
            self.carry_out_all(actions, &mut timers).await?;
        }
        loop {
            if !events.is_empty() {
                self.shared
                    .store
                    .append_events(&self.record.id, self.logged, &events)
                    .await
                    .map_err(|e| match e {
                        weft_core::Error::Conflict(_) => Error::NotOwner(self.record.id.clone()),
                        other => other.into(),
                    })?;
                self.logged += events.len() as u64;
                let mut actions = Vec::new();
                for event in events.drain(..) {
                    let was_over = self.state.status.is_terminal();
                    actions.extend(apply(&mut self.state, event.clone()));
                    let finished = !was_over && self.state.status.is_terminal();
                    progress.on_event(&self.state, &event);
                    let duration_ms = match &event {
                        Event::TaskFinished { task, at, .. } => self
                            .state
                            .task(task)
                            .and_then(|t| t.attempts.last())
                            .map(|a| at.saturating_sub(a.started_at.unwrap_or(a.queued_at))),
                        _ => None,
                    };
                    // Nobody listening is fine.
                    let _ = shared.changes.send(RunChange {
                        run_id: self.record.id.clone(),
                        status: self.state.status,
                        finished,
                        event,
                        duration_ms,
                    });
                }
                self.carry_out_all(actions, &mut timers).await?;
                // The events are stored: acks may come last, off the path
                // from a result to the next job. A lost ack only brings the
                // report back, to be ignored as stale.
                for delivery in acks.drain(..) {
                    if let Err(e) = delivery.ack().await {
                        eprintln!("weft: run {}: acking a report: {e}", self.record.id);
                    }
                }
                if self.state.status.is_terminal() {
                    break;
                }
            }
            let wake = timers
                .next_due()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
                .min(next_renewal);
            tokio::select! {
                delivery = self.inbox.recv() => {
                    let Some(delivery) = delivery else { return Err(Error::Port(weft_core::Error::Closed("report router".into()))) };
                    self.take_report(delivery, &mut events, &mut acks);
                    while events.len() < MAX_BATCH {
                        match self.inbox.try_recv() {
                            Ok(d) => self.take_report(d, &mut events, &mut acks),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= next_renewal {
                        if !shared.store.lease(&self.record.id, &shared.options.owner, shared.clock.now(), shared.options.lease_ttl_ms).await? {
                            return Err(Error::NotOwner(self.record.id.clone()));
                        }
                        next_renewal = Instant::now() + renew_every;
                    }
                    while let Some(e) = timers.pop_due(Instant::now()) {
                        events.push(stamp(e, shared.clock.now()));
                    }
                }
                _ = cancelled(&mut self.cancel), if !cancel_sent => {
                    cancel_sent = true;
                    events.push(Event::CancelRequested { reason: "cancelled by user".into(), at: shared.clock.now() });
                }
            }
        }
        self.record.status = self.state.status;
        self.record.finished_at = self.state.finished_at;
        self.record.summary = self
            .state
            .failure_summary()
            .or_else(|| self.state.cancel_reason.clone());
        shared.store.update_run(&self.record).await?;
        shared
            .store
            .release(&self.record.id, &shared.options.owner)
            .await?;
        Ok(self.state)
    }

    fn take_report(
        &self,
        delivery: Box<dyn ReportDelivery>,
        events: &mut Vec<Event>,
        acks: &mut Vec<Box<dyn ReportDelivery>>,
    ) {
        let r = delivery.report().clone();
        let at = self.shared.clock.now();
        events.push(match r.kind {
            ReportKind::Started => Event::TaskStarted {
                task: r.task,
                attempt: r.attempt,
                worker: r.worker,
                at,
            },
            ReportKind::Finished { outcome, hooks } => Event::TaskFinished {
                task: r.task,
                attempt: r.attempt,
                outcome,
                at,
                hooks,
            },
        });
        acks.push(delivery);
    }

    /// Carries out actions; jobs go out as one pipelined batch.
    async fn carry_out_all(&self, actions: Vec<Action>, timers: &mut Timers) -> Result<(), Error> {
        let mut jobs = Vec::new();
        for action in actions {
            match action {
                Action::Dispatch(job) => jobs.push(*job),
                other => self.carry_out(other, timers).await?,
            }
        }
        if !jobs.is_empty() {
            self.shared.queue.publish_all(&jobs).await?;
        }
        Ok(())
    }

    async fn carry_out(&self, action: Action, timers: &mut Timers) -> Result<(), Error> {
        let grace = Duration::from_millis(self.shared.options.deadline_grace_ms);
        match action {
            Action::Dispatch(job) => self.shared.queue.publish(&job).await?,
            Action::ScheduleRetry {
                task,
                attempt,
                delay,
            } => timers.arm(
                Instant::now() + delay,
                Event::RetryDue {
                    task,
                    attempt,
                    at: 0,
                },
            ),
            Action::ArmDeadline {
                task,
                attempt,
                after,
            } => {
                let at = Instant::now()
                    .checked_add(after + grace)
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
            Action::Abort { task, attempt } => (self.shared.abort)(&self.record.id, &task, attempt),
            Action::Finished { .. } => {}
        }
        Ok(())
    }
}

/// Stamps a timer's event with the time it fired.
fn stamp(event: Event, now: u64) -> Event {
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
