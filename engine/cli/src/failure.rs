//! What a failed run's summary says besides its reason: which task failed
//! (one of 2,000 is named, with its item) and the last lines of its log,
//! which usually hold the message that explains the exit code.

use weft_api::views::{FailedAt, RunView};
use weft_core::ports::{AttemptId, StepLogs};

/// How much of the failed attempt's log is read for its last lines.
const TAIL_BYTES: u64 = 4096;
/// How many of its last lines are shown.
const TAIL_LINES: usize = 5;

/// `failed at shard[250] (item eu-west), attempt 2: exited with code 3`,
/// then the log's last lines, each indented under a bar. The first line is
/// left out when `summarised` (the run's summary, printed just before, says
/// `step: reason`) and it would add nothing: a step of one task, no item,
/// on its first attempt.
pub fn describe(failed: &FailedAt, lines: &[String], summarised: bool) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&format!("  │ {line}\n"));
    }
    let plain = failed.task == failed.step
        && failed.item.is_none()
        && failed.attempt.is_none_or(|a| a <= 1);
    if summarised && plain {
        return out;
    }
    format!("{}\n{out}", headline(failed))
}

fn headline(failed: &FailedAt) -> String {
    let mut out = format!("failed at {}", failed.task);
    if let Some(item) = &failed.item {
        out.push_str(&format!(" (item {item})"));
    }
    if let Some(attempt) = failed.attempt.filter(|a| *a > 1) {
        out.push_str(&format!(", attempt {attempt}"));
    }
    if let Some(error) = &failed.error {
        out.push_str(&format!(": {error}"));
    }
    out
}

/// The failed attempt's last log lines, from a store at hand.
pub async fn lines_from_store(store: &dyn StepLogs, run: &str, failed: &FailedAt) -> Vec<String> {
    let (Some(attempt), Some(task)) = (failed.attempt, weft_api::parse_task(&failed.task)) else {
        return Vec::new();
    };
    let key = AttemptId {
        run_id: run.to_string(),
        task,
        attempt,
    };
    match weft_api::app::log_tail(store, &key, TAIL_BYTES).await {
        Ok(slice) => weft_api::app::last_lines(&slice.bytes, TAIL_LINES, slice.start == 0),
        Err(e) => {
            tracing::debug!("reading the failed attempt's log: {e}");
            Vec::new()
        }
    }
}

/// The failed attempt's last log lines, from a server.
pub async fn lines_from_server(client: &weft_api::Client, view: &RunView) -> Vec<String> {
    let Some(failed) = &view.failed else {
        return Vec::new();
    };
    let Some(attempt) = failed.attempt else {
        return Vec::new();
    };
    match client
        .log_tail(&view.run.id, &failed.task, Some(attempt), TAIL_BYTES)
        .await
    {
        // The server does not say here whether the tail began mid-line:
        // the first line is dropped unless the whole log fit.
        Ok(bytes) => {
            weft_api::app::last_lines(&bytes, TAIL_LINES, (bytes.len() as u64) < TAIL_BYTES)
        }
        Err(e) => {
            tracing::debug!("reading the failed attempt's log: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(task: &str, item: Option<&str>) -> FailedAt {
        FailedAt {
            step: "build".into(),
            task: task.into(),
            attempt: Some(1),
            item: item.map(str::to_string),
            error: Some("exited with code 3".into()),
        }
    }

    #[test]
    fn the_failed_task_is_named_unless_the_summary_already_did() {
        let lines = ["error: undefined symbol".to_string()];
        assert_eq!(
            describe(&failed("build", None), &lines, true),
            "  │ error: undefined symbol\n"
        );
        assert_eq!(
            describe(&failed("build", None), &lines, false),
            "failed at build: exited with code 3\n  │ error: undefined symbol\n"
        );
        assert_eq!(
            describe(&failed("build[250]", Some("eu-west")), &[], true),
            "failed at build[250] (item eu-west): exited with code 3\n"
        );
    }
}
