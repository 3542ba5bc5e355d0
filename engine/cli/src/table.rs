//! Plain-text tables for run summaries.

use std::time::Duration;

use weft_api::views::RunView;
use weft_core::run::FailureKind;
use weft_core::spec::units::format_duration;

fn dur(from: Option<u64>, to: Option<u64>) -> String {
    match (from, to) {
        (Some(a), Some(b)) => format_duration(Duration::from_millis(b.saturating_sub(a))),
        _ => "-".into(),
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// Renders rows as aligned columns.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// One row per step (fan-outs summarised), with the reason or outputs.
pub fn steps(view: &RunView) -> String {
    let mut rows = Vec::new();
    for step in &view.steps {
        let attempts = step
            .tasks
            .iter()
            .map(|t| t.attempts.len())
            .max()
            .unwrap_or(0);
        let detail = match (&step.reason, &step.reused_from, &step.cached_from) {
            (Some(r), _, _) => r.clone(),
            (None, Some(run), _) => format!("reused from run {run}"),
            (None, None, Some(c)) => format!("cached from run {}, step {}", c.run, c.step),
            (None, None, None) => match &step.outputs {
                Some(o)
                    if o.as_object().is_some_and(|m| !m.is_empty())
                        || o.as_array().is_some_and(|a| !a.is_empty()) =>
                {
                    o.to_string()
                }
                _ => String::new(),
            },
        };
        let name = if step.fan_out {
            format!("{} [{}]", step.id, step.tasks.len())
        } else {
            step.id.clone()
        };
        // Waiting (ready, no slot or worker yet) apart from running: a
        // step of a busy run may wait far longer than it runs.
        let end = step
            .finished_at
            .or_else(|| step.started_at.map(|_| crate::commands::inspect::now()));
        let waited = match step.running_at {
            Some(ran) => dur(step.started_at, Some(ran)),
            None => dur(step.started_at, end),
        };
        rows.push(vec![
            name,
            step.status.clone(),
            attempts.to_string(),
            waited,
            dur(step.running_at, end),
            clip(&detail, 80),
        ]);
    }
    render(
        &[
            "STEP",
            "STATUS",
            "ATTEMPTS",
            "WAITED",
            "RAN",
            "OUTPUTS / REASON",
        ],
        &rows,
    )
}

/// One row per attempt.
pub fn attempts(view: &RunView) -> String {
    let mut rows = Vec::new();
    for step in &view.steps {
        for task in &step.tasks {
            for a in &task.attempts {
                let mut result = match &a.error {
                    None => "running".to_string(),
                    Some(e) if e.is_empty() => "ok".to_string(),
                    // Kinds the reason's words do not already say.
                    Some(e) => match a.error_kind {
                        Some(
                            kind @ (FailureKind::Infrastructure
                            | FailureKind::Policy
                            | FailureKind::Plugin
                            | FailureKind::OutOfMemory),
                        ) => format!("{e} [{kind}]"),
                        _ => e.clone(),
                    },
                };
                if !a.executions.is_empty() {
                    let ran: Vec<String> = a
                        .executions
                        .iter()
                        .map(|e| match e.error.as_deref() {
                            None => format!("{} (no result)", e.worker),
                            Some("") => format!("{} (ok)", e.worker),
                            Some(_) => format!("{} (failed)", e.worker),
                        })
                        .collect();
                    result.push_str(&format!(
                        "; ran {} times: {}",
                        a.executions.len(),
                        ran.join(", ")
                    ));
                }
                rows.push(vec![
                    task.id.clone(),
                    a.number.to_string(),
                    a.worker.clone().unwrap_or_else(|| "-".into()),
                    dur(Some(a.queued_at), a.started_at.or(a.finished_at)),
                    dur(a.started_at, a.finished_at),
                    result,
                ]);
            }
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    render(
        &["TASK", "ATTEMPT", "WORKER", "QUEUED", "RAN", "RESULT"],
        &rows,
    )
}
