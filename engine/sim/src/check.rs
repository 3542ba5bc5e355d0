//! The properties a simulation checks: as every step's effect happens (no
//! step that succeeded runs again), and when the simulation ends (every run
//! ended, every execution is shown, no attempt is left open).

use std::collections::BTreeMap;
use weft_core::ports::AttemptId;
use weft_core::run::{Event, Outcome, Plan, RunState, TaskId, TaskStatus};

/// The on-exit step of every simulated workflow.
const ON_EXIT: &str = "finally";

use crate::world::World;

/// An event in one short line, for the trace.
pub fn brief(event: &Event) -> String {
    match event {
        Event::StepReused { step, .. } => format!("reused {step}"),
        Event::Admitted { decisions, .. } => format!("admitted by {}", decisions.len()),
        Event::Queued { spot, .. } => format!("queued on {}", spot.key),
        Event::ChildOf { parent, .. } => format!("child of {}", parent.run),
        Event::Waiting { reason, .. } => format!("waiting: {reason}"),
        Event::Started { .. } => "started".into(),
        Event::TaskStarted {
            task,
            attempt,
            worker,
            ..
        } => format!("task-started {task}#{attempt} on {worker}"),
        Event::TaskFinished {
            task,
            attempt,
            outcome,
            ..
        } => match outcome {
            Outcome::Succeeded { .. } => format!("task-finished {task}#{attempt} succeeded"),
            Outcome::Failed { reason, .. } => {
                format!("task-finished {task}#{attempt} failed: {reason}")
            }
        },
        Event::TaskCached {
            task,
            attempt,
            from,
            ..
        } => format!("task-cached {task}#{attempt}: {from}"),
        Event::RetryDue { task, attempt, .. } => format!("retry-due {task}#{attempt}"),
        Event::DeadlinePassed { task, attempt, .. } => {
            format!("deadline-passed {task}#{attempt}")
        }
        Event::CancelRequested { reason, .. } => format!("cancel-requested: {reason}"),
        Event::Decided { task, approved, .. } => format!("decided {task}: {approved}"),
        Event::RunTimedOut { .. } => "run-timed-out".into(),
    }
}

/// A run's state as the store's events make it now.
pub fn stored_state(world: &World, run_id: &str) -> Option<RunState> {
    let (record, events) = world.store.with(|s| {
        (
            s.runs.get(run_id).cloned(),
            s.events.get(run_id).cloned().unwrap_or_default(),
        )
    });
    let record = record?;
    let workflow = weft_core::spec::load(&record.source).ok()?;
    Some(RunState::of_record(&record, Plan::new(workflow), events))
}

/// Called as the store grants an execution its claim, the moment it
/// begins: it must not be of a step whose success is already recorded. (An
/// execution that began earlier may still end after it, when its worker
/// was starved and lost its claim meanwhile: that is shown, and checked at
/// the end.)
pub fn execution_starts(world: &World, key: &AttemptId, worker: &str, token: u64) {
    let Some(state) = stored_state(world, &key.run_id) else {
        return;
    };
    // The run's events are stored before its jobs are sent: the on-exit
    // step's job exists only once the stored run says it is exiting.
    if key.task.step == ON_EXIT && state.exiting.is_none() {
        world.violation(format!(
            "{}/{ON_EXIT} began (execution {token} on {worker}) before the rest of the run had ended",
            key.run_id
        ));
    }
    if state
        .task(&key.task)
        .is_some_and(|t| t.status == TaskStatus::Succeeded)
    {
        world.violation(format!(
            "{}/{} ran again (attempt {}, execution {token} on {worker}) after its success was recorded",
            key.run_id, key.task, key.attempt
        ));
    }
}

/// How many executions of each attempt each worker is shown to have run.
fn shown_executions(state: &RunState) -> BTreeMap<(TaskId, u32, String), usize> {
    let mut shown = BTreeMap::new();
    for step in &state.steps {
        for task in &step.tasks {
            for a in &task.attempts {
                for e in &a.executions {
                    *shown
                        .entry((task.id.clone(), a.number, e.worker.clone()))
                        .or_default() += 1;
                }
            }
        }
    }
    shown
}

/// The properties of a finished simulation, for each run in `runs`.
pub fn at_the_end(world: &World, runs: &[String]) {
    let effects = world.effects.lock().expect("effects lock").clone();
    for run_id in runs {
        let Some(state) = stored_state(world, run_id) else {
            world.violation(format!("{run_id}: no record or events in the store"));
            continue;
        };
        if !state.status.is_terminal() {
            world.violation(format!(
                "{run_id} never ended: {}",
                open_tasks(&state).join(", ")
            ));
            continue;
        }
        let shown = shown_executions(&state);
        let mut ran: BTreeMap<(TaskId, u32, String), usize> = BTreeMap::new();
        for e in effects.iter().filter(|e| &e.run_id == run_id) {
            *ran.entry((e.task.clone(), e.attempt, e.worker.clone()))
                .or_default() += 1;
        }
        for ((task, attempt, worker), n) in &ran {
            let key = (task.clone(), *attempt, worker.clone());
            let s = shown.get(&key).copied().unwrap_or(0);
            if *n > s {
                world.violation(format!(
                    "{run_id}/{task}#{attempt} ran {n} time(s) on {worker} but the run shows {s}"
                ));
            }
        }
        if let Some(exit) = state.step_index(ON_EXIT) {
            let finally = &state.steps[exit];
            // Dispatched at least once (a cancel while it runs stops it).
            let ran = finally.tasks.iter().any(|t| !t.attempts.is_empty());
            if state.started_at.is_some() && !ran {
                world.violation(format!(
                    "{run_id}: its on-exit step `{ON_EXIT}` ended {} without running",
                    finally.status.as_str()
                ));
            }
        }
        for step in &state.steps {
            for task in &step.tasks {
                // A reused result is one an earlier run recorded as a success.
                for from in task.attempts.iter().filter_map(|a| a.cached_from.as_ref()) {
                    let source = stored_state(world, &from.run);
                    let made = source.as_ref().and_then(|s| s.task(&from.task));
                    if !made.is_some_and(|t| {
                        t.status == TaskStatus::Succeeded && t.outputs == task.outputs
                    }) {
                        world.violation(format!(
                            "{run_id}/{} reused a result of {}/{} that run does not show as its success",
                            task.id, from.run, from.task
                        ));
                    }
                }
                if let Some(a) = task.attempts.iter().find(|a| a.finished_at.is_none()) {
                    world.violation(format!(
                        "{run_id}/{}#{} never ended though the run did",
                        task.id, a.number
                    ));
                }
            }
        }
    }
}

fn open_tasks(state: &RunState) -> Vec<String> {
    state
        .steps
        .iter()
        .flat_map(|s| &s.tasks)
        .filter(|t| !t.status.is_terminal())
        .map(|t| format!("{} {}#{}", t.id, t.status.as_str(), t.attempt()))
        .take(10)
        .collect()
}
