//! Live progress of a run: bars on a terminal, plain lines elsewhere.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedSender;
use weft_core::ports::AttemptId;
use weft_core::run::{Event, Outcome, RunState, StepStatus, TaskStatus};
use weft_core::spec::units::format_duration;
use weft_core::spec::Workflow;

use crate::log_tail::{self, Message};

pub struct Reporter {
    live: Option<Live>,
    last: Vec<StepStatus>,
    start: Option<u64>,
    /// With `--logs`, lines go through the log printer, which puts each
    /// step's output before the line that says the step ended.
    tail: Option<UnboundedSender<Message>>,
    /// The run this one retries, said on the first line.
    retry_of: Option<String>,
}

struct Live {
    multi: MultiProgress,
    bars: HashMap<usize, ProgressBar>,
    width: usize,
    /// Above [`COMPACT_ABOVE`] steps: one bar for the run (counts by state,
    /// the running steps by name) instead of a bar per step, and a line
    /// per failed step.
    overall: Option<crate::run_bar::RunBar>,
}

/// Above this many steps, `weft run` shows one bar for the whole run.
const COMPACT_ABOVE: usize = 30;

impl Reporter {
    pub fn new(live: bool, workflow: &Workflow) -> Self {
        let width = workflow
            .steps
            .iter()
            .map(|s| s.id.len())
            .max()
            .unwrap_or(4)
            .min(30);
        let live = live.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            let overall = (workflow.steps.len() > COMPACT_ABOVE)
                .then(|| crate::run_bar::RunBar::add(&multi, workflow.steps.len()));
            Live {
                multi,
                bars: HashMap::new(),
                width,
                overall,
            }
        });
        Self {
            live,
            last: vec![StepStatus::Waiting; workflow.steps.len()],
            start: None,
            tail: None,
            retry_of: None,
        }
    }

    /// Where the log printer should print: above the bars, if there are any.
    pub fn printer(&self) -> log_tail::Printer {
        match &self.live {
            Some(live) => log_tail::Printer::Bars(live.multi.clone()),
            None => log_tail::Printer::Plain,
        }
    }

    pub fn retrying(mut self, run: &str) -> Self {
        self.retry_of = Some(run.to_string());
        self
    }

    pub fn with_tail(mut self, tail: UnboundedSender<Message>) -> Self {
        self.tail = Some(tail);
        self
    }

    fn tell(&self, message: Message) {
        if let Some(tail) = &self.tail {
            let _ = tail.send(message);
        }
    }

    fn finish(&mut self) {
        if let Some(live) = &self.live {
            for bar in live.bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
            if let Some(overall) = &live.overall {
                overall.abandon();
            }
        }
    }

    fn stamp(&self, at: u64) -> String {
        format!(
            "[{:>7}]",
            format_duration(Duration::from_millis(
                at.saturating_sub(self.start.unwrap_or(at))
            ))
        )
    }

    fn line(&self, text: String) {
        if let Some(tail) = &self.tail {
            let _ = tail.send(Message::Line(text));
            return;
        }
        match &self.live {
            Some(live) => {
                let _ = live.multi.println(text);
            }
            None => say(&text),
        }
    }

    fn event_time(event: &Event) -> u64 {
        match event {
            Event::Started { at }
            | Event::StepReused { at, .. }
            | Event::Admitted { at, .. }
            | Event::Queued { at, .. }
            | Event::ChildOf { at, .. }
            | Event::Waiting { at, .. }
            | Event::TaskStarted { at, .. }
            | Event::TaskFinished { at, .. }
            | Event::TaskCached { at, .. }
            | Event::RetryDue { at, .. }
            | Event::DeadlinePassed { at, .. }
            | Event::CancelRequested { at, .. }
            | Event::Decided { at, .. }
            | Event::RunTimedOut { at } => *at,
        }
    }
}

impl weft_orchestrator::Progress for Reporter {
    fn on_event(&mut self, state: &RunState, event: &Event) {
        let at = Self::event_time(event);
        if self.start.is_none() {
            self.start = Some(at);
            let steps = state.plan.workflow.steps.len();
            let retry = match &self.retry_of {
                Some(run) => format!(", retrying run {run}"),
                None => String::new(),
            };
            let s = if steps == 1 { "" } else { "s" };
            self.line(format!(
                "run {} of {} ({steps} step{s}){retry}",
                state.run_id, state.plan.workflow.name
            ));
        }
        if let Event::TaskFinished { task, attempt, .. } = event {
            self.tell(Message::Finished(AttemptId {
                run_id: state.run_id.clone(),
                task: task.clone(),
                attempt: *attempt,
            }));
        }
        // Attempt-level lines: starts, failures and retries.
        match event {
            Event::TaskStarted { task, attempt, .. } if self.live.is_none() => {
                let note = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                self.line(format!("{} {task} started{note}", self.stamp(at)));
            }
            Event::TaskFinished {
                task,
                attempt,
                outcome: Outcome::Failed { reason, .. },
                ..
            } => {
                let retrying = state
                    .task(task)
                    .is_some_and(|t| t.status == TaskStatus::RetryWaiting);
                let tail = if retrying {
                    format!("; will retry (attempt {} next)", attempt + 1)
                } else {
                    String::new()
                };
                self.line(format!(
                    "{} {task} attempt {attempt} failed: {reason}{tail}",
                    self.stamp(at)
                ));
            }
            Event::TaskFinished {
                task,
                outcome: Outcome::Succeeded { .. },
                ..
            } if task.index.is_some() && self.live.is_none() => {
                self.line(format!("{} {task} succeeded", self.stamp(at)));
            }
            _ => {}
        }
        if let Event::TaskStarted { task, attempt, .. } = event {
            self.tell(Message::Started(AttemptId {
                run_id: state.run_id.clone(),
                task: task.clone(),
                attempt: *attempt,
            }));
        }
        if self.live.as_ref().is_some_and(|l| l.overall.is_some()) {
            self.compact(state, at);
            if state.status.is_terminal() {
                self.finish();
                self.tell(Message::Done);
            }
            return;
        }
        // Step-level changes.
        for (i, step) in state.steps.iter().enumerate() {
            let id = &state.plan.workflow.steps[i].id;
            let changed = self.last[i] != step.status;
            if let Some(live) = &mut self.live {
                if step.status == StepStatus::Running
                    || (changed && step.status.is_terminal())
                    || live.bars.contains_key(&i)
                {
                    let width = live.width;
                    let bar = live.bars.entry(i).or_insert_with(|| {
                        let style = if step.fan_out {
                            ProgressStyle::with_template(
                                "{prefix} {spinner} [{bar:24}] {pos}/{len} {elapsed:>4} {msg}",
                            )
                        } else {
                            ProgressStyle::with_template("{prefix} {spinner} {elapsed:>4} {msg}")
                        }
                        .unwrap_or_else(|_| ProgressStyle::default_bar());
                        let b = live.multi.add(
                            ProgressBar::new(step.tasks.len() as u64)
                                .with_style(style.progress_chars("=> ")),
                        );
                        b.set_prefix(format!("{id:<width$}"));
                        b.enable_steady_tick(Duration::from_millis(120));
                        b
                    });
                    if bar.is_finished() {
                        continue;
                    }
                    if step.fan_out {
                        bar.set_length(step.tasks.len() as u64);
                        bar.set_position(
                            step.tasks.iter().filter(|t| t.status.is_terminal()).count() as u64,
                        );
                    }
                    let attempt = step.tasks.iter().map(|t| t.attempt()).max().unwrap_or(0);
                    let running = step.tasks.iter().any(|t| t.status == TaskStatus::Running);
                    let msg = match step.status {
                        StepStatus::Running if running && attempt > 1 => {
                            format!("running (attempt {attempt})")
                        }
                        StepStatus::Running if running => "running".into(),
                        StepStatus::Running
                            if step
                                .tasks
                                .iter()
                                .any(|t| t.status == TaskStatus::RetryWaiting) =>
                        {
                            format!("waiting to retry (attempt {attempt} failed)")
                        }
                        StepStatus::Running => "queued".into(),
                        StepStatus::Skipped => format!(
                            "skipped: {}",
                            step.skip
                                .as_ref()
                                .map(|s| s.to_string())
                                .unwrap_or_default()
                        ),
                        StepStatus::Failed => format!("failed: {}", failure(step)),
                        s => s.as_str().to_string(),
                    };
                    bar.set_message(msg);
                    if changed && step.status.is_terminal() && !bar.is_finished() {
                        // Freeze the bar at the step's real duration, not the bar's age.
                        let took = match (step.started_at, step.finished_at) {
                            (Some(a), Some(b)) => {
                                format_duration(Duration::from_millis(b.saturating_sub(a)))
                            }
                            _ => String::new(),
                        };
                        let frozen = if step.fan_out {
                            "{prefix}   [{bar:24}] {pos}/{len} {msg}"
                        } else {
                            "{prefix}   {msg}"
                        };
                        if let Ok(style) = ProgressStyle::with_template(frozen) {
                            bar.set_style(style.progress_chars("=> "));
                        }
                        bar.disable_steady_tick();
                        bar.abandon_with_message(format!("{:>5} {}", took, bar.message()));
                    }
                }
            } else if changed && step.status.is_terminal() {
                let took = match (step.started_at, step.finished_at) {
                    (Some(a), Some(b)) => {
                        format!(" in {}", format_duration(Duration::from_millis(b - a)))
                    }
                    _ => String::new(),
                };
                let text = match (step.status, event) {
                    (
                        StepStatus::Succeeded,
                        Event::StepReused {
                            step: reused, from, ..
                        },
                    ) if reused == id => {
                        format!("{id} reused from run {from}")
                    }
                    (StepStatus::Succeeded, Event::TaskCached { task, from, .. })
                        if &task.step == id && !step.fan_out =>
                    {
                        format!("{id} {from}")
                    }
                    (StepStatus::Succeeded, _) => {
                        let cached = step
                            .tasks
                            .iter()
                            .filter(|t| t.attempts.last().is_some_and(|a| a.cached_from.is_some()))
                            .count();
                        match cached {
                            0 => format!("{id} succeeded{took}"),
                            n => {
                                format!("{id} succeeded{took} ({n} of {} cached)", step.tasks.len())
                            }
                        }
                    }
                    (StepStatus::Failed, _) => format!("{id} failed{took}: {}", failure(step)),
                    (StepStatus::Skipped, _) => format!(
                        "{id} skipped: {}",
                        step.skip
                            .as_ref()
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    ),
                    (StepStatus::Cancelled, _) => format!("{id} cancelled"),
                    _ => continue,
                };
                self.line(format!("{} {text}", self.stamp(at)));
            }
            self.last[i] = step.status;
        }
        if state.status.is_terminal() {
            self.finish();
            self.tell(Message::Done);
        }
    }
}

impl Reporter {
    /// The compact display: the run's bar says how many steps are done,
    /// the counts by state and the running steps by name; a failed step
    /// gets a line of its own above it.
    fn compact(&mut self, state: &RunState, at: u64) {
        let mut failed = Vec::new();
        for (i, step) in state.steps.iter().enumerate() {
            if self.last[i] != step.status && step.status == StepStatus::Failed {
                failed.push(format!(
                    "{} {} failed: {}",
                    self.stamp(at),
                    state.plan.workflow.steps[i].id,
                    failure(step)
                ));
            }
            self.last[i] = step.status;
        }
        for line in failed {
            self.line(line);
        }
        let Some(bar) = self.live.as_ref().and_then(|l| l.overall.as_ref()) else {
            return;
        };
        bar.show(
            state
                .plan
                .workflow
                .steps
                .iter()
                .zip(&state.steps)
                .map(|(spec, s)| (spec.id.as_str(), s.status.as_str())),
            state.status.as_str(),
            state.status.is_terminal(),
        );
    }
}

fn failure(step: &weft_core::run::StepState) -> String {
    step.error.clone().unwrap_or_else(|| {
        step.tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Failed)
            .find_map(|t| t.attempts.last().and_then(|a| a.error.clone()))
            .unwrap_or_else(|| "failed".into())
    })
}

/// Prints a line for `weft run`, ignoring a closed standard output: the
/// run goes on and is kept whether or not anyone still reads its progress
/// (`weft run wf.toml | head`).
pub fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}
