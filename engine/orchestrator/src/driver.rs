//! Driving one run: events in, stored, applied, actions out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use weft_core::ports::{Fence, ReportDelivery, ReportKind, RunRecord};
use weft_core::run::{apply, resume, Action, Event, HookRun, RunState, RunStatus, TaskId};

use crate::gate::{Gate, GateStep};
use crate::service::{RunChange, Shared};
use crate::timers::Timers;
use crate::window::Window;
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
    /// The lease this driver writes with.
    pub fence: Fence,
    pub inbox: crate::inbox::Inbox,
    pub cancel: watch::Receiver<Option<String>>,
    /// Events before `Started`: `Admitted`, and a retry's `StepReused`.
    pub prelude: Vec<Event>,
    /// Dispatched jobs waiting for room in the queue.
    pub window: Window,
    /// Renews the run's lease from its own task.
    pub lease: crate::lease::LeaseKeeper,
}

/// Resolves with the reason once someone asks to cancel (holding no
/// borrow across awaits); never, once its sender is gone (the driver is
/// being replaced, which is no cancel).
async fn cancelled(cancel: &mut watch::Receiver<Option<String>>) -> String {
    let reason = match cancel.wait_for(|c| c.is_some()).await {
        Ok(reason) => Some(reason.clone().unwrap_or_default()),
        Err(_) => None,
    };
    match reason {
        Some(reason) => reason,
        None => std::future::pending().await,
    }
}

/// How long to wait before trying the store again, after `tries` failures.
fn backoff(tries: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << tries.min(5))).min(Duration::from_secs(3))
}

impl Driver {
    /// The service this driver belongs to, for what it asks of other runs
    /// (cancels, children, parents).
    pub(crate) fn service(&self) -> crate::service::Service {
        crate::service::Service {
            shared: self.shared.clone(),
        }
    }

    /// Runs until the run finishes, or another orchestrator takes the
    /// run's lease (`NotOwner`). Failures of the store are waited out:
    /// writes are tried again (appends are fenced and checked by length,
    /// so a write that landed before its reply was lost is never made
    /// twice), and the lease is kept by its own task (`lease.rs`) and only
    /// given up when another owner holds it.
    ///
    /// Reports that arrive together are handled as one batch: one store
    /// append, then their acks, then one apply pass whose jobs go out as one
    /// pipelined publish.
    pub async fn drive(mut self, mut progress: Box<dyn Progress>) -> Result<RunState, Error> {
        let shared = self.shared.clone();
        let mut timers = Timers::default();
        let mut cancel_sent = false;
        let mut events: Vec<Event> = Vec::new();
        let mut acks: Vec<Box<dyn ReportDelivery>> = Vec::new();

        // A run with a concurrency key starts only once it holds a slot.
        let mut gate: Option<Gate> = None;
        if self.logged == 0 || self.state.status == RunStatus::Pending {
            let queued = self.prelude.iter().find_map(|e| match e {
                Event::Queued { spot, .. } => Some(spot.clone()),
                _ => None,
            });
            events.append(&mut self.prelude);
            match queued.or_else(|| self.state.queue.clone()) {
                Some(spot) => gate = Some(Gate::new(spot)),
                None => events.push(Event::Started {
                    at: shared.clock.now(),
                }),
            }
        } else {
            // Taken over: put the replayed run back in motion.
            let actions = resume(&mut self.state, shared.options.jobs_lost_on_restart);
            events.extend(Box::pin(self.carry_out_all(actions, &mut timers)).await?);
        }
        loop {
            if let Some(g) = gate.as_mut() {
                if self.state.status.is_terminal() {
                    gate = None;
                } else if events.is_empty() && Instant::now() >= g.next {
                    match Box::pin(self.ask_for_slot(g)).await {
                        GateStep::Open(start) => {
                            events.extend(start);
                            gate = None;
                        }
                        GateStep::Wait(more) => events.extend(more),
                    }
                }
            }
            if !events.is_empty() {
                Box::pin(self.append(&events)).await?;
                let mut actions = Vec::new();
                for event in events.drain(..) {
                    self.window.heard(&event);
                    let was_over = self.state.status.is_terminal();
                    actions.extend(apply(&mut self.state, event.clone()));
                    let finished = !was_over && self.state.status.is_terminal();
                    progress.on_event(&self.state, &event);
                    if let (true, Some(spans)) = (finished, &shared.spans) {
                        spans.record(weft_core::trace::run_spans(&self.state));
                    }
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
                // Cache hits come back as events, handled next time round.
                let hits = Box::pin(self.carry_out_all(actions, &mut timers)).await?;
                events.extend(hits);
                // The events are stored: acks may come last, off the path
                // from a result to the next job. A lost ack only brings the
                // report back, to be ignored as stale.
                for delivery in acks.drain(..) {
                    if let Err(e) = delivery.ack().await {
                        tracing::warn!(run = %self.record.id, "acking a report: {e}");
                    }
                }
                if self.state.status.is_terminal() {
                    break;
                }
                if !events.is_empty() {
                    continue;
                }
            }
            let mut wake = timers
                .next_due()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if let Some(g) = &gate {
                wake = wake.min(g.next);
            }
            let slot_freed = shared.slot_freed.notified();
            tokio::select! {
                _ = slot_freed, if gate.is_some() => {
                    if let Some(g) = gate.as_mut() {
                        g.slot_freed();
                    }
                }
                delivery = self.inbox.recv() => {
                    self.take_report(delivery, &mut events, &mut acks);
                    while events.len() < MAX_BATCH {
                        match self.inbox.try_recv() {
                            Some(d) => self.take_report(d, &mut events, &mut acks),
                            None => break,
                        }
                    }
                }
                _ = self.lease.lost() => return Err(Error::NotOwner(self.record.id.clone())),
                _ = tokio::time::sleep_until(wake) => {
                    while let Some(e) = timers.pop_due(Instant::now()) {
                        events.push(stamp(e, shared.clock.now()));
                    }
                }
                reason = cancelled(&mut self.cancel), if !cancel_sent => {
                    cancel_sent = true;
                    events.push(Event::CancelRequested { reason, at: shared.clock.now() });
                }
            }
        }
        // Boxed, as the awaits above are: a driver that waits (for a
        // worker, a slot, a person) holds a small state machine, not the
        // largest of the futures it may await one day.
        Box::pin(self.end()).await;
        Ok(self.state)
    }

    /// Records the run's end, gives back its slot, tells a parent, and
    /// releases the lease.
    async fn end(&mut self) {
        let shared = self.shared.clone();
        self.record.status = self.state.status;
        self.record.finished_at = self.state.finished_at;
        self.record.summary = self
            .state
            .failure_summary()
            .or_else(|| self.state.cancel_reason.clone());
        let mut tries = 0;
        while let Err(e) = shared.store.update_run(&self.record).await {
            tries += 1;
            tracing::warn!(run = %self.record.id, "recording that the run ended: {e}; trying again");
            tokio::time::sleep(backoff(tries)).await;
        }
        self.release_slot().await;
        self.tell_parent().await;
        self.lease.stop().await;
        if let Err(e) = shared.store.release(&self.record.id, &self.fence).await {
            // It expires on its own; the run is over either way.
            tracing::warn!(run = %self.record.id, "releasing the lease: {e}");
        }
    }

    /// Appends `events` with this driver's fence, trying again while the
    /// store fails. `NotOwner` once another orchestrator holds the run.
    async fn append(&mut self, events: &[Event]) -> Result<(), Error> {
        let store = &self.shared.store;
        let n = events.len() as u64;
        let mut tries = 0;
        loop {
            let appended = store
                .append_events(&self.record.id, &self.fence, self.logged, events)
                .await;
            match appended {
                Ok(()) => break,
                // An earlier try landed and its reply was lost: nobody
                // else can write under this fence, so the batch is ours.
                Err(weft_core::Error::LogMoved { actual, .. })
                    if tries > 0 && actual == self.logged + n =>
                {
                    break
                }
                Err(weft_core::Error::Fenced(_) | weft_core::Error::LogMoved { .. }) => {
                    return Err(Error::NotOwner(self.record.id.clone()))
                }
                Err(e) => {
                    tries += 1;
                    tracing::warn!(run = %self.record.id, "recording events: {e}; trying again");
                    tokio::time::sleep(backoff(tries)).await;
                }
            }
        }
        self.logged += n;
        Ok(())
    }

    fn take_report(
        &self,
        delivery: Box<dyn ReportDelivery>,
        events: &mut Vec<Event>,
        acks: &mut Vec<Box<dyn ReportDelivery>>,
    ) {
        events.extend(report_events(
            delivery.report().clone(),
            self.shared.clock.now(),
            &self.state,
        ));
        acks.push(delivery);
    }

    /// Carries out actions: cacheable attempts are looked up, dispatched
    /// jobs join the window, and what it lets through goes out as one
    /// pipelined batch. Returns the cache hits, as events to apply.
    async fn carry_out_all(
        &mut self,
        actions: Vec<Action>,
        timers: &mut Timers,
    ) -> Result<Vec<Event>, Error> {
        let mut rest = Vec::new();
        let mut hits = Vec::new();
        let mut saves = Vec::new();
        for action in actions {
            match action {
                Action::Dispatch(job) => self.window.push(*job),
                Action::TryCache(probe) => match self.look_up(&probe).await {
                    Some(hit) => hits.push(hit),
                    None => self.window.push(probe.job),
                },
                Action::SaveToCache(save) => saves.push(*save),
                other => rest.push(other),
            }
        }
        for action in rest {
            match action {
                Action::ArmDeadline {
                    task,
                    attempt,
                    after,
                } => {
                    if let Some((task, attempt, after)) =
                        self.window.defer_deadline(task, attempt, after)
                    {
                        self.arm_deadline(task, attempt, after, timers);
                    }
                }
                // Never published: no worker needs to hear of it.
                Action::Abort { task, attempt } if self.window.take_back(&task, attempt) => {}
                other => self.carry_out(other, timers),
            }
        }
        let (mut jobs, deadlines) = self.window.next_batch();
        if let Some(reply_to) = self.shared.reply_to.get() {
            for job in &mut jobs {
                job.reply_to = Some(reply_to.clone());
            }
        }
        for (task, attempt, after) in deadlines {
            self.arm_deadline(task, attempt, after, timers);
        }
        if !jobs.is_empty() {
            self.shared.queue.publish_all(&jobs).await?;
            self.shared
                .published
                .fetch_add(jobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        for save in saves {
            self.save(save).await;
        }
        Ok(hits)
    }

    fn arm_deadline(&self, task: TaskId, attempt: u32, after: Duration, timers: &mut Timers) {
        let grace = Duration::from_millis(self.shared.options.deadline_grace_ms);
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

    fn carry_out(&self, action: Action, timers: &mut Timers) {
        match action {
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
            Action::Abort { task, attempt } => {
                if !self.cancel_child(&task, attempt) {
                    (self.shared.abort)(&self.record.id, &task, attempt)
                }
            }
            Action::StartChild(start) => self.start_child(*start),
            Action::ArmApprovalTimeout { task, attempt, at } => {
                let wait = at.saturating_sub(self.shared.clock.now());
                timers.arm(
                    Instant::now() + Duration::from_millis(wait),
                    Event::DeadlinePassed {
                        task,
                        attempt,
                        at: 0,
                    },
                )
            }
            Action::ArmRunDeadline { at } => {
                let wait = at.saturating_sub(self.shared.clock.now());
                timers.arm(
                    Instant::now() + Duration::from_millis(wait),
                    Event::RunTimedOut { at: 0 },
                )
            }
            Action::Dispatch(_)
            | Action::TryCache(_)
            | Action::SaveToCache(_)
            | Action::ArmDeadline { .. }
            | Action::Finished { .. } => {}
        }
    }
}

/// The events a worker's report becomes, stamped with the time it is
/// heard: first a start for each earlier execution it tells of that `state`
/// does not show (their workers died before reporting them), and for an
/// end whose start was never reported, that start; then its own.
pub(crate) fn report_events(r: weft_core::ports::Report, at: u64, state: &RunState) -> Vec<Event> {
    let mut events = Vec::new();
    let started = |worker: String, execution: u64, at: u64| Event::TaskStarted {
        task: r.task.clone(),
        attempt: r.attempt,
        worker,
        at,
        execution,
    };
    for e in &r.earlier {
        let event = started(e.worker.clone(), e.token, at);
        if !shown(state, &event) {
            events.push(event);
        }
    }
    if let ReportKind::Finished {
        unreported_start_ms: Some(ms),
        ..
    } = &r.kind
    {
        let event = started(r.worker.clone(), r.execution, at.saturating_sub(*ms));
        if !r.worker.is_empty() && !shown(state, &event) {
            events.push(event);
        }
    }
    events.push(report_event(r, at));
    events
}

/// Whether `state` already shows the execution's start or end `event` is.
pub(crate) fn shown(state: &RunState, event: &Event) -> bool {
    let (task, attempt, worker, token, end) = match event {
        Event::TaskStarted {
            task,
            attempt,
            worker,
            execution,
            ..
        } => (task, attempt, worker, execution, false),
        Event::TaskFinished {
            task,
            attempt,
            worker,
            execution,
            ..
        } => (task, attempt, worker, execution, true),
        _ => return false,
    };
    let Some(a) = state
        .task(task)
        .and_then(|t| t.attempts.iter().find(|a| a.number == *attempt))
    else {
        // Nothing to show it in.
        return true;
    };
    a.executions.iter().any(|e| {
        e.worker == *worker
            && e.token == *token
            && if end {
                e.finished_at.is_some()
            } else {
                e.started_at.is_some()
            }
    })
}

/// The event of a report itself.
fn report_event(r: weft_core::ports::Report, at: u64) -> Event {
    match r.kind {
        ReportKind::Started => Event::TaskStarted {
            task: r.task,
            attempt: r.attempt,
            worker: r.worker,
            at,
            execution: r.execution,
        },
        // Bounded here too, whatever the worker did: the event log and
        // every view of it stay small.
        ReportKind::Finished { outcome, hooks, .. } => Event::TaskFinished {
            task: r.task,
            attempt: r.attempt,
            outcome: outcome.bounded(),
            at,
            hooks: hooks.into_iter().map(HookRun::bounded).collect(),
            worker: r.worker,
            execution: r.execution,
        },
        ReportKind::Cancel { reason } => Event::CancelRequested { reason, at },
        ReportKind::Decided {
            by,
            approved,
            inputs,
            comment,
        } => Event::Decided {
            task: r.task,
            attempt: r.attempt,
            by,
            approved,
            inputs,
            comment,
            at,
        },
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
        Event::RunTimedOut { .. } => Event::RunTimedOut { at: now },
        other => other,
    }
}
