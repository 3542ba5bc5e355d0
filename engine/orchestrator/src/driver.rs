//! Driving one run: events in, stored, applied, actions out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use weft_core::ports::{ReportDelivery, ReportKind, RunRecord};
use weft_core::run::{apply, resume, Action, Event, RunState};

use crate::service::Shared;
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

pub(crate) struct Driver {
    pub shared: Arc<Shared>,
    pub record: RunRecord,
    pub state: RunState,
    /// Events already in the store.
    pub logged: u64,
    pub inbox: mpsc::UnboundedReceiver<Box<dyn ReportDelivery>>,
    pub cancel: watch::Receiver<bool>,
}

/// Resolves when `cancel` turns true (holding no borrow across awaits).
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    let _ = cancel.wait_for(|c| *c).await;
}

impl Driver {
    /// Runs until the run finishes (or the lease is lost: `NotOwner`).
    pub async fn drive(mut self, mut progress: Box<dyn Progress>) -> Result<RunState, Error> {
        let shared = self.shared.clone();
        let mut timers = Timers::default();
        let renew_every = Duration::from_millis((shared.options.lease_ttl_ms / 3).max(50));
        let mut next_renewal = Instant::now() + renew_every;
        let mut pending_ack: Option<Box<dyn ReportDelivery>> = None;
        let mut cancel_sent = false;

        let first = if self.logged == 0 {
            Some(Event::Started {
                at: shared.clock.now(),
            })
        } else {
            // Taken over: put the replayed run back in motion.
            let actions = resume(&mut self.state);
            self.carry_out_all(actions, &mut timers).await?;
            None
        };
        let mut next_event = first;
        loop {
            if let Some(event) = next_event.take() {
                self.shared
                    .store
                    .append_events(&self.record.id, self.logged, std::slice::from_ref(&event))
                    .await
                    .map_err(|e| match e {
                        weft_core::Error::Conflict(_) => Error::NotOwner(self.record.id.clone()),
                        other => other.into(),
                    })?;
                self.logged += 1;
                if let Some(delivery) = pending_ack.take() {
                    // The event is stored: if the ack is lost, the report
                    // comes back and is ignored as stale.
                    if let Err(e) = delivery.ack().await {
                        eprintln!("weft: run {}: acking a report: {e}", self.record.id);
                    }
                }
                let actions = apply(&mut self.state, event.clone());
                progress.on_event(&self.state, &event);
                self.carry_out_all(actions, &mut timers).await?;
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
                    let r = delivery.report().clone();
                    let at = shared.clock.now();
                    next_event = Some(match r.kind {
                        ReportKind::Started => Event::TaskStarted { task: r.task, attempt: r.attempt, worker: r.worker, at },
                        ReportKind::Finished { outcome } => Event::TaskFinished { task: r.task, attempt: r.attempt, outcome, at },
                    });
                    pending_ack = Some(delivery);
                }
                _ = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= next_renewal {
                        if !shared.store.lease(&self.record.id, &shared.options.owner, shared.clock.now(), shared.options.lease_ttl_ms).await? {
                            return Err(Error::NotOwner(self.record.id.clone()));
                        }
                        next_renewal = Instant::now() + renew_every;
                    }
                    if let Some(e) = timers.pop_due(Instant::now()) {
                        next_event = Some(stamp(e, shared.clock.now()));
                    }
                }
                _ = cancelled(&mut self.cancel), if !cancel_sent => {
                    cancel_sent = true;
                    next_event = Some(Event::CancelRequested { reason: "cancelled by user".into(), at: shared.clock.now() });
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
