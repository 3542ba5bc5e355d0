//! Retention: which finished runs, logs and artifacts a store may let go
//! of (`[retention]`), decided from the runs' records alone. Nothing
//! unfinished is ever touched, and the newest `keep-last` finished runs of
//! each workflow are kept whole.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::ports::RunRecord;
use crate::run::{Millis, RunStatus};

/// `[retention]`: how long finished runs and their parts are kept. A
/// duration left out keeps that part as long as its run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RetentionOptions {
    /// Finished runs older than this (from when they ended) are removed:
    /// record, events, step logs, claims.
    #[serde(deserialize_with = "some_duration")]
    pub runs: Option<Duration>,
    /// Failed runs are kept this long instead of `runs`.
    #[serde(deserialize_with = "some_duration")]
    pub failed_runs: Option<Duration>,
    /// Step logs of finished runs older than this are removed; the runs stay.
    #[serde(deserialize_with = "some_duration")]
    pub logs: Option<Duration>,
    /// Artifacts of finished runs older than this are removed, unless a
    /// kept run or a live cache entry still refers to them.
    #[serde(deserialize_with = "some_duration")]
    pub artifacts: Option<Duration>,
    /// The newest this many finished runs of each workflow are kept whole.
    pub keep_last: usize,
    /// How often `weft serve` applies it.
    #[serde(deserialize_with = "duration")]
    pub every: Duration,
    /// A stored artifact younger than this is never removed: it may belong
    /// to a step whose end is not recorded yet.
    #[serde(deserialize_with = "duration")]
    pub upload_grace: Duration,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        Self {
            runs: None,
            failed_runs: None,
            logs: None,
            artifacts: None,
            keep_last: 0,
            every: Duration::from_secs(600),
            upload_grace: Duration::from_secs(3600),
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    crate::spec::units::parse_duration(&text).map_err(serde::de::Error::custom)
}

fn some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// What retention lets go of now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Finished runs to remove whole.
    pub remove_runs: Vec<String>,
    /// Finished runs (kept) whose step logs go.
    pub drop_logs: Vec<String>,
    /// Runs whose artifacts are still kept: every other artifact may go.
    pub keep_artifacts_of: BTreeSet<String>,
}

impl RetentionOptions {
    /// The plan for `runs` at `now`.
    pub fn plan(&self, runs: &[RunRecord], now: Millis) -> RetentionPlan {
        let mut by_workflow: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
        for run in runs.iter().filter(|r| r.status.is_terminal()) {
            by_workflow.entry(&run.workflow).or_default().push(run);
        }
        let mut protected = BTreeSet::new();
        for list in by_workflow.values_mut() {
            list.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
            protected.extend(list.iter().take(self.keep_last).map(|r| r.id.as_str()));
        }
        let older = |run: &RunRecord, limit: Option<Duration>| match (limit, run.finished_at) {
            (Some(limit), Some(at)) => at.saturating_add(limit.as_millis() as u64) <= now,
            // Ended without a time (written before it was kept): its creation.
            (Some(limit), None) => run.created_at.saturating_add(limit.as_millis() as u64) <= now,
            (None, _) => false,
        };
        let mut plan = RetentionPlan::default();
        for run in runs {
            let finished = run.status.is_terminal();
            if !finished || protected.contains(run.id.as_str()) {
                plan.keep_artifacts_of.insert(run.id.clone());
                continue;
            }
            let run_limit = match run.status {
                RunStatus::Failed => self.failed_runs.or(self.runs),
                _ => self.runs,
            };
            if older(run, run_limit) {
                plan.remove_runs.push(run.id.clone());
                continue;
            }
            if older(run, self.logs) {
                plan.drop_logs.push(run.id.clone());
            }
            if !older(run, self.artifacts) {
                plan.keep_artifacts_of.insert(run.id.clone());
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, workflow: &str, status: RunStatus, finished_at: Option<u64>) -> RunRecord {
        let mut r: RunRecord = serde_json::from_value(serde_json::json!({
            "id": id, "workflow": workflow, "file": "f", "source": "", "params": {},
            "status": status, "created_at": finished_at.unwrap_or(0), "finished_at": finished_at,
        }))
        .unwrap();
        r.status = status;
        r
    }

    const DAY: u64 = 86_400_000;

    #[test]
    fn old_finished_runs_go_and_unfinished_and_the_newest_stay() {
        let options: RetentionOptions = toml::from_str(
            "runs = \"30d\"\nfailed-runs = \"90d\"\nlogs = \"7d\"\nartifacts = \"14d\"\nkeep-last = 1",
        )
        .unwrap();
        let now = 100 * DAY;
        let runs = [
            run("old", "w", RunStatus::Succeeded, Some(10 * DAY)),
            run("old-failed", "w", RunStatus::Failed, Some(20 * DAY)),
            run("older-failed", "w", RunStatus::Failed, Some(5 * DAY)),
            run("mid", "w", RunStatus::Succeeded, Some(80 * DAY)),
            run("recent", "w", RunStatus::Succeeded, Some(95 * DAY)),
            run("newest", "w", RunStatus::Succeeded, Some(99 * DAY)),
            run("running", "w", RunStatus::Running, None),
            run("only-of-its-workflow", "x", RunStatus::Succeeded, Some(DAY)),
        ];
        let plan = options.plan(&runs, now);
        assert_eq!(plan.remove_runs, ["old", "older-failed"]);
        assert_eq!(plan.drop_logs, ["old-failed", "mid"]);
        let kept: Vec<&str> = plan.keep_artifacts_of.iter().map(String::as_str).collect();
        assert_eq!(
            kept,
            ["newest", "only-of-its-workflow", "recent", "running"]
        );
    }

    #[test]
    fn without_durations_nothing_goes() {
        let plan = RetentionOptions::default().plan(
            &[run("a", "w", RunStatus::Succeeded, Some(0))],
            u64::MAX / 2,
        );
        assert!(plan.remove_runs.is_empty() && plan.drop_logs.is_empty());
        assert!(plan.keep_artifacts_of.contains("a"));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(toml::from_str::<RetentionOptions>("runs = \"soon\"").is_err());
        assert!(toml::from_str::<RetentionOptions>("rusn = \"1d\"").is_err());
    }
}
