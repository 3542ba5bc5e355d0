//! Live progress of a run on a server (`weft submit --wait`, `weft retry
//! --wait`, `weft workflows run --wait`): on a terminal, one bar for the
//! run with its counts by state and running steps by name, as `weft run`
//! shows a big run, with a line per step as it ends above it; elsewhere a
//! line per step as it starts and ends, or, above [`COMPACT_ABOVE`] steps,
//! a line of counts by state (at most every two seconds) with the failed
//! steps named as they fail.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressDrawTarget};
use weft_api::views::RunStates;
use weft_core::spec::units::format_duration;

/// Above this many steps, counts instead of a line per step.
const COMPACT_ABOVE: usize = 30;
/// How often the counts line is printed at most.
const COUNTS_EVERY: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Progress {
    /// Each step's status as last printed.
    said: BTreeMap<String, String>,
    last_counts: Option<(String, Instant)>,
    waiting_said: Option<String>,
    /// On a terminal: the run's bar, lines printed above it.
    bar: Option<(MultiProgress, crate::run_bar::RunBar)>,
}

impl Progress {
    pub fn new() -> Self {
        use std::io::IsTerminal;
        let mut progress = Self::default();
        if std::io::stdout().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            // Its length is the run's step count, set on the first poll.
            let bar = crate::run_bar::RunBar::add(&multi, 1);
            progress.bar = Some((multi, bar));
        }
        progress
    }

    fn say(&self, line: String) {
        match &self.bar {
            Some((multi, _)) => {
                let _ = multi.println(line);
            }
            None => println!("{line}"),
        }
    }

    fn stamp(states: &RunStates, at: Option<u64>) -> String {
        let at = at.unwrap_or_else(super::inspect::now);
        format!(
            "[{:>7}]",
            format_duration(Duration::from_millis(
                at.saturating_sub(states.run.created_at)
            ))
        )
    }

    pub fn show(&mut self, states: &RunStates) {
        if states.flow.waiting != self.waiting_said {
            if let Some(w) = &states.flow.waiting {
                self.say(format!("{} waiting: {w}", Self::stamp(states, None)));
            }
            self.waiting_said = states.flow.waiting.clone();
        }
        // On a terminal the bar says what runs; lines say what ended.
        let compact = states.steps.len() > COMPACT_ABOVE;
        let terminal = self.bar.is_some();
        for step in &states.steps {
            let before = self.said.get(&step.id).map(String::as_str);
            if before == Some(step.status.as_str()) {
                continue;
            }
            let line = match step.status.as_str() {
                "running" if !compact && !terminal => Some(format!("{} started", step.id)),
                "succeeded" if !compact => Some(format!(
                    "{} succeeded{}",
                    step.id,
                    took(step.running_at, step.finished_at)
                )),
                "failed" => Some(format!(
                    "{} failed{}",
                    step.id,
                    took(step.running_at, step.finished_at)
                )),
                "skipped" | "cancelled" if !compact => Some(format!("{} {}", step.id, step.status)),
                _ => None,
            };
            if let Some(line) = line {
                self.say(format!(
                    "{} {line}",
                    Self::stamp(states, step.finished_at.or(step.running_at))
                ));
            }
            self.said.insert(step.id.clone(), step.status.clone());
        }
        if self.bar.is_some() {
            self.draw_bar(states);
        } else if compact {
            self.counts(states);
        }
    }

    /// The run's bar: steps done, counts by state, the running ones by name.
    fn draw_bar(&mut self, states: &RunStates) {
        if let Some((_, bar)) = &self.bar {
            bar.show(
                states
                    .steps
                    .iter()
                    .map(|s| (s.id.as_str(), s.status.as_str())),
                &states.run.status,
                states.run.is_finished(),
            );
        }
    }

    /// `[  12.3s] 1,200 of 2,000 steps done: 1,199 succeeded, 1 failed; 2 running`.
    fn counts(&mut self, states: &RunStates) {
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for step in &states.steps {
            *by.entry(step.status.as_str()).or_insert(0) += 1;
        }
        let done: usize = ["succeeded", "failed", "skipped", "cancelled"]
            .iter()
            .map(|s| by.get(s).copied().unwrap_or(0))
            .sum();
        let parts: Vec<String> = by.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let text = format!(
            "{done} of {} steps done ({})",
            states.steps.len(),
            parts.join(", ")
        );
        let finished = states.run.is_finished();
        let due = match &self.last_counts {
            None => true,
            Some((said, when)) => *said != text && (finished || when.elapsed() >= COUNTS_EVERY),
        };
        if due {
            self.say(format!("{} {text}", Self::stamp(states, None)));
            self.last_counts = Some((text, Instant::now()));
        }
    }
}

fn took(from: Option<u64>, to: Option<u64>) -> String {
    match (from, to) {
        (Some(a), Some(b)) => format!(
            " in {}",
            format_duration(Duration::from_millis(b.saturating_sub(a)))
        ),
        _ => String::new(),
    }
}
