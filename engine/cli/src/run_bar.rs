//! One bar for a whole run, as `weft run` shows a big run and `weft
//! submit --wait` any run on a terminal: steps done of all, the counts by
//! state, and the running steps by name.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// States a step ends in.
const ENDED: [&str; 4] = ["succeeded", "failed", "skipped", "cancelled"];
/// Running steps named on the bar.
const NAMED: usize = 3;

pub struct RunBar(ProgressBar);

impl RunBar {
    /// Adds the bar to `multi`, for a run of `steps` steps.
    pub fn add(multi: &MultiProgress, steps: usize) -> Self {
        let style = ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} steps {elapsed:>4} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = multi.add(ProgressBar::new(steps as u64).with_style(style));
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(bar)
    }

    /// Shows the run: each step's `(id, status)` in the workflow's order,
    /// and the run's status; a run that `ended` freezes the bar.
    pub fn show<'a>(
        &self,
        steps: impl Iterator<Item = (&'a str, &'a str)>,
        run: &str,
        ended: bool,
    ) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut running = Vec::new();
        let mut total = 0;
        for (id, status) in steps {
            total += 1;
            if status == "running" {
                running.push(id);
            } else {
                *counts.entry(status).or_insert(0) += 1;
            }
        }
        let done: usize = ENDED.iter().filter_map(|s| counts.get(s)).sum();
        let mut msg: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        if !running.is_empty() {
            let names = running[..running.len().min(NAMED)].join(", ");
            let more = if running.len() > NAMED { ", …" } else { "" };
            msg.push(format!("{} running: {names}{more}", running.len()));
        }
        let msg = msg.join(" · ");
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
        if ended {
            self.0.disable_steady_tick();
            self.0.abandon_with_message(format!("{msg} · run {run}"));
        } else {
            self.0.set_message(msg);
        }
    }

    /// Leaves the bar where it is.
    pub fn abandon(&self) {
        if !self.0.is_finished() {
            self.0.abandon();
        }
    }
}
